"""bmm: C[b] = A[b] @ B[b] for A [BATCH, M, K], B [BATCH, K, N], fp32, row-major.

Compute-bound (attention scores Q @ K^T per head, P @ V, per-expert GEMMs). The naive kernel is
the textbook ijk triple loop per batch entry. The per-matrix kernels are the matmul family's
(imported from agents/templates/matmul.py, not copied): its row kernels for loop nests (ijk / ikj,
scalar / `omp simd` / AVX2) and its packed AVX2/FMA micro-kernels (6x16 or 4x24, B packed into
KC x NR panels, optionally A into MR x KC panels). What is new here is how the batch is spread
over the cores and how the packing buffers are kept:

- threads=batch: each thread takes whole batch entries (OpenMP over b) with its own packed B/A
  buffers, allocated once per call: no barriers, every packed panel stays in its core's L2.
- threads=rows: the threads share each matrix (OpenMP over row blocks of one C[b], the B panels
  packed cooperatively), batch entries one after another inside one parallel region: right when
  BATCH is smaller than the core count or badly divisible by it.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.matmul import MICRO, WIDE, MatmulTemplates, micro_isa
from agents.templates.snippets import AVX512_GUARD, INCLUDES, check_f32, indent, omp_for

# The matmul family's renderers for one matrix (row kernels, packers, micro-kernels) take a params
# dict with its axis names (micro, pack_a, loop_order, vector, unroll_k); bmm's axes reuse them.
_MATMUL = MatmulTemplates()


@register
class BmmTemplates(TemplateFamily):
    family = "bmm"
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
        Axis(name="threads", values=["none", "batch", "rows"], default="none",
             doc="OpenMP over batch entries (each thread owns whole matrices), or over row blocks "
                 "within each matrix (threads share it)"),
        Axis(name="tile_m", values=[24, 48, 96, 192], default=96, kind="tunable",
             doc="micro-kernel path: rows per block (MC); multiples of every MR (4, 6, 12)"),
        Axis(name="tile_n", values=[96, 192, 384, 3072], default=3072, kind="tunable",
             doc="micro-kernel path: columns per block (NC); multiples of every NR (16, 24, 32)"),
        Axis(name="tile_k", values=[64, 128, 256, 512], default=256, kind="tunable",
             doc="micro-kernel path: depth per block (KC)"),
        Axis(name="unroll_k", values=[1, 2, 4], default=1, kind="tunable",
             doc="micro-kernel k-loop unroll; ikj+avx2 loop nest: rows of B per pass over C"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
    ]
    moves = [
        Move(name="loop-ikj", description="ikj loop order: unit-stride rows of B and C in the inner loop",
             assigns={"loop_order": "ikj"}, prior_gain=4.0, requires={"micro": "none"}),
        Move(name="omp-batch", description="OpenMP over batch entries, each thread owning whole matrices",
             assigns={"threads": "batch"}, prior_gain=1.9),
        Move(name="omp-rows", description="OpenMP over row blocks within each matrix (threads share it)",
             assigns={"threads": "rows"}, prior_gain=1.7),
        Move(name="vec-omp-simd", description="#pragma omp simd on the inner loop", assigns={"vector": "omp_simd"},
             prior_gain=1.5, requires={"micro": "none"}),
        Move(name="vec-avx2", description="AVX2/FMA inner loop over 8 columns of B",
             assigns={"vector": "avx2"}, prior_gain=2.0, requires={"micro": "none"}),
        Move(name="micro-6x16", description="pack B panels + 6x16 AVX2/FMA register-blocked micro-kernel",
             assigns={"micro": "6x16"}, prior_gain=8.0),
        Move(name="micro-4x24", description="pack B panels + 4x24 AVX2/FMA register-blocked micro-kernel",
             assigns={"micro": "4x24"}, prior_gain=8.0),
        Move(name="micro-12x32", description="pack B panels + 12x32 AVX-512F register-blocked micro-kernel "
             "(24 zmm accumulators: twice the floats per FMA of the AVX2 ones)",
             assigns={"micro": "12x32"}, isa=["avx512f"], prior_gain=9.0),
        Move(name="pack-a-12x32", description="pack A into MR-row panels for the micro-kernel",
             assigns={"pack_a": "yes"}, prior_gain=1.1, requires={"micro": "12x32"}),
        Move(name="pack-a-6x16", description="pack A into MR-row panels for the micro-kernel",
             assigns={"pack_a": "yes"}, prior_gain=1.1, requires={"micro": "6x16"}),
        Move(name="pack-a-4x24", description="pack A into MR-row panels for the micro-kernel",
             assigns={"pack_a": "yes"}, prior_gain=1.1, requires={"micro": "4x24"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        thr = {"none": "single thread", "batch": "OpenMP over batch entries",
               "rows": "OpenMP over row blocks of each matrix"}[p["threads"]]
        if p["micro"] != "none":
            return (f"per batch entry: BLIS-style GEMM, {p['micro']} {micro_isa(p['micro'])} micro-kernel, packed B"
                    f"{' and A' if p['pack_a'] == 'yes' else ''}; MC={p['tile_m']} NC={p['tile_n']} "
                    f"KC={p['tile_k']}; {thr}")
        return f"per batch entry: {p['loop_order']} loop nest, {p['vector']} inner loop; {thr}"

    # --- loop nests ---------------------------------------------------------------------------

    def _loop_nest(self, p: dict[str, Any]) -> tuple[str, str]:
        ikj = p["loop_order"] == "ikj"
        kernel = _MATMUL._row_kernel(p, accumulate=ikj)
        row = ("std::fill(c + i * N, c + (i + 1) * N, 0.0f);\n" if ikj else "") + \
            "row_kernel(a + i * K, b, c + i * N, N, 0, K, 0, N);"
        per = ("const float* a = A + bt * M * K;   // 64-bit offsets: BATCH*M*K can pass 2^31\n"
               "const float* b = B + bt * K * N;\nfloat* c = C + bt * M * N;\n")
        if p["threads"] == "rows":   # one fork/join per matrix: fine, a matrix is ~10^5+ FLOPs
            inner = f"{omp_for(p['schedule'], 0)}\nfor (int64_t i = 0; i < M; ++i) {{\n{indent(row, 4)}\n}}"
        else:
            inner = f"for (int64_t i = 0; i < M; ++i) {{\n{indent(row, 4)}\n}}"
        outer = omp_for(p["schedule"], 0) + "\n" if p["threads"] == "batch" else ""
        loops = f"{outer}for (int64_t bt = 0; bt < BATCH; ++bt) {{\n{indent(per + inner, 4)}\n}}"
        return kernel, loops

    # --- BLIS-style path ----------------------------------------------------------------------

    def _gemm(self, p: dict[str, Any]) -> str:
        """One C = A B (A M x K, B K x N, row-major), cache-blocked over the packed panels. With
        threads=rows it is called by every thread of a parallel region and its orphaned `omp for`s
        share the packing and the row blocks; their implicit barriers keep the shared B panels
        intact until every thread is done with them."""
        MR, NR = MICRO[p["micro"]]
        packed = p["pack_a"] == "yes"
        shared = p["threads"] == "rows"
        pb_for = omp_for("static", 0, parallel=False) if shared else ""
        ic_for = omp_for(p["schedule"], 0, parallel=False) if shared else ""
        a_pack = (f"for (int64_t ir = 0; ir < mc; ir += {MR})\n"
                  f"    pack_a_panel(a + (ic + ir) * K + pc, K, kc, std::min<int64_t>({MR}, mc - ir), ap + ir * kc);"
                  if packed else "")
        a_arg = "ap + ir * kc" if packed else "a + (ic + ir) * K + pc, K"
        body = f"""\
for (int64_t jc = 0; jc < N; jc += NC) {{
    const int64_t nc = std::min<int64_t>(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {{
        const int64_t kc = std::min<int64_t>(KC, K - pc);
        {pb_for}
        for (int64_t jr = 0; jr < nc; jr += {NR})
            pack_b_panel(b + pc * N + jc + jr, N, kc, std::min<int64_t>({NR}, nc - jr), bp + jr * kc);
        {ic_for}
        for (int64_t ic = 0; ic < M; ic += MC) {{
            const int64_t mc = std::min<int64_t>(MC, M - ic);
{indent(a_pack, 12)}
            for (int64_t jr = 0; jr < nc; jr += {NR})
                for (int64_t ir = 0; ir < mc; ir += {MR})
                    micro_kernel(kc, {a_arg}, bp + jr * kc, c + (ic + ir) * N + jc + jr, N,
                                 std::min<int64_t>({MR}, mc - ir), std::min<int64_t>({NR}, nc - jr), pc > 0);
        }}
    }}
}}"""
        body = "\n".join(line for line in body.splitlines() if line.strip())
        return (f"// bp: packed B block (KC x NC), ap: packed A block (MC x KC){' (unused)' if not packed else ''}\n"
                "static void gemm(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,\n"
                "                 float* bp, float* ap) {\n"
                f"    const int64_t MC = {p['tile_m']}, NC = {p['tile_n']}, KC = {p['tile_k']};\n"
                f"    (void)ap;\n{indent(body, 4)}\n}}\n")

    def _blis_driver(self, p: dict[str, Any]) -> str:
        MR, NR = MICRO[p["micro"]]
        thr = p["threads"]
        per = "gemm(A + bt * M * K, B + bt * K * N, C + bt * M * N, M, N, K, bp, ap);"
        # Buffer sizes for one thread, rounded to 16 floats so every thread's slice stays 64-byte aligned.
        sizes = f"""\
const int64_t MC = {p['tile_m']}, NC = {p['tile_n']}, KC = {p['tile_k']};
const int64_t kcmax = std::min<int64_t>(KC, K), ncmax = (std::min<int64_t>(NC, N) + {NR - 1}) / {NR} * {NR};
const int64_t bp_len = (kcmax * ncmax + 15) / 16 * 16;
const int64_t ap_len = {'((MC + %d) / %d * %d * kcmax + 15) / 16 * 16' % (MR - 1, MR, MR) if p['pack_a'] == 'yes' else '0'};"""
        if thr == "none":
            return f"""\
{sizes}
float* buf = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (bp_len + ap_len)));
if (!buf) return 2;
float* bp = buf;
float* ap = buf + bp_len;
for (int64_t bt = 0; bt < BATCH; ++bt)
    {per}
std::free(buf);"""
        if thr == "batch":   # every thread: its own B and A blocks, its own matrices
            return f"""\
{sizes}
const int nth = omp_get_max_threads();
float* buf = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (bp_len + ap_len) * nth));
if (!buf) return 2;
#pragma omp parallel
{{
    float* bp = buf + (bp_len + ap_len) * omp_get_thread_num();
    float* ap = bp + bp_len;
    {omp_for(p['schedule'], 0, parallel=False)}
    for (int64_t bt = 0; bt < BATCH; ++bt)
        {per}
}}
std::free(buf);"""
        # rows: one shared B block, A blocks per thread; all threads walk the batch together
        return f"""\
{sizes}
const int nth = omp_get_max_threads();
float* buf = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (bp_len + ap_len * nth)));
if (!buf) return 2;
#pragma omp parallel
{{
    float* bp = buf;
    float* ap = buf + bp_len + ap_len * omp_get_thread_num();
    for (int64_t bt = 0; bt < BATCH; ++bt)
        {per}
}}
std::free(buf);"""

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        micro = p["micro"] != "none"
        notes = []
        if micro:
            notes.append("// note: loop_order and vector select the loop-nest path; unused with a micro-kernel")
        else:
            notes.append("// note: pack_a and tile_m/tile_n/tile_k (micro-kernel path only) are unused by loop nests")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES, *([AVX512_GUARD] if p["micro"] in WIDE else [])]
        if micro:
            src += [_MATMUL._packers(p), _MATMUL._micro_kernel(p), self._gemm(p)]
            loops = self._blis_driver(p)
        else:
            kernel, loops = self._loop_nest(p)
            src.append(kernel)
        body = f"""\
{check_f32(2, [3, 3])}
const int64_t BATCH = inputs[0].shape[0], M = inputs[0].shape[1], K = inputs[0].shape[2];
const int64_t N = inputs[1].shape[2];
if (inputs[1].shape[0] != BATCH || inputs[1].shape[1] != K) return 1;
const float* A = static_cast<const float*>(inputs[0].data);
const float* B = static_cast<const float*>(inputs[1].data);
float* C = static_cast<float*>(output->data);
{loops}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
