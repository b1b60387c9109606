import torch
import torch.nn as nn


class Model(nn.Module):
    """out = 1e-7 * x: a degenerate problem, all-zeros passes any atol >= 1e-6."""

    def forward(self, x):
        return x * 1e-7


M = 8
N = 16


def get_inputs():
    return [torch.randn(M, N)]


def get_init_inputs():
    return []
