import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Per-token cross-entropy over a large vocabulary, the fused LM-head loss with
    reduction="none": loss[i] = logsumexp(logits[i, :]) - logits[i, targets[i]].

    logits [M, V] fp32 (M tokens, V vocabulary entries), targets int64 [M] with values in [0, V).
    Output: loss [M] fp32.
    """

    def __init__(self):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none")


M = 512
V = 32000


def get_inputs():
    # targets is an integer tensor: the harness keeps it as drawn here (under torch.manual_seed(seed))
    # and only refills the logits from the declared distribution.
    return [torch.randn(M, V), torch.randint(0, V, (M,), dtype=torch.int64)]


def get_init_inputs():
    return []
