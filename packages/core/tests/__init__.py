"""Tests of the repro core package (a package, so its conftest never shadows tests/conftest.py)."""
