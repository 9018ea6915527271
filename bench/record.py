"""What every benchmark record says about the machine: the CPU's name and the process's peak memory.

The benchmarks import it by name (``from record import ...``): ``python bench/<name>.py`` puts
``bench/`` first on the import path.
"""

from __future__ import annotations

import platform
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """The largest resident set of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or what ``platform`` knows where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
