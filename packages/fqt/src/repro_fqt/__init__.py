"""A Statistical Framework for Low-bitwidth Training of Deep Neural Networks (Chen, Gai, Yao,
Mahoney, Gonzalez; NeurIPS 2020; https://arxiv.org/abs/2010.14298).

Fully quantized training (FQT): the forward of quantization-aware training (8-bit activations and
weights, straight-through) plus low-bit, stochastically rounded gradients with gradient
bifurcation. The quantizers (``quantizers``: PTQ / PSQ / BHQ), the fused Triton kernel
(``kernels``), the quantized layers (``autograd``, ``wrap``), the variance probe (``variance``).
"""

from repro_fqt.autograd import ForwardSpec, GradSpec, quantized_conv2d, quantized_linear
from repro_fqt.configuration_fqt import FQTConfig
from repro_fqt.quantizers import bhq_plan, householder_apply, quantize_gradient
from repro_fqt.variance import gradient_variance, summary_values
from repro_fqt.wrap import quantize_model

__all__ = ["FQTConfig", "ForwardSpec", "GradSpec", "bhq_plan", "gradient_variance", "householder_apply",
           "quantize_gradient", "quantize_model", "quantized_conv2d", "quantized_linear", "summary_values"]
