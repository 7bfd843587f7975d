"""Paper packages, found through the entry-point group ``repro.papers`` and imported lazily.

A paper package declares ``[project.entry-points."repro.papers"] <slug> = "<module>:PAPER"``;
listing papers reads only the entry points, so it never imports a paper's dependencies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from repro.errors import ReproError, unknown

if TYPE_CHECKING:
    from repro.paper import Paper

GROUP = "repro.papers"


@dataclass(frozen=True)
class PaperEntry:
    slug: str
    entry_point: EntryPoint

    def load(self) -> "Paper":
        return _load(self.entry_point)


@functools.cache
def _load(ep: EntryPoint) -> "Paper":
    from repro.paper import Paper

    paper = ep.load()
    if not isinstance(paper, Paper):
        raise ReproError(f"entry point {ep.name} = {ep.value} is not a repro.paper.Paper")
    if paper.slug != ep.name:
        raise ReproError(f"entry point {ep.name!r} loads a paper with slug {paper.slug!r}")
    return paper


@functools.cache
def papers() -> dict[str, PaperEntry]:
    return {ep.name: PaperEntry(ep.name, ep) for ep in entry_points(group=GROUP)}


def get_paper(slug: str) -> "Paper":
    known = papers()
    if slug not in known:
        raise unknown("paper", slug, known)
    return known[slug].load()
