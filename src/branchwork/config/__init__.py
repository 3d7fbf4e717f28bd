"""Settings a user attaches to steps and pipelines."""

from branchwork.config.cache import CachePolicy
from branchwork.config.resources import ResourceSettings
from branchwork.config.retry import StepRetryConfig

__all__ = ["CachePolicy", "ResourceSettings", "StepRetryConfig"]
