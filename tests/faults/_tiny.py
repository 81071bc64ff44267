"""A tiny corpus with the CorpusIndex search/open API and a scripted model, for workflow-level fault tests."""

from __future__ import annotations

from dataclasses import dataclass

from miaflow._text import tokenize
from miaflow.errors import ToolError

DOCS = {
    "band": ("Tinted Windows (band)", "Tinted Windows was a supergroup. Their first performance was in Tulsa."),
    "paris": ("Paris", "Paris is the capital of France."),
}
Q = "Where was the first performance of the band Tinted Windows?"


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str
    source: str = ""


class TinyIndex:
    def search(self, query: str, k: int = 5) -> list[Hit]:
        q = set(tokenize(query))
        scored = sorted(((len(q & set(tokenize(t + " " + x))), d) for d, (t, x) in DOCS.items()), reverse=True)
        return [Hit(d, DOCS[d][0], DOCS[d][1], float(s)) for s, d in scored[:k] if s > 0]

    def open_document(self, doc_id: str) -> Doc:
        if doc_id not in DOCS:
            raise ToolError(f"unknown document id {doc_id!r}")
        return Doc(id=doc_id, title=DOCS[doc_id][0], text=DOCS[doc_id][1])


def scripted(messages, cfg) -> str:  # noqa: ANN001
    text = messages[-1]["content"]
    if "numbered list" in text or "supplementary plan" in text:
        return "1. Search for the band Tinted Windows first performance\n2. Answer the question"
    if "Reply with one word: yes (replan)" in text:
        return "no"
    if "Documents:" in text and "<answer>" in text:
        return "Tulsa [band]"
    if "score from 0" in text:
        return "8"
    if "correct or incorrect" in text:
        return "correct"
    return "ok"
