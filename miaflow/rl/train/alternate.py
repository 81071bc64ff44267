"""Stage 2 of offline training: MIA's alternating GRPO, through TRL's ``GRPOTrainer``, one trainer per role.

The paradigm: rounds of (train the planner while the executor is frozen; train the executor while the planner is
frozen), so that the two roles learn to cooperate. Here:

- Each role has ONE ``GRPOTrainer`` for the whole run, so its AdamW state and learning-rate schedule carry across
  rounds (``trainer.train()`` is called once per role, never once per step). The two trainers run in two threads
  and pass a baton: a trainer's rollout hook waits for its role's turn, and a turn ends after
  ``steps_per_round`` optimizer steps. Only one thread computes at a time.
- At the end of a turn the role's current LoRA weights are loaded into the shared inference model, so the frozen
  copy the other role's rollouts use is always the latest one.
- Rollouts are real runs of miaflow's roles on training questions over a corpus index of their paragraphs:
  planner turns sample a group of plans in one batched call from the trainer's own weights (on-policy) and run the
  research workflow's executor on each; executor turns take the frozen planner's plan, run the executor's searches
  once, and sample the group's n answers to the same evidence in one batched ``generate`` call. Rewards come from
  :func:`~miaflow.rl.rewards.planner_reward` / :func:`~miaflow.rl.rewards.executor_reward` with gold EM/F1.
- TRL's ``rollout_func`` hook receives the prompts (each repeated ``num_generations`` times) and returns the
  token ids and reward columns; TRL computes the loss on the sampled completions and steps the optimizer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..._import_utils import offline_env, require
from ..._text import normalize_answer, token_f1
from ...agents.executor import Executor, ExecutorConfig, parse_answer
from ...agents.planner import Planner, PlannerConfig, parse_plan
from ...llm.base import ChatResult, GenerationConfig, resolve_config
from ..rewards import executor_reward, planner_reward
from .recipe import GRPOStage, TrainRecipe
from .sft import load_base, resolve_device

__all__ = ["TrainQuestion", "AlternationResult", "run_alternating"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainQuestion:
    qid: str
    question: str
    answers: tuple[str, ...]


@dataclass
class AlternationResult:
    """Per role: rewards and losses per step, steps done, seconds, tokens."""

    steps: dict[str, int] = field(default_factory=dict)
    rewards: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    losses: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    zero_variance: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    models: dict[str, Any] = field(default_factory=dict)


def accuracy(answer: str, gold: Sequence[str]) -> float:
    """Token F1 against the best gold answer, 1.0 for an exact match."""
    if not normalize_answer(answer):
        return 0.0
    return max((1.0 if normalize_answer(answer) == normalize_answer(g) else token_f1(answer, g)) for g in gold)


class PolicyChat:
    """The chat protocol over a model a trainer is training: ``n`` samples in one batched ``generate`` call.

    Samples are drawn in eval mode without gradients; the model goes back to training mode afterwards. The last
    call's completions stay in ``last`` so a rollout can read every sample of a group.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str = "policy"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.last: ChatResult | None = None
        self.last_messages: list[dict[str, str]] = []

    def render(self, messages: Any) -> str:
        msgs = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        return str(self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))

    def chat(self, messages: Any, config: GenerationConfig | None = None, **overrides: Any) -> ChatResult:
        import torch

        from ...llm.base import Completion

        cfg = resolve_config(config, overrides)
        self.last_messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        enc = self.tokenizer(self.render(messages), return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        n_prompt = int(enc["input_ids"].shape[1])
        kw: dict[str, Any] = dict(max_new_tokens=cfg.max_tokens, num_return_sequences=cfg.n,
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        if cfg.temperature > 0:
            kw.update(do_sample=True, temperature=cfg.temperature, top_p=1.0, top_k=0)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                out = self.model.generate(**enc, **kw)
        finally:
            self.model.train(was_training)
        comps = []
        for row in out[:, n_prompt:]:
            ids = [int(t) for t in row.tolist() if int(t) != self.tokenizer.pad_token_id]
            comps.append(Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), completion_tokens=len(ids)))
        self.last = ChatResult(completions=comps, prompt_tokens=n_prompt, model=self.name, adapter=None,
                               seconds=time.perf_counter() - t0)
        return self.last


class _Baton:
    """Whose turn it is: planner turn 0, executor turn 1, planner turn 2, ... (roles in ``order``)."""

    def __init__(self, order: Sequence[str], steps_per_turn: int, on_turn_end: Callable[[str], None]):
        self.order = list(order)
        self.k = steps_per_turn
        self.turn = 0
        self.cond = threading.Condition()
        self.failed: BaseException | None = None
        self.on_turn_end = on_turn_end

    def _turn_of(self, role: str, step: int) -> int:
        return (step // self.k) * len(self.order) + self.order.index(role)

    def wait(self, role: str, step: int) -> None:
        with self.cond:
            if step > 0 and step % self.k == 0 and self.turn == self._turn_of(role, step - 1):
                try:
                    self._end_turn(role)
                except BaseException as e:
                    self.failed = e
                    self.cond.notify_all()
                    raise
            self.cond.wait_for(lambda: self.failed is not None or self.turn == self._turn_of(role, step))
            if self.failed is not None:
                raise RuntimeError("the other role's trainer failed") from self.failed

    def finish(self, role: str, error: BaseException | None = None) -> None:
        with self.cond:
            if error is None and self.order[self.turn % len(self.order)] == role:
                try:
                    self._end_turn(role)
                except BaseException as e:  # noqa: BLE001 - a failed hand-over must wake the other role
                    error = e
            if error is not None:
                self.failed = error
            self.cond.notify_all()

    def _end_turn(self, role: str) -> None:
        self.on_turn_end(role)
        self.turn += 1
        self.cond.notify_all()


class _Rollouts:
    """Real rollouts of one role over the training questions, with the other role frozen in ``frozen``."""

    def __init__(self, role: str, frozen: Any, index: Any, questions: dict[str, TrainQuestion], stage: GRPOStage,
                 policy: PolicyChat, passage_chars: int):
        self.role = role
        self.frozen = frozen
        self.index = index
        self.questions = questions
        self.stage = stage
        self.policy = policy
        # the trained executor's own samples are scored as sampled: no resampling or extractive replacement
        self.exec_cfg = ExecutorConfig(passage_chars=passage_chars, answer_max_tokens=stage.executor_tokens,
                                       check_answers=False)
        self.plan_cfg = PlannerConfig(max_tokens=stage.planner_tokens)

    def group(self, qid: str) -> tuple[list[str], dict[str, list[Any]]]:
        """n completions for question ``qid`` and their reward columns."""
        q = self.questions[qid]
        n = self.stage.group_size
        if self.role == "planner":
            planner = Planner(self.policy, PlannerConfig(max_tokens=self.stage.planner_tokens,
                                                         group_temperature=self.stage.temperature))
            texts = self.policy.chat(planner.messages(q.question), n=n, temperature=self.stage.temperature,
                                     max_tokens=self.stage.planner_tokens).texts
            # the frozen executor runs as deployed (answer checks on), so plans are rewarded for what users get
            executor = Executor(self.frozen, self.index, replace(self.exec_cfg, adapter="executor", check_answers=True))
            acc, fmt = [], []
            for t in texts:
                plan = parse_plan(t, q.question, max_steps=self.plan_cfg.max_steps)
                ex = executor.run(q.question, plan.steps)
                acc.append(accuracy(ex.answer, q.answers))
                fmt.append(not plan.fallback)
            return texts, {"accuracy": acc, "first_accuracy": acc, "replanned": [False] * n, "format_ok": fmt}
        planner = Planner(self.frozen, PlannerConfig(max_tokens=self.stage.planner_tokens, adapter="planner"))
        plan = planner.plan(q.question)[0]
        sampler = _GroupSampler(self.policy, n, self.stage.temperature)
        ex = Executor(sampler, self.index, self.exec_cfg).run(q.question, plan.steps)
        texts = sampler.texts or [""] * n
        acc, cites = [], []
        for t in texts:
            answer, cited = parse_answer(t, ex.evidence_ids)
            acc.append(accuracy(answer, q.answers))
            cites.append(len(cited))
        return texts, {"accuracy": acc, "tool_calls": [len(ex.steps)] * n, "citations": cites}


class _GroupSampler:
    """A chat model for the executor's answer call that samples the whole group at once and keeps every sample."""

    def __init__(self, policy: PolicyChat, n: int, temperature: float):
        self.policy, self.n, self.temperature = policy, n, temperature
        self.texts: list[str] = []
        self.name = policy.name

    def chat(self, messages: Any, config: GenerationConfig | None = None, **overrides: Any) -> ChatResult:
        cfg = resolve_config(config, overrides)
        res = self.policy.chat(messages, GenerationConfig(max_tokens=cfg.max_tokens, n=self.n,
                                                          temperature=self.temperature))
        self.texts = res.texts
        return res


def run_alternating(recipe: TrainRecipe, questions: Sequence[TrainQuestion], index: Any, *, model_dir: Path,
                    start_adapters: dict[str, Path], work_dir: Path, device: str = "auto",
                    on_step: Callable[[str, int, dict[str, float]], None] | None = None) -> AlternationResult:
    """Alternate GRPO over the roles in ``recipe.roles`` for ``recipe.grpo.rounds`` rounds."""
    offline_env()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    require("trl")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from ...llm.local import LocalChatModel

    stage = recipe.grpo
    dev = resolve_device(device)
    cpu = dev == "cpu"
    roles = [r for r in ("planner", "executor") if r in recipe.roles]
    frozen = LocalChatModel(model_dir, device=dev)
    for role, path in start_adapters.items():
        frozen.load_adapter(role, path)
    for role in roles:
        if role not in start_adapters:
            frozen.add_adapter(role)
    by_id = {q.qid: q for q in questions}
    result = AlternationResult()
    trainers: dict[str, Any] = {}
    scratch = work_dir / "sync"

    def publish(role: str) -> None:  # the role's turn ended: the frozen copy takes its latest weights
        tr = trainers[role]
        tr.model.save_pretrained(str(scratch / role))
        frozen.load_adapter(role, scratch / role)

    baton = _Baton(roles, stage.steps_per_round, publish)
    steps_total = stage.rounds * stage.steps_per_round
    for role in roles:
        import torch

        model, tok = load_base(model_dir, dev, start_adapters.get(role), trainable=True)
        policy = PolicyChat(model, tok, name=f"{role}-policy")
        rollouts = _Rollouts(role, frozen, index, by_id, stage, policy, recipe.passage_chars)
        counter = {"step": 0}

        def rollout_func(prompts_in: list, trainer: Any, _role: str = role, _r: _Rollouts = rollouts,
                         _c: dict = counter, _tok: Any = tok) -> dict[str, list | None]:
            baton.wait(_role, _c["step"])
            t0 = time.perf_counter()
            prompt_ids, completion_ids = [], []
            cols: dict[str, list] = defaultdict(list)
            n = stage.group_size
            for i in range(0, len(prompts_in), n):
                qid = _qid_of(prompts_in[i])
                texts, extra = _r.group(qid)
                messages = _r.policy.last_messages
                ids = list(_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False))
                for j, t in enumerate(texts):
                    comp = list(_tok(t, add_special_tokens=False)["input_ids"])
                    limit = stage.planner_tokens if _role == "planner" else stage.executor_tokens
                    prompt_ids.append(ids)
                    completion_ids.append(comp[: limit - 1] + [_tok.eos_token_id])
                    for k, v in extra.items():
                        cols[k].append(v[j])
                rw = (planner_reward if _role == "planner" else executor_reward)(texts, **extra)
                result.rewards[_role].append(sum(rw) / len(rw))
                result.zero_variance[_role] += int(max(rw) - min(rw) < 1e-9)
            result.seconds[_role] += time.perf_counter() - t0
            result.tokens[_role] += sum(map(len, prompt_ids)) + sum(map(len, completion_ids))
            _c["step"] += 1
            return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None, **cols}

        bf16 = (not cpu) and torch.cuda.is_bf16_supported()
        args = GRPOConfig(
            output_dir=str(work_dir / role), use_cpu=cpu, bf16=bf16, fp16=(not cpu) and not bf16, report_to=[],
            save_strategy="no", logging_steps=1, disable_tqdm=True, max_steps=steps_total,
            num_generations=stage.group_size, per_device_train_batch_size=stage.group_size,
            gradient_accumulation_steps=1, learning_rate=stage.learning_rate, lr_scheduler_type="constant",
            warmup_steps=0, beta=0.0, max_completion_length=max(stage.planner_tokens, stage.executor_tokens),
            seed=recipe.seed, gradient_checkpointing=False,
        )
        rows = [{"prompt": [{"role": "user", "content": f"[{q.qid}] {q.question}"}]} for q in questions]
        reward = planner_reward if role == "planner" else executor_reward
        # TRL types a reward function as returning list[float | None]; list is invariant, so list[float] is refused
        trainers[role] = GRPOTrainer(model=model, reward_funcs=reward,  # type: ignore[arg-type]
                                     args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                                     rollout_func=rollout_func)

    errors: dict[str, BaseException] = {}

    def train(role: str) -> None:
        t0 = time.perf_counter()
        try:
            trainers[role].train()
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            errors[role] = e
            baton.finish(role, e)
            return
        result.steps[role] = int(trainers[role].state.global_step)
        result.losses[role] = [float(h["loss"]) for h in trainers[role].state.log_history if "loss" in h]
        log.info("%s GRPO done in %.0f s", role, time.perf_counter() - t0)
        baton.finish(role)
        if baton.failed is not None:
            errors.setdefault(role, baton.failed)

    threads = [threading.Thread(target=train, args=(r,), name=f"grpo-{r}") for r in roles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        role, err = next(iter(errors.items()))
        raise RuntimeError(f"alternating GRPO failed while training the {role}: {err}") from err
    for role in roles:
        result.models[role] = trainers[role].model
    return result


def _qid_of(prompt: Any) -> str:
    text = prompt[0]["content"] if isinstance(prompt, list) else str(prompt)
    return text[1: text.index("]")]
