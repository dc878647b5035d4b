"""Small helpers shared by the evaluation notebooks (not part of the package).

The notebooks run from ``notebooks/`` with the repository root on ``sys.path``; the public
datasets are read from ``../shared/datasets`` relative to the repository root.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"


def setup(threads: int = 2) -> None:
    """Pin every thread pool to ``threads`` and put the repository root on ``sys.path``.

    Call before importing numpy-heavy modules: OpenMP reads its variables at load time.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover - faiss is a project dependency
        pass


def dataset(name: str) -> Path:
    """Path of a public dataset folder under ``../shared/datasets``.

    Raises:
        FileNotFoundError: the folder is absent (the notebook cannot run without it).
    """
    path = DATASETS / name
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: the notebook needs ../shared/datasets/{name}")
    return path


def workdir(prefix: str) -> Path:
    """A fresh temporary folder for converted or simulated datasets."""
    return Path(tempfile.mkdtemp(prefix=f"leadrank-{prefix}-"))


def fmt(value: Any, digits: int = 3) -> str:
    """A number rounded for a table; ``None``/NaN as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def verdict(value: float | None, target: float, op: str = ">=") -> str:
    """``reached`` or ``not reached`` for ``value op target`` (``n/a`` for a missing value)."""
    if value is None or not math.isfinite(float(value)):
        return "n/a (not measurable)"
    ok = {">=": value >= target, "<=": value <= target, ">": value > target, "<": value < target}[
        op
    ]
    return "**reached**" if ok else "**not reached**"


def md_table(rows: Sequence[Sequence[Any]], header: Sequence[str], digits: int = 3) -> str:
    """A Markdown table; numbers are formatted with :func:`fmt`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [c if isinstance(c, str) else fmt(c, digits) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def show(text: str) -> None:
    """Render Markdown text in the notebook (plain print outside IPython)."""
    try:
        import importlib

        ipd: Any = importlib.import_module("IPython.display")
        ipd.display(ipd.Markdown(text))
    except ImportError:  # pragma: no cover
        print(text)


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t interval over independent runs (seeds): ``(mean, low, high)``.

    With one value the interval is the value itself.
    """
    import numpy as np
    from scipy import stats

    x = np.asarray([float(v) for v in values], dtype=float)
    m = float(x.mean())
    if x.size < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def ci_text(values: Iterable[float], digits: int = 3) -> str:
    """``mean [low, high]`` of :func:`mean_ci` as text."""
    m, lo, hi = mean_ci(values)
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
