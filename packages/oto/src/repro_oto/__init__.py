"""Only Train Once (OTO): one-shot training and structured pruning with HSPG.

Chen et al., "Only Train Once: A One-Shot Neural Network Training And Pruning Framework",
NeurIPS 2021, https://arxiv.org/abs/2107.07467 (v1 code: tianyic/only_train_once @ bee12d5).

* ``build_zigs`` (``zig.py``): the zero-invariant groups of a model, from its ``torch.fx`` graph.
* ``export_slim`` / ``slim_report`` (``slim.py``): the slim network without the zero groups, its
  FLOPs and parameters, and the check that it computes the same outputs.
* ``hspg.py``: the step math; ``kernels.ZigStep``: the fused multi-tensor Triton step.
* ``methods.METHODS``: ``dense``, ``prox_sg``, ``hspg`` on the core Trainer; ``paper.PAPER``.
"""

from repro_oto.configuration_oto import OtoConfig
from repro_oto.slim import count_macs, count_params, export_slim, max_abs_diff, slim_report
from repro_oto.zig import ZigError, ZigPartition, ZigSet, build_zigs

__all__ = ["OtoConfig", "ZigError", "ZigPartition", "ZigSet", "build_zigs", "count_macs", "count_params",
           "export_slim", "max_abs_diff", "slim_report"]
