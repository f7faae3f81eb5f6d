/* simd_x86.c — the "sse2" and "avx2" variants of gain, the biquads and fir.
 *
 * No file is built with -mavx2: the AVX2 code is enabled per function with
 * a target attribute, so one worker binary runs on any x86-64 and a lane asks
 * for avx2 only after us_variant_supported() said yes. The attribute names
 * avx2 alone, not fma: without FMA instructions available the compiler cannot
 * fuse a multiply and an add even if contraction were left on somewhere, and
 * a fused result would differ from the scalar kernel's in the last bit.
 *
 * The algorithms are in us_simd_tmpl.h, included here once per flavour:
 *   sse2       128-bit, 4 channels (or outputs) per vector
 *   avx2_256   256-bit, 8 per vector
 *   avx2_128   128-bit in VEX encoding, for the channels left over after the
 *              groups of 8; legacy-SSE instructions would pay an AVX/SSE
 *              transition on some cores, and a masked 256-bit store is slow on
 *              AMD cores. */
#include "us_kstate.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define TGT_SSE2 __attribute__((target("sse2")))
#define TGT_AVX2 __attribute__((target("avx2")))

/* The first n (1..3) floats of a 128-bit vector, the rest zero. __m64 is a
 * may_alias type, so the 2-float moves are sound on a float array. */
#define X86_PARTIAL(sfx, tgt)                                                                       \
    static US_ALWAYS_INLINE __attribute__((target(tgt))) __m128 ldp_##sfx(const float *p, uint32_t n) { \
        if (n == 1) return _mm_load_ss(p);                                                          \
        const __m128 lo = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)p);                         \
        return n == 2 ? lo : _mm_movelh_ps(lo, _mm_load_ss(p + 2));                                 \
    }                                                                                               \
    static US_ALWAYS_INLINE __attribute__((target(tgt))) void stp_##sfx(float *p, __m128 v, uint32_t n) { \
        if (n == 1) {                                                                               \
            _mm_store_ss(p, v);                                                                     \
            return;                                                                                 \
        }                                                                                           \
        _mm_storel_pi((__m64 *)p, v);                                                               \
        if (n == 3) _mm_store_ss(p + 2, _mm_movehl_ps(v, v));                                       \
    }

X86_PARTIAL(sse2, "sse2")
X86_PARTIAL(avx2_128, "avx2")

/* ---- sse2 ---- */
#define TMPL_SFX sse2
#define TMPL_TGT TGT_SSE2
#define TMPL_W 4
#define TMPL_PARTIAL 1
#define TV __m128
#define TV_LOADU(p) _mm_loadu_ps(p)
#define TV_STOREU(p, v) _mm_storeu_ps(p, v)
#define TV_LOADP(p, n) ldp_sse2(p, n)
#define TV_STOREP(p, v, n) stp_sse2(p, v, n)
#define TV_SET1(x) _mm_set1_ps(x)
#define TV_ZERO() _mm_setzero_ps()
#define TV_ADD(a, b) _mm_add_ps(a, b)
#define TV_SUB(a, b) _mm_sub_ps(a, b)
#define TV_MUL(a, b) _mm_mul_ps(a, b)
#include "us_simd_tmpl.h"
#undef TMPL_SFX
#undef TMPL_TGT
#undef TV_LOADP
#undef TV_STOREP

/* ---- avx2, 128-bit lanes (same vector macros, VEX encoded) ---- */
#define TMPL_SFX avx2_128
#define TMPL_TGT TGT_AVX2
#define TV_LOADP(p, n) ldp_avx2_128(p, n)
#define TV_STOREP(p, v, n) stp_avx2_128(p, v, n)
#include "us_simd_tmpl.h"
#undef TMPL_SFX
#undef TMPL_W
#undef TMPL_PARTIAL
#undef TV
#undef TV_LOADU
#undef TV_STOREU
#undef TV_LOADP
#undef TV_STOREP
#undef TV_SET1
#undef TV_ZERO
#undef TV_ADD
#undef TV_SUB
#undef TV_MUL

/* ---- avx2, 256-bit: full groups of 8 only ---- */
#define TMPL_SFX avx2_256
#define TMPL_W 8
#define TMPL_PARTIAL 0
#define TV __m256
#define TV_LOADU(p) _mm256_loadu_ps(p)
#define TV_STOREU(p, v) _mm256_storeu_ps(p, v)
#define TV_SET1(x) _mm256_set1_ps(x)
#define TV_ZERO() _mm256_setzero_ps()
#define TV_ADD(a, b) _mm256_add_ps(a, b)
#define TV_SUB(a, b) _mm256_sub_ps(a, b)
#define TV_MUL(a, b) _mm256_mul_ps(a, b)
#include "us_simd_tmpl.h"
#undef TMPL_SFX
#undef TMPL_TGT

/* ---- gain ---- */

TGT_SSE2 void us_gain_process_sse2(void *state, const float *params, float *buf, uint32_t frames,
                                   uint32_t channels) {
    us_gain_state *st = state;
    const size_t i = us_gain_ramp(st, params[0], buf, frames, channels);
    gain_mul_sse2(buf + i, (size_t)frames * channels - i, st->cur);
}

TGT_AVX2 void us_gain_process_avx2(void *state, const float *params, float *buf, uint32_t frames,
                                   uint32_t channels) {
    us_gain_state *st = state;
    const size_t i = us_gain_ramp(st, params[0], buf, frames, channels);
    gain_mul_avx2_256(buf + i, (size_t)frames * channels - i, st->cur);
}

/* ---- biquads ---- */

/* The bounds bq_process applies, for the same reason: a state that disagrees
 * with the call must not send us outside the buffers. */
static inline uint32_t bq_channels(const us_bq_state *st, uint32_t channels) {
    return channels < st->channels ? channels : st->channels;
}
static inline uint32_t bq_sections(const us_bq_state *st) {
    return st->sections < US_BQ_MAX_SECTIONS ? st->sections : US_BQ_MAX_SECTIONS;
}

TGT_SSE2 void us_bq_process_sse2(void *state, const float *params, float *buf, uint32_t frames,
                                 uint32_t channels) {
    (void)params;
    us_bq_state *st = state;
    const uint32_t nch = bq_channels(st, channels), ns = bq_sections(st);
    if (ns == 0) return;
    uint32_t c = 0;
    for (; c + 4 <= nch; c += 4) bq_group_sse2(st, st->z + (size_t)c * ns * 4, ns, buf + c, frames, channels, 4);
    float *z = st->z + (size_t)c * ns * 4;
    switch (nch - c) {
    case 1: bq_group_sse2(st, z, ns, buf + c, frames, channels, 1); break;
    case 2: bq_group_sse2(st, z, ns, buf + c, frames, channels, 2); break;
    case 3: bq_group_sse2(st, z, ns, buf + c, frames, channels, 3); break;
    default: break;
    }
}

TGT_AVX2 void us_bq_process_avx2(void *state, const float *params, float *buf, uint32_t frames,
                                 uint32_t channels) {
    (void)params;
    us_bq_state *st = state;
    const uint32_t nch = bq_channels(st, channels), ns = bq_sections(st);
    if (ns == 0) return;
    uint32_t c = 0;
    for (; c + 8 <= nch; c += 8)
        bq_group_avx2_256(st, st->z + (size_t)c * ns * 4, ns, buf + c, frames, channels, 8);
    for (; c + 4 <= nch; c += 4)
        bq_group_avx2_128(st, st->z + (size_t)c * ns * 4, ns, buf + c, frames, channels, 4);
    float *z = st->z + (size_t)c * ns * 4;
    switch (nch - c) {
    case 1: bq_group_avx2_128(st, z, ns, buf + c, frames, channels, 1); break;
    case 2: bq_group_avx2_128(st, z, ns, buf + c, frames, channels, 2); break;
    case 3: bq_group_avx2_128(st, z, ns, buf + c, frames, channels, 3); break;
    default: break;
    }
}

/* ---- fir ---- */

TGT_SSE2 void us_fir_process_sse2(void *state, const float *params, float *buf, uint32_t frames,
                                  uint32_t channels) {
    (void)params;
    us_fir_run(state, buf, frames, channels, fir_block_sse2);
}

TGT_AVX2 void us_fir_process_avx2(void *state, const float *params, float *buf, uint32_t frames,
                                  uint32_t channels) {
    (void)params;
    us_fir_run(state, buf, frames, channels, fir_block_avx2_256);
}

#endif
