"""Benchmark of N:M sparse training's GEMMs at the shapes of the paper-scale models.

For every distinct convolution of CIFAR ResNet-18 / ResNet-50 (as implicit GEMMs: R = batch x
output pixels rows, K = C_in kh kw, O = C_out) it times, against the dense GEMM of the same shape:

* FF  Y  = X W2ᵀ     dense  vs  2:4 semi-structured W2 ⊙ M_f (sparse along K)
* BP  dX = dY W2     dense  vs  2:4 semi-structured (W2 ⊙ M_b)ᵀ (sparse along O: BDWP)
* WG  dW = dYᵀ X     dense (every method)
* the per-step overhead: both N:M masks (fused Triton mask + pack kernel vs the PyTorch reference)
  and the two 2:4 compressions (``to_sparse_semi_structured``)

and sums them over the model (each shape times its count) into a step estimate of BDWP vs dense,
printed with the ideal ratios: (1/2 + 1/2 + 1) / 3 = 0.667 on 2:4 hardware (a 2:8 weight runs at
2:4 speed on a GPU) and the 2:8 accounting ideal 0.5. Ratios < 1 are faster than dense.

CUDA: bf16, ``repro.bench.time_call`` (median after warm-up, synchronised). The 2:4 path is used
only where ``semi_structured.status`` finds a working backend (cuSPARSELt, else CUTLASS); otherwise
the rows say why and time the masked dense product instead. CPU: fp32, the reference paths (masked
dense GEMMs, the PyTorch mask), ResNet-18 only at batch 2 — no GPU path runs, and CPU timings say
nothing about GPU speed.

    uv run python packages/nm_sparse/benchmarks/bench_nm_sparse.py                 # CUDA if present
    uv run python packages/nm_sparse/benchmarks/bench_nm_sparse.py --device cpu
    uv run python packages/nm_sparse/benchmarks/bench_nm_sparse.py --models resnet18,resnet50 --batch 128

Results: ``benchmarks/results/nm_sparse-paper-shapes-<device>.{json,md}``. (``repro bench
nm_sparse`` runs the core harness on this package's kernel cases instead: square shapes x keep ratios.)
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from repro.bench import device_label, time_call
from repro.environment import cpu_name

from repro_nm_sparse import semi_structured as ss
from repro_nm_sparse.kernels import nm_mask_pack, nm_masks, triton
from repro_nm_sparse.masks import nm_mask

HERE = Path(__file__).resolve().parent


def conv_shapes(model: nn.Module, batch: int, image: int = 32) -> Counter:
    """(R, K, O) of every Conv2d of *model* on a (batch, 3, image, image) input, with counts."""
    shapes: Counter = Counter()
    hooks = []

    def record(mod: nn.Conv2d, _inp, out):
        kh, kw = mod.kernel_size
        shapes[(batch * out.shape[2] * out.shape[3], mod.in_channels * kh * kw, mod.out_channels)] += 1

    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(record))
    with torch.no_grad():  # one image is enough: R scales the output pixels by `batch`
        model.eval()(torch.zeros(1, 3, image, image))
    for h in hooks:
        h.remove()
    return shapes


def models(names: list[str]) -> dict[str, nn.Module]:
    from repro.models import resnet18_cifar

    from repro_nm_sparse.models import nm_resnet50_cifar

    builders = {"resnet18": resnet18_cifar, "resnet50": nm_resnet50_cifar}
    return {n: builders[n](num_classes=10) for n in names}


def bench_shape(r: int, k: int, o: int, device: torch.device, st: ss.Status, eligible: bool) -> dict[str, Any]:
    """Times (ms) of the dense and sparse GEMMs and the per-step mask / compression work of one shape."""
    cuda = device.type == "cuda"
    dtype = ss.DTYPE if cuda else torch.float32
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(r, k, generator=gen).to(device, dtype)
    gy = torch.randn(r, o, generator=gen).to(device, dtype)
    w = torch.randn(o, k, generator=gen).to(device, dtype)
    t = (lambda f: time_call(f, device, repeats=20, warmup=5) * 1e3) if cuda else _cpu_ms
    row: dict[str, Any] = {"R": r, "K": k, "O": o, "eligible": eligible}
    row["ff_dense_ms"] = t(lambda: x @ w.t())
    row["bp_dense_ms"] = t(lambda: gy @ w)
    row["wg_ms"] = t(lambda: gy.t() @ x)
    if not eligible:  # sizes not multiples of the group: the layer stays dense in every method
        row.update(ff_sparse_ms=row["ff_dense_ms"], bp_sparse_ms=row["bp_dense_ms"], masks_ms=0.0, compress_ms=0.0,
                   path="dense (sizes not multiples of M)")
        return row
    wf = w * nm_mask(w, 2, 4, 1).to(dtype)
    wb = w * nm_mask(w, 2, 4, 0).to(dtype)
    use_ss = cuda and st.available and ss.shape_ok(o, k, st.backend) and ss.shape_ok(k, o, st.backend)
    if use_ss:
        wf_s, wbt_s = ss.compress(wf, st.backend), ss.compress(wb.t(), st.backend)
        err = (ss.sparse_linear(x, wf_s).float() - (x @ wf.t()).float()).abs().max().item()
        row["ff_sparse_ms"] = t(lambda: ss.sparse_linear(x, wf_s))
        row["bp_sparse_ms"] = t(lambda: ss.sparse_linear(gy, wbt_s))
        row["compress_ms"] = t(lambda: (ss.compress(wf, st.backend), ss.compress(wb.t(), st.backend)))
        row["path"] = f"2:4 {st.backend} (max |err| vs dense {err:.3g})"
    else:
        row["ff_sparse_ms"] = t(lambda: x @ wf.t())
        row["bp_sparse_ms"] = t(lambda: gy @ wb)
        row["compress_ms"] = 0.0
        row["path"] = "masked dense (reference)" + ("" if not cuda else f": {st.describe()}")
    w2 = w.contiguous()
    # both 2:8 masks of the step: the fused Triton kernel (masks + packing) on CUDA; the PyTorch masks
    # (what the training path computes without Triton) as the reference, on every device
    row["masks_reference_ms"] = t(lambda: nm_masks(w2, 2, 8, backward=True, kernel="reference"))
    row["masks_ms"] = (t(lambda: nm_mask_pack(w2, 2, 8)) if cuda and triton is not None
                       else row["masks_reference_ms"])
    return row


def _cpu_ms(fn, repeats: int = 7) -> float:
    """Minimum over repeats (ms): on a shared CPU the median picks up scheduler stalls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def summarise(rows: list[dict[str, Any]], counts: list[int]) -> dict[str, float]:
    """Model-level step estimate (sum over layers x counts) of BDWP on 2:4 hardware vs dense."""
    def total(keys):
        return sum(c * sum(r[k] for k in keys) for r, c in zip(rows, counts))

    dense = total(("ff_dense_ms", "bp_dense_ms", "wg_ms"))
    gemm = total(("ff_sparse_ms", "bp_sparse_ms", "wg_ms"))
    with_overhead = gemm + total(("masks_ms", "compress_ms"))
    return {"dense_step_gemm_ms": dense, "bdwp_step_gemm_ms": gemm, "bdwp_step_with_masks_ms": with_overhead,
            "ratio_gemm_only": gemm / dense, "ratio_with_overhead": with_overhead / dense,
            "ideal_2to4_hardware": (0.5 + 0.5 + 1) / 3, "ideal_2to8_accounting": 0.5}


def to_markdown(doc: dict[str, Any]) -> str:
    lines = [f"Device: **{doc['device']}** (torch {doc['torch']}). {doc['mode']}", "",
             f"GPU 2:4 path: {doc['semi_structured']}", ""]
    for name, res in doc["models"].items():
        s = res["summary"]
        lines += [f"### {name} (batch {doc['batch']})", "",
                  "| R×K×O | count | path | FF dense ms | FF 2:4 ms | BP dense ms | BP 2:4 ms | WG ms | masks ms "
                  "(ref ms) | compress ms |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r, c in zip(res["rows"], res["counts"]):
            lines.append(f"| {r['R']}×{r['K']}×{r['O']} | {c} | {r['path']} | {r['ff_dense_ms']:.4f} | "
                         f"{r['ff_sparse_ms']:.4f} | {r['bp_dense_ms']:.4f} | {r['bp_sparse_ms']:.4f} | "
                         f"{r['wg_ms']:.4f} | {r.get('masks_ms', 0):.4f} ({r.get('masks_reference_ms', 0):.4f}) | "
                         f"{r['compress_ms']:.4f} |")
        lines += ["", f"Step estimate (sum of GEMMs over the model): dense {s['dense_step_gemm_ms']:.3f} ms, "
                      f"BDWP GEMMs {s['bdwp_step_gemm_ms']:.3f} ms (ratio **{s['ratio_gemm_only']:.3f}**), "
                      f"with masks + compression {s['bdwp_step_with_masks_ms']:.3f} ms (ratio "
                      f"**{s['ratio_with_overhead']:.3f}**); ideal on 2:4 hardware {s['ideal_2to4_hardware']:.3f}, "
                      f"2:8 accounting ideal {s['ideal_2to8_accounting']:.3f}.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"))
    ap.add_argument("--models", help="comma-separated: resnet18, resnet50 (default: both on CUDA, resnet18 on CPU)")
    ap.add_argument("--batch", type=int, help="batch size of the implicit GEMMs (default: 128 CUDA, 2 CPU)")
    ap.add_argument("--out", help="output prefix (default: benchmarks/results/nm_sparse-paper-shapes-<device>)")
    args = ap.parse_args()
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)  # as the training trials run; fewer stalls on a shared machine
    names = (args.models or ("resnet18,resnet50" if cuda else "resnet18")).split(",")
    batch = args.batch or (128 if cuda else 2)
    st = ss.status(str(dev)) if cuda else ss.status("cpu")
    doc: dict[str, Any] = {
        "device": device_label(dev), "torch": torch.__version__, "batch": batch, "cpu": cpu_name(),
        "mode": ("CUDA, bf16: dense cuBLAS GEMMs vs 2:4 semi-structured GEMMs where available." if cuda else
                 "CPU (1 thread, minimum of 7 repeats), fp32: the reference paths (masked dense GEMMs, PyTorch "
                 "masks); the GPU path was not available, so these timings say nothing about GPU speed: the "
                 "'2:4' columns do the same dense work as the dense ones."),
        "semi_structured": st.describe(), "models": {},
    }
    for name, model in models(names).items():
        shapes = conv_shapes(model, batch)
        rows, counts = [], []
        for (r, k, o), c in tqdm(sorted(shapes.items()), desc=name):
            eligible = k % 8 == 0 and o % 8 == 0
            rows.append(bench_shape(r, k, o, dev, st, eligible))
            counts.append(c)
        doc["models"][name] = {"rows": rows, "counts": counts, "summary": summarise(rows, counts)}
    label = "cuda-" + torch.cuda.get_device_name(dev) if cuda else "cpu"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label.lower())
    prefix = Path(args.out) if args.out else HERE / "results" / f"nm_sparse-paper-shapes-{safe}"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    js, md = prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")
    js.write_text(json.dumps(doc, indent=2) + "\n")
    md.write_text(to_markdown(doc))
    print(md.read_text(), end="")
    print(f"wrote {js} and {md}")


if __name__ == "__main__":
    main()
