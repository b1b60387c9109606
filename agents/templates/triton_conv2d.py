"""conv2d for the triton backend: y = conv2d(x, weight, bias), NCHW fp32, stride 1, padding 1.

A Python module with @triton.jit kernels and `kscout_forward(x, weight, bias, out)` (the triton
ABI: harness/backends/triton.py; weight [K, C, KH, KW] and bias [K] are nn.Conv2d's state_dict).
Every kernel views the convolution as a GEMM: M = N*HO*WO output pixels (flattened n, ho, wo) x
K output channels, reduced over C*KH*KW taps, with the input gathered on the fly (no im2col
buffer): input row hi = ho*STRIDE - PAD + r*DIL, column wi = wo*STRIDE - PAD + s*DIL, zero padding
by load masks. STRIDE, PAD and DIL are the reference's (nn.Conv2d(C, K, 3, stride=1, padding=1),
dilation 1), constexprs of the kernels; KH, KW come from the weight and HO, WO from `out`. Each
program owns one BLOCK_M x BLOCK_N output tile (channel tiles fastest, so the tiles of one pixel
block run together and share its input in L2) and adds the bias in the epilogue.

The naive kernel is a direct convolution on CUDA cores: static loops over the taps (r, s), each
tap's input coordinates and padding mask computed once, then a scalar loop over the channels: one
masked load of BLOCK_M input pixels, one of BLOCK_N weights, a rank-1 FMA update of the tile. The
space:

- algo=igemm: implicit GEMM: the reduction in BLOCK_K slices, a [BLOCK_M, BLOCK_K] input tile and a
  [BLOCK_K, BLOCK_N] weight tile per step into tl.dot (tensor cores / mma), fp32 accumulator.
- reduction (igemm): flat slices the dense index c*KH*KW + r*KW + s (no padding of the reduction
  when C is small, as in an RGB stem, but c, r, s decoded with div/mod per element per step); taps
  is tap-major: static loops over (r, s) outside, BLOCK_K channels per slice inside, coordinates
  and padding masks once per tap (the loop order of PyTorch Inductor's conv template).
- weights=packed: a first launch repacks weight [K, C, KH, KW] so output channels are contiguous
  ([C*KH*KW, K], or [KH*KW, C, K] tap-major): every weight-tile row is one coalesced BLOCK_N load
  instead of a gather with stride C*KH*KW. Repacked per call (the weights may change between calls).
- precision=tf32x3 (igemm): tl.dot as three TF32 tensor-core products (hi*hi + hi*lo + lo*hi),
  ~fp32 accuracy at tensor-core rate; plain TF32 (10-bit mantissa) would be a precision downcast
  the harness rejects as precision_loss, so the default is input_precision="ieee".
- tunables: the tile (BLOCK_M pixels x BLOCK_N channels), BLOCK_K, warps, num_stages.

All math is fp32 right after the loads. Offsets into x and y are int64 per image.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

# The reference's nn.Conv2d(C, K, kernel_size=3, stride=1, padding=1, bias=True), dilation 1.
STRIDE, PAD, DIL = 1, 1, 1


@register
class TritonConv2dTemplates(TemplateFamily):
    family = "conv2d"
    backend = "triton"
    comment = "#"
    naive_description = "naive: direct convolution, one program per output tile, scalar loops over taps and channels"
    axes = [
        Axis(name="algo", values=["direct", "igemm"], default="direct",
             doc="direct: a rank-1 FMA update of the tile per (tap, channel) on CUDA cores; igemm: implicit "
                 "GEMM, BLOCK_K-deep gathered tiles into tl.dot"),
        Axis(name="reduction", values=["flat", "taps"], default="flat",
             doc="igemm: flat: BLOCK_K slices of the dense index c*KH*KW + r*KW + s, decoded with div/mod "
                 "per element per step; taps: static (r, s) loops outside, BLOCK_K channels per slice inside, "
                 "coordinates and masks once per tap (the direct kernel is always tap-major)"),
        Axis(name="weights", values=["as_is", "packed"], default="as_is",
             doc="read weight [K, C, KH, KW] in place (strided gather per tile row) or repack it first "
                 "with output channels contiguous (coalesced tile rows)"),
        Axis(name="precision", values=["ieee", "tf32x3"], default="ieee",
             doc="igemm: tl.dot input precision: ieee fp32, or 3xTF32 on tensor cores (~fp32 accuracy)"),
        # the largest tiles and stages need (128 + 64) * 64 * 4 B * 3 = 144 KiB of shared memory: under
        # the limit of an A100 (164 KiB) and of an H100/H200 (227 KiB)
        Axis(name="block_m", values=[32, 64, 128], default=128, kind="tunable",
             doc="output pixels per tile (flattened n, ho, wo)"),
        Axis(name="block_n", values=[16, 32, 64], default=64, kind="tunable", doc="output channels per tile"),
        Axis(name="block_k", values=[16, 32, 64], default=32, kind="tunable",
             doc="igemm: reduction slice per tl.dot (flat indices, or channels with reduction=taps)"),
        Axis(name="num_warps", values=[2, 4, 8], default=4, kind="tunable"),
        Axis(name="num_stages", values=[1, 2, 3], default=1, kind="tunable",
             doc="software pipelining of the reduction loop's loads"),
    ]
    moves = [
        Move(name="implicit-gemm", description="implicit GEMM: gathered [BLOCK_M, BLOCK_K] input and "
             "[BLOCK_K, BLOCK_N] weight tiles into tl.dot, fp32 accumulator", assigns={"algo": "igemm"},
             prior_gain=4.0),
        Move(name="tap-major", description="tap-major reduction: (r, s) static loops outside, channels inside; "
             "input coordinates and padding masks once per tap, no div/mod in the inner loop",
             assigns={"reduction": "taps"}, requires={"algo": "igemm"}, prior_gain=1.3),
        Move(name="pack-weights", description="repack the weights with output channels contiguous: every "
             "weight-tile row is one coalesced load", assigns={"weights": "packed"}, prior_gain=1.1),
        Move(name="tf32x3", description="3xTF32 tl.dot: tensor-core rate at ~fp32 accuracy",
             assigns={"precision": "tf32x3"}, requires={"algo": "igemm"}, prior_gain=1.8),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        igemm = p["algo"] == "igemm"
        parts = [f"implicit GEMM with tl.dot ({p['precision']}), BLOCK_K {p['block_k']}" if igemm
                 else "direct convolution, rank-1 FMA per (tap, channel)",
                 "tap-major reduction" if p["reduction"] == "taps" or not igemm else "flat (c, r, s) reduction",
                 "packed weights" if p["weights"] == "packed" else "weights read in place",
                 f"{p['block_m']}x{p['block_n']} tiles, {p['num_warps']} warps, {p['num_stages']} stage(s)"]
        return "; ".join(parts)

    # --- pieces ---------------------------------------------------------------------------------

    @staticmethod
    def _pack_kernel(taps: bool) -> str:
        # destination row-major with K fastest; the source element of (row, k) is w[k, c, r, s]
        src = ("    t = row // C                                   # tap-major rows: (r*KW + s)*C + c\n"
               "    c = row % C\n"
               "    src = k * CRS + c * RS + t\n") if taps else (
               "    src = k * CRS + row                             # rows: c*KH*KW + r*KW + s\n")
        layout = "[KH*KW, C, K]" if taps else "[C*KH*KW, K]"
        return f'''\
@triton.jit
def _pack_weights(w_ptr, wp_ptr, K, C, RS, TOTAL, BLOCK: tl.constexpr):
    # weight [K, C, KH, KW] -> {layout}: output channels contiguous
    CRS = C * RS
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < TOTAL
    row = i // K
    k = i % K
{src}    tl.store(wp_ptr + i, tl.load(w_ptr + src, mask=ok, other=0.0), mask=ok)
'''

    @staticmethod
    def _w_tile(p: dict[str, Any]) -> str:
        """Addresses of the igemm [BLOCK_K, BLOCK_N] weight tile: rows kk (flat) or channels cc of tap t."""
        packed = p["weights"] == "packed"
        if p["reduction"] == "taps":
            if packed:
                return "w_ptr + (t * C + cc)[:, None] * K + rn[None, :]"                  # [KH*KW, C, K]
            return "w_ptr + rn[None, :] * (C * KH * KW) + cc[:, None] * (KH * KW) + t"   # [K, C, KH, KW]
        if packed:
            return "w_ptr + kk[:, None] * K + rn[None, :]"                                # [C*KH*KW, K]
        return "w_ptr + rn[None, :] * (C * KH * KW) + kk[:, None]"                       # [K, C*KH*KW]

    def _body(self, p: dict[str, Any]) -> str:
        taps = p["reduction"] == "taps"
        if p["algo"] == "direct":
            # tap-major always: the naive kernel computes each tap's coordinates and padding mask once
            # and walks the channels with pointer increments (a rank-1 update per channel)
            if p["weights"] == "packed":
                w_tap, w_step = "w_ptr + (r * KW + s) * (C * K) + rn", "K"            # [KH*KW, C, K]
            else:
                w_tap, w_step = "w_ptr + rn * (C * KH * KW) + (r * KW + s)", "KH * KW"  # [K, C, KH, KW]
            return f'''\
    HW = H * W
    for r in tl.static_range(KH):
        for s in tl.static_range(KW):
            hi = ho * STRIDE - PAD + r * DIL
            wi = wo * STRIDE - PAD + s * DIL
            ok = m_ok & (hi >= 0) & (hi < H) & (wi >= 0) & (wi < W)      # zero padding
            x_ptrs = x_img + hi * W + wi                                 # channel 0 at tap (r, s)
            w_ptrs = {w_tap}
            for c in range(0, C):
                xv = tl.load(x_ptrs, mask=ok, other=0.0).to(tl.float32)
                wv = tl.load(w_ptrs, mask=n_ok, other=0.0).to(tl.float32)
                acc += xv[:, None] * wv[None, :]
                x_ptrs += HW
                w_ptrs += {w_step}
'''
        if taps:
            return f'''\
    rc = tl.arange(0, BLOCK_K)
    for r in tl.static_range(KH):
        for s in tl.static_range(KW):
            hi = ho * STRIDE - PAD + r * DIL                 # once per tap, for every channel slice
            wi = wo * STRIDE - PAD + s * DIL
            ok = m_ok & (hi >= 0) & (hi < H) & (wi >= 0) & (wi < W)
            x_tap = x_img + hi * W + wi
            t = r * KW + s
            for c0 in range(0, C, BLOCK_K):
                cc = c0 + rc
                c_ok = cc < C
                a = tl.load(x_tap[:, None] + cc[None, :] * (H * W), mask=ok[:, None] & c_ok[None, :],
                            other=0.0).to(tl.float32)
                b = tl.load({self._w_tile(p)},
                            mask=c_ok[:, None] & n_ok[None, :], other=0.0).to(tl.float32)
                acc += tl.dot(a, b, input_precision="{p['precision']}")
'''
        return f'''\
    rk = tl.arange(0, BLOCK_K)
    CRS = C * (KH * KW)
    for k0 in range(0, CRS, BLOCK_K):
        kk = k0 + rk                                         # reduction index c*KH*KW + r*KW + s
        k_ok = kk < CRS
        c = kk // (KH * KW)
        t = kk % (KH * KW)
        hi = ho[:, None] * STRIDE - PAD + (t // KW)[None, :] * DIL
        wi = wo[:, None] * STRIDE - PAD + (t % KW)[None, :] * DIL
        ok = m_ok[:, None] & k_ok[None, :] & (hi >= 0) & (hi < H) & (wi >= 0) & (wi < W)
        a = tl.load(x_img[:, None] + c[None, :] * (H * W) + hi * W + wi, mask=ok, other=0.0).to(tl.float32)
        b = tl.load({self._w_tile(p)}, mask=k_ok[:, None] & n_ok[None, :],
                    other=0.0).to(tl.float32)
        acc += tl.dot(a, b, input_precision="{p['precision']}")
'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        igemm = p["algo"] == "igemm"
        packed = p["weights"] == "packed"
        name = "_conv2d_igemm" if igemm else "_conv2d_direct"
        bk_param = ", BLOCK_K: tl.constexpr" if igemm else ""
        bk_arg = ", BLOCK_K=BLOCK_K" if igemm else ""
        consts = f"BLOCK_M, BLOCK_N = {p['block_m']}, {p['block_n']}\n"
        if igemm:
            consts += f'BLOCK_K = {p["block_k"]}\n'
        consts += f"WARPS, STAGES = {p['num_warps']}, {p['num_stages']}\n"
        kernels = []
        if packed:
            kernels.append(self._pack_kernel(p["reduction"] == "taps" or not igemm))
        kernels.append(f'''\
@triton.jit
def {name}(x_ptr, w_ptr, b_ptr, y_ptr, NB, C, H, W, K, HO, WO,
           KH: tl.constexpr, KW: tl.constexpr, STRIDE: tl.constexpr, PAD: tl.constexpr, DIL: tl.constexpr,
           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr{bk_param}):
    pid = tl.program_id(0)
    num_n = tl.cdiv(K, BLOCK_N)
    pid_m = pid // num_n                                     # channel tiles fastest: one pixel block's
    pid_n = pid % num_n                                      # tiles run together, its input stays in L2
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)             # output pixels, flattened (n, ho, wo)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)             # output channels
    m_ok = rm < NB * HO * WO
    n_ok = rn < K
    img = rm // (HO * WO)
    pix = rm % (HO * WO)
    ho = pix // WO
    wo = pix % WO
    x_img = x_ptr + img.to(tl.int64) * C * H * W             # int64 per image: N*C*H*W may pass 2^31
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
{self._body(p)}    acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    y_off = (img.to(tl.int64) * K * (HO * WO) + pix)[:, None] + rn[None, :].to(tl.int64) * (HO * WO)
    tl.store(y_ptr + y_off, acc, mask=m_ok[:, None] & n_ok[None, :])
''')
        pack = ('''\
    wp = torch.empty(weight.numel(), dtype=weight.dtype, device=weight.device)   # scratch: repacked weights
    if weight.numel() > 0:
        _pack_weights[(triton.cdiv(weight.numel(), 1024),)](weight, wp, K, C, KH * KW, weight.numel(), BLOCK=1024)
''' if packed else "    wp = weight\n")
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

# the reference's nn.Conv2d: stride {STRIDE}, padding {PAD}, dilation {DIL}; KH, KW from the weight
STRIDE, PAD, DIL = {STRIDE}, {PAD}, {DIL}
{consts}

{(chr(10) * 2).join(kernels)}

def kscout_forward(x, weight, bias, out):
    NB, C, H, W = x.shape
    K, _, KH, KW = weight.shape
    HO, WO = out.shape[2], out.shape[3]
    M = NB * HO * WO
    if M == 0 or K == 0:
        return None
{pack}    grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(K, BLOCK_N),)
    {name}[grid](x, wp, bias, out, NB, C, H, W, K, HO, WO, KH=KH, KW=KW, STRIDE=STRIDE, PAD=PAD, DIL=DIL,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N{bk_arg}, num_warps=WARPS, num_stages=STAGES)
    return None
'''
