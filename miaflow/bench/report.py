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

__all__ = ["BenchReport", "percentile", "Timer"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


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
            (out / f"{self.name}.json").write_text(json.dumps(payload, indent=2, default=_json_default))
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
