import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from miaflow.errors import ModelError
from miaflow.rl import AdapterRegistry, LocalAdapterPublisher, VLLMAdapterPublisher


def _save(tag):
    def save(folder):
        (folder / "adapter_config.json").write_text(json.dumps({"tag": tag}))
    return save


def test_gate_promotes_when_no_worse_and_rolls_back_otherwise(tmp_path):
    reg = AdapterRegistry(tmp_path / "planner")
    assert reg.promoted.name == "v0" and reg.current.name == "v0"
    scores = {"v0": 0.5, "v1": 0.5, "v2": 0.25, "v3": 0.75}
    calls = []

    def evaluator(v):
        calls.append(v.name)
        return scores[v.name]

    v1 = reg.add(_save("a"), metrics={"loss": 0.1})
    assert reg.current.name == "v1" and reg.promoted.name == "v0" and v1.parent == "v0"
    d = reg.gate("v1", evaluator)
    assert d.promoted and reg.promoted.name == "v1"          # equal is "no worse"
    reg.add(_save("b"))
    d = reg.gate("v2", evaluator)
    assert not d.promoted and d.baseline == "v1"
    assert reg.promoted.name == "v1" and reg.current.name == "v1"  # rolled back
    assert reg.get("v2").status == "rejected"
    v3 = reg.add(_save("c"))
    assert v3.parent == "v1"
    assert reg.gate("v3", evaluator).promoted
    assert calls == ["v0", "v1", "v2", "v3"]  # scores are cached with the version
    # everything is on disk: a fresh registry sees the same state
    again = AdapterRegistry(tmp_path / "planner")
    assert [v.name for v in again.versions()] == ["v0", "v1", "v2", "v3"]
    assert again.promoted.name == "v3" and again.get("v2").metrics["held_back"] == 0.25
    assert again.get("v1").metrics["loss"] == 0.1


def test_incomplete_version_folder_is_ignored(tmp_path):
    reg = AdapterRegistry(tmp_path)
    (tmp_path / "versions" / "v1").mkdir()  # killed while saving: no meta.json
    assert [v.name for v in reg.versions()] == ["v0"]
    assert reg.add(_save("x")).name == "v1"


class _RecordingChat:
    def __init__(self):
        self.calls = []
        self.adapters = []

    def load_adapter(self, name, path):
        self.calls.append(("load", name, str(path)))
        self.adapters.append(name)

    def set_adapter(self, name):
        self.calls.append(("set", name))


def test_local_publisher_loads_in_place(tmp_path):
    reg = AdapterRegistry(tmp_path)
    v = reg.add(_save("x"))
    chat = _RecordingChat()
    pub = LocalAdapterPublisher(chat, "planner", activate=True)
    assert pub.publish(v) == "planner"
    assert chat.calls == [("load", "planner", str(v.path)), ("set", "planner")]


def test_vllm_publisher_posts_runtime_lora_requests(tmp_path):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body, self.headers.get("Authorization")))
            code = 400 if body.get("lora_name") == "planner-v9" else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"Success" if code == 200 else b"bad adapter")

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        reg = AdapterRegistry(tmp_path)
        v1, v2 = reg.add(_save("a")), reg.add(_save("b"))
        pub = VLLMAdapterPublisher(f"http://127.0.0.1:{srv.server_port}/v1", api_key="k")
        assert pub.publish(v1) == "planner-v1"
        assert pub.publish(v2) == "planner-v2"
        assert seen[0] == ("/v1/load_lora_adapter", {"lora_name": "planner-v1", "lora_path": str(v1.path.resolve())},
                           "Bearer k")
        assert seen[1][0] == "/v1/load_lora_adapter" and seen[1][1]["lora_name"] == "planner-v2"
        assert seen[2][:2] == ("/v1/unload_lora_adapter", {"lora_name": "planner-v1"})
        from dataclasses import replace
        with pytest.raises(ModelError, match="400"):
            pub.publish(replace(v2, name="v9"))
    finally:
        srv.shutdown()
