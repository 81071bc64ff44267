"""What a GRPO group costs next to one research run: per question, the wall time of one run, of an executor group
of n (one plan, its searches once, n answers sampled in one batched ``generate``) and of a planner group of n (n
plans in one call, each executed), on the same questions in the same process.

The modes are interleaved per question, in a rotating order, after one untimed warm-up run, so model loading,
caches and machine load fall on all of them alike. Each call's process CPU time is kept beside its wall time: on
a machine shared with other work the wall time stretches with their load, the CPU time does not. Nothing is remembered (no store), so every mode sees
the same state. Simplified: one pass per question and mode; the ratio is of the summed wall times.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

__all__ = ["command", "measure"]

MODES = ("single", "executor_group", "planner_group")


def measure(wf: Any, questions: list[tuple[str, str]], n: int, console: Any = None,
            modes: tuple[str, ...] = MODES) -> dict[str, list[dict]]:
    """{mode: [{wall, cpu, calls, answers}]} for each (question, gold), the modes rotated per question."""
    from ..rl.loop import run_group

    def single(q: str, gold: str, tid: str) -> tuple[int, list[str]]:
        r = wf.run(q, gold=gold, task_id=tid, remember=False)
        return int(r.tokens.get("calls", 0)), [r.answer]

    def executor_group(q: str, gold: str, tid: str) -> tuple[int, list[str]]:
        roll = run_group(wf, q, n, gold=gold, task_id=tid, role="executor")
        return int(roll.results[0].tokens.get("calls", 0)), list(roll.answers)

    def planner_group(q: str, gold: str, tid: str) -> tuple[int, list[str]]:
        res = wf.run_group(q, n=n, gold=gold, task_id=tid)
        return int(res[0].tokens.get("calls", 0)), [r.answer for r in res]

    fns = {"single": single, "executor_group": executor_group, "planner_group": planner_group}
    if questions:
        single(questions[0][0], questions[0][1], "warmup")
    out: dict[str, list[dict]] = {m: [] for m in modes}
    for i, (q, gold) in enumerate(questions):
        k = i % len(modes)
        order = modes[k:] + modes[:k]
        for mode in order:
            t0, c0 = time.perf_counter(), time.process_time()
            calls, answers = fns[mode](q, gold, f"speed-{mode}-{i}")
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            out[mode].append({"question": q, "wall": wall, "cpu": cpu, "calls": calls, "answers": answers})
            if console is not None:
                console.print(f"q{i + 1} {mode}: {wall:.2f}s wall, {cpu:.2f}s cpu, {calls} model calls")
    return out


def command(
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for group_speed.json."),
    questions: int = typer.Option(5, "--questions", "-n", min=1, max=30, help="Questions of the shipped sample."),
    group_size: int = typer.Option(4, "--group-size", min=2, max=16, help="Samples per group."),
    model: str = typer.Option("local", "--model", help="Model spec, as for `miaflow research`."),
    reflect: bool = typer.Option(False, "--reflect/--no-reflect", help="Reflect (and maybe replan) in the single "
                                                                       "run and the planner group."),
    planner_group: bool = typer.Option(False, "--planner-group/--no-planner-group", help="Also time a planner "
                                       "group of n (n full runs: about n times the cost of the others)."),
) -> None:
    """Wall time of a group of n (executor group: n answers in one batched call; planner group: n plans) vs one
    research run, same questions, same process."""
    from rich.console import Console

    from .._import_utils import offline_env
    from ..agents import ExecutorConfig, PlannerConfig
    from ..llm import load_chat_model
    from ..tools import CorpusIndex
    from ..tools.sample import sample_corpus_path, sample_questions
    from ..workflows import ResearchConfig, ResearchWorkflow
    from .report import BenchReport, mean

    offline_env()
    console = Console()
    qs = [(q.question, q.answer) for q in sample_questions(questions)]
    index = CorpusIndex.open(sample_corpus_path())
    chat = load_chat_model(model)
    research = ResearchConfig(planner=PlannerConfig(max_tokens=96), executor=ExecutorConfig(answer_max_tokens=24),
                              reflect=reflect)
    wf = ResearchWorkflow(planner=chat, index=index, store=None, config=research)
    report = BenchReport("group_speed", out, config={"questions": len(qs), "group_size": group_size,
                                                     "model": getattr(chat, "name", model), "reflect": reflect})
    modes = MODES if planner_group else MODES[:2]
    runs = measure(wf, qs, group_size, console, modes)
    total = {m: sum(r["wall"] for r in rs) for m, rs in runs.items()}
    cpu = {m: sum(r["cpu"] for r in rs) for m, rs in runs.items()}
    rows = []
    for m, rs in runs.items():
        rows.append([m, total[m], mean([r["wall"] for r in rs]), mean([float(r["calls"]) for r in rs]),
                     total[m] / total["single"] if total["single"] else float("nan"), cpu[m],
                     cpu[m] / cpu["single"] if cpu["single"] else float("nan")])
    report.table(f"time per question ({len(qs)} questions, groups of {group_size})",
                 ["mode", "wall s total", "wall s mean", "model calls", "wall / single", "cpu s total",
                  "cpu / single"], rows)
    report.results = runs
    report.headline = {"single_s_mean": round(mean([r["wall"] for r in runs["single"]]), 3),
                       "executor_group_ratio": round(total["executor_group"] / total["single"], 3),
                       "executor_group_cpu_ratio": round(cpu["executor_group"] / cpu["single"], 3),
                       "group_size": group_size, "questions": len(qs)}
    if planner_group:
        report.headline["planner_group_ratio"] = round(total["planner_group"] / total["single"], 3)
    report.finish(console)
