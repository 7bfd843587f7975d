"""The project configuration: ``params.yaml``, validated against one JSON schema.

The same file is Snakemake's ``configfile`` and DVC's params file, and the same schema
(``workflow/schemas/config.schema.yaml``) validates it in both drivers and in the CLI.
Every pipeline command gets the values it needs from the rule that runs it (``--papers``,
``--seeds``, dataset parameters...), so a ``snakemake --config ...`` override reaches every job;
params.yaml is only the default when a person runs a command by hand.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from repro import paths
from repro.errors import ReproError, unknown
from repro.papers import paper_slugs  # entry points only: imports no paper
from repro.scales import SCALES

SCHEMA_RELPATH = Path("workflow") / "schemas" / "config.schema.yaml"


def schema_path() -> Path:
    return paths.project_root() / SCHEMA_RELPATH


def schema() -> dict[str, Any]:
    try:
        return yaml.safe_load(schema_path().read_text())
    except FileNotFoundError:
        raise ReproError(f"config schema {schema_path()} is missing; is this a project checkout?") from None


def _format_error(err: jsonschema.ValidationError) -> str:
    """One line naming the key, what is wrong, and what would be valid there."""
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    message = err.message
    if err.validator == "additionalProperties" and isinstance(err.schema.get("properties"), dict):
        message += f"; valid keys: {', '.join(sorted(err.schema['properties'])) or '(none)'}"
    elif err.validator in ("oneOf", "anyOf") and err.context:  # say what each alternative wanted
        message += " (" + "; ".join(dict.fromkeys(e.message for e in err.context)) + ")"
    return f"config key {key!r}: {message}"


def coerce(config: Any, sub: dict[str, Any]) -> Any:
    """Turn strings into the numbers/booleans/lists the schema asks for, recursively.

    Snakemake parses ``--config seeds='{smoke: 10, paper: 5}'`` into ``{'smoke': '10', ...}``
    (nested values stay strings); a string that YAML reads as the wanted type is converted, any
    other value is left for validation to report.
    """
    types = sub.get("type")
    types = set(types) if isinstance(types, list) else {types}
    if isinstance(config, str) and types & {"integer", "number", "boolean", "array", "object", "null"}:
        try:
            parsed = yaml.safe_load(config)
        except yaml.YAMLError:
            return config
        ok = {"integer": isinstance(parsed, int) and not isinstance(parsed, bool),
              "number": isinstance(parsed, (int, float)) and not isinstance(parsed, bool),
              "boolean": isinstance(parsed, bool), "array": isinstance(parsed, list),
              "object": isinstance(parsed, dict), "null": parsed is None}
        if any(ok.get(t, False) for t in types):
            config = parsed
    if isinstance(config, dict):
        props = sub.get("properties", {})
        return {k: coerce(v, props[k]) if k in props else v for k, v in config.items()}
    if isinstance(config, list) and isinstance(sub.get("items"), dict):
        return [coerce(v, sub["items"]) for v in config]
    return config


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Coerce, validate against the schema (filling defaults) and check paper names."""
    sch = schema()
    config = coerce(copy.deepcopy(config), sch)
    _fill_defaults(config, sch)
    errors = sorted(jsonschema.Draft202012Validator(sch).iter_errors(config), key=str)
    if errors:
        raise ReproError("; ".join(_format_error(e) for e in errors))
    known = paper_slugs()
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
    config = read(path)
    config.update(overrides or {})
    return validate(config)


def read(path: Path | None = None) -> dict[str, Any]:
    """params.yaml (or *path*) as written, unvalidated; a missing or malformed file is a ReproError."""
    path = path or paths.project_root() / paths.PARAMS_FILE
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ReproError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ReproError(f"config file {path} is not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(config, dict):
        raise ReproError(f"config file {path}: expected a mapping at the top level")
    return config


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong, where (line, column) and while doing what."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{problem}{where}" + (f" ({context})" if context else "")


def seeds(config: dict[str, Any]) -> list[int]:
    """The seeds of the configured scale: 0 .. n-1."""
    return list(range(config["seeds"][config["scale"]]))


def dataset_params(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    return dict(config.get("datasets", {}).get(dataset, {}))


__all__ = ["SCALES", "coerce", "dataset_params", "load", "schema", "seeds", "validate"]
