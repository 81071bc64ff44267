"""``miaflow session QUESTIONS.jsonl --corpus DIR [--learn]``: answer a stream of questions with a group of plans
each, remember every run, and (with ``--learn``) train the planner's LoRA adapter with GRPO in the background.
Everything lives under ``--state`` so a killed session continues with ``--resume``.

``--model URL`` answers through an OpenAI-compatible server (vLLM); with ``--learn`` the planner adapter trains
here from ``--base-model`` (the server's base model, default the bundled one) and each promoted version is loaded
into the server (``VLLMAdapterPublisher``), where the next answers select it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]


def _setting(name: str) -> tuple[object, str]:
    """(default, help) of a :class:`~miaflow.workflows.SessionConfig` field: each option is documented once, on
    the setting it fills."""
    from dataclasses import fields

    from ..workflows.session import SessionConfig

    f = next(f for f in fields(SessionConfig) if f.name == name)
    return f.default, f.metadata["help"]


def _option(name: str, *decls: str, minimum: int | None = None) -> Any:
    default, help_ = _setting(name)
    return typer.Option(default, *decls, help=help_, min=minimum)


def register(app: typer.Typer) -> None:
    @app.command("session")
    def session(
        questions: Path = typer.Argument(..., help="Questions: miaflow JSONL (question, answer), HotpotQA or MuSiQue."),
        corpus: Path = typer.Option(..., "--corpus", help="Folder of .txt/.md files, a JSONL file, or QA data."),
        learn: bool = _option("learn", "--learn"),
        judge: str = _option("judge", "--judge"),
        epochs: int = _option("epochs", "--epochs", minimum=1),
        resume: bool = typer.Option(False, "--resume", help="Continue the session stored under --state (same "
                                    "question list only)."),
        restart: bool = typer.Option(False, "--restart", help="Start the question stream over in a --state folder "
                                     "that holds a session (memory, buffer and adapters are kept)."),
        state: Path = typer.Option(Path("miaflow-session"), "--state", help="Folder holding the session's state."),
        group_size: int = _option("group_size", "--group-size", minimum=1),
        heldback: int = typer.Option(0, "--heldback", min=0, help="Questions kept back (the last N) to gate "
                                     "adapter versions; 0 promotes every version."),
        no_memory: bool = typer.Option(False, "--no-memory", help="Answer without the trajectory memory."),
        limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N questions."),
        fmt: str = typer.Option("auto", "--format", help="auto, jsonl, hotpotqa or musique."),
        model: str = typer.Option(None, "--model", help="'local' (the bundled SmolLM2, the default), a model "
                                  "folder, or an OpenAI-compatible server URL http://host:port/v1 (optionally /v1/NAME) (vLLM with "
                                  "--enable-lora to learn)."),
        base_model: Path = typer.Option(None, "--base-model", help="With --model URL and --learn: folder of the "
                                        "server's base model, where the planner adapter trains (default: the "
                                        "bundled model folder)."),
        finish_training: bool = _option("finish_training",
                                        "--finish-training/--no-finish-training"),
    ) -> None:
        """Run a continual test-time learning session over a question stream."""
        from rich.console import Console

        from ..errors import MiaflowError

        console = Console()
        try:
            _run(console, questions, corpus, learn, judge, epochs, resume, restart, state, group_size, heldback,
                 no_memory, limit, fmt, model, base_model, finish_training)
        except MiaflowError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None
        except ValueError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None


def _run(console, questions, corpus, learn, judge, epochs, resume, restart, state, group_size, heldback,  # noqa: ANN001
         no_memory, limit, fmt, model, base_model, finish_training) -> None:
    from .._import_utils import offline_env
    from ..errors import InvalidInputError
    from ..workflows.session import SessionConfig, SessionSpec, build_session, load_session_questions

    offline_env()
    qs = load_session_questions(questions, format=fmt, limit=(limit + heldback) if limit else None)
    held = qs[len(qs) - heldback:] if heldback else []
    stream = qs[: len(qs) - heldback] if heldback else qs
    spec = SessionSpec(session=SessionConfig(group_size=group_size, judge=judge, epochs=epochs, learn=learn,
                                             remember=not no_memory, finish_training=finish_training),
                       use_memory=not no_memory)
    served = _is_url(model)
    if base_model is not None and not served:
        raise InvalidInputError("--base-model is for a session on a served model (--model URL); a local model "
                                "trains its own weights")
    chat: Any = None
    if model:
        from ..llm import load_chat_model

        chat = load_chat_model(model)
    wiring: dict[str, Any] = {}
    if served and learn:
        wiring = _served_learning(chat, base_model, spec.planner_adapter or "planner", bool(held))
        console.print(f"answering through {chat.base_url}; the planner adapter trains here from "
                      f"{wiring['model_dir']} and each promoted version is published to the server")
    with console.status("loading the model, the corpus index and the memory..."):
        sess = build_session(corpus, state, spec, chat=chat, heldback=held, **wiring)

    def show(o) -> None:  # noqa: ANN001
        flag = " [yellow](training)[/]" if o.training else ""
        console.print(f"e{o.epoch} #{o.index} {o.qid}: acc={o.accuracy:.2f} rewards="
                      f"{[round(r, 2) for r in o.rewards]}{' zero-variance' if o.zero_variance else ''} "
                      f"{o.seconds:.1f}s adapter={o.adapter_version}{flag}")

    sess.on_outcome = show
    summary = sess.run(stream, resume=resume, restart=restart)
    console.print(f"accuracy by epoch: {[round(a, 3) for a in summary.accuracy_by_epoch]}")
    console.print(f"accuracy by window: {[round(a, 3) for a in summary.accuracy_by_window]}")
    console.print(f"buffer: {summary.buffer}")
    for v in summary.adapter_versions:
        console.print(f"adapter {v['name']}: {v['status']} held_back={v.get('held_back')} loss={v.get('loss')}")
    if summary.learning is not None:
        ln = summary.learning
        console.print(f"training: {ln['steps']} GRPO steps, {ln['promoted']} versions promoted, "
                      f"{ln['rejected']} rejected, {ln['errors']} failed steps")
        if ln["gave_up"]:
            console.print(f"[bold yellow]warning:[/] training stopped after repeated failures ({ln['error']}); "
                          "the answers above were given without learning from that point")
        elif ln["error"]:
            console.print(f"[bold yellow]warning:[/] a GRPO step failed: {ln['error']}")
    if wiring:
        console.print(f"serving on {chat.base_url}: {wiring['publisher'].published or 'the base model'}")
    console.print(f"state kept in {state} (continue with --resume)")


def _is_url(spec: str | None) -> bool:
    return spec is not None and spec.startswith(("http://", "https://"))


def _served_learning(chat: Any, base_model: Path | None, adapter: str, gated: bool) -> dict[str, Any]:
    """What a session on a served model learns with: the base model folder it trains from, a publisher that
    loads promoted versions into the server and routes ``adapter`` to them, and one that loads versions to gate
    under their own names."""
    from ..errors import InvalidInputError
    from ..rl.publish import VLLMAdapterPublisher

    if base_model is None:
        from ..llm.bundled import prepare_bundled_model

        base_model = prepare_bundled_model()
    base_model = base_model.expanduser()
    if not (base_model / "config.json").is_file():
        raise InvalidInputError(f"--base-model {base_model} is not a model folder (no config.json): give the "
                                "folder of the base model the server serves")
    key = chat.client.api_key if chat.client.api_key != "EMPTY" else None
    publisher = VLLMAdapterPublisher(chat.base_url, prefix=adapter, api_key=key, chat_model=chat,
                                     adapter_name=adapter)
    evaluate = VLLMAdapterPublisher(chat.base_url, prefix=f"{adapter}-eval", api_key=key) if gated else None
    return {"model_dir": base_model, "publisher": publisher, "eval_publisher": evaluate}
