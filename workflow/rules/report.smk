rule report:
    """Markdown + self-contained HTML report with claims table, curves, environment, run ids."""
    input:
        claims=lambda wc: pipeline.claims_file(wc.paper, SCALE),
        trials=lambda wc: pipeline.trial_files(wc.paper, SCALE, SEEDS),
    output:
        report(
            directory("reports/{paper}"),
            htmlindex="index.html",
            caption="../report/paper.rst",
            category="Papers",
            labels=lambda wc: {"paper": wc.paper},
        ),
    params:
        cmd=lambda wc: pipeline.report_cmd(wc.paper, config),
    log:
        "logs/report/{paper}.log",
    wildcard_constraints:
        paper=r"(?!leaderboard$)[A-Za-z0-9_]+",  # reports/leaderboard is the board's
    shell:
        "{params.cmd} > {log} 2>&1"


rule index:
    """reports/index.{html,md}: exactly the selected papers and their current verdicts."""
    input:
        reports=[pipeline.report_dir(p) for p in config["papers"]],
        leaderboard=pipeline.leaderboard_outputs()[:1] if BOARD_WORKLOADS else [],
    output:
        html=report("reports/index.html", caption="../report/index.rst", category="Index"),
        md="reports/index.md",
    params:
        cmd=pipeline.index_cmd(config),
    log:
        "logs/index.log",
    shell:
        "{params.cmd} > {log} 2>&1"
