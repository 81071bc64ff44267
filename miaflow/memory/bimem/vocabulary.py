"""A conversation's vocabulary with word vectors, for semantic query expansion.

Why: questions about a kind of thing ("What pets does Nate have?") are answered by turns that name instances
("this is Max! [a dog]", "my turtles"). Neither BM25 nor a sentence embedding of the whole turn bridges that well.
Each word the conversation uses is embedded once (by the same sentence embedder, so no other model is needed), and
a rare query word is expanded into the conversation's words closest to it ("pets" -> "dog", "animal", "cat"); BM25
over those words, weighted by their similarity, joins the lexical half of the hybrid seed score.

Only the conversation's own words are candidates, so an expansion always matches something that was said. Common
query words (in more than ``expansion_max_df`` of the facts), speakers' names and calendar words are not expanded.
Stored per conversation as ``vocab.npz`` (float16 vectors, the words as UTF-8 JSON) beside the JSON state; it is
derived data: opening the memory re-embeds missing words and drops words no fact uses any more.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..._text import tokenize

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Vocabulary", "words_of"]

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], "np.ndarray"]


def words_of(text: str) -> set[str]:
    """The words of ``text`` that get a vector: alphabetic, 3+ letters, not stop words (lower-cased)."""
    return {w for w in tokenize(text) if len(w) >= 3 and w.isalpha()}


class Vocabulary:
    """Words with unit vectors; ``neighbors`` finds the words closest to a vector."""

    def __init__(self) -> None:
        import numpy as np

        self.words: list[str] = []
        self.index: dict[str, int] = {}
        self._rows: list[np.ndarray] = []
        self._matrix: np.ndarray | None = np.zeros((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def missing(self, words: Iterable[str]) -> list[str]:
        return sorted(w for w in set(words) if w not in self.index)

    def add(self, words: list[str], vectors: np.ndarray) -> None:
        for w, v in zip(words, vectors, strict=True):
            if w not in self.index:
                self.index[w] = len(self.words)
                self.words.append(w)
                self._rows.append(v)
        self._matrix = None

    def embed_missing(self, words: Iterable[str], embed: Embed) -> list[str]:
        """Embed and add the words not yet known; returns them."""
        new = self.missing(words)
        if new:
            self.add(new, embed(new))
        return new

    def retain(self, keep: set[str]) -> int:
        """Drop every word not in ``keep`` (after a deletion); returns how many were dropped."""
        pairs = [(w, self._rows[i]) for w, i in self.index.items() if w in keep]
        dropped = len(self.words) - len(pairs)
        if dropped:
            self.words, self.index, self._rows = [], {}, []
            self._matrix = None
            for w, v in pairs:
                self.index[w] = len(self.words)
                self.words.append(w)
                self._rows.append(v)
        return dropped

    @property
    def matrix(self) -> np.ndarray:
        import numpy as np

        if self._matrix is None:
            self._matrix = (np.stack(self._rows).astype(np.float32) if self._rows
                            else np.zeros((0, 0), dtype=np.float32))
        return self._matrix

    def vector(self, word: str) -> np.ndarray | None:
        i = self.index.get(word)
        return None if i is None else self.matrix[i]

    def neighbors(self, vector: np.ndarray, k: int, threshold: float, *, skip: Callable[[str], bool] = lambda w: False
                  ) -> list[tuple[str, float]]:
        """Up to ``k`` words with cosine >= ``threshold`` to ``vector``, best first, minus those ``skip`` rejects."""
        import numpy as np

        if not self.words:
            return []
        sims = self.matrix @ vector
        out: list[tuple[str, float]] = []
        for j in np.argsort(-sims)[: 4 * k + 8]:
            s = float(sims[j])
            if s < threshold or len(out) >= k:
                break
            if not skip(self.words[int(j)]):
                out.append((self.words[int(j)], s))
        return out

    # ------------------------------------------------------------------ files
    def save(self, path: Path) -> None:
        """Write atomically (temporary file in the same folder, fsync, rename)."""
        import numpy as np

        from ._persist import atomic_write_bytes

        buf = io.BytesIO()
        words = np.frombuffer(json.dumps(self.words, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        vecs = self.matrix.astype(np.float16) if self.words else np.zeros((0, 0), dtype=np.float16)
        np.savez(buf, words=words, vectors=vecs)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a saved vocabulary; an unreadable file gives an empty one (the caller re-embeds what is missing)."""
        import numpy as np

        voc = cls()
        try:
            with np.load(path) as z:
                words = json.loads(z["words"].tobytes().decode("utf-8"))
                vecs = z["vectors"].astype(np.float32)
            if len(words) == len(vecs):
                voc.add(list(words), vecs)
            else:
                log.warning("Bi-Mem vocabulary %s: %d words but %d vectors; re-embedding", path, len(words), len(vecs))
        except (OSError, ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as e:
            if path.exists():
                log.warning("Bi-Mem vocabulary %s is unreadable (%s); re-embedding its words", path, e)
        return voc
