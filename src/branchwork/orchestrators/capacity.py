"""What this machine offers to steps: CPUs, memory and GPUs, detected once, overridable."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from branchwork.runtime.events import Request


def _cpus() -> float:
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return float(os.cpu_count() or 1)


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _gpus() -> float:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return float(len([d for d in visible.split(",") if d.strip() not in ("", "-1")]))
    if shutil.which("nvidia-smi") is None:
        return 0.0
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0.0
    return float(sum(1 for line in listing.splitlines() if line.startswith("GPU ")))


@functools.lru_cache(maxsize=1)
def detect_capacity() -> Request:
    """The machine's CPUs, memory (bytes) and GPUs."""
    return Request(_cpus(), _memory(), _gpus())
