"""Old import paths of modules that moved, kept for one release with a DeprecationWarning.

``import sftselect.base`` (and the other old paths below) gives the module at its
new path and warns; they go away in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import warnings
from types import ModuleType

MOVED = {
    "sftselect.base": "sftselect.core.base",
    "sftselect.compose": "sftselect.core.compose",
    "sftselect.ranking": "sftselect.core.ranking",
    "sftselect.provenance": "sftselect.core.provenance",
    "sftselect.io": "sftselect.data.io",
    "sftselect.formats": "sftselect.data.formats",
    "sftselect.sample": "sftselect.data.sample",
    "sftselect.reference": "sftselect.data.reference",
    "sftselect.fingerprint": "sftselect.models.fingerprint",
    "sftselect.train.loading": "sftselect.models.loading",
    "sftselect.clustering": "sftselect.embedding.clustering",
    "sftselect.templates": "sftselect.prompts.templates",
    "sftselect.answer_files": "sftselect.generate.answer_files",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; import it from there (the old path goes away in 0.3).",
        DeprecationWarning,
        stacklevel=3,
    )


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(self.old, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The module at its new path is already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old name of a moved module and hands out the module at its new name."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(fullname, new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (importing sftselect calls this)."""
    import sys

    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
