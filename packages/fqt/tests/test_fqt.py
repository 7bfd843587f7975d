"""Tests of the fqt package (the generic run/resume tests in tests/test_papers_generic.py cover it too)."""

from repro_fqt.paper import PAPER


def test_methods_have_a_baseline():
    assert any(m.is_baseline for m in PAPER.methods.values())
