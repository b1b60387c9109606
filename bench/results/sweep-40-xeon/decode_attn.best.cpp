// strategy: AVX2/FMA: several keys per step (independent dot-product accumulators), vectorized exp + OpenMP parallel for over (batch, head) pairs + take the keys of a step from separate segments of the head: several concurrent K (and V) streams per core instead of one, more memory-level parallelism + flash-decoding: split each head's keys across threads, merge the partial (max, sum, accumulator) triples
// kscout offline template: decode_attn
// strategy: score buffer per unit; OpenMP over (head, key chunk >= 256) + merge; AVX2, 4 keys per step; 4 concurrent key streams
//   key_order = segments
//   keys = 4
//   prefetch = none
//   prefetch_dist = 8
//   softmax = buffer
//   threads = split
//   vector = avx2


#include "kscout.h"
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

// e^x, Cephes-style: x = n*ln2 + r with |r| <= ln2/2, degree-7 polynomial for e^r, times 2^n
// built in the exponent bits. Max relative error ~1.5 ulp for x in [-87.3, 88]. x is clamped to
// [-88, 88]: below about -87.7, n = -127 makes 2^n exactly 0, so e^x = 0 (no denormals); above 88
// it saturates at e^88 ~ 1.65e38 (finite). Branch-free, so `omp simd` loops vectorize it.
static inline float ks_expf(float x) {
    float xc = x < -88.0f ? -88.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    const float magic = 12582912.0f;                  // 1.5 * 2^23: adding it rounds to an integer
    const float t = xc * 1.44269504088896341f + magic;
    const float n = t - magic;                        // round(x / ln2)
    float r = xc - n * 0.693359375f;                  // ln2 split in two: exact reduction
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // The low mantissa bits of t hold n; 2^n is (n + 127) << 23 as float bits.
    const int32_t bits = (__builtin_bit_cast(int32_t, t) - 0x4B400000 + 127) << 23;
    // (the select is redundant, 2^n is already 0 there, but without it GCC's vectorizer
    // specializes the clamps into extra blended paths that run ~3x slower)
    return x < -88.0f ? 0.0f : p * __builtin_bit_cast(float, bits);
}

// e^x for U vectors of 8 lanes, in place: the same clamp, reduction and polynomial as ks_expf,
// with FMA (17 ops per vector). Each step runs over all U vectors before the next, so the U
// independent dependency chains interleave and the out-of-order core overlaps their latencies.
template <int U>
static inline void ks_exp8_n(__m256* v) {
    const __m256 magic = _mm256_set1_ps(12582912.0f), lo = _mm256_set1_ps(-88.0f), hi = _mm256_set1_ps(88.0f);
    __m256 t[U], n[U], r[U], p[U];
    for (int u = 0; u < U; ++u) v[u] = _mm256_min_ps(_mm256_max_ps(v[u], lo), hi);
    for (int u = 0; u < U; ++u) t[u] = _mm256_fmadd_ps(v[u], _mm256_set1_ps(1.44269504088896341f), magic);
    for (int u = 0; u < U; ++u) n[u] = _mm256_sub_ps(t[u], magic);                          // round(x / ln2)
    for (int u = 0; u < U; ++u) r[u] = _mm256_fnmadd_ps(n[u], _mm256_set1_ps(0.693359375f), v[u]);
    for (int u = 0; u < U; ++u) r[u] = _mm256_fnmadd_ps(n[u], _mm256_set1_ps(-2.12194440e-4f), r[u]);
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r[u],
                                                       _mm256_set1_ps(1.3981999507e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(8.3334519073e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(4.1665795894e-2f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(1.6666665459e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(5.0000001201e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(_mm256_mul_ps(p[u], r[u]), r[u], r[u]);
    for (int u = 0; u < U; ++u) p[u] = _mm256_add_ps(p[u], _mm256_set1_ps(1.0f));
    for (int u = 0; u < U; ++u)   // 2^n: the low mantissa bits of t hold n
        v[u] = _mm256_mul_ps(p[u], _mm256_castsi256_ps(_mm256_slli_epi32(
                   _mm256_add_epi32(_mm256_castps_si256(t[u]), _mm256_set1_epi32(127 - 0x4B400000)), 23)));
}

static inline __m256 ks_exp8(__m256 x) {
    ks_exp8_n<1>(&x);
    return x;
}

static inline float ks_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float ks_hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// sc[s] = q . k[s] * scale: 4 key(s) per step (key u at k + u*kst, its score at sc[u*sst]), one
// 8-lane accumulator each (independent FMA chains), q reloaded from L1 per 8 dims, a scalar
// tail for D % 8
template <int U>
static inline void qk_step(const float* q, const float* k, int64_t D, float scale, float* sc, int64_t kst,
                           int64_t sst) {
    __m256 a[U];
    float t[U];
    for (int u = 0; u < U; ++u) { a[u] = _mm256_setzero_ps(); t[u] = 0.0f; }
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {
        const __m256 qv = _mm256_loadu_ps(q + d);
        for (int u = 0; u < U; ++u) a[u] = _mm256_fmadd_ps(_mm256_loadu_ps(k + u * kst + d), qv, a[u]);
    }
    for (; d < D; ++d)
        for (int u = 0; u < U; ++u) t[u] += q[d] * k[u * kst + d];
    for (int u = 0; u < U; ++u) sc[u * sst] = (ks_hsum8(a[u]) + t[u]) * scale;
}

// keys in 4 equal segments of the range, one key from each per step: 4 sequential
// streams in flight for the hardware prefetcher instead of one
static void qk(const float* q, const float* k, int64_t n, int64_t D, float scale, float* sc) {
    const int64_t seg = n / 4;   // keys [u*seg, (u+1)*seg) form stream u
    for (int64_t s = 0; s < seg; ++s) qk_step<4>(q, k + s * D, D, scale, sc + s, seg * D, seg);
    for (int64_t s = 4 * seg; s < n; ++s) qk_step<1>(q, k + s * D, D, scale, sc + s, D, 1);
}

static float max_of(const float* sc, int64_t n) {
    __m256 vm = _mm256_set1_ps(-FLT_MAX);
    float mt = -FLT_MAX;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        vm = _mm256_max_ps(vm, _mm256_loadu_ps(sc + j));
    }
    for (; j < n; ++j) {
        mt = std::max(mt, sc[j]);
    }
    return std::max(ks_hmax8(vm), mt);
}

// sc[s] = e^(sc[s] - m) in place; returns the sum
static float exp_sum(float* sc, int64_t n, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vl[4];
    for (int u = 0; u < 4; ++u) vl[u] = _mm256_setzero_ps();
    float lt = 0.0f;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 e[4];
        for (int u = 0; u < 4; ++u) e[u] = _mm256_sub_ps(_mm256_loadu_ps(sc + j + 8 * u), vm);
        ks_exp8_n<4>(e);
        for (int u = 0; u < 4; ++u) {
            _mm256_storeu_ps(sc + j + 8 * u, e[u]);
            vl[u] = _mm256_add_ps(vl[u], e[u]);
        }
    }
    for (; j + 8 <= n; j += 8) {
        __m256 e[1];
        for (int u = 0; u < 1; ++u) e[u] = _mm256_sub_ps(_mm256_loadu_ps(sc + j + 8 * u), vm);
        ks_exp8_n<1>(e);
        for (int u = 0; u < 1; ++u) {
            _mm256_storeu_ps(sc + j + 8 * u, e[u]);
            vl[u] = _mm256_add_ps(vl[u], e[u]);
        }
    }
    for (; j < n; ++j) {
        sc[j] = ks_expf(sc[j] - m);
        lt += sc[j];
    }
    return ks_hsum8(vl[0]) + ks_hsum8(vl[1]) + ks_hsum8(vl[2]) + ks_hsum8(vl[3]) + lt;
}

// acc += sum_s sc[s] * v[s]: 4 V row(s) per load/store of each accumulator vector (row u at
// v + u*kst, its weight sc[u*sst])
template <int U>
static inline void pv_step(const float* sc, const float* v, int64_t D, float* acc, int64_t kst, int64_t sst) {
    __m256 pb[U];
    for (int u = 0; u < U; ++u) pb[u] = _mm256_set1_ps(sc[u * sst]);
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {
        __m256 a = _mm256_loadu_ps(acc + d);
        for (int u = 0; u < U; ++u) a = _mm256_fmadd_ps(pb[u], _mm256_loadu_ps(v + u * kst + d), a);
        _mm256_storeu_ps(acc + d, a);
    }
    for (; d < D; ++d) {
        float a = acc[d];
        for (int u = 0; u < U; ++u) a += sc[u * sst] * v[u * kst + d];
        acc[d] = a;
    }
}

static void pv(const float* sc, const float* v, int64_t n, int64_t D, float* acc) {
    const int64_t seg = n / 4;   // keys [u*seg, (u+1)*seg) form stream u
    for (int64_t s = 0; s < seg; ++s) pv_step<4>(sc + s, v + s * D, D, acc, seg * D, seg);
    for (int64_t s = 4 * seg; s < n; ++s) pv_step<1>(sc + s, v + s * D, D, acc, D, 1);
}

static void scale_acc(float* acc, int64_t D, float r) {
    const __m256 vr = _mm256_set1_ps(r);
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) _mm256_storeu_ps(acc + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), vr));
    for (; d < D; ++d) acc[d] *= r;
}

// one unit: n keys of one head. acc[D] (zeroed here) = sum e^(score - m) v, *pm = m (max score),
// *pl = sum e^(score - m); sc: scratch for the unit's (or one block's) scores
static void unit(const float* q, const float* k, const float* v, int64_t n, int64_t D, float scale,
                 float* sc, float* acc, float* pm, float* pl) {
    for (int64_t d = 0; d < D; ++d) acc[d] = 0.0f;
    qk(q, k, n, D, scale, sc);          // K streamed once
    const float m = max_of(sc, n);
    const float l = exp_sum(sc, n, m);
    pv(sc, v, n, D, acc);               // V streamed once
    *pm = m;
    *pl = l;
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
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
    const int T = omp_get_max_threads();
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    // flash-decoding: enough (head, chunk) units for every thread, chunks of at least 256 keys
    const int64_t want = (4 * T + BH - 1) / BH;
    const int64_t nsplit0 = std::max<int64_t>(1, std::min<int64_t>(want, S / 256));
    const int64_t chunk = (S + nsplit0 - 1) / nsplit0;
    const int64_t nsplit = (S + chunk - 1) / chunk;   // no empty chunk
    // per thread: the scores of one unit (or block), then its accumulator
    const int64_t stride = (chunk + 15) / 16 * 16 + (D + 15) / 16 * 16;
    float* scratch = static_cast<float*>(std::malloc(sizeof(float) * stride * T));
    float* parts = nsplit > 1 ? static_cast<float*>(std::malloc(sizeof(float) * BH * nsplit * (D + 2))) : nullptr;
    if (!scratch || (nsplit > 1 && !parts)) { std::free(scratch); std::free(parts); return 2; }
    #pragma omp parallel num_threads(T)
    {
        float* sc = scratch + (int64_t)omp_get_thread_num() * stride;
        float* acc = sc + (chunk + 15) / 16 * 16;
        #pragma omp for schedule(static)
        for (int64_t w = 0; w < BH * nsplit; ++w) {
            const int64_t bh = w / nsplit, c = w % nsplit;
            const int64_t s0 = c * chunk, n = std::min<int64_t>(chunk, S - s0);
            float m, l;
            unit(q + bh * D, k + (bh * S + s0) * D, v + (bh * S + s0) * D, n, D, scale, sc, acc, &m, &l);
            if (nsplit == 1) {
                const float inv = 1.0f / l;
                for (int64_t d = 0; d < D; ++d) out[bh * D + d] = acc[d] * inv;
            } else {   // keep the partial triple for the merge
                float* part = parts + w * (D + 2);
                part[0] = m;
                part[1] = l;
                std::memcpy(part + 2, acc, sizeof(float) * D);
            }
        }
        if (nsplit > 1) {
            #pragma omp barrier
            // merge a head's chunks: rescale each to the common max, out = sum(acc_c e^(m_c - M)) / sum(l_c e^(m_c - M))
            #pragma omp for schedule(static)
            for (int64_t bh = 0; bh < BH; ++bh) {
                const float* pc = parts + bh * nsplit * (D + 2);
                float mx = -FLT_MAX;
                for (int64_t c = 0; c < nsplit; ++c) mx = std::max(mx, pc[c * (D + 2)]);
                float* o = out + bh * D;
                for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
                double l = 0;
                for (int64_t c = 0; c < nsplit; ++c) {
                    const float r = std::exp(pc[c * (D + 2)] - mx);
                    l += static_cast<double>(pc[c * (D + 2) + 1]) * r;
                    for (int64_t d = 0; d < D; ++d) o[d] += pc[c * (D + 2) + 2 + d] * r;
                }
                const float inv = static_cast<float>(1.0 / l);
                for (int64_t d = 0; d < D; ++d) o[d] *= inv;
            }
        }
    }
    std::free(parts);
    std::free(scratch);
    return 0;
}
