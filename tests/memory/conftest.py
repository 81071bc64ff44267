"""Fixtures of the trajectory-store tests: a fast deterministic embedder, the real bundled one, a real Chroma server
(``chroma run``) on a free port stopped by its PID, and a store fixture run against both backends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

sys.path.insert(0, str(Path(__file__).parent))

from memory_helpers import HashEmbedder  # noqa: E402

from miaflow.memory import TrajectoryStore, TrajectoryStoreConfig  # noqa: E402

CHROMA = Path(sys.executable).with_name("chroma")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real ``chroma run`` server on 127.0.0.1, started here and stopped by its PID."""
    if not CHROMA.exists() and shutil.which("chroma") is None:
        pytest.skip("the chroma CLI is not installed")
    exe = str(CHROMA) if CHROMA.exists() else shutil.which("chroma")
    data = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = open(data / "server.log", "wb")  # noqa: SIM115
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen([exe, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"chroma server did not start: {(data / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield ("127.0.0.1", port)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture
def hash_embedder():
    return HashEmbedder()


@pytest.fixture(params=["embedded", "server"])
def make_store(request, tmp_path, hash_embedder):
    """Factory of stores on both backends; on the server each test gets namespaces of its own."""
    backend = request.param
    prefix = uuid.uuid4().hex[:8]

    def factory(namespace: str = "default", config: TrajectoryStoreConfig | None = None, **kw):
        kw.setdefault("embedder", hash_embedder)
        if backend == "embedded":
            return TrajectoryStore(tmp_path / "store", namespace=namespace, config=config, **kw)
        host, port = request.getfixturevalue("chroma_server")
        cfg = config or TrajectoryStoreConfig()
        from dataclasses import replace

        cfg = replace(cfg, collection_prefix=f"t{prefix}")
        return TrajectoryStore(host=host, port=port, namespace=namespace, config=cfg, **kw)

    factory.backend = backend  # type: ignore[attr-defined]
    return factory


@pytest.fixture
def store(make_store):
    return make_store()
