"""What a paper package declares: its methods, its experiments per scale, and its claims.

A paper package exports one ``Paper`` (its entry point). The core runs it; the package never
copies a training loop, a data loader, a logger or a report writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.config import SCALES, check_scale
from repro.errors import ReproError, unknown

if TYPE_CHECKING:
    from repro.claims import Claim
    from repro.datasets import DatasetSpec
    from repro.run import RunContext
    from repro.workloads import Workload


@dataclass(frozen=True)
class Method:
    """A training algorithm: ``fit(ctx, hparams)`` trains on ``ctx.workload`` and records evaluations.

    ``validate(hparams)`` raises ``ReproError`` naming the bad key; it runs before any work starts.
    """

    name: str
    fit: Callable[["RunContext", dict[str, Any]], None]
    description: str
    validate: Callable[[dict[str, Any]], None] = lambda hparams: None
    is_baseline: bool = False


@dataclass(frozen=True)
class Experiment:
    """One comparison: a workload and the methods (with their hyper-parameters) run on it."""

    name: str
    workload: str
    methods: Mapping[str, dict[str, Any]]
    description: str = ""


@dataclass(frozen=True)
class Paper:
    slug: str
    title: str
    authors: str
    reference: str  # e.g. "arXiv 2010.02626"
    url: str
    summary: str
    methods: Mapping[str, Method]
    experiments: Mapping[str, Mapping[str, Experiment]]  # scale -> name -> experiment
    claims: tuple["Claim", ...]
    package_dir: Path
    datasets: tuple["DatasetSpec", ...] = ()
    workloads: tuple["Workload", ...] = ()
    report_curves: tuple[str, ...] = ()  # extra history columns the report plots
    notes: str = ""  # what has *not* been checked against the paper, shown in the report
    # Per method: hyper-parameter overrides that make it train in about a second. The generic
    # tests (tests/test_papers_generic.py) run every method of every paper with them, including
    # an interrupted-and-resumed run; every method must accept ``checkpoint_every``.
    tiny_hparams: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # Kernel-bearing packages: a callable returning ``repro.bench.KernelBenchmark`` cases, timed by
    # ``repro bench <slug>`` against the dense product. None: the paper has no kernels.
    kernel_benchmarks: Callable[[], Sequence[Any]] | None = None

    def __post_init__(self) -> None:
        for scale, exps in self.experiments.items():
            if scale not in SCALES:
                raise unknown(f"scale in paper {self.slug!r}", scale, SCALES)
            for exp in exps.values():
                for m in exp.methods:
                    if m not in self.methods:
                        raise unknown(f"method in experiment {exp.name!r} of paper {self.slug!r}", m, self.methods)
        for m in self.tiny_hparams:
            if m not in self.methods:
                raise unknown(f"method in tiny_hparams of paper {self.slug!r}", m, self.methods)
        for claim in self.claims:
            for scale in claim.scales:
                exp = self.experiments.get(scale, {}).get(claim.experiment)
                if exp is None:
                    raise ReproError(
                        f"claim {claim.id!r} of paper {self.slug!r} names experiment {claim.experiment!r}, "
                        f"which scale {scale!r} does not define"
                    )
                for m in filter(None, (claim.method, claim.baseline)):
                    if m not in exp.methods:
                        raise unknown(f"method of claim {claim.id!r}", m, exp.methods)

    def experiments_at(self, scale: str) -> Mapping[str, Experiment]:
        return self.experiments.get(check_scale(scale), {})

    def experiment(self, scale: str, name: str) -> Experiment:
        exps = self.experiments_at(scale)
        if name not in exps:
            raise unknown(f"experiment of paper {self.slug!r} at scale {scale!r}", name, exps)
        return exps[name]

    def method(self, name: str) -> Method:
        if name not in self.methods:
            raise unknown(f"method of paper {self.slug!r}", name, self.methods)
        return self.methods[name]

    def claims_at(self, scale: str) -> list["Claim"]:
        return [c for c in self.claims if check_scale(scale) in c.scales or not c.scales]
