"""cross_entropy: loss[i] = logsumexp(logits[i, :]) - logits[i, targets[i]], logits [M, V] fp32,
targets int64 [M] (2nd input, KS_I64), loss [M] (reduction="none").

One exp per logit and a read of the whole logits matrix: memory-bound on paper, but on a
2-core AVX2 machine the exps cost about as much as the DRAM reads, so the exp's speed matters
as much as the memory pattern. The naive kernel mirrors eager (log_softmax, then nll_loss): it
materializes the full [M, V] matrix of log-probabilities in a temporary and then gathers one
entry per row. The space covers computing only the row statistics (max and sum of e^(x - max):
two sweeps of a row, the second from L2, or one online sweep with a per-lane running max and a
rescale only when a lane's max grows), OpenMP over rows or over vocabulary slices (every thread
takes a slice of every row and the per-slice (max, sum) pairs are merged at the end: all cores
stay busy when M is small), `omp simd` or AVX2 with the exp polynomial and several accumulators
(or, with simd_width = 16, the same code on AVX-512F zmm vectors: half the exp instructions).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import AVX512, SIMD_WIDTH, Axis, Move, TemplateFamily
from agents.templates.snippets import (AVX512_GUARD, EXP2_AVX2, EXP_AVX2, EXP_SCALAR, HREDUCE_AVX2, HREDUCE_AVX512,
                                       INCLUDES, LOG2E, NO_TRAPPING_MATH, indent, lanes, omp_for, prefetch_lines, tree,
                                       vec_loop, widener)

# e^(x - max) for logsumexp, where x - max <= 0 always: one FMA takes x to log2 units with the max
# folded in (t = x*log2(e) - max*log2(e)) and the shared exp2 polynomial (snippets.EXP2_AVX2) does
# the rest. The sum's relative error is the loss's absolute error: < 1e-6 here, against atol 1e-5.

PREFETCH_AHEAD = 1024   # floats (4 KB) ahead of the sweep: measured best of 512..2048 here

SIMD_BLOCK = 512   # elements per block of the omp-simd online sweep (2 KB, stays in L1)
IGNORE_INDEX = -100   # F.cross_entropy's default: such a row's loss is 0

# "did any lane's max grow?": a movemask of a compare on AVX2, a compare into a mask register on
# AVX-512 (the one spelling of the online sweep that zmm() cannot derive)
ANY_GT = {8: "static inline bool ks_any_gt(__m256 a, __m256 b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0; }\n",
          16: "static inline bool ks_any_gt(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }\n"}


@register
class CrossEntropyTemplates(TemplateFamily):
    family = "cross_entropy"
    axes = [
        Axis(name="passes", values=["logprobs", "two", "online"], default="logprobs",
             doc="logprobs: write log_softmax for the whole matrix, then gather (like eager); two: max "
                 "sweep + sum-of-exp sweep per row (the second from cache); online: one sweep, running max"),
        Axis(name="threads", values=["none", "rows", "vocab"], default="none",
             doc="OpenMP over rows, or over vocabulary slices of every row with a final (max, sum) merge"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops (double sum), `#pragma omp simd` reductions, or AVX2/FMA intrinsics "
                 "(always the exp polynomial)"),
        Axis(name="math", values=["libm", "poly"], default="libm",
             doc="libm expf, or the branch-free Cephes-style polynomial (vectorizable)"),
        Axis(name="exp", values=["cephes", "exp2"], default="cephes",
             doc="AVX2 path: the shared Cephes exp (degree 7, 1.5 ulp), or exp2 with the max folded into "
                 "one FMA and a degree-5 polynomial (6 ulp near the max, ~35% fewer FMA-pipe ops)"),
        Axis(name="sweep", values=["linear", "segments"], default="linear",
             doc="AVX2 path: a step's `unroll` vectors are adjacent (one sequential stream per core), or one "
                 "from each of `unroll` equal segments of the row (that many concurrent streams)"),
        Axis(name="prefetch", values=["none", "ahead"], default="none",
             doc="AVX2 path: software-prefetch the logits 4 KB ahead of the sweep that reads them from "
                 "memory (one core's hardware prefetcher alone leaves DRAM bandwidth unused)"),
        Axis(name="unroll", values=[1, 2, 4], default=4, kind="tunable",
             doc="AVX2: vectors (independent accumulators, interleaved exps, streams) per loop step"),
        SIMD_WIDTH,
    ]
    moves = [
        Move(name="no-logprobs", description="compute only each row's max and sum of exps (no [M, V] "
             "log-prob temporary): two sweeps per row, the second from cache", assigns={"passes": "two"},
             prior_gain=2.0),
        Move(name="online", description="online logsumexp: running max and rescaled sum in one sweep",
             assigns={"passes": "online"}, prior_gain=1.3),
        Move(name="omp-rows", description="OpenMP parallel for over rows (tokens)", assigns={"threads": "rows"},
             prior_gain=1.8),
        Move(name="omp-vocab", description="OpenMP over vocabulary slices of every row, merging the "
             "per-slice (max, sum) pairs (all cores busy even with few rows)", assigns={"threads": "vocab"},
             prior_gain=1.6),
        Move(name="poly-exp", description="branch-free exp polynomial instead of libm expf",
             assigns={"math": "poly"}, prior_gain=1.3),
        Move(name="vec-omp-simd", description="#pragma omp simd max/sum reductions over the exp polynomial",
             assigns={"vector": "omp_simd", "math": "poly"}, prior_gain=2.0),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics with a vectorized exp and several accumulators",
             assigns={"vector": "avx2", "math": "poly"}, prior_gain=2.5),
        Move(name="online-avx2", description="what a kernel engineer writes first: one online-logsumexp "
             "sweep per row in AVX2 with a vectorized exp, no log-prob temporary",
             assigns={"passes": "online", "vector": "avx2", "math": "poly"}, prior_gain=4.0),
        Move(name="exp2-fold", description="cheaper exp for x - max <= 0: one FMA to log2 units with the max "
             "folded in, lower clamp only, degree-5 2^f polynomial (the exps are the bottleneck)",
             assigns={"exp": "exp2"}, prior_gain=1.3, requires={"vector": "avx2"}),
        Move(name="multi-stream", description="take the vectors of a step from separate segments of the row: "
             "several concurrent DRAM streams per core instead of one", assigns={"sweep": "segments"},
             prior_gain=1.2, requires={"vector": "avx2"}),
        Move(name="prefetch-ahead", description="software-prefetch the logits 4 KB ahead of the sweep",
             assigns={"prefetch": "ahead"}, prior_gain=1.15, requires={"vector": "avx2"}),
        AVX512,
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = [{"logprobs": "log-prob matrix then gather", "two": "max + sum-of-exp sweeps per row",
                  "online": "online logsumexp, one sweep"}[p["passes"]],
                 {"none": "single thread", "rows": "OpenMP over rows",
                  "vocab": "OpenMP over vocabulary slices + merge"}[p["threads"]],
                 {"scalar": "scalar loops", "omp_simd": "omp simd",
                  "avx2": f"{'AVX2' if lanes(p) == 8 else 'AVX-512'} x{p['unroll']}"}[p["vector"]],
                 ("exp2 polynomial, max folded" if p["exp"] == "exp2" else "exp polynomial")
                 if p["math"] == "poly" or p["vector"] == "avx2" else "libm exp"]
        if p["exp"] == "exp2" and p["vector"] != "avx2":
            parts[-1] += " (exp=exp2 applies to the AVX2 path only)"
        if p["sweep"] == "segments":
            parts.append(f"{p['unroll']} streams per row" + ("" if p["vector"] == "avx2" else " (AVX2 path only: ignored)"))
        if p["prefetch"] == "ahead":
            parts.append("prefetch 4 KB ahead" + ("" if p["vector"] == "avx2" else " (AVX2 path only: ignored)"))
        return "; ".join(parts)

    # --- segment statistics: m = max(x[0:n]), s = sum e^(x - m) ---------------------------------

    def _stats_scalar(self, p: dict[str, Any]) -> str:
        exp = "ks_expf" if p["math"] == "poly" else "std::exp"
        if p["vector"] == "omp_simd":
            if p["passes"] == "online":
                return f"""\
// online over blocks: block max, rescale the running sum once per block, add the block's exps
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
}}
*pm = m;
*ps = static_cast<float>(s);"""
            return f"""\
float m = -FLT_MAX;
#pragma omp simd reduction(max:m)
for (int64_t j = 0; j < n; ++j)
    m = x[j] > m ? x[j] : m;
float s = 0.0f;
#pragma omp simd reduction(+:s)
for (int64_t j = 0; j < n; ++j)
    s += {exp}(x[j] - m);
*pm = m;
*ps = s;"""
        if p["passes"] == "online":
            return f"""\
// online: running max m and the sum of e^(x - m), rescaled when m grows
float m = -FLT_MAX;
double s = 0;
for (int64_t j = 0; j < n; ++j) {{
    if (x[j] > m) {{
        s *= {exp}(m - x[j]);
        m = x[j];
    }}
    s += {exp}(x[j] - m);
}}
*pm = m;
*ps = static_cast<float>(s);"""
        return f"""\
float m = -FLT_MAX;
for (int64_t j = 0; j < n; ++j)
    m = x[j] > m ? x[j] : m;
double s = 0;
for (int64_t j = 0; j < n; ++j)
    s += {exp}(x[j] - m);
*pm = m;
*ps = static_cast<float>(s);"""

    def _stats_avx2(self, p: dict[str, Any]) -> str:
        U, ld, L = p["unroll"], "_mm256_loadu_ps", lanes(p)   # written for 8 lanes, zmm() widens
        hsum = lambda v: f"ks_hsum8({tree('_mm256_add_ps', [f'{v}[{u}]' for u in range(U)])})"  # noqa: E731
        exp2 = p["exp"] == "exp2"
        seg = p["sweep"] == "segments" and U > 1   # one stream is the linear sweep
        addr = (lambda u: f"x + j + {u} * seg") if seg else (lambda u: f"x + j + {L * u}")  # noqa: E731
        uaddr = "x + j + u * seg" if seg else f"x + j + {L} * u"     # inside `for (int u ...)` loops
        if p["prefetch"] != "ahead":
            pf = ""
        elif seg:
            pf = "\n".join(prefetch_lines(f"x + {u} * seg + {PREFETCH_AHEAD}", L, "T0") for u in range(U)) + \
                "   // 4 KB ahead in each stream\n"
        else:
            pf = f"{prefetch_lines(f'x + {PREFETCH_AHEAD}', L * U, 'T0')}   // 4 KB ahead\n"

        def main_loop(body_u: str, body_1: str, declare: bool = True) -> str:
            """The vector part of a sweep over x[0:n): steps of U vectors (adjacent, or one from each
            of U segments), then single vectors; j ends where the scalar tail starts."""
            head = "int64_t j = 0;" if declare else "j = 0;"
            single = f"for (; j + {L} <= n; j += {L}) {{\n{indent(body_1, 4)}\n}}"
            if seg:
                return (f"{head}\n{{\n"
                        f"    const int64_t seg = n / {L * U} * {L};   // {U} streams of seg floats (a multiple of {L})\n"
                        f"    for (; j < seg; j += {L}) {{\n{indent(body_u, 8)}\n    }}\n}}\n"
                        f"j = n / {L * U} * {L * U};   // what the streams covered\n{single}")
            if U == 1:
                return f"{head}\n{single}"
            return f"{head}\nfor (; j + {L * U} <= n; j += {L * U}) {{\n{indent(body_u, 4)}\n}}\n{single}"

        def exp_of(k: int, xv: str) -> str:
            """e[0:k] = e^(xv(u) - vmax), k vectors interleaved (exp2: vml = vmax * log2(e))."""
            arg = (f"_mm256_fmsub_ps({xv}, vl2e, vml)" if exp2 else f"_mm256_sub_ps({xv}, vmax)")
            return (f"__m256 e[{k}];\nfor (int u = 0; u < {k}; ++u) e[u] = {arg};\n"
                    f"{'ks_exp2_8_n' if exp2 else 'ks_exp8_n'}<{k}>(e);\n")

        l2e = (f"const __m256 vl2e = _mm256_set1_ps({LOG2E});\n"
               "// e^(x - m) = 2^(x*log2(e) - m*log2(e)): one FMA per vector\n") if exp2 else ""
        order = (f"// {U} concurrent streams: the step's vectors come from {U} equal segments of the range\n"
                 if seg and U > 1 else "")

        if p["passes"] != "online":
            max_u = pf + "\n".join(f"vm[{u}] = _mm256_max_ps(vm[{u}], {ld}({addr(u)}));" for u in range(U))
            max_1 = f"vm[0] = _mm256_max_ps(vm[0], {ld}(x + j));"
            sum_u = exp_of(U, f"{ld}({uaddr})") + f"for (int u = 0; u < {U}; ++u) vs[u] = _mm256_add_ps(vs[u], e[u]);"
            sum_1 = exp_of(1, f"{ld}(x + j)") + "vs[0] = _mm256_add_ps(vs[0], e[0]);"
            return f"""\
{order}// sweep 1: max, {U} vector accumulator(s) + a scalar one for the tail
__m256 vm[{U}];
for (int u = 0; u < {U}; ++u) vm[u] = _mm256_set1_ps(-FLT_MAX);
float mt = -FLT_MAX;
{main_loop(max_u, max_1)}
for (; j < n; ++j)
    mt = std::max(mt, x[j]);
const float m = std::max(ks_hmax8({tree('_mm256_max_ps', [f'vm[{u}]' for u in range(U)])}), mt);
// sweep 2 (the segment is in L1/L2 now): sum of e^(x - m), {U} accumulator(s), interleaved exps
const __m256 vmax = _mm256_set1_ps(m);
{l2e + "const __m256 vml = _mm256_mul_ps(vmax, vl2e);" + chr(10) if exp2 else ""}__m256 vs[{U}];
for (int u = 0; u < {U}; ++u) vs[u] = _mm256_setzero_ps();
float st = 0.0f;
{main_loop(sum_u, sum_1, declare=False)}
for (; j < n; ++j)
    st += ks_expf(x[j] - m);
*pm = m;
*ps = {hsum('vs')} + st;"""

        def step(k: int) -> str:
            xs = [f"xv[{u}]" for u in range(k)]
            load = uaddr if k == U else "x + j"
            return ((pf if k == U else "") + f"__m256 xv[{k}];\nfor (int u = 0; u < {k}; ++u) xv[u] = {ld}({load});\n"
                    f"const __m256 bm = _mm256_max_ps(vmax, {tree('_mm256_max_ps', xs)});\n"
                    "// rescale only when some lane's max grew: after the first few steps it almost never does\n"
                    "if (ks_any_gt(bm, vmax)) {\n"
                    "    const __m256 r = ks_exp8(_mm256_sub_ps(vmax, bm));\n"
                    f"    for (int u = 0; u < {U}; ++u) vs[u] = _mm256_mul_ps(vs[u], r);\n"
                    "    vmax = bm;\n" + ("    vml = _mm256_mul_ps(vmax, vl2e);\n" if exp2 else "") + "}\n"
                    + exp_of(k, "xv[u]") +
                    f"for (int u = 0; u < {k}; ++u) vs[u] = _mm256_add_ps(vs[u], e[u]);")
        return f"""\
{order}// one sweep: per-lane running max vmax and {U} sum accumulator(s) of e^(x - vmax)
__m256 vmax = _mm256_set1_ps(-FLT_MAX), vs[{U}];
{l2e + "__m256 vml = _mm256_mul_ps(vmax, vl2e);" + chr(10) if exp2 else ""}for (int u = 0; u < {U}; ++u) vs[u] = _mm256_setzero_ps();
{main_loop(step(U), step(1))}
// combine the lanes, then fold in the scalar tail the same way
float m = ks_hmax8(vmax);
float s = ks_hsum8(_mm256_mul_ps({tree('_mm256_add_ps', [f'vs[{u}]' for u in range(U)])}, ks_exp8(_mm256_sub_ps(vmax, _mm256_set1_ps(m)))));
for (; j < n; ++j) {{
    if (x[j] > m) {{
        s *= ks_expf(m - x[j]);
        m = x[j];
    }}
    s += ks_expf(x[j] - m);
}}
*pm = m;
*ps = s;"""

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        poly = p["math"] == "poly" or avx2
        notes = []
        if avx2 and p["math"] == "libm":
            notes.append("// note: the AVX2 path always uses the exp polynomial (libm has no 8-wide expf here)")
        if lanes(p) == 16 and not avx2:
            notes.append("// note: simd_width=16 applies to the intrinsics path only")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if p["vector"] == "omp_simd" and poly:
            src.append(NO_TRAPPING_MATH)
        if poly:
            src.append(EXP_SCALAR)
        wide = widener(p)
        if avx2:
            src += ([AVX512_GUARD, HREDUCE_AVX512] if lanes(p) == 16 else [HREDUCE_AVX2]) + [wide(EXP_AVX2)]
            if p["exp"] == "exp2":
                src.append(wide(EXP2_AVX2))
            if p["passes"] == "online":
                src.append(ANY_GT[lanes(p)])
        stats = wide(self._stats_avx2(p)) if avx2 else self._stats_scalar(p)
        src.append("// max m of x[0:n) and s = sum of e^(x - m)\n"
                   f"static void seg_stats(const float* x, int64_t n, float* pm, float* ps) {{\n{indent(stats, 4)}\n}}\n")
        threads, sched = p["threads"], ("static", 0)   # rows cost the same: static
        lse = "m[i] + std::log(static_cast<double>(s[i]))"
        if threads == "vocab":
            rows = f"""\
// every thread takes the same vocabulary slice of every row (slices start at multiples of 8), writes
// its (max, sum) pairs, and after the barrier the pairs of each row are merged
const int T = omp_get_max_threads();
float* part = static_cast<float*>(std::malloc(sizeof(float) * 2 * T * M));
if (!part) {{ std::free(m); return 2; }}
#pragma omp parallel num_threads(T)
{{
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t j0 = V * tid / nt / 8 * 8, j1 = tid + 1 == nt ? V : V * (tid + 1) / nt / 8 * 8;
    for (int64_t i = 0; i < M; ++i)
        seg_stats(x + i * V + j0, j1 - j0, part + 2 * (tid * M + i), part + 2 * (tid * M + i) + 1);
    #pragma omp barrier
    #pragma omp for schedule(static)
    for (int64_t i = 0; i < M; ++i) {{
        float mi = -FLT_MAX;
        for (int u = 0; u < nt; ++u) mi = std::max(mi, part[2 * (u * M + i)]);
        double si = 0;
        for (int u = 0; u < nt; ++u) si += part[2 * (u * M + i) + 1] * std::exp(static_cast<double>(part[2 * (u * M + i)]) - mi);
        m[i] = mi;
        s[i] = si;
    }}
}}
std::free(part);"""
        else:
            head = f"{omp_for(*sched)}\n" if threads == "rows" else ""
            rows = (f"{head}for (int64_t i = 0; i < M; ++i) {{\n"
                    "    float mi, si;\n    seg_stats(x + i * V, V, &mi, &si);\n"
                    "    m[i] = mi;\n    s[i] = si;\n}")
        par = f"{omp_for(*sched)}\n" if threads != "none" else ""
        if p["passes"] == "logprobs":
            finish = f"""\
// log_softmax for the whole matrix into a temporary (eager's log_softmax), then the gather (nll_loss)
float* lp = static_cast<float*>(std::malloc(sizeof(float) * M * V));
if (!lp) {{ std::free(m); return 2; }}
{par}for (int64_t i = 0; i < M; ++i) {{
    const float l = static_cast<float>({lse});
    for (int64_t j = 0; j < V; ++j)
        lp[i * V + j] = x[i * V + j] - l;
}}
for (int64_t i = 0; i < M; ++i)
    loss[i] = t[i] == {IGNORE_INDEX} ? 0.0f : -lp[i * V + t[i]];
std::free(lp);"""
        else:
            finish = f"""\
for (int64_t i = 0; i < M; ++i)
    loss[i] = t[i] == {IGNORE_INDEX} ? 0.0f : static_cast<float>((static_cast<double>(m[i]) - x[i * V + t[i]]) + std::log(static_cast<double>(s[i])));"""
        body = f"""\
if (n_inputs < 2 || output->dtype != KS_F32) return 1;
if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2 || inputs[1].dtype != KS_I64 || inputs[1].ndim != 1) return 1;
const int64_t M = inputs[0].shape[0], V = inputs[0].shape[1];
if (inputs[1].shape[0] != M || output->ndim != 1 || output->shape[0] != M) return 1;
const float* x = static_cast<const float*>(inputs[0].data);
const int64_t* t = static_cast<const int64_t*>(inputs[1].data);
float* loss = static_cast<float*>(output->data);
for (int64_t i = 0; i < M; ++i)   // a target outside [0, V) is an error (torch raises), except ignore_index
    if ((t[i] < 0 || t[i] >= V) && t[i] != {IGNORE_INDEX}) return 3;
// per row: m = max, s = sum of e^(x - m); loss = m + log(s) - x[target]
float* m = static_cast<float*>(std::malloc(sizeof(float) * 2 * M));
if (!m) return 2;
float* s = m + M;
{rows}
{finish}
std::free(m);
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
