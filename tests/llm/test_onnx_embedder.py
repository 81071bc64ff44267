"""The ONNX Runtime backend of the bundled embedder: same vectors as torch, an export that is made once and never
used half-written, and the per-embedder thread setting."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from miaflow.errors import InvalidInputError
from miaflow.memory import _onnx
from miaflow.memory.embeddings import Embedder, EmbedderConfig, bundled_embedder_path, prepare_onnx_embedder


@pytest.fixture(scope="module")
def export_dir():
    """The export in the user cache (`make setup` made it; made here otherwise)."""
    return prepare_onnx_embedder()


def _varied_sentences(n: int = 300) -> list[str]:
    rng = random.Random(13)
    words = ("the agent searched corpus for evidence about memory Paris Eiffel tower banana quarterly tax filings "
             "research graph query recall who when where did Caroline Melanie adopt paint 2023 May").split()
    odd = ["", " ", "   \n\t ", "a", "?", "!!!", "42", "日本語のテキストです。", "Ünïcödé façade — naïve café",
           "emoji 😀🚀🔥 only", "Ελληνικά και русский текст", "مرحبا بالعالم", "x" * 3000,
           " ".join(words * 40), "URL https://example.org/a?b=c&d=e#f", "tab\tseparated\tvalues", "\u200b\u00a0zero"]
    out = list(odd)
    while len(out) < n:
        k = rng.choice([1, 2, 3, 5, 8, 13, 30, 80])
        s = " ".join(rng.choice(words) for _ in range(k))
        out.append(s.capitalize() + rng.choice([".", "?", "!", "", " ñ", " 中文", "..."]))
    return out


def test_onnx_vectors_match_torch(export_dir):
    texts = _varied_sentences(300)
    onnx = Embedder(backend="onnx", query_cache_size=0)
    torch_emb = Embedder(backend="torch", query_cache_size=0)
    assert onnx.backend == "onnx" and torch_emb.backend == "torch"
    a, b = onnx.embed(texts), torch_emb.embed(texts)
    assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(axis=1)
    worst = int(cos.argmin())
    assert cos.min() >= 0.99, f"cosine {cos.min():.4f} on {texts[worst][:60]!r}"
    assert cos.mean() >= 0.999
    # single texts (the query path) agree with the same texts embedded in a batch
    singles = np.stack([onnx.embed([t])[0] for t in texts[:20]])
    assert np.allclose(singles, a[:20], atol=1e-4)


def test_auto_uses_onnx_only_when_a_complete_export_exists(export_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MIAFLOW_CACHE", str(tmp_path))
    target = _onnx.onnx_export_dir()
    assert target.parent.parent == tmp_path
    assert Embedder().backend == "torch"  # no export in this cache
    # a half-written export (model file cut short, no marker) is never used
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes((export_dir / "model.onnx").read_bytes()[:1000])
    assert Embedder().backend == "torch"
    # a marker from another copy of the weights (stale fingerprint) is not trusted either
    shutil.copy(export_dir / "model.onnx", target / "model.onnx")
    meta = json.loads((export_dir / "miaflow.json").read_text())
    meta["source"] = {"size": 1, "mtime_ns": 1}
    (target / "miaflow.json").write_text(json.dumps(meta))
    assert not _onnx.onnx_export_ready(target, bundled_embedder_path())
    assert Embedder().backend == "torch"
    shutil.copy(export_dir / "miaflow.json", target / "miaflow.json")
    emb = Embedder()
    assert emb.backend == "onnx"
    assert emb.embed(["A cat sits on the mat."]).shape == (1, 384)


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    """An export that fails after writing part of the graph leaves neither the target nor a temporary folder."""
    import torch

    def broken_export(module, args, f, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a graph")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    target = tmp_path / "models" / "emb-onnx"
    with pytest.raises(RuntimeError, match="disk full"):
        _onnx.export_onnx(bundled_embedder_path(), target)
    assert not target.exists()
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.slow
def test_export_is_made_once(tmp_path):
    source = bundled_embedder_path()
    target = _onnx.export_onnx(source, tmp_path / "emb-onnx")
    assert _onnx.onnx_export_ready(target, source)
    stamp = (target / "model.onnx").stat().st_mtime_ns
    assert _onnx.export_onnx(source, target) == target
    assert (target / "model.onnx").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["emb-onnx"]


def test_thread_setting_reaches_each_backend(export_dir):
    import torch

    emb = Embedder(backend="onnx", threads=1)
    assert emb.backend == "onnx"
    assert emb._onnx.session.get_session_options().intra_op_num_threads == 1
    before = torch.get_num_threads()
    t = Embedder(backend="torch", threads=1, query_cache_size=0)
    t.embed(["one", "two"])
    assert torch.get_num_threads() == before  # restored after the call


def test_config_rejects_bad_values_and_onnx_for_other_models(tmp_path):
    with pytest.raises(InvalidInputError, match="backend"):
        EmbedderConfig(backend="tensorrt")
    with pytest.raises(InvalidInputError, match="threads"):
        EmbedderConfig(threads=-1)
    with pytest.raises(InvalidInputError, match="query_cache_size"):
        Embedder(query_cache_size=-5)
    with pytest.raises(InvalidInputError, match="bundled embedder only"):
        _ = Embedder(tmp_path, backend="onnx").backend
