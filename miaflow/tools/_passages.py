"""Splitting long documents into passages, so the embedder (which reads ~256 word pieces) sees all of them.

Short documents (HotpotQA paragraphs) stay one passage. Longer ones are packed from their blank-line separated
paragraphs up to ``max_words`` words; a paragraph longer than that is cut into word windows. Search ranks passages
and reports each document once, at its best passage.
"""

from __future__ import annotations

__all__ = ["split_passages"]


def split_passages(text: str, max_words: int = 200) -> list[str]:
    """Passages of at most ``max_words`` words covering ``text`` in order.

    >>> split_passages("one two three", max_words=2)
    ['one two', 'three']
    >>> split_passages("short text")
    ['short text']
    """
    if len(text.split()) <= max_words:
        return [text]
    passages: list[str] = []
    current: list[str] = []
    count = 0
    for para in (p.strip() for p in text.split("\n\n")):
        words = para.split()
        if not words:
            continue
        if count + len(words) > max_words and current:
            passages.append("\n\n".join(current))
            current, count = [], 0
        if len(words) > max_words:
            for start in range(0, len(words), max_words):
                passages.append(" ".join(words[start : start + max_words]))
            continue
        current.append(para)
        count += len(words)
    if current:
        passages.append("\n\n".join(current))
    return passages
