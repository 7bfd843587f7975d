"""N:M masks: group counts along the right dimension, ties, N = M, packing, the 2:4 subset rule."""

from __future__ import annotations

import itertools

import pytest
import torch

from repro.errors import ReproError

from repro_nm_sparse.masks import (compressible_to_2of4, from_2d, group_counts, layer_mask, nm_mask,
                                   nm_mask_pack_reference, pack, unpack, weight_2d)

PATTERNS = [(2, 4), (2, 8), (4, 8), (1, 4), (3, 8), (1, 2)]


def naive_mask(w2: torch.Tensor, n: int, m: int, dim: int) -> torch.Tensor:
    """Group by group with Python sorting: top-n |w|, lower index first on ties."""
    t = w2 if dim == 1 else w2.t()
    out = torch.zeros_like(t, dtype=torch.bool)
    for r in range(t.shape[0]):
        for g in range(t.shape[1] // m):
            vals = [(-abs(float(t[r, g * m + i])), i) for i in range(m)]
            for _, i in sorted(vals)[:n]:
                out[r, g * m + i] = True
    return out if dim == 1 else out.t()


@pytest.mark.parametrize(("n", "m"), PATTERNS)
@pytest.mark.parametrize("dim", [1, 0])
def test_every_group_keeps_n_along_the_right_dimension(n, m, dim):
    w = torch.randn(16, 24)
    mask = nm_mask(w, n, m, dim)
    assert torch.equal(group_counts(mask, m, dim), torch.full_like(group_counts(mask, m, dim), n))
    assert torch.equal(mask, naive_mask(w, n, m, dim))
    # the kept weights are the largest of their group: every kept |w| >= every pruned |w|
    t, mk = (w, mask) if dim == 1 else (w.t(), mask.t())
    a = t.abs().reshape(t.shape[0], -1, m)
    k = mk.reshape(t.shape[0], -1, m)
    kept_min = torch.where(k, a, torch.inf).amin(-1)
    pruned_max = torch.where(~k, a, -torch.inf).amax(-1)
    assert bool((kept_min >= pruned_max).all())


def test_the_other_orientation_is_generally_not_n_of_m():
    """A forward (row-group) mask is not N:M along columns — why BDWP needs a second mask."""
    torch.manual_seed(0)
    w = torch.randn(32, 32)
    fwd = nm_mask(w, 2, 8, 1)
    assert int(group_counts(fwd, 8, 0).max()) > 2


def test_ties_keep_the_lower_index():
    w = torch.tensor([[1.0, -1.0, 1.0, 0.5, 2.0, 2.0, -2.0, 0.0]])
    assert nm_mask(w, 2, 4).tolist() == [[True, True, False, False, True, True, False, False]]
    ints = torch.randint(-2, 3, (12, 16), generator=torch.Generator().manual_seed(1)).float()
    for (n, m), dim in itertools.product(PATTERNS, (0, 1)):
        if ints.shape[dim] % m == 0:
            assert torch.equal(nm_mask(ints, n, m, dim), naive_mask(ints, n, m, dim))


def test_n_equal_m_keeps_everything():
    w = torch.randn(8, 8)
    for m in (1, 2, 4, 8):
        assert bool(nm_mask(w, m, m, 1).all()) and bool(nm_mask(w, m, m, 0).all())


def test_conv_weights_group_consecutive_input_channels_of_one_tap():
    w = torch.randn(8, 16, 3, 3)
    mask = layer_mask(w, 2, 8, "forward")
    assert mask.shape == w.shape
    # NHWC grouping: for each (o, kh, kw), channels 0-7 and 8-15 keep 2 each
    assert torch.equal(mask.sum(1).unique(), torch.tensor([4]))
    per_group = mask.permute(0, 2, 3, 1).reshape(8, 3, 3, 2, 8).sum(-1)
    assert bool((per_group == 2).all())
    back = layer_mask(w, 2, 8, "backward")  # groups of 8 consecutive output channels per (c, kh, kw)
    assert bool((back.reshape(1, 8, 16, 3, 3).sum(1) == 2).all())
    assert torch.equal(from_2d(weight_2d(w), w.shape), w)


@pytest.mark.parametrize(("n", "m"), [(2, 4), (2, 8), (1, 4), (4, 8)])
def test_pack_round_trip_both_orientations(n, m):
    w = torch.randn(16, 32)
    ref = nm_mask_pack_reference(w, n, m)
    assert ref["values_f"].shape == (16, 32 * n // m) and ref["values_b"].shape == (16 * n // m, 32)
    assert torch.equal(unpack(ref["values_f"], ref["indices_f"], n, m, 1), w * ref["mask_f"])
    assert torch.equal(unpack(ref["values_b"], ref["indices_b"], n, m, 0), w * ref["mask_b"])
    assert int(ref["indices_f"].max()) < m and ref["indices_f"].dtype == torch.int8
    # position order inside every group
    idx = ref["indices_f"].reshape(16, -1, n).long()
    assert bool((idx[..., 1:] > idx[..., :-1]).all()) if n > 1 else True
    with pytest.raises(ReproError):
        pack(w, torch.ones_like(w, dtype=torch.bool), n, m, 1) if n < m else pack(w, w > 0, n, m, 1)


def test_2of4_subset_rule_matches_brute_force():
    """N:M runs on 2:4 hardware iff every placement of N kept weights puts <= 2 in each aligned block of 4."""
    for n, m in [(2, 4), (1, 4), (2, 8), (4, 8), (3, 8), (2, 16), (4, 16), (3, 4), (1, 8), (1, 2), (2, 2)]:
        width = max(m, 4)
        worst = max(max(sum(1 for p in pos if b <= p < b + 4) for b in range(0, width, 4))
                    for pos in itertools.combinations(range(m), n)) if m % 4 == 0 else (2 if n <= 1 else 3)
        # m = 2: a row of 1:2 groups has <= 2 per block of 4; 2:2 (dense) can have 4
        assert compressible_to_2of4(n, m) == (worst <= 2), (n, m)


def test_bad_patterns_and_shapes_raise():
    with pytest.raises(ReproError, match="n <= m"):
        nm_mask(torch.randn(4, 8), 5, 4)
    with pytest.raises(ReproError, match="multiple of M=8"):
        nm_mask(torch.randn(4, 12), 2, 8)
    with pytest.raises(ReproError, match="orientation"):
        layer_mask(torch.randn(4, 8), 2, 4, "sideways")
