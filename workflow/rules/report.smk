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
        scale=SCALE,
    log:
        "logs/report/{paper}.log",
    shell:
        "repro report {wildcards.paper} --scale {params.scale} > {log} 2>&1"


rule index:
    """reports/index.{html,md}: every configured paper and its verdicts."""
    input:
        reports=[pipeline.report_dir(p) for p in config["papers"]],
    output:
        html=report("reports/index.html", caption="../report/index.rst", category="Index"),
        md="reports/index.md",
    log:
        "logs/index.log",
    shell:
        "repro index > {log} 2>&1"
