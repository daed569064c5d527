"""GPUs of this machine: nvidia-ml-py when installed, else nvidia-smi, else none."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

TIMEOUT = 5.0


def capture_gpus() -> list[dict[str, Any]]:
    try:
        return _from_nvml()
    except ImportError:
        pass
    except Exception:  # pynvml raises its own NVMLError tree (no driver, no device)
        return []
    return _from_nvidia_smi()


def _from_nvml() -> list[dict[str, Any]]:
    import pynvml

    pynvml.nvmlInit()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}"
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(
                {
                    "index": index,
                    "model": _text(pynvml.nvmlDeviceGetName(handle)),
                    "memory_mib": pynvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
                    "driver": driver,
                    "cuda": cuda_text,
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_nvidia_smi() -> list[dict[str, Any]]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        table = subprocess.run(
            [
                smi,
                "--query-gpu=index,name,memory.total,driver_version",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        ).stdout
        header = subprocess.run([smi], capture_output=True, text=True, timeout=TIMEOUT).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    gpus = []
    for line in table.strip().splitlines():
        index, model, memory, driver = (part.strip() for part in line.split(","))
        gpus.append(
            {
                "index": int(index),
                "model": model,
                "memory_mib": int(float(memory)) if memory.replace(".", "").isdigit() else None,
                "driver": driver,
                "cuda": cuda.group(1) if cuda else None,
            }
        )
    return gpus
