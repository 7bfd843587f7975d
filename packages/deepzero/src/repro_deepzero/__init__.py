"""DeepZero: Scaling up Zeroth-Order Optimization for Deep Model Training (Chen et al., ICLR 2024,
https://arxiv.org/abs/2310.02025; official code https://github.com/OPTML-Group/DeepZero).

Training with forward passes only: coordinate-wise gradient estimates on a sparse, ZO-GraSP-guided
set of coordinates, with feature reuse, fed to SGD. The math lives in ``estimators`` (pure CGE /
RGE), ``engine`` (batched perturbed forwards: naive, feature reuse, rank-one delta), ``kernels``
(the Triton structured-delta kernel) and ``zo_grasp`` (layer ratios, masks); ``methods`` plugs
them into the core Trainer as one hook.
"""

from repro_deepzero.configuration_deepzero import DeepZeroConfig, SparseCGEConfig
from repro_deepzero.engine import Program, cge, rge
from repro_deepzero.methods import METHODS, ZerothOrderGradient

__all__ = ["DeepZeroConfig", "METHODS", "Program", "SparseCGEConfig", "ZerothOrderGradient", "cge", "rge"]
