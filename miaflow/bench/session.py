"""Test-time learning benchmark: three arms on the same question stream (frozen; memory with Q-values; memory +
GRPO), accuracy per window and per epoch (learning-curve PNG), held-back accuracy of each adapter version, GRPO
step time and tokens/s, share of zero-variance groups, and answering latency while a training step runs vs idle."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from .report import BenchReport, Timer, mean, write_json

__all__ = ["command", "run_bench"]


def command(
    data: Path = typer.Option(None, "--data", help="HotpotQA (.jsonl) or MuSiQue file; default: the shipped sample."),
    format: str = typer.Option("hotpotqa", "--format", help="hotpotqa, musique or jsonl."),  # noqa: A002
    limit: int = typer.Option(6, "--limit", min=1, help="Questions in the stream."),
    epochs: int = typer.Option(2, "--epochs", min=1, help="Passes over the stream."),
    heldback: int = typer.Option(2, "--heldback", min=0, help="Questions after the stream that gate versions."),
    group_size: int = typer.Option(4, "--group-size", min=2, help="Plans per question."),
    window: int = typer.Option(3, "--window", min=1, help="Questions per accuracy window."),
    arms: str = typer.Option("frozen,memory,grpo", "--arms", help="Comma-separated subset of the three arms."),
    reflect: bool = typer.Option(False, "--reflect/--no-reflect", help="Reflect and maybe replan (slower)."),
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for session.json and the PNG."),
) -> None:
    """Sessions benchmark: frozen vs memory vs memory + GRPO on the same questions."""
    run_bench(data=data, format=format, limit=limit, epochs=epochs, heldback=heldback, group_size=group_size,
              window=window, arms=arms, reflect=reflect, out=out)


def _subset(data: Path, fmt: str, n: int, out: Path) -> Path:
    """The first n records of a JSONL data file (so the corpus is only their paragraphs)."""
    from .._io import atomic_write_text

    if data.suffix != ".jsonl":
        return data
    lines = [x for x in data.read_text(encoding="utf-8").splitlines() if x.strip()][:n]
    path = out / f"data-{data.stem}-{n}.jsonl"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


@dataclass
class _Setup:
    """What every arm shares: the questions, the corpus and its index, the model and the run settings."""

    data: Path
    corpus: Path
    stream: list[Any]
    held: list[Any]
    index: Any
    chat: Any
    research: Any
    grpo: Any
    seconds: dict[str, float]


def prepare(*, data: Path | None, format: str, limit: int, heldback: int, group_size: int,  # noqa: A002
            reflect: bool, run_dir: Path, chat: Any = None) -> _Setup:
    """Load the stream and held-back questions, index their corpus in the run folder and load the model."""
    from ..agents import ExecutorConfig, PlannerConfig
    from ..rl.grpo import GRPOSettings
    from ..tools import CorpusIndex
    from ..workflows import ResearchConfig
    from ..workflows.session import load_session_questions

    if data is None:
        from ..tools.sample import sample_corpus_path, sample_questions_path

        data, corpus, format = sample_questions_path(), sample_corpus_path(), "jsonl"
    else:
        data = _subset(Path(data).expanduser().resolve(), format, limit + heldback, run_dir)
        corpus = data
    qs = load_session_questions(data, format=format, limit=limit + heldback)
    with Timer() as t_index:
        index = CorpusIndex.open(corpus, run_dir / "index", format=format if format != "jsonl" else "auto")
    with Timer() as t_model:
        if chat is None:
            from ..llm import LocalChatModel

            chat = LocalChatModel()
    rc = ResearchConfig(planner=PlannerConfig(max_tokens=96), executor=ExecutorConfig(answer_max_tokens=24),
                        reflect=reflect)
    grpo = GRPOSettings(num_generations=group_size, max_completion_length=128, learning_rate=5e-4)
    return _Setup(data=data, corpus=corpus, stream=qs[:limit], held=qs[limit:limit + heldback], index=index,
                  chat=chat, research=rc, grpo=grpo, seconds={"index": t_index.seconds, "model": t_model.seconds})


def run_arm(setup: _Setup, arm: str, *, group_size: int, epochs: int, window: int, run_dir: Path) -> dict[str, Any]:
    """One arm over the stream in a session of its own; the GRPO worker (grpo arm) drains what is still buffered
    at the end, so every group is used once."""
    from ..rl.worker import WorkerConfig
    from ..workflows.session import SessionConfig, SessionSpec, build_session

    spec = SessionSpec(session=SessionConfig(group_size=group_size, epochs=epochs, window=window,
                                             learn=arm == "grpo", remember=arm != "frozen"),
                       research=setup.research, grpo=setup.grpo if arm == "grpo" else None,
                       worker=WorkerConfig(poll_seconds=0.5), use_memory=arm != "frozen")
    sess = build_session(setup.corpus, run_dir / arm, spec, chat=setup.chat, index=setup.index, heldback=setup.held)
    with Timer() as t:
        summary = sess.run(setup.stream)
    if sess.worker is not None:
        sess.worker.drain()
        summary = sess.summary()
    steps = [e.step for e in (sess.worker.events if sess.worker else []) if e.kind == "step_end"]
    outs = summary.outcomes
    busy = [o.seconds for o in outs if o.training]
    idle = [o.seconds for o in outs if not o.training]
    return {
        "accuracy_by_epoch": summary.accuracy_by_epoch, "accuracy_by_window": summary.accuracy_by_window,
        "gold_accuracy": mean([o.gold_accuracy for o in outs if o.gold_accuracy is not None]),
        "buffer": summary.buffer, "versions": summary.adapter_versions, "wall_s": t.seconds,
        "grpo_steps": len(steps), "step_s": mean([s.seconds for s in steps]),
        "step_tokens_per_s": mean([s.tokens_per_second for s in steps]),
        "answer_s_idle": mean(idle), "answer_s_training": mean(busy), "answers_during_training": len(busy),
        "outcomes": [{"epoch": o.epoch, "index": o.index, "qid": o.qid, "accuracy": o.accuracy,
                      "rewards": o.rewards, "zero_variance": o.zero_variance, "seconds": o.seconds,
                      "training": o.training, "adapter": o.adapter_version, "answers": o.answers}
                     for o in outs],
    }


def run_bench(*, data: Path | None = None, format: str = "hotpotqa", limit: int = 6, epochs: int = 2,  # noqa: A002
              heldback: int = 2, group_size: int = 4, window: int = 3, arms: str = "frozen,memory,grpo",
              reflect: bool = False, out: Path | None = Path("bench-out"), chat: Any = None) -> dict:
    """Prepare, run every arm on the same questions, report."""
    from .._import_utils import offline_env
    from ..errors import InvalidInputError

    offline_env()
    wanted = [a.strip() for a in arms.split(",") if a.strip()]
    if not wanted or any(a not in ("frozen", "memory", "grpo") for a in wanted):
        raise InvalidInputError(f"--arms takes frozen, memory, grpo; got {arms!r}")
    out = Path(out or "bench-out")
    run_dir = out / f"session-run-{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = prepare(data=data, format=format, limit=limit, heldback=heldback, group_size=group_size,
                    reflect=reflect, run_dir=run_dir, chat=chat)
    grpo = setup.grpo
    config = {"data": str(setup.data), "format": format, "limit": limit, "heldback": heldback, "epochs": epochs,
              "group_size": group_size, "arms": wanted, "reflect": reflect, "model": getattr(setup.chat, "name", "?"),
              "corpus_docs": len(setup.index), "index_seconds": setup.seconds["index"],
              "model_load_seconds": setup.seconds["model"],
              "grpo": {"lr": grpo.learning_rate, "lora_r": grpo.lora_r, "max_completion_length": grpo.max_completion_length}}
    per_arm = {arm: run_arm(setup, arm, group_size=group_size, epochs=epochs, window=window, run_dir=run_dir)
               for arm in wanted}
    report = build_report(out, config, per_arm, epochs=epochs, window=window, limit=limit)
    write_json(run_dir / "arms.json", per_arm)
    return report.finish()


# ---------------------------------------------------------------------------------------------- report
def build_report(out: Path | None, config: dict[str, Any], per_arm: dict[str, Any], *, epochs: int, window: int,
                 limit: int) -> BenchReport:
    report = BenchReport("session", out, config=config)
    report.results["arms"] = per_arm
    report.table("accuracy by epoch (mean judged accuracy over the group's plans)",
                 ["arm"] + [f"epoch {e + 1}" for e in range(epochs)] + ["zero-variance groups", "wall s"],
                 [[a] + [round(x, 3) for x in r["accuracy_by_epoch"]] + [
                     f"{r['buffer']['zero_variance']}/{r['buffer']['total']}", round(r["wall_s"], 1)]
                  for a, r in per_arm.items()])
    nwin = max(len(r["accuracy_by_window"]) for r in per_arm.values())
    report.table(f"accuracy by window of {window} questions (epochs concatenated)", ["arm"] + [f"w{i + 1}" for i in range(nwin)],
                 [[a] + [round(x, 3) for x in r["accuracy_by_window"]] for a, r in per_arm.items()])
    if "grpo" in per_arm:
        g = per_arm["grpo"]
        report.table("adapter versions (held-back accuracy gates promotion)",
                     ["version", "status", "held-back acc", "loss", "step s", "tokens/s"],
                     [[v["name"], v["status"], v.get("held_back"), v.get("loss"), v.get("step_seconds"),
                       v.get("tokens_per_second")] for v in g["versions"]])
        report.table("GRPO and answering latency", ["metric", "value"], [
            ["GRPO steps", g["grpo_steps"]], ["step seconds (mean)", g["step_s"]],
            ["step tokens/s (prompt+completion)", g["step_tokens_per_s"]],
            ["answer s, idle", g["answer_s_idle"]], ["answer s, while a step runs", g["answer_s_training"]],
            ["answers while training", g["answers_during_training"]],
            ["zero-variance share", g["buffer"]["zero_variance_share"]]])
    title = f"miaflow session: {config['model']}, {limit} questions x {epochs} epochs"
    report.plot("session_learning_curve.png", lambda fig: _draw(fig, per_arm, window, title))
    for a, r in per_arm.items():
        report.headline[f"{a}_acc_last_epoch"] = r["accuracy_by_epoch"][-1]
    if "grpo" in per_arm:
        g = per_arm["grpo"]
        report.headline.update(grpo_steps=g["grpo_steps"], step_s=g["step_s"],
                               versions=len(g["versions"]) - 1,
                               promoted=sum(v["status"] == "promoted" for v in g["versions"]),
                               zero_var_share=g["buffer"]["zero_variance_share"])
    return report


def _draw(fig: Any, per_arm: dict[str, Any], window: int, title: str) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    for a, r in per_arm.items():
        xs = [window * (i + 1) for i in range(len(r["accuracy_by_window"]))]
        ax1.plot(xs, r["accuracy_by_window"], marker="o", label=a)
        ax2.plot(range(1, len(r["accuracy_by_epoch"]) + 1), r["accuracy_by_epoch"], marker="s", label=a)
    ax1.set_xlabel("questions answered")
    ax1.set_ylabel(f"accuracy (window of {window})")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    for ax in (ax1, ax2):
        ax.set_ylim(-0.05, 1.05)
        ax.legend()
    fig.suptitle(title)
