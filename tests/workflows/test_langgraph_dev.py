"""``langgraph dev`` serves the shipped ``langgraph.json``: LangGraph's own in-memory API server is started on a free
port (offline: no browser, no reload, no tracing or analytics), the research graph runs once through
``langgraph_sdk`` with the real bundled model on the shipped sample, and the server is torn down by its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("langgraph")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> str:
    if CLI.exists():
        return str(CLI)
    found = shutil.which("langgraph")
    if found is None:
        pytest.skip("langgraph-cli is not installed (pip install 'langgraph-cli[inmem]', in the dev extra)")
    return found


@pytest.fixture
def langgraph_dev(tmp_path):
    """``langgraph dev`` in a scratch folder (its ``.langgraph_api`` state goes there), stopped by its PID."""
    pytest.importorskip("langgraph_api", reason="langgraph dev needs langgraph-cli[inmem] (the dev extra)")
    exe, port = _cli(), _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1",
           "LANGGRAPH_NO_VERSION_CHECK": "true", "MIAFLOW_MODEL": "local"}
    env.pop("MIAFLOW_MEMORY", None)
    env.pop("MIAFLOW_CORPUS", None)
    log_path = tmp_path / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed at teardown
    # --allow-blocking: the graph factory loads the in-process model synchronously inside the server's event loop;
    # without it every run fails with "BlockingError: Blocking call to os.getcwd" (blockbuster, dev mode only)
    cmd = [exe, "dev", "--config", str(REPO / "langgraph.json"), "--host", "127.0.0.1", "--port", str(port),
           "--no-browser", "--no-reload", "--allow-blocking"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url + "/ok", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
                proc.wait()
                log.close()
                pytest.fail(f"langgraph dev did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, log_path
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_langgraph_dev_runs_the_research_graph(langgraph_dev):
    from langgraph_sdk import get_sync_client

    from miaflow.tools.sample import sample_questions

    url, log_path = langgraph_dev
    client = get_sync_client(url=url)
    assert [a["graph_id"] for a in client.assistants.search()] == ["research"]
    q = sample_questions(1)[0]
    result = client.runs.wait(None, "research", input={"question": q.question, "gold": q.answer})
    assert isinstance(result, dict) and "__error__" not in result, f"{result}\n{log_path.read_text()[-3000:]}"
    assert result["question"] == q.question
    final = result["final"]
    assert isinstance(final["answer"], str) and final["answer"].strip()
    assert isinstance(final["citations"], list) and set(final["citations"]) <= set(final["evidence_ids"])
    assert result["judgement"]["label"] in ("correct", "incorrect", "unknown")


def test_langgraph_json_names_an_importable_factory():
    """The server imports a graph by module path; a file path would load ``graph_factory.py`` outside its package,
    where its relative imports fail ("attempted relative import with no known parent package")."""
    import importlib
    import json

    spec = json.loads((REPO / "langgraph.json").read_text())["graphs"]["research"]
    module, _, attr = spec.rpartition(":")
    assert "/" not in module and not module.endswith(".py")
    assert callable(getattr(importlib.import_module(module), attr))
