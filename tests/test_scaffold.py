"""`repro new <slug>` from a fresh copy: the scaffold registers in the workspace, installs, and passes
the generic per-paper tests as it is. Also: metadata.json and paper.py never disagree."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run
from repro.papers import get_paper, paper_slugs


@pytest.mark.parametrize("slug", paper_slugs())
def test_metadata_json_matches_the_paper_declaration(slug):
    paper = get_paper(slug)
    meta = json.loads((paper.package_dir / "metadata.json").read_text())
    assert meta["name"] == slug
    assert meta["title"] == paper.title
    assert meta["link"] == paper.url


def test_new_refuses_bad_or_taken_slugs(project_copy):
    bad = run(["repro", "new", "Bad-Slug"], project_copy, check=False)
    assert bad.returncode == 2 and "slug" in bad.stderr and "Traceback" not in bad.stderr
    taken = run(["repro", "new", "wus", "--no-lock"], project_copy, check=False)
    assert taken.returncode == 2 and "already" in taken.stderr


@pytest.mark.slow
def test_new_paper_scaffold_installs_and_passes_the_generic_tests(project_copy):
    out = run(["repro", "new", "demo", "--title", "A demo paper"], project_copy).stdout
    assert "packages/demo/src/repro_demo/paper.py" in out and "uv.lock" in out
    pyproject = (project_copy / "pyproject.toml").read_text()
    assert '"repro-demo"' in pyproject and "repro-demo = { workspace = true }" in pyproject
    assert "repro-demo" in (project_copy / "uv.lock").read_text()
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        assert f"containers/{dockerfile}" in out
        assert "COPY packages/demo/pyproject.toml packages/demo/pyproject.toml" in (
            project_copy / "containers" / dockerfile).read_text()
    env = {"UV_PROJECT_ENVIRONMENT": str(project_copy / ".venv")}
    run(["uv", "sync", "--frozen", "--quiet"], project_copy, **env)
    papers = run(["uv", "run", "--frozen", "repro", "papers"], project_copy, **env).stdout
    assert "demo" in papers and "A demo paper" in papers
    proc = run(["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_papers_generic.py",
                "packages/demo", "-k", "demo"], project_copy, check=False, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
