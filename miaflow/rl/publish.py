"""Putting a promoted adapter in front of users: into the serving model, in place, while it keeps answering.

- :class:`LocalAdapterPublisher`: the embedded ``LocalChatModel`` loads the version's files under a fixed adapter
  name (``load_adapter`` replaces an adapter of that name in place, under the model's lock) and makes it active.
- :class:`VLLMAdapterPublisher`: an OpenAI-compatible vLLM server started with ``--enable-lora`` (and
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) loads it through its runtime endpoint
  ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}``; clients then select it by model name. The path must be
  readable by the server (same machine or shared disk). Given the session's ``OpenAIChatModel`` it also routes
  the adapter name the workflow asks for (``"planner"``) to the version just loaded, so the next answers use it.
  The HTTP calls are tested against a loopback server that records them (and a session end to end against a
  server in a subprocess); checking them against a real vLLM needs a GPU machine.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any, Protocol

from ..errors import ModelError, ModelUnavailableError
from .adapters import AdapterVersion

__all__ = ["AdapterPublisher", "LocalAdapterPublisher", "VLLMAdapterPublisher"]

log = logging.getLogger(__name__)


class AdapterPublisher(Protocol):
    def publish(self, version: AdapterVersion) -> str | None:
        """Make ``version`` serve; return the adapter name clients should select (None: the base model)."""
        ...


class LocalAdapterPublisher:
    """Loads versions into a ``LocalChatModel`` under ``adapter_name`` (replacing the previous one in place)."""

    def __init__(self, chat_model: Any, adapter_name: str = "planner", *, activate: bool = False):
        self.chat_model = chat_model
        self.adapter_name = adapter_name
        self.activate = activate
        """Also make it the model's default adapter (otherwise callers select it per call by name)."""
        self.published: str | None = None

    def publish(self, version: AdapterVersion) -> str | None:
        if version.path is None:
            if self.adapter_name in getattr(self.chat_model, "adapters", []):
                self.chat_model.delete_adapter(self.adapter_name)
            self.published = version.name
            return None
        self.chat_model.load_adapter(self.adapter_name, version.path)
        if self.activate:
            self.chat_model.set_adapter(self.adapter_name)
        self.published = version.name
        return self.adapter_name


class VLLMAdapterPublisher:
    """Loads versions into a running vLLM server by name (``{prefix}-{version}``), unloading the previous one.

    With ``chat_model`` (an :class:`~miaflow.llm.OpenAIChatModel` on that server), calls selecting adapter
    ``adapter_name`` (default: ``prefix``) go to the base model until a version is published, then to the newest
    published one.
    """

    def __init__(self, base_url: str, *, prefix: str = "planner", api_key: str | None = None, timeout: float = 60.0,
                 unload_previous: bool = True, chat_model: Any = None, adapter_name: str | None = None):
        base = base_url.rstrip("/")
        self.base_url = base[:-3] if base.endswith("/v1") else base
        self.prefix = prefix
        self.api_key = api_key
        self.timeout = timeout
        self.unload_previous = unload_previous
        self.chat_model = chat_model
        self.adapter_name = adapter_name or prefix
        self.published: str | None = None
        if chat_model is not None:
            chat_model.route_adapter(self.adapter_name, None)

    def _post(self, route: str, payload: dict) -> str:
        url = f"{self.base_url}/v1/{route}"
        req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")[:300]
            raise ModelError(f"{url} answered {e.code}: {body} (is the server started with --enable-lora and "
                             "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True?)", endpoint=url, status=e.code) from e
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise ModelUnavailableError(f"cannot reach {url}: {e}", endpoint=url) from e

    def _load(self, name: str, path: str) -> None:
        """Load ``path`` as ``name``; a name the server holds already (a resumed session on a server that kept
        running) is unloaded and loaded again, so the name always serves this path's weights."""
        try:
            self._post("load_lora_adapter", {"lora_name": name, "lora_path": path})
        except ModelError as e:
            if getattr(e, "status", None) != 400 or "already" not in str(e):
                raise
            log.info("%s is loaded already; loading it again from %s", name, path)
            self._post("unload_lora_adapter", {"lora_name": name})
            self._post("load_lora_adapter", {"lora_name": name, "lora_path": path})

    def publish(self, version: AdapterVersion) -> str | None:
        previous = self.published
        if version.path is None:
            name = None
        else:
            name = f"{self.prefix}-{version.name}"
            self._load(name, str(version.path.resolve()))
        if self.chat_model is not None:  # before unloading the old one: the next calls already take the new one
            self.chat_model.route_adapter(self.adapter_name, name)
        if self.unload_previous and previous and previous != name:
            try:
                self._post("unload_lora_adapter", {"lora_name": previous})
            except ModelError as e:  # the new one already serves; an old one left loaded is not fatal
                log.warning("could not unload %s: %s", previous, e)
        self.published = name
        return name
