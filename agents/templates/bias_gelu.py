"""bias_gelu: y = gelu_tanh(x + bias) + residual, x/residual [M, N], bias [N].

Memory-bound elementwise chain. The naive kernel mirrors eager: three sweeps over the matrix
(add bias, gelu, add residual) in scalar loops with libm tanh. The space covers fusing into one
sweep, OpenMP over rows or over (row, column-block) tiles, `omp simd` or AVX2 intrinsics, a
branch-free exp polynomial instead of libm tanh (gelu_tanh(v) = v * sigmoid(2u) = v / (1 + e^-2u),
which has no cancellation near 0 and saturates cleanly at large |v|), and streaming stores.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import AVX512, SIMD_WIDTH, Axis, Move, TemplateFamily
from agents.templates.snippets import (AVX512_GUARD, EXP2_AVX2, EXP_AVX2, EXP_SCALAR, INCLUDES, LOG2E,
                                       NO_TRAPPING_MATH, check_f32, indent, lanes, omp_for, span_function, store8,
                                       widener)

K_BETA = "0.7978845608028654f"   # sqrt(2 / pi)
K_KAPPA = "0.044715f"
K_M2B = "-1.5957691216057308f"     # -2 sqrt(2 / pi)
K_M2BK = "-0.0713548162726003f"   # -2 sqrt(2 / pi) * 0.044715


def _gelu_scalar(poly: bool) -> str:
    if poly:
        return f"""\
// gelu_tanh(v) = 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)), u = sqrt(2/pi) (v + 0.044715 v^3);
// no cancellation near 0, and e^(-2u) saturates cleanly for large |v| (v / huge -> 0)
static inline float gelu_tanh(float v) {{
    const float z = v * ({K_M2B} + {K_M2BK} * v * v);   // -2u
    return v / (1.0f + ks_expf(z));
}}
"""
    return f"""\
static inline float gelu_tanh(float v) {{
    const float u = {K_BETA} * (v + {K_KAPPA} * v * v * v);
    return 0.5f * v * (1.0f + std::tanh(u));
}}
"""


def _gelu_avx2(exp2: bool) -> str:
    """gelu_tanh on U vectors, in place, in the sigmoid form; with exp2, e^(-2u) = 2^t and log2(e)
    is folded into the two constants of t = -2u log2(e) (no extra op), then the degree-5 exp2."""
    m2b, m2bk = (f"{K_M2B} * {LOG2E}", f"{K_M2BK} * {LOG2E}") if exp2 else (K_M2B, K_M2BK)
    exp = ("for (int u = 0; u < U; ++u)   // above 126: 2^t still finite, v / (1 + 2^t) -> 0\n"
           "    z[u] = _mm256_min_ps(z[u], _mm256_set1_ps(126.0f));\n"
           "ks_exp2_8_n<U>(z);   // clamps below at -126") if exp2 else "ks_exp8_n<U>(z);"
    return f"""\
// gelu_tanh on U vectors of 8 lanes, in place (same sigmoid form as gelu_tanh{'; e^(-2u) as 2^t' if exp2 else ''})
template <int U>
static inline void gelu_tanh8_n(__m256* v) {{
    __m256 z[U];
    for (int u = 0; u < U; ++u)   // {'t = -2u log2(e)' if exp2 else '-2u'}
        z[u] = _mm256_mul_ps(v[u], _mm256_fmadd_ps(_mm256_set1_ps({m2bk}), _mm256_mul_ps(v[u], v[u]),
                                                   _mm256_set1_ps({m2b})));
{indent(exp, 4)}
    for (int u = 0; u < U; ++u) v[u] = _mm256_div_ps(v[u], _mm256_add_ps(_mm256_set1_ps(1.0f), z[u]));
}}
"""


def _gelu_group(k: int, load: str, store: str, w: int = 8) -> str:
    """k vectors of w lanes at j: v[u] = load(u); gelu in place, interleaved; then store(u) (u =
    lane-group index; load and store spell offsets `w * u`)."""
    if k == 1:
        one = lambda e: e.replace(f" + {w} * u", "").replace("[u]", "[0]")  # noqa: E731
        return f"__m256 v[1] = {{{one(load)}}};\ngelu_tanh8_n<1>(v);\n{one(store)};"
    return (f"__m256 v[{k}];\nfor (int u = 0; u < {k}; ++u) v[u] = {load};\n"
            f"gelu_tanh8_n<{k}>(v);\nfor (int u = 0; u < {k}; ++u) {store};")


@register
class BiasGeluTemplates(TemplateFamily):
    family = "bias_gelu"
    axes = [
        Axis(name="fuse", values=["unfused", "fused"], default="unfused",
             doc="unfused: three sweeps like eager (add bias, gelu, add residual); fused: one sweep"),
        Axis(name="threads", values=["none", "rows", "tiles"], default="none",
             doc="OpenMP over rows, or over (row, column block) tiles (keeps cores busy when M is small)"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="inner loop: plain, `#pragma omp simd`, or explicit AVX2/FMA intrinsics (always poly exp)"),
        Axis(name="math", values=["libm", "poly"], default="libm",
             doc="tanh from libm, or the branch-free Cephes-style exp polynomial in sigmoid form"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="final output with non-temporal stores (AVX2 path only; skips the read-for-ownership)"),
        Axis(name="exp", values=["cephes", "exp2"], default="cephes",
             doc="intrinsics path: the shared Cephes exp (degree 7, two-step ln2 reduction), or 2^t with log2(e) "
                 "folded into gelu's constants and a degree-5 polynomial (11 -> 7 FMA-pipe ops per vector)"),
        SIMD_WIDTH,
        Axis(name="unroll", values=[1, 2, 4], default=1, kind="tunable",
             doc="vectors per loop step (intrinsics path)"),
        Axis(name="schedule", values=["static", "dynamic", "guided"], default="static", kind="tunable"),
        Axis(name="chunk", values=[0, 1, 4, 16], default=0, kind="tunable",
             doc="OpenMP chunk (rows or tiles); 0 = the schedule's default"),
        Axis(name="col_block", values=[1024, 4096, 16384], default=4096, kind="tunable",
             doc="columns per tile when threads=tiles"),
    ]
    moves = [
        Move(name="fuse-one-pass", description="fuse bias add, gelu and residual add into one sweep",
             assigns={"fuse": "fused"}, prior_gain=2.0),
        Move(name="omp-rows", description="OpenMP parallel for over rows", assigns={"threads": "rows"},
             prior_gain=1.7),
        Move(name="omp-tiles", description="OpenMP over (row, column block) tiles, collapse(2)",
             assigns={"threads": "tiles"}, prior_gain=1.6),
        Move(name="poly-exp", description="replace libm tanh by a branch-free exp polynomial (sigmoid form)",
             assigns={"math": "poly"}, prior_gain=1.5),
        Move(name="vec-omp-simd", description="vectorize with #pragma omp simd over the polynomial gelu",
             assigns={"vector": "omp_simd", "math": "poly"}, prior_gain=2.5),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics, 8 floats per vector, vectorized exp",
             assigns={"vector": "avx2", "math": "poly"}, prior_gain=3.0),
        Move(name="exp2-fold", description="cheaper exp: 2^t with log2(e) folded into gelu's constants, "
             "degree-5 polynomial (the exps keep this op off the memory bound)",
             assigns={"exp": "exp2"}, requires={"vector": "avx2"}, prior_gain=1.05),
        AVX512,
        Move(name="nt-stores", description="non-temporal (streaming) stores for the output",
             assigns={"store": "stream"}, prior_gain=1.15, requires={"vector": "avx2"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["one fused sweep" if p["fuse"] == "fused" else "three sweeps (add bias, gelu, add residual)"]
        parts.append({"none": "single thread", "rows": "OpenMP over rows",
                      "tiles": f"OpenMP over row x {p['col_block']}-column tiles"}[p["threads"]])
        parts.append({"scalar": "scalar loops", "omp_simd": "omp simd",
                      "avx2": f"{'AVX-512' if lanes(p) == 16 else 'AVX2'} x{p['unroll']} unroll"}[p["vector"]])
        parts.append(("exp2 polynomial, log2(e) folded" if p["exp"] == "exp2" and p["vector"] == "avx2" else
                      "exp polynomial") if p["math"] == "poly" or p["vector"] == "avx2" else "libm tanh")
        if p["store"] == "stream" and p["vector"] == "avx2":
            parts.append("streaming stores")
        return "; ".join(parts)

    # --- spans: one contiguous run of elements, pointers already offset ------------------------

    def _spans(self, p: dict[str, Any]) -> tuple[str, list[str]]:
        """The span functions and, per sweep, the call (with OFF = element offset, COL = column)."""
        st = p["store"] == "stream" and p["vector"] == "avx2"
        ld, w = "_mm256_loadu_ps", lanes(p)   # 8-lane spelling; zmm() widens it for w = 16
        if p["fuse"] == "fused":
            fn = span_function(
                "bias_gelu_span", "const float* x, const float* b, const float* r, float* y",
                "y[j] = gelu_tanh(x[j] + b[j]) + r[j];", None, p, st,
                group=lambda k: _gelu_group(k, f"_mm256_add_ps({ld}(x + j + {w} * u), {ld}(b + j + {w} * u))",
                                            f"{store8(st)}(y + j + {w} * u, _mm256_add_ps(v[u], {ld}(r + j + {w} * u)))",
                                            w))
            return fn, ["bias_gelu_span(x + OFF, bias + COL, res + OFF, y + OFF, LEN);"]
        fns = [
            span_function("add_bias_span", "const float* x, const float* b, float* y", "y[j] = x[j] + b[j];",
                       lambda o, u: f"_mm256_storeu_ps(y + {o}, _mm256_add_ps({ld}(x + {o}), {ld}(b + {o})));",
                       p, False),
            span_function("gelu_span", "float* y", "y[j] = gelu_tanh(y[j]);", None, p, False,
                       group=lambda k: _gelu_group(k, f"{ld}(y + j + {w} * u)", f"_mm256_storeu_ps(y + j + {w} * u, v[u])",
                                                   w)),
            span_function("add_residual_span", "const float* r, float* y", "y[j] = y[j] + r[j];",
                       lambda o, u: f"{store8(st)}(y + {o}, _mm256_add_ps({ld}(y + {o}), {ld}(r + {o})));", p, st),
        ]
        calls = ["add_bias_span(x + OFF, bias + COL, y + OFF, LEN);", "gelu_span(y + OFF, LEN);",
                 "add_residual_span(res + OFF, y + OFF, LEN);"]
        return "\n".join(fns), calls

    def _sweep(self, call: str, p: dict[str, Any], in_parallel: bool) -> str:
        if p["threads"] == "tiles":
            c = call.replace("OFF", "i * N + j0").replace("COL", "j0").replace("LEN", "std::min(CB, N - j0)")
            return (f"{omp_for(p['schedule'], p['chunk'], parallel=not in_parallel, collapse=2)}\n"
                    f"for (int64_t i = 0; i < M; ++i)\n"
                    f"    for (int64_t jb = 0; jb < nb; ++jb) {{\n"
                    f"        const int64_t j0 = jb * CB;\n        {c}\n    }}")
        c = call.replace("OFF", "i * N").replace(" + COL", "").replace("LEN", "N")
        pragma = omp_for(p["schedule"], p["chunk"], parallel=not in_parallel) + "\n" if p["threads"] == "rows" else ""
        return f"{pragma}for (int64_t i = 0; i < M; ++i)\n    {c}"

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        poly = p["math"] == "poly" or avx2
        stream = p["store"] == "stream" and avx2
        wide = widener(p)
        notes = []
        if avx2 and p["math"] == "libm":
            notes.append("// note: the AVX2 path always uses the exp polynomial (math=libm has no 8-wide form)")
        if p["store"] == "stream" and not avx2:
            notes.append("// note: store=stream applies to the AVX2 path only; plain stores here")
        if lanes(p) == 16 and not avx2:
            notes.append("// note: simd_width=16 applies to the intrinsics path only")
        if p["exp"] == "exp2" and not avx2:
            notes.append("// note: exp=exp2 applies to the intrinsics path only")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if avx2 and lanes(p) == 16:
            src.append(AVX512_GUARD)
        if p["vector"] == "omp_simd" and poly:
            src.append(NO_TRAPPING_MATH)
        if poly:
            src.append(EXP_SCALAR)
        exp2 = avx2 and p["exp"] == "exp2"
        if avx2:
            src.append(wide(EXP2_AVX2 if exp2 else EXP_AVX2))
        src.append(_gelu_scalar(poly))
        if avx2:
            src.append(wide(_gelu_avx2(exp2)))
        spans, calls = self._spans(p)
        src.append(wide(spans))

        threaded = p["threads"] != "none"
        multi = threaded and (len(calls) > 1 or stream)   # one parallel region around all sweeps
        sweeps = "\n".join(self._sweep(c, p, in_parallel=multi) for c in calls)
        if multi:
            fence = "\n_mm_sfence();  // each thread orders its streaming stores" if stream else ""
            sweeps = f"#pragma omp parallel\n{{\n{indent(sweeps + fence, 4)}\n}}"
        elif stream:
            sweeps += "\n_mm_sfence();  // order the streaming stores before returning"
        tiles = ""
        if p["threads"] == "tiles":
            tiles = f"const int64_t CB = {p['col_block']}, nb = (N + CB - 1) / CB;\n"
        body = f"""\
{check_f32(3, [2, 1, 2])}
const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
const float* x = static_cast<const float*>(inputs[0].data);
const float* bias = static_cast<const float*>(inputs[1].data);
const float* res = static_cast<const float*>(inputs[2].data);
float* y = static_cast<float*>(output->data);
{tiles}{sweeps}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
