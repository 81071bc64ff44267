"""``miaflow train``: the offline training stage (SFT warm start, then alternating GRPO) for the planner and
executor adapters, and ``--install`` of a finished run's adapters as the bundled defaults."""

from __future__ import annotations

from pathlib import Path

import typer


def train_command(
    data: Path = typer.Option(None, "--data", help="A datasets folder holding train_pool/, hotpotqa/train.jsonl and "
                              "musique/musique_train.json (never the report files dev.jsonl or locomo_dev.json)."),
    hotpot: list[Path] = typer.Option(None, "--hotpot", help="HotpotQA training file (repeatable; instead of --data)."),
    squad: list[Path] = typer.Option(None, "--squad", help="SQuAD v1.1 training file (repeatable)."),
    musique: list[Path] = typer.Option(None, "--musique", help="MuSiQue training file (repeatable)."),
    recipe: str = typer.Option("bundled", "--recipe", help="Recipe preset: bundled (both roles from scratch), reader "
                               "(a longer executor pass continuing --init-from) or tiny."),
    init_from: Path = typer.Option(None, "--init-from", help="Run folder or adapters folder (one subfolder per role) "
                                   "whose adapters the SFT stages continue from."),
    out: Path = typer.Option(Path("train-run"), "--out", help="Run folder (versions, metrics, curves, checkpoints)."),
    model_dir: Path = typer.Option(None, "--model-dir", help="Base model folder (default: the bundled model)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    max_steps: int = typer.Option(None, "--max-steps", min=0, help="Cap every stage's steps (smoke runs)."),
    roles: str = typer.Option("", "--roles", help="Roles to train, comma-separated (default: the recipe's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    install: bool = typer.Option(False, "--install", help="After training, install the run's adapters as the "
                                 "bundled defaults (into the package's data folder)."),
) -> None:
    """Train the planner and executor adapters (MIA's offline stage) through TRL, on LoRA adapters of the base model."""
    from dataclasses import replace

    from rich.console import Console

    from ..errors import MiaflowError
    from ..rl.train import DataFiles, recipe_preset, train
    from ..rl.train.bundle import install_run

    console = Console()
    try:
        if data is not None:
            files = DataFiles.from_shared(data)
        else:
            files = DataFiles(hotpot=tuple(map(str, hotpot or ())), squad=tuple(map(str, squad or ())),
                              musique=tuple(map(str, musique or ())))
        if not files.all():
            raise typer.BadParameter("give --data DIR or at least one --hotpot / --squad / --musique file")
        r = recipe_preset(recipe, files)
        role_list = tuple(x.strip() for x in roles.split(",") if x.strip()) if roles else r.roles
        r = replace(r, roles=role_list, init_from=str(init_from.resolve()) if init_from else r.init_from)
        r = r.with_steps(max_steps)
        run = train(r, out, model_dir=model_dir, device=device, resume=resume, progress=console.print)
        for role in r.roles:
            v = run.registry(role).current
            console.print(f"{role}: {v.name} at {v.path}")
        console.print(f"metrics: {run.root / 'metrics.json'}  curves: {run.root / 'curves.png'}")
        if install:
            target = install_run(run.root, command=" ".join(["miaflow train", f"--recipe {recipe}",
                                                                 *([f"--init-from {init_from.name}"] if init_from else [])]))
            console.print(f"installed the trained adapters into {target}")
    except MiaflowError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
