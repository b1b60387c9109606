import math

import torch
import torch.nn as nn


class Model(nn.Module):
    """One decode step of multi-head attention over a KV cache (no mask: every cached position
    is visible to the new token):

        out[b, h, :] = softmax(q[b, h, :] . k_cache[b, h, :, :]^T / sqrt(D)) . v_cache[b, h, :, :]

    q [B, H, D], k_cache and v_cache [B, H, S, D] (S cached positions), out [B, H, D], fp32.
    Written as HF transformers' "eager" attention does it: scores, softmax, weighted sum of V.
    """

    def __init__(self):
        super().__init__()

    def forward(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        d = q.shape[-1]
        scores = torch.matmul(q.unsqueeze(2), k_cache.transpose(-1, -2)) / math.sqrt(d)   # [B, H, 1, S]
        p = torch.softmax(scores, dim=-1)
        return torch.matmul(p, v_cache).squeeze(2)                                          # [B, H, D]


B = 1
H = 32
S = 2048
D = 128


def get_inputs():
    return [torch.randn(B, H, D), torch.randn(B, H, S, D), torch.randn(B, H, S, D)]


def get_init_inputs():
    return []
