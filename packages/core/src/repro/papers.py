"""Paper packages, found through the entry-point group ``repro.papers`` and imported lazily.

A paper package declares ``[project.entry-points."repro.papers"] <slug> = "<module>:PAPER"``;
listing papers reads only the entry points, so it never imports a paper's dependencies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from repro.errors import ReproError, unknown
from repro.paper import Paper


GROUP = "repro.papers"


@dataclass(frozen=True)
class PaperEntry:
    slug: str
    entry_point: EntryPoint

    def load(self) -> Paper:
        return _load(self.entry_point)


# Papers a test (or a host program) adds without installing a distribution: slug -> Paper.
_EXTRA: dict[str, Paper] = {}


@functools.cache
def _load(ep: EntryPoint) -> Paper:
    paper = ep.load()
    if not isinstance(paper, Paper):
        raise ReproError(f"entry point {ep.name} = {ep.value} is not a repro.paper.Paper")
    if paper.slug != ep.name:
        raise ReproError(f"entry point {ep.name!r} loads a paper with slug {paper.slug!r}")
    return paper


@functools.cache
def _entry_points() -> dict[str, PaperEntry]:
    return {ep.name: PaperEntry(ep.name, ep) for ep in entry_points(group=GROUP)}


def paper_slugs() -> list[str]:
    """Every installed (or added) paper's slug; imports no paper."""
    return sorted({*_entry_points(), *_EXTRA})


def papers() -> dict[str, PaperEntry]:
    """The installed papers' entry points (papers added with ``add_paper`` are not listed here)."""
    return dict(_entry_points())


def get_paper(slug: str) -> Paper:
    if slug in _EXTRA:
        return _EXTRA[slug]
    known = _entry_points()
    if slug not in known:
        raise unknown("paper", slug, paper_slugs())
    return known[slug].load()


def add_paper(paper: Paper) -> None:
    """Make *paper* findable by slug without an installed entry point (tests, notebooks)."""
    _EXTRA[paper.slug] = paper


def remove_paper(slug: str) -> None:
    _EXTRA.pop(slug, None)
