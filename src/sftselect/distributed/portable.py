"""Selectors in a form that can be sent to Ray workers and rebuilt there.

Ray ships work to other processes with cloudpickle. Most selectors pickle as
they are, but a chat backend holding a lock or open HTTP clients (such as
:class:`~sftselect.backends.openai_compat.OpenAICompatibleBackend`) does not;
it is sent instead as its class and ``__init__`` parameters (every selector
and backend stores its parameters under their own names) and rebuilt in the
worker, which then opens its own clients.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.base import Selector
from ..core.validation import param_error

__all__ = ["PortableObject", "PortableSelector"]


def _picklable(obj: Any) -> bool:
    import ray.cloudpickle as cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class PortableObject:
    """An object, or its class and ``__init__`` parameters when it does not pickle."""

    value: Any = None
    cls: type | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, obj: Any, owner: str, name: str) -> PortableObject:
        if _picklable(obj):
            return cls(value=obj)
        sig = inspect.signature(type(obj).__init__)
        names = [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if all(hasattr(obj, n) for n in names):
            params = {n: getattr(obj, n) for n in names}
            if _picklable(params):
                return cls(cls=type(obj), params=params)
        raise param_error(
            owner,
            name,
            "an object that pickles, or whose __init__ parameters are stored as attributes "
            "of the same names and pickle (it is rebuilt on each Ray worker)",
            obj,
        )

    def build(self) -> Any:
        if self.cls is None:
            return self.value
        return self.cls(**self.params)


@dataclass(frozen=True)
class PortableSelector:
    """A selector's class and parameters, each parameter made portable."""

    cls: type
    params: Mapping[str, PortableObject]

    @classmethod
    def of(cls, selector: Selector, overrides: Mapping[str, Any] | None = None) -> PortableSelector:
        owner = type(selector).__name__
        values = dict(selector.get_params(deep=False))
        for name, value in (overrides or {}).items():
            if name in values:
                values[name] = value
        return cls(type(selector), {n: PortableObject.of(v, owner, n) for n, v in values.items()})

    def build(self) -> Selector:
        return self.cls(**{n: p.build() for n, p in self.params.items()})
