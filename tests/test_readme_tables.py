"""README result tables are generated from the committed reference results, never typed: the
check fails as soon as a table and the results it should come from disagree."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run
from repro.papers import get_paper, paper_slugs


def test_readme_tables_match_the_committed_results():
    proc = run(["repro", "readme", "--check"], ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("slug", paper_slugs())
def test_every_paper_has_committed_reference_results_with_provenance(slug):
    doc = json.loads((get_paper(slug).package_dir / "results" / "smoke.json").read_text())
    assert doc["paper"] == slug and doc["scale"] == "smoke" and len(doc["seeds"]) >= 3
    assert doc["provenance"]["git_commit"] not in ("", "unknown")
    assert doc["provenance"]["device"]
    readme = (get_paper(slug).package_dir / "README.md").read_text()
    assert f"<!-- repro:claims paper={slug} scale=smoke -->" in readme
    for cid in doc["claims"]:
        assert f"`{cid}`" in readme  # every claim of the reference run is in the generated table


def test_a_changed_result_or_a_typed_table_is_caught(project_copy):
    slug = paper_slugs()[0]
    ref = project_copy / "packages" / slug / "results" / "smoke.json"
    doc = json.loads(ref.read_text())
    cid, claim = next((k, c) for k, c in doc["claims"].items() if c["mean"] is not None)
    claim["mean"] = claim["mean"] + 1.234
    ref.write_text(json.dumps(doc))
    stale = run(["repro", "readme", "--check"], project_copy, check=False)
    assert stale.returncode == 2 and f"packages/{slug}/README.md" in stale.stderr
    run(["repro", "readme"], project_copy)
    assert run(["repro", "readme", "--check"], project_copy, check=False).returncode == 0
    readme = project_copy / "packages" / slug / "README.md"
    readme.write_text(readme.read_text().replace(f"`{cid}`", f"`{cid}` (typed by hand)"))
    assert run(["repro", "readme", "--check"], project_copy, check=False).returncode == 2
