import torch
import torch.nn as nn


class Model(nn.Module):
    """Weight-only int8 linear layer (W8A32, as in LLM.int8() / GPTQ-style inference):
    y = x @ (weight * scale[:, None]).T with an int8 weight [N, K] and one fp32 scale per output
    channel. Eager dequantizes the whole weight to fp32 before the GEMM."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        # Buffers, in state_dict order: weight (int8 [N, K]), then scale (fp32 [N]). Drawn from the
        # seeded global generator; the full int8 range but -128 (symmetric quantization).
        self.register_buffer("weight", torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8))
        # absmax / 127 of a ~N(0, 0.02) weight row is ~0.6e-3; the spread makes a kernel that
        # ignores or misplaces the per-channel scale fail.
        self.register_buffer("scale", (0.5 + torch.rand(out_features)) * 6e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # .to(x.dtype): exact for int8, and the harness's float64 reference stays float64.
        return x @ (self.weight.to(x.dtype) * self.scale[:, None]).T


M = 16
K = 4096
N = 4096


def get_inputs():
    return [torch.randn(M, K)]


def get_init_inputs():
    return [K, N]
