rule train:
    """One trial: a method on an experiment's workload with one seed; logged to MLflow."""
    input:
        data=lambda wc: pipeline.train_input(wc.paper, wc.scale, wc.experiment),
    output:
        result="results/{paper}/{scale}/{experiment}/{method}/seed{seed}.json",
    params:
        # workload + hyper-parameters: a change re-runs the trial (Snakemake's params trigger)
        signature=lambda wc: pipeline.trial_signature(wc.paper, wc.scale, wc.experiment, wc.method),
        threads=config["threads_per_trial"],
    log:
        "logs/train/{paper}/{scale}/{experiment}/{method}/seed{seed}.log",
    wildcard_constraints:
        seed=r"\d+",
    threads: config["threads_per_trial"]
    resources:
        gpu=lambda wc: 1 if wc.scale == "paper" else 0,
    shell:
        "repro run {wildcards.paper} --scale {wildcards.scale} --experiment {wildcards.experiment}"
        " --method {wildcards.method} --seed {wildcards.seed} --threads {params.threads} --no-progress > {log} 2>&1"


rule evaluate:
    """Judge the paper's claims from all its trials: mean and 95% CI over seeds."""
    input:
        trials=trial_inputs,
    output:
        claims="results/{paper}/{scale}/claims.json",
        metrics="results/{paper}/{scale}/metrics.json",
    log:
        "logs/evaluate/{paper}/{scale}.log",
    shell:
        "repro evaluate {wildcards.paper} --scale {wildcards.scale} > {log} 2>&1"
