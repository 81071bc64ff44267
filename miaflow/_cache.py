"""miaflow's one cache root, for everything rebuilt rather than kept: the bundled model, corpus indexes of
read-only places, the ONNX export of the embedder, GRPO scratch, benchmark data cuts and their indexes."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$MIAFLOW_CACHE`` or ``$XDG_CACHE_HOME/miaflow`` (``~/.cache/miaflow``), read at each call (tests point
    it elsewhere); not created here."""
    if os.environ.get("MIAFLOW_CACHE"):
        return Path(os.environ["MIAFLOW_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "miaflow"
