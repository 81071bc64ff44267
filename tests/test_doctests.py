"""Every module's doctests run: each module of ``miaflow`` whose source has a ``>>>`` prompt line is imported and
its examples run; a module with a prompt line but no example the finder collects fails too (an example out of
reach of ``doctest``, e.g. in a nested function, would otherwise never run)."""

import doctest
import importlib
import io
import re
from pathlib import Path

import pytest

import miaflow

ROOT = Path(miaflow.__file__).parent
_PROMPT = re.compile(r"^\s*>>> ", re.MULTILINE)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(_module_name(p) for p in ROOT.rglob("*.py") if _PROMPT.search(p.read_text(encoding="utf-8")))


def test_modules_with_doctests_found():
    # the modules that carry examples today; a rename or a lost file shows up here rather than as fewer tests
    assert len(MODULES) >= 25, MODULES
    assert {"miaflow.rl.rewards", "miaflow._io", "miaflow.workflows.builder"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    assert tests, f"{name} has a '>>>' line but no doctest example is collected from it"
    if all(ex.options.get(doctest.SKIP) for t in tests for ex in t.examples):
        pytest.skip(f"{name}: every example is marked +SKIP (it needs a folder or a server)")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
    assert runner.tries > 0
