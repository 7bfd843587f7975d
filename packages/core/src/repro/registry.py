"""One registry type for datasets, workloads and models: plain data, keyed by name.

The core registers its built-ins at import; ``repro.catalog`` adds what paper packages declare.
A registry never imports anything to look a name up, so listing one imports no paper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from repro.errors import ReproError, unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> items of one *kind* ("dataset", "workload", "model").

    ``register`` refuses a second, different item under a name already taken (the same item
    again is fine, so re-registering on a second import is harmless). ``check`` runs on every new
    item before it is stored and raises ``ReproError`` naming what is wrong.
    """

    def __init__(self, kind: str, check: Callable[[str, T], None] | None = None,
                 same: Callable[[T, T], bool] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._check = check
        self._same = same or (lambda a, b: a is b or a == b)

    def register(self, name: str, item: T) -> T:
        old = self._items.get(name)
        if old is not None:
            if not self._same(old, item):
                raise ReproError(f"{self.kind} {name!r} is registered twice with different definitions")
            return old
        if self._check is not None:
            self._check(name, item)
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise unknown(self.kind, name, self._items)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
