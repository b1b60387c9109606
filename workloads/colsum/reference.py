import torch
import torch.nn as nn


class Model(nn.Module):
    """Bias gradient of a linear layer: grad_bias = grad_out.sum(dim=0) for grad_out [M, N]
    (M = tokens, N = output features), output [N].

    A reduction over the leading (strided) dimension of a row-major matrix: each output is a
    column sum, so the contiguous direction is the one being kept, not the one being reduced.
    """

    def __init__(self):
        super().__init__()

    def forward(self, grad_out: torch.Tensor) -> torch.Tensor:
        return grad_out.sum(dim=0)


M = 8192
N = 2048


def get_inputs():
    return [torch.randn(M, N)]


def get_init_inputs():
    return []
