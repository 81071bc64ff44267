"""The measure / report split of the benchmark commands: ``bench memory`` end to end at a tiny size (real store,
a bag-of-words embedder in place of MiniLM), the report parts of ``bench llm`` and ``bench session`` from given
measurements, and the shared helpers (the cached data cut, percentiles, the mean)."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np

from miaflow.bench.report import cached_file, mean, percentiles, write_json


class _BagOfWords:
    """Each word a fixed random vector; a text the normalised sum (similar questions, similar vectors)."""

    def __init__(self, *a, **k):
        self.backend = "bow"

    def embed(self, texts):
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                seed = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
                out[i] += np.random.default_rng(seed).standard_normal(32)
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


def test_bench_memory_measures_and_reports(tmp_path, monkeypatch, capsys):
    import miaflow.memory.embeddings as embeddings
    from miaflow.bench.memory import command

    monkeypatch.setattr(embeddings, "Embedder", _BagOfWords)
    out = tmp_path / "out"
    command(sizes="20,40", queries=6, updates=3, batch=15, seed=0, path=None, threads=0, perturbed_fill=True,
            out=out)
    payload = json.loads((out / "memory.json").read_text())
    sizes = payload["results"]["sizes"]
    assert list(sizes) == ["20", "40"] and sizes["20"]["fill"] == "real" and sizes["40"]["fill"] == "perturbed"
    assert sizes["20"]["written"] == 20 and sizes["40"]["written"] == 20
    assert all(s["recall_p95_ms"] >= s["recall_p50_ms"] > 0 and s["update_p50_ms"] > 0 for s in sizes.values())
    head = payload["headline"]
    assert head["size"] == 40 and head["write_per_s"] == sizes["20"]["write_per_s"]  # only real fills count
    assert payload["tables"][0]["rows"][1][1].endswith("(perturbed)")
    assert (out / "memory.png").stat().st_size > 0
    assert "memory: size=40" in capsys.readouterr().out


def test_bench_llm_report_from_measurements(tmp_path):
    from miaflow.bench.llm import build_report

    gen = {"ours": [9.0, 10.0, 11.0], "raw": [10.0, 10.0, 10.0], "batched": [30.0], "sequential": [10.0]}
    eps = {"ours": [100.0, 100.0], "raw": [100.0, 125.0], "onnx": [300.0, 400.0]}
    single = {"onnx": [4.0, 5.0, 6.0], "torch": [20.0, 20.0, 20.0]}
    payload = build_report(tmp_path, {"repeats": 3}, gen, eps, single, "onnx").finish()
    assert payload["headline"] == {"generation_ratio": 1.0, "batched_speedup": 3.0, "embedding_ratio": 0.889,
                                   "embedder_backend": "onnx", "embedding_backend_speedup": 3.5,
                                   "query_embedding_p50_ms": 5.0}
    rows = {r[0]: r for r in payload["tables"][0]["rows"]}
    assert rows["single-query embedding p50: onnx vs torch"][2:5] == [5.0, 20.0, 0.25]
    assert (tmp_path / "llm.png").exists()


def _arm(acc, versions=None):
    return {"accuracy_by_epoch": acc, "accuracy_by_window": acc, "gold_accuracy": 0.5,
            "buffer": {"zero_variance": 1, "total": 4, "zero_variance_share": 0.25}, "versions": versions or [],
            "wall_s": 12.0, "grpo_steps": 2, "step_s": 3.0, "step_tokens_per_s": 50.0, "answer_s_idle": 1.0,
            "answer_s_training": 2.0, "answers_during_training": 1, "outcomes": []}


def test_bench_session_report_from_measurements(tmp_path):
    from miaflow.bench.session import build_report

    versions = [{"name": "v0", "status": "base"}, {"name": "v1", "status": "promoted", "held_back": 0.5}]
    per_arm = {"frozen": _arm([0.2, 0.2]), "grpo": _arm([0.2, 0.6], versions)}
    payload = build_report(tmp_path, {"model": "fake"}, per_arm, epochs=2, window=3, limit=4).finish()
    assert payload["headline"] == {"frozen_acc_last_epoch": 0.2, "grpo_acc_last_epoch": 0.6, "grpo_steps": 2,
                                   "step_s": 3.0, "versions": 1, "promoted": 1, "zero_var_share": 0.25}
    assert [t["title"].split(" (")[0] for t in payload["tables"]] == [
        "accuracy by epoch", "accuracy by window of 3 questions", "adapter versions", "GRPO and answering latency"]
    assert (tmp_path / "session_learning_curve.png").exists()


def test_cached_file_is_written_once_per_content(tmp_path):
    a = cached_file(tmp_path, "cut", "data.jsonl", "one\n")
    assert a.read_text() == "one\n" and a.parent.name.startswith("cut-")
    a.write_text("touched")  # an existing cut is reused, not rewritten
    assert cached_file(tmp_path, "cut", "data.jsonl", "one\n") == a and a.read_text() == "touched"
    b = cached_file(tmp_path, "cut", "data.jsonl", "two\n")
    assert b != a and b.read_text() == "two\n"
    write_json(tmp_path / "rows.json", [{"p": tmp_path}])
    assert json.loads((tmp_path / "rows.json").read_text()) == [{"p": str(tmp_path)}]


def test_summary_helpers():
    assert percentiles([3.0, 1.0, 2.0], 0, 50, 100) == (1.0, 2.0, 3.0)
    assert mean([1.0, 2.0, 6.0]) == 3.0 and math.isnan(mean([]))
    assert all(math.isnan(x) for x in percentiles([], 50, 95))
