"""AutoAssist: Boss/Assistant instance shrinking (Zhang, Yu & Dhillon, NeurIPS 2019, arXiv 1905.03381).

``assistant`` holds the pure math of the linear Assistant, ``shrinking`` the batch-selection
``repro.trainer.Hook`` and the synchronous / asynchronous Boss–Assistant exchange, ``kernels`` the
fused Triton selection kernel and its PyTorch reference, ``methods`` the three methods (sgd,
loss_is, autoassist) on the core's gradient descent, ``paper`` the declaration for the core.
"""

from repro_autoassist.assistant import Assistant, acceptance_prob, assistant_sgd, keep_score
from repro_autoassist.configuration_autoassist import AutoAssistConfig
from repro_autoassist.methods import InstanceShrinking
from repro_autoassist.shrinking import AsyncExchange, SyncExchange

__all__ = ["Assistant", "AsyncExchange", "AutoAssistConfig", "InstanceShrinking", "SyncExchange",
           "acceptance_prob", "assistant_sgd", "keep_score"]
