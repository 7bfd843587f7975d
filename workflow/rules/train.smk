rule train:
    """The trials of a method on an experiment's workload, every seed in one process (a result
    file and an MLflow run per seed)."""
    input:
        data=lambda wc: pipeline.train_input(wc.paper, wc.scale, wc.experiment),
    output:
        results=expand("results/{{paper}}/{{scale}}/{{experiment}}/{{method}}/seed{seed}.json", seed=SEEDS),
    params:
        # workload + hyper-parameters + content hash of the core's and the paper's source:
        # a change re-runs the trial (Snakemake's params trigger)
        signature=lambda wc: pipeline.trial_signature(wc.paper, wc.scale, wc.experiment, wc.method),
        cmd=lambda wc: pipeline.train_cmd(wc.paper, wc.scale, wc.experiment, wc.method, config),
    log:
        "logs/train/{paper}/{scale}/{experiment}/{method}.log",
    # timed experiments run alone (every core reserved), so co-running jobs do not skew their times
    threads: lambda wc: pipeline.trial_cores(wc.paper, wc.scale, wc.experiment, config, run_cores())
    resources:
        gpu=lambda wc: 1 if wc.scale == "paper" else 0,
    shell:
        "{params.cmd} > {log} 2>&1"


rule evaluate:
    """Judge the paper's claims from all its trials: mean and 95% CI over seeds."""
    input:
        trials=trial_inputs,
    output:
        claims="results/{paper}/{scale}/claims.json",
        metrics="results/{paper}/{scale}/metrics.json",
    params:
        cmd=lambda wc: pipeline.evaluate_cmd(wc.paper, config),
    log:
        "logs/evaluate/{paper}/{scale}.log",
    shell:
        "{params.cmd} > {log} 2>&1"
