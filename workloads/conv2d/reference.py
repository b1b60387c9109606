import torch
import torch.nn as nn


class Model(nn.Module):
    """A 3x3 convolution as in a ResNet basic block / UNet stage: nn.Conv2d(C, K, 3, stride=1,
    padding=1) with bias, NCHW fp32. Parameters (state_dict order): weight [K, C, 3, 3], bias [K]."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=True)
        with torch.no_grad():
            # nn.Conv2d's default init draws the bias from +-1/sqrt(C*9) (~0.04 at C = 64): widen it
            # so a kernel that drops or misplaces the bias is far outside the tolerance.
            self.conv.bias.uniform_(-0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


N = 8
C = 64
K = 64
H = 56
W = 56


def get_inputs():
    return [torch.randn(N, C, H, W)]


def get_init_inputs():
    return [C, K]
