"""The project configuration: ``params.yaml``, validated against one JSON schema.

The same file is Snakemake's ``configfile`` and DVC's params file, and the same schema
(``workflow/schemas/config.schema.yaml``) validates it in both drivers and in the CLI.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from repro import paths
from repro.errors import ReproError, unknown

SCALES = ("smoke", "paper")
SCHEMA_RELPATH = Path("workflow") / "schemas" / "config.schema.yaml"


def schema_path() -> Path:
    return paths.project_root() / SCHEMA_RELPATH


def _format_error(err: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"config key {key!r}: {err.message}"


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate against the schema (filling defaults) and check names against the registries."""
    try:
        schema = yaml.safe_load(schema_path().read_text())
    except FileNotFoundError:
        raise ReproError(f"config schema {schema_path()} is missing; is this a project checkout?") from None
    config = copy.deepcopy(config)
    _fill_defaults(config, schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=str)
    if errors:
        raise ReproError("; ".join(_format_error(e) for e in errors))
    from repro.registry import papers  # lazy: listing config must not import paper stacks

    known = papers()
    for slug in config["papers"]:
        if slug not in known:
            raise unknown("paper (config key 'papers')", slug, known)
    return config


def _fill_defaults(config: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(config[key], sub)


def load(path: Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load params.yaml (or *path*), apply *overrides* (top-level keys) and validate."""
    path = path or paths.project_root() / paths.PARAMS_FILE
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ReproError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ReproError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ReproError(f"config file {path}: expected a mapping at the top level")
    config.update(overrides or {})
    return validate(config)


def seeds(config: dict[str, Any]) -> list[int]:
    """The seeds of the configured scale: 0 .. n-1."""
    return list(range(config["seeds"][config["scale"]]))


def dataset_params(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    return dict(config.get("datasets", {}).get(dataset, {}))


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise unknown("scale", scale, SCALES)
    return scale
