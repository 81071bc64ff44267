"""What every ``miaflow bench NAME`` produces: rich tables on the terminal, one JSON file, optional PNG plots, and
a closing line of headline figures (``NAME: key=value, ...``) that scripts can grep.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BenchReport", "percentile", "percentiles", "mean", "Timer", "cached_file", "write_json"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def percentiles(values: Sequence[float], *qs: float) -> tuple[float, ...]:
    """Several percentiles of one list (``percentiles(ms, 50, 95)``).

    >>> percentiles([1.0, 2.0, 3.0, 4.0, 5.0], 50, 100)
    (3.0, 5.0)
    """
    return tuple(percentile(values, q) for q in qs)


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; NaN for no values (a figure with nothing measured shows as nan, not as 0).

    >>> mean([1, 2]), mean([])
    (1.5, nan)
    """
    return float(sum(values) / len(values)) if values else float("nan")


def cached_file(cache: Path, name: str, filename: str, payload: str) -> Path:
    """``payload`` written once under ``cache/<name>-<hash of payload>/<filename>`` (atomically) and reused by
    later runs: the data files a benchmark cuts out of a bigger one (its corpus is then only their paragraphs),
    so that an index built on them in the same cache folder is reused too."""
    import hashlib

    from .._io import atomic_write_text

    tag = hashlib.sha1(payload.encode()).hexdigest()[:10]
    path = Path(cache) / f"{name}-{tag}" / filename
    if not path.exists():
        atomic_write_text(path, payload)
    return path


def write_json(path: Path, data: Any) -> None:
    """A side file of raw measurements (a run's per-task rows) beside the report, written atomically, indented,
    unknown objects as text."""
    from .._io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, default=str))


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (or ``t.ms``)."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start

    @property
    def ms(self) -> float:
        return 1000.0 * self.seconds


@dataclass
class _Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class BenchReport:
    """Collects a benchmark's results and writes them out in one place."""

    name: str
    out_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tables: list[_Table] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    headline: dict[str, Any] = field(default_factory=dict)
    plots: list[tuple[str, Callable[[Any], None]]] = field(default_factory=list)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tables.append(_Table(title, list(columns), [list(r) for r in rows]))

    def plot(self, filename: str, draw: Callable[[Any], None]) -> None:
        """Register a PNG; ``draw(ax_or_fig)`` receives a matplotlib Figure."""
        self.plots.append((filename, draw))

    def finish(self, console: Any = None) -> dict[str, Any]:
        """Print tables and the headline line; write JSON and PNGs under ``out_dir``. Returns the JSON payload."""
        from rich.console import Console
        from rich.table import Table

        from .._io import atomic_write_text

        console = console or Console()
        for t in self.tables:
            table = Table(title=t.title)
            for c in t.columns:
                table.add_column(str(c))
            for r in t.rows:
                table.add_row(*[_fmt(v) for v in r])
            console.print(table)
        payload = {
            "bench": self.name,
            "config": self.config,
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in self.tables],
            "results": self.results,
            "headline": self.headline,
        }
        if self.out_dir is not None:
            out = Path(self.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / f"{self.name}.json", json.dumps(payload, indent=2, default=_json_default))
            for filename, draw in self.plots:
                import matplotlib

                matplotlib.use("Agg")
                import matplotlib.pyplot as plt

                fig = plt.figure(figsize=(8, 4.5))
                draw(fig)
                fig.tight_layout()
                fig.savefig(out / filename, dpi=100)
                plt.close(fig)
            console.print(f"wrote {out / (self.name + '.json')}" + (f" and {len(self.plots)} plot(s)" if self.plots else ""))
        console.print(f"{self.name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.headline.items()), soft_wrap=True)
        return payload


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
