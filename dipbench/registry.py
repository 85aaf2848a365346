"""One small registry class, used once per axis (operators, priors, solvers, datasets, metrics)."""
from __future__ import annotations

from typing import Any, Callable, Dict


class UnknownName(KeyError):
    """Raised when a name is not registered; the message names the axis and the choices."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry:
    def __init__(self, axis: str):
        self.axis = axis
        self._items: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable:
        def deco(obj):
            if name in self._items:
                raise ValueError(f"{self.axis} '{name}' registered twice")
            self._items[name] = obj
            obj.registry_name = name
            return obj
        return deco

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(
                f"unknown {self.axis} '{name}'; choices: {', '.join(sorted(self._items))}"
            ) from None

    def build(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
