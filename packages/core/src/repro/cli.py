"""The ``repro`` command line. The pipeline rules call it; so can a person.

Pipeline commands take the configuration they act on as options (``--scale``, ``--seeds``,
``--papers``, dataset parameters, ``--mirror``, ``--tracking-uri``); what is not given comes from
params.yaml. The rules always pass it, so a ``snakemake --config ...`` override reaches every job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from repro.errors import ReproError


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """params.yaml with the command's options applied, validated."""
    from repro import config as cfg

    base = cfg.read()
    if getattr(args, "scale", None):
        base["scale"] = args.scale
    if getattr(args, "papers", None):
        base["papers"] = [p for p in args.papers.split(",") if p]
    if getattr(args, "tracking_uri", None):
        base["mlflow"] = {**(base.get("mlflow") or {}), "tracking_uri": args.tracking_uri}
    if getattr(args, "artifact_root", None):
        base["mlflow"] = {**(base.get("mlflow") or {}), "artifact_root": args.artifact_root}
    if getattr(args, "mirror", None):
        base["data_mirror"] = args.mirror
    if getattr(args, "checkpoint_seconds", None) is not None:
        base["checkpoint_seconds"] = args.checkpoint_seconds
    config = cfg.validate(base)
    if getattr(args, "seeds", None) is not None:
        seeds = dict(config["seeds"])
        seeds[config["scale"]] = args.seeds
        config = cfg.validate({**config, "seeds": seeds})
    return config


class Terminated(SystemExit):
    """SIGTERM (Snakemake stopping its jobs, ``scancel``, a time limit) raised as an exception in
    a training command: its MLflow run is closed as FAILED, no partial file is left, and the
    trial's checkpoint stays for the re-run."""

    def __str__(self) -> str:
        return "the process received SIGTERM"


def _end_on_sigterm() -> None:
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cmd_papers(args: argparse.Namespace) -> None:
    from repro.papers import get_paper, paper_slugs

    for slug in paper_slugs():
        p = get_paper(slug)
        print(f"{slug:12s} {p.title} ({p.reference})")


def cmd_experiments(args: argparse.Namespace) -> None:
    from repro.papers import get_paper
    from repro.scales import SCALES

    paper = get_paper(args.paper)
    for scale in [args.scale] if args.scale else SCALES:
        for exp in paper.experiments_at(scale).values():
            print(f"[{scale}] {exp.name}: workload {exp.workload}; methods: {', '.join(exp.methods)}")
    for m in paper.methods.values():
        fixed = f" (fixed: {json.dumps(dict(m.fixed), sort_keys=True)})" if m.fixed else ""
        print(f"method {m.name}{fixed}: {m.description}")
        if args.hparams and m.hparams_doc:
            print("  " + m.hparams_doc.replace("\n", "\n  "))
    for c in paper.claims:
        print(f"claim {c.id} ({', '.join(c.scales)}): {c.statement}")


def cmd_datasets(args: argparse.Namespace) -> None:
    from repro.catalog import dataset_names, get_dataset

    for name in dataset_names():
        spec = get_dataset(name)
        print(f"{name:12s} {spec.kind:10s} {spec.task:14s} {spec.description}")


def _dataset_params(extra: list[str]) -> dict[str, Any]:
    """``--key value`` pairs (as DVC unpacks ``${datasets.<name>}``) -> {key: YAML-parsed value}."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or len(token) < 3:
            raise ReproError(f"dataset parameter {token!r}: expected --KEY VALUE pairs")
        key = token[2:].replace("-", "_")
        if i + 1 < len(extra) and not (extra[i + 1].startswith("--") and len(extra[i + 1]) > 2):
            try:
                out[key] = yaml.safe_load(extra[i + 1])
            except yaml.YAMLError:
                out[key] = extra[i + 1]
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def cmd_data_prepare(args: argparse.Namespace, extra: list[str]) -> None:
    from repro import config as cfg
    from repro import paths
    from repro.catalog import get_dataset
    from repro.datasets import prepare
    from repro.datasets.downloaded import resolve_mirror

    config = _config(args)
    params = {**cfg.dataset_params(config, args.dataset), **_dataset_params(extra)}
    if args.dataset in cfg.schema()["properties"]["datasets"]["properties"]:
        cfg.validate({**config, "datasets": {**config["datasets"], args.dataset: params}})  # names the key
    spec = get_dataset(args.dataset)
    out = prepare(spec, params, Path(args.out) if args.out else None, mirror=resolve_mirror(config.get("data_mirror")))
    print(f"prepared {args.dataset} -> {paths.rel(out)}")


def cmd_run(args: argparse.Namespace) -> None:
    from repro import distributed, environment, paths, snakemake_locks
    from repro.papers import get_paper
    from repro.run import run_trial

    config = _config(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ReproError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.n_seeds is not None and args.n_seeds < 1:
        raise ReproError(f"--seeds must be >= 1, got {args.n_seeds}")
    seeds = [args.seed] if args.seed is not None else list(range(args.n_seeds))
    if args.processes is not None and args.processes < 1:
        raise ReproError(f"--processes must be >= 1, got {args.processes}")
    if (args.processes or 1) > 1 and not distributed.launched():
        # Refuse what cannot run before starting any process; then the same command in N processes.
        paper = get_paper(args.paper)
        spec = paper.method(args.method)
        spec.validate(paper.trial_hparams(config["scale"], args.experiment, args.method))
        distributed.check_method(spec, args.paper, args.processes)
        distributed.launch(args.processes, ["-m", "repro.cli", *args.argv], threads=args.threads)
        return
    if distributed.launched():  # one of the processes of `--processes N` (or of torchrun)
        distributed.init(environment.select_device(), expected=args.processes)
    _end_on_sigterm()
    snakemake_locks.join(paths.project_root())
    try:
        for seed in seeds:  # one trial per seed, one after the other in this process
            out = run_trial(args.paper, args.experiment, args.method, seed, config["scale"], config,
                            progress=not args.no_progress)
            if not distributed.is_main():
                continue
            summary = json.loads(out.read_text())["summary"]
            quality = {k: v for k, v in summary.items() if k.startswith("test_")}
            print(f"wrote {paths.rel(out)}: {quality}, train_time_s={summary['train_time_s']:.3f}", flush=True)
    finally:
        distributed.shutdown()


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
    from repro import paths
    from repro.report import build_index

    config = _config(args)
    print(f"wrote {paths.rel(build_index(config['papers'], config['scale'], leaderboard=args.leaderboard))}")


def _board_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config with the leaderboard options applied (--seeds sets the board's seeds)."""
    from repro import config as cfg

    config = _config(argparse.Namespace(**{**vars(args), "seeds": None}))
    board = dict(config["leaderboard"])
    if getattr(args, "methods", None):
        board["methods"] = "all" if args.methods == "all" else [m for m in args.methods.split(",") if m]
    if getattr(args, "workloads", None):
        board["workloads"] = {**board["workloads"], config["scale"]: [w for w in args.workloads.split(",") if w]}
    if getattr(args, "seeds", None) is not None:
        board["seeds"] = {**board["seeds"], config["scale"]: args.seeds}
    return cfg.validate({**config, "leaderboard": board})


def cmd_leaderboard_list(args: argparse.Namespace) -> None:
    from repro import leaderboard

    config = _board_config(args)
    print(leaderboard.describe(config["scale"], config["papers"], config["leaderboard"]["methods"],
                               leaderboard.selected_workloads(config)))


def cmd_leaderboard_train(args: argparse.Namespace) -> None:
    from repro import leaderboard, paths, snakemake_locks

    config = _board_config(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ReproError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    _end_on_sigterm()  # as `repro run`: SIGTERM closes the MLflow run FAILED; a live job holds the instances lock
    snakemake_locks.join(paths.project_root())
    out = leaderboard.train_workload(args.workload, config["scale"], leaderboard.board_seeds(config),
                                     config["papers"], config["leaderboard"]["methods"], config,
                                     progress=not args.no_progress)
    print(f"wrote {paths.rel(out)}")


def cmd_leaderboard_report(args: argparse.Namespace) -> None:
    from repro import leaderboard, paths

    config = _board_config(args)
    md = leaderboard.build_board(config["scale"], leaderboard.selected_workloads(config), config)
    print(f"wrote {paths.rel(md)} and {paths.rel(md.with_suffix('.html'))}")


def cmd_tracking_relog(args: argparse.Namespace) -> None:
    from repro import paths, tracking

    config = _config(args)
    files = [Path(f).resolve() for f in args.results] if args.results else tracking.unlogged_results()
    uri = tracking.public_uri(tracking.tracking_uri(config))
    if not files:
        print("every trial result under results/ reached MLflow; nothing to re-log")
        return
    if args.dry_run:
        print("\n".join(f"not logged: {paths.rel(f)}" for f in files))
        return
    failed = []
    for f in files:
        try:
            run_id = tracking.relog(f, config)
        except ReproError as exc:
            print(f"repro: error: {exc}", file=sys.stderr)
            failed.append(f)
            continue
        print(f"re-logged {paths.rel(f)} -> run {run_id} in {uri}", flush=True)
    if failed:
        raise ReproError(f"{len(failed)} of {len(files)} result(s) not re-logged: "
                         + ", ".join(paths.rel(f) for f in failed))


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

    from repro.pipeline import stages

    for s in stages(_config(args)):
        print(json.dumps(asdict(s)) if args.json else f"{s.name}: {s.cmd}")


def cmd_bench(args: argparse.Namespace) -> None:
    if args.paper == "trainer":
        from repro.bench_trainer import bench_trainer

        config = _config(args)
        doc, js, md = bench_trainer(args.device, steps=args.steps, repeats=args.repeats,
                                    out=Path(args.out) if args.out else None, mirror=config.get("data_mirror"))
        print(md.read_text(), end="")
        print(f"wrote {js} and {md}")
        return
    if args.paper == "fast_cifar":
        from repro.bench_fast_cifar import bench_fast_cifar

        if args.seeds < 1:
            raise ReproError(f"--seeds must be >= 1, got {args.seeds}")
        doc, js, md = bench_fast_cifar(args.device, seeds=args.seeds, synthetic=args.synthetic, quick=args.quick,
                                       out=Path(args.out) if args.out else None)
        print(md.read_text(), end="")
        print(f"wrote {js} and {md}")
        return
    from repro.bench import RATIOS, bench_paper, parse_shapes

    try:
        ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else list(RATIOS)
    except ValueError:
        raise ReproError(f"--ratios: expected comma-separated numbers, got {args.ratios!r}") from None
    shapes = parse_shapes(args.shapes) if args.shapes else None
    doc, js, md = bench_paper(args.paper, Path(args.out) if args.out else None, args.device, shapes, ratios)
    print(md.read_text(), end="")
    print(f"wrote {js} and {md}")


def cmd_results_save(args: argparse.Namespace) -> None:
    from repro import readme

    for path in readme.save_reference(_config(args)):
        print(f"wrote {path}")


def cmd_readme(args: argparse.Namespace) -> None:
    from repro import readme

    changed = readme.update_readmes(check=args.check)
    if args.check:
        if changed:
            raise ReproError("README result tables differ from what the committed reference results generate: "
                             + ", ".join(changed) + "; run `repro readme` to regenerate them")
        print("README result tables are up to date")
    else:
        print("\n".join(f"updated {p}" for p in changed) or "README result tables already up to date")


def cmd_new(args: argparse.Namespace) -> None:
    from repro import scaffold

    for path in scaffold.new_paper(args.slug, title=args.title, lock=not args.no_lock):
        print(f"wrote {path}")


def _scale_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=("smoke", "paper"), help="smoke or paper (default: params.yaml)")


def _seeds_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="number of seeds 0..N-1 at this scale (default: params.yaml)")


def _tracking_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, params.yaml, "
                                          "sqlite:///mlflow.db)")
    p.add_argument("--artifact-root", help="where new MLflow experiments keep artifacts: a path (relative to the "
                                           "project) or URI (default: params.yaml mlflow.artifact_root; else "
                                           "mlartifacts/ for a database store, the server's choice for a server)")


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
    _scale_opt(p)
    p.add_argument("--hparams", action="store_true", help="also list every method's hyper-parameters")
    p.set_defaults(func=cmd_experiments)

    p = sub.add_parser("datasets", help="list the registered datasets (the core's and the papers')")
    p.set_defaults(func=cmd_datasets)

    data = sub.add_parser("data", help="fetch and prepare datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    # No abbreviated options here: `--m 3` is the dataset parameter m, not --mirror.
    p = dsub.add_parser("prepare", help="build data/prepared/<dataset>.pt (checksummed); dataset parameters as "
                                        "--KEY VALUE after the name (default: params.yaml's datasets.<name>)",
                        allow_abbrev=False)
    p.add_argument("dataset")
    p.add_argument("--out", help="output file (default: data/prepared/<dataset>.pt)")
    p.add_argument("--mirror", help="local mirror of downloaded files (default: $REPRO_DATA_MIRROR, params.yaml)")
    p.set_defaults(func=cmd_data_prepare, takes_extra=True)

    p = sub.add_parser("run", help="run trials (paper, experiment, method, seed) and log each to MLflow")
    p.add_argument("paper")
    p.add_argument("--experiment", required=True)
    p.add_argument("--method", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run the trial of this one seed")
    which.add_argument("--seeds", type=int, dest="n_seeds", metavar="N",
                       help="run seeds 0..N-1 one after the other (a result file each)")
    _scale_opt(p)
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice); "
                                               "with --processes, per process")
    p.add_argument("--processes", type=int, metavar="N",
                   help="train each trial in N processes on this machine (DDP: gloo on CPU, NCCL with one "
                        "GPU each on CUDA; torch's launcher, as torchrun --standalone); default 1")
    p.add_argument("--checkpoint-seconds", type=float, metavar="S",
                   help="checkpoint at the first epoch boundary S seconds after the last checkpoint; a killed "
                        "trial run again resumes there (0: off; default: params.yaml's checkpoint_seconds)")
    _tracking_opt(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("evaluate", help="judge a paper's claims from its trials -> results/<paper>/<scale>/claims.json")
    p.add_argument("paper")
    _scale_opt(p)
    _seeds_opt(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="write reports/<paper>/index.md and index.html")
    p.add_argument("paper")
    _scale_opt(p)
    _seeds_opt(p)
    _tracking_opt(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("index", help="write reports/index.md and index.html for the selected papers")
    _scale_opt(p)
    p.add_argument("--papers", help="comma-separated paper slugs (default: params.yaml)")
    p.add_argument("--leaderboard", action="store_true", help="link the leaderboard (reports/leaderboard.md)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("bench", help="time a paper's registered kernels against the dense product "
                                     "(CUDA; on CPU the reference paths at small shapes); `repro bench trainer`: "
                                     "the core Trainer against a bare PyTorch loop; `repro bench fast_cifar`: the "
                                     "core's fast CIFAR-10 baseline against airbench94 (CUDA, airbench installed)")
    p.add_argument("paper", help="a paper slug, `trainer` or `fast_cifar`")
    p.add_argument("--steps", type=int, default=200, help="trainer: optimizer steps per timing (default 200)")
    p.add_argument("--repeats", type=int, default=5, help="trainer: alternating timing pairs (default 5)")
    p.add_argument("--out", help="output prefix, writes <out>.json and <out>.md "
                                 "(default: packages/<paper>/benchmarks/results/<paper>-<device>)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--shapes", help="comma-separated MxNxK problem sizes (default: by device)")
    p.add_argument("--ratios", help="comma-separated keep ratios (default: 0.3,0.5,0.7,1.0)")
    p.add_argument("--seeds", type=int, default=3, help="fast_cifar: runs of each recipe (default 3)")
    p.add_argument("--synthetic", action="store_true",
                   help="fast_cifar: random CIFAR-shaped data (no CIFAR-10 here): speed only")
    p.add_argument("--quick", action="store_true",
                   help="fast_cifar: 2048 images, one epoch, a narrow net (checks the machinery only)")
    p.set_defaults(func=cmd_bench)

    board = sub.add_parser("leaderboard", help="the cross-paper leaderboard: every method of the selected papers "
                                               "on shared workloads (reports/leaderboard.{md,html})")
    bsub = board.add_subparsers(dest="leaderboard_command", required=True, metavar="ACTION")

    def board_opts(p: argparse.ArgumentParser) -> None:
        _scale_opt(p)
        p.add_argument("--papers", help="comma-separated paper slugs (default: params.yaml)")
        p.add_argument("--methods", help="`all` or comma-separated paper/method ids (default: params.yaml "
                                         "leaderboard.methods)")
        _tracking_opt(p)

    p = bsub.add_parser("list", help="each board workload and every method's setup there, or why it cannot run")
    board_opts(p)
    p.add_argument("--workloads", help="comma-separated board workloads (default: params.yaml)")
    p.set_defaults(func=cmd_leaderboard_list)
    p = bsub.add_parser("train", help="run every applicable method x seed on one board workload -> "
                                      "results/leaderboard/<scale>/<workload>.json (MLflow experiment `leaderboard`)")
    p.add_argument("workload")
    board_opts(p)
    p.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default: params.yaml leaderboard.seeds)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_leaderboard_train)
    p = bsub.add_parser("report", help="score the board: reports/leaderboard.{md,html} with performance profiles")
    board_opts(p)
    p.add_argument("--workloads", help="comma-separated board workloads (default: params.yaml)")
    p.set_defaults(func=cmd_leaderboard_report)

    trk = sub.add_parser("tracking", help="the MLflow tracking store: re-log what did not reach it")
    tsub = trk.add_subparsers(dest="tracking_command", required=True, metavar="ACTION")
    p = tsub.add_parser("relog", help="log trial results marked `mlflow: {logged: false}` (the tracking store "
                                      "failed when the trial ended) to their MLflow runs, close the runs FINISHED "
                                      "and mark the files logged",
                        description="Finds every result under results/ marked `mlflow: {logged: false}` (the "
                                    "tracking store failed when the trial ended), or takes the files given; logs its metrics, summary and artifacts to its MLflow run in the "
                                    "current store and closes the run FINISHED. Safe to repeat.")
    p.add_argument("results", nargs="*", help="result JSON files (default: every unlogged one under results/)")
    p.add_argument("--dry-run", action="store_true", help="only list the results that did not reach MLflow")
    p.add_argument("--tracking-uri", help="the store to log to (default: $MLFLOW_TRACKING_URI, params.yaml, "
                                          "sqlite:///mlflow.db): the one the trials started in")
    p.set_defaults(func=cmd_tracking_relog)

    pipe = sub.add_parser("pipeline", help="the DAG shared by Snakemake and DVC")
    psub = pipe.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    p = psub.add_parser("dvc", help="write dvc.yaml from params.yaml (or --check that it is current)")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_pipeline_dvc)
    p = psub.add_parser("stages", help="print every stage and its command")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_pipeline_stages)

    res = sub.add_parser("results", help="the committed reference results that README tables are generated from")
    rsub = res.add_subparsers(dest="results_command", required=True, metavar="ACTION")
    p = rsub.add_parser("save", help="copy the current run's claims (results/<paper>/<scale>/claims.json) to "
                                     "packages/<paper>/results/<scale>.json, with their commit and hardware")
    _scale_opt(p)
    p.add_argument("--papers", help="comma-separated paper slugs (default: params.yaml)")
    p.set_defaults(func=cmd_results_save)

    p = sub.add_parser("readme", help="regenerate the verdict tables between <!-- repro:... --> markers in the "
                                      "READMEs from the committed reference results (or --check them)")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_readme)

    p = sub.add_parser("new", help="scaffold a paper package packages/<slug> and register it in the workspace")
    p.add_argument("slug")
    p.add_argument("--title", default="", help="the paper's title")
    p.add_argument("--no-lock", action="store_true", help="do not run `uv lock` afterwards")
    p.set_defaults(func=cmd_new)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `repro run --processes N` runs it N times
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "takes_extra", False):
            args.func(args, extra)
        else:
            args.func(args)
    except ReproError as exc:
        rank = os.environ.get("RANK", "0") if "LOCAL_RANK" in os.environ else "0"  # one of N processes
        print(f"repro: error: {'' if rank == '0' else f'[rank {rank}] '}{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`repro experiments | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout at exit
        return 141  # 128 + SIGPIPE, as a shell tool killed by it
    return 0


if __name__ == "__main__":
    sys.exit(main())
