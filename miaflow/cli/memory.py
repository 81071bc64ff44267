"""``miaflow memory verify|repair PATH``: check a trajectory store folder against its manifest and vector index,
and rebuild the vector index from the durable records where it can. A Bi-Mem folder (one holding ``bimem/``) is
checked by opening it: its JSON state is the durable copy, and opening re-embeds missing vectors and drops stray
ones."""

from __future__ import annotations

from pathlib import Path

import typer

memory_app = typer.Typer(help="Trajectory memory folders: verify (check) and repair (rebuild the vector index).",
                         no_args_is_help=True)


def _report(console, rep, *, repaired: bool) -> None:  # noqa: ANN001
    for p in rep.problems:
        console.print(f"[red]problem:[/] {p}")
    for ns, n in rep.rebuilt.items():
        console.print(f"rebuilt namespace {ns!r}: {n} record(s), vectors embedded again from their questions")
    for ns, n in rep.lost.items():
        console.print(f"[yellow]not recoverable:[/] namespace {ns!r}: {n} record(s) counted by the manifest have no "
                      "durable copy left (restore chroma.sqlite3 from a backup to get them back)")
    if rep.ok:
        console.print(f"{rep.folder}: ok")
    elif repaired:
        console.print(f"{rep.folder}: repaired; run `miaflow memory verify {rep.folder}` to check")


def _bimem(console, path: Path) -> int:  # noqa: ANN001
    from ..errors import MiaflowError
    from ..memory.bimem import BiMemory

    try:
        with console.status("opening the Bi-Mem memory (missing vectors are embedded again)..."):
            mem = BiMemory(path)
    except MiaflowError as e:
        console.print(f"[red]problem:[/] {e}")
        return 1
    try:
        turns = sum(len(mem.turns(c)) for c in mem.conversations())
        console.print(f"{path}: ok (Bi-Mem: {len(mem.conversations())} conversation(s), {turns} turn(s), "
                      f"{mem.vector_count()} vector(s))")
    finally:
        mem.close()
    return 0


def _run(path: Path, repair: bool) -> int:
    from rich.console import Console

    from ..errors import MiaflowError
    from ..memory import _integrity

    console = Console()
    if (path / "bimem").is_dir() and not (path / "miaflow-store.json").exists():
        return _bimem(console, path)
    try:
        with console.status("checking the store..." if not repair else "repairing the store..."):
            rep = _integrity.repair(path) if repair else _integrity.verify(path)
    except MiaflowError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    _report(console, rep, repaired=repair)
    return 0 if rep.ok or repair and not rep.lost else 1


@memory_app.command("verify")
def verify(path: Path = typer.Argument(..., help="A trajectory store folder (or a session's state folder).")) -> None:
    """Check record counts against the manifest and that every vector can be read; exit 1 on damage."""
    raise typer.Exit(_run(path, repair=False))


@memory_app.command("repair")
def repair(path: Path = typer.Argument(..., help="A trajectory store folder (or a session's state folder).")) -> None:
    """Rebuild damaged vector indexes from the stored records; say what could not be recovered."""
    raise typer.Exit(_run(path, repair=True))


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
