import torch
import torch.nn as nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """HF transformers' rotate_half: [x1, x2] -> [-x2, x1] over the last dim (halves, not pairs)."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Model(nn.Module):
    """Rotary position embedding (RoPE) as LLaMA applies it in HF transformers
    (apply_rotary_pos_emb): y = x * cos + rotate_half(x) * sin.

    x is one projection (q or k) in [batch, seq, heads, head_dim] layout (what the q/k linear
    produces before the transpose to [batch, heads, seq, head_dim]); cos and sin are the
    per-position tables [seq, head_dim], broadcast over batch and heads. The harness refills every
    floating input from the workload's distributions, so cos and sin are arbitrary here: a kernel
    must not assume cos^2 + sin^2 = 1 nor that a table's two halves are equal (HF's
    cat(freqs, freqs) layout); it reads both tables in full.
    """

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        c = cos[None, :, None, :]   # [1, S, 1, D]
        s = sin[None, :, None, :]
        return x * c + rotate_half(x) * s


B = 2
S = 1024
H = 32
D = 128


def get_inputs():
    # Real RoPE tables (theta = 10000) for the record; the harness overwrites them (and x) with
    # values from the declared distribution before every case.
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float32)[: D // 2] / D))
    freqs = torch.outer(torch.arange(S, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return [torch.randn(B, S, H, D), emb.cos(), emb.sin()]


def get_init_inputs():
    return []
