"""repro — shared core of the reproduction monorepo.

Datasets, workloads, the one training loop, MLflow tracking, claim verdicts and reports.
Paper packages depend on this package; it finds them through the entry-point group
``repro.papers`` and never imports one by name.
"""

__version__ = "0.1.0"
