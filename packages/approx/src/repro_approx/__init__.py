"""Approximate tensor operations by column-row sampling (Adelman, Levy, Hakimi, Silberstein, NeurIPS 2021).

Paper: "Faster Neural Network Training with Approximate Tensor Operations", arXiv 1805.08079,
https://arxiv.org/abs/1805.08079. Reference code: adelmanm/approx (read for details; this is our code).

``sampling`` (pure selection math), ``autograd`` (sampled linear / conv2d autograd functions),
``wrap`` (approximate chosen layers of any model), ``flops`` (MAC accounting), ``kernels`` (fused
Triton sampled GEMM, scores and Bernoulli selection, with PyTorch references), ``methods`` (the
core's gradient descent + one hook) and ``paper`` (experiments and claims).
"""

from repro_approx.autograd import approx_conv2d, approx_linear
from repro_approx.configuration_approx import ApproxConfig
from repro_approx.flops import MacCounter
from repro_approx.sampling import approx_matmul, num_kept, pair_scores, sampled_matmul, select
from repro_approx.wrap import ApproxConv2d, ApproxLinear, approximate_model

__all__ = ["ApproxConfig", "ApproxConv2d", "ApproxLinear", "MacCounter", "approx_conv2d", "approx_linear",
           "approx_matmul", "approximate_model", "num_kept", "pair_scores", "sampled_matmul", "select"]
