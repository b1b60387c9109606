"""matmul: C[M, N] = A[M, K] @ B[K, N], fp32, row-major.

Compute-bound. The naive kernel is the textbook ijk triple loop (a dot product per output,
walking B down a column). Two sub-spaces:

- loop nests (micro=none): ijk or ikj order, optional cache tiling of i/k/j, the inner loop
  plain, `omp simd`, or AVX2 (ikj: broadcast a[i,k] against 8 columns of B; ijk: 8 columns'
  dot products at once), OpenMP over rows or row tiles.
- BLIS-style GEMM (micro=6x16 or 4x24, or 12x32 where the CPU has AVX-512F): B packed into
  KC x NR panels (zero-padded), optionally A into MR x KC panels, and a register-blocked
  micro-kernel keeping an MR x NR block of C in registers (12 of the 16 ymm registers for the
  AVX2/FMA ones, 24 of the 32 zmm registers for 12x32); cache blocking by MC/KC/NC; OpenMP over
  MC row blocks.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.snippets import AVX512_GUARD, INCLUDES, check_f32, indent, omp_for, zmm

MICRO = {"6x16": (6, 16), "4x24": (4, 24), "12x32": (12, 32)}
# Micro-kernels in 16-lane zmm registers (AVX-512F): 12 x 2 accumulators of the 32 registers,
# 2 B loads and 12 broadcasts per k for 24 FMAs (the AVX2 ones fill 12 of 16 ymm registers).
WIDE = {"12x32"}


def micro_lanes(micro: str) -> int:
    """Floats per vector register of the micro-kernel: 16 (zmm) or 8 (ymm)."""
    return 16 if micro in WIDE else 8


def micro_isa(name: str) -> str:
    return "AVX-512F" if name in WIDE else "AVX2/FMA"


@register
class MatmulTemplates(TemplateFamily):
    family = "matmul"
    axes = [
        Axis(name="micro", values=["none", "6x16", "4x24", "12x32"], default="none",
             doc="register-blocked micro-kernel (MR x NR) over packed B panels: 6x16 and 4x24 in AVX2/FMA ymm "
                 "registers, 12x32 in AVX-512F zmm registers; or plain loop nests"),
        Axis(name="pack_a", values=["no", "yes"], default="no",
             doc="micro-kernel path: also pack A into MR-row panels (contiguous broadcasts)"),
        Axis(name="loop_order", values=["ijk", "ikj"], default="ijk",
             doc="loop-nest path: dot product per C element (ijk) or row updates streaming B rows (ikj)"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="loop-nest path: inner loop plain, `#pragma omp simd`, or AVX2/FMA over 8 columns"),
        Axis(name="tiling", values=["none", "cache"], default="none",
             doc="loop-nest path: block the i/k/j loops by tile_m/tile_k/tile_n"),
        Axis(name="threads", values=["none", "rows"], default="none",
             doc="OpenMP over rows (loop nests) or MC row blocks (micro-kernel)"),
        Axis(name="tile_m", values=[24, 48, 96, 192], default=48, kind="tunable",
             doc="rows per block (MC); multiples of every MR (4, 6, 12)"),
        Axis(name="tile_n", values=[96, 192, 384, 768, 3072], default=3072, kind="tunable",
             doc="columns per block (NC); multiples of every NR (16, 24, 32)"),
        Axis(name="tile_k", values=[64, 128, 256, 512], default=256, kind="tunable", doc="depth per block (KC)"),
        Axis(name="unroll_k", values=[1, 2, 4], default=1, kind="tunable",
             doc="micro-kernel k-loop unroll; ikj+avx2 loop nest: rows of B per pass over C"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
    ]
    moves = [
        Move(name="loop-ikj", description="ikj loop order: unit-stride rows of B and C in the inner loop",
             assigns={"loop_order": "ikj"}, prior_gain=4.0, requires={"micro": "none"}),
        Move(name="omp-rows", description="OpenMP over rows / row blocks", assigns={"threads": "rows"},
             prior_gain=1.8),
        Move(name="vec-omp-simd", description="#pragma omp simd on the inner loop", assigns={"vector": "omp_simd"},
             prior_gain=1.5, requires={"micro": "none"}),
        Move(name="vec-avx2", description="AVX2/FMA inner loop over 8 columns of B",
             assigns={"vector": "avx2"}, prior_gain=2.0, requires={"micro": "none"}),
        Move(name="cache-tiling", description="block the i/k/j loops so B tiles stay in cache",
             assigns={"tiling": "cache"}, prior_gain=1.5, requires={"micro": "none"}),
        Move(name="micro-6x16", description="pack B panels + 6x16 AVX2/FMA register-blocked micro-kernel",
             assigns={"micro": "6x16"}, prior_gain=8.0),
        Move(name="micro-4x24", description="pack B panels + 4x24 AVX2/FMA register-blocked micro-kernel",
             assigns={"micro": "4x24"}, prior_gain=8.0),
        Move(name="micro-12x32", description="pack B panels + 12x32 AVX-512F register-blocked micro-kernel "
             "(24 zmm accumulators: twice the floats per FMA of the AVX2 ones)",
             assigns={"micro": "12x32"}, isa=["avx512f"], prior_gain=9.0),
        Move(name="pack-a-12x32", description="pack A into MR-row panels for the micro-kernel",
             assigns={"pack_a": "yes"}, prior_gain=1.15, requires={"micro": "12x32"}),
        Move(name="pack-a-6x16", description="pack A into MR-row panels for the micro-kernel",
             assigns={"pack_a": "yes"}, prior_gain=1.15, requires={"micro": "6x16"}),
        Move(name="pack-a-4x24", description="pack A into MR-row panels for the micro-kernel",
             assigns={"pack_a": "yes"}, prior_gain=1.15, requires={"micro": "4x24"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        thr = "OpenMP over row blocks" if p["threads"] == "rows" else "single thread"
        if p["micro"] != "none":
            return (f"BLIS-style GEMM, {p['micro']} {micro_isa(p['micro'])} micro-kernel, packed B"
                    f"{' and A' if p['pack_a'] == 'yes' else ''}; MC={p['tile_m']} NC={p['tile_n']} "
                    f"KC={p['tile_k']}; {thr}")
        tiles = f"tiles {p['tile_m']}x{p['tile_k']}x{p['tile_n']}" if p["tiling"] == "cache" else "untiled"
        return f"{p['loop_order']} loop nest, {p['vector']} inner loop, {tiles}; {thr}"

    # --- loop nests ---------------------------------------------------------------------------

    def _row_kernel(self, p: dict[str, Any], accumulate: bool) -> str:
        """c[j] (+)= sum_k a[k] * b[k * N + j] for one row; j in [j0, j1), k in [k0, k1)."""
        simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
        init = "c[j]" if accumulate else "0.0f"
        if p["loop_order"] == "ikj":
            if p["vector"] == "avx2":
                body = self._ikj_avx2(p["unroll_k"])
            else:
                body = f"""\
for (int64_t k = k0; k < k1; ++k) {{
    const float ak = a[k];
    const float* bk = b + k * N;
{indent(simd, 4)}    for (int64_t j = j0; j < j1; ++j)
        c[j] += ak * bk[j];
}}"""
            note = "// ikj: c (pre-zeroed) += a[k] * row k of B\n"
        elif p["vector"] == "avx2":
            vinit = "_mm256_loadu_ps(c + j)" if accumulate else "_mm256_setzero_ps()"
            body = f"""\
int64_t j = j0;
for (; j + 8 <= j1; j += 8) {{   // 8 dot products at once: broadcast a[k], 8 columns of B row k
    __m256 acc = {vinit};
    for (int64_t k = k0; k < k1; ++k)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(a[k]), _mm256_loadu_ps(b + k * N + j), acc);
    _mm256_storeu_ps(c + j, acc);
}}
for (; j < j1; ++j) {{
    float acc = {init};
    for (int64_t k = k0; k < k1; ++k)
        acc += a[k] * b[k * N + j];
    c[j] = acc;
}}"""
            note = "// ijk, 8 columns at a time\n"
        else:
            red = "#pragma omp simd reduction(+:acc)\n" if p["vector"] == "omp_simd" else ""
            body = f"""\
for (int64_t j = j0; j < j1; ++j) {{
    float acc = {init};
{indent(red, 4)}    for (int64_t k = k0; k < k1; ++k)
        acc += a[k] * b[k * N + j];
    c[j] = acc;
}}"""
            note = "// ijk: one dot product per element of C, walking B down a column\n"
        return (f"{note}static inline void row_kernel(const float* a, const float* b, float* c, int64_t N,\n"
                "                              int64_t k0, int64_t k1, int64_t j0, int64_t j1) {\n"
                f"{indent(body, 4)}\n}}\n")

    @staticmethod
    def _ikj_avx2(U: int) -> str:
        """ikj with 8 columns per vector; U rows of B per pass, so each C vector is loaded and
        stored once per U FMAs instead of once per FMA."""
        def group(u: int, k: str) -> str:
            kk = [k if i == 0 else f"{k} + {i}" for i in range(u)]
            aset = "\n".join(f"const __m256 a{i} = _mm256_set1_ps(a[{kk[i]}]);" for i in range(u))
            bset = "\n".join(f"const float* b{i} = b + {f'({kk[i]})' if i else k} * N;" for i in range(u))
            fmas = "\n".join(f"acc = _mm256_fmadd_ps(a{i}, _mm256_loadu_ps(b{i} + j), acc);" for i in range(u))
            tail = " + ".join(f"a[{kk[i]}] * b{i}[j]" for i in range(u))
            return (f"{aset}\n{bset}\nint64_t j = j0;\nfor (; j + 8 <= j1; j += 8) {{\n"
                    f"    __m256 acc = _mm256_loadu_ps(c + j);\n{indent(fmas, 4)}\n"
                    f"    _mm256_storeu_ps(c + j, acc);\n}}\n"
                    f"for (; j < j1; ++j)\n    c[j] += {tail};")
        if U == 1:
            return f"for (int64_t k = k0; k < k1; ++k) {{\n{indent(group(1, 'k'), 4)}\n}}"
        return (f"int64_t k = k0;\nfor (; k + {U} <= k1; k += {U}) {{   // {U} rows of B per pass over c\n"
                f"{indent(group(U, 'k'), 4)}\n}}\nfor (; k < k1; ++k) {{\n{indent(group(1, 'k'), 4)}\n}}")

    def _loop_nest(self, p: dict[str, Any]) -> tuple[str, str]:
        par = omp_for(p["schedule"], 0) + "\n" if p["threads"] == "rows" else ""
        zero = "std::fill(c + i * N, c + (i + 1) * N, 0.0f);"
        if p["tiling"] == "none":
            pre = f"    {zero}\n" if p["loop_order"] == "ikj" else ""
            loops = (f"{par}for (int64_t i = 0; i < M; ++i) {{\n{pre}"
                     "    row_kernel(a + i * K, b, c + i * N, N, 0, K, 0, N);\n}")
            return self._row_kernel(p, accumulate=p["loop_order"] == "ikj"), loops
        loops = f"""\
const int64_t TM = {p['tile_m']}, TN = {p['tile_n']}, TK = {p['tile_k']};
{par}for (int64_t i0 = 0; i0 < M; i0 += TM) {{
    const int64_t i1 = std::min(M, i0 + TM);
    for (int64_t i = i0; i < i1; ++i)
        {zero}
    for (int64_t k0 = 0; k0 < K; k0 += TK) {{
        const int64_t k1 = std::min(K, k0 + TK);
        for (int64_t j0 = 0; j0 < N; j0 += TN) {{   // B tile [k0, k1) x [j0, j1) is reused by every row
            const int64_t j1 = std::min(N, j0 + TN);
            for (int64_t i = i0; i < i1; ++i)
                row_kernel(a + i * K, b, c + i * N, N, k0, k1, j0, j1);
        }}
    }}
}}"""
        return self._row_kernel(p, accumulate=True), loops

    # --- BLIS-style path ----------------------------------------------------------------------

    def _micro_kernel(self, p: dict[str, Any]) -> str:
        MR, NR = MICRO[p["micro"]]
        W = micro_lanes(p["micro"])   # written in the 8-lane spelling, widened by zmm() for W = 16
        NV = NR // W
        packed = p["pack_a"] == "yes"
        regs = [[f"c{r}_{v}" if MR > 9 else f"c{r}{v}" for v in range(NV)] for r in range(MR)]
        decl = "\n".join("__m256 " + ", ".join(f"{n} = _mm256_setzero_ps()" for n in row) + ";" for row in regs)
        if packed:
            a_setup, a_at = "", (lambda r: f"ap + k * {MR} + {r}")
        else:  # rows past mr repeat the last valid row: never read out of bounds, results discarded
            a_setup = "const float* a0 = a;\n" + "\n".join(
                f"const float* a{r} = a + std::min<int64_t>({r}, mr - 1) * lda;" for r in range(1, MR)) + "\n"
            a_at = (lambda r: f"a{r} + k")
        step = [f"const __m256 b{v} = _mm256_load_ps(bp + k * {NR}{f' + {W * v}' if v else ''});" for v in range(NV)]
        # a broadcast from memory: AVX-512 has no _mm512_broadcast_ss, set1 of a load compiles to one
        bcast = (lambda x: f"_mm256_broadcast_ss({x})") if W == 8 else (lambda x: f"_mm256_set1_ps(*({x}))")
        for r in range(MR):
            fmas = " ".join(f"{regs[r][v]} = _mm256_fmadd_ps(av, b{v}, {regs[r][v]});" for v in range(NV))
            step.append(f"{'__m256 ' if r == 0 else ''}av = {bcast(a_at(r))}; {fmas}")
        unroll = f"#pragma GCC unroll {p['unroll_k']}\n" if p["unroll_k"] > 1 else ""
        store_full = "\n".join(
            f"{{ float* cr = c + {r} * ldc;\n" + "\n".join(
                f"  _mm256_storeu_ps(cr + {W * v}, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + {W * v}), {regs[r][v]}) "
                f": {regs[r][v]});" for v in range(NV)) + " }" for r in range(MR))
        store_tile = "\n".join(f"_mm256_store_ps(t + {r * NR + W * v}, {regs[r][v]});"
                               for r in range(MR) for v in range(NV))
        a_arg = "const float* ap" if packed else "const float* a, int64_t lda"
        code = f"""\
// C[0:mr, 0:nr] (+)= A-block * B-panel over kc, with a {MR}x{NR} block of C in {MR * NV} {'zmm' if W == 16 else 'ymm'} registers.
// bp: kc rows of {NR} floats (zero-padded past nr); acc: add to C (later KC blocks) or overwrite.
static inline void micro_kernel(int64_t kc, {a_arg}, const float* bp, float* c, int64_t ldc,
                                int64_t mr, int64_t nr, bool acc) {{
{indent(decl, 4)}
{indent(a_setup, 4)}{indent(unroll, 4)}    for (int64_t k = 0; k < kc; ++k) {{
{indent(chr(10).join(step), 8)}
    }}
    if (mr == {MR} && nr == {NR}) {{
{indent(store_full, 8)}
        return;
    }}
    alignas({4 * W}) float t[{MR * NR}];   // edge tile: spill, then write back only the valid part
{indent(store_tile, 4)}
    for (int64_t r = 0; r < mr; ++r)
        for (int64_t j = 0; j < nr; ++j)
            c[r * ldc + j] = (acc ? c[r * ldc + j] : 0.0f) + t[r * {NR} + j];
}}
"""
        return zmm(code) if W == 16 else code

    def _packers(self, p: dict[str, Any]) -> str:
        MR, NR = MICRO[p["micro"]]
        W = micro_lanes(p["micro"])
        full = "\n".join(f"        _mm256_store_ps(dst + {W * v}, _mm256_loadu_ps(src + {W * v}));"
                          for v in range(NR // W))
        if W == 16:
            full = zmm(full)
        out = f"""\
// B[0:kc, 0:nc] (row stride ldb) -> panels of {NR} columns, each kc x {NR} contiguous, zero-padded
static inline void pack_b_panel(const float* b, int64_t ldb, int64_t kc, int64_t nr, float* bp) {{
    for (int64_t k = 0; k < kc; ++k) {{
        const float* src = b + k * ldb;
        float* dst = bp + k * {NR};
        if (nr == {NR}) {{
{full}
        }} else {{
            for (int64_t j = 0; j < {NR}; ++j)
                dst[j] = j < nr ? src[j] : 0.0f;
        }}
    }}
}}
"""
        if p["pack_a"] == "yes":
            out += f"""
// A[0:mr, 0:kc] (row stride lda) -> one panel of {MR} rows, k-major, zero-padded past mr
static inline void pack_a_panel(const float* a, int64_t lda, int64_t kc, int64_t mr, float* ap) {{
    for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < {MR}; ++r)
            ap[k * {MR} + r] = r < mr ? a[r * lda + k] : 0.0f;
}}
"""
        return out

    def _blis(self, p: dict[str, Any]) -> str:
        MR, NR = MICRO[p["micro"]]
        packed = p["pack_a"] == "yes"
        thr = p["threads"] == "rows"
        pb_for = omp_for("static", 0, parallel=False) if thr else ""
        ic_for = omp_for(p["schedule"], 0, parallel=False) if thr else ""
        a_pack = (f"for (int64_t ir = 0; ir < mc; ir += {MR})\n"
                  f"    pack_a_panel(a + (ic + ir) * K + pc, K, kc, std::min<int64_t>({MR}, mc - ir), ap + ir * kc);"
                  if packed else "")
        a_arg = "ap + ir * kc" if packed else "a + (ic + ir) * K + pc, K"
        me = "omp_get_thread_num() * ap_len" if thr else "0"
        ap_line = f"float* ap = ap_all + {me};   // this thread's A panels" if packed else ""
        body = f"""\
{ap_line}
for (int64_t jc = 0; jc < N; jc += NC) {{
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {{
        const int64_t kc = std::min(KC, K - pc);
        {pb_for}
        for (int64_t jr = 0; jr < nc; jr += {NR})
            pack_b_panel(b + pc * N + jc + jr, N, kc, std::min<int64_t>({NR}, nc - jr), bp + jr * kc);
        {ic_for}
        for (int64_t ic = 0; ic < M; ic += MC) {{
            const int64_t mc = std::min(MC, M - ic);
{indent(a_pack, 12)}
            for (int64_t jr = 0; jr < nc; jr += {NR})
                for (int64_t ir = 0; ir < mc; ir += {MR})
                    micro_kernel(kc, {a_arg}, bp + jr * kc, c + (ic + ir) * N + jc + jr, N,
                                 std::min<int64_t>({MR}, mc - ir), std::min<int64_t>({NR}, nc - jr), pc > 0);
        }}
    }}
}}"""
        body = "\n".join(line for line in body.splitlines() if line.strip())
        if thr:
            body = f"#pragma omp parallel\n{{\n{indent(body, 4)}\n}}"
        ap_alloc, free_ap = "", ""
        if packed:   # one block of MC x KC A panels per thread, allocated here so failure can return
            ap_alloc = (f"const int64_t ap_len = ((MC + {MR - 1}) / {MR} * {MR} * kcmax + 15) / 16 * 16;\n"
                        f"float* ap_all = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * ap_len"
                        f"{' * omp_get_max_threads()' if thr else ''}));\n")
            free_ap = "\nstd::free(ap_all);"
        fail = "{ std::free(bp); std::free(ap_all); return 2; }" if packed else "return 2;"
        return f"""\
const int64_t MC = {p['tile_m']}, NC = {p['tile_n']}, KC = {p['tile_k']};
const int64_t kcmax = std::min(KC, K), ncmax = (std::min(NC, N) + {NR - 1}) / {NR} * {NR};
// packed B block (shared by all threads): ncmax / {NR} panels of kc x {NR}
float* bp = static_cast<float*>(std::aligned_alloc(64, (sizeof(float) * kcmax * ncmax + 63) / 64 * 64));
{ap_alloc}if (!bp{' || !ap_all' if packed else ''}) {fail}
{body}
std::free(bp);{free_ap}"""

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        micro = p["micro"] != "none"
        notes = []
        if micro:
            notes.append("// note: loop_order, vector and tiling select the loop-nest path; unused with a micro-kernel")
        else:
            notes.append("// note: pack_a (micro-kernel path only) is unused by loop nests")
            if p["tiling"] == "none":
                notes.append("// note: tile_m/tile_n/tile_k are unused without tiling")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if p["micro"] in WIDE:
            src.append(AVX512_GUARD)
        if micro:
            src += [self._packers(p), self._micro_kernel(p)]
            loops = self._blis(p)
        else:
            kernel, loops = self._loop_nest(p)
            src.append(kernel)
        body = f"""\
{check_f32(2, [2, 2])}
const int64_t M = inputs[0].shape[0], K = inputs[0].shape[1], N = inputs[1].shape[1];
if (inputs[1].shape[0] != K) return 1;
const float* a = static_cast<const float*>(inputs[0].data);
const float* b = static_cast<const float*>(inputs[1].data);
float* c = static_cast<float*>(output->data);
{loops}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
