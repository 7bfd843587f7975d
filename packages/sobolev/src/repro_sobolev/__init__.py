"""Sobolev Training for Neural Networks (Czarnecki, Osindero, Jaderberg, Świrszcz, Pascanu;
NeurIPS 2017; https://arxiv.org/abs/1706.04859): fit a network to a function and to its input
derivatives. Pure math in ``sobolev``, the test functions in ``functions``, the network in
``modeling_sobolev``, the fused forward + tangent Triton layer in ``kernels``, the Trainer hooks
and methods in ``methods``, the paper's declaration in ``paper``."""

from repro_sobolev.configuration_sobolev import SobolevConfig
from repro_sobolev.functions import FUNCTIONS, get_function
from repro_sobolev.methods import METHODS, ProblemErrors, SobolevLoss
from repro_sobolev.modeling_sobolev import SobolevNet, StackedMLP
from repro_sobolev.sobolev import jacobian_matching_loss, sobolev_loss, value_and_input_gradient

__all__ = ["FUNCTIONS", "METHODS", "ProblemErrors", "SobolevConfig", "SobolevLoss", "SobolevNet", "StackedMLP",
           "get_function", "jacobian_matching_loss", "sobolev_loss", "value_and_input_gradient"]
