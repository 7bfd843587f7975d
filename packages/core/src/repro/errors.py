"""One exception type for every user-facing mistake, so the CLI can print it once and exit 2."""

from __future__ import annotations

from collections.abc import Iterable


class ReproError(Exception):
    """A problem the user can fix (bad config, unknown name, corrupted file, no data source)."""


def unknown(kind: str, value: object, choices: Iterable[object]) -> ReproError:
    """The error for a name that is not one of the valid choices."""
    valid = ", ".join(sorted(str(c) for c in choices)) or "(none registered)"
    return ReproError(f"unknown {kind} {value!r}; valid choices: {valid}")
