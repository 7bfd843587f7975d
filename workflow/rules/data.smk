rule prepare_data:
    """Build data/prepared/<dataset>.pt (+ .sha256) from its generator, wheel or verified download."""
    output:
        data="data/prepared/{dataset}.pt",
        checksum="data/prepared/{dataset}.pt.sha256",
    params:
        dataset_params=lambda wc: config["datasets"].get(wc.dataset, {}),
    log:
        "logs/prepare_data/{dataset}.log",
    shell:
        "repro data prepare {wildcards.dataset} > {log} 2>&1"
