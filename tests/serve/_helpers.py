"""Helpers of the server tests: a scripted model, free ports, servers started as subprocesses (torn down after
use), and README snippets."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SAMPLE_QUESTION = 'The band who released the debut album "Tinted Windows" had their first performance in what city?'

DOCS = {
    "tinted_band.txt": "Tinted Windows (band)\nTinted Windows was an American supergroup. Their first performance "
                       "was in Tulsa, Oklahoma.",
    "paris.txt": "Paris\nParis is the capital of France.",
    "album.txt": "Tinted Windows (album)\nTinted Windows is the debut album by the band Tinted Windows.",
}


def scripted(messages, cfg) -> str:  # noqa: ANN001
    """Plans two searches, keeps its first answer, and answers with the first document it is shown."""
    text = messages[-1]["content"]
    if "numbered list" in text or "supplementary plan" in text:
        return "1. Search for the band Tinted Windows\n2. Search for their first performance\n3. Answer"
    if "Reply with one word: yes (replan)" in text:
        return "no"
    if "Documents:" in text and "<answer>" in text:
        m = re.search(r"<<<\n\[([^\]]+)\]", text)
        return f"Tulsa [{m.group(1)}]" if m else "unknown"
    if "score from 0" in text:
        return "8"
    if "correct or incorrect" in text:
        return "correct"
    return "ok"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def miaflow_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from miaflow.cli import main; main()", *args]


def wait_http(proc: subprocess.Popen, url: str, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers (any status), or fail with the server's output if it exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"server did not answer {url} within {timeout}s")


@contextmanager
def start_server(args: list[str], ready_url: str) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(miaflow_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_http(proc, ready_url)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def readme_snippet(name: str) -> str:
    """The code between ``<!-- snippet: NAME -->`` and ``<!-- /snippet -->`` in README.md, without the fence."""
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- snippet: {re.escape(name)} -->\s*```\w*\n(.*?)```\s*<!-- /snippet -->", text, re.S)
    assert m, f"README has no snippet {name!r}"
    return m.group(1)
