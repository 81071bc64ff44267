"""miaflow's memories as a LangGraph store (see :mod:`.store` for the mapping and the semantics)."""

from __future__ import annotations

from ._mapping import matches_filter, namespace_from_miaflow, namespace_to_miaflow
from .store import LangGraphStore

__all__ = ["LangGraphStore", "namespace_to_miaflow", "namespace_from_miaflow", "matches_filter"]
