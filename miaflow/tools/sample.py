"""The HotpotQA sample shipped with miaflow: 30 dev questions with short answers and their 300 paragraphs.

Used by ``miaflow demo`` and the tests. The data is HotpotQA (Yang et al., 2018; CC BY-SA 4.0), see
``miaflow/data/hotpotqa_sample/ATTRIBUTION.md``; :func:`build_sample` is how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path

from .records import QAExample

__all__ = ["sample_dir", "sample_corpus_path", "sample_questions_path", "sample_questions", "build_sample"]


def sample_dir() -> Path:
    """The folder of the shipped sample (``corpus.jsonl``, ``questions.jsonl``, ``ATTRIBUTION.md``)."""
    return Path(__file__).resolve().parents[1] / "data" / "hotpotqa_sample"


def sample_corpus_path() -> Path:
    """``corpus.jsonl`` of the sample: ``{id, title, text}`` per paragraph; the id is the Wikipedia title."""
    return sample_dir() / "corpus.jsonl"


def sample_questions_path() -> Path:
    """``questions.jsonl`` of the sample: ``{id, question, answer, supporting_ids, type}`` per question."""
    return sample_dir() / "questions.jsonl"


def sample_questions(limit: int | None = None) -> list[QAExample]:
    """The sample's questions, in order (the first ``limit`` when given)."""
    from .qa_formats import load_questions

    questions = load_questions(sample_questions_path(), "jsonl")
    return questions if limit is None else questions[:limit]


def build_sample(source: str | Path, out_dir: str | Path, *, n: int = 30, max_answer_words: int = 2) -> tuple[int, int]:
    """Write ``corpus.jsonl`` and ``questions.jsonl`` from a HotpotQA distractor file: the first ``n`` questions
    (file order) whose answer has at most ``max_answer_words`` words, with all their context paragraphs.
    Returns ``(questions, paragraphs)`` written.
    """
    from .loaders import read_records
    from .qa_formats import _hotpot_paragraphs, load_questions

    source = Path(source)
    by_id = {q.id: q for q in load_questions(source, "hotpotqa")}
    questions: list[QAExample] = []
    corpus: dict[str, str] = {}
    for where, rec in read_records(source):
        q = by_id[str(rec.get("id") or rec.get("_id") or where)]
        if len(q.answer.split()) > max_answer_words:
            continue
        questions.append(q)
        for title, text in _hotpot_paragraphs(rec, where):
            corpus.setdefault(title, text)
        if len(questions) == n:
            break
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for title, text in corpus.items():
            fh.write(json.dumps({"id": title, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (out / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for q in questions:
            fh.write(json.dumps({"id": q.id, "question": q.question, "answer": q.answer,
                                 "supporting_ids": list(q.supporting_ids), "type": q.kind}, ensure_ascii=False) + "\n")
    return len(questions), len(corpus)
