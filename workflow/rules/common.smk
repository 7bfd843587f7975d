# Config validation and the helpers every rule uses. The JSON schema fills defaults; the core then
# converts nested --config strings (Snakemake keeps `seeds='{smoke: 10}'` values as strings) and
# checks paper names against the installed packages, so both drivers reject bad config alike.
from snakemake.utils import validate

from repro import config as repro_config
from repro import pipeline
from repro import snakemake_locks

# Lock files left by a killed run are deleted when no other snakemake instance lives in this
# directory, so the same command restarts it without --unlock (repro.snakemake_locks).
snakemake_locks.hold(clear_stale=not (workflow.remote_exec or workflow.subprocess_exec))


config.update(repro_config.coerce(dict(config), repro_config.schema()))
validate(config, "../schemas/config.schema.yaml")
config.update(repro_config.validate(config))

wildcard_constraints:
    paper=r"[A-Za-z0-9_]+",
    scale="smoke|paper",
    dataset=r"[A-Za-z0-9_]+",
    experiment=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",


SCALE = config["scale"]
SEEDS = repro_config.seeds(config)
INDEX_FILES = pipeline.index_files()


def trial_inputs(wildcards):
    return pipeline.trial_files(wildcards.paper, wildcards.scale, SEEDS)


def run_cores():
    """Cores a timed job reserves: the --cores of a local run. On a cluster (the SLURM profile) each
    job is an allocation of its own, sized by the profile; a job's threads must be the same where
    Snakemake submits it and inside it (where srun would refuse more), so 0: each job's own need
    (pipeline.trial_cores, pipeline.leaderboard_cores)."""
    if workflow.non_local_exec or workflow.remote_exec:
        return 0
    return workflow.cores
