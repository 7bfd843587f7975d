"""The paper's declaration for the core: methods, experiments per scale, claims."""

from __future__ import annotations

import json
from pathlib import Path

from repro.claims import load_claims
from repro.paper import Experiment, Paper

from repro_deepzero.methods import METHODS

HERE = Path(__file__).parent
META = json.loads((HERE.parent.parent / "metadata.json").read_text())  # title and link live there only

SMOKE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 10, "batch_size": 32}

PAPER = Paper(
    slug="deepzero",
    title=META["title"],
    authors=META["attribution"],
    reference=META["link"],
    url=META["link"],
    summary=META["tldr"],
    methods=METHODS,
    experiments={
        "smoke": {"digits_mlp": Experiment("digits_mlp", "digits_mlp", {m: dict(SMOKE) for m in METHODS},
                                           "scikit-learn digits, 64-64-10 MLP (scaffold placeholder).")},
        "paper": {},
    },
    claims=load_claims(HERE / "claims.yaml"),
    package_dir=HERE.parent.parent,
    tiny_hparams={m: {"epochs": 2} for m in METHODS},
    notes="Scaffold: nothing has been checked against the paper yet.",
)
