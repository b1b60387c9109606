"""swiglu: y = silu(gate) * up = gate / (1 + e^-gate) * up; gate, up, y [M, H] (inputs 1 and 2).

Memory-bound elementwise op with one exp per element. The naive kernel mirrors eager: two sweeps
over the matrix (silu into y, then y *= up) in scalar loops with libm exp. The space covers fusing
into one sweep (12 bytes per element instead of 20), OpenMP over rows or over fixed-size blocks of
the flattened matrix (balanced even with fewer rows than threads), `omp simd` or AVX2 intrinsics,
the shared branch-free exp polynomial (snippets.EXP_*) instead of libm, and streaming stores.

silu is written g / (1 + e^-g): for g -> +inf, e^-g -> 0 and y -> g; for g -> -inf, e^-g
saturates (libm: inf, the polynomial: e^88) and y -> -0 or a tiny negative number. The form
e^g / (1 + e^g) would give inf / inf = NaN for large g.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import AVX512, SIMD_WIDTH, Axis, Move, TemplateFamily
from agents.templates.snippets import (AVX512_GUARD, EXP2_AVX2, EXP_AVX2, EXP_SCALAR, INCLUDES, LOG2E,
                                       NO_TRAPPING_MATH, check_f32, indent, lanes, omp_for, span_function, store8,
                                       widener)

FLAT_BLOCK = 16384   # elements per work item of threads=flat (64 KB of each tensor)

def _silu_avx2(exp2: bool) -> str:
    """silu on U vectors, in place; with exp2, e^-g = 2^t with t = -g log2(e) (one multiply, as the
    negation was), then the degree-5 exp2 with an upper clamp."""
    if exp2:
        exp = (f"for (int u = 0; u < U; ++u)   // t = -g log2(e), at most 126: 2^t finite, g / (1 + 2^t) -> 0\n"
               f"    z[u] = _mm256_min_ps(_mm256_mul_ps(v[u], _mm256_set1_ps(-{LOG2E})), _mm256_set1_ps(126.0f));\n"
               "ks_exp2_8_n<U>(z);   // clamps below at -126")
    else:
        exp = ("for (int u = 0; u < U; ++u) z[u] = _mm256_sub_ps(_mm256_setzero_ps(), v[u]);   // -g\n"
               "ks_exp8_n<U>(z);")
    return f"""\
// silu on U vectors of 8 lanes, in place: g / (1 + e^-g), the exps interleaved
template <int U>
static inline void silu8_n(__m256* v) {{
    __m256 z[U];
{indent(exp, 4)}
    for (int u = 0; u < U; ++u) v[u] = _mm256_div_ps(v[u], _mm256_add_ps(_mm256_set1_ps(1.0f), z[u]));
}}
"""


def _silu_scalar(poly: bool) -> str:
    exp = "ks_expf" if poly else "std::exp"
    return f"""\
static inline float silu(float g) {{
    return g / (1.0f + {exp}(-g));
}}
"""


def _silu_group(k: int, load: str, store: str, w: int = 8) -> str:
    """k vectors of w lanes at j: v[u] = load (uses u); silu in place, interleaved; then store (uses u)."""
    if k == 1:
        one = lambda e: e.replace(f" + {w} * u", "").replace("[u]", "[0]")  # noqa: E731
        return f"__m256 v[1] = {{{one(load)}}};\nsilu8_n<1>(v);\n{one(store)};"
    return (f"__m256 v[{k}];\nfor (int u = 0; u < {k}; ++u) v[u] = {load};\n"
            f"silu8_n<{k}>(v);\nfor (int u = 0; u < {k}; ++u) {store};")


@register
class SwigluTemplates(TemplateFamily):
    family = "swiglu"
    axes = [
        Axis(name="fuse", values=["unfused", "fused"], default="unfused",
             doc="unfused: two sweeps like eager (y = silu(gate), then y *= up); fused: one sweep"),
        Axis(name="threads", values=["none", "rows", "flat"], default="none",
             doc=f"OpenMP over rows, or over {FLAT_BLOCK}-element blocks of the flattened matrix"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="inner loop: plain, `#pragma omp simd`, or AVX2/FMA intrinsics (always the exp polynomial)"),
        Axis(name="math", values=["libm", "poly"], default="libm",
             doc="libm expf, or the branch-free Cephes-style exp polynomial (vectorizable)"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="final output with non-temporal stores (AVX2 path only; skips the read-for-ownership)"),
        Axis(name="exp", values=["cephes", "exp2"], default="cephes",
             doc="intrinsics path: the shared Cephes exp (degree 7), or 2^t with t = -g log2(e) and a degree-5 "
                 "polynomial (11 -> 7 FMA-pipe ops per vector)"),
        SIMD_WIDTH,
        Axis(name="unroll", values=[1, 2, 4], default=1, kind="tunable",
             doc="vectors per loop step (intrinsics path), their exps interleaved"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
        Axis(name="chunk", values=[0, 4, 16], default=0, kind="tunable",
             doc="OpenMP chunk (rows or blocks); 0 = the schedule's default"),
    ]
    moves = [
        Move(name="fuse-one-pass", description="fuse silu and the multiply into one sweep (read gate and up "
             "once, write y once)", assigns={"fuse": "fused"}, prior_gain=1.8),
        Move(name="omp-rows", description="OpenMP parallel for over rows", assigns={"threads": "rows"},
             prior_gain=1.7),
        Move(name="omp-flat", description=f"OpenMP over {FLAT_BLOCK}-element blocks of the flattened matrix",
             assigns={"threads": "flat"}, prior_gain=1.7),
        Move(name="poly-exp", description="branch-free exp polynomial instead of libm expf",
             assigns={"math": "poly"}, prior_gain=1.4),
        Move(name="vec-omp-simd", description="vectorize with #pragma omp simd over the polynomial silu",
             assigns={"vector": "omp_simd", "math": "poly"}, prior_gain=2.5),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics, 8 floats per vector, vectorized exp",
             assigns={"vector": "avx2", "math": "poly"}, prior_gain=3.0),
        Move(name="nt-stores", description="non-temporal (streaming) stores for the output",
             assigns={"store": "stream"}, prior_gain=1.2, requires={"vector": "avx2"}),
        Move(name="exp2-fold", description="cheaper exp: 2^t with t = -g log2(e), degree-5 polynomial",
             assigns={"exp": "exp2"}, requires={"vector": "avx2"}, prior_gain=1.05),
        AVX512,
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["one fused sweep" if p["fuse"] == "fused" else "two sweeps (silu, then multiply by up)",
                 {"none": "single thread", "rows": "OpenMP over rows",
                  "flat": f"OpenMP over {FLAT_BLOCK}-element blocks"}[p["threads"]],
                 {"scalar": "scalar loops", "omp_simd": "omp simd",
                  "avx2": f"{'AVX-512' if lanes(p) == 16 else 'AVX2'} x{p['unroll']} unroll"}[p["vector"]],
                 ("exp2 polynomial" if p["exp"] == "exp2" and p["vector"] == "avx2" else "exp polynomial")
                 if p["math"] == "poly" or p["vector"] == "avx2" else "libm exp"]
        if p["store"] == "stream" and p["vector"] == "avx2":
            parts.append("streaming stores")
        return "; ".join(parts)

    # --- spans: one contiguous run of n elements, pointers already offset ------------------------

    def _spans(self, p: dict[str, Any]) -> tuple[str, list[str]]:
        """The span functions and, per sweep, the call (OFF = element offset, LEN = length)."""
        st = p["store"] == "stream" and p["vector"] == "avx2"
        ld, w = "_mm256_loadu_ps", lanes(p)   # 8-lane spelling; zmm() widens it for w = 16
        if p["fuse"] == "fused":
            fn = span_function("swiglu_span", "const float* g, const float* up, float* y", "y[j] = silu(g[j]) * up[j];",
                            None, p, st,
                            group=lambda k: _silu_group(k, f"{ld}(g + j + {w} * u)",
                                                        f"{store8(st)}(y + j + {w} * u, _mm256_mul_ps(v[u], "
                                                        f"{ld}(up + j + {w} * u)))", w))
            return fn, ["swiglu_span(g + OFF, up + OFF, y + OFF, LEN);"]
        fns = [
            span_function("silu_span", "const float* g, float* y", "y[j] = silu(g[j]);", None, p, False,
                       group=lambda k: _silu_group(k, f"{ld}(g + j + {w} * u)", f"_mm256_storeu_ps(y + j + {w} * u, v[u])",
                                                   w)),
            span_function("mul_span", "const float* up, float* y", "y[j] = y[j] * up[j];",
                       lambda o, u: f"{store8(st)}(y + {o}, _mm256_mul_ps({ld}(y + {o}), {ld}(up + {o})));", p, st),
        ]
        return "\n".join(fns), ["silu_span(g + OFF, y + OFF, LEN);", "mul_span(up + OFF, y + OFF, LEN);"]

    def _sweep(self, call: str, p: dict[str, Any], in_parallel: bool) -> str:
        pragma = omp_for(p["schedule"], p["chunk"], parallel=not in_parallel) + "\n"
        if p["threads"] == "flat":
            c = call.replace("OFF", "o").replace("LEN", f"std::min<int64_t>({FLAT_BLOCK}, total - o)")
            return (f"{pragma}for (int64_t blk = 0; blk < nblk; ++blk) {{\n"
                    f"    const int64_t o = blk * {FLAT_BLOCK};\n    {c}\n}}")
        if p["threads"] == "rows":
            c = call.replace("OFF", "i * H").replace("LEN", "H")
            return f"{pragma}for (int64_t i = 0; i < M; ++i)\n    {c}"
        return call.replace(" + OFF", "").replace("LEN", "total")   # one thread: one span over everything

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        poly = p["math"] == "poly" or avx2
        stream = p["store"] == "stream" and avx2
        notes = []
        if avx2 and p["math"] == "libm":
            notes.append("the AVX2 path always uses the exp polynomial (math=libm has no 8-wide form)")
        if p["store"] == "stream" and not avx2:
            notes.append("store=stream applies to the AVX2 path only: plain stores here")
        for axis, value in (("exp", "exp2"), ("simd_width", 16)):
            if p[axis] == value and not avx2:
                notes.append(f"{axis}={value} applies to the intrinsics path only")
        wide = avx2 and lanes(p) == 16
        widen = widener(p)
        # notes ride on the strategy line: axes the code ignores change comments only (code_key)
        strategy = self.strategy(p) + "".join(f" (note: {n})" for n in notes)
        src = [self.header(p, strategy), "", INCLUDES, *([AVX512_GUARD] if wide else [])]
        if p["vector"] == "omp_simd" and poly:
            src.append(NO_TRAPPING_MATH)
        if poly:
            src.append(EXP_SCALAR)
        if avx2:
            src += [widen(EXP2_AVX2 if p["exp"] == "exp2" else EXP_AVX2), widen(_silu_avx2(p["exp"] == "exp2"))]
        src.append(_silu_scalar(poly))
        spans, calls = self._spans(p)
        src.append(widen(spans))

        threaded = p["threads"] != "none"
        multi = threaded and (len(calls) > 1 or stream)   # one parallel region around all sweeps
        sweeps = "\n".join(self._sweep(c, p, in_parallel=multi) for c in calls)
        if multi:
            fence = "\n_mm_sfence();  // each thread orders its streaming stores" if stream else ""
            sweeps = f"#pragma omp parallel\n{{\n{indent(sweeps + fence, 4)}\n}}"
        elif stream:
            sweeps += "\n_mm_sfence();  // order the streaming stores before returning"
        flat = f"const int64_t nblk = (total + {FLAT_BLOCK} - 1) / {FLAT_BLOCK};\n" if p["threads"] == "flat" else ""
        body = f"""\
{check_f32(2, [2, 2])}
const int64_t M = inputs[0].shape[0], H = inputs[0].shape[1], total = M * H;
if (inputs[1].shape[0] != M || inputs[1].shape[1] != H) return 1;
const float* g = static_cast<const float*>(inputs[0].data);
const float* up = static_cast<const float*>(inputs[1].data);
float* y = static_cast<float*>(output->data);
(void)H; (void)total;   // each threading mode uses one of them
{flat}{sweeps}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
