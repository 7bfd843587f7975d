rule prepare_data:
    """Build data/prepared/<dataset>.pt (+ .sha256) from its generator, wheel or verified download."""
    output:
        data="data/prepared/{dataset}.pt",
        checksum="data/prepared/{dataset}.pt.sha256",
    params:
        # the dataset's parameters and the mirror, from the effective config (re-run on change)
        cmd=lambda wc: pipeline.prepare_cmd(wc.dataset, config),
    log:
        "logs/prepare_data/{dataset}.log",
    shell:
        "{params.cmd} > {log} 2>&1"
