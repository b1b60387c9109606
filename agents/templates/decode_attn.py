"""decode_attn: out[b, h, :] = softmax(q[b, h, :] . K[b, h]^T / sqrt(D)) . V[b, h], one decode
step of multi-head attention over a KV cache: q [B, H, D], k_cache and v_cache [B, H, S, D].

Memory-bound: every K and V element is read once for 2 flops each (4 flops per 8 bytes), so the
bound is reading the cache at DRAM bandwidth. A unit of work is one head, or (flash-decoding /
split-K) one chunk of a head's keys; it produces a running max m, a sum l of e^(score - m) and
an unnormalized accumulator acc[D] = sum e^(score - m) * v; chunks of a head are merged by
rescaling to the common max. The naive kernel handles one head at a time in scalar loops: all
scores into a buffer (K read once), softmax in the buffer (libm exp), then the weighted sum of V
rows (V read once). The space covers the online (blocked) softmax that interleaves a block of K
with the same block of V, OpenMP over heads or over (head, key chunk) units with a final merge
(keeps every core busy when B*H is small), `omp simd`, or AVX2/FMA with several keys per step
(independent dot-product accumulators for QK, fewer accumulator loads/stores for PV).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.snippets import (EXP_AVX2, EXP_SCALAR, HREDUCE_AVX2, INCLUDES, NO_TRAPPING_MATH, indent, omp_for,
                                       vec_loop)

BLOCK = 64         # online softmax: keys per block (64 scores stay in L1; K and V blocks of 32 KB at D = 128)
SPLIT_KEYS = 256   # threads=split: fewest keys per chunk (below that the merge costs more than it saves)


@register
class DecodeAttnTemplates(TemplateFamily):
    family = "decode_attn"
    axes = [
        Axis(name="softmax", values=["buffer", "online"], default="buffer",
             doc="buffer: all scores of a unit, then softmax, then P.V (K then V, each streamed once); "
                 "online: blocks of keys, running max with rescaled sum and accumulator (K and V blocks interleaved)"),
        Axis(name="threads", values=["none", "heads", "split"], default="none",
             doc="OpenMP over (batch, head) pairs, or over (head, key chunk) units with a final merge "
                 "(flash-decoding: chunks only when B*H is too small to keep every core busy)"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops (libm exp), `#pragma omp simd` (exp polynomial), or AVX2/FMA intrinsics"),
        Axis(name="key_order", values=["adjacent", "segments"], default="adjacent",
             doc="AVX2 path: the `keys` keys of a step are adjacent (one sequential stream of K, then of V), "
                 "or one from each of `keys` equal segments of the range (that many concurrent streams)"),
        Axis(name="prefetch", values=["none", "kv"], default="none",
             doc="AVX2 path: software-prefetch the K (and V) rows `prefetch_dist` keys ahead; one core's "
                 "hardware prefetcher alone leaves the DRAM stream short of bandwidth and stops at 4 KB pages"),
        Axis(name="prefetch_dist", values=[8, 16, 32], default=8, kind="tunable",
             doc="prefetch distance in keys (x D floats: 4-16 KB ahead at D = 128)"),
        Axis(name="keys", values=[1, 4, 8], default=4, kind="tunable",
             doc="AVX2: keys per step: independent QK accumulators, V rows per accumulator load/store"),
    ]
    moves = [
        Move(name="omp-heads", description="OpenMP parallel for over (batch, head) pairs",
             assigns={"threads": "heads"}, prior_gain=1.8),
        Move(name="split-keys", description="flash-decoding: split each head's keys across threads, merge "
             "the partial (max, sum, accumulator) triples", assigns={"threads": "split"}, prior_gain=1.6),
        Move(name="online-softmax", description="online softmax over key blocks: one pass interleaving K and "
             "V blocks, no per-head score buffer", assigns={"softmax": "online"}, prior_gain=1.1),
        Move(name="vec-omp-simd", description="#pragma omp simd dot products and axpys, exp polynomial",
             assigns={"vector": "omp_simd"}, prior_gain=1.8),
        Move(name="vec-avx2", description="AVX2/FMA: several keys per step (independent dot-product "
             "accumulators), vectorized exp", assigns={"vector": "avx2"}, prior_gain=2.2),
        Move(name="multi-stream", description="take the keys of a step from separate segments of the head: "
             "several concurrent K (and V) streams per core instead of one, more memory-level parallelism",
             assigns={"key_order": "segments"}, prior_gain=1.5, requires={"vector": "avx2"}),
        Move(name="sw-prefetch", description="software-prefetch K and V rows a few keys ahead of the dot "
             "products and the weighted sum (more memory-level parallelism than the hardware prefetcher)",
             assigns={"prefetch": "kv"}, prior_gain=1.3, requires={"vector": "avx2"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["score buffer per unit" if p["softmax"] == "buffer" else f"online softmax, blocks of {BLOCK}",
                 {"none": "single thread", "heads": "OpenMP over heads",
                  "split": f"OpenMP over (head, key chunk >= {SPLIT_KEYS}) + merge"}[p["threads"]],
                 {"scalar": "scalar loops", "omp_simd": "omp simd", "avx2": f"AVX2, {p['keys']} keys per step"}[p["vector"]]]
        if p["key_order"] == "segments" and p["vector"] == "avx2":
            parts.append(f"{p['keys']} concurrent key streams")
        if p["prefetch"] == "kv" and p["vector"] == "avx2":
            parts.append(f"prefetch K/V {p['prefetch_dist']} keys ahead")
        return "; ".join(parts)

    # --- the pieces of a unit: scores, max, exp in place, P.V, rescale -------------------------

    def _kernels_scalar(self, p: dict[str, Any]) -> str:
        simd = p["vector"] == "omp_simd"
        exp = "ks_expf" if simd else "std::exp"
        pr = (lambda clause="": f"#pragma omp simd{clause}\n") if simd else (lambda clause="": "")
        acc = "float" if simd else "double"   # the naive sum of exps in double; simd reduces in float lanes
        return f"""\
// sc[s] = q . k[s] * scale for n keys
static void qk(const float* q, const float* k, int64_t n, int64_t D, float scale, float* sc) {{
    for (int64_t s = 0; s < n; ++s) {{
        const float* ks = k + s * D;
        float dot = 0.0f;
        {pr(" reduction(+:dot)")}for (int64_t d = 0; d < D; ++d)
            dot += q[d] * ks[d];
        sc[s] = dot * scale;
    }}
}}

static float max_of(const float* sc, int64_t n) {{
    float m = -FLT_MAX;
    {pr(" reduction(max:m)")}for (int64_t s = 0; s < n; ++s)
        m = sc[s] > m ? sc[s] : m;
    return m;
}}

// sc[s] = e^(sc[s] - m) in place; returns the sum
static float exp_sum(float* sc, int64_t n, float m) {{
    {acc} l = 0;
    {pr(" reduction(+:l)")}for (int64_t s = 0; s < n; ++s) {{
        sc[s] = {exp}(sc[s] - m);
        l += sc[s];
    }}
    return static_cast<float>(l);
}}

// acc += sum_s sc[s] * v[s]
static void pv(const float* sc, const float* v, int64_t n, int64_t D, float* acc) {{
    for (int64_t s = 0; s < n; ++s) {{
        const float ps = sc[s];
        const float* vs = v + s * D;
        {pr()}for (int64_t d = 0; d < D; ++d)
            acc[d] += ps * vs[d];
    }}
}}

static void scale_acc(float* acc, int64_t D, float r) {{
    {pr()}for (int64_t d = 0; d < D; ++d)
        acc[d] *= r;
}}
"""

    def _kernels_avx2(self, p: dict[str, Any]) -> str:
        U = p["keys"]
        ld = "_mm256_loadu_ps"
        ue = min(U, 4)   # exps interleaved per step (more would spill registers)
        exp_loop = vec_loop(None, "sc[s] = ks_expf(sc[s] - m);\nlt += sc[s];", ue, end="n",
                            group=lambda k: (f"__m256 e[{k}];\nfor (int u = 0; u < {k}; ++u) "
                                             f"e[u] = _mm256_sub_ps({ld}(sc + j + 8 * u), vm);\nks_exp8_n<{k}>(e);\n"
                                             f"for (int u = 0; u < {k}; ++u) {{\n"
                                             "    _mm256_storeu_ps(sc + j + 8 * u, e[u]);\n"
                                             "    vl[u] = _mm256_add_ps(vl[u], e[u]);\n}")).replace("sc[s]", "sc[j]")
        max_loop = vec_loop(lambda o, u: f"vm = _mm256_max_ps(vm, {ld}(sc + {o}));", "mt = std::max(mt, sc[j]);", 1,
                            end="n")
        sums = " + ".join(f"ks_hsum8(vl[{u}])" for u in range(ue))
        dist = p["prefetch_dist"]
        seg = p["key_order"] == "segments"

        def pf(ptr: str) -> str:
            """Prefetch the rows `dist` keys ahead in each of the U streams (every 64-byte line of a
            row); a prefetch past the end of the cache never faults."""
            if p["prefetch"] != "kv":
                return ""
            return (f"    for (int u = 0; u < U; ++u)   // the row {dist} keys ahead in each stream, every cache line\n"
                    f"        for (int64_t o = 0; o < D; o += 16)\n"
                    f"            _mm_prefetch(reinterpret_cast<const char*>({ptr} + u * kst + {dist} * D + o), _MM_HINT_T0);\n")

        if seg:
            order = (f"// keys in {U} equal segments of the range, one key from each per step: {U} sequential\n"
                     f"// streams in flight for the hardware prefetcher instead of one\n")
            loop = lambda step, args: (f"    const int64_t seg = n / {U};   // keys [u*seg, (u+1)*seg) form stream u\n"  # noqa: E731
                                       f"    for (int64_t s = 0; s < seg; ++s) {step}<{U}>({args('s', 'seg * D', 'seg')});\n"
                                       f"    for (int64_t s = {U} * seg; s < n; ++s) {step}<1>({args('s', 'D', '1')});")
        else:
            order = f"// {U} adjacent keys per step: one sequential stream\n"
            loop = lambda step, args: (f"    int64_t s = 0;\n"  # noqa: E731
                                       f"    for (; s + {U} <= n; s += {U}) {step}<{U}>({args('s', 'D', '1')});\n"
                                       f"    for (; s < n; ++s) {step}<1>({args('s', 'D', '1')});")
        qk_args = lambda s_, kst, sst: f"q, k + {s_} * D, D, scale, sc + {s_}, {kst}, {sst}"  # noqa: E731
        pv_args = lambda s_, kst, sst: f"sc + {s_}, v + {s_} * D, D, acc, {kst}, {sst}"  # noqa: E731
        return f"""\
// sc[s] = q . k[s] * scale: {U} key(s) per step (key u at k + u*kst, its score at sc[u*sst]), one
// 8-lane accumulator each (independent FMA chains), q reloaded from L1 per 8 dims, a scalar
// tail for D % 8
template <int U>
static inline void qk_step(const float* q, const float* k, int64_t D, float scale, float* sc, int64_t kst,
                           int64_t sst) {{
    __m256 a[U];
    float t[U];
    for (int u = 0; u < U; ++u) {{ a[u] = _mm256_setzero_ps(); t[u] = 0.0f; }}
{pf("k")}    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {{
        const __m256 qv = {ld}(q + d);
        for (int u = 0; u < U; ++u) a[u] = _mm256_fmadd_ps({ld}(k + u * kst + d), qv, a[u]);
    }}
    for (; d < D; ++d)
        for (int u = 0; u < U; ++u) t[u] += q[d] * k[u * kst + d];
    for (int u = 0; u < U; ++u) sc[u * sst] = (ks_hsum8(a[u]) + t[u]) * scale;
}}

{order}static void qk(const float* q, const float* k, int64_t n, int64_t D, float scale, float* sc) {{
{loop("qk_step", qk_args)}
}}

static float max_of(const float* sc, int64_t n) {{
    __m256 vm = _mm256_set1_ps(-FLT_MAX);
    float mt = -FLT_MAX;
{indent(max_loop, 4)}
    return std::max(ks_hmax8(vm), mt);
}}

// sc[s] = e^(sc[s] - m) in place; returns the sum
static float exp_sum(float* sc, int64_t n, float m) {{
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vl[{ue}];
    for (int u = 0; u < {ue}; ++u) vl[u] = _mm256_setzero_ps();
    float lt = 0.0f;
{indent(exp_loop, 4)}
    return {sums} + lt;
}}

// acc += sum_s sc[s] * v[s]: {U} V row(s) per load/store of each accumulator vector (row u at
// v + u*kst, its weight sc[u*sst])
template <int U>
static inline void pv_step(const float* sc, const float* v, int64_t D, float* acc, int64_t kst, int64_t sst) {{
    __m256 pb[U];
    for (int u = 0; u < U; ++u) pb[u] = _mm256_set1_ps(sc[u * sst]);
{pf("v")}    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {{
        __m256 a = {ld}(acc + d);
        for (int u = 0; u < U; ++u) a = _mm256_fmadd_ps(pb[u], {ld}(v + u * kst + d), a);
        _mm256_storeu_ps(acc + d, a);
    }}
    for (; d < D; ++d) {{
        float a = acc[d];
        for (int u = 0; u < U; ++u) a += sc[u * sst] * v[u * kst + d];
        acc[d] = a;
    }}
}}

static void pv(const float* sc, const float* v, int64_t n, int64_t D, float* acc) {{
{loop("pv_step", pv_args)}
}}

static void scale_acc(float* acc, int64_t D, float r) {{
    const __m256 vr = _mm256_set1_ps(r);
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) _mm256_storeu_ps(acc + d, _mm256_mul_ps({ld}(acc + d), vr));
    for (; d < D; ++d) acc[d] *= r;
}}
"""

    def _unit(self, p: dict[str, Any]) -> str:
        exp = "std::exp" if p["vector"] == "scalar" else "ks_expf"
        if p["softmax"] == "buffer":
            body = """\
qk(q, k, n, D, scale, sc);          // K streamed once
const float m = max_of(sc, n);
const float l = exp_sum(sc, n, m);
pv(sc, v, n, D, acc);               // V streamed once
*pm = m;
*pl = l;"""
        else:
            body = f"""\
float m = -FLT_MAX, l = 0.0f;
for (int64_t s0 = 0; s0 < n; s0 += BLOCK) {{
    const int64_t nb = std::min<int64_t>(BLOCK, n - s0);
    qk(q, k + s0 * D, nb, D, scale, sc);
    const float bm = max_of(sc, nb);
    if (bm > m) {{   // the running max grew: rescale what was summed so far
        const float r = {exp}(m - bm);
        l *= r;
        scale_acc(acc, D, r);
        m = bm;
    }}
    l += exp_sum(sc, nb, m);
    pv(sc, v + s0 * D, nb, D, acc);
}}
*pm = m;
*pl = l;"""
        return ("// one unit: n keys of one head. acc[D] (zeroed here) = sum e^(score - m) v, *pm = m (max score),\n"
                "// *pl = sum e^(score - m); sc: scratch for the unit's (or one block's) scores\n"
                "static void unit(const float* q, const float* k, const float* v, int64_t n, int64_t D, float scale,\n"
                "                 float* sc, float* acc, float* pm, float* pl) {\n"
                "    for (int64_t d = 0; d < D; ++d) acc[d] = 0.0f;\n"
                f"{indent(body, 4)}\n}}\n")

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        notes = []
        if p["prefetch"] == "kv" and not avx2:
            notes.append("// note: prefetch=kv applies to the AVX2 path only")
        if p["key_order"] == "segments" and not avx2:
            notes.append("// note: key_order=segments applies to the AVX2 path only")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if p["vector"] == "omp_simd":
            src.append(NO_TRAPPING_MATH)
        if p["vector"] != "scalar":
            src.append(EXP_SCALAR)
        if avx2:
            src += [EXP_AVX2, HREDUCE_AVX2]
        online = p["softmax"] == "online"
        if online:
            src.append(f"static const int64_t BLOCK = {BLOCK};   // keys per online-softmax block\n")
        src += [self._kernels_avx2(p) if avx2 else self._kernels_scalar(p), self._unit(p)]
        threads = p["threads"]
        if threads == "split":
            plan = f"""\
// flash-decoding: enough (head, chunk) units for every thread, chunks of at least {SPLIT_KEYS} keys
const int64_t want = (4 * T + BH - 1) / BH;
const int64_t nsplit0 = std::max<int64_t>(1, std::min<int64_t>(want, S / {SPLIT_KEYS}));
const int64_t chunk = (S + nsplit0 - 1) / nsplit0;
const int64_t nsplit = (S + chunk - 1) / chunk;   // no empty chunk"""
        else:
            plan = "const int64_t nsplit = 1, chunk = S;   // one unit per head"
        sc_len = "BLOCK" if online else "chunk"
        par = threads != "none"
        sched = omp_for("static", 0, parallel=False)
        loop = f"""\
float* sc = scratch + (int64_t){'omp_get_thread_num()' if par else '0'} * stride;
float* acc = sc + ({sc_len} + 15) / 16 * 16;
{sched + chr(10) if par else ''}for (int64_t w = 0; w < BH * nsplit; ++w) {{
    const int64_t bh = w / nsplit, c = w % nsplit;
    const int64_t s0 = c * chunk, n = std::min<int64_t>(chunk, S - s0);
    float m, l;
    unit(q + bh * D, k + (bh * S + s0) * D, v + (bh * S + s0) * D, n, D, scale, sc, acc, &m, &l);
    if (nsplit == 1) {{
        const float inv = 1.0f / l;
        for (int64_t d = 0; d < D; ++d) out[bh * D + d] = acc[d] * inv;
    }} else {{   // keep the partial triple for the merge
        float* part = parts + w * (D + 2);
        part[0] = m;
        part[1] = l;
        std::memcpy(part + 2, acc, sizeof(float) * D);
    }}
}}"""
        merge = f"""\
// merge a head's chunks: rescale each to the common max, out = sum(acc_c e^(m_c - M)) / sum(l_c e^(m_c - M))
{sched + chr(10) if par else ''}for (int64_t bh = 0; bh < BH; ++bh) {{
    const float* pc = parts + bh * nsplit * (D + 2);
    float mx = -FLT_MAX;
    for (int64_t c = 0; c < nsplit; ++c) mx = std::max(mx, pc[c * (D + 2)]);
    float* o = out + bh * D;
    for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
    double l = 0;
    for (int64_t c = 0; c < nsplit; ++c) {{
        const float r = std::exp(pc[c * (D + 2)] - mx);
        l += static_cast<double>(pc[c * (D + 2) + 1]) * r;
        for (int64_t d = 0; d < D; ++d) o[d] += pc[c * (D + 2) + 2 + d] * r;
    }}
    const float inv = static_cast<float>(1.0 / l);
    for (int64_t d = 0; d < D; ++d) o[d] *= inv;
}}"""
        work = loop
        if threads == "split":
            work = f"{loop}\nif (nsplit > 1) {{\n    #pragma omp barrier\n{indent(merge, 4)}\n}}"
        if par:
            work = f"#pragma omp parallel num_threads(T)\n{{\n{indent(work, 4)}\n}}"
        body = f"""\
if (n_inputs < 3 || output->dtype != KS_F32) return 1;
for (int i = 0; i < 3; ++i)
    if (inputs[i].dtype != KS_F32) return 1;
if (inputs[0].ndim != 3 || inputs[1].ndim != 4 || inputs[2].ndim != 4) return 1;
const int64_t B = inputs[1].shape[0], H = inputs[1].shape[1], S = inputs[1].shape[2], D = inputs[1].shape[3];
for (int i = 0; i < 4; ++i)
    if (inputs[2].shape[i] != inputs[1].shape[i]) return 1;
if (inputs[0].shape[0] != B || inputs[0].shape[1] != H || inputs[0].shape[2] != D) return 1;
const float* q = static_cast<const float*>(inputs[0].data);
const float* k = static_cast<const float*>(inputs[1].data);
const float* v = static_cast<const float*>(inputs[2].data);
float* out = static_cast<float*>(output->data);
const int64_t BH = B * H;
const int T = {'omp_get_max_threads()' if par else '1'};
const float scale = 1.0f / std::sqrt(static_cast<float>(D));
{plan}
// per thread: the scores of one unit (or block), then its accumulator
const int64_t stride = ({sc_len} + 15) / 16 * 16 + (D + 15) / 16 * 16;
float* scratch = static_cast<float*>(std::malloc(sizeof(float) * stride * T));
float* parts = nsplit > 1 ? static_cast<float*>(std::malloc(sizeof(float) * BH * nsplit * (D + 2))) : nullptr;
if (!scratch || (nsplit > 1 && !parts)) {{ std::free(scratch); std::free(parts); return 2; }}
{work}
std::free(parts);
std::free(scratch);
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
