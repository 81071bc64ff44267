"""The ``miaflow`` command. Each subcommand lives in its own module under ``miaflow.cli`` and exposes
``register(app)``; benchmarks live in ``miaflow.bench.NAME`` and expose ``command``. Modules are found by listing
the package, so ``miaflow --help`` imports no heavy library.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="miaflow",
    help="Self-evolving deep-research agents: research, sessions with test-time learning, memories, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: each prints a table, writes JSON (and PNG) under --out, ends with a headline line.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _register_all() -> None:
    from .. import bench as bench_pkg
    from . import __path__ as cli_path

    for mod in sorted(pkgutil.iter_modules(cli_path), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    for mod in sorted(pkgutil.iter_modules(bench_pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{bench_pkg.__name__}.{mod.name}")
        command = getattr(module, "command", None)
        if command is not None:
            bench_app.command(name=mod.name, help=(module.__doc__ or "").strip().split("\n\n")[0])(command)


_register_all()


def main() -> None:
    from .._import_utils import offline_env

    offline_env()
    app()
