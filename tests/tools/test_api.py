import subprocess
import sys

import miaflow.tools as tools


def test_public_names_resolve():
    for name in tools.__all__:
        assert getattr(tools, name) is not None


def test_import_is_light():
    code = ("import sys, miaflow.tools as t; t.load_corpus; t.Document; t.SearchTool; "
            "heavy = [m for m in ('chromadb', 'torch', 'sentence_transformers', 'transformers') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_doctests():
    import doctest
    import importlib

    for name in ("_passages", "_paths", "loaders", "index"):
        module = importlib.import_module(f"miaflow.tools.{name}")
        result = doctest.testmod(module, optionflags=doctest.IGNORE_EXCEPTION_DETAIL)
        assert result.failed == 0, name
