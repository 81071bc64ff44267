"""The bundled MiniLM as an ONNX graph, run by ONNX Runtime: the same vectors as sentence-transformers, faster.

``export_onnx`` traces the transformer once (``torch.onnx.export``) with sentence-transformers' mean pooling and
L2 normalisation inside the graph, checks the graph against torch on a few sentences, and moves the folder into
place with one rename, so a half-written export is never used and running it again is a no-op.
``OnnxEncoder`` then needs only ``onnxruntime``, ``tokenizers`` and numpy: torch is not imported to embed.

Weights stay float32: int8 dynamic quantisation was measured at cosine 0.97-0.98 to the torch vectors on short
texts (a single ``?``), under the 0.99 the stores are tuned for, so it is not offered.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._import_utils import offline_env, require
from .._io import atomic_folder
from ..errors import MemoryStoreError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ONNX_EXPORT_NAME", "onnx_export_dir", "onnx_export_ready", "export_onnx", "OnnxEncoder"]

ONNX_EXPORT_NAME = "all-MiniLM-L6-v2-onnx"
_FORMAT_VERSION = 1
_MODEL_FILE = "model.onnx"
_MARKER = "miaflow.json"
_OPSET = 17
_CHECK_TEXTS = ["", "A cat sits on the mat.", "Ünïcödé café 日本語 😀", "research " * 300]


def onnx_export_dir() -> Path:
    """Where the export of the bundled embedder lives: beside the converted chat model in the user cache."""
    from .._cache import cache_dir

    return cache_dir() / "models" / ONNX_EXPORT_NAME


def _fingerprint(source: Path) -> dict[str, int]:
    """Size and mtime of the source weights: a reinstalled or changed model makes the export stale."""
    st = (source / "model.safetensors").stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def onnx_export_ready(target: Path, source: Path) -> bool:
    """True when ``target`` holds a complete export of the model in ``source``."""
    marker = target / _MARKER
    if not marker.exists() or not (target / _MODEL_FILE).exists():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    try:
        fp = _fingerprint(source)
    except OSError:
        return False
    return meta.get("format") == _FORMAT_VERSION and meta.get("source") == fp


def _max_seq_length(source: Path) -> int:
    """sentence-transformers' truncation length for this model (256 for all-MiniLM-L6-v2)."""
    try:
        return int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 256


def _pooled_module(model: Any) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        """The transformer, then mean pooling over real tokens, then L2 normalisation (as sentence-transformers)."""

        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled(model).eval()


def export_onnx(
    source: Path,
    target: Path | None = None,
    *,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> Path:
    """Export the sentence-transformers model in ``source`` to ``target`` once; return ``target``.

    Idempotent (a complete, current export is returned as it is) and atomic (written to a temporary folder,
    checked, then renamed into place; a concurrent export that finished first is kept).
    """
    target = Path(target) if target else onnx_export_dir()
    report = progress or (lambda stage, frac: None)
    if onnx_export_ready(target, source) and not force:
        report("ready", 1.0)
        return target
    offline_env()
    require("onnx")
    require("onnxruntime")
    require("transformers")
    import torch
    from transformers import AutoModel

    report("loading the embedder", 0.1)
    # eager attention traces to plain ops that every ONNX Runtime build runs
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager", dtype=torch.float32)
    module = _pooled_module(model)
    # a finished concurrent export of the same source may have taken the place first: keep it
    with atomic_folder(target, taken=lambda: onnx_export_ready(target, source)) as tmp:
        report("exporting to ONNX", 0.3)
        ids = torch.ones((2, 8), dtype=torch.long)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation notes about the TorchScript exporter
            torch.onnx.export(
                module, (ids, torch.ones_like(ids)), str(tmp / _MODEL_FILE),
                input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              "embedding": {0: "batch"}},
                opset_version=_OPSET, dynamo=False,
            )
        report("checking the export against torch", 0.8)
        _check_export(tmp, source, module)
        (tmp / _MARKER).write_text(json.dumps({"format": _FORMAT_VERSION, "source": _fingerprint(source),
                                               "source_path": str(source), "opset": _OPSET}))
    report("ready", 1.0)
    return target


def _check_export(folder: Path, source: Path, module: Any) -> None:
    """Refuse an export whose vectors differ from torch's (cosine < 0.999 on any check sentence)."""
    import numpy as np
    import torch

    enc = OnnxEncoder(source, folder, threads=1)
    got = enc.encode(_CHECK_TEXTS)
    ids, mask = enc.tokenize(_CHECK_TEXTS)
    with torch.no_grad():
        want = module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    cos = (got * want).sum(1)
    if not np.all(cos >= 0.999):
        raise MemoryStoreError(f"the ONNX export of {source} does not reproduce torch's vectors (cosine {cos.min():.4f})")


class OnnxEncoder:
    """Tokenise with ``tokenizers`` and run the exported graph; vectors come out pooled and normalised."""

    def __init__(self, source: Path, folder: Path, *, threads: int = 0):
        require("onnxruntime")
        require("tokenizers")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.max_length = _max_seq_length(source)
        tok = Tokenizer.from_file(str(source / "tokenizer.json"))
        tok.enable_truncation(self.max_length)
        pad_id = tok.token_to_id("[PAD]")
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        self.tokenizer = tok
        opts = ort.SessionOptions()
        if threads > 0:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # idle worker threads wait instead of spinning, so they do not steal the cores from other work
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(folder / _MODEL_FILE), opts, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded to the longest text (texts stripped, as sentence-transformers)."""
        import numpy as np

        enc = self.tokenizer.encode_batch([str(t).strip() for t in texts])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return ids, mask

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(n, dim) float32 unit vectors; texts are batched by length so little padding is computed."""
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            ids, mask = self.tokenize([texts[i] for i in idx])
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out
