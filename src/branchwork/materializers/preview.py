"""What the CLI and the dashboard show of an artifact without loading it.

A materializer's `preview(data)` makes one when the value is saved; it is stored beside the
artifact's row, bounded in size, so showing an artifact never reads the artifact store and
never unpickles anything.
"""

from __future__ import annotations

import base64
import itertools
import json
import reprlib
from dataclasses import dataclass, field
from typing import Any

TEXT_LIMIT = 2000  # characters of text shown
IMAGE_LIMIT = 64 * 1024  # bytes of a PNG thumbnail; a bigger one is dropped
METADATA_LIMIT = 8 * 1024  # characters of the metadata as JSON; bigger is dropped


@dataclass
class Preview:
    """A short text (a repr, a table's head), metadata (shape, dtypes, size) and, optionally,
    a PNG thumbnail."""

    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    image_png: bytes | None = None


class _ShortRepr(reprlib.Repr):
    # reprlib has no rule for bytes: it would repr a whole value, then cut the text (a 1 GiB
    # output took 30 s and 4 GiB to preview). Cut the value first, as for a str.
    repr_bytes = repr_bytearray = reprlib.Repr.repr_str

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        """Its first items in its own order, as `repr` shows them (reprlib sorts the keys:
        `k0, k1, k10, k100`...)."""
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
            for key, value in itertools.islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


_REPR = _ShortRepr()
_REPR.maxstring = _REPR.maxother = 400
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 20
_REPR.maxlevel = 4


def short_repr(value: Any) -> str:
    """`repr(value)` with long collections and strings cut short."""
    return _REPR.repr(value)


def preview_json(preview: Preview) -> str:
    """The preview as stored: JSON, each part cut to its limit."""
    stored: dict[str, Any] = {"text": preview.text[:TEXT_LIMIT]}
    if preview.metadata:
        metadata = json.dumps(preview.metadata, default=repr)
        if len(metadata) <= METADATA_LIMIT:
            stored["metadata"] = json.loads(metadata)
    if preview.image_png is not None and len(preview.image_png) <= IMAGE_LIMIT:
        stored["image_png"] = base64.b64encode(preview.image_png).decode()
    return json.dumps(stored)


def failed_preview(error: BaseException) -> Preview:
    """A preview that says why none could be made (a preview never fails a step)."""
    return Preview(text=f"(no preview: {error!r})"[:TEXT_LIMIT])
