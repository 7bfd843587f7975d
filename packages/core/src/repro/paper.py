"""What a paper package declares: its methods, its experiments per scale, and its claims.

A paper package exports one ``Paper`` (its entry point). The core runs it; the package never
copies a training loop, a data loader, a logger or a report writer.

A ``Method`` says what it is: its fixed switches (``fixed``: e.g. WUS's ``skip``, approx's keep
ratio and strategy) are part of the method, not of an experiment. Experiments carry only the
tunable hyper-parameters; one that sets a method's fixed switch is refused, naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.errors import ReproError, unknown
from repro.scales import SCALES, check_scale

if TYPE_CHECKING:  # annotations only: these modules sit beside or above this one
    from repro.claims import Claim
    from repro.datasets import DatasetSpec
    from repro.run import RunContext
    from repro.workloads import Workload


def _no_check(hparams: dict[str, Any]) -> None:
    return None


class NotApplicable(ReproError):
    """Raised by a method's ``on_workload``: it cannot run on that shared workload; the message says why."""


# Keys a method's shared-workload setup may not set: the leaderboard fixes the budget and the
# evaluation protocol for every entrant alike.
PROTOCOL_KEYS = ("epochs", "eval_every", "checkpoint_every", "plateau_patience", "plateau_min_delta")


@dataclass(frozen=True)
class Method:
    """A training algorithm: ``fit(ctx, hparams)`` trains on ``ctx.workload`` and records evaluations.

    Attributes:
        fixed: the switches that make this method what it is, merged over the experiment's
            tunable hyper-parameters; an experiment may not set them.
        validate: ``validate(hparams)`` (the merged hyper-parameters) raises ``ReproError``
            naming the bad key; it runs before any work starts.
        hparams_doc: one line per accepted hyper-parameter (``repro experiments`` prints it).
        on_workload: how the method is set up on a shared (leaderboard) workload it was not written
            for: ``on_workload(workload)`` returns its tunable hyper-parameters there (its defaults
            for that workload family, merged over the board's gradient settings; never the budget
            keys ``PROTOCOL_KEYS``), or raises ``NotApplicable`` saying why it cannot run there.
            None: the method declares no shared-workload setup (the board lists it as not applicable).
        gradient: the method takes the core's ``GradientConfig`` keys (every
            ``repro.trainer.gradient_method`` does); the leaderboard then gives it the strong
            baseline's optimizer settings. Other methods get only the budget (``epochs``).
        distributed: the method trains the same in several processes (``repro run --processes N``,
            ``repro.distributed``); a method that does not say so is refused there.
        plain: set by ``repro.trainer.gradient_method`` for a method without hooks, own config or
            fixed switches: the core's gradient descent itself.
    """

    name: str
    fit: Callable[["RunContext", dict[str, Any]], None]
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    validate: Callable[[dict[str, Any]], None] = _no_check
    is_baseline: bool = False
    hparams_doc: str = ""
    on_workload: Callable[["Workload"], Mapping[str, Any]] | None = None
    gradient: bool = False  # takes the core's GradientConfig keys (``repro.trainer.gradient_method``)
    distributed: bool = False  # may train in several processes (DDP)
    # the core's gradient descent itself: no hooks, no own hyper-parameters, no fixed switches, so
    # two plain methods with the same GradientConfig are the same computation (the leaderboard
    # runs such an entrant once, as the board baseline)
    plain: bool = False

    def setup_for(self, workload: "Workload") -> dict[str, Any]:
        """The method's tunable hyper-parameters on a shared workload; ``NotApplicable`` if it cannot run there."""
        if self.on_workload is None:
            raise NotApplicable(f"method {self.name!r} declares no setup for shared workloads")
        setup = dict(self.on_workload(workload))
        budget = sorted(set(setup) & set(PROTOCOL_KEYS))
        if budget:
            raise ReproError(f"method {self.name!r}: its setup for workload {workload.name!r} sets {budget[0]!r}, "
                             f"which the leaderboard protocol fixes for every method ({', '.join(PROTOCOL_KEYS)})")
        self.hparams(setup, f"setup of method {self.name!r} for workload {workload.name!r}")  # no fixed switch
        return setup

    def hparams(self, tunable: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """The method's hyper-parameters: *tunable* with the fixed switches merged over them."""
        clash = sorted(set(tunable) & set(self.fixed))
        if clash:
            raise ReproError(f"{where or 'hyper-parameters'}: {clash[0]!r} is a fixed switch of method "
                             f"{self.name!r} (= {self.fixed[clash[0]]!r}) and cannot be set; "
                             f"declare another method instead")
        return {**tunable, **self.fixed}


@dataclass(frozen=True)
class Experiment:
    """One comparison: a workload and the methods (with their tunable hyper-parameters) run on it."""

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
    models: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
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
        for name, m in self.methods.items():
            if name != m.name:
                raise ReproError(f"paper {self.slug!r}: method {m.name!r} is registered as {name!r}")
        for scale, exps in self.experiments.items():
            if scale not in SCALES:
                raise unknown(f"scale in paper {self.slug!r}", scale, SCALES)
            for exp in exps.values():
                for m, tunable in exp.methods.items():
                    if m not in self.methods:
                        raise unknown(f"method in experiment {exp.name!r} of paper {self.slug!r}", m, self.methods)
                    self.methods[m].hparams(tunable, f"experiment {exp.name!r} ({scale}) of paper {self.slug!r}")
        for m, tiny in self.tiny_hparams.items():
            if m not in self.methods:
                raise unknown(f"method in tiny_hparams of paper {self.slug!r}", m, self.methods)
            self.methods[m].hparams(tiny, f"tiny_hparams of paper {self.slug!r}")  # no fixed switch
        for claim in self.claims:
            if claim.not_run:
                continue
            for scale in claim.scales:
                for name in claim.experiment_names:
                    exp = self.experiments.get(scale, {}).get(name)
                    if exp is None:
                        raise ReproError(
                            f"claim {claim.id!r} of paper {self.slug!r} names experiment {name!r}, "
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

    def trial_hparams(self, scale: str, experiment: str, method: str) -> dict[str, Any]:
        """The hyper-parameters a trial runs with (tunable from the experiment, fixed from the method)."""
        exp = self.experiment(scale, experiment)
        if method not in exp.methods:
            raise unknown(f"method of experiment {experiment!r}", method, exp.methods)
        return self.method(method).hparams(exp.methods[method], f"experiment {experiment!r}")

    def claims_at(self, scale: str) -> list["Claim"]:
        return [c for c in self.claims if check_scale(scale) in c.scales or not c.scales]
