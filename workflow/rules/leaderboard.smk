# The cross-paper leaderboard: every method of the selected papers on the shared board workloads
# (params.yaml `leaderboard`), one timed job per workload, then the board with performance profiles.
BOARD_WORKLOADS = pipeline.leaderboard.selected_workloads(config)


rule leaderboard_train:
    """Every applicable method x seed on one board workload, paired with the board baseline in one process."""
    input:
        data=lambda wc: pipeline.leaderboard_input(wc.workload),
    output:
        result="results/leaderboard/{scale}/{workload}.json",
    params:
        # the board workload, every entrant's setup and the code of the core and the papers
        signature=lambda wc: pipeline.leaderboard_signature(wc.workload, config),
        cmd=lambda wc: pipeline.leaderboard_train_cmd(wc.workload, config),
    log:
        "logs/leaderboard/{scale}/{workload}.log",
    wildcard_constraints:
        workload=r"[A-Za-z0-9_]+",
    # timed against the baseline: runs alone (every core reserved) at the smoke scale
    threads: lambda wc: pipeline.leaderboard_cores(config, run_cores())
    resources:
        gpu=lambda wc: 1 if wc.scale == "paper" else 0,
    shell:
        "{params.cmd} > {log} 2>&1"


rule leaderboard:
    """reports/leaderboard.{md,html}: per-workload tables, speed-ups with CIs, performance profiles."""
    input:
        results=pipeline.leaderboard_files(config),
    output:
        md=report("reports/leaderboard.md", caption="../report/leaderboard.rst", category="Leaderboard"),
        html="reports/leaderboard.html",
        figures=directory("reports/leaderboard"),
    params:
        cmd=pipeline.leaderboard_report_cmd(config) if BOARD_WORKLOADS else "",
    log:
        f"logs/leaderboard/{SCALE}.log",
    shell:
        "{params.cmd} > {log} 2>&1"
