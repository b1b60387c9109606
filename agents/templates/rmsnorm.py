"""rmsnorm: y = x * rsqrt(mean(x^2, -1) + 1e-6) * weight, x [M, N], weight [N] (2nd input).

Memory-bound. The naive kernel makes two sweeps over the whole matrix: one computing every
row's 1/rms into a buffer, one writing y, so x is read from memory twice once it exceeds the
cache. The space covers the per-row form (sum of squares, then scale while the row is still
in L1/L2), OpenMP over rows, `omp simd` or AVX2/FMA with several accumulators, and streaming
stores for y.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.snippets import (HREDUCE_AVX2, INCLUDES, check_f32, indent, next_row_arg, prefetch_lines,
                                       rows_loop, store8, tree, vec_loop)

EPS = "1e-6f"


@register
class RmsNormTemplates(TemplateFamily):
    family = "rmsnorm"
    axes = [
        Axis(name="fuse", values=["two_sweeps", "per_row"], default="two_sweeps",
             doc="two_sweeps: all row norms first, then all outputs; per_row: norm then scale, row in cache"),
        Axis(name="threads", values=["none", "rows"], default="none", doc="OpenMP parallel for over rows"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops (double sum), `#pragma omp simd`, or AVX2/FMA intrinsics"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="non-temporal stores for y (AVX2 path only)"),
        Axis(name="prefetch", values=["none", "next_row"], default="none",
             doc="AVX2 path: prefetch the next row while scaling this one (overlaps its DRAM read)"),
        Axis(name="prefetch_hint", values=["T0", "T1"], default="T0", kind="tunable",
             doc="_mm_prefetch hint: T0 = into L1, T1 = into L2"),
        Axis(name="unroll", values=[1, 2, 4], default=1, kind="tunable",
             doc="AVX2: vectors (independent accumulators) per loop step"),
        Axis(name="schedule", values=["static", "dynamic", "guided"], default="static", kind="tunable"),
        Axis(name="chunk", values=[0, 1, 4, 16], default=0, kind="tunable",
             doc="OpenMP chunk in rows; 0 = the schedule's default"),
    ]
    moves = [
        Move(name="fuse-per-row", description="normalize each row right after its sum of squares, "
             "while the row is in cache (one read of x from memory)", assigns={"fuse": "per_row"}, prior_gain=1.5),
        Move(name="omp-rows", description="OpenMP parallel for over rows", assigns={"threads": "rows"},
             prior_gain=1.7),
        Move(name="vec-omp-simd", description="#pragma omp simd with a float sum reduction",
             assigns={"vector": "omp_simd"}, prior_gain=1.5),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics with multiple accumulators",
             assigns={"vector": "avx2"}, prior_gain=1.8),
        Move(name="nt-stores", description="non-temporal (streaming) stores for y",
             assigns={"store": "stream"}, prior_gain=1.15, requires={"vector": "avx2"}),
        Move(name="prefetch-next-row", description="software-prefetch the next row while scaling this one",
             assigns={"prefetch": "next_row"}, prior_gain=1.1, requires={"vector": "avx2"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["per row, row kept in cache" if p["fuse"] == "per_row" else "two sweeps over the matrix",
                 "OpenMP over rows" if p["threads"] == "rows" else "single thread",
                 {"scalar": "scalar loops", "omp_simd": "omp simd", "avx2": f"AVX2 x{p['unroll']}"}[p["vector"]]]
        if p["store"] == "stream" and p["vector"] == "avx2":
            parts.append("streaming stores")
        if p["prefetch"] == "next_row" and p["vector"] == "avx2":
            parts.append(f"prefetch next row ({p['prefetch_hint']})")
        return "; ".join(parts)

    def _inv_rms(self, p: dict[str, Any]) -> str:
        if p["vector"] == "avx2":
            U = p["unroll"]
            accs = ", ".join(f"a{u} = _mm256_setzero_ps()" for u in range(U))
            loop = vec_loop(lambda o, u: f"const __m256 v{u} = _mm256_loadu_ps(x + {o});\n"
                                         f"a{u} = _mm256_fmadd_ps(v{u}, v{u}, a{u});",
                            "tail += x[j] * x[j];", U)
            body = (f"__m256 {accs};\nfloat tail = 0.0f;\n{loop}\n"
                    f"const float ss = ks_hsum8({tree('_mm256_add_ps', [f'a{u}' for u in range(U)])}) + tail;")
        elif p["vector"] == "omp_simd":
            body = ("float ss = 0.0f;\n#pragma omp simd reduction(+:ss)\n"
                    "for (int64_t j = 0; j < n; ++j)\n    ss += x[j] * x[j];")
        else:
            body = "double ss = 0.0;\nfor (int64_t j = 0; j < n; ++j)\n    ss += x[j] * x[j];"
        body += f"\nreturn 1.0f / std::sqrt(static_cast<float>(ss / n) + {EPS});"
        return ("// 1 / sqrt(mean(x^2) + eps)\n"
                f"static inline float inv_rms(const float* x, int64_t n) {{\n{indent(body, 4)}\n}}\n")

    def _scale_row(self, p: dict[str, Any]) -> str:
        scalar = "y[j] = x[j] * r * w[j];"
        U, prefetch = p["unroll"], p["vector"] == "avx2" and p["prefetch"] == "next_row"
        if p["vector"] == "avx2":
            st = p["store"] == "stream"
            one = lambda o: (f"{store8(st)}(y + {o}, "  # noqa: E731
                             f"_mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + {o}), vr), _mm256_loadu_ps(w + {o})));")
            pf = f"{prefetch_lines('nx', 8 * U, p['prefetch_hint'])}   // next row\n" if prefetch else ""
            body = "const __m256 vr = _mm256_set1_ps(r);\n" + vec_loop(
                None, scalar, U, peel_align="y" if st else None,
                group=lambda k: (pf if k == U else "") + "\n".join(one(f"j + {8 * u}" if u else "j") for u in range(k)))
        else:
            simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
            body = f"{simd}for (int64_t j = 0; j < n; ++j)\n    {scalar}"
        nx = ", const float* nx" if prefetch else ""
        return ("// y = x * r * weight, in the reference's order\n"
                f"static inline void scale_row(const float* x, const float* w, float r, float* y, int64_t n{nx}) {{\n"
                f"{indent(body, 4)}\n}}\n")

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        stream = p["store"] == "stream" and avx2
        threaded = p["threads"] == "rows"
        notes = []
        if p["store"] == "stream" and not avx2:
            notes.append("// note: store=stream applies to the AVX2 path only; plain stores here")
        if p["prefetch"] == "next_row" and not avx2:
            notes.append("// note: prefetch=next_row applies to the AVX2 path only")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        if avx2:
            src.append(HREDUCE_AVX2)
        src += [self._inv_rms(p), self._scale_row(p)]
        sched = (p["schedule"], p["chunk"])
        nx = next_row_arg(avx2 and p["prefetch"] == "next_row")
        if p["fuse"] == "per_row":
            loops = rows_loop(f"scale_row(x + i * N, w, inv_rms(x + i * N, N), y + i * N, N{nx});", threaded,
                              *sched, stream)
        else:
            loops = ("// sweep 1: every row's 1/rms; sweep 2: the outputs (x is read twice)\n"
                     "float* r = static_cast<float*>(std::malloc(sizeof(float) * M));\n"
                     "if (!r) return 2;\n"
                     f"{rows_loop('r[i] = inv_rms(x + i * N, N);', threaded, *sched, False)}\n"
                     f"{rows_loop(f'scale_row(x + i * N, w, r[i], y + i * N, N{nx});', threaded, *sched, stream)}\n"
                     "std::free(r);")
        body = f"""\
{check_f32(2, [2, 1])}
const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
if (inputs[1].shape[0] != N) return 1;
const float* x = static_cast<const float*>(inputs[0].data);
const float* w = static_cast<const float*>(inputs[1].data);
float* y = static_cast<float*>(output->data);
{loops}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
