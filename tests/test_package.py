"""The package surface: a light import, every public name resolves, the CLI starts fast."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, miaflow; heavy = [m for m in ('torch', 'transformers', 'trl', 'chromadb', 'langgraph', "
        "'sentence_transformers', 'peft') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_public_name_resolves():
    import miaflow

    for name in miaflow.__all__:
        assert getattr(miaflow, name) is not None, name


def test_cli_help_does_not_load_heavy_libraries():
    code = (
        "import sys\nfrom miaflow.cli import app\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'chromadb', 'langgraph') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    help_out = subprocess.run([sys.executable, "-c", "from miaflow.cli import main; main()", "--help"],
                              capture_output=True, text=True)
    assert help_out.returncode == 0
    assert "bench" in help_out.stdout and "models" in help_out.stdout
