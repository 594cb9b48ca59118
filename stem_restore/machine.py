"""What machine a number was measured on: the CPU model and a GPU's name, for benchmarks'
headers and cache keys (the engine picks its kernels by CPU, cuDNN its algorithms by card)."""
from __future__ import annotations

import platform
import subprocess

__all__ = ["cpu_model", "gpu_model"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`, else ``unknown``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_model(gpu: int) -> str:
    """Name and driver version of GPU ``gpu`` (``nvidia-smi``), or ``unknown``."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader",
                              "-i", str(gpu)], capture_output=True, text=True, timeout=30, check=True).stdout
        return out.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
