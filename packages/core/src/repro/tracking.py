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
``$MLFLOW_TRACKING_URI`` (or ``mlflow.tracking_uri`` in params.yaml) overrides it.

Why the lock: several processes opening a *fresh* SQLite store at once all run MLflow's schema
migration and collide (``table _alembic_tmp_tags already exists``). The first writer creates the
schema and the experiment under an exclusive file lock; later writers find both ready. Once the
store exists, concurrent writers are fine without the lock.
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


def artifact_root() -> Path:
    return paths.project_root() / "mlartifacts"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    db = _sqlite_path(uri)
    if db is None:  # a server or database backend serialises its own migrations
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def get_or_create_experiment(uri: str, name: str) -> str:
    """Create the store (if new) and the experiment under the lock; return the experiment id."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with _store_lock(uri):
        client = MlflowClient(uri)  # first use of a fresh SQLite store runs the migrations here
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
                client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
            return exp.experiment_id
        location = (artifact_root() / name).as_uri() if _sqlite_path(uri) else None
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
    return {"repro.project": project, "repro.host": socket.gethostname(), "repro.pid": str(os.getpid())}


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
        self.experiment_id = get_or_create_experiment(self.uri, paper)
        self.client = MlflowClient(self.uri)
        self.run_name, self.params, self.tags = run_name, params, tags
        self.resume_run_id = resume_run_id
        self.dataset = dataset
        self.run_id = ""

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
        if exc is not None:
            self.client.set_tag(self.run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
        self.client.set_terminated(self.run_id, "FAILED" if exc is not None else "FINISHED")

    def _log_metrics(self, rows: list[tuple[str, float, int]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v, step in rows if math.isfinite(float(v))]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + BATCH])

    def log_history(self, history: list[dict[str, float]]) -> None:
        """Per-evaluation metrics, stepped by epoch (assimilation step for ensemble methods)."""
        rows = [(k, v, int(row["epoch"])) for row in history for k, v in row.items() if k != "epoch"]
        self._log_metrics(rows)

    def log_summary(self, summary: dict[str, float]) -> None:
        self._log_metrics([(f"final.{k}", v, 0) for k, v in summary.items()])
        self.client.set_tag(self.run_id, "reached_target", str(bool(summary.get("reached_target"))).lower())

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
    """Log a prepared dataset as an MLflow dataset input (the UI's Dataset column)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    ds = Dataset(name=name, digest=digest[:36], source_type="local", source=json.dumps({"uri": source}),
                 schema=None, profile=None)
    client.log_inputs(run_id, datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", context)])])


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


def ui_path(experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI route of an experiment (or run) in the model-training view: MLflow 3.17's UI
    picks its GenAI or model-training view from the ``workflowType`` URL parameter (else from the
    browser's last choice), so every link the project prints carries it."""
    route = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return route + "?workflowType=machine_learning"
