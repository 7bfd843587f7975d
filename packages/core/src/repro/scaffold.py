"""``repro new <slug>``: a paper package with the standard files, registered in the workspace.

Writes ``packages/<slug>/`` (README card with generated-table markers, ``metadata.json``,
``pyproject.toml`` with the ``repro.papers`` entry point, ``src/repro_<slug>/{__init__,
configuration_<slug>, methods, paper}.py``, ``claims.yaml``, ``tests/``, ``benchmarks/``), adds the
package to the root ``pyproject.toml`` (dependencies and ``[tool.uv.sources]``) and to the
containers' dependency layer (``containers/Dockerfile*``), and runs
``uv lock``. The scaffold trains as it is — a gradient baseline and a placeholder method on the
``digits_mlp`` workload — so it passes the generic per-paper tests before any paper code exists.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from repro import paths
from repro.errors import ReproError
from repro.papers import paper_slugs

SLUG = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
RESERVED = {"core", "leaderboard", "index"}  # the board's baseline id, its results/reports paths, the index


def _files(slug: str, title: str) -> dict[str, str]:
    mod = f"repro_{slug}"
    cls = "".join(part.capitalize() for part in slug.split("_")) + "Config"
    return {
        "pyproject.toml": f'''[project]
name = "repro-{slug}"
version = "0.1.0"
description = "{title}"
requires-python = ">=3.11"
dependencies = ["repro-core", "torch>=2.4"]

[project.entry-points."repro.papers"]
{slug} = "{mod}.paper:PAPER"

[tool.uv.sources]
repro-core = {{ workspace = true }}

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{mod}"]
''',
        "metadata.json": json.dumps({"name": slug, "title": title, "tldr": "TODO: one sentence",
                                     "attribution": "TODO: authors (year)", "link": "TODO: https://arxiv.org/abs/..."},
                                    indent=2) + "\n",
        "README.md": f'''# `{slug}` — {title}

TODO: authors, venue, link; the method in two sentences; the paper's headline numbers with provenance.

## How to use

```sh
uv run repro experiments {slug} --hparams
uv run repro run {slug} --experiment digits_mlp --method baseline --seed 0
uv run snakemake --cores all --config papers='["{slug}"]'
```

## Files

| file | what |
|---|---|
| `src/{mod}/configuration_{slug}.py` | the method's hyper-parameters (typed, documented, validated by `repro.hparams`) |
| `src/{mod}/methods.py` | the Hook and `METHODS` (core gradient descent + the hook) |
| `src/{mod}/paper.py`, `claims.yaml` | experiments per scale and the claims as data |
| `tests/`, `benchmarks/` | tests and benchmarks |

## Results

<!-- repro:claims paper={slug} scale=smoke -->
<!-- /repro:claims -->

## What has not been verified

TODO.
''',
        f"src/{mod}/__init__.py": f'"""{title}."""\n',
        f"src/{mod}/configuration_{slug}.py": f'''"""Hyper-parameters of the method, typed and validated by ``repro.hparams``."""

from __future__ import annotations

from dataclasses import dataclass

from repro.hparams import hp


@dataclass(frozen=True)
class {cls}:
    """TODO: the method's own hyper-parameters (units, the paper's symbol and equation)."""

    enabled: bool = hp(True, "a fixed switch: False runs the baseline through the same hook")
''',
        f"src/{mod}/methods.py": f'''"""The method as a Hook of the core Trainer, and ``METHODS``."""

from __future__ import annotations

from repro.run import RunContext
from repro.trainer import GradientConfig, Hook, TrainState, gradient_method

from {mod}.configuration_{slug} import {cls}


class {cls.removesuffix("Config")}Hook(Hook):
    """TODO: the method's events (select_batch, before_optimizer_step, ...)."""

    def __init__(self, cfg: {cls}) -> None:
        self.cfg = cfg

    def after_optimizer_step(self, state: TrainState) -> None:
        return None


def _hooks(ctx: RunContext, cfg: {cls}, gd: GradientConfig) -> list[Hook]:
    return [{cls.removesuffix("Config")}Hook(cfg)]


METHODS = {{
    "baseline": gradient_method("baseline", "the core's gradient descent through the same hook, switched off",
                                config={cls}, hooks=_hooks, fixed={{"enabled": False}}, is_baseline=True),
    "method": gradient_method("method", "TODO: the paper's method", config={cls}, hooks=_hooks,
                              fixed={{"enabled": True}}),
}}
''',
        f"src/{mod}/paper.py": f'''"""The paper's declaration for the core: methods, experiments per scale, claims."""

from __future__ import annotations

import json
from pathlib import Path

from repro.claims import load_claims
from repro.paper import Experiment, Paper

from {mod}.methods import METHODS

HERE = Path(__file__).parent
META = json.loads((HERE.parent.parent / "metadata.json").read_text())  # title and link live there only

SMOKE = {{"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 10, "batch_size": 32}}

PAPER = Paper(
    slug="{slug}",
    title=META["title"],
    authors=META["attribution"],
    reference=META["link"],
    url=META["link"],
    summary=META["tldr"],
    methods=METHODS,
    experiments={{
        "smoke": {{"digits_mlp": Experiment("digits_mlp", "digits_mlp", {{m: dict(SMOKE) for m in METHODS}},
                                           "scikit-learn digits, 64-64-10 MLP (scaffold placeholder).")}},
        "paper": {{}},
    }},
    claims=load_claims(HERE / "claims.yaml"),
    package_dir=HERE.parent.parent,
    tiny_hparams={{m: {{"epochs": 2}} for m in METHODS}},
    notes="Scaffold: nothing has been checked against the paper yet.",
)
''',
        f"src/{mod}/claims.yaml": f'''# Claims of "{title}", written as data (see repro.claims for the fields and templates).

- id: {slug}_same_accuracy_digits
  statement: "TODO: the paper's claim, as measured here"
  source: "TODO: abstract / Table N"
  paper_value: "TODO: the paper's words or number"
  experiment: digits_mlp
  metric: test_accuracy
  method: method
  baseline: baseline
  compare: difference
  expect: within
  threshold: 0.0
  tolerance: 0.01
  scales: [smoke]
''',
        f"tests/test_{slug}.py": f'''"""Tests of the {slug} package (the generic run/resume tests in tests/test_papers_generic.py cover it too)."""

from {mod}.paper import PAPER


def test_methods_have_a_baseline():
    assert any(m.is_baseline for m in PAPER.methods.values())
''',
        f"benchmarks/bench_{slug}.py": f'''"""Benchmark of the {slug} method: prints ratios against the baseline and the hardware (TODO)."""

from repro import environment

if __name__ == "__main__":
    print(f"{{environment.cpu_name()}}: TODO")
''',
    }


def _register(root: Path, slug: str) -> None:
    """Add ``repro-<slug>`` to the root pyproject's dependencies and [tool.uv.sources]."""
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    name = f"repro-{slug}"
    if f'"{name}"' in text:
        return
    deps = re.search(r"(?ms)^dependencies = \[\n(.*?)^\]", text)
    if deps is None or "[tool.uv.sources]" not in text:
        raise ReproError(f"{pyproject}: no `dependencies = [` list or [tool.uv.sources] table to register {name} in")
    text = text[:deps.end(1)] + f'    "{name}",\n' + text[deps.end(1):]
    text = text.replace("[tool.uv.sources]\n", f"[tool.uv.sources]\n{name} = {{ workspace = true }}\n", 1)
    pyproject.write_text(text)


MANIFEST_COPY = re.compile(r"(?m)^COPY packages/(\w+)/pyproject\.toml packages/\1/pyproject\.toml\n")


def _register_containers(root: Path, slug: str) -> list[Path]:
    """Copy the new package's manifest in every container's dependency layer, after the others
    (``uv sync --frozen`` there needs every workspace member's pyproject.toml)."""
    written = []
    for dockerfile in sorted((root / "containers").glob("Dockerfile*")):
        text = dockerfile.read_text()
        line = f"COPY packages/{slug}/pyproject.toml packages/{slug}/pyproject.toml\n"
        if line in text:
            continue
        last = None
        for last in MANIFEST_COPY.finditer(text):
            pass
        if last is None:
            raise ReproError(f"{paths.rel(dockerfile)}: no `COPY packages/<slug>/pyproject.toml ...` line to add "
                             f"packages/{slug}/pyproject.toml after")
        dockerfile.write_text(text[:last.end()] + line + text[last.end():])
        written.append(dockerfile)
    return written


def new_paper(slug: str, title: str = "", lock: bool = True) -> list[Path]:
    if not SLUG.match(slug):
        raise ReproError(f"paper slug {slug!r} must be lower-case letters, digits and _ (2-31 chars, a letter first)")
    if slug in RESERVED:
        raise ReproError(f"paper slug {slug!r} is reserved (results/{slug}, reports/{slug} or the "
                         f"{slug}/... method ids belong to the project); reserved: {', '.join(sorted(RESERVED))}")
    if slug in paper_slugs():
        raise ReproError(f"a paper with slug {slug!r} is already installed")
    root = paths.project_root()
    pkg = root / "packages" / slug
    if pkg.exists():
        raise ReproError(f"{paths.rel(pkg)} already exists")
    written = []
    for rel, text in _files(slug, title or f"TODO: the title of {slug}").items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    _register(root, slug)
    written.append(root / "pyproject.toml")
    written += _register_containers(root, slug)
    if lock:
        uv = shutil.which("uv")
        if uv is None:
            raise ReproError("uv is not on PATH; run `uv lock` yourself (or pass --no-lock)")
        proc = subprocess.run([uv, "lock"], cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ReproError(f"`uv lock` failed: {proc.stderr.strip()[-2000:]}")
        written.append(root / "uv.lock")
    return written
