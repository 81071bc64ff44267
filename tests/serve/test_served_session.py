"""``miaflow session --model URL``: the answers come from an OpenAI-compatible server, the planner adapter trains
here from the same base model, and each promoted version is published into the server and selected by the next
answers.

The server is ``_lora_server.py`` in a subprocess: it speaks vLLM's runtime LoRA API (``/v1/load_lora_adapter``,
``/v1/unload_lora_adapter``, adapters listed and selected as models, unknown models refused) and records every
request; its answers are scripted. ``transformers serve`` cannot stand in: it has no runtime LoRA endpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

SERVER = Path(__file__).with_name("_lora_server.py")
BASE = "smollm2-base"


class LoraServer:
    def __init__(self, log: Path):
        self.log = log
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(log)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), f"the LoRA test server did not start: {line!r}"
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def requests(self, route: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        rows = [json.loads(x) for x in self.log.read_text().splitlines()]
        return [r for r in rows if route is None or r["route"] == route]

    def control(self, **body: object) -> None:
        import httpx

        httpx.post(self.url[:-3] + "/control", json=body, timeout=10).raise_for_status()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def bundled_model_dir():
    from miaflow.llm.bundled import prepare_bundled_model

    try:
        return prepare_bundled_model()
    except Exception as e:  # the model package is part of `make setup`
        pytest.skip(f"bundled model unavailable: {e}")


@pytest.fixture
def lora_server(tmp_path):
    srv = LoraServer(tmp_path / "server-log.jsonl")
    yield srv
    srv.close()


@pytest.fixture
def band_corpus(tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "band.txt").write_text("Tinted Windows was a supergroup. Their first performance was in Tulsa.")
    (corpus / "pizza.txt").write_text("Pizza ovens are wood fired. Naples is the home of pizza.")
    for i, band in enumerate(["The Strokes", "Blur", "Pulp", "Oasis", "Suede", "Elastica"]):
        (corpus / f"band{i}.txt").write_text(f"{band} was a band. The first performance of {band} was in a pub.")
    return corpus


def _questions(path: Path, n: int) -> Path:
    rows = [{"id": "q0", "question": "Where was the first performance of the band Tinted Windows?",
             "answer": "Tulsa"},
            {"id": "q1", "question": "In which city did the supergroup Tinted Windows first perform?",
             "answer": "Tulsa"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
    return path


def _adapter_folder(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (d / "adapter_model.safetensors").write_bytes(b"\0")
    return d


class _Run:
    """A CLI result whose ``output`` has rich's line wrapping undone."""

    def __init__(self, res):
        self.exit_code = res.exit_code
        self.output = " ".join(res.output.split())


def _cli(*args: str) -> _Run:
    from miaflow.cli import app

    return _Run(CliRunner().invoke(app, ["session", *args]))


# ---- fast: the URL goes to the OpenAI-compatible client; bad combinations are clear errors -------------------------

def test_session_on_a_url_answers_through_the_server(tmp_path, lora_server, band_corpus):
    res = _cli(str(_questions(tmp_path / "q.jsonl", 1)), "--corpus", str(band_corpus), "--state",
               str(tmp_path / "state"), "--model", lora_server.url, "--group-size", "2", "--no-memory")
    assert res.exit_code == 0, res.output
    assert "models prepare" not in res.output
    chats = lora_server.requests("chat")
    assert chats and all(c["model"] == BASE and c["known"] for c in chats)
    assert [c["n"] for c in chats].count(2) == 1  # the group of plans, sampled in one call; then each is run
    outcome = json.loads((tmp_path / "state" / "outcomes.jsonl").read_text().splitlines()[0])
    # the server's replies: plan 0 searches pizza ovens (its executor reads pizza.txt), plan 1 the band
    assert outcome["answers"] == ["Naples", "Tulsa"]
    assert json.loads((tmp_path / "state" / "session.json").read_text())["model"] == BASE


def test_base_model_needs_a_served_model(tmp_path, band_corpus):
    res = _cli(str(_questions(tmp_path / "q.jsonl", 1)), "--corpus", str(band_corpus), "--state",
               str(tmp_path / "s"), "--base-model", str(tmp_path))
    assert res.exit_code == 2 and "--base-model is for a session on a served model" in res.output


def test_base_model_must_be_a_model_folder(tmp_path, lora_server, band_corpus):
    res = _cli(str(_questions(tmp_path / "q.jsonl", 1)), "--corpus", str(band_corpus), "--state",
               str(tmp_path / "s"), "--model", lora_server.url, "--learn", "--base-model", str(tmp_path / "nothing"))
    assert res.exit_code == 2 and "is not a model folder" in res.output and "Traceback" not in res.output
    assert lora_server.requests("load") == []


def test_unknown_model_spec_is_a_clear_error(tmp_path, band_corpus):
    res = _cli(str(_questions(tmp_path / "q.jsonl", 1)), "--corpus", str(band_corpus), "--state",
               str(tmp_path / "s"), "--model", str(tmp_path / "missing"))
    assert res.exit_code == 2 and "unknown model" in res.output and "models prepare" not in res.output


def test_publisher_routes_the_adapter_name_to_the_published_version(tmp_path, lora_server):
    from miaflow.llm import OpenAIChatModel
    from miaflow.rl import AdapterVersion, VLLMAdapterPublisher

    chat = OpenAIChatModel(lora_server.url)
    pub = VLLMAdapterPublisher(lora_server.url, chat_model=chat, adapter_name="planner")
    chat.chat("plan: a numbered list please", adapter="planner")
    v1 = AdapterVersion(name="v1", path=_adapter_folder(tmp_path, "v1"))
    v2 = AdapterVersion(name="v2", path=_adapter_folder(tmp_path, "v2"))
    assert pub.publish(v1) == "planner-v1"
    chat.chat("plan: a numbered list please", adapter="planner")
    assert pub.publish(v2) == "planner-v2"
    chat.chat("plan: a numbered list please", adapter="planner")
    assert [c["model"] for c in lora_server.requests("chat")] == [BASE, "planner-v1", "planner-v2"]
    assert [(r["route"], r["lora_name"]) for r in lora_server.requests() if r["route"] != "chat"] == [
        ("load", "planner-v1"), ("load", "planner-v2"), ("unload", "planner-v1")]
    assert chat.adapter_routes == {"planner": "planner-v2"}

    # a resumed session on a server that kept running: the name it holds is loaded again from this path
    again = VLLMAdapterPublisher(lora_server.url, chat_model=chat, adapter_name="planner")
    assert chat.adapter_routes == {"planner": None}
    assert again.publish(v2) == "planner-v2"
    assert [(r["route"], r["lora_name"]) for r in lora_server.requests() if r["route"] != "chat"][-3:] == [
        ("load", "planner-v2"), ("unload", "planner-v2"), ("load", "planner-v2")]
    chat.chat("plan: a numbered list please", adapter="planner")
    assert lora_server.requests("chat")[-1]["model"] == "planner-v2"


def test_a_version_the_server_cannot_load_is_a_clear_error(tmp_path, lora_server):
    from miaflow.errors import ModelError
    from miaflow.rl import AdapterVersion, VLLMAdapterPublisher

    pub = VLLMAdapterPublisher(lora_server.url)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a LoRA adapter folder"):
        pub.publish(AdapterVersion(name="v1", path=tmp_path / "empty"))
    assert pub.published is None


# ---- slow: a learning session on the served model, the real GRPO step on the bundled weights ------------------------

@pytest.mark.slow
def test_learning_session_publishes_promoted_versions_to_the_server(tmp_path, lora_server, band_corpus,
                                                                    bundled_model_dir):
    from miaflow.rl import AdapterRegistry

    qs = _questions(tmp_path / "q.jsonl", 2)
    state = tmp_path / "state"
    res = _cli(str(qs), "--corpus", str(band_corpus), "--state", str(state), "--model", lora_server.url, "--learn",
               "--group-size", "3", "--heldback", "1", "--no-memory")  # --base-model: the bundled folder
    assert res.exit_code == 0, res.output
    assert "training: 1 GRPO steps, 1 versions promoted" in res.output, res.output
    registry = AdapterRegistry(state / "adapters" / "planner")
    v1 = registry.get("v1")
    assert registry.promoted.name == "v1" and (v1.path / "adapter_config.json").exists()
    chats = lora_server.requests("chat")
    assert chats and all(c["known"] for c in chats)  # every answer came from the server
    assert {c["model"] for c in chats} <= {BASE, "planner-eval-v1"}
    assert any(c["model"] == "planner-eval-v1" for c in chats)  # the gate ran v1 on the held-back question
    loads = [(r["lora_name"], r["lora_path"]) for r in lora_server.requests("load")]
    assert ("planner-v1", str(v1.path.resolve())) in loads  # the promoted version, published to the server
    assert f"serving on {lora_server.url}: planner-v1" in res.output

    # the next session on this state answers with the published version (plans alike now: nothing to train)
    lora_server.control(vary_plans=False)
    seen = len(chats)
    res = _cli(str(qs), "--corpus", str(band_corpus), "--state", str(state), "--model", lora_server.url, "--learn",
               "--group-size", "3", "--heldback", "1", "--no-memory", "--restart")
    assert res.exit_code == 0, res.output
    later = lora_server.requests("chat")[seen:]
    plans = [c for c in later if c["n"] == 3]
    assert plans and all(c["model"] == "planner-v1" for c in plans), later
    assert "training: 0 GRPO steps" in res.output
