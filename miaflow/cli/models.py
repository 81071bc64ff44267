"""``miaflow models prepare|check``: convert the bundled model once, then prove generation and embeddings work."""

from __future__ import annotations

from pathlib import Path

import typer

models_app = typer.Typer(help="The bundled model and embedder: prepare (convert once) and check.", no_args_is_help=True)


@models_app.command("prepare")
def prepare(
    target: Path = typer.Option(None, "--target", help="Folder for the converted model (default: the user cache)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if a complete copy exists."),
) -> None:
    """Convert the bundled SmolLM2-135M-Instruct GGUF into a trainable safetensors folder, and export the bundled
    embedder for ONNX Runtime (both idempotent)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..llm.bundled import prepare_bundled_model
    from ..memory.embeddings import prepare_onnx_embedder

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("preparing bundled model", total=1.0)

        def report(stage: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=stage)

        path = prepare_bundled_model(target, progress=report, force=force)
        emb_task = bar.add_task("exporting the embedder to ONNX", total=1.0)

        def report_emb(stage: str, fraction: float) -> None:
            bar.update(emb_task, completed=fraction, description=f"embedder: {stage}")

        onnx_path = prepare_onnx_embedder(force=force, progress=report_emb)
    typer.echo(f"bundled model ready at {path}")
    typer.echo(f"ONNX embedder ready at {onnx_path}")


@models_app.command("check")
def check(
    model: str = typer.Option(None, "--model", help="'local' (default), a model folder, or an OpenAI-compatible URL."),
) -> None:
    """Load the model, generate, embed, and print timings."""
    import time

    from rich.console import Console
    from rich.table import Table

    from ..llm import load_chat_model
    from ..memory.embeddings import default_embedder

    console = Console()
    rows = []
    t0 = time.perf_counter()
    llm = load_chat_model(model)
    rows.append(("load model", f"{time.perf_counter() - t0:.2f} s", llm.name))
    res = llm.chat("In one sentence, what is a search engine?", max_tokens=48)
    tps = res.completion_tokens / res.seconds if res.seconds else float("nan")
    rows.append(("generate (greedy)", f"{res.seconds:.2f} s", f"{res.completion_tokens} tokens, {tps:.1f} tok/s"))
    res4 = llm.chat("Name one planet.", n=4, temperature=0.8, max_tokens=16, seed=0)
    rows.append(("sample n=4 (one call)", f"{res4.seconds:.2f} s", f"{len(res4.completions)} completions"))
    emb = default_embedder()
    t0 = time.perf_counter()
    emb.embed(["warm up"])
    rows.append(("load embedder", f"{time.perf_counter() - t0:.2f} s", f"dim {emb.dim}, {emb.backend} backend"))
    sentences = [f"sentence number {i} about research agents" for i in range(256)]
    t0 = time.perf_counter()
    emb.embed(sentences)
    dt = time.perf_counter() - t0
    rows.append(("embed 256 sentences", f"{dt:.2f} s", f"{len(sentences) / dt:.0f} sentences/s"))
    table = Table(title="miaflow models check")
    for col in ("step", "time", "detail"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print(f"answer: {res.text!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
