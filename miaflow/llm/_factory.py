"""Turn a model spec from the command line or a config into a chat model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_chat_model"]


def load_chat_model(spec: str | None = None, *, base_model_only: bool = False, **kwargs: Any) -> Any:
    """Build a chat model from ``spec``.

    - ``None``, ``"local"`` or ``"bundled"``: the bundled SmolLM2-135M-Instruct, in process, with its shipped
      trained planner / executor adapters unless ``base_model_only``.
    - a folder path: a local transformers model folder.
    - ``http(s)://host:port/v1`` : an OpenAI-compatible server, its first listed model.
    - ``http(s)://host:port/v1/NAME`` : the same server, model ``NAME`` (NAME may contain slashes).
    """
    if spec is None or spec in ("local", "bundled"):
        from .local import LocalChatModel

        return LocalChatModel(trained_adapters=not base_model_only, **kwargs)
    if spec.startswith(("http://", "https://")):
        from .openai_backend import OpenAIChatModel

        base, sep, name = spec.partition("/v1")
        if not sep:
            return OpenAIChatModel(spec, **kwargs)
        return OpenAIChatModel(base + "/v1", name.strip("/") or None, **kwargs)
    path = Path(spec).expanduser()
    if path.is_dir():
        from .local import LocalChatModel

        return LocalChatModel(path, **kwargs)
    from ..errors import InvalidInputError

    raise InvalidInputError(
        f"unknown model {spec!r}: give 'local', a model folder, or an OpenAI-compatible URL like http://host:8000/v1/NAME"
    )
