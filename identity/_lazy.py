"""Names a package exports but imports on first use (PEP 562), shared by every lazy module.

Why: a command-line command should pay only for the modules it uses (cryptography,
the API's result records); ``lazy_names`` gives a module the ``__getattr__`` and
``__dir__`` that load each name from its home module once, then keep it.

Invariants: pure (importlib only); an unknown name raises ``AttributeError`` as a
module without it would.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    module: str, namespace: dict[str, Any], homes: Mapping[str, str], exported: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``module``: each name in ``homes`` is imported from
    its home module on first use and stored in ``namespace`` (the module's globals)."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted([*namespace, *exported])

    return getattr_, dir_
