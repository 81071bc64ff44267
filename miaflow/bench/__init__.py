"""Benchmarks: each ``miaflow bench NAME`` lives in ``miaflow.bench.NAME`` and exposes ``command``, a typer
command function. They report through :class:`~miaflow.bench.report.BenchReport`.
"""

from .report import BenchReport, Timer, percentile

__all__ = ["BenchReport", "Timer", "percentile"]
