"""The ``repro`` command line. The pipeline rules call it; so can a person."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from repro.errors import ReproError


def _config(args: argparse.Namespace) -> dict:
    from repro import config as cfg

    overrides = {}
    if getattr(args, "scale", None):
        overrides["scale"] = cfg.check_scale(args.scale)
    return cfg.load(overrides=overrides)


def cmd_papers(args: argparse.Namespace) -> None:
    from repro.registry import get_paper, papers

    for slug in sorted(papers()):
        p = get_paper(slug)
        print(f"{slug:12s} {p.title} ({p.reference})")


def cmd_experiments(args: argparse.Namespace) -> None:
    from repro.config import SCALES
    from repro.registry import get_paper

    paper = get_paper(args.paper)
    for scale in [args.scale] if args.scale else SCALES:
        for exp in paper.experiments_at(scale).values():
            print(f"[{scale}] {exp.name}: workload {exp.workload}; methods: {', '.join(exp.methods)}")
    for c in paper.claims:
        print(f"claim {c.id} ({', '.join(c.scales)}): {c.statement}")


def cmd_datasets(args: argparse.Namespace) -> None:
    from repro.datasets import dataset_names, get_dataset

    for name in dataset_names():
        spec = get_dataset(name)
        print(f"{name:12s} {spec.kind:10s} {spec.task:14s} {spec.description}")


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from repro import config as cfg
    from repro import paths
    from repro.datasets import prepare

    config = cfg.load()
    out = prepare(args.dataset, cfg.dataset_params(config, args.dataset), Path(args.out) if args.out else None)
    print(f"prepared {args.dataset} -> {paths.rel(out)}")


def cmd_run(args: argparse.Namespace) -> None:
    from repro import paths
    from repro.run import run_trial

    config = _config(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ReproError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    out = run_trial(args.paper, args.experiment, args.method, args.seed, config["scale"], config,
                    progress=not args.no_progress)
    summary = json.loads(out.read_text())["summary"]
    quality = {k: v for k, v in summary.items() if k.startswith("test_")}
    print(f"wrote {paths.rel(out)}: {quality}, train_time_s={summary['train_time_s']:.3f}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from repro import config as cfg
    from repro import paths
    from repro.evaluate import write_claims

    config = _config(args)
    out = write_claims(args.paper, config["scale"], cfg.seeds(config))
    summary = json.loads(out.read_text())["summary"]
    print(f"wrote {paths.rel(out)}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


def cmd_report(args: argparse.Namespace) -> None:
    from repro import config as cfg
    from repro import paths
    from repro.report import build_report

    config = _config(args)
    out = build_report(args.paper, config["scale"], cfg.seeds(config), config)
    print(f"wrote {paths.rel(out)}/index.md and index.html")


def cmd_index(args: argparse.Namespace) -> None:
    from repro import config as cfg
    from repro import paths
    from repro.report import build_index

    print(f"wrote {paths.rel(build_index(cfg.load()))}")


def cmd_pipeline_dvc(args: argparse.Namespace) -> None:
    from repro import config as cfg
    from repro import paths
    from repro.pipeline import dvc_yaml

    text = dvc_yaml(cfg.load())
    target = paths.project_root() / "dvc.yaml"
    if args.check:
        if not target.is_file() or target.read_text() != text:
            raise ReproError("dvc.yaml is out of date with params.yaml and the paper packages; "
                             "run `repro pipeline dvc` to regenerate it")
        print("dvc.yaml is up to date")
        return
    target.write_text(text)
    print(f"wrote {paths.rel(target)}")


def cmd_pipeline_stages(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from repro import config as cfg
    from repro.pipeline import stages

    for s in stages(cfg.load()):
        print(json.dumps(asdict(s)) if args.json else f"{s.name}: {s.cmd}")


def cmd_bench(args: argparse.Namespace) -> None:
    from repro.bench import RATIOS, bench_paper, parse_shapes

    try:
        ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else list(RATIOS)
    except ValueError:
        raise ReproError(f"--ratios: expected comma-separated numbers, got {args.ratios!r}") from None
    shapes = parse_shapes(args.shapes) if args.shapes else None
    doc, js, md = bench_paper(args.paper, Path(args.out) if args.out else None, args.device, shapes, ratios)
    print(md.read_text(), end="")
    print(f"wrote {js} and {md}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repro",
        description="Reproduction pipelines for faster / alternative training methods. "
                    "Run inside a project checkout (the directory with params.yaml).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("papers", help="list the installed paper packages")
    p.set_defaults(func=cmd_papers)

    p = sub.add_parser("experiments", help="list a paper's experiments, methods and claims")
    p.add_argument("paper")
    p.add_argument("--scale", choices=("smoke", "paper"))
    p.set_defaults(func=cmd_experiments)

    p = sub.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=cmd_datasets)

    data = sub.add_parser("data", help="fetch and prepare datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = dsub.add_parser("prepare", help="build data/prepared/<dataset>.pt (checksummed) from params.yaml")
    p.add_argument("dataset")
    p.add_argument("--out", help="output file (default: data/prepared/<dataset>.pt)")
    p.set_defaults(func=cmd_data_prepare)

    p = sub.add_parser("run", help="run one trial (paper, experiment, method, seed) and log it to MLflow")
    p.add_argument("paper")
    p.add_argument("--experiment", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--scale", help="smoke or paper (default: params.yaml)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("evaluate", help="judge a paper's claims from its trials -> results/<paper>/<scale>/claims.json")
    p.add_argument("paper")
    p.add_argument("--scale", help="smoke or paper (default: params.yaml)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="write reports/<paper>/index.md and index.html")
    p.add_argument("paper")
    p.add_argument("--scale", help="smoke or paper (default: params.yaml)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("index", help="write reports/index.md and index.html across the configured papers")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("bench", help="time a paper's registered kernels against the dense product "
                                     "(CUDA; on CPU the reference paths at small shapes)")
    p.add_argument("paper")
    p.add_argument("--out", help="output prefix, writes <out>.json and <out>.md "
                                 "(default: packages/<paper>/benchmarks/results/<paper>-<device>)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--shapes", help="comma-separated MxNxK problem sizes (default: by device)")
    p.add_argument("--ratios", help="comma-separated keep ratios (default: 0.3,0.5,0.7,1.0)")
    p.set_defaults(func=cmd_bench)

    pipe = sub.add_parser("pipeline", help="the DAG shared by Snakemake and DVC")
    psub = pipe.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    p = psub.add_parser("dvc", help="write dvc.yaml from params.yaml (or --check that it is current)")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_pipeline_dvc)
    p = psub.add_parser("stages", help="print every stage and its command")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pipeline_stages)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ReproError as exc:
        print(f"repro: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
