"""The ZIG partition from the graph, and the slim export: zeroing groups and removing their channels
changes no output (per model), removing a non-zero group does, and what is not zero-invariant is kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repro.models import build_model

from repro_oto.models import MODELS, OtoResNetCifar, OtoVGG16
from repro_oto.slim import count_macs, count_params, export_slim, keep_masks, max_abs_diff
from repro_oto.zig import ZigError, build_zigs, group_sparsity, zero_groups

TOL = 1e-5  # the exactness bound the paper's claim is checked against


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test, as a pipeline trial runs: two threads on these small models only
    double the CPU time."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _warm(model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> None:
    """Give batch norms non-trivial running statistics (and affine parameters) so that a wrong partition shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
        model.train()
        model(torch.randn(16, *shape, generator=g))
    model.eval()


def _zero_half(model: nn.Module, partition, seed: int = 1) -> int:
    g = torch.Generator().manual_seed(seed)
    n = 0
    for s in partition.prunable_sets:
        idx = torch.randperm(s.size, generator=g)[: s.size // 2]
        zero_groups(s.members(model), idx)
        n += len(idx)
    return n


def check_exact_removal(model: nn.Module, shape: tuple[int, ...], expect_prunable: int, expect_groups: int):
    _warm(model, shape)
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(2))
    partition = build_zigs(model, x[:2])
    assert len(partition.prunable_sets) == expect_prunable, partition.describe()
    assert partition.num_groups == expect_groups
    zeroed = _zero_half(model, partition)
    assert group_sparsity(model, partition) == (zeroed, expect_groups)
    slim = export_slim(model, partition)
    assert max_abs_diff(model, slim, x) <= TOL
    assert count_params(slim) < count_params(model)
    assert count_macs(slim, x) < count_macs(model, x)
    # the slim layers are really smaller: every kept width equals the number of non-zero groups
    masks = keep_masks(model, partition)
    for s in partition.prunable_sets:
        for name in s.producers:
            w = slim.get_submodule(name).weight
            assert w.shape[0] == int(masks[s.index].sum())
    return model, slim, partition, x


SMALL_CASES = {
    # name: (builder, input shape, prunable sets, groups)
    "mlp": (lambda: build_model("mlp", sizes=[64, 64, 32, 10], activation="relu"), (1, 8, 8), 2, 96),
    "mlp_tanh": (lambda: build_model("mlp", sizes=[2, 20, 1], activation="tanh"), (2,), 1, 20),
    "small_cnn": (lambda: build_model("small_cnn", in_channels=1, num_classes=10), (1, 8, 8), 2, 96),
    "oto_bn_cnn": (lambda: MODELS["oto_bn_cnn"](), (1, 8, 8), 3, 112),
    "oto_vgg16_bn_narrow": (lambda: OtoVGG16(bn=True, channels=[8] * 13 + [16, 16]), (3, 32, 32), 15, 8 * 13 + 32),
    "oto_vgg16_narrow": (lambda: OtoVGG16(bn=False, channels=[8] * 13 + [16, 16]), (3, 32, 32), 15, 8 * 13 + 32),
    # 1 bottleneck per stage: stem set + 2 inner sets per block + one shared set per stage (its
    # shortcut + last conv); the stem is its own set because stage 1's first block has a shortcut conv
    # pre-activation blocks: the BN reading the residual sum is a member of the stage's shared set
    "wide_resnet_10_1": (lambda: build_model("wide_resnet_cifar", depth=10, widen=1), (3, 32, 32), 6,
                         16 + 16 + 32 + 32 + 64 + 64),
    "oto_resnet_1111": (lambda: OtoResNetCifar((1, 1, 1, 1), widths=(8, 16, 32, 64)), (3, 32, 32), 1 + 4 * 3,
                        8 + 2 * (8 + 16 + 32 + 64) + 4 * (8 + 16 + 32 + 64)),
}


@pytest.mark.parametrize("name", list(SMALL_CASES))
def test_zeroed_groups_are_removed_exactly(name):
    builder, shape, sets, groups = SMALL_CASES[name]
    torch.manual_seed(0)
    check_exact_removal(builder(), shape, sets, groups)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "shape", "sets", "groups"), [
    ("oto_vgg16", (3, 32, 32), 15, 4224 + 1024),
    ("oto_vgg16_bn", (3, 32, 32), 15, 4224 + 1024),
    ("oto_resnet50_cifar", (3, 32, 32), 37, 11456),
    ("vgg16_cifar", (3, 32, 32), 14, 4224 + 512),
    ("vgg11_cifar", (3, 32, 32), 9, 2752 + 512),
    ("alexnet_cifar", (3, 32, 32), 7, 64 + 192 + 384 + 256 + 256 + 1024 + 1024),  # flatten 256x4x4 -> FC
    # torchvision BasicBlocks: stem + stage 1 share channels (no shortcut conv there); per stage one
    # shared set and one inner set per block
    ("resnet18_cifar", (3, 32, 32), 12, 3 * (64 + 128 + 256 + 512)),
])
def test_paper_models_remove_zero_groups_exactly(name, shape, sets, groups):
    torch.manual_seed(0)
    model = MODELS[name]() if name in MODELS else build_model(name, num_classes=10)
    check_exact_removal(model, shape, sets, groups)


def test_resnet_stage_channels_form_one_group_set():
    """The residual adds tie every block output of a stage (and its shortcut) to the same channels."""
    model = OtoResNetCifar((2, 1, 1, 1), widths=(8, 16, 32, 64))
    partition = build_zigs(model, torch.zeros(2, 3, 32, 32))
    stage1 = next(s for s in partition.sets if "conv2_x.0.shortcut.0" in s.producers)
    assert stage1.producers == ["conv2_x.0.residual_function.6", "conv2_x.0.shortcut.0",
                                "conv2_x.1.residual_function.6"]
    assert set(stage1.norms) == {"conv2_x.0.residual_function.7", "conv2_x.0.shortcut.1",
                                 "conv2_x.1.residual_function.7"}
    assert {c.module for c in stage1.consumers} == {"conv2_x.1.residual_function.0", "conv3_x.0.residual_function.0",
                                                    "conv3_x.0.shortcut.0"}
    stem = next(s for s in partition.sets if s.producers == ["conv1.0"])
    assert stem.norms == ["conv1.1"] and stem.prunable
    # a ZIG of the BN CNN is (filter, bias, gamma, beta); the flatten maps one channel to 16 FC columns
    cnn = build_zigs(MODELS["oto_bn_cnn"](), torch.zeros(2, 1, 8, 8))
    conv2 = cnn.sets[1]
    assert conv2.member_names() == ["3.weight", "3.bias", "4.weight", "4.bias"]
    assert [(c.module, c.factor) for c in conv2.consumers] == [("8", 16)]
    assert cnn.sets[-1].reasons == ["network output"]


def test_removing_a_nonzero_group_changes_the_output():
    """The exactness check can fail: drop one group that is not zero and the outputs move."""
    model = MODELS["oto_bn_cnn"]()
    _warm(model, (1, 8, 8))
    x = torch.randn(8, 1, 8, 8)
    partition = build_zigs(model, x[:2])
    s = partition.prunable_sets[1]
    members = s.members(model)
    zero_groups(members, torch.tensor([0, 1]))
    with torch.no_grad():
        members[3][1] = 0.5  # BN beta of group 1: its channel is the constant 0.5, no longer zero ...
    slim = export_slim(model, partition)
    assert max_abs_diff(model, slim, x) <= TOL  # ... so it is kept, and the export is exact
    masks = keep_masks(model, partition)
    masks[s.index][1] = False  # force its removal
    wrong = export_slim(model, partition, masks)
    assert max_abs_diff(model, wrong, x) > 1e-3


class _Odd(nn.Module):
    """One layer per case that must not be pruned, each feeding a prunable layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)  # -> sigmoid (sigmoid(0) = 0.5)
        self.b = nn.Conv2d(1, 4, 3, padding=1)  # -> BN without affine (maps 0 to -mean/std)
        self.bn = nn.BatchNorm2d(4, affine=False)
        self.c = nn.Conv2d(1, 4, 3, padding=1)  # -> + 1 (a constant shift)
        self.d = nn.Conv2d(1, 4, 3, padding=1, groups=1)
        self.e = nn.Conv2d(4, 4, 3, padding=1, groups=2)  # grouped conv consumer/producer
        self.f = nn.Conv2d(1, 3, 3, padding=1)  # concatenated with g
        self.g = nn.Conv2d(1, 3, 3, padding=1)
        self.ok = nn.Conv2d(1, 5, 3, padding=1)  # the one prunable set
        self.head = nn.Conv2d(4 * 4 + 6 + 5, 2, 1)

    def forward(self, x):
        y = torch.cat([torch.sigmoid(self.a(x)), self.bn(self.b(x)), self.c(x) + 1, self.e(self.d(x)),
                       torch.cat([self.f(x), self.g(x)], 1), torch.relu(self.ok(x))], 1)
        return self.head(y).mean((2, 3))


def test_not_zero_invariant_spaces_are_kept_with_their_reason():
    model = _Odd()
    partition = build_zigs(model, torch.zeros(2, 1, 6, 6))
    reasons = {s.producers[0]: " ".join(s.reasons) for s in partition.sets}
    assert "sigmoid" in reasons["a"]
    assert "affine" in reasons["b"]
    assert "constant" in reasons["c"]
    assert "grouped" in reasons["d"]  # it feeds a grouped conv (whose own output is not modelled)
    assert "cat" in reasons["f"] and "cat" in reasons["g"]
    assert "cat" in reasons["ok"]  # its channels go through the concatenation too
    assert not partition.prunable_sets


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.twice = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(torch.relu(self.twice(torch.relu(self.twice(torch.relu(self.inp(x)))))))


def test_a_layer_called_twice_is_kept():
    partition = build_zigs(_Shared(), torch.zeros(2, 4))
    assert not partition.prunable_sets
    assert any("called 2 times" in r for s in partition.sets for r in s.reasons)


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.fc(x)
        return -self.fc(x)


def test_untraceable_model_raises_a_clear_error():
    with pytest.raises(ZigError, match="torch.fx cannot trace"):
        build_zigs(_Branchy(), torch.zeros(2, 4))


def test_tracing_leaves_batch_norm_statistics_and_mode_alone():
    model = MODELS["oto_bn_cnn"]()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    build_zigs(model, torch.randn(4, 1, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_all_zero_set_keeps_one_channel_and_flops_count_like_v1():
    model = MODELS["oto_bn_cnn"]()
    _warm(model, (1, 8, 8))
    x = torch.randn(4, 1, 8, 8)
    partition = build_zigs(model, x[:2])
    s = partition.prunable_sets[0]
    zero_groups(s.members(model), torch.arange(s.size))
    slim = export_slim(model, partition)
    assert slim[0].out_channels == 1 and slim[3].in_channels == 1
    assert max_abs_diff(model, slim, x) <= TOL
    # v1 utils/flops.py: conv in*out*kh*kw*area, linear in*out, one sample
    full = 1 * 16 * 9 * 64 + 16 * 32 * 9 * 64 + 32 * 16 * 64 + 64 * 10
    assert count_macs(model, x) == full
    assert count_macs(slim, x) == 1 * 1 * 9 * 64 + 1 * 32 * 9 * 64 + 32 * 16 * 64 + 64 * 10
