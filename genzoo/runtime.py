"""Where a run executes and what it costs: the device, peak memory, and a one-line machine description.

Shared by the trainer (device, peak memory in ``metrics.jsonl``), the reports (``genzoo eval`` and
``compare`` say which machine measured them) and the benchmarks.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: CUDA memory allocated on a GPU, resident set size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """The largest resident set of this process so far, in MB (nan where the OS does not say)."""
    try:
        import resource  # Unix only
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or what ``platform`` knows where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: OS, CPU, core count, torch threads and the GPU if there is one."""
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.system()} {cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads{gpu}"
