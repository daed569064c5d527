"""What every benchmark shares: a figure (median, min, max of several runs, its target, and
a baseline measured in the same run), an isolated environment, and the table."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    runs: list[float]
    target: str
    baseline: list[float] | None = None

    def row(self) -> list[str]:
        med = statistics.median(self.runs)
        base = statistics.median(self.baseline) if self.baseline else None
        ratio = f"{med / base:.2f}" if base else "-"
        return [
            self.name,
            f"{med:.3g} {self.unit}",
            f"{min(self.runs):.3g}",
            f"{max(self.runs):.3g}",
            self.target,
            f"{base:.3g} {self.unit}" if base else "-",
            ratio,
        ]


def isolated_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLEIO_")}
    (root / "run").mkdir(parents=True, exist_ok=True)
    env.update(
        XDG_RUNTIME_DIR=str(root / "run"),
        XDG_DATA_HOME=str(root / "data"),
        XDG_CONFIG_HOME=str(root / "config"),
    )
    return env


def kleio_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "kleio_cli", *args]


def timed(run: Callable[[], object], times: int) -> list[float]:
    out = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        out.append(time.perf_counter() - start)
    return out


def table(figures: list[Figure]) -> str:
    rows = [["figure", "median", "min", "max", "target", "baseline", "ratio"]]
    rows += [f.row() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
