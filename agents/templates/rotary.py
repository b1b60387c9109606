"""rotary: y = x * cos + rotate_half(x) * sin, x [B, S, H, D], cos and sin [S, D] (HF/LLaMA RoPE).

rotate_half([x1, x2]) = [-x2, x1] over the two halves of the head dim, so per head and j < D/2:

    y[j]         = x[j] * cos[j]               - x[j + D/2] * sin[j]
    y[j + D/2]   = x[j + D/2] * cos[j + D/2]   + x[j] * sin[j + D/2]

Memory-bound: 3 flops per element against 8 bytes moved. The naive kernel mirrors eager: it
materializes rotate_half(x) in a temporary as big as x, then makes a second sweep for
x * cos + rot * sin (x read twice, the temporary written and read: twice the compulsory
traffic). The space covers the fused one-sweep form (each head's two halves loaded once and
both outputs written from registers), OpenMP over (batch, position) rows (the cos/sin row of a
position stays in L1 while its H heads stream past), `omp simd` or AVX2/FMA intrinsics, and
streaming stores for y (half the write traffic: no read-for-ownership).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.snippets import INCLUDES, indent, rows_loop, store8, vec_loop

PREFETCH_AHEAD = 1024   # floats (4 KB, a page) ahead of the sweep


@register
class RotaryTemplates(TemplateFamily):
    family = "rotary"
    axes = [
        Axis(name="fuse", values=["two_sweeps", "fused"], default="two_sweeps",
             doc="two_sweeps: rotate_half(x) into a full-size temporary, then y (like eager); "
                 "fused: both halves of a head loaded once, both outputs written in one sweep"),
        Axis(name="threads", values=["none", "rows"], default="none",
             doc="OpenMP parallel for over the B*S (batch, position) rows, H heads each"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops, `#pragma omp simd`, or AVX2/FMA intrinsics"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="non-temporal stores for y (AVX2 path; used when D % 16 == 0, so both halves of "
                 "every head are 32-byte aligned; other head sizes fall back to plain stores)"),
        Axis(name="prefetch", values=["none", "ahead"], default="none",
             doc="AVX2 path: software-prefetch x 4 KB ahead (each head's lines, one page ahead: the "
                 "hardware prefetcher does not cross 4 KB pages)"),
        Axis(name="unroll", values=[1, 2, 4], default=1, kind="tunable",
             doc="AVX2: vectors per half-head per loop step"),
        Axis(name="schedule", values=["static", "dynamic"], default="static", kind="tunable"),
    ]
    moves = [
        Move(name="fuse-one-sweep", description="fuse rotate_half into the multiply-add: one sweep, no "
             "temporary (x read once, y written once)", assigns={"fuse": "fused"}, prior_gain=1.8),
        Move(name="omp-rows", description="OpenMP parallel for over (batch, position) rows",
             assigns={"threads": "rows"}, prior_gain=1.7),
        Move(name="vec-omp-simd", description="#pragma omp simd on the head-dim loops",
             assigns={"vector": "omp_simd"}, prior_gain=1.2),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics, both halves of a head per step",
             assigns={"vector": "avx2"}, prior_gain=1.3),
        Move(name="nt-stores", description="non-temporal (streaming) stores for y: no read-for-ownership",
             assigns={"store": "stream"}, prior_gain=1.25, requires={"vector": "avx2"}),
        Move(name="prefetch-ahead", description="software-prefetch x one page (4 KB) ahead of the sweep",
             assigns={"prefetch": "ahead"}, prior_gain=1.1, requires={"vector": "avx2"}),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["fused one sweep" if p["fuse"] == "fused" else "rotate_half into a temporary, then a second sweep",
                 "OpenMP over rows" if p["threads"] == "rows" else "single thread",
                 {"scalar": "scalar loops", "omp_simd": "omp simd", "avx2": f"AVX2 x{p['unroll']}"}[p["vector"]]]
        if p["store"] == "stream" and p["vector"] == "avx2":
            parts.append("streaming stores")
        if p["prefetch"] == "ahead" and p["vector"] == "avx2":
            parts.append("prefetch 4 KB ahead")
        return "; ".join(parts)

    # --- row kernels: one (batch, position) row = H heads of D ---------------------------------

    def _prefetch(self, p: dict[str, Any]) -> str:
        if p["vector"] != "avx2" or p["prefetch"] != "ahead":
            return ""
        return (f"for (int64_t o = 0; o < D; o += 16)   // this head's lines, {PREFETCH_AHEAD} floats (4 KB) ahead\n"
                f"    _mm_prefetch(reinterpret_cast<const char*>(x + {PREFETCH_AHEAD} + o), _MM_HINT_T0);\n")

    def _fused_row(self, p: dict[str, Any], name: str, stream: bool) -> str:
        """y for the H heads of one row; c, s: this position's cos and sin rows."""
        first = "y[j] = x[j] * c[j] - x[j + hd] * s[j];"
        second = "y[j + hd] = x[j + hd] * c[j + hd] + x[j] * s[j + hd];"
        if p["vector"] == "avx2":
            ld, st = "_mm256_loadu_ps", store8(stream)

            def one(o: str, u: int) -> str:
                return (f"const __m256 a{u} = {ld}(x + {o}), b{u} = {ld}(x + hd + {o});\n"
                        f"{st}(y + {o}, _mm256_fmsub_ps(a{u}, {ld}(c + {o}), _mm256_mul_ps(b{u}, {ld}(s + {o}))));\n"
                        f"{st}(y + hd + {o}, _mm256_fmadd_ps(b{u}, {ld}(c + hd + {o}), "
                        f"_mm256_mul_ps(a{u}, {ld}(s + hd + {o}))));")
            inner = vec_loop(one, f"{first}\n{second}", p["unroll"], end="hd")
            note = ("// both halves of the head per step: a = x[j..j+8), b = x[j+hd..j+hd+8)\n"
                    + ("// streaming stores: only called when D % 16 == 0, so y + j and y + hd + j are 32-byte aligned\n"
                       if stream else ""))
        else:
            simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
            inner = f"{simd}for (int64_t j = 0; j < hd; ++j) {{\n{indent(first, 4)}\n{indent(second, 4)}\n}}"
            note = ""
        return (f"static void {name}(const float* x, const float* c, const float* s, float* y, int64_t H, int64_t D) {{\n"
                f"    const int64_t hd = D / 2;\n"
                f"    for (int64_t h = 0; h < H; ++h, x += D, y += D) {{\n"
                f"{indent(note + self._prefetch(p) + inner, 8)}\n"
                f"    }}\n}}\n")

    def _rot_row(self, p: dict[str, Any]) -> str:
        """Sweep 1 of the naive form: r = rotate_half(x) for the H heads of one row."""
        if p["vector"] == "avx2":
            ld = "_mm256_loadu_ps"

            def one(o: str, u: int) -> str:
                return (f"_mm256_storeu_ps(r + {o}, _mm256_xor_ps({ld}(x + hd + {o}), sign));\n"
                        f"_mm256_storeu_ps(r + hd + {o}, {ld}(x + {o}));")
            inner = ("const __m256 sign = _mm256_set1_ps(-0.0f);   // xor flips the sign bit\n"
                     + vec_loop(one, "r[j] = -x[j + hd];\nr[j + hd] = x[j];", p["unroll"], end="hd"))
        else:
            simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
            inner = f"{simd}for (int64_t j = 0; j < hd; ++j) {{\n    r[j] = -x[j + hd];\n    r[j + hd] = x[j];\n}}"
        return ("static void rot_row(const float* x, float* r, int64_t H, int64_t D) {\n"
                "    const int64_t hd = D / 2;\n"
                "    for (int64_t h = 0; h < H; ++h, x += D, r += D) {\n"
                f"{indent(inner, 8)}\n    }}\n}}\n")

    def _mad_row(self, p: dict[str, Any], name: str, stream: bool) -> str:
        """Sweep 2 of the naive form: y = x * c + r * s over the H heads of one row."""
        scalar = "y[j] = x[j] * c[j] + r[j] * s[j];"
        if p["vector"] == "avx2":
            ld, st = "_mm256_loadu_ps", store8(stream)
            inner = vec_loop(lambda o, u: f"{st}(y + {o}, _mm256_fmadd_ps({ld}(x + {o}), {ld}(c + {o}), "
                                          f"_mm256_mul_ps({ld}(r + {o}), {ld}(s + {o}))));", scalar, p["unroll"],
                             end="D")
        else:
            simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
            inner = f"{simd}for (int64_t j = 0; j < D; ++j)\n    {scalar}"
        return (f"static void {name}(const float* x, const float* r, const float* c, const float* s, float* y, "
                "int64_t H, int64_t D) {\n"
                "    for (int64_t h = 0; h < H; ++h, x += D, r += D, y += D) {\n"
                f"{indent(self._prefetch(p) + inner, 8)}\n    }}\n}}\n")

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        avx2 = p["vector"] == "avx2"
        stream = p["store"] == "stream" and avx2
        threaded = p["threads"] == "rows"
        sched = (p["schedule"], 0)
        notes = []
        if p["store"] == "stream" and not avx2:
            notes.append("// note: store=stream applies to the AVX2 path only; plain stores here")
        if p["prefetch"] == "ahead" and not avx2:
            notes.append("// note: prefetch=ahead applies to the AVX2 path only")
        src = [self.header(p, self.strategy(p)), *notes, "", INCLUDES]
        fused = p["fuse"] == "fused"
        row = "rope_row" if fused else "mad_row"
        if fused:
            src.append(self._fused_row(p, "rope_row", False))
        else:
            src += [self._rot_row(p), self._mad_row(p, "mad_row", False)]
        if stream:
            src.append((self._fused_row if fused else self._mad_row)(p, f"{row}_nt", True))
        tab = "ctab + (i % S) * D, stab + (i % S) * D"
        if fused:
            call = lambda f: f"{f}(x + i * HD, {tab}, y + i * HD, H, D);"  # noqa: E731
            pre, post = "", ""
        else:
            call = lambda f: f"{f}(x + i * HD, rot + i * HD, {tab}, y + i * HD, H, D);"  # noqa: E731
            pre = ("// sweep 1: rot = rotate_half(x), a temporary as big as x\n"
                   "float* rot = static_cast<float*>(std::malloc(sizeof(float) * M * HD));\n"
                   "if (!rot) return 2;\n"
                   f"{rows_loop('rot_row(x + i * HD, rot + i * HD, H, D);', threaded, *sched, False)}\n"
                   "// sweep 2: y = x * cos + rot * sin\n")
            post = "\nstd::free(rot);"
        if stream:
            align = "D % 16 == 0" if fused else "D % 8 == 0"
            loops = (f"// streaming stores need 32-byte aligned vectors: y is page-aligned, so {align} suffices\n"
                     f"if ({align}) {{\n{indent(rows_loop(call(row + '_nt'), threaded, *sched, True), 4)}\n}} else {{\n"
                     f"{indent(rows_loop(call(row), threaded, *sched, False), 4)}\n}}")
        else:
            loops = rows_loop(call(row), threaded, *sched, False)
        body = f"""\
if (n_inputs < 3 || output->dtype != KS_F32) return 1;
for (int k = 0; k < 3; ++k)
    if (inputs[k].dtype != KS_F32) return 1;
if (inputs[0].ndim != 4 || inputs[1].ndim != 2 || inputs[2].ndim != 2) return 1;
const int64_t B = inputs[0].shape[0], S = inputs[0].shape[1], H = inputs[0].shape[2], D = inputs[0].shape[3];
if (inputs[1].shape[0] != S || inputs[1].shape[1] != D || inputs[2].shape[0] != S || inputs[2].shape[1] != D)
    return 1;
if (D % 2) return 3;   // rotate_half splits the head dim in two equal halves (the workload pins D even)
const int64_t M = B * S, HD = H * D;   // rows of H heads; row i is position i % S
const float* x = static_cast<const float*>(inputs[0].data);
const float* ctab = static_cast<const float*>(inputs[1].data);
const float* stab = static_cast<const float*>(inputs[2].data);
float* y = static_cast<float*>(output->data);
{pre}{loops}{post}
return 0;"""
        src.append("KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {\n"
                   f"{indent(body, 4)}\n}}\n")
        return "\n".join(src)
