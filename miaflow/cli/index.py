"""``miaflow index DIR``: build or refresh the search index of a corpus and say what changed."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "index"]


def index(
    corpus: Path = typer.Argument(..., help="A folder of .txt/.md files, or a JSONL / HotpotQA / MuSiQue file."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help="Where to keep the index (default: beside "
                                          "the corpus, in .miaflow-index/)."),
    format: str = typer.Option("auto", "--format", help="auto, folder, jsonl, hotpotqa or musique."),  # noqa: A002
    query: str | None = typer.Option(None, "--query", "-q", help="Also run this search and show the top hits."),
    k: int = typer.Option(5, "--k", help="Hits to show with --query."),
) -> None:
    """Index a corpus (ChromaDB dense + BM25); only added or changed documents are embedded again."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ..errors import MiaflowError
    from ..tools import CorpusIndex

    console = Console()
    try:
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"Indexing {corpus}", total=None)
            idx = CorpusIndex.open(corpus, index_dir, format=format,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
    except MiaflowError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    s = idx.last_sync
    load = idx.load
    assert s is not None and load is not None
    console.print(f"Corpus: {load.root} ({load.format}, {len(idx)} documents)")
    console.print(f"Index:  {idx.index_dir}" + (f"  (rebuilt: {s.rebuilt})" if s.rebuilt else ""))
    console.print(f"Documents indexed: {s.indexed} (added {s.added}, changed {s.changed}), reused: {s.reused}, "
                  f"removed: {s.removed}; passages embedded: {s.passages_embedded}")
    console.print(f"Time: {s.seconds:.1f}s (embedding {s.embed_seconds:.1f}s)")
    if load.warnings:
        console.print(f"[yellow]{len(load.warnings)} warnings[/yellow] "
                      f"({load.skipped} skipped, {load.decode_errors} not UTF-8):")
        for line in load.warnings[:10]:
            console.print(f"  - {line}", markup=False)
    if query:
        from ..tools import format_hits

        console.print(format_hits(idx.search(query, k=k)), markup=False)


def register(app: typer.Typer) -> None:
    app.command(name="index")(index)
