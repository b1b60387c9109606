"""layernorm: y = (x - mean) / sqrt(var + 1e-5) * weight + bias over the last dim of x [M, N];
weight [N] and bias [N] are the 2nd and 3rd inputs (state_dict order).

Memory-bound. The naive kernel makes two sweeps over the whole matrix: every row's mean and
1/std first (scalar loops, double sums, two passes over each row: mean, then the squared
deviations), then every output, so x is read from memory twice once it exceeds the cache. The
space covers the per-row form (statistics, then normalize while the row is still in L1/L2),
OpenMP over rows, `omp simd` or AVX2/FMA with several accumulators, streaming stores for y,
prefetch of the next row, and the statistics either as two passes over the row (mean, then
squared deviations) or as one numerically sound pass (Welford per lane merged by Chan's formula).
The unsound one-pass form var = E[x^2] - E[x]^2 is deliberately not offered: it cancels
catastrophically when |mean| >> std.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.snippets import (HREDUCE_AVX2, INCLUDES, check_f32, indent, next_row_arg, prefetch_lines,
                                       rows_loop, store8, tree, vec_loop)

EPS = "1e-5"
CHAN_BLOCK = 256   # elements per block of the omp-simd one-pass statistics (1 KB, re-read from L1)


@register
class LayerNormTemplates(TemplateFamily):
    family = "layernorm"
    axes = [
        Axis(name="fuse", values=["two_sweeps", "per_row"], default="two_sweeps",
             doc="two_sweeps: all row statistics first, then all outputs; per_row: statistics then normalize, "
                 "row in cache"),
        Axis(name="stats", values=["two_pass", "one_pass"], default="two_pass",
             doc="two_pass: mean, then sum of squared deviations (two reads of the row); one_pass: Welford "
                 "(scalar, AVX2 per lane) or 256-element blocks merged with Chan's formula (omp simd)"),
        Axis(name="threads", values=["none", "rows"], default="none", doc="OpenMP parallel for over rows"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops (double sums), `#pragma omp simd` (float lanes), or AVX2/FMA intrinsics"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="non-temporal stores for y (AVX2 path only)"),
        Axis(name="prefetch", values=["none", "next_row"], default="none",
             doc="AVX2 path: prefetch the next row while normalizing this one (overlaps its DRAM read)"),
        Axis(name="unroll", values=[1, 2, 4], default=1, kind="tunable",
             doc="AVX2: vectors (independent accumulators) per loop step"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
        Axis(name="chunk", values=[0, 4, 16], default=0, kind="tunable",
             doc="OpenMP chunk in rows; 0 = the schedule's default"),
    ]
    moves = [
        Move(name="fuse-per-row", description="normalize each row right after its statistics, while the row is "
             "in cache (one read of x from memory)", assigns={"fuse": "per_row"}, prior_gain=1.5),
        Move(name="omp-rows", description="OpenMP parallel for over rows", assigns={"threads": "rows"},
             prior_gain=1.7),
        Move(name="vec-omp-simd", description="#pragma omp simd with float sum reductions",
             assigns={"vector": "omp_simd"}, prior_gain=1.5),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics with multiple accumulators",
             assigns={"vector": "avx2"}, prior_gain=1.8),
        Move(name="welford-one-pass", description="row statistics in one numerically sound pass (Welford / "
             "Chan merge) instead of mean then squared deviations", assigns={"stats": "one_pass"}, prior_gain=1.1),
        Move(name="nt-stores", description="non-temporal (streaming) stores for y",
             assigns={"store": "stream"}, prior_gain=1.15, requires={"vector": "avx2"}),
        Move(name="prefetch-next-row", description="software-prefetch the next row while normalizing this one",
             assigns={"prefetch": "next_row"}, prior_gain=1.1, requires={"vector": "avx2"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["per row, row kept in cache" if p["fuse"] == "per_row" else "two sweeps over the matrix",
                 {"two_pass": "two-pass mean/variance", "one_pass": "one-pass Welford/Chan statistics"}[p["stats"]],
                 "OpenMP over rows" if p["threads"] == "rows" else "single thread",
                 {"scalar": "scalar loops", "omp_simd": "omp simd", "avx2": f"AVX2 x{p['unroll']}"}[p["vector"]]]
        if p["store"] == "stream" and p["vector"] == "avx2":
            parts.append("streaming stores")
        if p["prefetch"] == "next_row" and p["vector"] == "avx2":
            parts.append("prefetch next row")
        return "; ".join(parts)

    # --- row statistics: mean and 1/sqrt(var + eps) -------------------------------------------

    def _stats_scalar(self, p: dict[str, Any]) -> str:
        if p["stats"] == "two_pass":
            return """\
double s = 0.0;
for (int64_t j = 0; j < n; ++j)
    s += x[j];
const double m = s / n;
double q = 0.0;
for (int64_t j = 0; j < n; ++j) {
    const double d = x[j] - m;
    q += d * d;
}"""
        return """\
// Welford: running mean and sum of squared deviations, one read of x, no cancellation
double m = 0.0, q = 0.0;
for (int64_t j = 0; j < n; ++j) {
    const double d = x[j] - m;
    m += d / static_cast<double>(j + 1);
    q += d * (x[j] - m);
}"""

    def _stats_simd(self, p: dict[str, Any]) -> str:
        if p["stats"] == "two_pass":
            return """\
float s = 0.0f;
#pragma omp simd reduction(+:s)
for (int64_t j = 0; j < n; ++j)
    s += x[j];
const float m = s / n;
float q = 0.0f;
#pragma omp simd reduction(+:q)
for (int64_t j = 0; j < n; ++j) {
    const float d = x[j] - m;
    q += d * d;
}"""
        return f"""\
// one read of the row from memory: per {CHAN_BLOCK}-element block (1 KB, stays in L1) the block mean
// and squared deviations (two vectorized passes), merged into the running (count, mean, M2) with
// Chan's formula in double: no E[x^2] - E[x]^2 cancellation anywhere
double m = 0.0, q = 0.0;
int64_t cnt = 0;
for (int64_t j0 = 0; j0 < n; j0 += {CHAN_BLOCK}) {{
    const int64_t j1 = std::min<int64_t>(n, j0 + {CHAN_BLOCK});
    const int64_t nb = j1 - j0;
    float bs = 0.0f;
    #pragma omp simd reduction(+:bs)
    for (int64_t j = j0; j < j1; ++j)
        bs += x[j];
    const float bm = bs / nb;
    float bq = 0.0f;
    #pragma omp simd reduction(+:bq)
    for (int64_t j = j0; j < j1; ++j) {{
        const float d = x[j] - bm;
        bq += d * d;
    }}
    const double tot = static_cast<double>(cnt + nb), delta = bm - m;
    m += delta * (nb / tot);
    q += bq + delta * delta * (static_cast<double>(cnt) * nb / tot);
    cnt += nb;
}}"""

    def _stats_avx2(self, p: dict[str, Any]) -> str:
        U = p["unroll"]
        ld = "_mm256_loadu_ps"
        if p["stats"] == "two_pass":
            zero = lambda a: f"__m256 {', '.join(f'{a}{u} = _mm256_setzero_ps()' for u in range(U))};"  # noqa: E731
            sum_loop = vec_loop(lambda o, u: f"a{u} = _mm256_add_ps(a{u}, {ld}(x + {o}));", "ts += x[j];", U)
            dev_loop = vec_loop(lambda o, u: f"const __m256 d{u} = _mm256_sub_ps({ld}(x + {o}), vm);\n"
                                             f"q{u} = _mm256_fmadd_ps(d{u}, d{u}, q{u});",
                                "const float d = x[j] - mf;\ntq += d * d;", U, declare=False)
            return f"""\
// pass 1: mean, {U} vector accumulator(s) + a scalar one for the tail
{zero('a')}
float ts = 0.0f;
{sum_loop}
const float mf = (ks_hsum8({tree('_mm256_add_ps', [f'a{u}' for u in range(U)])}) + ts) / n;
const double m = mf;
// pass 2: squared deviations from the mean (the row is in L1/L2 now)
const __m256 vm = _mm256_set1_ps(mf);
{zero('q')}
float tq = 0.0f;
{dev_loop}
const double q = ks_hsum8({tree('_mm256_add_ps', [f'q{u}' for u in range(U)])}) + tq;"""
        L = 8 * U
        return f"""\
// one read of the row: Welford in each of the {L} lanes ({U} vector(s) of 8; every lane sees the same
// count k, so 1/k is one scalar per step), then the lanes merged with Chan's formula and the
// tail (< {L} elements) folded in by scalar Welford, all in double
__m256 mu[{U}], m2[{U}];
for (int u = 0; u < {U}; ++u) mu[u] = m2[u] = _mm256_setzero_ps();
int64_t j = 0, k = 0;
for (; j + {L} <= n; j += {L}) {{
    const __m256 r = _mm256_set1_ps(1.0f / static_cast<float>(++k));
    for (int u = 0; u < {U}; ++u) {{
        const __m256 v = {ld}(x + j + 8 * u);
        const __m256 d = _mm256_sub_ps(v, mu[u]);
        mu[u] = _mm256_fmadd_ps(d, r, mu[u]);
        m2[u] = _mm256_fmadd_ps(d, _mm256_sub_ps(v, mu[u]), m2[u]);
    }}
}}
double m = 0.0, q = 0.0, cnt = 0.0;
if (k > 0) {{
    alignas(32) float lm[{L}], lq[{L}];
    for (int u = 0; u < {U}; ++u) {{
        _mm256_store_ps(lm + 8 * u, mu[u]);
        _mm256_store_ps(lq + 8 * u, m2[u]);
    }}
    for (int l = 0; l < {L}; ++l) m += lm[l];
    m /= {L};
    for (int l = 0; l < {L}; ++l) {{   // equal counts k: M2 = sum M2_l + k * sum (mean_l - mean)^2
        const double d = lm[l] - m;
        q += lq[l] + static_cast<double>(k) * d * d;
    }}
    cnt = static_cast<double>(k) * {L};
}}
for (; j < n; ++j) {{
    cnt += 1.0;
    const double d = x[j] - m;
    m += d / cnt;
    q += d * (x[j] - m);
}}"""

    def _row_stats(self, p: dict[str, Any]) -> str:
        body = {"scalar": self._stats_scalar, "omp_simd": self._stats_simd, "avx2": self._stats_avx2}[p["vector"]](p)
        body += (f"\n*mean = static_cast<float>(m);\n"
                 f"*rstd = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q) / n + {EPS}));   "
                 "// biased variance; eps inside the sqrt")
        return ("// mean and 1 / sqrt(var + eps) of one row\n"
                "static inline void row_stats(const float* x, int64_t n, float* mean, float* rstd) {\n"
                f"{indent(body, 4)}\n}}\n")

    # --- normalize one row ----------------------------------------------------------------------

    def _norm_row(self, p: dict[str, Any]) -> str:
        scalar = "y[j] = (x[j] - m) * r * w[j] + b[j];"
        U = p["unroll"]
        prefetch = p["vector"] == "avx2" and p["prefetch"] == "next_row"
        if p["vector"] == "avx2":
            st = p["store"] == "stream"
            ld = "_mm256_loadu_ps"
            one = lambda o: (f"{store8(st)}(y + {o}, _mm256_fmadd_ps("  # noqa: E731
                             f"_mm256_mul_ps(_mm256_sub_ps({ld}(x + {o}), vm), vr), {ld}(w + {o}), {ld}(b + {o})));")
            pf = f"{prefetch_lines('nx', 8 * U, 'T0')}   // next row\n" if prefetch else ""
            body = "const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);\n" + vec_loop(
                None, scalar, U, peel_align="y" if st else None,
                group=lambda k: (pf if k == U else "") + "\n".join(one(f"j + {8 * u}" if u else "j") for u in range(k)))
        else:
            simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
            body = f"{simd}for (int64_t j = 0; j < n; ++j)\n    {scalar}"
        nx = ", const float* nx" if prefetch else ""
        return ("// y = (x - mean) * rstd * weight + bias\n"
                "static inline void norm_row(const float* x, const float* w, const float* b, float m, float r, "
                f"float* y, int64_t n{nx}) {{\n{indent(body, 4)}\n}}\n")

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        stream = p["store"] == "stream" and avx2
        threaded = p["threads"] == "rows"
        notes = []
        if p["store"] == "stream" and not avx2:
            notes.append("store=stream applies to the AVX2 path only: plain stores here")
        if p["prefetch"] == "next_row" and not avx2:
            notes.append("prefetch=next_row applies to the AVX2 path only")
        # notes ride on the strategy line: axes the code ignores change comments only (code_key)
        strategy = self.strategy(p) + "".join(f" (note: {n})" for n in notes)
        src = [self.header(p, strategy), "", INCLUDES]
        if avx2:
            src.append(HREDUCE_AVX2)
        src += [self._row_stats(p), self._norm_row(p)]
        sched = (p["schedule"], p["chunk"])
        nx = next_row_arg(avx2 and p["prefetch"] == "next_row")
        if p["fuse"] == "per_row":
            call = ("{ float m, r; row_stats(x + i * N, N, &m, &r); "
                    f"norm_row(x + i * N, w, b, m, r, y + i * N, N{nx}); }}")
            loops = rows_loop(call, threaded, *sched, stream)
        else:
            norm = f"norm_row(x + i * N, w, b, st[2 * i], st[2 * i + 1], y + i * N, N{nx});"
            loops = ("// sweep 1: every row's mean and 1/std; sweep 2: the outputs (x is read twice)\n"
                     "float* st = static_cast<float*>(std::malloc(sizeof(float) * 2 * M));\n"
                     "if (!st) return 2;\n"
                     f"{rows_loop('row_stats(x + i * N, N, st + 2 * i, st + 2 * i + 1);', threaded, *sched, False)}\n"
                     f"{rows_loop(norm, threaded, *sched, stream)}\n"
                     "std::free(st);")
        body = f"""\
{check_f32(3, [2, 1, 1])}
const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
if (inputs[1].shape[0] != N || inputs[2].shape[0] != N) return 1;
const float* x = static_cast<const float*>(inputs[0].data);
const float* w = static_cast<const float*>(inputs[1].data);
const float* b = static_cast<const float*>(inputs[2].data);
float* y = static_cast<float*>(output->data);
{loops}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
