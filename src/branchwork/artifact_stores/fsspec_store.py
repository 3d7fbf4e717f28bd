"""An artifact store on any fsspec filesystem (s3://, gs://, memory://, file://, ...).

A team's object store is configured on the artifact store itself: the endpoint, the region,
the access key id and a *reference* to the secret (the name of an environment variable, or
a file), never the secret. The secret is read when a process builds its filesystem, so it
is not in the metadata store, in the specs that carry the store to step processes and Ray
workers (`spec()`), in logs or in error messages.

The filesystem is built lazily, once per process: fsspec's async filesystems (s3fs) are not
fork-safe, and the local_process zygote decodes a step's request (building this store)
before it forks the child that runs the step. The filesystem's class is imported at once,
though: a missing package fails where the store is configured, and the zygote's children
inherit the import.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from branchwork.artifact_stores.base import BaseArtifactStore
from branchwork.artifact_stores.configured import remember_store_spec
from branchwork.exceptions import ConfigurationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

# The settings a team gives besides the URL; none of them is a secret.
OPTIONS = ("endpoint_url", "region", "access_key_id", "secret_env", "secret_file")
_S3 = ("s3", "s3a")
_EXTRAS = {"s3": "s3", "s3a": "s3"}  # protocol -> the branchwork extra that installs it

P = ParamSpec("P")
T = TypeVar("T")


def _reporting_refusals(
    method: Callable[Concatenate[FsspecArtifactStore, str, P], T],
) -> Callable[Concatenate[FsspecArtifactStore, str, P], T]:
    """Turn the store's "access denied" into an error that says which credentials to check."""

    @functools.wraps(method)
    def checked(store: FsspecArtifactStore, uri: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(store, uri, *args, **kwargs)
        except PermissionError as error:
            raise PermissionError(store.refusal(uri, error)) from error

    return checked


class FsspecArtifactStore(BaseArtifactStore):
    """Artifacts under an fsspec URL `root`; URIs stay full URLs so they can be read back later.

    For s3:// URLs, `endpoint_url`, `region` and `access_key_id` configure the client, and
    the secret access key is read from the environment variable `secret_env` or the file
    `secret_file` each time a process connects. Without them, s3fs finds credentials as
    botocore does (AWS_* variables, ~/.aws).
    """

    def __init__(
        self,
        root: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_env: str | None = None,
        secret_file: str | None = None,
    ) -> None:
        self.root = root
        self.endpoint_url = endpoint_url
        self.region = region
        self.access_key_id = access_key_id
        self.secret_env = secret_env
        self.secret_file = secret_file
        self.protocol = root.split("://", 1)[0].split("::", 1)[0].lower()
        self._check_options()
        _import_filesystem(self.protocol, root)
        self._fs: AbstractFileSystem | None = None
        self._fs_pid = 0
        if self.configured:
            remember_store_spec(self.spec())

    @property
    def configured(self) -> bool:
        """Whether the store has settings of its own (else fsspec's defaults reach it)."""
        return any(getattr(self, option) is not None for option in OPTIONS)

    def spec(self) -> dict[str, str]:
        return {"root": self.root} | {
            option: value for option in OPTIONS if (value := getattr(self, option)) is not None
        }

    def _check_options(self) -> None:
        if self.configured and self.protocol not in _S3:
            raise ConfigurationError(
                f"Artifact store {self.root}: endpoint_url, region and credentials apply to "
                "s3:// URLs; configure other filesystems through fsspec's own settings."
            )
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):  # accepted, it failed when a step first wrote there
            raise ConfigurationError(
                f"Artifact store {self.root}: endpoint_url must start with http:// or "
                f"https://, got {self.endpoint_url!r}."
            )
        if self.secret_env is not None and self.secret_file is not None:
            raise ConfigurationError(
                f"Artifact store {self.root}: give the secret as secret_env or secret_file, "
                "not both."
            )
        has_secret = self.secret_env is not None or self.secret_file is not None
        if has_secret != (self.access_key_id is not None):
            raise ConfigurationError(
                f"Artifact store {self.root}: an access_key_id needs a secret reference "
                "(secret_env: the name of an environment variable, or secret_file: a path) "
                "and the other way round."
            )

    @property
    def fs(self) -> AbstractFileSystem:
        """This process's filesystem (rebuilt in a forked child: see the module docstring)."""
        if self._fs is None or self._fs_pid != os.getpid():
            from fsspec.core import url_to_fs

            self._fs = url_to_fs(self.root, **self._storage_options())[0]
            self._fs_pid = os.getpid()
        return self._fs

    def _storage_options(self) -> dict[str, Any]:
        if self.protocol not in _S3:
            return {}
        # Listings are not cached: other processes write into the same prefixes.
        options: dict[str, Any] = {"use_listings_cache": False}
        if self.endpoint_url is not None:
            options["endpoint_url"] = self.endpoint_url
        if self.region is not None:
            options["client_kwargs"] = {"region_name": self.region}
        if self.access_key_id is not None:
            options.update(key=self.access_key_id, secret=self._read_secret())
        return options

    def _secret_source(self) -> str:
        if self.secret_env is not None:
            return f"the environment variable {self.secret_env}"
        return f"the file {self.secret_file}"

    def _read_secret(self) -> str:
        """The secret access key, read now from where the configuration says it is."""
        if self.secret_env is not None:
            secret = os.environ.get(self.secret_env, "")
        else:
            try:
                with open(str(self.secret_file), encoding="utf-8") as file:
                    secret = file.read().strip()
            except OSError as error:
                raise ConfigurationError(
                    f"Artifact store {self.root}: cannot read the secret of access key id "
                    f"'{self.access_key_id}' from {self._secret_source()}: {error.strerror}."
                ) from None
        if not secret:
            raise ConfigurationError(
                f"Artifact store {self.root}: the secret of access key id "
                f"'{self.access_key_id}' is read from {self._secret_source()}, which is "
                "empty or not set in this process; set it wherever steps run."
            )
        return secret

    def refusal(self, uri: str, error: PermissionError) -> str:
        """What to say when the object store refuses a request (`error` is the store's own
        answer, which never holds the secret)."""
        if self.access_key_id is None:
            credentials = (
                "the credentials botocore found (AWS_* variables, ~/.aws); or configure "
                "access_key_id and secret_env on the artifact store"
            )
        else:
            credentials = (
                f"that access key id '{self.access_key_id}' may use it and that "
                f"{self._secret_source()} holds its secret"
            )
        return (
            f"The artifact store {self.root} refused access to {uri} ({error}): check "
            f"{credentials}."
        )

    def __getstate__(self) -> dict[str, Any]:
        """A pickled store carries its configuration, never a built filesystem (which holds
        the secret)."""
        return self.__dict__ | {"_fs": None, "_fs_pid": 0}

    @_reporting_refusals
    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        file: IO[Any] = self.fs.open(uri, mode)
        return file

    @_reporting_refusals
    def makedirs(self, uri: str) -> None:
        # S3 has no folders, only key prefixes: s3fs's makedirs would only check (or create!)
        # the bucket, one request per artifact.
        if self.protocol not in _S3:
            self.fs.makedirs(uri, exist_ok=True)

    @_reporting_refusals
    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(uri))

    @_reporting_refusals
    def isdir(self, uri: str) -> bool:
        return bool(self.fs.isdir(uri))

    @_reporting_refusals
    def listdir(self, uri: str) -> list[str]:
        return [path.rstrip("/").rsplit("/", 1)[-1] for path in self.fs.ls(uri, detail=False)]

    @_reporting_refusals
    def rmtree(self, uri: str) -> None:
        self.fs.rm(uri, recursive=True)
        if self.protocol in _S3:  # servers with real folders (SeaweedFS) keep it, empty
            self.fs.rm_file(uri.rstrip("/") + "/")

    @_reporting_refusals
    def remove(self, uri: str) -> None:
        self.fs.rm_file(uri)

    @_reporting_refusals
    def write_bytes(self, uri: str, data: bytes) -> None:
        self.fs.pipe_file(uri, data)  # one request on an object store

    @_reporting_refusals
    def read_bytes(self, uri: str) -> bytes:
        data: bytes = self.fs.cat_file(uri)
        return data

    @_reporting_refusals
    def read_range(self, uri: str, start: int, end: int) -> bytes:
        data: bytes = self.fs.cat_file(uri, start=start, end=end)
        return data

    @_reporting_refusals
    def walk_files(self, uri: str) -> list[str]:
        folder = self.fs._strip_protocol(uri).rstrip("/") + "/"
        return sorted(path.removeprefix(folder) for path in self.fs.find(uri))

    def join(self, *parts: str) -> str:
        head, tail = parts[0], "/".join(part.strip("/") for part in parts[1:] if part)
        if not tail:
            return head
        return head + tail if head.endswith("/") else f"{head}/{tail}"


def _import_filesystem(protocol: str, root: str) -> None:
    """Import the filesystem class of `protocol`, or say which package to install."""
    from fsspec import get_filesystem_class

    try:
        get_filesystem_class(protocol)
    except ImportError as error:
        extra = _EXTRAS.get(protocol)
        install = f"pip install 'branchwork[{extra}]'" if extra else "install it"
        raise ImportError(
            f"The artifact store {root} needs a package: {error} ({install})."
        ) from None
