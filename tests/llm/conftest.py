"""Fixtures of the model layer: the real bundled model, a real `transformers serve`, and a scripted HTTP server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    from miaflow.llm.bundled import prepare_bundled_model

    return prepare_bundled_model()


@pytest.fixture(scope="session")
def local_model(bundled_dir: Path):
    from miaflow.llm import LocalChatModel

    return LocalChatModel(bundled_dir)


@pytest.fixture(scope="session")
def transformers_server(bundled_dir: Path) -> Iterator[str]:
    """A real OpenAI-compatible server (`transformers serve`) with the converted bundled model on 127.0.0.1."""
    exe = shutil.which("transformers", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.fail("the `transformers` CLI is missing; install miaflow[dev] (transformers[serving])")
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"transformers-serve-{port}.log", "w")
    proc = subprocess.Popen(
        [exe, "serve", str(bundled_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"transformers serve did not answer within 180 s; see {log.name}")
            time.sleep(0.5)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


class ScriptedServer:
    """A loopback HTTP server answering chat completions with a scripted list of status codes."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append(body)
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    payload = {
                        "id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "scripted answer"}}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                    }
                else:
                    payload = {"error": {"message": f"scripted {status}", "type": "server_error"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    servers: list[ScriptedServer] = []

    def make(statuses: list[int]) -> ScriptedServer:
        s = ScriptedServer(statuses)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
