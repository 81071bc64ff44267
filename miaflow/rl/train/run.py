"""The offline training run (MIA's first stage): SFT warm start per role, then alternating GRPO, into a run folder.

Run folder layout::

    RUN/recipe.json              the recipe (a resumed run must use the same one)
    RUN/data.json                data files with their SHA-256, and examples drawn per source
    RUN/state.json               stages finished (``--resume`` skips them; a stage in progress resumes from its
                                 last checkpoint)
    RUN/executor/, RUN/planner/  each an :class:`~miaflow.rl.adapters.AdapterRegistry`: v1 = SFT, v2 = after GRPO,
                                 with metrics, config and data hashes in each version's meta.json
    RUN/work/                    trainer checkpoints and scratch
    RUN/metrics.json, RUN/curves.png   losses and rewards per step
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError
from ..adapters import AdapterRegistry, write_json_atomic
from . import data as D
from .recipe import TrainRecipe

__all__ = ["TrainRun", "train", "build_examples", "training_questions"]

log = logging.getLogger(__name__)


def _hotpot_records(recipe: TrainRecipe) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, path in enumerate(recipe.data.hotpot):
        rows = D.read_jsonl(path)
        if i == 0 and recipe.data.exclude_last:
            rows = rows[: -recipe.data.exclude_last]
        for r in rows:
            rid = r.get("id")
            if rid is None:  # nothing to tell it from a repeat by: kept
                out.append(r)
            elif str(rid) not in seen:
                seen.add(str(rid))
                out.append(r)
    return out


def _saver(model: Any) -> Callable[[Path], None]:
    """``save(folder)`` for :meth:`AdapterRegistry.add`: writes ``model``'s adapter files there."""
    return lambda folder: model.save_pretrained(str(folder))


def build_examples(recipe: TrainRecipe) -> dict[str, list[D.SFTExample]]:
    """The SFT examples of each role, drawn with the recipe's seed."""
    rng = random.Random(recipe.seed)
    hotpot = _hotpot_records(recipe)
    out: dict[str, list[D.SFTExample]] = {}
    if "executor" in recipe.roles:
        n = recipe.executor_sft.examples
        reader = D.hotpot_reader_examples(hotpot, seed=recipe.seed, chars=recipe.passage_chars)
        squad: list[D.SFTExample] = []
        if recipe.data.squad:
            squad_rows = [r for p in recipe.data.squad for r in D.read_jsonl(p)]
            rng.shuffle(squad_rows)
            squad = D.squad_reader_examples(squad_rows[: n * 2], seed=recipe.seed, chars=recipe.passage_chars)
        n_squad = min(len(squad), round(n * recipe.executor_sft.squad_share)) if squad else 0
        rng.shuffle(reader)
        picked = reader[: n - n_squad] + squad[:n_squad]
        rng.shuffle(picked)
        out["executor"] = picked
    if "planner" in recipe.roles:
        items = D.hotpot_planner_examples(hotpot)
        for p in recipe.data.musique:
            items += D.musique_planner_examples(D.read_jsonl(p))
        rng.shuffle(items)
        out["planner"] = D.planner_examples(items, seed=recipe.seed)[: recipe.planner_sft.examples]
    for role, ex in out.items():
        if not ex:
            raise InvalidInputError(f"no {role} training examples could be built from {recipe.data.all()}")
    return out


def training_questions(recipe: TrainRecipe) -> tuple[list[Any], list[tuple[str, str, str]]]:
    """GRPO questions (HotpotQA records not used for validation) and the paragraphs of their records."""
    from .alternate import TrainQuestion

    rng = random.Random(recipe.seed + 1)
    hotpot = [r for r in _hotpot_records(recipe) if str(r.get("answer", "")).strip()]
    rng.shuffle(hotpot)
    chosen = hotpot[: recipe.grpo.questions]
    questions = [TrainQuestion(str(r["id"]), r["question"], (str(r["answer"]),)) for r in chosen]
    paragraphs = {t: x for r in chosen for t, x in D._hotpot_paragraphs(r)}
    return questions, [(t, t, x) for t, x in paragraphs.items()]


class TrainRun:
    """A run folder: its recipe, stage state, registries and metrics."""

    def __init__(self, root: str | Path, recipe: TrainRecipe, *, resume: bool = False):
        self.root = Path(root)
        self.recipe = recipe
        saved = self.root / "recipe.json"
        if saved.exists():
            if not resume:
                raise InvalidInputError(f"{self.root} already holds a training run; pass --resume to continue it "
                                        "or choose another --out folder")
            old = TrainRecipe.from_json(json.loads(saved.read_text()))
            if old != recipe:
                raise InvalidInputError(f"{saved} was written by a different recipe ({old.name}); resume with the "
                                        "same recipe and options, or choose another --out folder")
        self.root.mkdir(parents=True, exist_ok=True)
        recipe.save(saved)
        self.state: dict[str, Any] = json.loads((self.root / "state.json").read_text()) \
            if (self.root / "state.json").exists() else {"done": [], "metrics": {}}

    def registry(self, role: str) -> AdapterRegistry:
        return AdapterRegistry(self.root / role)

    def done(self, stage: str) -> bool:
        return stage in self.state["done"]

    def finish(self, stage: str, metrics: dict[str, Any]) -> None:
        self.state["done"].append(stage)
        self.state["metrics"][stage] = metrics
        write_json_atomic(self.root / "state.json", self.state)

    def latest(self, role: str) -> Path | None:
        reg = self.registry(role)
        v = reg.current
        return v.path


def _data_manifest(recipe: TrainRecipe, examples: dict[str, list[D.SFTExample]]) -> dict[str, Any]:
    files = {p: D.file_sha256(p) for p in recipe.data.all()}
    by_source: dict[str, dict[str, int]] = {}
    for role, ex in examples.items():
        counts: dict[str, int] = {}
        for e in ex:
            counts[e.source] = counts.get(e.source, 0) + 1
        by_source[role] = counts
    return {"files": files, "examples": by_source, "exclude_last": recipe.data.exclude_last}


def train(recipe: TrainRecipe, out: str | Path, *, model_dir: str | Path | None = None, device: str = "auto",
          resume: bool = False, progress: Callable[[str], None] | None = None) -> TrainRun:
    """Run (or continue) the offline stage; each role's registry gets one version per finished stage."""
    from ...llm.bundled import prepare_bundled_model
    from .sft import run_sft

    say = progress or (lambda m: log.info("%s", m))
    mdir = Path(model_dir) if model_dir else prepare_bundled_model()
    run = TrainRun(out, recipe, resume=resume)
    examples = build_examples(recipe)
    manifest = _data_manifest(recipe, examples)
    write_json_atomic(run.root / "data.json", manifest)
    for role, stage in (("executor", recipe.executor_sft), ("planner", recipe.planner_sft)):
        key = f"sft-{role}"
        if role not in recipe.roles or stage.max_steps == 0 or run.done(key):
            continue
        say(f"stage 1, SFT of the {role}: {len(examples[role])} examples, {stage.max_steps} steps")
        res = run_sft(role, examples[role], stage, recipe, model_dir=mdir, work_dir=run.root / "work" / key,
                      device=device, resume=resume)
        metrics = {"stage": key, "steps": res.steps, "seconds": round(res.seconds, 1), "tokens": res.tokens,
                   "tokens_per_second": round(res.tokens_per_second, 1), "loss": res.loss,
                   "losses": res.losses, "examples": len(examples[role]), "resumed_from": res.resumed_from,
                   "device": device, "data": manifest["files"]}
        run.registry(role).add(_saver(res.model), metrics=metrics)
        run.finish(key, metrics)
        say(f"{role} SFT: {res.steps} steps in {res.seconds:.0f} s, {res.tokens_per_second:.0f} tokens/s, "
            f"loss {res.loss:.3f}")
        del res
    if recipe.grpo.rounds and not run.done("grpo"):
        from ...tools.index import CorpusIndex
        from .alternate import run_alternating

        questions, paragraphs = training_questions(recipe)
        corpus = run.root / "work" / "grpo-corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        with (corpus / "corpus.jsonl").open("w", encoding="utf-8") as f:
            for did, title, text in paragraphs:
                f.write(json.dumps({"id": did, "title": title, "text": text}) + "\n")
        index = CorpusIndex.open(corpus / "corpus.jsonl", run.root / "work" / "grpo-index")
        starts = {r: p for r in recipe.roles if (p := run.latest(r)) is not None}
        say(f"stage 2, alternating GRPO: {recipe.grpo.rounds} rounds x {recipe.grpo.steps_per_round} steps per role, "
            f"{len(questions)} questions")
        t0 = time.perf_counter()
        res2 = run_alternating(recipe, questions, index, model_dir=mdir, start_adapters=starts,
                               work_dir=run.root / "work" / "grpo", device=device)
        for role, model in res2.models.items():
            secs = res2.seconds[role]
            rewards = res2.rewards[role]
            m = {"stage": "grpo", "steps": res2.steps.get(role, 0), "seconds": round(secs, 1),
                 "tokens": res2.tokens[role], "tokens_per_second": round(res2.tokens[role] / secs, 1) if secs else 0.0,
                 "rewards": rewards, "mean_reward": round(sum(rewards) / len(rewards), 3) if rewards else None,
                 "losses": res2.losses[role],
                 "zero_variance_groups": res2.zero_variance[role], "device": device}
            run.registry(role).add(_saver(model), metrics=m)
        run.finish("grpo", {"seconds": round(time.perf_counter() - t0, 1),
                            "rewards": dict(res2.rewards), "losses": dict(res2.losses)})
    write_json_atomic(run.root / "metrics.json", run.state["metrics"])
    _plot(run)
    return run


def _plot(run: TrainRun) -> None:
    """Loss curves of the SFT stages and mean group reward per GRPO step, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = run.state["metrics"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, v in m.items():
        if key.startswith("sft-") and v.get("losses"):
            xs, ys = zip(*v["losses"], strict=True)
            axes[0].plot(xs, ys, label=key)
    axes[0].set_title("SFT loss")
    axes[0].set_xlabel("step")
    axes[0].legend()
    for role, rs in (m.get("grpo", {}).get("rewards") or {}).items():
        axes[1].plot(range(1, len(rs) + 1), rs, marker="o", label=role)
    axes[1].set_title("GRPO mean group reward")
    axes[1].set_xlabel("step")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(run.root / "curves.png", dpi=90)
    plt.close(fig)
