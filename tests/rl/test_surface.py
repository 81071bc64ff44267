import subprocess
import sys

from typer.testing import CliRunner


def test_rl_imports_stay_light():
    code = ("import sys, miaflow.rl, miaflow.rl.rewards, miaflow.rl.buffer, miaflow.rl.adapters, miaflow.rl.worker, "
            "miaflow.cli.session, miaflow.bench.session; "
            "heavy = [m for m in ('torch', 'trl', 'peft', 'transformers', 'chromadb') if m in sys.modules]; "
            "assert not heavy, heavy; "
            "assert set(miaflow.rl.__all__) <= set(dir(miaflow.rl)); [getattr(miaflow.rl, n) for n in miaflow.rl.__all__]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_session_commands_are_registered():
    from miaflow.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["session", "--help"])
    assert res.exit_code == 0 and "--learn" in res.output and "--resume" in res.output
    res = runner.invoke(app, ["bench", "session", "--help"])
    assert res.exit_code == 0 and "--epochs" in res.output
