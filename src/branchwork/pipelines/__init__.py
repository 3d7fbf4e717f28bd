"""Pipelines: the decorator, compiling, submitting and loading."""

from branchwork.pipelines.pipeline import Pipeline, pipeline

__all__ = ["Pipeline", "pipeline"]
