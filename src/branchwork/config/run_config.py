"""YAML run configuration: parameters, pipeline options and per-step settings in a file.

    parameters: {test_size: 50}
    enable_cache: false
    failure_mode: continue_on_failure
    retry: {max_retries: 2, delay: 1, backoff: 2}
    concurrency_limits: {openai: 8}
    steps:
      process_partition:
        enable_cache: false
        retry: {max_retries: 3}
        settings:
          resources: {cpu_count: 2, memory: 4GB}

Every error names the file and the key (`run.yaml: steps.train.settings.resources.memory:
...`). Step options are plain JSON, so they travel in the snapshot to an orchestration
process and are applied there the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchwork.config.concurrency import check_limits
from branchwork.config.resources import ResourceSettings
from branchwork.config.retry import StepRetryConfig
from branchwork.exceptions import ConfigurationError

_TOP_KEYS = {"parameters", "enable_cache", "failure_mode", "retry", "steps", "concurrency_limits"}
_STEP_KEYS = {"enable_cache", "retry", "settings"}
_FAILURE_MODES = ("stop_on_failure", "fail_fast", "continue_on_failure")


@dataclass(frozen=True)
class StepOptions:
    """Options a run configuration sets for every invocation of one step."""

    enable_cache: bool | None = None
    retry: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None

    def apply(self, step: Any) -> Any:
        """A copy of `step` with these options."""
        return step.with_options(
            enable_cache=self.enable_cache,
            retry=StepRetryConfig(**self.retry) if self.retry is not None else None,
            settings={"resources": ResourceSettings(**self.resources)}
            if self.resources is not None
            else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"enable_cache": self.enable_cache, "retry": self.retry, "resources": self.resources}


@dataclass(frozen=True)
class RunConfig:
    parameters: dict[str, Any] = field(default_factory=dict)
    enable_cache: bool | None = None
    failure_mode: str | None = None
    retry: StepRetryConfig | None = None
    steps: dict[str, StepOptions] = field(default_factory=dict)
    concurrency_limits: dict[str, int] = field(default_factory=dict)


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{self.path}: {key}: {problem}")

    def mapping(self, value: Any, key: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"keys must be strings, got {name!r}")
            if allowed is not None and name not in allowed:
                raise self.fail(
                    f"{key}.{name}" if key else name,
                    f"unknown key; allowed: {', '.join(sorted(allowed))}",
                )
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def limits(self, value: Any) -> dict[str, int]:
        try:
            return check_limits(value, "concurrency_limits")
        except ConfigurationError as error:
            raise ConfigurationError(f"{self.path}: {error}") from None

    def build(self, factory: Any, value: Any, key: str) -> Any:
        self.mapping(value, key)
        try:
            return factory(**value)
        except TypeError as error:
            raise self.fail(key, str(error)) from None
        except ConfigurationError as error:
            raise self.fail(key, str(error)) from None


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run configuration."""
    import yaml

    where = str(path)
    check = _Checker(where)
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as error:
        raise ConfigurationError(f"{where}: cannot be read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{where}: is not valid YAML: {error}") from None
    check.mapping(data, "", _TOP_KEYS)
    failure_mode = data.get("failure_mode")
    if failure_mode is not None and failure_mode not in _FAILURE_MODES:
        raise check.fail("failure_mode", f"must be one of {', '.join(_FAILURE_MODES)}")
    retry = data.get("retry")
    steps: dict[str, StepOptions] = {}
    for name, options in check.mapping(data.get("steps", {}), "steps").items():
        key = f"steps.{name}"
        check.mapping(options, key, _STEP_KEYS)
        settings = check.mapping(options.get("settings", {}), f"{key}.settings", {"resources"})
        resources = settings.get("resources")
        if resources is not None:
            check.build(ResourceSettings, resources, f"{key}.settings.resources")
        if options.get("retry") is not None:
            check.build(StepRetryConfig, options["retry"], f"{key}.retry")
        enable_cache = options.get("enable_cache")
        steps[name] = StepOptions(
            enable_cache=None
            if enable_cache is None
            else check.boolean(enable_cache, f"{key}.enable_cache"),
            retry=options.get("retry"),
            resources=resources,
        )
    enable_cache = data.get("enable_cache")
    return RunConfig(
        parameters=check.mapping(data.get("parameters", {}), "parameters"),
        enable_cache=None if enable_cache is None else check.boolean(enable_cache, "enable_cache"),
        failure_mode=failure_mode,
        retry=None if retry is None else check.build(StepRetryConfig, retry, "retry"),
        steps=steps,
        concurrency_limits=check.limits(data.get("concurrency_limits", {})),
    )
