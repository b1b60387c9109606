"""conv2d: y = conv2d(x, weight, bias), 3x3, stride 1, padding 1, NCHW fp32.

Inputs: x [N, C, H, W], weight [K, C, 3, 3], bias [K] (nn.Conv2d's parameters, state_dict
order). Output y [N, K, H, W]. Compute-bound: 2*C*9 FLOPs per output on ~8 bytes of traffic.

The naive kernel is the textbook seven-deep loop: one dot product of C*9 terms per output, with
a bounds check per tap for the zero padding. The space:

- pad=copy: copy x once into a zero-padded buffer [N, C, H+2, W+2] (plus slack), so no tap needs
  a bounds check (the copy is ~1/20 of the FLOP time at ResNet shapes).
- algo=rows: per output row, for each (c, r, s) an axpy over the row, `y[w] += wt * x[w + s - 1]`:
  unit-stride and vectorizable (`omp simd`), but every FMA loads and stores y (L1-bound).
- algo=tile: a register-blocked SIMD micro-kernel: KB output channels x WB vectors of L output
  columns of one output row in KB*WB vector accumulators; per (c, r, s) tap WB unaligned loads of
  the padded input row and KB broadcasts of packed weights ([K/KB][C][9][KB], contiguous), KB*WB
  FMAs. L = 8 (AVX2, 16 ymm) or, with simd_width = 16, 16 (AVX-512F, 32 zmm, the row's last
  vector under a mask register). Edge tiles (K % KB channels, W % (L*WB) columns) get their own
  unrolled instance; the last vector of a row is stored with a lane mask. Always reads the padded
  copy. Tunables: the tile shape, input-channel blocking (tile_c: partial sums through y, so a
  block's C_b x 3 input rows stay in L1 while every output-channel block reads them) and the loop
  order per image (rows outside output-channel blocks, or the reverse).
- algo=kvec: the other way round, output channels in the vector lanes (as oneDNN's blocked
  layouts do, but on plain NCHW): KV vectors of L output channels x WC output columns of one row
  in registers; per filter row, the three taps' weight vectors are held and each input value is
  broadcast once and feeds up to three output columns. No lanes are wasted on a row's tail (W = 56
  is 3.5 zmm vectors of columns, but 64 channels are 4 of channels); the price is a small
  transpose per tile on the way out (channel-major y), ~1/36 of the tile's FMAs at C = 64.
- threads: OpenMP over images, or over (image, row) / (image, channel block) pairs.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import SIMD_WIDTH, Axis, Move, TemplateFamily
from agents.templates.snippets import AVX512_GUARD, INCLUDES, check_f32, indent, lanes, zmm

# KB output channels x WB vectors of L columns. Tuning steps to a neighbour in this list: the
# default 6x2 sits between 2x6 and 6x4, the first of the tiles that fill AVX-512's 32 registers
TILES = ["2x4", "4x2", "3x3", "4x3", "3x4", "2x6", "6x2", "6x4", "8x3", "8x2", "4x4"]
# kvec: KV vectors of L output channels x WC output columns, KV*WC + 3*KV + 1 registers (the first
# two fit AVX2's 16, the rest AVX-512's 32)
KVEC_TILES = ["1x8", "2x4", "2x8", "2x10", "2x12", "4x4"]

# The row's last vector holds `tail` valid lanes: a lane mask for its loads and stores (AVX2: a
# vector of all-ones lanes; AVX-512: a mask register, the only spelling zmm() cannot derive).
TAIL_MASK_AVX2 = """\
typedef __m256i ks_mask;
static inline ks_mask ks_tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256 ks_maskload(const float* p, ks_mask m) { return _mm256_maskload_ps(p, m); }
static inline void ks_maskstore(float* p, ks_mask m, __m256 v) { _mm256_maskstore_ps(p, m, v); }

"""
TAIL_MASK_AVX512 = """\
typedef __mmask16 ks_mask;
static inline ks_mask ks_tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
static inline __m512 ks_maskload(const float* p, ks_mask m) { return _mm512_maskz_loadu_ps(m, p); }
static inline void ks_maskstore(float* p, ks_mask m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }

"""


def _tile(t: str) -> tuple[int, int]:
    kb, wb = t.split("x")
    return int(kb), int(wb)


@register
class Conv2dTemplates(TemplateFamily):
    family = "conv2d"
    axes = [
        Axis(name="algo", values=["direct", "rows", "tile", "kvec"], default="direct",
             doc="direct: a C*9 dot product per output; rows: per-tap axpy over output rows (vectorizable); "
                 "tile: SIMD register tile of output channels x vectors of output columns; kvec: output "
                 "channels in the vector lanes (weight vectors x broadcast inputs), no column tail"),
        Axis(name="pad", values=["bounds", "copy"], default="bounds",
             doc="bounds checks per tap, or a zero-padded copy of x (tile and kvec always use the copy)"),
        Axis(name="vector", values=["scalar", "omp_simd"], default="scalar",
             doc="rows algo: plain inner loop or `#pragma omp simd` over the output row"),
        Axis(name="threads", values=["none", "images", "planes"], default="none",
             doc="OpenMP over images, or over (image, output channel) planes (tile algo: (image, row) "
                 "or (image, output-channel block) pairs, the outer loop of `order`)"),
        Axis(name="tile", values=TILES, default="6x2", kind="tunable",
             doc="tile algo: KB output channels x WB vectors (of simd_width columns) of one output row (KB*WB accumulators)"),
        Axis(name="tile_c", values=[0, 8, 16, 32], default=32, kind="tunable",
             doc="tile algo: input channels per block (0 = all C); partial sums go through y, so the "
                 "block's padded input rows stay in L1 (with order h_kb: across every channel block)"),
        Axis(name="order", values=["h_kb", "kb_h"], default="h_kb", kind="tunable",
             doc="tile algo, per image: output rows outside output-channel blocks (h_kb: the input rows "
                 "are reused by every channel block) or channel blocks outside rows (kb_h: the block's "
                 "weights stay in L1); threads=planes splits (image, outer loop) pairs"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
        Axis(name="kvec_tile", values=KVEC_TILES, default="2x8", kind="tunable",
             doc="kvec algo: KV vectors of output channels x WC output columns of one output row"),
        SIMD_WIDTH,
    ]
    moves = [
        Move(name="pad-copy", description="copy x into a zero-padded buffer: no bounds checks in the taps",
             assigns={"pad": "copy"}, prior_gain=1.5, requires={"algo": "direct"}),
        Move(name="pad-copy-rows", description="zero-padded copy of x: full-length row axpys, no clipped ranges",
             assigns={"pad": "copy"}, prior_gain=1.1, requires={"algo": "rows"}),
        Move(name="row-axpy", description="per output row, one axpy over the row per (c, r, s) tap: "
             "unit-stride inner loop", assigns={"algo": "rows"}, prior_gain=2.0),
        Move(name="vec-omp-simd", description="#pragma omp simd on the row axpy",
             assigns={"vector": "omp_simd"}, prior_gain=1.8, requires={"algo": "rows"}),
        Move(name="reg-tile-avx2", description="AVX2 register tile: output channels x 8-wide output columns "
             "in ymm accumulators, packed weights broadcast, padded input rows loaded once per tap",
             assigns={"algo": "tile"}, prior_gain=8.0),
        Move(name="kvec-tile", description="output channels in the vector lanes: KV vectors of output "
             "channels x WC output columns in registers; each input value, broadcast once per filter row, "
             "feeds its three taps; no partial vector at the end of a row",
             assigns={"algo": "kvec"}, prior_gain=8.5),
        Move(name="kvec-avx512", description="the channels-in-lanes tile in AVX-512: 16 output channels per "
             "zmm, 32 registers for the tile", assigns={"simd_width": 16}, requires={"algo": "kvec"},
             isa=["avx512f"], prior_gain=1.6),
        Move(name="reg-tile-avx512", description="AVX-512 register tile: 16-wide output columns in zmm "
             "accumulators, 32 registers for the tile, mask registers for the row's last vector",
             assigns={"simd_width": 16}, requires={"algo": "tile"}, isa=["avx512f"], prior_gain=1.4),
        Move(name="omp-images", description="OpenMP over images", assigns={"threads": "images"}, prior_gain=1.8),
        Move(name="omp-planes", description="OpenMP over (image, output channel block) planes",
             assigns={"threads": "planes"}, prior_gain=1.8),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        thr = {"none": "single thread", "images": "OpenMP over images",
               "planes": "OpenMP over (image, channel block or row) pairs"}[p["threads"]]
        isa = "AVX2" if lanes(p) == 8 else "AVX-512"
        if p["algo"] == "kvec":
            kv, wc = _tile(p["kvec_tile"])
            return (f"{isa} channels-in-lanes tile: {kv} vector(s) of {lanes(p)} output channels x {wc} output "
                    f"columns, padded copy; {thr}")
        if p["algo"] == "tile":
            cb = f", input channels in blocks of {p['tile_c']}" if p["tile_c"] else ""
            return (f"{isa} {p['tile']} register tile (channels x vectors of columns), padded copy{cb}, "
                    f"{'channel blocks outside rows' if p['order'] == 'kb_h' else 'rows outside channel blocks'}; {thr}")
        pad = "padded copy" if p["pad"] == "copy" else "bounds checks"
        if p["algo"] == "rows":
            return f"row axpy per tap ({p['vector']}), {pad}; {thr}"
        return f"direct dot product per output, {pad}; {thr}"

    # --- padded copy --------------------------------------------------------------------------

    @staticmethod
    def _pad(threaded: bool) -> str:
        par = "#pragma omp parallel for schedule(static)\n" if threaded else ""
        return f"""\
// zero-padded copy: plane (n, c) is (H + 2) rows of Wp = W + 2, x at row 1 + h, column 1 + w;
// SLACK floats after the last plane let the last vector of a row read past it (lanes discarded)
const int64_t Hp = H + 2, Wp = W + 2, plane = Hp * Wp, SLACK = 64;
float* xp = static_cast<float*>(std::aligned_alloc(64, ((N * C * plane + SLACK) * sizeof(float) + 63) / 64 * 64));
if (!xp) return 2;
std::memset(xp + N * C * plane, 0, SLACK * sizeof(float));
{par}for (int64_t nc = 0; nc < N * C; ++nc) {{
    float* dst = xp + nc * plane;
    const float* src = x + nc * H * W;
    std::memset(dst, 0, Wp * sizeof(float));                      // top padding row
    for (int64_t h = 0; h < H; ++h) {{
        float* d = dst + (h + 1) * Wp;
        d[0] = 0.0f;
        std::memcpy(d + 1, src + h * W, W * sizeof(float));
        d[W + 1] = 0.0f;
    }}
    std::memset(dst + (H + 1) * Wp, 0, Wp * sizeof(float));       // bottom padding row
}}"""

    # --- direct and rows ----------------------------------------------------------------------

    def _direct(self, p: dict[str, Any]) -> str:
        if p["pad"] == "copy":
            inner = """\
const float* xc = xp + (n * C + c) * plane + h * Wp + w;   // padded: tap (r, s) is at r * Wp + s
const float* wc = wt + (k * C + c) * 9;
for (int r = 0; r < 3; ++r)
    for (int s = 0; s < 3; ++s)
        acc += xc[r * Wp + s] * wc[r * 3 + s];"""
        else:
            inner = """\
const float* xc = x + (n * C + c) * H * W;
const float* wc = wt + (k * C + c) * 9;
for (int r = 0; r < 3; ++r) {
    const int64_t hi = h + r - 1;
    if (hi < 0 || hi >= H) continue;                         // zero padding above / below
    for (int s = 0; s < 3; ++s) {
        const int64_t wi = w + s - 1;
        if (wi < 0 || wi >= W) continue;                     // zero padding left / right
        acc += xc[hi * W + wi] * wc[r * 3 + s];
    }
}"""
        return f"""\
float acc = 0.0f;
for (int64_t c = 0; c < C; ++c) {{
{indent(inner, 4)}
}}
y[((n * K + k) * H + h) * W + w] = acc + bias[k];"""

    def _direct_loops(self, p: dict[str, Any]) -> str:
        body = self._direct(p)
        hw = f"for (int64_t h = 0; h < H; ++h)\n    for (int64_t w = 0; w < W; ++w) {{\n{indent(body, 8)}\n    }}"
        return self._nk_loops(p, hw)

    @staticmethod
    def _outer_omp(p: dict[str, Any]) -> str:
        """The pragma over the image loop (images) or the image loop and the one inside it (planes)."""
        sched = f"schedule({p['schedule']})"
        return {"none": "", "images": f"#pragma omp parallel for {sched}\n",
                "planes": f"#pragma omp parallel for collapse(2) {sched}\n"}[p["threads"]]

    @staticmethod
    def _pack_weights(p: dict[str, Any], block: str) -> str:
        """wp[kb][c][r * 3 + s][block]: the weights of each `block` output channels side by side,
        zero past K (wp and nkb declared by the caller)."""
        par = "#pragma omp parallel for schedule(static)\n" if p["threads"] != "none" else ""
        return f"""\
{par}for (int64_t kb = 0; kb < nkb; ++kb)
    for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < 9; ++t)
            for (int64_t i = 0; i < {block}; ++i)
                wp[((kb * C + c) * 9 + t) * {block} + i] = kb * {block} + i < K ? wt[((kb * {block} + i) * C + c) * 9 + t] : 0.0f;"""

    def _nk_loops(self, p: dict[str, Any], plane_body: str) -> str:
        """for n, for k: plane_body (one output plane), with the selected OpenMP split."""
        return (f"{self._outer_omp(p)}for (int64_t n = 0; n < N; ++n)\n    for (int64_t k = 0; k < K; ++k) {{\n"
                f"{indent(plane_body, 8)}\n    }}")

    def _rows_loops(self, p: dict[str, Any]) -> str:
        simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
        if p["pad"] == "copy":
            tap = f"""\
const float* xr = xp + (n * C + c) * plane + (h + r) * Wp + s;   // padded row h + r - 1, shifted by s - 1
{simd}for (int64_t w = 0; w < W; ++w)
    yr[w] += wv * xr[w];"""
            rows = "for (int r = 0; r < 3; ++r)"
        else:
            tap = f"""\
const float* xr = x + (n * C + c) * H * W + (h + r - 1) * W + s - 1;
const int64_t w0 = s == 0 ? 1 : 0, w1 = s == 2 ? W - 1 : W;   // taps that fall in the padding are skipped
{simd}for (int64_t w = w0; w < w1; ++w)
    yr[w] += wv * xr[w];"""
            rows = "for (int r = 0; r < 3; ++r) {\n    if (h + r - 1 < 0 || h + r - 1 >= H) continue;"
        close = "" if p["pad"] == "copy" else "\n}"
        body = f"""\
float* yr = y + ((n * K + k) * H + h) * W;   // output row: stays in L1 across the C*9 axpys
for (int64_t w = 0; w < W; ++w)
    yr[w] = bias[k];
for (int64_t c = 0; c < C; ++c)
{rows}
    for (int s = 0; s < 3; ++s) {{
        const float wv = wt[((k * C + c) * 3 + r) * 3 + s];
{indent(tap, 8)}
    }}{close}"""
        return self._nk_loops(p, f"for (int64_t h = 0; h < H; ++h) {{\n{indent(body, 4)}\n}}")

    # --- SIMD register tile (columns in the lanes) ---------------------------------------------

    def _tile_kernel(self, KBS: int, L: int) -> str:
        """The tile for L = 8 (AVX2 ymm) or 16 lanes (AVX-512 zmm: the same code widened by
        `zmm`, with mask registers for the row's last vector, and 32 registers to fill)."""
        regs = 16 if L == 8 else 32
        code = f"""\
// One tap (r, s) of a KBN x WBN tile: WBN input vectors at xt, KBN weights at wt. Hold the
// smaller side in registers (KBN*WBN + min + 1 of the {regs} vector registers) and stream the other;
// the empty asm keeps a held load in its register (GCC would otherwise fold it into every FMA
// that uses it, and the tile would be bound by L1 loads instead of FMAs).
template <int KBN, int WBN>
static inline __attribute__((always_inline)) void conv_tap(__m256 (&acc)[KBN][WBN], const float* xt,
                                                            const float* wt) {{
    if constexpr (WBN <= KBN) {{
        __m256 xv[WBN];
#pragma GCC unroll 8
        for (int v = 0; v < WBN; ++v) {{
            xv[v] = _mm256_loadu_ps(xt + {L} * v);
            __asm__("" : "+v"(xv[v]));
        }}
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {{
            const __m256 wv = _mm256_set1_ps(wt[i]);
#pragma GCC unroll 8
            for (int v = 0; v < WBN; ++v)
                acc[i][v] = _mm256_fmadd_ps(wv, xv[v], acc[i][v]);
        }}
    }} else {{
        __m256 wv[KBN];
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {{
            wv[i] = _mm256_set1_ps(wt[i]);
            __asm__("" : "+v"(wv[i]));
        }}
#pragma GCC unroll 8
        for (int v = 0; v < WBN; ++v) {{
            const __m256 xv = _mm256_loadu_ps(xt + {L} * v);
#pragma GCC unroll 8
            for (int i = 0; i < KBN; ++i)
                acc[i][v] = _mm256_fmadd_ps(wv[i], xv, acc[i][v]);
        }}
    }}
}}

// One output row segment: KBN (<= KBS = {KBS}) output channels x WBN vectors of {L} columns, over
// the input channels [c0, c0 + C): xr points at channel c0 of the padded input, padded row h (the
// r = 0 tap), column w0 (the s = 0 tap); wp at channel c0 of this channel block's packed weights
// [C][9][KBS]; y at output (k0, h, w0), plane stride HW. first: start from the bias, else from the
// partial sums already in y (channel blocking). The last vector holds only `tail` lanes (1..{L}).
template <int KBN, int WBN>
static inline void conv_tile(const float* xr, const float* wp, const float* bias, float* y,
                             int64_t C, int64_t plane, int64_t Wp, int64_t HW, int tail, bool first) {{
    const ks_mask mask = ks_tail_mask(tail);
    __m256 acc[KBN][WBN];
    if (first) {{
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {{
            const __m256 b = _mm256_set1_ps(bias[i]);
#pragma GCC unroll 8
            for (int v = 0; v < WBN; ++v)
                acc[i][v] = b;
        }}
    }} else {{
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {{
#pragma GCC unroll 8
            for (int v = 0; v < WBN - 1; ++v)
                acc[i][v] = _mm256_loadu_ps(y + i * HW + {L} * v);
            acc[i][WBN - 1] = ks_maskload(y + i * HW + {L} * (WBN - 1), mask);
        }}
    }}
    // With a register to spare, the 9 taps unroll (constant offsets, fewer instructions per FMA);
    // a tile that needs every register keeps the tap loop rolled over an offset table, else GCC's
    // schedule of the unrolled body spills accumulators.
    constexpr bool unrolled = KBN * WBN + (KBN < WBN ? KBN : WBN) + 1 <= {regs - 1};
    const int64_t off[9] = {{0, 1, 2, Wp, Wp + 1, Wp + 2, 2 * Wp, 2 * Wp + 1, 2 * Wp + 2}};
    for (int64_t c = 0; c < C; ++c) {{
        const float* xc = xr + c * plane;
        const float* wc = wp + c * 9 * {KBS};
        if constexpr (unrolled) {{
#pragma GCC unroll 3
            for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
                for (int s = 0; s < 3; ++s)
                    conv_tap<KBN, WBN>(acc, xc + r * Wp + s, wc + (r * 3 + s) * {KBS});
        }} else {{
#pragma GCC unroll 1
            for (int t = 0; t < 9; ++t)
                conv_tap<KBN, WBN>(acc, xc + off[t], wc + t * {KBS});
        }}
    }}
#pragma GCC unroll 8
    for (int i = 0; i < KBN; ++i) {{
#pragma GCC unroll 8
        for (int v = 0; v < WBN - 1; ++v)
            _mm256_storeu_ps(y + i * HW + {L} * v, acc[i][v]);
        if (tail == {L})
            _mm256_storeu_ps(y + i * HW + {L} * (WBN - 1), acc[i][WBN - 1]);
        else
            ks_maskstore(y + i * HW + {L} * (WBN - 1), mask, acc[i][WBN - 1]);
    }}
}}
"""
        return TAIL_MASK_AVX2 + code if L == 8 else AVX512_GUARD + TAIL_MASK_AVX512 + zmm(code)

    # --- channels in the vector lanes ---------------------------------------------------------

    @staticmethod
    def _kvec_kernel(L: int) -> str:
        code = f"""\
// KV vectors of {L} output channels x WC output columns of one output row, over every input
// channel. xr: the padded input at (n, c = 0, padded row h, column w0); wp: this channel block's
// packed weights [C][9][{L} * KV] (zero past K); bias: the block's bias (zero past K); y: output
// (k0, h, w0), plane stride HW; kn of the block's channels are real. Per filter row r the three
// taps' weights sit in 3*KV registers and each of the WC + 2 input values of padded row h + r is
// broadcast once, feeding output column jj - s of tap s: 3*KV*WC FMAs per 3*KV + WC + 2 loads.
template <int KV, int WC>
static inline void kvec_tile(const float* xr, const float* wp, const float* bias, float* y, int64_t C,
                             int64_t plane, int64_t Wp, int64_t HW, int kn) {{
    __m256 acc[KV][WC];
#pragma GCC unroll 8
    for (int v = 0; v < KV; ++v) {{
        const __m256 b = _mm256_loadu_ps(bias + {L} * v);
#pragma GCC unroll 16
        for (int j = 0; j < WC; ++j)
            acc[v][j] = b;
    }}
    for (int64_t c = 0; c < C; ++c) {{
        const float* xc = xr + c * plane;
        const float* wc = wp + c * 9 * ({L} * KV);
#pragma GCC unroll 1
        for (int r = 0; r < 3; ++r) {{
            __m256 wv[3][KV];
#pragma GCC unroll 3
            for (int s = 0; s < 3; ++s)
#pragma GCC unroll 8
                for (int v = 0; v < KV; ++v) {{
                    wv[s][v] = _mm256_loadu_ps(wc + (r * 3 + s) * ({L} * KV) + {L} * v);
                    __asm__("" : "+v"(wv[s][v]));   // held: not re-loaded by every FMA that uses it
                }}
            const float* xt = xc + r * Wp;
#pragma GCC unroll 32
            for (int jj = 0; jj < WC + 2; ++jj) {{
                const __m256 xb = _mm256_set1_ps(xt[jj]);
#pragma GCC unroll 3
                for (int s = 0; s < 3; ++s) {{
                    const int j = jj - s;   // a compile-time constant once unrolled
                    if (j < 0 || j >= WC)
                        continue;
#pragma GCC unroll 8
                    for (int v = 0; v < KV; ++v)
                        acc[v][j] = _mm256_fmadd_ps(wv[s][v], xb, acc[v][j]);
                }}
            }}
        }}
    }}
    // channels are lanes, y is channel-major: out through a small transpose
    alignas(64) float t[WC][{L} * KV];
#pragma GCC unroll 16
    for (int j = 0; j < WC; ++j)
#pragma GCC unroll 8
        for (int v = 0; v < KV; ++v)
            _mm256_store_ps(&t[j][{L} * v], acc[v][j]);
    for (int k = 0; k < kn; ++k)
#pragma GCC unroll 16
        for (int j = 0; j < WC; ++j)
            y[k * HW + j] = t[j][k];
}}

// the row's last, narrower tile: the instance for its width
template <int KV, int WC>
static inline void kvec_tile_any(int wc, const float* xr, const float* wp, const float* bias, float* y, int64_t C,
                                 int64_t plane, int64_t Wp, int64_t HW, int kn) {{
    if constexpr (WC > 0) {{
        if (wc == WC)
            return kvec_tile<KV, WC>(xr, wp, bias, y, C, plane, Wp, HW, kn);
        return kvec_tile_any<KV, WC - 1>(wc, xr, wp, bias, y, C, plane, Wp, HW, kn);
    }}
}}
"""
        return code if L == 8 else AVX512_GUARD + zmm(code)

    def _kvec_loops(self, p: dict[str, Any]) -> str:
        KV, WC = _tile(p["kvec_tile"])
        L = lanes(p)
        return f"""\
// weights packed per block of KS = {L * KV} output channels: wp[kb][c][r * 3 + s][KS], bias bp[kb][KS] (zero past K)
const int64_t KS = {L * KV}, nkb = (K + KS - 1) / KS;
float* wp = static_cast<float*>(std::aligned_alloc(64, (nkb * C * 9 * KS * sizeof(float) + 63) / 64 * 64));
float* bp = static_cast<float*>(std::aligned_alloc(64, (nkb * KS * sizeof(float) + 63) / 64 * 64));
if (!wp || !bp) {{ std::free(wp); std::free(bp); std::free(xp); return 2; }}
{self._pack_weights(p, "KS")}
for (int64_t i = 0; i < nkb * KS; ++i)
    bp[i] = i < K ? bias[i] : 0.0f;
{self._outer_omp(p)}for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
        for (int64_t kb = 0; kb < nkb; ++kb) {{
            const int kn = static_cast<int>(std::min<int64_t>(KS, K - kb * KS));
            for (int64_t w0 = 0; w0 < W; w0 += {WC}) {{
                const int wc = static_cast<int>(std::min<int64_t>({WC}, W - w0));
                kvec_tile_any<{KV}, {WC}>(wc, xp + n * C * plane + h * Wp + w0, wp + kb * C * 9 * KS, bp + kb * KS,
                                          y + ((n * K + kb * KS) * H + h) * W + w0, C, plane, Wp, H * W, kn);
            }}
        }}
std::free(wp);
std::free(bp);"""

    @staticmethod
    def _tile_dispatch(KB: int, WB: int) -> str:
        cases = "\n".join(f"    case {kb * 16 + wb}: conv_tile<{kb}, {wb}>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;"
                          for kb in range(1, KB + 1) for wb in range(1, WB + 1))
        return f"""\
static inline void conv_tile_any(int kbn, int wbn, const float* xr, const float* wp, const float* bias, float* y,
                                 int64_t C, int64_t plane, int64_t Wp, int64_t HW, int tail, bool first) {{
    switch (kbn * 16 + wbn) {{
{cases}
    default: break;
    }}
}}
"""

    def _tile_loops(self, p: dict[str, Any]) -> str:
        KB, WB = _tile(p["tile"])
        # order kb_h: a channel block's weights (C*9*KB floats) stay in L1 while its rows run;
        # order h_kb: an output row's input rows (C x 3 padded rows) stay in L1/L2 while every
        # channel block runs over them. threads=planes splits (image, outer loop) pairs.
        outer, inner = ("kb", "h") if p["order"] == "kb_h" else ("h", "kb")
        lim = {"kb": "nkb", "h": "H"}
        head = (f"{self._outer_omp(p)}for (int64_t n = 0; n < N; ++n)\n"
                f"    for (int64_t {outer} = 0; {outer} < {lim[outer]}; ++{outer}) {{\n"
                f"        for (int64_t {inner} = 0; {inner} < {lim[inner]}; ++{inner}) {{")
        call = ("conv_tile_any(kbn, wbn, xr + c0 * plane + L * v0, wb + c0 * 9 * KB, bias + k0, yr + L * v0, "
                "c1 - c0, plane, Wp, H * W, tail, c0 == 0);")
        tiles = f"""\
const int64_t k0 = kb * KB;
const int kbn = static_cast<int>(std::min<int64_t>(KB, K - k0));
const float* wb = wp + kb * C * 9 * KB;
float* yr = y + ((n * K + k0) * H + h) * W;
for (int64_t v0 = 0; v0 < nv; v0 += WB) {{   // full WB-vector tiles, then the row's remainder
    const int wbn = static_cast<int>(std::min<int64_t>(WB, nv - v0));
    const int tail = v0 + wbn == nv ? last : L;
    {call}
}}"""
        cb = p["tile_c"]
        if not cb:
            body = f"const int64_t c0 = 0, c1 = C;\nconst float* xr = xp + n * C * plane + h * Wp;\n{tiles}"
        elif p["order"] == "h_kb":
            # input-channel blocks outside the output-channel blocks: the CB x 3 input rows of one
            # output row stay in L1 while every output-channel block and column tile reads them
            head = (head[:head.rindex("for (int64_t kb")]
                    + "for (int64_t c0 = 0; c0 < C; c0 += CB) {\n"
                    + "            const int64_t c1 = std::min<int64_t>(C, c0 + CB);\n"
                    + "            for (int64_t kb = 0; kb < nkb; ++kb) {")
            body = f"const float* xr = xp + n * C * plane + h * Wp;\n{tiles}"
            return self._tile_setup(p, KB, WB, head, body, extra_close=True)
        else:
            body = (f"const float* xr = xp + n * C * plane + h * Wp;\n"
                    f"for (int64_t c0 = 0; c0 < C; c0 += CB) {{\n    const int64_t c1 = std::min<int64_t>(C, c0 + CB);\n"
                    f"{indent(tiles, 4)}\n}}")
        return self._tile_setup(p, KB, WB, head, body)

    def _tile_setup(self, p: dict[str, Any], KB: int, WB: int, head: str, body: str, extra_close: bool = False) -> str:
        close = "            }\n" if extra_close else ""
        ind = 16 if extra_close else 12
        return f"""\
// weights packed per block of KB output channels: wp[kb][c][r * 3 + s][KB] (zero past K)
const int64_t KB = {KB}, WB = {WB}, nkb = (K + KB - 1) / KB, CB = {p['tile_c'] or 'C'};
const int64_t L = {lanes(p)}, nv = (W + L - 1) / L;             // L-wide vectors per output row
const int last = static_cast<int>(W - L * (nv - 1));           // valid lanes in the last one
float* wp = static_cast<float*>(std::aligned_alloc(64, (nkb * C * 9 * KB * sizeof(float) + 63) / 64 * 64));
if (!wp) {{ std::free(xp); return 2; }}
{self._pack_weights(p, "KB")}
{head}
{indent(body, ind)}
{close}        }}
    }}
std::free(wp);"""

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        tile = p["algo"] == "tile"
        padded = tile or p["algo"] == "kvec" or p["pad"] == "copy"
        notes = []
        if p["algo"] in ("tile", "kvec") and p["pad"] == "bounds":
            notes.append(f"// note: the {p['algo']} algo always reads a zero-padded copy (pad=bounds unused)")
        if p["algo"] != "rows" and p["vector"] != "scalar":
            notes.append("// note: vector applies to the rows algo only")
        if not tile:
            notes.append("// note: tile, tile_c and order (tile algo only) are unused")
        if p["algo"] != "kvec":
            notes.append("// note: kvec_tile (kvec algo only) is unused")
        if p["algo"] not in ("tile", "kvec"):
            notes.append("// note: simd_width (tile and kvec algos only) is unused")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if tile:
            KB, WB = _tile(p["tile"])
            src += [self._tile_kernel(KB, lanes(p)), self._tile_dispatch(KB, WB)]
            loops = self._tile_loops(p)
        elif p["algo"] == "kvec":
            src.append(self._kvec_kernel(lanes(p)))
            loops = self._kvec_loops(p)
        elif p["algo"] == "rows":
            loops = self._rows_loops(p)
        else:
            loops = self._direct_loops(p)
        pad = self._pad(p["threads"] != "none") + "\n" if padded else ""
        free = "\nstd::free(xp);" if padded else ""
        body = f"""\
{check_f32(3, [4, 4, 1])}
const int64_t N = inputs[0].shape[0], C = inputs[0].shape[1], H = inputs[0].shape[2], W = inputs[0].shape[3];
const int64_t K = inputs[1].shape[0];
if (inputs[1].shape[1] != C || inputs[1].shape[2] != 3 || inputs[1].shape[3] != 3 || inputs[2].shape[0] != K)
    return 1;
const float* x = static_cast<const float*>(inputs[0].data);
const float* wt = static_cast<const float*>(inputs[1].data);
const float* bias = static_cast<const float*>(inputs[2].data);
float* y = static_cast<float*>(output->data);
{pad}{loops}{free}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
