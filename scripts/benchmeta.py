"""What every bench records beside its numbers: the machine it ran on (shared by scripts/bench_*.py)."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch


def machine(**extra: Any) -> dict[str, Any]:
    """Platform, CPU model, threads, load, library versions, GPU (if any), date, plus ``extra``."""
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as fh:
        cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }
