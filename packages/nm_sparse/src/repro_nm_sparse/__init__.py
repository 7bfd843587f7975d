"""N:M sparse training: SR-STE (Zhou et al., ICLR 2021) and BDWP (Fang, Sun, Zhou, Wang, IEEE TCAD).

Papers: "Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch", arXiv 2102.04010
(official code NM-sparsity/NM-sparsity, read and run for the golden tests); "Efficient N:M Sparse DNN
Training Using Algorithm, Architecture, and Dataflow Co-Design", arXiv 2309.13015 (no public code).

``masks`` (pure N:M math), ``autograd`` (the three GEMMs of a sparse Linear / Conv2d), ``kernels``
(fused Triton mask + pack kernel with its PyTorch reference), ``semi_structured`` (the 2:4 GPU path,
probed), ``accounting`` (MACs per pass), ``wrap`` (sparsify any model in place), ``methods`` (the
core's gradient descent + one hook) and ``paper`` (experiments and claims).
"""

from repro_nm_sparse.accounting import MacCounter, ideal_ratio
from repro_nm_sparse.autograd import nm_conv2d, nm_linear
from repro_nm_sparse.configuration_nm_sparse import NmSparseConfig
from repro_nm_sparse.masks import layer_mask, nm_mask, srste_gradient
from repro_nm_sparse.wrap import NMConv2d, NMLinear, sparsify_model

__all__ = ["MacCounter", "NMConv2d", "NMLinear", "NmSparseConfig", "ideal_ratio", "layer_mask", "nm_conv2d",
           "nm_linear", "nm_mask", "sparsify_model", "srste_gradient"]
