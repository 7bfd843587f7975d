"""Only Train Once: one-shot training and structured pruning (HSPG)."""
