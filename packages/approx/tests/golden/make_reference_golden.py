"""Regenerate ``reference_golden.json`` by running the official code (adelmanm/approx) on fixed inputs.

Usage (the reference is only *run* here, never imported by the package or the tests)::

    git clone https://github.com/adelmanm/approx /tmp/approx-ref      # or: git archive of commit 6a1e26b
    uv run --frozen python packages/approx/tests/golden/make_reference_golden.py /tmp/approx-ref

The script puts ``<ref>/src/pytorch`` on ``sys.path``, imports the reference functions from
``approx_mul_pytorch/functional/approx_linear.py``, ``approx_mul_pytorch/functional/approx_conv2d.py``
and ``approx_mul_pytorch/Function/approx_linear.py``, and calls them on small integer inputs. Their
random draws are forced so that the result is deterministic:

* ``torch.bernoulli(prob_dist)`` (Bernoulli-CRS) returns the fixed keep mask ``i % 3 != 1`` (or all
  zeros in the ``*_empty`` case); the ``prob_dist`` it receives is recorded as ``p``;
* ``torch.multinomial(norm_mult, k, replacement=True)`` (CRS) returns the fixed draw
  ``[n-1, 1, n-1, 1, ...][:k]`` (a repeated index when k >= 3); ``norm_mult`` is recorded as ``p``;
* ``topk_indices(norm_mult, k)`` (``modules/utils.py``) is wrapped: scores, k and indices recorded;
* ``torch.diag(scale_factors[indices])`` (linear CRS / Bernoulli) is wrapped: the per-index scales
  are recorded as ``scale``.

The reference's conv backward helpers call a C++ extension (``approx_conv2d.backward_input`` /
``backward_weight``, cudnn); a shim with the same signature calls ``torch.nn.grad.conv2d_input`` /
``conv2d_weight`` instead. The linear backward of the reference is wired to Bernoulli-CRS
(``functional/approx_linear.py`` L38); the ``*_topk`` / ``*_crs`` backward/both cases switch that
dispatch to ``linear_top_k`` / ``linear_random_sampling`` (the commented alternatives at L33 / L36).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).with_name("reference_golden.json")
STRIDE, PADDING, DILATION = (2, 2), (1, 1), (1, 1)


def keep_mask(n: int) -> list[bool]:
    return [i % 3 != 1 for i in range(n)]


def crs_draw(n: int, k: int) -> list[int]:
    return [(n - 1) if j % 2 == 0 else 1 for j in range(k)]


def lcg(seed: int, n: int) -> list[int]:
    """n small integers in [-3, 3] from a fixed linear congruential generator (no torch RNG)."""
    out = []
    for _ in range(n):
        seed = (seed * 1103515245 + 12345) % 2**31
        out.append((seed >> 16) % 7 - 3)
    return out


def nested(flat: list[int], shape: tuple[int, ...]) -> list:
    t = torch.tensor(flat, dtype=torch.float32).reshape(shape)
    return t.tolist()


def inputs() -> dict:
    lin = {
        "x": [[1, -2, 0, 3, 1], [2, 1, -1, 0, -2], [0, 3, 2, -1, 1], [-1, 0, 1, 2, 3]],
        "w": [[1, 0, -1, 2, 1], [-2, 1, 0, 1, 3], [0, 2, 1, -1, 1]],
        "bias": [0.5, -1.0, 2.0],
        "grad_out": [[1, -1, 2], [0, 2, 1], [-2, 1, 0], [1, 1, -3]],
    }
    x = nested(lcg(1, 144), (4, 4, 3, 3))      # (batch, in channels, h, w)
    wt = nested(lcg(1001, 48), (3, 4, 2, 2))   # (out channels, in channels, kh, kw)
    g = nested(lcg(2001, 48), (4, 3, 2, 2))    # upstream gradient (batch, out channels, 2, 2)
    conv = {"x": x, "w": wt, "bias": [1.0, -0.5, 0.25], "grad_out": g, "stride": list(STRIDE),
            "padding": list(PADDING), "dilation": list(DILATION)}
    return {"linear": lin, "conv": conv}


class Recorder:
    def __init__(self, empty: bool = False) -> None:
        self.draws: list[dict] = []
        self.empty = empty


@contextlib.contextmanager
def forced(rec: Recorder, L, C):
    real_bern, real_multi, real_diag = torch.bernoulli, torch.multinomial, torch.diag
    real_topk_l, real_topk_c = L.topk_indices, C.topk_indices

    def bernoulli(p, *a, **kw):
        n = p.numel()
        mask = [False] * n if rec.empty else keep_mask(n)
        rec.draws.append({"kind": "bernoulli", "n": n, "p": p.float().tolist(), "kept": mask})
        return torch.tensor(mask, dtype=p.dtype, device=p.device)

    def multinomial(p, k, replacement=False, *a, **kw):
        assert replacement, "golden cases use CRS with replacement"
        k = int(k)
        draw = crs_draw(p.numel(), k)
        rec.draws.append({"kind": "crs", "n": p.numel(), "k": k, "p": p.float().tolist(), "indices": draw})
        return torch.tensor(draw, dtype=torch.long, device=p.device)

    def diag(v, *a, **kw):
        if rec.draws and v.dim() == 1:
            rec.draws[-1]["scale"] = v.float().tolist()
        return real_diag(v, *a, **kw)

    def topk(data, k):
        idx = real_topk_l(data, k)
        vals = data.float().tolist()
        assert len(set(vals)) == len(vals), f"tied scores {vals}: top-k would be ambiguous"
        rec.draws.append({"kind": "topk", "n": data.numel(), "k": int(k), "scores": vals, "indices": idx.tolist()})
        return idx

    torch.bernoulli, torch.multinomial, torch.diag = bernoulli, multinomial, diag
    L.topk_indices = C.topk_indices = topk
    try:
        yield
    finally:
        torch.bernoulli, torch.multinomial, torch.diag = real_bern, real_multi, real_diag
        L.topk_indices, C.topk_indices = real_topk_l, real_topk_c


class ConvShim:
    """Stands in for the reference's C++ extension ``approx_conv2d`` (cudnn backward calls)."""

    @staticmethod
    def backward_input(shape, weight, grad_output, stride, padding, dilation, groups, *flags):
        return torch.nn.grad.conv2d_input(shape, weight, grad_output, stride, padding, dilation, groups)

    @staticmethod
    def backward_weight(input, weight_shape, grad_output, stride, padding, dilation, groups, *flags):
        return torch.nn.grad.conv2d_weight(input, weight_shape, grad_output, stride, padding, dilation, groups)


def main(ref: Path) -> None:
    sys.path.insert(0, str(ref / "src" / "pytorch"))
    import approx_mul_pytorch.Function.approx_linear as FL
    import approx_mul_pytorch.functional.approx_conv2d as C
    import approx_mul_pytorch.functional.approx_linear as L

    C.approx_conv2d = ConvShim
    data = inputs()
    lin, cv = data["linear"], data["conv"]

    def leaves(d):
        return [torch.tensor(d[k], dtype=torch.float32, requires_grad=True) for k in ("x", "w", "bias")]

    def fwd_linear(strategy):
        return {"topk": lambda x, w, b, r, mk, **kw: L.linear_top_k(x, w.t(), b, r, mk, **kw),
                "crs": lambda x, w, b, r, mk, **kw: L.linear_random_sampling(x, w.t(), b, r, mk, True, True, True,
                                                                             **kw),
                "bernoulli": lambda x, w, b, r, mk, **kw: L.linear_bernoulli_sampling(x, w.t(), b, r, mk, True, **kw)
                }[strategy]

    @contextlib.contextmanager
    def linear_dispatch(strategy):
        """Switch functional/approx_linear.py L38 (the backward products' dispatch) to *strategy*."""
        real = L.linear_bernoulli_sampling
        alt = {"topk": lambda A, B, bias, r, mk, scale=True, **kw: L.linear_top_k(A, B, bias, r, mk, **kw),
               "crs": lambda A, B, bias, r, mk, scale=True, **kw: L.linear_random_sampling(A, B, bias, r, mk, True,
                                                                                            True, scale, **kw),
               "bernoulli": real}[strategy]
        L.linear_bernoulli_sampling = alt
        try:
            yield
        finally:
            L.linear_bernoulli_sampling = real

    cases = []

    def run_linear(name, mode, strategy, ratio, minimal_k, reference, empty=False):
        x, w, b = leaves(lin)
        g = torch.tensor(lin["grad_out"], dtype=torch.float32)
        rec = Recorder(empty)
        with forced(rec, L, C), linear_dispatch(strategy if mode != "forward" else "bernoulli"):
            if mode == "forward":
                out = fwd_linear(strategy)(x, w, b, ratio, minimal_k)
            elif mode == "backward":
                out = FL.approx_linear_func.apply(x, w, b, 1.0, 1, ratio, minimal_k, ratio, minimal_k)
            else:
                out = fwd_linear(strategy)(x, w, b, ratio, minimal_k, sample_ratio_bwd=ratio, minimal_k_bwd=minimal_k,
                                           sample_ratio_wu=ratio, minimal_k_wu=minimal_k)
            out.backward(g)
        cases.append({"name": name, "layer": "linear", "mode": mode, "strategy": strategy, "ratio": ratio,
                      "minimal_k": minimal_k, "reference": reference, "draws": rec.draws,
                      "out": out.detach().tolist(), "grad_x": x.grad.tolist(), "grad_w": w.grad.tolist(),
                      "grad_b": b.grad.tolist()})

    def run_conv(name, mode, strategy, ratio, minimal_k, reference):
        x, w, b = leaves(cv)
        g = torch.tensor(cv["grad_out"], dtype=torch.float32)
        rec = Recorder()
        args = (STRIDE, PADDING, DILATION, 1, ratio, minimal_k)
        with forced(rec, L, C):
            if mode == "forward":
                fn = {"topk": lambda: C.conv2d_top_k(x, w, b, *args),
                      "crs": lambda: C.conv2d_random_sampling(x, w, b, *args, True, True, True),
                      "bernoulli": lambda: C.conv2d_bernoulli_sampling(x, w, b, *args, True)}[strategy]
                out = fn()
                out.backward(g)
                gx, gw, gb = x.grad, w.grad, b.grad
            else:  # the reference's backward: Function/approx_conv2d.py L30-40
                with torch.no_grad():
                    out = F.conv2d(x, w, b, STRIDE, PADDING, DILATION)
                    bwd = {"topk": lambda: C.conv2d_bwd_topk(x.shape, w, g, *args),
                           "crs": lambda: C.conv2d_bwd_random_sampling(x.shape, w, g, *args, True, True, True),
                           "bernoulli": lambda: C.conv2d_bwd_bernoulli_sampling(x.shape, w, g, *args, True)}
                    wu = {"topk": lambda: C.conv2d_wu_topk(x, w.shape, g, *args),
                          "crs": lambda: C.conv2d_wu_random_sampling(x, w.shape, g, *args, True, True, True),
                          "bernoulli": lambda: C.conv2d_wu_bernoulli_sampling(x, w.shape, g, *args, True)}
                    gx = bwd[strategy]()
                    gw = wu[strategy]()
                    gb = g.sum((0, 2, 3))
        cases.append({"name": name, "layer": "conv2d", "mode": mode, "strategy": strategy, "ratio": ratio,
                      "minimal_k": minimal_k, "reference": reference, "draws": rec.draws,
                      "out": out.detach().tolist(), "grad_x": gx.tolist(), "grad_w": gw.tolist(),
                      "grad_b": gb.tolist()})

    fa = "approx_mul_pytorch/functional/approx_linear.py"
    fc = "approx_mul_pytorch/functional/approx_conv2d.py"
    Fl = "approx_mul_pytorch/Function/approx_linear.py"
    run_linear("linear_forward_topk", "forward", "topk", 0.4, 1,
               f"{fa}::linear_top_k L49-119 (topk_indices: modules/utils.py L2-5)")
    run_linear("linear_forward_topk_minimal_k", "forward", "topk", 0.2, 3,
               f"{fa}::linear_top_k L62-68 (k lifted to minimal_k)")
    run_linear("linear_forward_crs", "forward", "crs", 0.6, 1,
               f"{fa}::linear_random_sampling L220-350 (eps mix L274-279, scale L302-307)")
    run_linear("linear_forward_bernoulli", "forward", "bernoulli", 0.4, 1,
               f"{fa}::linear_bernoulli_sampling L382-486 (p L444-451, scale L462-467)")
    run_linear("linear_forward_bernoulli_minimal_k", "forward", "bernoulli", 0.2, 3,
               f"{fa}::linear_bernoulli_sampling L398-405 (k lifted to minimal_k) + L444-451")
    run_linear("linear_forward_bernoulli_empty", "forward", "bernoulli", 0.4, 1,
               f"{fa}::linear_bernoulli_sampling L453-456 (nothing kept: the reference falls back to arange(k))",
               empty=True)
    for s, ratio in (("topk", 0.5), ("crs", 0.75), ("bernoulli", 0.5)):
        run_linear(f"linear_backward_{s}", "backward", s, ratio, 1,
                   f"{Fl}::approx_linear_func L16-34 -> {fa}::approx_linear_forward_xA_b L21-38"
                   + ("" if s == "bernoulli" else f" (dispatch switched to {s}, the alternative at L33/L36)"))
        run_linear(f"linear_both_{s}", "both", s, ratio, 1,
                   f"{fa}::matmul_approx_bwd_func L488-514 after the {s} forward"
                   + ("" if s == "bernoulli" else f" (backward dispatch switched to {s}, L33/L36)"))
    run_conv("conv2d_forward_topk", "forward", "topk", 0.5, 1, f"{fc}::conv2d_top_k L713-751 (norms L730-739)")
    run_conv("conv2d_forward_crs", "forward", "crs", 0.75, 1,
             f"{fc}::conv2d_random_sampling L507-606 (eps mix L550-555, scale L575-582)")
    run_conv("conv2d_forward_bernoulli", "forward", "bernoulli", 0.5, 1,
             f"{fc}::conv2d_bernoulli_sampling L986-1063 (p L1036-1044, scale L1055-1059)")
    run_conv("conv2d_backward_topk", "backward", "topk", 0.5, 1,
             f"{fc}::conv2d_bwd_topk L12-50, conv2d_wu_topk L251-288")
    run_conv("conv2d_backward_crs", "backward", "crs", 0.75, 1,
             f"{fc}::conv2d_bwd_random_sampling L59-150, conv2d_wu_random_sampling L297-387")
    run_conv("conv2d_backward_bernoulli", "backward", "bernoulli", 0.5, 1,
             f"{fc}::conv2d_bwd_bernoulli_sampling L159-227, conv2d_wu_bernoulli_sampling L397-464")

    # k = min(max(int(n * ratio), minimal_k), n), read off the reference (L62-68 of linear_top_k): the
    # k passed to topk_indices, or n when the reference takes its exact path (k == n, L71-80).
    num_kept = []
    for n, ratio, mk in ((100, 0.29, 1), (10, 0.7, 1), (5, 0.6, 1), (10, 0.25, 1), (10, 0.01, 4), (10, 0.5, 20),
                         (7, 1.0, 1), (3, 0.5, 1), (1, 0.3, 1)):
        rec = Recorder()
        a = torch.arange(2 * n, dtype=torch.float32).reshape(2, n) + 1
        with forced(rec, L, C):
            L.linear_top_k(a, torch.ones(n, 2), None, ratio, mk)
        num_kept.append({"n": n, "ratio": ratio, "minimal_k": mk, "k": rec.draws[0]["k"] if rec.draws else n,
                         "exact": not rec.draws})

    # Bernoulli-CRS with zero scores: the reference lowers k to the number of nonzero scores (L437-442)
    rec = Recorder()
    a = torch.tensor([[3.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    bm = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    with forced(rec, L, C):
        out = L.linear_bernoulli_sampling(a, bm, None, 0.75, 1, True)
    zero_scores = {"a": a.tolist(), "b": bm.tolist(), "ratio": 0.75, "minimal_k": 1, "scores": [3.0, 1.0, 0.0, 0.0],
                   "reference": f"{fa}::linear_bernoulli_sampling L437-451 (k = min(k, nnz))",
                   "draws": rec.draws, "out": out.tolist()}

    try:
        commit = subprocess.run(["git", "-C", str(ref), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "6a1e26b5996c464f7a47701cbd06c35865268d60 (assumed: not a git checkout)"
    doc = {"reference": {"repo": "adelmanm/approx", "commit": commit, "torch": torch.__version__,
                         "generator": "packages/approx/tests/golden/make_reference_golden.py"},
           "eps": 0.1, "inputs": data, "num_kept": num_kept, "cases": cases, "bernoulli_zero_scores": zero_scores}
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())
