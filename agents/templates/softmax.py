"""softmax: y[i, :] = exp(x[i, :] - max) / sum(exp(x[i, :] - max)) over the last dim of x [M, N].

The naive kernel is the textbook three sweeps per row (max; exp + sum; normalize) in scalar
loops with libm exp and a double sum. The space covers the online (two-sweep) formulation,
OpenMP over rows, `omp simd` or AVX2 with a vectorized Cephes-style exp, several accumulators,
multiply-by-reciprocal instead of divide, and streaming stores for the output.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import AVX512, SIMD_WIDTH, Axis, Move, TemplateFamily
from agents.templates.snippets import (AVX512_GUARD, EXP2_AVX2, EXP2_SCALAR, EXP_AVX2, EXP_SCALAR, HREDUCE_AVX2,
                                       HREDUCE_AVX512, INCLUDES, LOG2E, NO_TRAPPING_MATH, check_f32, indent, lanes,
                                       next_row_arg, omp_for, prefetch_lines, rows_loop, store8, tree, vec_loop, widener)

SIMD_BLOCK = 256   # elements per block of the omp-simd online sweep (1 KB, stays in L1)


@register
class SoftmaxTemplates(TemplateFamily):
    family = "softmax"
    axes = [
        Axis(name="passes", values=["three", "online"], default="three",
             doc="three sweeps per row (max; exp+sum; normalize) or online max+sum, then one write sweep"),
        Axis(name="threads", values=["none", "rows"], default="none", doc="OpenMP parallel for over rows"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops, `#pragma omp simd`, or AVX2/FMA intrinsics (always the exp polynomial)"),
        Axis(name="math", values=["libm", "poly"], default="libm",
             doc="libm expf, or the branch-free Cephes-style polynomial (vectorizable)"),
        Axis(name="normalize", values=["divide", "reciprocal"], default="divide",
             doc="divide every element by the sum, or multiply by its reciprocal"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="non-temporal stores for the final write sweep (AVX2 path only)"),
        Axis(name="prefetch", values=["none", "next_row"], default="none",
             doc="AVX2 path: prefetch the next row during the exp sweep, overlapping DRAM reads with compute"),
        Axis(name="exp", values=["cephes", "exp2"], default="cephes",
             doc="AVX2 path: the shared Cephes exp (degree 7, 1.5 ulp), or 2^t with the max folded into one FMA "
                 "and a degree-5 polynomial (6 ulp near the max; 11 -> 7 FMA-pipe ops per vector)"),
        SIMD_WIDTH,
        Axis(name="prefetch_hint", values=["T0", "T1"], default="T0", kind="tunable",
             doc="_mm_prefetch hint: T0 = into L1, T1 = into L2"),
        Axis(name="unroll", values=[1, 2, 4], default=1, kind="tunable",
             doc="AVX2: vectors (independent accumulators) per step; omp_simd online: block scale"),
        Axis(name="schedule", values=["static", "dynamic", "guided"], default="static", kind="tunable"),
        Axis(name="chunk", values=[0, 1, 4, 16], default=0, kind="tunable",
             doc="OpenMP chunk in rows; 0 = the schedule's default"),
    ]
    moves = [
        Move(name="omp-rows", description="OpenMP parallel for over rows", assigns={"threads": "rows"},
             prior_gain=1.8),
        Move(name="online", description="online softmax: running max and rescaled sum in one sweep, "
             "then one write sweep", assigns={"passes": "online"}, prior_gain=1.2),
        Move(name="poly-exp", description="branch-free exp polynomial instead of libm expf",
             assigns={"math": "poly"}, prior_gain=1.4),
        Move(name="reciprocal", description="multiply by 1/sum instead of dividing every element",
             assigns={"normalize": "reciprocal"}, prior_gain=1.1),
        Move(name="vec-omp-simd", description="#pragma omp simd with max/sum reductions over the exp polynomial",
             assigns={"vector": "omp_simd", "math": "poly"}, prior_gain=2.5),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics with a vectorized exp and multiple accumulators",
             assigns={"vector": "avx2", "math": "poly"}, prior_gain=3.0),
        Move(name="nt-stores", description="non-temporal (streaming) stores for the output",
             assigns={"store": "stream"}, prior_gain=1.1, requires={"vector": "avx2"}),
        Move(name="exp2-fold", description="cheaper exp for x - max <= 0: one FMA to log2 units with the max "
             "folded in, lower clamp only, degree-5 2^f polynomial", assigns={"exp": "exp2"}, prior_gain=1.1,
             requires={"vector": "avx2"}),
        AVX512,
        Move(name="prefetch-next-row", description="software-prefetch the next row while computing exps, so "
             "the next row's max sweep hits cache", assigns={"prefetch": "next_row"}, prior_gain=1.15,
             requires={"vector": "avx2"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["online max+sum then write" if p["passes"] == "online" else "three sweeps per row",
                 "OpenMP over rows" if p["threads"] == "rows" else "single thread",
                 {"scalar": "scalar loops", "omp_simd": "omp simd",
                  "avx2": f"{'AVX-512' if lanes(p) == 16 else 'AVX2'} x{p['unroll']}"}[p["vector"]],
                 ("exp2 polynomial, max folded" if p["exp"] == "exp2" and p["vector"] == "avx2" else "exp polynomial")
                 if p["math"] == "poly" or p["vector"] == "avx2" else "libm exp",
                 "multiply by reciprocal" if p["normalize"] == "reciprocal" else "divide"]
        if p["store"] == "stream" and p["vector"] == "avx2":
            parts.append("streaming stores" + (" (exps in a per-thread scratch row)" if p["passes"] == "three" else ""))
        if p["prefetch"] == "next_row" and p["vector"] == "avx2":
            parts.append(f"prefetch next row ({p['prefetch_hint']})")
        return "; ".join(parts)

    # --- row kernels --------------------------------------------------------------------------

    def _norm_setup(self, p: dict[str, Any], s: str, vec: bool) -> str:
        if p["normalize"] == "reciprocal":
            line = f"const float inv = 1.0f / {f'({s})' if ' ' in s else s};"
            return line + ("\nconst __m256 vinv = _mm256_set1_ps(inv);" if vec else "")
        line = f"const float sum = {s};"
        return line + ("\nconst __m256 vsum = _mm256_set1_ps(sum);" if vec else "")

    def _norm(self, p: dict[str, Any], e: str, vec: bool) -> str:
        if vec:
            return f"_mm256_mul_ps({e}, vinv)" if p["normalize"] == "reciprocal" else f"_mm256_div_ps({e}, vsum)"
        return f"{e} * inv" if p["normalize"] == "reciprocal" else f"{e} / sum"

    def _row_scalar(self, p: dict[str, Any]) -> str:
        exp = "ks_expf" if p["math"] == "poly" else "std::exp"
        simd = p["vector"] == "omp_simd"
        acc = "float" if simd else "double"   # a double sum is the naive choice; simd reduces in float lanes
        pr = (lambda clause="": f"#pragma omp simd{clause}\n") if simd else (lambda clause="": "")
        if p["passes"] == "three":
            first = f"""\
float m = -FLT_MAX;
{pr(" reduction(max:m)")}for (int64_t j = 0; j < n; ++j)
    m = x[j] > m ? x[j] : m;
{acc} s = 0;
{pr(" reduction(+:s)")}for (int64_t j = 0; j < n; ++j) {{
    const float e = {exp}(x[j] - m);
    y[j] = e;
    s += e;
}}"""
            last = f"{pr()}for (int64_t j = 0; j < n; ++j)\n    y[j] = {self._norm(p, 'y[j]', False)};"
        else:
            if simd:
                first = f"""\
// online over blocks: block max, rescale the running sum once, add the block's exps
float m = -FLT_MAX;
double s = 0;
for (int64_t j0 = 0; j0 < n; j0 += {SIMD_BLOCK}) {{
    const int64_t j1 = std::min<int64_t>(n, j0 + {SIMD_BLOCK});
    float bm = m;
    #pragma omp simd reduction(max:bm)
    for (int64_t j = j0; j < j1; ++j)
        bm = x[j] > bm ? x[j] : bm;
    float bs = 0.0f;
    #pragma omp simd reduction(+:bs)
    for (int64_t j = j0; j < j1; ++j)
        bs += {exp}(x[j] - bm);
    s = s * {exp}(m - bm) + bs;
    m = bm;
}}"""
            else:
                first = f"""\
// online: keep the running max m and the sum of e^(x - m), rescaling the sum when m grows
float m = -FLT_MAX;
double s = 0;
for (int64_t j = 0; j < n; ++j) {{
    if (x[j] > m) {{
        s *= {exp}(m - x[j]);
        m = x[j];
    }}
    s += {exp}(x[j] - m);
}}"""
            last = f"{pr()}for (int64_t j = 0; j < n; ++j)\n    y[j] = {self._norm(p, f'{exp}(x[j] - m)', False)};"
        return f"{first}\n{self._norm_setup(p, 'static_cast<float>(s)', False)}\n{last}"

    def _row_avx2(self, p: dict[str, Any]) -> str:
        U, st, W = p["unroll"], p["store"] == "stream", lanes(p)
        ld = "_mm256_loadu_ps"   # the 8-lane spelling, lane counts W: render() widens it for W = 16
        exp8 = "ks_exp2_8_n" if p["exp"] == "exp2" else "ks_exp8_n"

        pf = (f"{prefetch_lines('nx', W * U, p['prefetch_hint'])}   // next row\n"
              if p["prefetch"] == "next_row" else "")

        def exps(k: int, arg: str, then: str) -> str:
            """k vectors at j: e[u] = arg (uses u), exp of all k interleaved, then `then` per u; the
            main (k = U) step also prefetches the next row when asked."""
            if k == 1:
                one = lambda e: e.replace(f" + {W} * u", "").replace("[u]", "[0]")  # noqa: E731
                code = f"__m256 e[1] = {{{one(arg)}}};\n{exp8}<1>(e);\n{one(then)}"
            else:
                code = (f"__m256 e[{k}];\nfor (int u = 0; u < {k}; ++u) e[u] = {arg};\n{exp8}<{k}>(e);\n"
                        f"for (int u = 0; u < {k}; ++u) {{\n{indent(then, 4)}\n}}")
            return (pf if k == U else "") + code

        # e^(x - m) = 2^(x log2(e) - m log2(e)): one FMA (vml = m log2(e), hoisted) with exp2
        x_minus_max = (f"_mm256_fmsub_ps({ld}(x + j + {W} * u), vl2e, vml)" if p["exp"] == "exp2"
                       else f"_mm256_sub_ps({ld}(x + j + {W} * u), vmax)")
        l2e_line = f"const __m256 vl2e = _mm256_set1_ps({LOG2E});\n" if p["exp"] == "exp2" else ""
        # exp2: the row max in log2 units, rounded once (ml) and used by every exp of the row, tails too
        vml_line = "const __m256 vml = _mm256_set1_ps(ml);\n" if p["exp"] == "exp2" else ""
        tail_exp = f"ks_exp2f(std::fma(x[j], {LOG2E}, -ml))" if p["exp"] == "exp2" else "ks_expf(x[j] - m)"
        if p["passes"] == "three":
            # streaming: exps go to a per-thread scratch row t (stays in cache), so y is written once,
            # by non-temporal stores, and never read (no read-for-ownership traffic)
            e_out = "t" if st else "y"
            max_loop = vec_loop(lambda o, u: f"vm[{u}] = _mm256_max_ps(vm[{u}], {ld}(x + {o}));",
                                "mt = std::max(mt, x[j]);", U, lanes=W)
            exp_loop = vec_loop(None, f"const float e = {tail_exp};\n{e_out}[j] = e;\nst += e;", U,
                                declare=False, lanes=W,
                                group=lambda k: exps(k, x_minus_max, f"_mm256_storeu_ps({e_out} + j + {W} * u, e[u]);\n"
                                                                     "vs[u] = _mm256_add_ps(vs[u], e[u]);"))
            norm_loop = vec_loop(lambda o, u: f"{store8(st)}(y + {o}, {self._norm(p, f'{ld}({e_out} + {o})', True)});",
                                 f"y[j] = {self._norm(p, f'{e_out}[j]', False)};", U, peel_align="y" if st else None,
                                 declare=False, lanes=W)
            return f"""\
// sweep 1: row max, {U} vector accumulator(s) + a scalar one for the tail
__m256 vm[{U}];
for (int u = 0; u < {U}; ++u) vm[u] = _mm256_set1_ps(-FLT_MAX);
float mt = -FLT_MAX;
{max_loop}
const float m = std::max(ks_hmax8({tree('_mm256_max_ps', [f'vm[{u}]' for u in range(U)])}), mt);
// sweep 2: e = exp(x - m) into {e_out}, and the sum of e
const __m256 vmax = _mm256_set1_ps(m);
{l2e_line}{f"const float ml = m * {LOG2E};" + chr(10) if l2e_line else ""}{vml_line}__m256 vs[{U}];
for (int u = 0; u < {U}; ++u) vs[u] = _mm256_setzero_ps();
float st = 0.0f;
{exp_loop}
{self._norm_setup(p, f"ks_hsum8({tree('_mm256_add_ps', [f'vs[{u}]' for u in range(U)])}) + st", True)}
// sweep 3: normalize{' into y' if st else ' in place'}
{norm_loop}"""

        def online_step(k: int) -> str:
            xs = [f"xv[{u}]" for u in range(k)]
            if p["exp"] == "exp2":   # 2^(x log2(e) - bm log2(e)): one FMA per vector, bm log2(e) once
                # The rescale is 2^(old - new) of the *rounded* maxima in log2 units (vmr), so it is
                # exactly 1 where a lane's max held: 2^(vm log2(e) - bml) would carry bml's rounding
                # (1e-5 at |x| ~ 300) into every step and compound it over the row.
                args = (f"const __m256 bml = _mm256_mul_ps(bm, vl2e);\n"
                        f"for (int u = 0; u < {k}; ++u) e[u] = _mm256_fmsub_ps(xv[u], vl2e, bml);\n"
                        f"e[{k}] = _mm256_sub_ps(vmr, bml);   // rescales the lanes whose max grew\n")
            else:
                args = (f"for (int u = 0; u < {k}; ++u) e[u] = _mm256_sub_ps(xv[u], bm);\n"
                        f"e[{k}] = _mm256_sub_ps(vm, bm);   // rescales the lanes whose max grew\n")
            return (f"__m256 xv[{k}], e[{k + 1}];\n"
                    f"for (int u = 0; u < {k}; ++u) xv[u] = {ld}(x + j + {W} * u);\n"
                    f"const __m256 bm = _mm256_max_ps(vm, {tree('_mm256_max_ps', xs)});\n"
                    f"{args}{exp8}<{k + 1}>(e);\n"
                    f"vs = _mm256_fmadd_ps(vs, e[{k}], {tree('_mm256_add_ps', [f'e[{u}]' for u in range(k)])});\n"
                    "vm = bm;" + ("\nvmr = bml;" if p["exp"] == "exp2" else ""))
        if p["exp"] == "exp2":
            # each lane's sum is relative to its own rounded max in log2 units (vmr); take it to the
            # rounded row max sweep 2 divides by (m log2(e), as vml there), so the two sweeps' exps
            # carry the same rounding and it cancels in the normalization
            combine = (f"float ml = m * {LOG2E};\n__m256 r = _mm256_sub_ps(vmr, _mm256_set1_ps(ml));\n"
                       "ks_exp2_8_n<1>(&r);\nfloat s = ks_hsum8(_mm256_mul_ps(vs, r));\n")
            fold = f"""\
for (; j < n; ++j) {{
    if (x[j] > m) {{
        const float nl = x[j] * {LOG2E};
        s *= ks_exp2f(ml - nl);
        m = x[j];
        ml = nl;
    }}
    s += {tail_exp};
}}
"""
        else:
            combine = "float s = ks_hsum8(_mm256_mul_ps(vs, ks_exp8(_mm256_sub_ps(vm, _mm256_set1_ps(m)))));\n"
            fold = """\
for (; j < n; ++j) {
    if (x[j] > m) {
        s *= ks_expf(m - x[j]);
        m = x[j];
    }
    s += ks_expf(x[j] - m);
}
"""
        single = "" if U == 1 else f"for (; j + {W} <= n; j += {W}) {{\n{indent(online_step(1), 4)}\n}}\n"
        write = vec_loop(None, f"y[j] = {self._norm(p, tail_exp, False)};", U,
                         peel_align="y" if st else None, declare=False, lanes=W,
                         group=lambda k: exps(k, x_minus_max,
                                              f"{store8(st)}(y + j + {W} * u, {self._norm(p, 'e[u]', True)});"))
        return f"""\
// sweep 1 (online): per-lane running max vm and sum vs of e^(x - vm); each step of {U} vector(s)
// rescales vs once, so the cost is about 1 + 1/{U} exps per element
__m256 vm = _mm256_set1_ps(-FLT_MAX), vs = _mm256_setzero_ps();
{l2e_line + "__m256 vmr = _mm256_set1_ps(-INFINITY);   // vm in log2 units, as rounded" + chr(10) if l2e_line else ""}int64_t j = 0;
for (; j + {W * U} <= n; j += {W * U}) {{
{indent(online_step(U), 4)}
}}
{single}// combine the lanes, then fold in the scalar tail the same way
float m = ks_hmax8(vm);
{combine}{fold}// sweep 2: y = e^(x - m) normalized
const __m256 vmax = _mm256_set1_ps(m);
{vml_line}{self._norm_setup(p, 's', True)}
{write}"""

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        poly = p["math"] == "poly" or avx2
        stream = p["store"] == "stream" and avx2
        notes = []
        if avx2 and p["math"] == "libm":
            notes.append("// note: the AVX2 path always uses the exp polynomial (libm has no 8-wide expf here)")
        if p["store"] == "stream" and not avx2:
            notes.append("// note: store=stream applies to the AVX2 path only; plain stores here")
        if p["prefetch"] == "next_row" and not avx2:
            notes.append("// note: prefetch=next_row applies to the AVX2 path only")
        for axis, value in (("exp", "exp2"), ("simd_width", 16)):
            if p[axis] == value and not avx2:
                notes.append(f"// note: {axis}={value} applies to the AVX2 path only")
        wide = avx2 and lanes(p) == 16
        widen = widener(p)
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if wide:
            src.append(AVX512_GUARD)
        if p["vector"] == "omp_simd" and poly:
            src.append(NO_TRAPPING_MATH)
        if poly:
            src.append(EXP_SCALAR)
        if avx2:
            src += [widen(EXP_AVX2), *([EXP2_SCALAR, widen(EXP2_AVX2)] if p["exp"] == "exp2" else []),
                    HREDUCE_AVX512 if wide else HREDUCE_AVX2]
        row = widen(self._row_avx2(p)) if avx2 else self._row_scalar(p)
        prefetch = avx2 and p["prefetch"] == "next_row"
        scratch = stream and p["passes"] == "three"
        extra = (", float* t" if scratch else "") + (", const float* nx" if prefetch else "")
        src.append(f"static void softmax_row(const float* x, float* y, int64_t n{extra}) {{\n{indent(row, 4)}\n}}\n")
        threaded = p["threads"] == "rows"
        call = f"softmax_row(x + i * N, y + i * N, N{', t' if scratch else ''}{next_row_arg(prefetch)});"
        if scratch:   # one cache-resident row of exps per thread
            ld = "(N + 15) / 16 * 16"
            loops = (f"const int64_t ld = {ld};\n"
                     f"float* scratch = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * ld"
                     f"{' * omp_get_max_threads()' if threaded else ''}));\n"
                     "if (!scratch) return 2;\n")
            if threaded:
                inner = (f"float* t = scratch + omp_get_thread_num() * ld;\n"
                         f"{omp_for(p['schedule'], p['chunk'], parallel=False)}\n"
                         f"for (int64_t i = 0; i < M; ++i)\n    {call}\n"
                         "_mm_sfence();  // each thread fences its streaming stores")
                loops += f"#pragma omp parallel\n{{\n{indent(inner, 4)}\n}}\n"
            else:
                loops += (f"float* t = scratch;\nfor (int64_t i = 0; i < M; ++i)\n    {call}\n"
                          "_mm_sfence();  // order the streaming stores before returning\n")
            loops += "std::free(scratch);"
        else:
            loops = rows_loop(call, threaded, p["schedule"], p["chunk"], stream)
        body = f"""\
{check_f32(1, [2])}
const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
const float* x = static_cast<const float*>(inputs[0].data);
float* y = static_cast<float*>(output->data);
{loops}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
