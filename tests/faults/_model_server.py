"""A loopback OpenAI-compatible server that misbehaves on purpose: hangs, fails, rate-limits, or answers garbage.

Each request takes the next behaviour of the script (the last one repeats). Hanging handlers wait on an event that
``close`` sets, so no thread outlives the test by more than its own bound."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GOOD = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "fine"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


class FaultServer:
    """Behaviours: ``"ok"``, ``"hang"``, ``"notjson"``, ``"nochoices"``, ``"drop"`` (close the socket), an HTTP
    status (int), or ``(status, {header: value})``."""

    def __init__(self, script: list, hang_bound_s: float = 30.0):
        self.script = list(script)
        self.requests = 0
        self.stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None,
                      ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (/models)
                self._send(200, json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                step = outer.script[0] if len(outer.script) == 1 else outer.script.pop(0)
                if step == "hang":
                    outer.stop.wait(hang_bound_s)
                    return
                if step == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if step == "ok":
                    self._send(200, json.dumps(GOOD).encode())
                elif step == "notjson":
                    self._send(200, b"<html>502 bad gateway</html>")
                elif step == "nochoices":
                    self._send(200, json.dumps({**GOOD, "choices": []}).encode())
                else:
                    status, headers = step if isinstance(step, tuple) else (step, {})
                    self._send(status, json.dumps({"error": {"message": f"scripted {status}"}}).encode(), headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
