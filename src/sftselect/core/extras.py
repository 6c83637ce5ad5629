"""Importing an optional dependency, or a one-line error naming the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..exceptions import MissingExtraError

__all__ = ["require_extra"]


def require_extra(module: str, extra: str, owner: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` saying ``pip install "sftselect[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{owner} needs {module.split('.')[0]}, which is not installed: "
            f'pip install "sftselect[{extra}]".'
        ) from exc
