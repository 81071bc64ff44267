"""Figures of ``miaflow bench learn`` from its per-task rows: accuracy per epoch, per window and per split with the
mean and spread over seeds, the cumulative success curve, tokens and wall time per task, memories used, the
Q-value histogram, where misleading cases rank, and the held-back score of the GRPO versions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import BenchReport

__all__ = ["build_report", "arm_figures", "spread"]


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def spread(xs: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of per-seed figures (NaN dropped)."""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": m, "std": sd, "min": min(xs), "max": max(xs), "n": len(xs)}


def arm_figures(run: dict[str, Any], *, epochs: int, window: int) -> dict[str, Any]:
    """The figures of one (arm, seed) run."""
    rows = run["rows"]
    rep = [r for r in rows if r["split"] != "transfer"]
    acc = [r["accuracy"] for r in rows]
    f: dict[str, Any] = {f"epoch{e + 1}": _mean([r["accuracy"] for r in rep if r["epoch"] == e])
                         for e in range(epochs)}
    f["transfer"] = _mean([r["accuracy"] for r in rows if r["split"] == "transfer"])
    f["windows"] = [_mean([r["accuracy"] for r in rep[i:i + window]]) for i in range(0, len(rep), window)]
    f["cumulative"] = [sum(acc[:i + 1]) / (i + 1) for i in range(len(acc))]
    for key in ("tokens", "wall_s", "memories_used", "em", "f1"):
        f[key] = _mean([r[key] for r in rows])
    drows = run.get("distractor_rows", [])
    f["distractor_source"] = _mean([r["accuracy"] for r in drows if r["split"] == "distractor"])
    f["distractor_near_dup"] = _mean([r["accuracy"] for r in drows if r["split"] == "near_duplicate"])
    f["distractor_near_dup_last"] = _mean([r["accuracy"] for r in drows
                                           if r["split"] == "near_duplicate" and r["epoch"] == epochs - 1])
    mis = run.get("mislead", [])
    f["mislead_shown"] = _mean([float(m["rank"] is not None) for m in mis]) if mis else float("nan")
    f["mislead_rank"] = _mean([m["rank"] for m in mis if m["rank"] is not None])
    f["mislead_q"] = _mean([m["q_value"] for m in mis if m["q_value"] is not None])
    return f


_SCALARS = ("epoch{}", "transfer", "distractor_source", "distractor_near_dup", "distractor_near_dup_last",
            "mislead_shown", "mislead_rank", "mislead_q", "tokens", "wall_s", "memories_used", "em", "f1")


def _pm(s: dict[str, float]) -> str:
    return "n/a" if math.isnan(s["mean"]) else f"{s['mean']:.3f} ± {s['std']:.3f}"


def build_report(out: Path, *, config: dict[str, Any], runs: list[dict[str, Any]], speed: dict[str, Any] | None,
                 epochs: int, window: int) -> BenchReport:
    """Tables, plots and headline of a finished benchmark (call ``finish`` on the result)."""
    report = BenchReport("learn", out, config=config)
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    figs = {a: [arm_figures(r, epochs=epochs, window=window) for r in runs if r["arm"] == a] for a in arms}
    keys = [k.format(e + 1) for k in _SCALARS for e in (range(epochs) if "{}" in k else [0])]
    summary = {a: {k: spread([f[k] for f in fs]) for k in keys} for a, fs in figs.items()}
    report.results.update(runs=runs, per_seed=figs, summary=summary, speed=speed)
    nseeds = max(len(fs) for fs in figs.values())
    report.table(f"accuracy per arm (mean ± std over {nseeds} seed(s); accuracy = share of the group's answers "
                 "with F1 >= 0.5)",
                 ["arm"] + [f"epoch {e + 1}" for e in range(epochs)] + ["transfer", "tokens/task (runs of the plans)", "wall s/task",
                                                                          "memories used/task"],
                 [[a] + [_pm(s[f"epoch{e + 1}"]) for e in range(epochs)] + [
                     _pm(s["transfer"]), s["tokens"]["mean"], s["wall_s"]["mean"], s["memories_used"]["mean"]]
                  for a, s in summary.items()])
    nwin = max((len(f["windows"]) for fs in figs.values() for f in fs), default=0)
    report.table(f"accuracy per window of {window} tasks (epochs concatenated, mean over seeds)",
                 ["arm"] + [f"w{i + 1}" for i in range(nwin)],
                 [[a] + [_mean([f["windows"][i] for f in fs if i < len(f["windows"])]) for i in range(nwin)]
                  for a, fs in figs.items()])
    if any(r.get("distractor_rows") for r in runs):
        report.table("distractor stream: near-duplicates whose recalled case misleads",
                     ["arm", "source acc", "near-dup acc", f"near-dup acc epoch {epochs}", "source case recalled",
                      "its rank", "its Q"],
                     [[a, _pm(s["distractor_source"]), _pm(s["distractor_near_dup"]),
                       _pm(s["distractor_near_dup_last"]), s["mislead_shown"]["mean"], s["mislead_rank"]["mean"],
                       s["mislead_q"]["mean"]] for a, s in summary.items()])
    if speed:
        report.table(f"one research run vs one group of {speed['group_size']} (same questions, same run)",
                     ["questions", "single s/question", "group s/question", "group / single"],
                     [[len(speed["single_s"]), _mean(speed["single_s"]), _mean(speed["group_s"]), speed["ratio"]]])
    versions = [(r["seed"], v) for r in runs for v in r.get("versions", [])]
    if versions:
        report.table("memory+grpo adapter versions (held-back score gates promotion)",
                     ["seed", "version", "status", "held-back", "loss"],
                     [[s, v.get("name"), v.get("status"), v.get("held_back"), v.get("loss")] for s, v in versions])
    _headline(report, summary, epochs, runs, speed)
    _plots(report, runs, figs, epochs, config)
    return report


def _paired_gap(runs: list[dict[str, Any]], figs_key: str, a: str, b: str, epochs: int, window: int
                ) -> dict[str, float]:
    by = {(r["arm"], r["seed"]): arm_figures(r, epochs=epochs, window=window)[figs_key] for r in runs}
    seeds = sorted({s for (arm, s) in by if arm == a} & {s for (arm, s) in by if arm == b})
    return spread([by[(a, s)] - by[(b, s)] for s in seeds])


def _headline(report: BenchReport, summary: dict[str, Any], epochs: int, runs: list[dict[str, Any]],
              speed: dict[str, Any] | None) -> None:
    last = f"epoch{epochs}"
    h = report.headline
    for a, s in summary.items():
        h[f"{a}_{last}"] = s[last]["mean"]
        h[f"{a}_{last}_std"] = s[last]["std"]
    window = int(report.config.get("window", 10))
    if "memory" in summary and "frozen" in summary:
        gap = _paired_gap(runs, last, "memory", "frozen", epochs, window)
        h["memory_minus_frozen"] = gap["mean"]
        h["gap_std"] = gap["std"]
        h["transfer_memory_minus_frozen"] = _paired_gap(runs, "transfer", "memory", "frozen", epochs, window)["mean"]
    if "memory" in summary and "similarity" in summary:
        h["near_dup_memory_minus_similarity"] = _paired_gap(runs, "distractor_near_dup", "memory", "similarity",
                                                            epochs, window)["mean"]
        h["mislead_rank_memory"] = summary["memory"]["mislead_rank"]["mean"]
        h["mislead_rank_similarity"] = summary["similarity"]["mislead_rank"]["mean"]
    if speed:
        h["group_vs_single"] = speed["ratio"]
    h["seeds"] = max(s[last]["n"] for s in summary.values())


def _plots(report: BenchReport, runs: list[dict[str, Any]], figs: dict[str, list[dict[str, Any]]], epochs: int,
           config: dict[str, Any]) -> None:
    stream = len(config.get("stream", []))

    def curve(fig: Any) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        for a, fs in figs.items():
            n = min(len(f["cumulative"]) for f in fs)
            if not n:
                continue
            xs = list(range(1, n + 1))
            cols = [[f["cumulative"][i] for f in fs] for i in range(n)]
            (line,) = ax1.plot(xs, [_mean(c) for c in cols], label=a)
            ax1.fill_between(xs, [min(c) for c in cols], [max(c) for c in cols], alpha=0.15,
                             color=line.get_color())
        for e in range(1, epochs + 1):
            ax1.axvline(e * stream + 0.5, color="grey", lw=0.6, ls=":")
        ax1.set_xlabel("tasks answered (epochs, then transfer)")
        ax1.set_ylabel("cumulative success")
        ax1.set_ylim(-0.05, 1.05)
        ax1.legend(fontsize=8)
        names = [f"epoch {e + 1}" for e in range(epochs)] + ["transfer", "near-dup"]
        keys = [f"epoch{e + 1}" for e in range(epochs)] + ["transfer", "distractor_near_dup"]
        width = 0.8 / max(len(figs), 1)
        for j, (a, fs) in enumerate(figs.items()):
            s = [spread([f[k] for f in fs]) for k in keys]
            ax2.bar([i + j * width for i in range(len(keys))], [0 if math.isnan(x["mean"]) else x["mean"] for x in s],
                    width, yerr=[0 if math.isnan(x["std"]) else x["std"] for x in s], label=a, capsize=2)
        ax2.set_xticks([i + width * (len(figs) - 1) / 2 for i in range(len(keys))], names, fontsize=8)
        ax2.set_ylabel("accuracy (mean ± std over seeds)")
        ax2.set_ylim(0, 1.05)
        ax2.legend(fontsize=8)
        fig.suptitle(f"miaflow bench learn: {config.get('model')}, {stream} tasks x {epochs} epochs")

    report.plot("learn_curve.png", curve)

    def qhist(fig: Any) -> None:
        ax = fig.subplots()
        for a in figs:
            qs = [q for r in runs if r["arm"] == a for q in r.get("q_values", [])]
            if qs:
                ax.hist(qs, bins=20, range=(-1, 1), alpha=0.5, label=f"{a} ({len(qs)} memories)")
        ax.set_xlabel("Q-value of stored memories (end of the stream, all seeds)")
        ax.set_ylabel("memories")
        ax.legend(fontsize=8)

    report.plot("learn_qvalues.png", qhist)
    held = [r for r in runs if any(v.get("held_back") is not None for v in r.get("versions", []))]
    if held:
        def heldback(fig: Any) -> None:
            ax = fig.subplots()
            for r in held:
                vs = [v for v in r["versions"] if v.get("held_back") is not None]
                ax.plot(range(len(vs)), [v["held_back"] for v in vs], marker="o", label=f"seed {r['seed']}")
                for i, v in enumerate(vs):
                    if v.get("status") == "promoted":
                        ax.plot(i, v["held_back"], "k*", ms=9)
            ax.set_xlabel("adapter version (order of training; * promoted)")
            ax.set_ylabel("held-back score")
            ax.legend(fontsize=8)

        report.plot("learn_heldback.png", heldback)
