"""The trained adapters shipped with the package for the bundled model, and how a training run installs them.

Layout inside the package: ``miaflow/data/adapters/<role>/`` (PEFT files: ``adapter_config.json`` and
``adapter_model.safetensors``) and ``miaflow/data/adapters/MODEL_CARD.md`` (data, command, commit, figures) plus
``manifest.json`` (the same facts, machine-readable). :class:`~miaflow.llm.local.LocalChatModel` loads them when it
runs the bundled model, unless told not to (``trained_adapters=False``, ``--base-model-only``, or the environment
variable ``MIAFLOW_BASE_MODEL_ONLY=1``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ...errors import InvalidInputError
from ...llm.bundled import ADAPTER_ROLES as ROLES
from ...llm.bundled import bundled_adapters_dir

__all__ = ["install_run"]


def _half(src: Path, dst: Path) -> None:
    """Copy adapter weights as float16 (half the package size; PEFT casts them back to the model's dtype on load)."""
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(src))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()}, str(dst))


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _card(manifest: dict[str, Any]) -> str:
    lines = ["# Trained adapters for the bundled SmolLM2-135M-Instruct", "",
             "LoRA adapters of the planner and executor roles, trained by miaflow's offline stage (SFT warm start, "
             "then alternating GRPO through TRL). Loaded by default with the bundled model; "
             "`--base-model-only` (or `MIAFLOW_BASE_MODEL_ONLY=1`) turns them off.", "",
             *[f"- command: `{c}`" for c in manifest.get("commands", [manifest['command']])], f"- commit: {manifest['commit']}",
             f"- recipe: {manifest['recipe']}", f"- installed: {manifest['installed']}", "", "## Data", ""]
    for path, digest in manifest["data"].get("files", {}).items():
        lines.append(f"- `{Path(path).name}` sha256 {digest[:16]}...")
    lines.append("")
    lines.append("Never trained or tuned on the report files (`hotpotqa/dev.jsonl`, `locomo_dev.json`).")
    lines += ["", "## Figures", ""]
    for role, info in manifest["roles"].items():
        for stage in info["stages"]:
            extra = (f"loss {stage['loss']:.3f}" if stage.get("loss") is not None else
                     f"mean group reward {stage.get('mean_reward')}, {stage.get('zero_variance_groups')} zero-variance groups")
            lines.append(f"- {role} {stage.get('stage')}: {stage.get('steps')} steps, {stage.get('seconds')} s, "
                         f"{stage.get('tokens_per_second')} tokens/s, {extra}")
    for k, v in manifest.get("evaluation", {}).items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def install_run(run_root: str | Path, *, command: str, target: Path | None = None,
                evaluation: dict[str, Any] | None = None) -> Path:
    """Copy the current version of each role of a finished run into ``target`` (the package data by default)."""
    from ..adapters import AdapterRegistry

    run_root = Path(run_root)
    target = target or bundled_adapters_dir()
    recipe = json.loads((run_root / "recipe.json").read_text())
    data = json.loads((run_root / "data.json").read_text()) if (run_root / "data.json").exists() else {}
    old = json.loads((target / "manifest.json").read_text()) if (target / "manifest.json").exists() else {}
    continued = bool(recipe.get("init_from"))
    roles: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix=".adapters.", dir=target.parent if target.parent.exists() else None))
    try:
        for role in ROLES:
            if not (run_root / role).exists() or role not in recipe.get("roles", ROLES):
                # A run that trained only some roles keeps the installed adapters of the others as they are.
                if (target / role / "adapter_config.json").exists() and role in old.get("roles", {}):
                    shutil.copytree(target / role, tmp / role)
                    roles[role] = old["roles"][role]
                continue
            reg = AdapterRegistry(run_root / role)
            v = reg.current
            if v.path is None:
                continue
            (tmp / role).mkdir(parents=True)
            shutil.copy2(v.path / "adapter_config.json", tmp / role / "adapter_config.json")
            _half(v.path / "adapter_model.safetensors", tmp / role / "adapter_model.safetensors")
            stages = [{k: x.metrics.get(k) for k in ("stage", "steps", "seconds", "tokens_per_second", "loss",
                                                     "mean_reward", "zero_variance_groups")}
                      for x in reg.versions() if x.path is not None]
            if continued and role in old.get("roles", {}):
                stages = old["roles"][role]["stages"] + [{**st, "recipe": recipe.get("name")} for st in stages]
            roles[role] = {"version": v.name, "stages": stages}
        if not roles:
            raise InvalidInputError(f"{run_root} has no trained adapter version to install")
        commands = [*old.get("commands", [old["command"]] if "command" in old else []), command] if continued \
            else [command]
        files = {**(old.get("data", {}).get("files", {}) if continued else {}), **data.get("files", {})}
        manifest = {"command": " && ".join(commands), "commands": commands, "commit": _commit(),
                    "recipe": recipe.get("name"), "installed": time.strftime("%Y-%m-%d"),
                    "data": {**data, "files": files}, "roles": roles, "evaluation": evaluation or {}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        (tmp / "MODEL_CARD.md").write_text(_card(manifest))
        for p in (tmp, *tmp.rglob("*")):  # package data: readable by everyone
            p.chmod(0o755 if p.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
