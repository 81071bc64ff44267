import json
import logging

import pytest

from miaflow.errors import CorpusError
from miaflow.tools import QAExample, detect_format, load_corpus, load_questions, read_corpus
from miaflow.tools.sample import sample_corpus_path, sample_questions


def test_folder_loader_reads_text_and_markdown_recursively(corpus_dir):
    docs = {d.id: d for d in load_corpus(corpus_dir)}
    assert set(docs) == {"cooking.txt", "notice.md", "history/printing_press.txt", "history/silk_road.md",
                         "science/photosynthesis.md", "science/volcanoes.txt"}
    assert docs["science/photosynthesis.md"].title == "Photosynthesis"  # first Markdown heading
    assert docs["cooking.txt"].title == "cooking"
    assert docs["history/printing_press.txt"].text.startswith("Johannes Gutenberg")
    assert docs["cooking.txt"].source == "cooking.txt"


def test_folder_loader_skips_index_folder_and_empty_files(corpus_dir):
    (corpus_dir / ".miaflow-index").mkdir()
    (corpus_dir / ".miaflow-index" / "x.txt").write_text("not a document")
    (corpus_dir / "empty.txt").write_text("   \n")
    load = read_corpus(corpus_dir)
    assert len(load.documents) == 6
    assert load.skipped == 1 and any("empty.txt" in w for w in load.warnings)


def test_non_utf8_file_is_decoded_with_replacement_and_counted(corpus_dir, caplog):
    (corpus_dir / "latin1.txt").write_bytes("Caf\xe9 au lait in S\xe3o Paulo".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="miaflow.tools.loaders"):
        load = read_corpus(corpus_dir)
    doc = next(d for d in load.documents if d.id == "latin1.txt")
    assert doc.text == "Caf\ufffd au lait in S\ufffdo Paulo"
    assert load.decode_errors == 1
    assert any("latin1.txt" in r.getMessage() and "UTF-8" in r.getMessage() for r in caplog.records)


def test_missing_and_empty_corpora_raise_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "empty" / "blank.md").write_text("")
    (tmp_path / "empty" / "table.csv").write_text("a,b")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(tmp_path / "e.jsonl")
    with pytest.raises(CorpusError, match="Unknown corpus format"):
        load_corpus(tmp_path, format="pdf")


def test_unreadable_corpus_raises_corpus_error(tmp_path, monkeypatch):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n')

    def boom(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(bad), "read_bytes", boom)
    with pytest.raises(CorpusError, match="Cannot read"):
        load_corpus(bad)


def test_jsonl_loader(tmp_path):
    p = tmp_path / "c.jsonl"
    rows = [{"id": "d1", "title": "One", "text": "first"}, {"title": "Two", "text": "second"},
            {"text": "third, no id or title"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    docs = load_corpus(p)
    assert [(d.id, d.title, d.text) for d in docs] == [("d1", "One", "first"), ("Two", "Two", "second"),
                                                        ("3", "3", "third, no id or title")]
    assert docs[0].source == "c.jsonl:1"
    p.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(CorpusError, match="duplicate id 'd1'"):
        load_corpus(p)
    p.write_text(json.dumps(rows[0]) + "\n{broken\n")
    with pytest.raises(CorpusError, match=r"c.jsonl:2: not valid JSON"):
        load_corpus(p)


HOTPOT_HF = [
    {"id": "q1", "question": "Where was X born?", "answer": "Paris", "type": "bridge",
     "supporting_facts": {"title": ["X", "X", "Y"], "sent_id": [0, 1, 0]},
     "context": {"title": ["X", "Y"], "sentences": [["X is a painter.", " X was born in Paris."], ["Y is a city."]]}},
    {"id": "q2", "question": "Is Y a city?", "answer": "yes", "type": "comparison",
     "supporting_facts": {"title": ["Y"], "sent_id": [0]},
     "context": {"title": ["Y", "Z"], "sentences": [["Y is a city."], ["Z is a river."]]}},
]


def test_hotpotqa_hf_layout(tmp_path):
    p = tmp_path / "dev.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in HOTPOT_HF))
    assert detect_format(p) == "hotpotqa"
    docs = load_corpus(p)
    assert [d.id for d in docs] == ["X", "Y", "Z"]  # Y deduplicated across questions
    assert docs[0].text == "X is a painter. X was born in Paris."
    qs = load_questions(p)
    assert qs[0] == QAExample(id="q1", question="Where was X born?", answer="Paris", supporting_ids=("X", "Y"),
                              supporting_titles=("X", "Y"), kind="bridge")


def test_hotpotqa_original_layout(tmp_path):
    raw = [{"_id": "q1", "question": "Q?", "answer": "A", "type": "bridge",
            "supporting_facts": [["X", 0], ["Y", 0]],
            "context": [["X", ["X is a painter."]], ["Y", ["Y is a city."]]]}]
    p = tmp_path / "hotpot_dev_distractor_v1.json"
    p.write_text(json.dumps(raw))
    assert [d.id for d in load_corpus(p, format="hotpotqa")] == ["X", "Y"]
    assert load_questions(p, "hotpotqa")[0].supporting_ids == ("X", "Y")


def test_musique_questions_and_corpus_files_give_the_same_ids(tmp_path):
    paras = [{"idx": 0, "title": "Adolescence", "paragraph_text": "A book by G. Stanley Hall.", "is_supporting": True},
             {"idx": 1, "title": "Adolescence", "paragraph_text": "A stage of life.", "is_supporting": False},
             {"idx": 2, "title": "APA", "paragraph_text": "The APA publishes journals.", "is_supporting": True}]
    q = {"id": "2hop__1_2", "question": "Who?", "answer": "G. Stanley Hall", "answer_aliases": ["Hall"],
         "paragraphs": paras, "question_decomposition": [], "answerable": True}
    qfile = tmp_path / "musique.json"
    qfile.write_text(json.dumps([q]))
    cfile = tmp_path / "musique_corpus.json"
    cfile.write_text(json.dumps([{"title": p["title"], "text": p["paragraph_text"]} for p in paras]))
    assert detect_format(qfile) == "musique"
    from_questions = load_corpus(qfile)
    from_corpus = load_corpus(cfile, format="musique")
    assert [d.id for d in from_questions] == [d.id for d in from_corpus] == [d.id for d in load_corpus(cfile)]
    ids = [d.id for d in from_questions]
    assert ids[2] == "APA" and ids[0].startswith("Adolescence #") and ids[0] != ids[1]
    (ex,) = load_questions(qfile)
    assert ex.supporting_ids == (ids[0], "APA") and ex.answer_aliases == ("Hall",) and ex.kind == "2hop"



def test_shipped_sample_is_consistent():
    docs = load_corpus(sample_corpus_path())
    ids = {d.id for d in docs}
    qs = sample_questions()
    assert len(qs) == 30 and 250 <= len(docs) <= 400
    assert all(q.supporting_ids and set(q.supporting_ids) <= ids for q in qs)
    assert all(len(q.answer.split()) <= 2 for q in qs)
    assert (sample_corpus_path().parent / "ATTRIBUTION.md").read_text().count("CC BY-SA 4.0") >= 1
    assert sample_questions(limit=3) == qs[:3]


def test_unreadable_folder_raises_corpus_error(corpus_dir, monkeypatch):
    import miaflow.tools._paths as paths

    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    with pytest.raises(CorpusError, match="not readable"):
        load_corpus(corpus_dir)


def test_folder_whose_files_all_fail_to_read_is_an_empty_corpus(corpus_dir, monkeypatch):
    from pathlib import Path

    def boom(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", boom)
    with pytest.raises(CorpusError, match=r"empty.*6 files or records skipped.*Permission denied"):
        load_corpus(corpus_dir)
