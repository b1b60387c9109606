"""int8_matmul: y[M, N] = x[M, K] @ (weight.float() * scale[:, None]).T, weight-only int8 (W8A32).

Inputs: x fp32 [M, K], weight int8 [N, K] (KS_I8), scale fp32 [N] (one per output channel).
Decode-like M (a handful of tokens) against a big weight: torch eager materialises the whole
dequantized weight in fp32 (4x the int8 bytes, written and read back) before its GEMM; a fused
kernel reads each int8 weight once and converts it in registers. At M = 16 each weight byte feeds
2*M = 32 FLOPs, so on a 2-core AVX2 machine (~200 GFLOP/s, ~40 GB/s) the fused kernel is
compute-bound and the register tile decides how close it gets.

The naive kernel walks x rows outside (the whole weight is re-read from memory once per row of x),
dequantizes every term (`x * (w * s)`, the reference's order) in scalar code. The space:
- order=nm: weight tiles outside, x rows inside: each weight row is read from memory once and
  reused from L1 by every row of x (x itself, M x K fp32, lives in L2).
- dequant=scale_after: sum x * w, multiply by scale[n] once per output (the scale is per output
  channel, so it factors out of the K sum).
- vector=avx2: dot-product form, vectors along K: 8 int8 weights -> `_mm256_cvtepi8_epi32` ->
  `_mm256_cvtepi32_ps`, FMA into an MB x NB register tile of accumulators (MB x rows against NB
  weight rows: each converted weight vector feeds MB FMAs, each x vector NB), one horizontal sum
  per output at the end. With simd_width = 16 (AVX-512F) the same tile on 16 weights per zmm: half
  the conversions and FMAs per weight byte, and 32 registers for larger tiles (8x3, 4x6).
- threads=cols: OpenMP over tiles of output columns (weight rows): disjoint weight slices per core.
- prefetch=next_tile: while the first row tile of x streams this weight tile, prefetch the next
  tile's rows into L2 (one line per 64 bytes of K). At K = 4096 every weight row is its own 4 KB
  page, where the hardware prefetcher stops and must retrain. Measured on the bench shape: ~4%
  slower on a quiet machine, up to ~1.8x faster (best of many) while other jobs load the memory
  system; a tunable bet, not a default.
- tile_k: block K so the x slice (M x KC fp32) stays in L1 across all weight tiles; partial sums
  are accumulated in y (first block stores, the last applies the scale). It turns the weight read
  into short strided chunks and adds horizontal sums per block: slower on the bench shape here
  (x, 256 KB, is served from L2 well enough), kept for larger M.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import AVX512, SIMD_WIDTH, Axis, Move, TemplateFamily
from agents.templates.snippets import AVX512_GUARD, HREDUCE_AVX2, HREDUCE_AVX512, INCLUDES, indent, lanes, omp_for, zmm

# MB x NB: rows of x x rows of weight. Tuning steps to a neighbour in this list, so the AVX2
# default 4x3 (12 accumulators + 4 = 16 ymm) sits next to the tiles that fill AVX-512's 32
# registers, best first (4x6, then 8x3: measured 2.46 and 2.40 ms against 3.06 for 4x3 on zmm)
TILES = ["1x1", "2x2", "4x1", "8x1", "2x4", "4x2", "6x2", "3x4", "4x3", "4x6", "8x3", "8x2", "4x4"]

# L int8 weights -> L fp32 lanes: the load width is the one spelling zmm() cannot derive
# (8 bytes into an xmm for AVX2, 16 for AVX-512)
WEIGHTS_TO_PS = {
    8: """\
static inline __m256 ks_i8_to_ps(const int8_t* w) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w))));
}
""",
    16: """\
static inline __m512 ks_i8_to_ps(const int8_t* w) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}
"""}


def _tile(t: str) -> tuple[int, int]:
    mb, nb = t.split("x")
    return int(mb), int(nb)


@register
class Int8MatmulTemplates(TemplateFamily):
    family = "int8_matmul"
    axes = [
        Axis(name="order", values=["mn", "nm"], default="mn",
             doc="mn: x rows outside (weight re-read per row of x); nm: weight tiles outside, each read once"),
        Axis(name="dequant", values=["per_term", "scale_after"], default="per_term",
             doc="per_term: x * (w * s) as the reference; scale_after: (sum x * w) * s once per output"),
        Axis(name="vector", values=["scalar", "avx2"], default="scalar",
             doc="scalar loops, or AVX2: int8 -> fp32 in registers, FMA into an MB x NB accumulator tile"),
        Axis(name="threads", values=["none", "cols"], default="none",
             doc="OpenMP over tiles of output columns (disjoint weight rows per thread)"),
        Axis(name="prefetch", values=["none", "next_tile"], default="none",
             doc="AVX2: software-prefetch the next weight tile's rows into L2 while this one runs "
                 "(each 4 KB row starts a new page, where the hardware prefetcher restarts)"),
        Axis(name="tile", values=TILES, default="4x3", kind="tunable",
             doc="intrinsics register tile MB x NB: rows of x by rows of the weight (MB*NB vector accumulators)"),
        Axis(name="tile_k", values=[0, 256, 512, 1024], default=0, kind="tunable",
             doc="AVX2: K block (0 = all of K): the x slice M x KC stays in L1 across weight tiles"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
        SIMD_WIDTH,
    ]
    moves = [
        Move(name="loop-nm", description="weight tiles in the outer loop, rows of x inside: each int8 weight "
             "row is read from memory once and reused from cache by every row of x",
             assigns={"order": "nm"}, prior_gain=2.5),
        Move(name="scale-after", description="accumulate x * w, apply the per-channel scale once per output",
             assigns={"dequant": "scale_after"}, prior_gain=1.3),
        Move(name="omp-cols", description="OpenMP over tiles of output columns (weight rows)",
             assigns={"threads": "cols"}, prior_gain=1.8),
        Move(name="vec-avx2", description="AVX2: convert 8 int8 weights to fp32 in registers "
             "(cvtepi8_epi32 + cvtepi32_ps), FMA into a register tile of accumulators over K",
             assigns={"vector": "avx2"}, prior_gain=5.0),
        Move(name="prefetch-next-tile", description="software-prefetch the next tile's int8 weight rows into L2 "
             "(each weight row is its own 4 KB page: the hardware prefetcher restarts at every row)",
             assigns={"prefetch": "next_tile"}, prior_gain=1.1, requires={"vector": "avx2"}),
        AVX512,
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["weight tiles outside (each read once)" if p["order"] == "nm" else "x rows outside",
                 "scale once per output" if p["dequant"] == "scale_after" else "dequantize every term",
                 "OpenMP over output columns" if p["threads"] == "cols" else "single thread"]
        if p["vector"] == "avx2":
            kc = f", K blocks of {p['tile_k']}" if p["tile_k"] else ""
            pf = ", prefetch next weight tile" if p["prefetch"] == "next_tile" else ""
            parts.append(f"{'AVX2' if lanes(p) == 8 else 'AVX-512'} {p['tile']} register tile{kc}{pf}")
        else:
            parts.append("scalar")
        return "; ".join(parts)

    # --- scalar -------------------------------------------------------------------------------

    def _scalar(self, p: dict[str, Any]) -> str:
        after = p["dequant"] == "scale_after"
        term = "x[m * K + k] * static_cast<float>(w[n * K + k])" if after else \
            "x[m * K + k] * (static_cast<float>(w[n * K + k]) * s[n])"
        store = "y[m * N + n] = acc * s[n];" if after else "y[m * N + n] = acc;"
        dot = f"float acc = 0.0f;\nfor (int64_t k = 0; k < K; ++k)\n    acc += {term};\n{store}"
        outer, inner = ("n", "m") if p["order"] == "nm" else ("m", "n")
        lim = {"m": "M", "n": "N"}
        par = ""
        if p["threads"] == "cols":   # the n loop is the parallel one, wherever it sits
            par = omp_for(p["schedule"], 0)
            if outer == "m":
                return (f"for (int64_t m = 0; m < M; ++m) {{\n{indent(par, 4)}\n"
                        f"    for (int64_t n = 0; n < N; ++n) {{\n{indent(dot, 8)}\n    }}\n}}")
            par += "\n"
        return (f"{par}for (int64_t {outer} = 0; {outer} < {lim[outer]}; ++{outer}) {{\n"
                f"    for (int64_t {inner} = 0; {inner} < {lim[inner]}; ++{inner}) {{\n{indent(dot, 8)}\n    }}\n}}")

    # --- AVX2 ---------------------------------------------------------------------------------

    def _avx2_tile(self, p: dict[str, Any]) -> str:
        after = p["dequant"] == "scale_after"
        scale_w = "" if after else "\n                wv[j] = _mm256_mul_ps(wv[j], _mm256_set1_ps(s[j]));   // w * s, as the reference"
        scale_w1 = "" if after else "\n                wv = _mm256_mul_ps(wv, _mm256_set1_ps(s[j]));   // w * s, as the reference"
        tail_w = "static_cast<float>(w[j * K + k])" + ("" if after else " * s[j]")
        fin = "(last ? v * s[j] : v)" if after else "v"
        pf = p["prefetch"] == "next_tile"
        pf_arg = ",\n                            const int8_t* pf" if pf else ""
        pf_body = """
        if (pf && (k & 63) == 0)   // one line of each of the next tile's weight rows, into L2
                                   // (prefetches never fault: rows past N at the end are harmless)
#pragma GCC unroll 8
            for (int j = 0; j < NB; ++j)
                _mm_prefetch(reinterpret_cast<const char*>(pf + j * K + k), _MM_HINT_T1);""" if pf else ""
        L = lanes(p)
        code = f"""\
// y[0:MB, 0:NB] over k in [k0, k1): MB rows of x (row stride K) against NB int8 weight rows (row
// stride K). Vectors run along K: each {L}-byte weight load is converted once and feeds MB FMAs,
// each x vector feeds NB; MB*NB accumulators stay in vector registers (the loops unroll fully).
// first: y = partial (else y += partial); last: the per-channel scale goes on (scale_after).
template <int MB, int NB>
static inline void tile_dot(const float* x, const int8_t* w, const float* s, float* y,
                            int64_t K, int64_t N, int64_t k0, int64_t k1, bool first, bool last{pf_arg}) {{
    __m256 acc[MB][NB];
#pragma GCC unroll 8
    for (int i = 0; i < MB; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j)
            acc[i][j] = _mm256_setzero_ps();
    int64_t k = k0;
    for (; k + {L} <= k1; k += {L}) {{{pf_body}
        // Hold the smaller side of the tile in registers and stream the other (MB*NB + min + 1
        // vector registers). The empty asm keeps a held load in its register: otherwise GCC folds
        // it into every FMA that uses it and the loop is bound by L1 loads instead of FMAs.
        if constexpr (NB <= MB) {{
            __m256 wv[NB];
#pragma GCC unroll 8
            for (int j = 0; j < NB; ++j) {{
                wv[j] = ks_i8_to_ps(w + j * K + k);{scale_w}
            }}
#pragma GCC unroll 8
            for (int i = 0; i < MB; ++i) {{
                __m256 xv = _mm256_loadu_ps(x + i * K + k);
                __asm__("" : "+v"(xv));
#pragma GCC unroll 8
                for (int j = 0; j < NB; ++j)
                    acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
            }}
        }} else {{
            __m256 xv[MB];
#pragma GCC unroll 8
            for (int i = 0; i < MB; ++i) {{
                xv[i] = _mm256_loadu_ps(x + i * K + k);
                __asm__("" : "+v"(xv[i]));
            }}
#pragma GCC unroll 8
            for (int j = 0; j < NB; ++j) {{
                __m256 wv = ks_i8_to_ps(w + j * K + k);{scale_w1}
#pragma GCC unroll 8
                for (int i = 0; i < MB; ++i)
                    acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
            }}
        }}
    }}
    float t[MB][NB];
#pragma GCC unroll 8
    for (int i = 0; i < MB; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j)
            t[i][j] = ks_hsum8(acc[i][j]);
    for (; k < k1; ++k)   // K tail
        for (int i = 0; i < MB; ++i)
            for (int j = 0; j < NB; ++j)
                t[i][j] += x[i * K + k] * {tail_w};
    for (int i = 0; i < MB; ++i)
        for (int j = 0; j < NB; ++j) {{
            const float v = first ? t[i][j] : y[i * N + j] + t[i][j];
            y[i * N + j] = {fin};
        }}
}}
"""
        return WEIGHTS_TO_PS[8] + code if L == 8 else AVX512_GUARD + HREDUCE_AVX512 + WEIGHTS_TO_PS[16] + zmm(code)

    def _dispatch(self, MB: int, NB: int, pf: bool) -> str:
        """Edge tiles (M % MB, N % NB rows/columns left) get their own fully unrolled instance."""
        a = ", pf" if pf else ""
        cases = "\n".join(f"    case {mb * 16 + nb}: tile_dot<{mb}, {nb}>(x, w, s, y, K, N, k0, k1, first, last{a}); break;"
                          for mb in range(1, MB + 1) for nb in range(1, NB + 1))
        pf_arg = ",\n                            const int8_t* pf" if pf else ""
        return f"""\
static inline void tile_any(int mb, int nb, const float* x, const int8_t* w, const float* s, float* y,
                            int64_t K, int64_t N, int64_t k0, int64_t k1, bool first, bool last{pf_arg}) {{
    switch (mb * 16 + nb) {{
{cases}
    default: break;
    }}
}}
"""

    def _avx2_loops(self, p: dict[str, Any]) -> str:
        MB, NB = _tile(p["tile"])
        thr = p["threads"] == "cols"
        pf = p["prefetch"] == "next_tile"
        # the next weight tile is prefetched by the pass that streams this one from memory: the
        # first row tile of x (order nm; the others find it in cache) or every one (order mn)
        who = "" if p["order"] == "mn" else "m0 == 0 && "
        pf_arg = (f",\n         {who}n0 + NB < N ? w + (n0 + NB) * K : nullptr") if pf else ""
        call = ("tile_any(std::min<int64_t>(MB, M - m0), std::min<int64_t>(NB, N - n0), x + m0 * K, "
                f"w + n0 * K, s + n0, y + m0 * N + n0, K, N, k0, k1, first, last{pf_arg});")
        nloop = "for (int64_t n0 = 0; n0 < N; n0 += NB)"
        mloop = "for (int64_t m0 = 0; m0 < M; m0 += MB)"
        par = omp_for(p["schedule"], 0, parallel=False) + "\n" if thr else ""
        if p["order"] == "nm":
            nest = f"{par}{nloop}\n    {mloop}\n        {call}"
        else:
            nest = f"{mloop} {{\n{indent(par, 4)}    {nloop}\n        {call}\n}}"
        kc = p["tile_k"] or 0
        body = f"""\
// K blocks: the barrier after each block's loop orders the partial sums written to y
for (int64_t k0 = 0; k0 < K; k0 += KC) {{
    const int64_t k1 = std::min<int64_t>(K, k0 + KC);
    const bool first = k0 == 0, last = k1 == K;
{indent(nest, 4)}
}}"""
        if thr:
            body = f"#pragma omp parallel\n{{\n{indent(body, 4)}\n}}"
        kc_line = f"const int64_t KC = {kc};" if kc else "const int64_t KC = K;   // tile_k = 0: one block"
        return f"const int64_t MB = {MB}, NB = {NB};\n{kc_line}\n{body}"

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        notes = [] if avx2 else ["// note: prefetch, tile, tile_k and simd_width shape the AVX2 path; unused by scalar loops"]
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if avx2:
            MB, NB = _tile(p["tile"])
            src += ([HREDUCE_AVX2] if lanes(p) == 8 else []) + [self._avx2_tile(p),
                                                                self._dispatch(MB, NB, p["prefetch"] == "next_tile")]
            loops = self._avx2_loops(p)
        else:
            loops = self._scalar(p)
        body = f"""\
if (n_inputs < 3 || output->dtype != KS_F32) return 1;
if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
if (inputs[1].dtype != KS_I8 || inputs[1].ndim != 2) return 1;
if (inputs[2].dtype != KS_F32 || inputs[2].ndim != 1) return 1;
const int64_t M = inputs[0].shape[0], K = inputs[0].shape[1], N = inputs[1].shape[0];
if (inputs[1].shape[1] != K || inputs[2].shape[0] != N) return 1;
const float* x = static_cast<const float*>(inputs[0].data);
const int8_t* w = static_cast<const int8_t*>(inputs[1].data);
const float* s = static_cast<const float*>(inputs[2].data);
float* y = static_cast<float*>(output->data);
{loops}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
