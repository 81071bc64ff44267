"""Serving miaflow where users already are: an MCP server (research and both memories as tools) and an
OpenAI-compatible chat-completions endpoint in front of the research agent. Both share one lazily built
:class:`ResearchAgent`; the server libraries load only when a server is built.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = ["AgentConfig", "ResearchAgent", "build_mcp_server", "build_openai_app", "DEFAULT_MODEL_ID"]

_LAZY = {
    "AgentConfig": "._agent",
    "ResearchAgent": "._agent",
    "build_mcp_server": ".mcp_server",
    "build_openai_app": ".openai_server",
    "DEFAULT_MODEL_ID": ".openai_server",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
