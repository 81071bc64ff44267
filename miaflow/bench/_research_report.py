"""Figures of ``miaflow bench research`` from its per-question rows: the summary of each arm (EM, F1, gold
paragraph recall, tools, tokens, wall time and the share outside model calls, plan and answer fallbacks), the
per-question table of the first arm, and the F1 / wall-time plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import BenchReport, mean, percentile

__all__ = ["build_report", "summarise"]

_COLUMNS = ["arm", "EM", "F1", "gold para recall", "cited gold", "tool calls/q", "tokens/q", "wall s/q (p50)",
            "wall s/q (p90)", "outside model", "replans", "default plans", "memories used/q", "usable plans",
            "restated", "answer fallbacks"]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm's figures from its per-question rows."""
    wall = [r["wall_s"] for r in rows]
    return {
        "em": mean([r["em"] for r in rows]), "f1": mean([r["f1"] for r in rows]),
        "support_recall": mean([r["support_recall"] for r in rows]),
        "cited_gold": mean([float(r["cited_gold"]) for r in rows]),
        "tool_calls": mean([r["tool_calls"] for r in rows]), "tokens": mean([r["tokens"] for r in rows]),
        "wall_p50": percentile(wall, 50), "wall_p90": percentile(wall, 90),
        "outside_model_share": (sum(wall) - sum(r["model_s"] for r in rows)) / sum(wall),
        "replans": sum(r["replan"] for r in rows), "plan_fallbacks": sum(r["plan_fallback"] for r in rows),
        "memories_used": mean([r["used_memories"] for r in rows]),
        "usable_plans": 1.0 - mean([float(r["plan_fallback"]) for r in rows]),
        "restated": sum(r["restated"] for r in rows),
        "answer_fallbacks": sum(r["answer_fallbacks"] for r in rows),
    }


def _row(arm: str, s: dict[str, Any]) -> list[Any]:
    return [arm, s["em"], s["f1"], s["support_recall"], s["cited_gold"], s["tool_calls"], s["tokens"], s["wall_p50"],
            s["wall_p90"], f"{s['outside_model_share']:.1%}", s["replans"], s["plan_fallbacks"], s["memories_used"],
            f"{s['usable_plans']:.0%}", s["restated"], s["answer_fallbacks"]]


def build_report(out: Path | None, config: dict[str, Any], measured: dict[str, dict[str, Any]], *,
                 n_questions: int) -> BenchReport:
    """The report of a run: ``measured`` maps each arm to its ``{"questions": rows, "memories_stored": n}``."""
    report = BenchReport("research", out, config=config)
    for arm, m in measured.items():
        report.results[f"memory_{arm}"] = m
    per_arm = {arm: m["questions"] for arm, m in measured.items()}
    summary = []
    for arm, rows in per_arm.items():
        s = summarise(rows)
        report.results[f"summary_{arm}"] = s
        summary.append(_row(arm, s))
        report.headline.update({f"em_{arm}": s["em"], f"f1_{arm}": s["f1"], f"recall_{arm}": s["support_recall"],
                                f"outside_model_{arm}": round(s["outside_model_share"], 4),
                                f"usable_plans_{arm}": round(s["usable_plans"], 3), f"restated_{arm}": s["restated"]})
    first_arm, first = next(iter(per_arm.items()))
    report.table(f"research per question ({first_arm})",
                 ["#", "answer", "gold", "EM", "F1", "gold recall", "tools", "tokens", "wall s"],
                 [[i, r["answer"][:30], r["gold"][:30], r["em"], r["f1"], r["support_recall"], r["tool_calls"],
                   r["tokens"], r["wall_s"]] for i, r in enumerate(first, 1)])
    report.table(f"research: {n_questions} {config['format']} questions, {config['model']}", _COLUMNS, summary)
    report.headline["questions"] = n_questions
    report.plot("research.png", lambda fig: _draw(fig, per_arm))
    return report


def _draw(fig: Any, per_arm: dict[str, list[dict[str, Any]]]) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    names = list(per_arm)
    x = range(len(per_arm[names[0]]))
    width = 0.8 / len(names)
    for j, m in enumerate(names):
        ax1.bar([i + j * width for i in x], [r["f1"] for r in per_arm[m]], width, label=m)
    ax1.set_xticks([i + width * (len(names) - 1) / 2 for i in x], [str(i + 1) for i in x])
    ax1.set_xlabel("question")
    ax1.set_ylabel("F1")
    ax1.set_title("F1 per question")
    ax1.legend()
    for j, m in enumerate(names):
        rows = per_arm[m]
        model_s = sum(r["model_s"] for r in rows)
        other = sum(r["wall_s"] for r in rows) - model_s
        ax2.bar(j, model_s, color="tab:blue", label="model calls" if j == 0 else None)
        ax2.bar(j, other, bottom=model_s, color="tab:orange", label="everything else" if j == 0 else None)
    ax2.set_xticks(range(len(names)), names)
    ax2.set_ylabel("seconds (all questions)")
    ax2.set_title("where the wall time goes")
    ax2.legend()
