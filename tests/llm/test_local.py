"""The local transformers backend with the real bundled model."""

from __future__ import annotations

import pytest

from miaflow.llm import GenerationConfig
from miaflow.llm.local import default_lora_config

PROMPT = "What is the capital of France? Answer in one word."


def test_generates_text_with_token_counts(local_model):
    res = local_model.chat(PROMPT, max_tokens=16)
    assert res.text.strip()
    assert res.prompt_tokens > 5
    assert 0 < res.completions[0].completion_tokens <= 16
    assert res.model == local_model.name


def test_n4_sampling_is_one_batched_generate(local_model, monkeypatch):
    """One generate call over a batch of 4, continuing from one shared prefill of the prompt."""
    calls = []
    real = local_model.model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0] * kwargs.get("num_return_sequences", 1))
        return real(*args, **kwargs)

    monkeypatch.setattr(local_model.model, "generate", counting)
    res = local_model.chat("Name a color.", GenerationConfig(n=4, temperature=0.9, max_tokens=12, seed=3))
    assert len(res.completions) == 4
    assert calls == [4]


def test_stop_strings_cut_the_text(local_model):
    res = local_model.chat("Count from 1 to 10, separated by commas.", max_tokens=40, stop=["5"])
    assert "5" not in res.text
    assert "6" not in res.text


def test_lora_adapter_changes_output_roundtrips_and_swaps_back(local_model, tmp_path):
    base = local_model.chat(PROMPT, max_tokens=16).text
    # Random (non-identity) initialisation so the adapter really changes the function.
    local_model.add_adapter("probe", default_lora_config(init_lora_weights=False))
    try:
        with_adapter = local_model.chat(PROMPT, max_tokens=16, adapter="probe").text
        assert with_adapter != base
        local_model.save_adapter("probe", tmp_path / "probe")
        local_model.load_adapter("probe-copy", tmp_path / "probe")
        assert local_model.chat(PROMPT, max_tokens=16, adapter="probe-copy").text == with_adapter
        # the base model is untouched by attaching adapters
        assert local_model.chat(PROMPT, max_tokens=16).text == base
        local_model.set_adapter("probe")
        assert local_model.chat(PROMPT, max_tokens=16).text == with_adapter
        local_model.set_adapter(None)
        assert local_model.chat(PROMPT, max_tokens=16).text == base
    finally:
        for name in list(local_model.adapters):
            local_model.delete_adapter(name)
    assert local_model.chat(PROMPT, max_tokens=16).text == base


def test_unknown_adapter_is_a_clear_error(local_model):
    from miaflow.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="unknown adapter"):
        local_model.chat(PROMPT, max_tokens=4, adapter="nope")


def test_prepare_is_idempotent(bundled_dir):
    from miaflow.llm.bundled import prepare_bundled_model

    stamp = (bundled_dir / "model.safetensors").stat().st_mtime
    assert prepare_bundled_model() == bundled_dir
    assert (bundled_dir / "model.safetensors").stat().st_mtime == stamp
