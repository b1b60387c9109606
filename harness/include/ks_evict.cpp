// kscout harness: evict a memory range from every level of the CPU's caches.
//
// Between timed calls the harness evicts the next call's inputs and (poisoned) output, so each
// call reads them from DRAM. Writing twice the last-level cache did the same for any working set,
// but costs 2 x LLC of writes per call: on a VM that reports a 480 MiB L3 that was ~100 ms a call,
// 5 s of a 50-call benchmark for a kernel that runs in 50 us. clflushopt costs in proportion to
// the bytes evicted (~17 ms for 400 MiB here, microseconds for small sets).
//
// Built by the harness (harness/evict.py), never by a candidate: a kernel cannot replace it.
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

static int has_clflushopt() {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 23) & 1;
}

__attribute__((target("clflushopt"))) static void evict_opt(const char* p, const char* end) {
    for (; p < end; p += 64) _mm_clflushopt((void*)p);
    _mm_sfence();   // clflushopt is weakly ordered: done before the timed call starts
}

static void evict_plain(const char* p, const char* end) {
    for (; p < end; p += 64) _mm_clflush(p);
    _mm_mfence();
}

static const int kMethod = has_clflushopt() ? 2 : 1;
#else
static const int kMethod = 0;   // no eviction instruction wired up here: the harness writes 2 x LLC instead
#endif

extern "C" {

// "clflushopt", "clflush", or "" where this build cannot evict (the caller falls back).
const char* ks_evict_method() {
    return kMethod == 2 ? "clflushopt" : kMethod == 1 ? "clflush" : "";
}

// Evict [ptr, ptr + n) from the caches (written back first if dirty). Returns 0, or -1 where
// this build cannot evict.
int ks_evict(const void* ptr, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    const char* p = (const char*)((uintptr_t)ptr & ~(uintptr_t)63);
    const char* end = (const char*)ptr + n;
    if (kMethod == 2) evict_opt(p, end); else evict_plain(p, end);
    return 0;
#else
    (void)ptr; (void)n;
    return -1;
#endif
}

}
