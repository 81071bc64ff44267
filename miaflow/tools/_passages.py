"""Splitting long documents into passages, so the embedder (which reads ~256 word pieces) sees all of them.

Short documents (HotpotQA paragraphs) stay one passage. Longer ones are packed from their blank-line separated
paragraphs up to ``max_words`` words; a paragraph longer than that is cut into word windows, and its remainder
starts the next passage. Search ranks passages
and reports each document once, at its best passage.
"""

from __future__ import annotations

__all__ = ["split_passages"]


def split_passages(text: str, max_words: int = 200) -> list[str]:
    r"""Passages of at most ``max_words`` words covering ``text`` in order.

    >>> split_passages("one two three", max_words=2)
    ['one two', 'three']
    >>> split_passages("short text")
    ['short text']
    >>> split_passages("a b c\n\nd e", max_words=2)
    ['a b', 'c', 'd e']
    >>> split_passages("a b c\n\nd", max_words=2)
    ['a b', 'c\n\nd']
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
        if len(words) > max_words:  # full windows; the rest may share a passage with what follows
            cut = len(words) - len(words) % max_words
            passages.extend(" ".join(words[s : s + max_words]) for s in range(0, cut, max_words))
            words = words[cut:]
            if not words:
                continue
            para = " ".join(words)
        current.append(para)
        count += len(words)
    if current:
        passages.append("\n\n".join(current))
    return passages
