"""The embedded default backend: a causal LM run in-process with transformers, LoRA adapters through PEFT.

No server, no network. ``n`` samples come from one batched ``generate`` call (``num_return_sequences``). Adapters
are attached to the one loaded base model and switched per call, so swapping never reloads the base weights. A
lock serialises generation and adapter changes: the model object is not safe to use from two threads at once.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from .._import_utils import offline_env, require
from ..errors import InvalidInputError, ModelError
from .base import ChatResult, Completion, GenerationConfig, Message, as_messages, resolve_config

__all__ = ["LocalChatModel", "default_lora_config"]

log = logging.getLogger(__name__)


def default_lora_config(**overrides: Any) -> Any:
    """The LoRA settings miaflow uses for planner/executor adapters (rank 16 on attention and MLP projections)."""
    require("peft")
    from peft import LoraConfig

    kwargs: dict[str, Any] = dict(
        r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    kwargs.update(overrides)
    return LoraConfig(**kwargs)


class LocalChatModel:
    """Chat with a local transformers model (the bundled SmolLM2-135M-Instruct by default).

    With the bundled model, the trained planner and executor adapters shipped in the package are attached (as
    adapters ``planner`` and ``executor``, listed in ``role_adapters``) unless ``trained_adapters=False`` or
    ``MIAFLOW_BASE_MODEL_ONLY=1``. Calls that name no adapter still run the base model.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str | None = None,
        dtype: str = "float32",
        name: str | None = None,
        system_prompt: str | None = None,
        trained_adapters: bool = True,
    ):
        offline_env()
        require("torch")
        require("transformers")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        bundled = model_dir is None
        if model_dir is None:
            from .bundled import prepare_bundled_model

            model_dir = prepare_bundled_model()
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").exists():
            raise ModelError(f"{self.model_dir} is not a model folder (no config.json). Run `miaflow models prepare`.")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.name = name or self.model_dir.name
        self.system_prompt = system_prompt
        t0 = time.perf_counter()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(self.model_dir))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        model: Any = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=getattr(torch, dtype))
        self.model: Any = model.to(self.device)
        self.model.eval()
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.RLock()
        self._adapters: set[str] = set()
        self._active: str | None = None
        self.role_adapters: dict[str, str] = {}
        """Adapter each role uses when its config names none (the shipped trained roles of the bundled model)."""
        if bundled and trained_adapters:
            from .bundled import bundled_adapters

            for role, path in bundled_adapters().items():
                self.load_adapter(role, path)
                self.role_adapters[role] = role

    # ---------------------------------------------------------------- adapters
    @property
    def adapters(self) -> list[str]:
        """Names of the LoRA adapters attached to the base model."""
        return sorted(self._adapters)

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def add_adapter(self, name: str, lora_config: Any = None) -> None:
        """Attach a new LoRA adapter (freshly initialised) under ``name``."""
        from peft import PeftModel, get_peft_model

        with self._lock:
            if name in self._adapters:
                raise InvalidInputError(f"adapter {name!r} already exists; delete it first or pick another name")
            config = lora_config or default_lora_config()
            if isinstance(self.model, PeftModel):
                self.model.add_adapter(name, config)
            else:
                self.model = get_peft_model(self.model, config, adapter_name=name)
            self.model.eval()
            self._adapters.add(name)
            self._activate(self._active)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Load a saved adapter under ``name``; an adapter of that name already attached is replaced in place."""
        from peft import PeftModel

        path = Path(path)
        if not (path / "adapter_config.json").exists():
            raise InvalidInputError(f"{path} holds no saved adapter (adapter_config.json missing)")
        with self._lock:
            if name in self._adapters:
                self.delete_adapter(name)
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name, is_trainable=False)
            self.model.eval()
            self._adapters.add(name)
            self._activate(self._active)

    def save_adapter(self, name: str, path: str | Path) -> Path:
        """Write adapter ``name`` (config + safetensors weights) into the folder ``path``."""
        self._check_adapter(name)
        path = Path(path)
        with self._lock:
            self.model.save_pretrained(str(path), selected_adapters=[name])
        # PEFT writes a non-default adapter into a sub-folder named after it; flatten so the folder loads directly.
        nested = path / name
        if (nested / "adapter_config.json").exists():
            for f in nested.iterdir():
                f.replace(path / f.name)
            nested.rmdir()
        return path

    def set_adapter(self, name: str | None) -> None:
        """Make ``name`` the default adapter for calls that do not name one (None: the base model)."""
        if name is not None:
            self._check_adapter(name)
        with self._lock:
            self._active = name
            self._activate(name)

    def delete_adapter(self, name: str) -> None:
        self._check_adapter(name)
        with self._lock:
            if len(self._adapters) == 1:
                # PEFT cannot delete its last adapter; unwrap back to the plain base model instead.
                self.model = self.model.unload() if hasattr(self.model, "unload") else self.model.get_base_model()
            else:
                if self.model.active_adapter == name:
                    other = next(a for a in self._adapters if a != name)
                    self.model.set_adapter(other)
                self.model.delete_adapter(name)
            self._adapters.discard(name)
            if self._active == name:
                self._active = None
            self._activate(self._active)

    def _check_adapter(self, name: str) -> None:
        if name not in self._adapters:
            raise InvalidInputError(f"unknown adapter {name!r}; attached adapters: {self.adapters or 'none'}")

    def _activate(self, name: str | None) -> None:
        if name is not None:
            self.model.set_adapter(name)

    # -------------------------------------------------------------- generation
    def render(self, messages: list[Message] | str) -> str:
        """The prompt text the model sees (chat template applied, generation prompt added)."""
        msgs = as_messages(messages, self.system_prompt)
        return str(self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))

    def chat(self, messages: list[Message] | str, config: GenerationConfig | None = None, **overrides: Any) -> ChatResult:
        cfg = resolve_config(config, overrides)
        prompt = self.render(messages)
        with self._lock:
            t0 = time.perf_counter()
            completions, prompt_tokens = self._generate(prompt, cfg)
            seconds = time.perf_counter() - t0
        adapter = cfg.adapter if cfg.adapter is not None else self._active
        return ChatResult(completions=completions, prompt_tokens=prompt_tokens, model=self.name, adapter=adapter,
                          seconds=seconds)

    def _generate_shared_prefix(self, enc: Any, n: int, kwargs: dict[str, Any]) -> Any:
        """n samples of one prompt, with the prompt's prefill computed once and its KV cache copied n times.

        ``generate(num_return_sequences=n)`` would prefill the same prompt n times; for the long planner prompts of
        a GRPO group that is most of the cost. The last prompt token is left for ``generate`` to process, so its
        sampling starts exactly as it would from scratch.
        """
        ids, mask = enc["input_ids"], enc["attention_mask"]
        prefix = self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True)
        cache = prefix["cache"] if "cache" in prefix else prefix["past_key_values"]
        cache.batch_repeat_interleave(n)
        gen = {k: v for k, v in kwargs.items() if k != "num_return_sequences"}
        return self.model.generate(input_ids=ids.repeat(n, 1), attention_mask=mask.repeat(n, 1), cache=cache, **gen)

    def _generate(self, prompt: str, cfg: GenerationConfig) -> tuple[list[Completion], int]:
        import contextlib

        import torch

        if cfg.adapter is not None:
            self._check_adapter(cfg.adapter)
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        n_prompt = int(enc["input_ids"].shape[1])
        kwargs: dict[str, Any] = dict(
            max_new_tokens=cfg.max_tokens,
            num_return_sequences=cfg.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if cfg.min_tokens:
            kwargs["min_new_tokens"] = min(cfg.min_tokens, cfg.max_tokens)
        if cfg.temperature > 0:
            kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if cfg.n > 1:
                log.debug("greedy decoding with n=%d returns %d identical completions", cfg.n, cfg.n)
        if cfg.stop:
            kwargs.update(stop_strings=list(cfg.stop), tokenizer=self.tokenizer)
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        peft_ctx: Any = contextlib.nullcontext()
        uses_peft = bool(self._adapters)
        wanted = cfg.adapter if cfg.adapter is not None else self._active
        if uses_peft:
            if wanted is None:
                peft_ctx = self.model.disable_adapter()
            else:
                self.model.set_adapter(wanted)
        try:
            with torch.inference_mode(), peft_ctx:
                if cfg.n > 1 and n_prompt > 1:
                    out = self._generate_shared_prefix(enc, cfg.n, kwargs)
                else:
                    out = self.model.generate(**enc, **kwargs)
        finally:
            if uses_peft and wanted != self._active and self._active is not None:
                self.model.set_adapter(self._active)
        new_tokens = out[:, n_prompt:]
        completions = []
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        for row in new_tokens.tolist():
            length = len(row)
            ended = False
            for i, tok in enumerate(row):
                if tok == eos or (tok == pad and pad != eos):
                    length, ended = i, True
                    break
            text = str(self.tokenizer.decode(row[:length], skip_special_tokens=True))
            stopped = False
            for s in cfg.stop:
                if s in text:
                    text, stopped = text.split(s, 1)[0], True
            finish = "stop" if ended or stopped or length < cfg.max_tokens else "length"
            completions.append(Completion(text=text.strip(), completion_tokens=length, finish_reason=finish))
        return completions, n_prompt
