"""Lazy public names for packages: ``import miaflow.x`` stays light, and the heavy module behind a name loads on
first use (PEP 562 ``__getattr__``). One helper so every package resolves and caches its names the same way.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    ``where`` maps a public name to its module: relative (``".store"`` or ``"store"``) to ``package``, or absolute
    (``"miaflow.llm.base"``). A resolved name is cached in the package's namespace.
    """

    def _module(target: str) -> Any:
        if target.startswith("."):
            return importlib.import_module(target, package)
        if target.startswith("miaflow.") or target == "miaflow":
            return importlib.import_module(target)
        return importlib.import_module(f".{target}", package)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level hook's name
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(_module(target), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(names) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
