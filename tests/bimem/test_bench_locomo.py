"""The LoCoMo benchmark end to end on a tiny LoCoMo-format file written here (not the dev data), and the light
import of the package."""

from __future__ import annotations

import json
import subprocess
import sys

from miaflow.bench.locomo import command, locomo_f1, turns_recall

from .conftest import CONVERSATION


def _locomo_file(path):
    conv = {"speaker_a": "Ann", "speaker_b": "Tom"}
    for s in (1, 2, 3):
        turns = [m for m in CONVERSATION if m["session"] == s]
        conv[f"session_{s}_date_time"] = turns[0]["time"]
        conv[f"session_{s}"] = [{"speaker": m["speaker"], "dia_id": m["id"], "text": m["text"]} for m in turns]
    qa = [
        {"question": "Where does Pixel's owner live?", "answer": "Lisbon", "evidence": ["D1:3", "D3:1"], "category": 1},
        {"question": "When did Ann make a blue vase?", "answer": "May 2023", "evidence": ["D2:6"], "category": 2},
        {"question": "What does Tom's cousin own?", "answer": "a bakery", "evidence": ["D:3:3"], "category": 4},
        {"question": "What is Tom's dog called?", "adversarial_answer": "Pixel", "evidence": ["D3:1"], "category": 5},
        {"question": "Unanswerable?", "answer": "x", "evidence": ["D"], "category": 4},
    ]
    path.write_text(json.dumps([{"sample_id": "tiny", "conversation": conv, "qa": qa}]))
    return path


def test_bench_locomo_writes_report(tmp_path, embedder, capsys):
    data = _locomo_file(tmp_path / "tiny.json")
    out = tmp_path / "out"
    command(data=data, out=out, modes="graph,flat,top_down,bottom_up", conversations=0, sessions=0, model=None,
            answer_mode="graph", max_answers=0, llm_ingest=False, store=None, torch_threads=0)
    payload = json.loads((out / "locomo.json").read_text())
    assert (out / "locomo_recall_by_category.png").stat().st_size > 0
    res = payload["results"]
    assert set(res["recall"]) == {"bm25", "dense", "bimem-graph", "bimem-flat", "bimem-top_down", "bimem-bottom_up"}
    assert res["skipped_no_evidence"] == 1 and res["questions"]["multi-hop"] == 1
    assert res["recall"]["bimem-graph"]["recall@20"]["cats 1-4"] == 1.0  # 16 turns: everything fits in 20
    assert res["ingest"]["turns"] == len(CONVERSATION) and res["ingest"]["llm_calls"] == 0
    assert res["ingest"]["extraction_fallbacks"] == 0
    assert "locomo: bimem-graph_recall10_1to4=" in capsys.readouterr().out


def test_scoring_helpers():
    assert turns_recall(["a", "b", "a", "c"], {"c"}, 2) == 0.0
    assert turns_recall(["a", "b", "a", "c"], {"c"}, 3) == 1.0
    assert locomo_f1("No information available.", "", 5) == 1.0
    assert locomo_f1("Pixel", "", 5) == 0.0
    assert locomo_f1("Lisbon, Porto", "Lisbon, Faro", 1) == 0.5
    assert locomo_f1("pottery", "pottery; ceramics", 3) == 1.0


def test_import_is_light():
    code = ("import sys, miaflow.memory.bimem as b, miaflow.bench.locomo; b.BiMemConfig(); b.Turn; b.load_locomo; "
            "heavy = [m for m in ('torch', 'chromadb', 'networkx', 'sentence_transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_locomo_answer_f1_with_a_model(tmp_path, embedder, monkeypatch):
    import miaflow.llm
    from miaflow.testing import FakeChatModel

    def answer(msgs, cfg):
        question = msgs[-1]["content"].rsplit("Question:", 1)[1]
        return "Lisbon" if "Pixel" in question else "No information available"

    fake = FakeChatModel(answer)
    monkeypatch.setattr(miaflow.llm, "load_chat_model", lambda spec: fake, raising=False)
    out = tmp_path / "out"
    command(data=_locomo_file(tmp_path / "tiny.json"), out=out, modes="graph", conversations=1, sessions=0,
            model="fake", answer_mode="graph", max_answers=0, llm_ingest=False, store=None, torch_threads=0)
    f1 = json.loads((out / "locomo.json").read_text())["results"]["answer_f1"]
    assert f1["multi-hop"]["f1"] == 1.0  # "Lisbon" for the Pixel question
    assert f1["temporal"]["f1"] == 0.0
    assert f1["adversarial"]["f1"] == 1.0  # abstained
    assert len(fake.calls) == 5
    # evenly spaced sample of the questions; first sessions only (the questions whose evidence lies in them)
    fake.calls.clear()
    command(data=_locomo_file(tmp_path / "tiny.json"), out=out, modes="graph", conversations=1, sessions=2,
            model="fake", answer_mode="graph", max_answers=1, llm_ingest=False, store=None, torch_threads=0)
    res = json.loads((out / "locomo.json").read_text())["results"]
    assert res["ingest"]["turns"] == 12 and res["questions"]["temporal"] == 1
    assert sum(res["questions"].values()) == 1 and len(fake.calls) == 1
