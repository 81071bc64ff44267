"""Serving overhead: the same research questions answered by a direct ``ResearchWorkflow.run``, through
``miaflow mcp`` (the SDK's client over stdio) and through ``miaflow serve`` (the ``openai`` client over HTTP).

Both servers run as subprocesses, warmed before timing (model loaded, corpus indexed) and with memory off, so each
run sees the same state. A run's own duration is what the workflow measured inside the server; the layer's
overhead is the client's wall time minus it (transport, JSON, threads, progress notifications), which machine
noise in the model calls does not blur. The modes are interleaved per question. Simplified: one run per question
and mode, so p50 over a few questions.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

__all__ = ["command"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from miaflow.cli import main; main()", *args]


def _start_http(args: list[str], port: int, timeout: float = 900.0) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`miaflow {' '.join(args)}` exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2.0)
            return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the HTTP server did not start in time")


def _measure(questions: list[str], model: str, corpus: str | None, console: Any) -> dict[str, list[dict]]:
    """{mode: [{wall, run}]} with the modes interleaved per question."""
    import anyio
    import anyio.to_thread
    import openai
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.types import TextContent

    from ..serve import AgentConfig, ResearchAgent

    common = ["--model", model, "--no-memory", "--warm", *(["--corpus", corpus] if corpus else [])]
    state = tempfile.mkdtemp(prefix="miaflow-bench-serve-")
    port = _free_port()
    http_proc = _start_http(["serve", "--port", str(port), "--state", state, *common], port)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=3600, max_retries=0)
    agent = ResearchAgent(AgentConfig(model=model, corpus=corpus, memory=False))
    agent.warm()
    out: dict[str, list[dict]] = {"direct": [], "mcp": [], "http": []}

    def direct(q: str) -> dict:
        t0 = time.perf_counter()
        res = agent.workflow().run(q)
        return {"wall": time.perf_counter() - t0, "run": res.timings["total"]}

    def http(q: str) -> dict:
        t0 = time.perf_counter()
        res = client.chat.completions.create(model="miaflow-research", messages=[{"role": "user", "content": q}])
        return {"wall": time.perf_counter() - t0, "run": (res.model_extra or {})["miaflow"]["seconds"]}

    async def main() -> None:
        params = StdioServerParameters(command=sys.executable, args=_cli("mcp", "--state", state, *common)[1:],
                                       env=dict(os.environ))
        async with stdio_client(params, errlog=open(os.devnull, "w")) as (r, w), ClientSession(r, w) as session:  # noqa: SIM115
            await session.initialize()

            async def noop(progress: float, total: float | None, message: str | None) -> None:
                return None

            async def mcp(q: str) -> dict:
                t0 = time.perf_counter()
                res = await session.call_tool("research", {"question": q}, progress_callback=noop)
                if res.is_error:
                    said = " ".join(c.text for c in res.content if isinstance(c, TextContent))
                    raise RuntimeError(said or "the research tool failed without a message")
                return {"wall": time.perf_counter() - t0, "run": res.structured_content["seconds"]}

            modes = ["direct", "mcp", "http"]
            for i, q in enumerate(questions):
                for mode in modes[i % 3:] + modes[:i % 3]:
                    if mode == "mcp":
                        row = await mcp(q)
                    else:
                        row = await anyio.to_thread.run_sync(direct if mode == "direct" else http, q)
                    out[mode].append(row)
                    console.print(f"q{i + 1} {mode}: {row['wall']:.2f}s (run {row['run']:.2f}s)")

    try:
        anyio.run(main)
    finally:
        http_proc.terminate()
        http_proc.wait(timeout=30)
        agent.close()
    return out


def command(
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for serve.json."),
    questions: int = typer.Option(3, "--questions", "-n", min=1, max=30, help="Questions of the shipped sample."),
    model: str = typer.Option("local", "--model", help="Model spec, as for `miaflow research`."),
    corpus: Path = typer.Option(None, "--corpus", help="Corpus (default: the shipped sample)."),
) -> None:
    """Latency each serving layer (MCP over stdio, OpenAI-compatible HTTP) adds to a research run (p50)."""
    from rich.console import Console

    from ..tools.sample import sample_questions
    from .report import BenchReport, percentile

    console = Console()
    qs = [q.question for q in sample_questions(questions)]
    report = BenchReport("serve", out, config={"questions": questions, "model": model, "corpus": str(corpus or "")})
    runs = _measure(qs, model, str(corpus) if corpus else None, console)
    rows, head = [], {}
    direct_p50 = percentile([r["wall"] for r in runs["direct"]], 50)
    for mode, rs in runs.items():
        wall, run = [r["wall"] for r in rs], [r["run"] for r in rs]
        over = [r["wall"] - r["run"] for r in rs]
        share = [100.0 * (r["wall"] - r["run"]) / r["run"] for r in rs]
        rows.append([mode, percentile(wall, 50), percentile(run, 50), percentile(over, 50), percentile(share, 50),
                     percentile(wall, 50) / direct_p50])
        if mode != "direct":
            head[f"{mode}_overhead_ms_p50"] = round(1000 * percentile(over, 50), 1)
            head[f"{mode}_overhead_pct_p50"] = round(percentile(share, 50), 2)
    report.table("research run per layer (p50 over the questions)",
                 ["layer", "wall s", "run s (in the workflow)", "overhead s", "overhead % of run",
                  "wall / direct wall"], rows)
    report.results = runs
    report.headline = head
    report.finish(console)
