# Reproduction pipeline: fetch/prepare data -> train (paper x experiment x method x seed)
# -> evaluate claims -> report, and the cross-paper leaderboard -> index. The DAG is declared once in `repro.pipeline`;
# dvc.yaml is the other view of it (`repro pipeline dvc`).
#   uv run snakemake --cores all                                  # smoke scale, every paper
#   uv run snakemake --cores all --config scale=paper papers='[enkf]'

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


# Every rule runs in this image under `--sdm apptainer` (containers/README.md); ignored otherwise.
container: config.get("container", "docker://repro:cpu")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/leaderboard.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        index=INDEX_FILES,
        reports=[pipeline.report_dir(p) for p in config["papers"]],
        leaderboard=pipeline.leaderboard_outputs()[:1] if BOARD_WORKLOADS else [],
