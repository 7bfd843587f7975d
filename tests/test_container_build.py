"""The container images, built and run for real (slow; needs root, as in CI).

No base image can be pulled here, so the base is made locally: `debootstrap` of a minimal Debian of
this machine's release (with Python 3.11, its venv module and CA certificates) and `docker import`,
cached by tag. The README's "## Containers" commands then build the CPU image from a clean copy of
the repository (the files a fresh clone has) with the legacy builder, run one paper's smoke
reproduction inside with the outputs mounted, and build the CUDA image on the same base. The
results, reports, MLflow runs and artifacts are checked on the host. Docker and debootstrap come
from apt when missing, and `dockerd` is started (and stopped again) when none is running. The
build reaches only the package registries; measured times are printed. The two image tests are
marked slow; the check of the README's commands is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, tracked_files

PAPER = "autoassist"  # 3 trial jobs on embedded data (scikit-learn's digits): no mirror needed
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
TAG_PREFIX = "repro-test"  # the README's `repro:` tags, renamed so a user's own images stay untouched
TIMES: dict[str, float] = {}


def _sh(args: list[str] | str, timeout: int, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, shell=isinstance(args, str),
                          **kwargs)
    if check and proc.returncode != 0:
        shown = args if isinstance(args, str) else shlex.join(args)
        raise AssertionError(f"{shown} exited {proc.returncode}\nstdout:\n{proc.stdout[-6000:]}\n"
                             f"stderr:\n{proc.stderr[-6000:]}")
    return proc


def _docker_up() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, timeout=60).returncode == 0


def _os_release() -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in Path("/etc/os-release").read_text().splitlines() if "=" in ln)
    return {k: v.strip('"') for k, v in pairs}


def _apt_mirror(codename: str) -> list[str]:
    """The Debian mirror this machine's apt uses for *codename* (deb822 or one-line sources), so the
    base comes from the same place; empty: debootstrap's default."""
    sources = Path("/etc/apt")
    for f in sorted(sources.glob("sources.list.d/*.sources")):
        for stanza in f.read_text().split("\n\n"):
            fields = dict(ln.split(":", 1) for ln in stanza.splitlines() if ":" in ln and not ln.startswith("#"))
            if codename in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                return fields["URIs"].split()[:1]
    for f in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        for ln in f.read_text().splitlines() if f.is_file() else []:
            parts = ln.split()
            if parts[:1] == ["deb"] and codename in parts and "main" in parts:
                uri = next(p for p in parts[1:] if "://" in p)
                return [uri]
    return []


@pytest.fixture(scope="module")
def docker_engine(tmp_path_factory) -> Iterator[None]:
    """A running Docker engine: apt-installs docker.io/debootstrap if missing, starts `dockerd` if
    none answers (and stops exactly that one afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("building images needs root (apt-get, debootstrap, dockerd), as in CI")
    missing = [pkg for tool, pkg in (("dockerd", "docker.io"), ("debootstrap", "debootstrap"))
               if shutil.which(tool) is None]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _sh(["apt-get", "update", "-qq"], timeout=600, env=env)
        _sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], timeout=1200, env=env)
    started = None
    if not _docker_up():
        log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        with log.open("w") as out:
            started = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while not _docker_up():
            if started.poll() is not None or time.monotonic() > deadline:
                started.kill()
                pytest.fail(f"dockerd did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(1)
    yield
    if started is not None:
        started.terminate()
        try:
            started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait(timeout=30)


@pytest.fixture(scope="module")
def base_image(docker_engine, tmp_path_factory) -> str:
    """A minimal Debian of this machine's release as a local image, made once per recipe: the tag
    carries a digest of the release, the packages and this machine's locally added CA certificates
    (which the base carries, as a site's base image would, so that pip and uv inside the build
    trust the same TLS as this machine)."""
    release = _os_release()
    if release.get("ID") != "debian" or not release.get("VERSION_CODENAME"):
        pytest.skip(f"the local base is made with debootstrap of this machine's Debian release; "
                    f"this is {release.get('PRETTY_NAME', 'not Debian')}")
    codename = release["VERSION_CODENAME"]
    cas = sorted(LOCAL_CAS.glob("*.crt"))
    digest = hashlib.sha256(repr((codename, BASE_PACKAGES)).encode())
    for ca in cas:
        digest.update(ca.read_bytes())
    tag = f"{TAG_PREFIX}-base:{codename}-{digest.hexdigest()[:12]}"
    if _sh(["docker", "image", "inspect", tag], timeout=60, check=False).returncode == 0:
        TIMES["base image (cached)"] = 0.0
        return tag
    t0 = time.monotonic()
    rootfs = tmp_path_factory.mktemp("base") / "rootfs"
    _sh(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", codename, str(rootfs),
         *_apt_mirror(codename)], timeout=1800)
    for ca in cas:
        shutil.copy2(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
    _sh(["chroot", str(rootfs), "update-ca-certificates"], timeout=120)
    _sh(["chroot", str(rootfs), "apt-get", "clean"], timeout=120)
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    _sh(f"tar -C {shlex.quote(str(rootfs))} --numeric-owner -c . | docker import "
        f"--change 'CMD [\"/bin/bash\"]' - {tag}", timeout=600)
    shutil.rmtree(rootfs)
    TIMES["base image (debootstrap + import)"] = time.monotonic() - t0
    return tag


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The repository's files as a fresh clone has them (tracked + not ignored); no local state."""
    dest = tmp_path_factory.mktemp("checkout")
    for rel in tracked_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def readme_container_commands() -> list[str]:
    """The README's "## Containers" commands, continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Containers\s.*?```sh\n(.*?)```", text, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [ln.split(" # ")[0].strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def _as_tested(command: str, base: str) -> str:
    """A README command as this test runs it: test tags, and the local base for `docker build`
    (the default base cannot be pulled here). Nothing else changes."""
    command = re.sub(r"\brepro:(cpu|cuda)\b", rf"{TAG_PREFIX}:\1", command)
    if command.startswith("docker build "):
        command = command.replace("docker build ", f"docker build --build-arg BASE_IMAGE={base} ", 1)
    return command


def _image_id(tag: str) -> str | None:
    proc = _sh(["docker", "image", "inspect", "--format", "{{.Id}}", tag], timeout=60, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _run_readme(commands: list[str], cwd: Path, base: str, timeout: int, label: str) -> None:
    for command in commands:
        tested = _as_tested(command, base)
        tag = re.search(r"-t (\S+)", tested).group(1) if command.startswith("docker build ") else None
        before = _image_id(tag) if tag else None
        t0 = time.monotonic()
        _sh(["bash", "-euo", "pipefail", "-c", tested], timeout=timeout, cwd=cwd,
            env={**os.environ, "DOCKER_BUILDKIT": "0"})
        TIMES[f"{label}: {' '.join(command.split()[:4])}"] = time.monotonic() - t0
        if before and before != _image_id(tag):
            # The image this tag replaced (and its layers no other image uses): repeated runs on one
            # machine keep one copy, not one per change of the lockfile.
            _sh(["docker", "rmi", before], timeout=600, check=False)


def _report_times(capsys) -> None:
    with capsys.disabled():
        print("\nmeasured (s): " + "; ".join(f"{k}: {v:.0f}" for k, v in TIMES.items()), flush=True)


def test_the_readme_builds_both_images_and_runs_one_paper():
    commands = readme_container_commands()
    builds = [c for c in commands if c.startswith("docker build ")]
    assert [re.search(r"-f (\S+)", b).group(1) for b in builds] == ["containers/Dockerfile", "containers/Dockerfile.cuda"]
    runs = [c for c in commands if c.startswith("docker run ")]
    assert len(runs) == 1 and runs[0].endswith(f"repro:cpu snakemake --cores all reports/{PAPER}"), runs
    for mount in ("results", "reports", "mlflow.db", "mlartifacts"):
        assert f'-v "$PWD/{mount}:/work/{mount}"' in runs[0], mount


@pytest.mark.slow
def test_cpu_image_runs_a_smoke_reproduction_into_mounted_folders(base_image, checkout, capsys):
    commands = [c for c in readme_container_commands() if "Dockerfile.cuda" not in c]
    _run_readme(commands, checkout, base_image, timeout=3000, label="cpu test")

    from mlflow.tracking import MlflowClient

    from repro import config as repro_config
    from repro import pipeline

    seeds = repro_config.seeds(repro_config.load(checkout / "params.yaml"))
    trials = pipeline.trial_files(PAPER, "smoke", seeds)
    assert trials
    results = {rel: json.loads((checkout / rel).read_text()) for rel in trials}
    for rel, res in results.items():
        assert res["paper"] == PAPER and res["scale"] == "smoke", rel
        assert res["environment"]["python"].startswith("3.11."), rel  # the lock's 3.11 branch
    claims = json.loads((checkout / pipeline.claims_file(PAPER, "smoke")).read_text())
    assert claims["seeds"] == seeds
    report = (checkout / pipeline.report_dir(PAPER) / "index.md").read_text()
    assert claims["claims"] and all(cid in report for cid in claims["claims"])
    verdicts = {c["verdict"] for c in claims["claims"].values()}
    assert verdicts <= {"reproduced", "not reproduced", "inconclusive", "by construction", "not run"}, verdicts
    assert (checkout / pipeline.report_dir(PAPER) / "index.html").stat().st_size > 10_000

    # MLflow: one finished run per trial in the mounted store, its artifacts in the mounted folder.
    client = MlflowClient(f"sqlite:///{checkout / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(PAPER)
    assert experiment is not None
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id], max_results=1000)}
    for rel, res in results.items():
        run = runs[res["mlflow_run_id"]]
        assert run.info.status == "FINISHED", rel
        artifact_dir = run.info.artifact_uri.split("/work/", 1)[1]  # the container's /work is the checkout
        assert (checkout / artifact_dir / "results.json").is_file(), (rel, run.info.artifact_uri)
    _report_times(capsys)


@pytest.mark.slow
def test_cuda_image_builds_on_the_same_layers(base_image, checkout, capsys):
    commands = [c for c in readme_container_commands() if c.startswith("docker build ")]
    _run_readme(commands, checkout, base_image, timeout=3000, label="cuda test")  # CPU first: cached
    cpu, cuda = (json.loads(_sh(["docker", "image", "inspect", f"{TAG_PREFIX}:{t}"], timeout=60).stdout)[0]
                 for t in ("cpu", "cuda"))
    # One environment: the CUDA image adds settings only, no layer of its own.
    assert cuda["RootFS"]["Layers"] == cpu["RootFS"]["Layers"]
    env = dict(e.split("=", 1) for e in cuda["Config"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert "compute" in env["NVIDIA_DRIVER_CAPABILITIES"].split(",")
    required = re.fullmatch(r"cuda>=(\d+)\.(\d+)", env["NVIDIA_REQUIRE_CUDA"])
    assert required, env["NVIDIA_REQUIRE_CUDA"]
    probe = ("import json, sys, torch; print(json.dumps({'python': sys.version.split()[0], "
             "'cuda': torch.version.cuda, 'cudnn': torch.backends.cudnn.version(), "
             "'nccl': torch.cuda.nccl.version(), 'gpu': torch.cuda.is_available()}))")
    out = json.loads(_sh(["docker", "run", "--rm", f"{TAG_PREFIX}:cuda", "python", "-c", probe],
                         timeout=600).stdout.strip().splitlines()[-1])
    assert out["python"].startswith("3.11.")
    # The wheel's CUDA userspace is in the image and loads without a GPU; the driver check
    # the toolkit does (NVIDIA_REQUIRE_CUDA) asks for the wheel's CUDA major version.
    assert out["cuda"] and out["cuda"].split(".")[0] == required.group(1), (out, env["NVIDIA_REQUIRE_CUDA"])
    assert out["cudnn"] and out["nccl"], out
    with capsys.disabled():
        print(f"\nCUDA image probe: {out}", flush=True)
    _report_times(capsys)
