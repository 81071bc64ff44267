"""An OpenAI-compatible server with vLLM's runtime LoRA API, run as a subprocess by the served-session tests.

``python _lora_server.py LOG`` prints ``PORT <n>`` once listening and appends one JSON line per request to LOG.
It behaves like ``vllm serve BASE --enable-lora`` with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` where a client
can tell: ``/v1/models`` lists the base model then the loaded adapters; a chat request naming a model that is
neither the base nor a loaded adapter is a 404; ``/v1/load_lora_adapter`` needs an adapter folder
(``adapter_config.json`` and the weights) and refuses a name already loaded with a 400 ("has already been
loaded"); ``/v1/unload_lora_adapter`` of an unknown name is a 404. The answers are scripted (fast, like
``tests/rl``'s serving fake): one plan in three searches for the wrong thing, so a group of three plans carries a
GRPO signal; ``POST /control {"vary_plans": false}`` makes every plan the same (no signal, nothing to train).
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE = "smollm2-base"


class State:
    def __init__(self, log: Path):
        self.log = log
        self.lock = threading.Lock()
        self.adapters: dict[str, str] = {}
        self.plans = itertools.count()
        self.vary_plans = True

    def record(self, entry: dict) -> None:
        with self.lock, self.log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def reply(self, messages: list[dict]) -> str:
        text = str(messages[-1].get("content", ""))
        if "Documents:" in text:  # the executor: whatever the passages it was shown say
            return "Naples [pizza]" if "Naples" in text else "Tulsa [band]"
        if "yes (replan)" in text:
            return "no"
        if "score from 0" in text:
            return "5"
        if "correct or incorrect" in text:
            return "incorrect"
        if "numbered" in text:
            k = next(self.plans)
            wrong = self.vary_plans and k % 3 == 0
            topic = "pizza ovens in Naples" if wrong else "the band first performance"
            return f"Thinking: one hop.\n1. Search for {topic}\n2. Answer the question"
        return "ok"


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "BadRequestError", "code": status}})

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/v1/models":
                ids = [BASE, *state.adapters]
                self._send(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            route = self.path.rstrip("/")
            if route == "/v1/chat/completions":
                self._chat(body)
            elif route == "/v1/load_lora_adapter":
                self._load(body)
            elif route == "/v1/unload_lora_adapter":
                name = body.get("lora_name")
                state.record({"route": "unload", "lora_name": name})
                if state.adapters.pop(name, None) is None:
                    self._error(404, f"The lora adapter '{name}' cannot be found.")
                else:
                    self._send(200, {"ok": True})
            elif route == "/control":
                state.vary_plans = bool(body.get("vary_plans", True))
                self._send(200, {"vary_plans": state.vary_plans})
            else:
                self._error(404, f"no route {self.path}")

        def _load(self, body: dict) -> None:
            name, path = body.get("lora_name"), body.get("lora_path")
            state.record({"route": "load", "lora_name": name, "lora_path": path})
            folder = Path(str(path))
            if not name or not (folder / "adapter_config.json").is_file() or not any(
                    (folder / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
                self._error(400, f"{path} is not a LoRA adapter folder")
            elif name in state.adapters:
                self._error(400, f"The lora adapter '{name}' has already been loaded.")
            else:
                state.adapters[name] = str(folder)
                self._send(200, {"ok": True})

        def _chat(self, body: dict) -> None:
            model, messages = body.get("model"), body.get("messages") or []
            n = int(body.get("n") or 1)
            known = model == BASE or model in state.adapters
            state.record({"route": "chat", "model": model, "n": n, "known": known,
                          "prompt": str(messages[-1].get("content", ""))[:60] if messages else ""})
            if not known:
                self._error(404, f"The model `{model}` does not exist.")
                return
            choices = [{"index": i, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": state.reply(messages)}} for i in range(n)]
            self._send(200, {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": model,
                             "choices": choices,
                             "usage": {"prompt_tokens": 10, "completion_tokens": 8 * n, "total_tokens": 10 + 8 * n}})

    return Handler


def main() -> None:
    state = State(Path(sys.argv[1]))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    print(f"PORT {httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
