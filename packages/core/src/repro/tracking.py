"""MLflow tracking: one experiment per paper, one run per (experiment, method, seed).

MLflow's own conventions, so its UI shows what ran: every experiment is tagged
``mlflow.experimentKind = custom_model_development`` (MLflow 3 then opens it in the
model-training view, not the GenAI one); every run carries the system tags
``mlflow.source.name`` / ``mlflow.source.type`` / ``mlflow.source.git.commit`` (the Source
column) and logs its dataset as an MLflow dataset input (name, sha256 digest, source: the
Dataset column). The report step adds one parent run per reproduction (paper × scale) with the
verdicts, and files every trial run under it (``mlflow.parentRunId``): one click shows a whole
reproduction. MLflow 3.17's UI chooses between its GenAI and model-training views from the
``workflowType`` URL parameter, so the links the reports print carry ``workflowType=machine_learning``
(:func:`ui_path`).

Default store: SQLite ``mlflow.db`` at the project root with artifacts in ``mlartifacts/``;
``$MLFLOW_TRACKING_URI`` (or ``mlflow.tracking_uri`` in params.yaml) overrides it: a tracking
server (``http://...``) or a database (``postgresql://...``). Where artifacts go is always
explicit (:func:`experiment_artifact_location`): ``mlflow.artifact_root`` if set; else, for a
database store, ``mlartifacts/<experiment>`` at the project root; for a server, the server's own
``--artifacts-destination`` (runs get ``mlflow-artifacts:/`` locations it serves).

Why the lock: several processes opening a *fresh* database store at once all run MLflow's schema
migration and collide (SQLite: ``table _alembic_tmp_tags already exists``; PostgreSQL: ``relation
"experiments" already exists``). The first writer creates the schema and the experiment under an
exclusive lock — a file lock beside a SQLite file, a PostgreSQL advisory lock (which holds across
machines) for PostgreSQL; later writers find both ready. A server migrates its database when it
starts. Once the store exists, concurrent writers are fine without the lock.

A store that fails when a trial ends loses nothing: :meth:`TrackedRun.log_result` keeps the
result, marks it ``mlflow: {logged: false, ...}`` and says so loudly; the run is left unfinished
(never FINISHED without its metrics) and ``repro tracking relog`` (:func:`relog`) completes it
later. A store that cannot be reached when a trial *starts* is an error (nothing has run yet).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from repro import paths
from repro.errors import ReproError
from repro.files import write_json

MAX_PARAM_LEN = 6000
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch call


def tracking_uri(config: dict[str, Any] | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    configured = ((config or {}).get("mlflow") or {}).get("tracking_uri")
    if configured:
        return configured
    return f"sqlite:///{paths.project_root() / 'mlflow.db'}"


class TrackingUnavailable(ReproError):
    """The tracking store cannot be reached or used."""


def public_uri(uri: str) -> str:
    """The tracking URI as a report or message may show it: a local store relative to the project
    (or its file name only, if outside it), never a password."""
    local = None
    if uri.startswith("sqlite:///"):
        scheme, local = "sqlite:///", Path(uri.removeprefix("sqlite:///"))
    elif uri.startswith("file:"):
        scheme, local = "file:", Path(re.sub(r"^file:(//)?", "", uri))
    elif ":" not in uri:
        scheme, local = "", Path(uri)
    if local is not None:
        try:
            return f"{scheme}{local.resolve().relative_to(paths.project_root())}"
        except ValueError:
            return f"{scheme}…/{local.name}"
    return re.sub(r"//[^/@]*@", "//", uri)  # postgresql://user:password@host/db -> postgresql://host/db


def _brief(exc: BaseException) -> str:
    """An exception on one line, shortened (MLflow's messages repeat whole URLs and SQL)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text if len(text) <= 400 else text[:200] + ' … ' + text[-200:]}"


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy stores
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"repro: MLflow schema + experiment creation").digest()[:8], "big",
                              signed=True)


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""


def artifact_root(config: dict[str, Any] | None = None, uri: str | None = None) -> str | None:
    """Where new experiments keep their artifacts, as a URI: ``mlflow.artifact_root`` (a URI, or
    a path, relative to the project root); if unset, ``mlartifacts/`` at the project root for a
    database store. None only for a tracking server left to choose (its ``--artifacts-destination``).
    *uri*: the tracking URI (default: :func:`tracking_uri`)."""
    configured = ((config or {}).get("mlflow") or {}).get("artifact_root")
    if configured:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", configured):
            return configured.rstrip("/")  # a URI: s3://..., file:///..., mlflow-artifacts:/...
        return (paths.project_root() / configured).resolve().as_uri()
    if _scheme(uri or tracking_uri(config)) in DATABASE_SCHEMES:
        return (paths.project_root() / "mlartifacts").as_uri()
    return None


def experiment_artifact_location(name: str, config: dict[str, Any] | None = None,
                                 uri: str | None = None) -> str | None:
    """The artifact location a new experiment *name* is created with (None: the server's choice)."""
    root = artifact_root(config, uri)
    return f"{root}/{name}" if root else None


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise the first opening of a database store (its schema migration) and the creation of
    experiments: a file lock for SQLite, an advisory lock for PostgreSQL; nothing for a server
    (it migrated its database when it started) or other stores."""
    if _scheme(uri) == "postgresql":
        with _postgres_lock(uri):
            yield
        return
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _postgres_lock(uri: str) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock, held on a connection of its own: every writer of
    the same database, on any machine, waits here while one of them migrates a fresh schema."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
    finally:
        engine.dispose()


def get_or_create_experiment(uri: str, name: str, config: dict[str, Any] | None = None) -> str:
    """Create the store (if new) and the experiment under the lock; return the experiment id.
    A new experiment gets its artifact location explicitly (:func:`experiment_artifact_location`)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with _store_lock(uri):
        client = MlflowClient(uri)  # first use of a fresh database store runs the migrations here
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
                client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
            return exp.experiment_id
        location = experiment_artifact_location(name, config, uri)
        try:
            return client.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
        except MlflowException:  # created meanwhile by a writer that holds no lock (remote store)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM_LEN]


# A trial's identity within its MLflow experiment: its run name and these tags (``repro.run.execute``).
TRIAL_IDENTITY = ("paper", "experiment", "method", "scale", "seed")


def _process_tags() -> dict[str, str]:
    """Which project and process a run belongs to: how a re-run tells an orphaned run (its
    process was killed) from one still running. The project is a hash of its root path."""
    project = hashlib.sha256(str(paths.project_root()).encode()).hexdigest()[:16]
    tags = {"repro.project": project, "repro.host": socket.gethostname(), "repro.pid": str(os.getpid())}
    if os.environ.get("SLURM_JOB_ID"):  # run as a SLURM job (workflow/profiles/slurm): which one
        tags["repro.slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def _alive(pid: str | None) -> bool:
    try:
        os.kill(int(pid or ""), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


class TrackedRun:
    """A context manager around one MLflow run; marks it FAILED if the body raises.

    A trial run again continues its run (*resume_run_id*, from its checkpoint) if the store has it;
    any other run of the same trial and project that is still RUNNING although its process is gone
    (killed: SIGKILL, OOM, a node lost) is then marked FAILED, so no run stays RUNNING forever.
    """

    def __init__(self, paper: str, run_name: str, params: dict[str, Any], tags: dict[str, str],
                 config: dict[str, Any] | None = None, resume_run_id: str | None = None,
                 dataset: dict[str, str] | None = None) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(config)
        try:
            self.experiment_id = get_or_create_experiment(self.uri, paper, config)
        except Exception as exc:  # nothing has run yet: one clear error naming the store
            raise TrackingUnavailable(
                f"MLflow tracking store {public_uri(self.uri)} cannot be used: {_brief(exc)}. Start it (or fix "
                "$MLFLOW_TRACKING_URI / mlflow.tracking_uri); HTTP requests are retried "
                "$MLFLOW_HTTP_REQUEST_MAX_RETRIES times (MLflow's default: 7, over minutes)") from None
        self.client = MlflowClient(self.uri)
        self.run_name, self.params, self.tags = run_name, params, tags
        self.resume_run_id = resume_run_id
        self.dataset = dataset
        self.run_id = ""
        self.closed = False  # log_result has finished the run (or left it for `repro tracking relog`)

    @classmethod
    def attach(cls, uri: str, run_id: str) -> "TrackedRun":
        """An existing run, to log to (``repro tracking relog``); creates nothing."""
        from mlflow.tracking import MlflowClient

        self = cls.__new__(cls)
        self.uri, self.client, self.run_id, self.closed = uri, MlflowClient(uri), run_id, False
        self.run_name = run_id
        return self

    def __enter__(self) -> "TrackedRun":
        from mlflow.entities import Param, RunTag

        process = _process_tags()
        if self.resume_run_id and self._resumable(self.resume_run_id):
            self.run_id = self.resume_run_id
            self.client.update_run(self.run_id, status="RUNNING")
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in {**process, "resumed": "true"}.items()])
        else:
            # Tagged as it is created: a process killed at any later point leaves a run a re-run can identify.
            run = self.client.create_run(self.experiment_id, run_name=self.run_name,
                                         tags={k: str(v) for k, v in sorted({**self.tags, **process}.items())})
            self.run_id = run.info.run_id
            self.client.log_batch(self.run_id, params=[Param(k, _param_value(v)) for k, v in sorted(self.params.items())])
            if self.dataset:
                log_dataset(self.client, self.run_id, **self.dataset)
        self._fail_orphans(process)
        return self

    def _resumable(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            info = self.client.get_run(run_id).info
        except MlflowException:
            info = None
        if info is None or info.lifecycle_stage != "active" or info.experiment_id != self.experiment_id:
            print(f"MLflow run {run_id} named by the checkpoint is not in experiment {self.experiment_id} of "
                  f"{self.uri}; the resumed trial logs to a new run", file=sys.stderr)
            return False
        return True

    def _fail_orphans(self, process: dict[str, str]) -> None:
        """Mark FAILED the runs of this trial (same run name, identity tags and project) that are
        RUNNING although their process is gone: the trial is running again, in this run."""
        identity = {k: str(self.tags[k]) for k in TRIAL_IDENTITY if k in self.tags}
        if not identity:
            return
        running = self.client.search_runs(
            [self.experiment_id], max_results=1000,
            filter_string=f"attributes.status = 'RUNNING' and tags.`repro.project` = '{process['repro.project']}'")
        for run in running:
            tags = run.data.tags
            if (run.info.run_id == self.run_id or run.info.run_name != self.run_name
                    or any(tags.get(k) != v for k, v in identity.items())):
                continue
            if tags.get("repro.host") == process["repro.host"] and _alive(tags.get("repro.pid")):
                continue  # its process still runs on this machine: not an orphan
            self.client.set_tag(run.info.run_id, "error",
                                f"orphaned: its process (pid {tags.get('repro.pid')} on {tags.get('repro.host')}) "
                                f"ended without closing the run; the trial was run again as {self.run_id}")
            self.client.set_terminated(run.info.run_id, "FAILED")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            if not self.closed:
                self.client.set_terminated(self.run_id, "FINISHED")
            return
        try:
            self.client.set_tag(self.run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
            self.client.set_terminated(self.run_id, "FAILED")
        except Exception as store_exc:  # the store is down too: keep the body's own error
            print(f"repro: warning: could not mark MLflow run {self.run_id} FAILED in {public_uri(self.uri)}: "
                  f"{_brief(store_exc)}", file=sys.stderr, flush=True)

    def _log_metrics(self, rows: list[tuple[str, float, int]], timestamp_ms: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        metrics = [Metric(k, float(v), now, step) for k, v, step in rows
                   if v is not None and math.isfinite(float(v))]  # a result file has null for NaN
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + BATCH])

    def log_history(self, history: list[dict[str, float]], timestamp_ms: int | None = None) -> None:
        """Per-evaluation metrics, stepped by epoch (assimilation step for ensemble methods)."""
        rows = [(k, v, int(row["epoch"])) for row in history for k, v in row.items() if k != "epoch"]
        self._log_metrics(rows, timestamp_ms)

    def log_summary(self, summary: dict[str, float], timestamp_ms: int | None = None) -> None:
        self._log_metrics([(f"final.{k}", v, 0) for k, v in summary.items()], timestamp_ms)
        self.client.set_tag(self.run_id, "reached_target", str(bool(summary.get("reached_target"))).lower())

    def _finish(self, result: dict[str, Any], quality: str, artifacts: bool, timestamp_ms: int) -> None:
        """Everything a finished trial logs, then FINISHED. Idempotent for one *timestamp_ms*:
        MLflow drops a metric point it already has (same key, step, value and timestamp)."""
        self.log_history(result["history"], timestamp_ms)
        self.log_summary(result["summary"], timestamp_ms)
        if artifacts:
            self.log_result_artifacts(result, quality)
        self.client.set_terminated(self.run_id, "FINISHED")

    def log_result(self, result: dict[str, Any], quality: str, artifacts: bool = True) -> None:
        """Log a finished trial's *result* (history, summary; with *artifacts* also results.json,
        curves and figure) and close the run FINISHED.

        If the store fails now, the trial is not lost: ``result["mlflow"]`` records that it was not
        logged (``logged: false``, the run id, the store, the error and what a re-log needs), a
        warning naming the store goes to stderr, and the run is left unfinished — never FINISHED
        without its metrics. ``repro tracking relog`` completes it once the store is back.
        """
        timestamp_ms = int(time.time() * 1000)
        try:
            self._finish(result, quality, artifacts, timestamp_ms)
        except Exception as exc:
            result["mlflow"] = {"logged": False, "uri": public_uri(self.uri), "run_id": self.run_id,
                                "timestamp_ms": timestamp_ms, "artifacts": artifacts, "quality": quality,
                                "error": _brief(exc)}
            print(f"repro: WARNING: the MLflow tracking store {public_uri(self.uri)} failed while logging "
                  f"{self.run_name!r} (run {self.run_id}): {_brief(exc)}\n"
                  "repro: WARNING: the result file is written all the same, marked `mlflow: {logged: false}`; "
                  "its MLflow run is left unfinished. When the store is back, run `repro tracking relog`.",
                  file=sys.stderr, flush=True)
        self.closed = True

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def log_result_artifacts(self, result: dict[str, Any], quality: str) -> None:
        """results.json, curves.csv and a learning-curve figure, as run artifacts."""
        from repro.figures import plot_single_run

        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            (d / "results.json").write_text(json.dumps(result, indent=2, default=str))
            history = result["history"]
            if history:
                keys = sorted({k for row in history for k in row})
                with open(d / "curves.csv", "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=keys)
                    writer.writeheader()
                    writer.writerows(history)
                plot_single_run(history, quality, d / "learning_curve.png",
                                title=f"{result['experiment']} / {result['method']} / seed {result['seed']}")
            self.client.log_artifacts(self.run_id, str(d))


def source_tags(commit: str, command: str) -> dict[str, str]:
    """MLflow's system tags for where a run came from (the UI's Source column)."""
    tags = {"mlflow.source.name": command, "mlflow.source.type": "LOCAL"}
    if commit and commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def log_dataset(client: Any, run_id: str, name: str, digest: str, source: str, context: str = "train") -> None:
    """Log a prepared dataset as an MLflow dataset input (the UI's Dataset column).

    Runs of one experiment that start together race in MLflow's store on a dataset it has not
    seen: each looks the dataset up, finds none and inserts it, and all but one insert violate its
    unique key (seen with 8 trials at once on a server and on SQLite). The row exists afterwards,
    so logging again links it: retried a few times on exactly that error."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException

    ds = Dataset(name=name, digest=digest[:36], source_type="local", source=json.dumps({"uri": source}),
                 schema=None, profile=None)
    for attempt in range(4):
        try:
            client.log_inputs(run_id, datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", context)])])
            return
        except MlflowException as exc:
            if attempt == 3 or not re.search(r'UNIQUE constraint failed: datasets\.|unique constraint "dataset_pk"'
                                             r"|Duplicate entry .* for key 'datasets\.", str(exc)):
                raise
            time.sleep(0.2 * (attempt + 1))


def log_reproduction(paper: str, scale: str, claims: dict[str, Any], trial_run_ids: list[str],
                     tags: dict[str, str], config: dict[str, Any] | None = None,
                     artifact: Path | None = None) -> tuple[str, str]:
    """One parent run for a paper's reproduction at *scale*: the verdict counts as metrics, each
    claim's verdict as a tag, ``claims.json`` as an artifact; every trial run is filed under it.
    Returns (parent run id, experiment id)."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(config)
    client = MlflowClient(uri)
    exp_id = get_or_create_experiment(uri, paper)
    run = client.create_run(exp_id, run_name=f"reproduction/{scale}")
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(f"verdicts.{k.replace(' ', '_')}", float(v), now, 0) for k, v in claims["summary"].items()],
        tags=[RunTag(k, str(v)) for k, v in sorted({**tags, "reproduction": "true", "scale": scale}.items())]
        + [RunTag(f"claim.{cid}"[:250], c["verdict"]) for cid, c in claims["claims"].items()],
    )
    if artifact is not None:
        client.log_artifact(run.info.run_id, str(artifact))
    for rid in trial_run_ids:
        client.set_tag(rid, "mlflow.parentRunId", run.info.run_id)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id, exp_id


def log_board(scale: str, summary: dict[str, Any], trial_run_ids: list[str], config: dict[str, Any] | None,
              artifacts: list[Path]) -> tuple[str, str]:
    """One parent run ``board/<scale>`` in the ``leaderboard`` experiment: every entrant's
    profile score and per-workload speed-up as metrics, the board files as artifacts; every
    board trial run filed under it. Returns (run id, experiment id)."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(config)
    client = MlflowClient(uri)
    exp_id = get_or_create_experiment(uri, "leaderboard")
    run = client.create_run(exp_id, run_name=f"board/{scale}")
    now = int(time.time() * 1000)

    def key(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)[:250]

    metrics = [Metric(key(f"score.{i}"), float(v), now, 0) for i, v in sorted(summary["scores"].items())]
    metrics += [Metric(key(f"speedup.{w}.{i}"), float(v), now, 0)
                for w, rows in sorted(summary["speedups"].items()) for i, v in sorted(rows.items())
                if math.isfinite(v)]
    for chunk in range(0, len(metrics), 900):
        client.log_batch(run.info.run_id, metrics=metrics[chunk:chunk + 900])
    client.log_batch(run.info.run_id, tags=[RunTag("leaderboard", "true"), RunTag("scale", scale),
                                            RunTag("workloads", ",".join(summary["workloads"]))])
    for f in artifacts:
        client.log_artifact(run.info.run_id, str(f))
    for rid in trial_run_ids:
        client.set_tag(rid, "mlflow.parentRunId", run.info.run_id)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id, exp_id


def is_unlogged(result: dict[str, Any]) -> bool:
    """A trial result whose logging to MLflow failed (``mlflow: {logged: false}``)."""
    block = result.get("mlflow")
    return isinstance(block, dict) and block.get("logged") is False


def unlogged_results(root: Path | None = None) -> list[Path]:
    """Every trial result under *root* (default: ``results/``) that did not reach MLflow."""
    root = root or paths.project_root() / "results"
    found = []
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        text = path.read_text()
        if '"logged": false' not in text:  # cheap filter before parsing
            continue
        try:
            result = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict) and is_unlogged(result):
            found.append(path)
    return found


def relog(path: Path, config: dict[str, Any] | None = None) -> str:
    """Log the trial result *path* (marked ``mlflow: {logged: false}``) to its MLflow run in the
    current store, close the run FINISHED and mark the file ``logged: true``. Safe to repeat: the
    metrics carry the timestamp of the failed attempt, so points that did arrive are not doubled.
    Returns the run id."""
    from mlflow.exceptions import MlflowException

    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReproError(f"{paths.rel(path)}: not a readable result file ({exc})") from None
    if not isinstance(result, dict) or not is_unlogged(result):
        raise ReproError(f"{paths.rel(path)} is not a trial result marked `mlflow: {{logged: false}}`")
    block = result["mlflow"]
    uri = tracking_uri(config)
    try:
        tracked = TrackedRun.attach(uri, block["run_id"])
        run = tracked.client.get_run(block["run_id"])
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ReproError(f"{paths.rel(path)}: MLflow run {block['run_id']} is not in {public_uri(uri)} (the trial "
                             f"started in {block.get('uri')}); point MLFLOW_TRACKING_URI at that store") from None
        raise TrackingUnavailable(f"MLflow tracking store {public_uri(uri)} cannot be used: {_brief(exc)}") from None
    except Exception as exc:
        raise TrackingUnavailable(f"MLflow tracking store {public_uri(uri)} cannot be used: {_brief(exc)}") from None
    if run.info.lifecycle_stage != "active":
        raise ReproError(f"{paths.rel(path)}: MLflow run {block['run_id']} was deleted; run the trial again")
    logged = {k: v for k, v in result.items() if k != "mlflow"}  # what the trial would have logged
    try:
        tracked._finish(logged, block.get("quality") or result.get("target_metric", ""),
                        bool(block.get("artifacts", True)), int(block["timestamp_ms"]))
    except Exception as exc:
        raise TrackingUnavailable(f"{paths.rel(path)}: logging to {public_uri(uri)} failed again: {_brief(exc)}") from None
    result["mlflow"] = {"logged": True, "uri": public_uri(uri), "run_id": block["run_id"],
                        "relogged_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(result, path)
    return block["run_id"]


def ui_path(experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI route of an experiment (or run) in the model-training view: MLflow 3.17's UI
    picks its GenAI or model-training view from the ``workflowType`` URL parameter (else from the
    browser's last choice), so every link the project prints carries it."""
    route = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return route + "?workflowType=machine_learning"
