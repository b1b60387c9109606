"""colsum: y[j] = sum_i g[i, j] for g [M, N] row-major, y [N] (the bias gradient of a linear layer).

Memory-bound reduction over the strided dimension. The naive kernel walks each column down the
rows (stride N floats: one cache line and, for wide rows, one page per element) with a double
accumulator. The space covers:

- order=rows: stream the matrix row by row (contiguous, prefetcher-friendly) and accumulate into a
  vector of partial sums, one per column; `rows_step` rows are added together per pass, so the
  partials are loaded and stored once per that many rows; `block_n` splits the columns into
  blocks whose partials stay in L1 (wide N: a vocabulary-sized bias);
- accumulation in double, or in float in two levels: a fresh float partial per block of M_BLOCK
  rows, then the blocks summed. Sequential fp32 accumulation over all M rows is deliberately not
  offered: its error grows with M (the workload's 1M-row shape rejects it);
- OpenMP by splitting M (threads take M_BLOCK-row chunks, statically or dynamically, into private
  partials, then the threads' partials are combined) or by splitting N (each thread owns column
  blocks over all rows);
- `#pragma omp simd` or AVX2 intrinsics (order=columns: vectorize over a strip of 8 adjacent
  columns, still walking down the rows).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.snippets import INCLUDES, check_f32, indent, omp_for, vec_loop

# Rows per float partial (acc=float_blocked) and per work item of threads=split_m. Two-level sums
# with blocks of 64-1024 rows measured 2-24 eps from the exact sum on 1M rows (torch: ~1 eps,
# one sequential fp32 accumulator: 80-140 eps); the block's extra pass over the partials costs
# 1/256 of the streaming.
M_BLOCK = 256


def _sum(terms: list[str]) -> str:
    """Pairwise infix sum, e.g. ((a + b) + (c + d)): short dependency chains."""
    if len(terms) == 1:
        return terms[0]
    h = len(terms) // 2
    return f"({_sum(terms[:h])} + {_sum(terms[h:])})"


def _vsum(op: str, terms: list[str]) -> str:
    if len(terms) == 1:
        return terms[0]
    h = len(terms) // 2
    return f"{op}({_vsum(op, terms[:h])}, {_vsum(op, terms[h:])})"


@register
class ColSumTemplates(TemplateFamily):
    family = "colsum"
    axes = [
        Axis(name="order", values=["columns", "rows"], default="columns",
             doc="columns: walk each column (or strip of 8) down the rows, strided; rows: stream rows "
                 "contiguously into a vector of per-column partial sums"),
        Axis(name="acc", values=["double", "float_blocked"], default="double",
             doc=f"double accumulators, or float partials per block of {M_BLOCK} rows, then the blocks summed"),
        Axis(name="threads", values=["none", "split_m", "split_n"], default="none",
             doc=f"OpenMP: each thread {M_BLOCK}-row chunks into private partials (combined at the end), "
                 "or column blocks over all rows"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops, `#pragma omp simd`, or AVX2 intrinsics"),
        Axis(name="rows_step", values=[1, 2, 4], default=1, kind="tunable",
             doc="rows added together per pass over the partials (order=rows), or independent "
                 "row accumulators (order=columns)"),
        Axis(name="block_n", values=[0, 512, 2048], default=0, kind="tunable",
             doc="columns per block (partials of 2048 floats = 8 KB stay in L1); 0 = all N at once "
                 "(threads=split_n: N / threads)"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable",
             doc=f"OpenMP schedule of the work items ({M_BLOCK}-row chunks or column blocks): static = one "
                 "contiguous range per thread; dynamic = chunk by chunk, so a thread slowed by another "
                 "process does not hold the others up"),
    ]
    moves = [
        Move(name="stream-rows", description="stream rows contiguously, accumulating into a vector of N partial "
             "sums, instead of walking each column down the rows", assigns={"order": "rows"}, prior_gain=3.0),
        Move(name="omp-split-m", description="OpenMP: split the rows between threads, private partial sums "
             "combined at the end", assigns={"threads": "split_m"}, prior_gain=1.8),
        Move(name="omp-split-n", description="OpenMP: split the columns between threads, each over all rows",
             assigns={"threads": "split_n"}, prior_gain=1.6),
        Move(name="vec-omp-simd", description="#pragma omp simd over the columns",
             assigns={"vector": "omp_simd"}, prior_gain=1.5),
        Move(name="vec-avx2", description="AVX2 intrinsics over 8 columns, several rows per step",
             assigns={"vector": "avx2"}, prior_gain=1.8),
        Move(name="float-cascade", description="float partials per block of rows, then the blocks summed "
             "(half the vector work of double, rounding still ~torch's)", assigns={"acc": "float_blocked"},
             prior_gain=1.2),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["row streaming into N partial sums" if p["order"] == "rows" else "column walk down the rows",
                 "double accumulators" if p["acc"] == "double" else f"float partials per {M_BLOCK} rows",
                 {"none": "single thread", "split_m": "OpenMP over row ranges",
                  "split_n": "OpenMP over column ranges"}[p["threads"]],
                 {"scalar": "scalar loops", "omp_simd": "omp simd", "avx2": "AVX2"}[p["vector"]],
                 f"{p['rows_step']} row(s) per step"]
        if p["block_n"] and (p["order"] == "rows" or p["threads"] == "split_n"):
            parts.append(f"{p['block_n']}-column blocks")
        return "; ".join(parts)

    # --- order=rows: partial sums q[0, w) += rows i of x (pointers already at column j0) --------

    def _rows_update(self, p: dict[str, Any], rows: int) -> str:
        """Add `rows` rows (pointers r0..) into q[0, w)."""
        dbl = p["acc"] == "double"
        cast = (lambda t: f"static_cast<double>({t})") if dbl else (lambda t: t)  # noqa: E731
        scalar = f"q[j] += {_sum([cast(f'r{r}[j]') for r in range(rows)])};"
        if p["vector"] != "avx2":
            simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
            return f"{simd}for (int64_t j = 0; j < w; ++j)\n    {scalar}"
        ld = "_mm256_loadu_ps"
        if not dbl:
            return vec_loop(lambda o, u: f"_mm256_storeu_ps(q + {o}, _mm256_add_ps(_mm256_loadu_ps(q + {o}), "
                                         f"{_vsum('_mm256_add_ps', [f'{ld}(r{r} + {o})' for r in range(rows)])}));",
                            scalar, 2, end="w")

        def body(o: str, u: int) -> str:   # 8 floats -> two 4-double halves, summed exactly in double
            loads = "\n".join(f"    const __m256 v{r} = {ld}(r{r} + {o});" for r in range(rows))
            lo = _vsum("_mm256_add_pd", [f"_mm256_cvtps_pd(_mm256_castps256_ps128(v{r}))" for r in range(rows)])
            hi = _vsum("_mm256_add_pd", [f"_mm256_cvtps_pd(_mm256_extractf128_ps(v{r}, 1))" for r in range(rows)])
            return (f"{{\n{loads}\n"
                    f"    _mm256_storeu_pd(q + {o}, _mm256_add_pd(_mm256_loadu_pd(q + {o}), {lo}));\n"
                    f"    _mm256_storeu_pd(q + {o} + 4, _mm256_add_pd(_mm256_loadu_pd(q + {o} + 4), {hi}));\n}}")
        return vec_loop(body, scalar, 2, end="w")

    def _rows_block(self, p: dict[str, Any]) -> str:
        R = p["rows_step"]
        ptrs = lambda k: "\n".join(f"const float* r{r} = x + (i + {r}) * N + j0;" if r else  # noqa: E731
                                   "const float* r0 = x + i * N + j0;" for r in range(k))
        step = (f"for (; i + {R} <= b1; i += {R}) {{\n{indent(ptrs(R), 4)}\n{indent(self._rows_update(p, R), 4)}\n}}\n"
                if R > 1 else "")
        rows = (f"int64_t i = b0;\n{step}for (; i < b1; ++i) {{\n{indent(ptrs(1), 4)}\n"
                f"{indent(self._rows_update(p, 1), 4)}\n}}")
        if p["acc"] == "double":
            body = (f"// stream the rows, {R} per pass, into the double partials q = tot[j0, j1)\n"
                    f"double* q = tot + j0;\nconst int64_t b0 = i0, b1 = i1;\n{rows}")
        else:
            body = f"""\
// two-level sum: the rows of each {M_BLOCK}-row block into fresh float partials bp (stay in L1),
// then the block into tot; rounding grows with the block, not with M
float* q = bp;
for (int64_t b0 = i0; b0 < i1; b0 += {M_BLOCK}) {{
    const int64_t b1 = std::min<int64_t>(i1, b0 + {M_BLOCK});
    std::memset(q, 0, sizeof(float) * w);
{indent(rows, 4)}
    for (int64_t j = 0; j < w; ++j)
        tot[j0 + j] += q[j];
}}"""
        return body

    # --- order=columns: walk down the rows, a column (or a strip of 8) at a time ---------------

    def _strip_generic(self, p: dict[str, Any], S: int) -> str:
        """Columns [j, j + S) walked down rows [i0, i1): S = 1 plain scalars, S = 8 arrays under omp simd."""
        R, dbl = p["rows_step"], p["acc"] == "double"
        t = "double" if dbl else "float"
        col = "j" if S == 1 else "j + c"

        def el(name: str) -> str:
            return name if S == 1 else f"{name}[c]"

        def lanes(stmt: str) -> str:
            return stmt if S == 1 else f"#pragma omp simd\nfor (int c = 0; c < {S}; ++c)\n    {stmt}"

        def decl(name: str) -> str:
            return f"{t} {name} = 0;" if S == 1 else f"{t} {name}[{S}] = {{}};"

        step = "\n".join(lanes(f"{el(f'a{r}')} += x[(i + {r}) * N + {col}];") for r in range(R))
        walk = "\n".join(decl(f"a{r}") for r in range(R)) + "\nint64_t i = b0;\n"
        if R > 1:
            walk += f"for (; i + {R} <= b1; i += {R}) {{\n{indent(step, 4)}\n}}\n"
        a0, acc = el("a0"), el("s")
        walk += f"for (; i < b1; ++i) {{\n{indent(lanes(f'{a0} += x[i * N + {col}];'), 4)}\n}}"
        fold = _sum([el(f"a{r}") for r in range(R)])
        if dbl:
            return f"const int64_t b0 = i0, b1 = i1;\n{walk}\n{lanes(f'tot[{col}] += {fold};')}"
        return (f"{decl('s')}\n"
                f"for (int64_t b0 = i0; b0 < i1; b0 += {M_BLOCK}) {{\n"
                f"    const int64_t b1 = std::min<int64_t>(i1, b0 + {M_BLOCK});\n"
                f"{indent(walk, 4)}\n{indent(lanes(f'{acc} += {fold};'), 4)}\n}}\n"
                f"{lanes(f'tot[{col}] += {acc};')}")

    def _strip_avx2(self, p: dict[str, Any]) -> str:
        """Columns [j, j + 8) walked down rows [i0, i1) in ymm registers, rows_step accumulators."""
        R, dbl = p["rows_step"], p["acc"] == "double"
        ld = "_mm256_loadu_ps"
        if dbl:
            zero = " ".join(f"__m256d lo{r} = _mm256_setzero_pd(), hi{r} = _mm256_setzero_pd();" for r in range(R))

            def add(r: int, row: str) -> str:
                return (f"{{ const __m256 v = {ld}(x + ({row}) * N + j); "
                        f"lo{r} = _mm256_add_pd(lo{r}, _mm256_cvtps_pd(_mm256_castps256_ps128(v))); "
                        f"hi{r} = _mm256_add_pd(hi{r}, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))); }}")
            step = "\n".join(add(r, f"i + {r}") for r in range(R))
            loop = "int64_t i = i0;\n"
            if R > 1:
                loop += f"for (; i + {R} <= i1; i += {R}) {{\n{indent(step, 4)}\n}}\n"
            loop += f"for (; i < i1; ++i)\n    {add(0, 'i')}"
            lo = _vsum("_mm256_add_pd", [f"lo{r}" for r in range(R)])
            hi = _vsum("_mm256_add_pd", [f"hi{r}" for r in range(R)])
            return (f"{zero}\n{loop}\n"
                    f"_mm256_storeu_pd(tot + j, _mm256_add_pd(_mm256_loadu_pd(tot + j), {lo}));\n"
                    f"_mm256_storeu_pd(tot + j + 4, _mm256_add_pd(_mm256_loadu_pd(tot + j + 4), {hi}));")
        zero = " ".join(f"__m256 a{r} = _mm256_setzero_ps();" for r in range(R))
        step = "\n".join(f"a{r} = _mm256_add_ps(a{r}, {ld}(x + (i + {r}) * N + j));" for r in range(R))
        walk = (f"{zero}\nint64_t i = b0;\n"
                + (f"for (; i + {R} <= b1; i += {R}) {{\n{indent(step, 4)}\n}}\n" if R > 1 else "")
                + f"for (; i < b1; ++i)\n    a0 = _mm256_add_ps(a0, {ld}(x + i * N + j));")
        return (f"__m256 s = _mm256_setzero_ps();\n"
                f"for (int64_t b0 = i0; b0 < i1; b0 += {M_BLOCK}) {{\n"
                f"    const int64_t b1 = std::min<int64_t>(i1, b0 + {M_BLOCK});\n"
                f"{indent(walk, 4)}\n"
                f"    s = _mm256_add_ps(s, {_vsum('_mm256_add_ps', [f'a{r}' for r in range(R)])});\n}}\n"
                "_mm256_storeu_ps(tot + j, _mm256_add_ps(_mm256_loadu_ps(tot + j), s));")

    def _columns_block(self, p: dict[str, Any]) -> str:
        scalar = f"for (; j < j1; ++j) {{\n{indent(self._strip_generic(p, 1), 4)}\n}}"
        if p["vector"] == "scalar":
            return f"// one column at a time, down the rows (stride N)\nint64_t j = j0;\n{scalar}"
        strip = self._strip_avx2(p) if p["vector"] == "avx2" else self._strip_generic(p, 8)
        return (f"// a strip of 8 adjacent columns at a time, down the rows (stride N); leftover columns one by one\n"
                f"int64_t j = j0;\nfor (; j + 8 <= j1; j += 8) {{\n{indent(strip, 4)}\n}}\n{scalar}")

    # --- the kernel ------------------------------------------------------------------------------

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        t = "double" if p["acc"] == "double" else "float"
        rows = p["order"] == "rows"
        block = self._rows_block(p) if rows else self._columns_block(p)
        need_bp = rows and p["acc"] == "float_blocked"
        src = [self.header(p, self.strategy(p)), "", INCLUDES,
               "// tot[j] += sum of x[i, j] over rows [i0, i1), for columns [j0, j1); bp: "
               f"{'float scratch of j1 - j0 floats' if need_bp else 'unused'}\n"
               f"static void colsum_block(const float* x, int64_t N, int64_t i0, int64_t i1, int64_t j0, int64_t j1, "
               f"{t}* tot, float* bp) {{\n"
               f"    const int64_t w = j1 - j0;\n    (void)w; (void)bp;\n{indent(block, 4)}\n}}\n",
               f"static {t}* alloc_acc(int64_t n) {{   // 64-byte aligned, size rounded up as aligned_alloc needs\n"
               f"    return static_cast<{t}*>(std::aligned_alloc(64, ((sizeof({t}) * n + 63) / 64) * 64 + 64));\n}}\n",
               "static float* alloc_f(int64_t n) {\n"
               "    return static_cast<float*>(std::aligned_alloc(64, ((sizeof(float) * n + 63) / 64) * 64 + 64));"
               "\n}\n"]
        # column blocks matter for the row-streaming partials (L1) and as split_n's work item; a
        # column walk touches one column at a time, so there it renders no differently
        nb = p["block_n"] if rows or p["threads"] == "split_n" else 0
        blocks = (f"for (int64_t j0 = 0; j0 < N; j0 += NB) {{\n"
                  f"    const int64_t j1 = std::min<int64_t>(N, j0 + NB);\n"
                  f"    colsum_block(x, N, i0, i1, j0, j1, tot, bp);\n}}")
        if p["threads"] == "none":
            loops = f"""\
const int64_t NB = {nb or 'N'};   // columns per block
{t}* tot = alloc_acc(N);
float* bp = alloc_f({'NB' if need_bp else '1'});
if (!tot || !bp) {{ std::free(tot); std::free(bp); return 2; }}
for (int64_t j = 0; j < N; ++j) tot[j] = 0;
const int64_t i0 = 0, i1 = M;
{blocks}
for (int64_t j = 0; j < N; ++j)
    y[j] = static_cast<float>(tot[j]);
std::free(tot);
std::free(bp);"""
        elif p["threads"] == "split_m":
            loops = f"""\
// every thread sums {M_BLOCK}-row chunks into private partials; then the partials are combined
const int64_t NB = {nb or 'N'};   // columns per block
const int T = omp_get_max_threads();
const int64_t ld = (N + 15) / 16 * 16, bld = {'(NB + 15) / 16 * 16' if need_bp else '16'};
const int64_t nch = (M + {M_BLOCK} - 1) / {M_BLOCK};
{t}* part = alloc_acc(ld * T);
float* scratch = alloc_f(bld * T);
if (!part || !scratch) {{ std::free(part); std::free(scratch); return 2; }}
#pragma omp parallel num_threads(T)
{{
    const int th = omp_get_thread_num(), nt = omp_get_num_threads();
    {t}* tot = part + th * ld;
    float* bp = scratch + th * bld;
    for (int64_t j = 0; j < N; ++j) tot[j] = 0;
    {omp_for(p['schedule'], 1 if p['schedule'] == 'dynamic' else 0, parallel=False)} nowait
    for (int64_t c = 0; c < nch; ++c) {{
        const int64_t i0 = c * {M_BLOCK}, i1 = std::min<int64_t>(M, i0 + {M_BLOCK});
{indent(blocks, 8)}
    }}
    #pragma omp barrier
    #pragma omp for schedule(static)
    for (int64_t j = 0; j < N; ++j) {{
        {t} s = 0;
        for (int u = 0; u < nt; ++u)
            s += part[u * ld + j];
        y[j] = static_cast<float>(s);
    }}
}}
std::free(part);
std::free(scratch);"""
        else:
            loops = f"""\
// every thread owns whole blocks of columns over all rows
const int T = omp_get_max_threads();
const int64_t W = {nb or '((N + T - 1) / T + 15) / 16 * 16'};   // columns per work item
const int64_t nblk = (N + W - 1) / W, bld = {'(W + 15) / 16 * 16' if need_bp else '16'};
{t}* tot = alloc_acc(N);
float* scratch = alloc_f(bld * T);
if (!tot || !scratch) {{ std::free(tot); std::free(scratch); return 2; }}
#pragma omp parallel num_threads(T)
{{
    float* bp = scratch + omp_get_thread_num() * bld;
    {omp_for(p['schedule'], 1 if p['schedule'] == 'dynamic' else 0, parallel=False)}
    for (int64_t blk = 0; blk < nblk; ++blk) {{
        const int64_t j0 = blk * W, j1 = std::min<int64_t>(N, j0 + W);
        for (int64_t j = j0; j < j1; ++j) tot[j] = 0;
        colsum_block(x, N, 0, M, j0, j1, tot, bp);
        for (int64_t j = j0; j < j1; ++j)
            y[j] = static_cast<float>(tot[j]);
    }}
}}
std::free(tot);
std::free(scratch);"""
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
