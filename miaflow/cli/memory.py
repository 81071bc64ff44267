"""``miaflow memory verify|repair PATH``: check stores against their manifests, and rebuild what can be rebuilt.

PATH is a trajectory store folder, a Bi-Mem folder, an experience buffer file, an adapter registry folder, or a
session's state folder (each store in it is checked). The trajectory store's vector index is rebuilt from its
durable records; the buffer keeps every group that can still be read; the registry restores its pointer and version
records from its manifest and sets damaged adapter versions aside; a Bi-Mem folder is checked by opening it (its
JSON state is the durable copy: missing vectors are embedded again, stray ones dropped). What could not be
recovered is said, never hidden.
"""

from __future__ import annotations

from pathlib import Path

import typer

memory_app = typer.Typer(help="Stores (trajectory memory, Bi-Mem, experience buffer, adapter registry): verify (check) "
                              "and repair (rebuild what can be rebuilt).", no_args_is_help=True)

_LOST_HINT = {
    "trajectory store": "restore chroma.sqlite3 from a backup to get them back",
    "experience buffer": "restore the buffer file from a backup to get them back",
    "adapter registry": "retrain, or restore the version folders from a backup",
    "Bi-Mem memory": "restore the named file from a backup, or delete the memory folder to start over",
}


def _report(console, rep, *, repaired: bool) -> None:  # noqa: ANN001
    for p in rep.problems:
        console.print(f"[red]problem:[/] {p}")
    for note in rep.notes:
        console.print(f"{rep.kind}: {note}")
    if rep.kind == "trajectory store":
        for ns, n in rep.rebuilt.items():
            console.print(f"rebuilt namespace {ns!r}: {n} record(s), vectors embedded again from their questions")
        for ns, n in rep.lost.items():
            console.print(f"[yellow]not recoverable:[/] namespace {ns!r}: {n} record(s) counted by the manifest have "
                          f"no durable copy left ({_LOST_HINT[rep.kind]})")
    else:
        if repaired and not rep.ok:
            kept = ", ".join(f"{n} {what}" for what, n in rep.rebuilt.items()) or "nothing"
            console.print(f"{rep.kind}: kept {kept}")
        for what, n in rep.lost.items():
            console.print(f"[yellow]not recoverable:[/] {rep.kind} {rep.folder}: {n} {what} ({_LOST_HINT[rep.kind]})")
    if rep.ok:
        console.print(f"{rep.folder}: ok")
    elif repaired:
        console.print(f"{rep.folder}: repaired; run `miaflow memory verify {rep.folder}` to check")


def _run(path: Path, repair: bool) -> int:
    from rich.console import Console

    from ..errors import MiaflowError
    from ..memory import _integrity

    console = Console()
    try:
        with console.status("checking..." if not repair else "repairing..."):
            reports = _integrity.check_path(path, fix=repair)
    except MiaflowError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    for rep in reports:
        _report(console, rep, repaired=repair)
    if repair:
        return 1 if any(rep.lost for rep in reports) else 0
    return 0 if all(rep.ok for rep in reports) else 1


@memory_app.command("verify")
def verify(path: Path = typer.Argument(..., help="A store folder or buffer file, or a session's state folder.")) -> None:
    """Check record counts against the manifests and that every record can be read; exit 1 on damage."""
    raise typer.Exit(_run(path, repair=False))


@memory_app.command("repair")
def repair(path: Path = typer.Argument(..., help="A store folder or buffer file, or a session's state folder.")) -> None:
    """Rebuild what can be rebuilt from the durable records; say what could not be recovered (exit 1 then)."""
    raise typer.Exit(_run(path, repair=True))


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
