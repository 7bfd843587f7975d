"""The README's Python example runs as written; the README's MAC table is what the code generates."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from repro_nm_sparse import report_macs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs_and_prints_the_ideal():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    assert out.getvalue().strip().endswith("0.5")


def test_readme_mac_table_rows_for_the_smoke_models_are_generated():
    block = report_macs.readme_block(README.read_text())
    assert block is not None
    for row in report_macs.rows(large=False):
        assert row in block, row


@pytest.mark.slow
def test_readme_mac_table_is_exactly_what_the_code_generates():
    assert report_macs.readme_block(README.read_text()) == report_macs.table()
