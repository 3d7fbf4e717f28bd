"""Settings a user attaches to steps and pipelines."""

from branchwork.config.resources import ResourceSettings
from branchwork.config.retry import StepRetryConfig

__all__ = ["ResourceSettings", "StepRetryConfig"]
