"""GPU capture through nvidia-smi's output format (no GPU on these machines: a stand-in
nvidia-smi prints what the real one prints; the device checks run on a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kleio_cli.capture import gpu

FAKE_SMI = """#!/bin/sh
case "$1" in
  --query-gpu=*) echo "0, NVIDIA H100 80GB HBM3, 81559, 550.54.15"
                 echo "1, NVIDIA H100 80GB HBM3, 81559, 550.54.15" ;;
  *) echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |" ;;
esac
"""


def test_gpus_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert gpu._from_nvidia_smi() == [
        {
            "index": i,
            "model": "NVIDIA H100 80GB HBM3",
            "memory_mib": 81559,
            "driver": "550.54.15",
            "cuda": "12.4",
        }
        for i in (0, 1)
    ]


def test_no_gpu_and_no_tool_is_an_empty_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu._from_nvidia_smi() == []
