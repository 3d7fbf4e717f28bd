"""Pipelines for the stack tests, in a module of their own so that an orchestration process
(local_process) imports them by their recorded source."""

from __future__ import annotations

import os

from branchwork import pipeline, step


@step
def where_am_i() -> int:
    return os.getpid()


@pipeline
def report_pid():
    return where_am_i()
