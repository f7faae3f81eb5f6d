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
 *              AMD cores.
 * The biquads' last one or two channels (a stereo lane's only ones) take a
 * third path, written here for AVX2 alone: the sections across the lanes
 * (bq_skew, below). */
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

/* ---- avx2: one or two channels, the sections across the lanes ----
 *
 * A stereo group fills a quarter of a 256-bit vector, and the wavefront above
 * then spends a whole vector op per section on two samples. Here the lanes
 * hold (section, channel) pairs instead: lane C*s + c is section s of channel
 * c, so 8 sections of a stereo pair fill two vectors and one step runs every
 * section of the cascade at once, a pipeline: section s works on frame t - K*s
 * at step t, its input being section s-1's output K steps earlier, which a
 * lane permute shifts up by one section (C lanes) with the new frame blended
 * into section 0's lanes. Each lane computes the scalar expression
 *     y = b0*x + b1*x1 + b2*x2 - a1*y1 - a2*y2
 * left to right on the very sequence the scalar code gives that section, so
 * the bits are the scalar's.
 *
 * Why a skew of K = 2 and not 1: a step's critical path is a section's own
 * recurrence (y1 -> a1*y1 -> two subtractions, 9-12 cycles) and the input
 * path (the previous section's output -> permute -> blend -> the whole
 * expression, 20-24 cycles). With K = 1 the input path bounds every step;
 * with K = 2 it spreads over two steps and the recurrence bounds it.
 *
 * While the pipeline fills and drains, a section outside its frames must keep
 * its state: those steps blend the new history in only where the lane is
 * active, and keep a separate unmasked copy of the outputs (O1, O2) as the
 * next section's input source, since a frozen section's y2 is not the output
 * K steps back. Lanes past the last section compute on what shifts into them
 * and are never stored. */

#define BQS_K 2

static US_ALWAYS_INLINE TGT_AVX2 __m256 bqs_blend_low(__m256 a, __m256 lo, uint32_t C) {
    return C == 1 ? _mm256_blend_ps(a, lo, 0x01) : _mm256_blend_ps(a, lo, 0x03);
}

static US_ALWAYS_INLINE TGT_AVX2 __m256 bqs_load(const float *p, uint32_t C) {
    const __m128 v = C == 1 ? _mm_load_ss(p) : _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)p);
    return _mm256_castps128_ps256(v);
}

static US_ALWAYS_INLINE TGT_AVX2 void bqs_store(float *p, __m256 v, __m256i at, uint32_t C) {
    const __m128 o = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, at));
    if (C == 1)
        _mm_store_ss(p, o);
    else
        _mm_storel_pi((__m64 *)p, o);
}

/* C channels (1 or 2) at buf, NV vectors (1 or 2, C*ns <= 8*NV). */
static US_ALWAYS_INLINE TGT_AVX2 void bq_skew(const us_bq_state *st, float *z, uint32_t ns, float *buf,
                                              uint32_t frames, uint32_t channels, const uint32_t C,
                                              const uint32_t NV) {
    float tmp[4][2][8] __attribute__((aligned(32)));
    int32_t ksa[2][8] __attribute__((aligned(32)));
    int32_t sha[8] __attribute__((aligned(32))), outa[8] __attribute__((aligned(32)));
    for (uint32_t v = 0; v < NV; v++)
        for (uint32_t l = 0; l < 8; l++) {
            const uint32_t lane = 8 * v + l, s = lane / C, c = lane % C;
            for (uint32_t k = 0; k < 4; k++) tmp[k][v][l] = s < ns ? z[((size_t)c * ns + s) * 4 + k] : 0.0f;
            /* Lanes past the last section are never active. */
            ksa[v][l] = s < ns ? (int32_t)(BQS_K * s) : INT32_MAX;
        }
    const uint32_t last = C * (ns - 1), ov = last / 8;
    for (uint32_t l = 0; l < 8; l++) {
        sha[l] = (int32_t)((l + 8 - C) % 8);
        outa[l] = (int32_t)((last % 8 + l) % 8);
    }
    const __m256i sh = _mm256_load_si256((const __m256i *)sha), at = _mm256_load_si256((const __m256i *)outa);
    const __m256 b0 = _mm256_set1_ps(st->b0), b1 = _mm256_set1_ps(st->b1), b2 = _mm256_set1_ps(st->b2);
    const __m256 a1 = _mm256_set1_ps(st->a1), a2 = _mm256_set1_ps(st->a2);
    /* Vector 0's registers end in a, vector 1's in b: spelled out rather
     * than arrays, which GCC keeps on the stack, putting a store and a load
     * into every step's critical path. */
    __m256 X1a = _mm256_load_ps(tmp[0][0]), X2a = _mm256_load_ps(tmp[1][0]);
    __m256 Y1a = _mm256_load_ps(tmp[2][0]), Y2a = _mm256_load_ps(tmp[3][0]);
    __m256 O1a = _mm256_setzero_ps(), O2a = O1a;
    const __m256i KSa = _mm256_load_si256((const __m256i *)ksa[0]);
    __m256 X1b = _mm256_setzero_ps(), X2b = X1b, Y1b = X1b, Y2b = X1b, O1b = X1b, O2b = X1b;
    __m256i KSb = _mm256_setzero_si256();
    if (NV == 2) {
        X1b = _mm256_load_ps(tmp[0][1]);
        X2b = _mm256_load_ps(tmp[1][1]);
        Y1b = _mm256_load_ps(tmp[2][1]);
        Y2b = _mm256_load_ps(tmp[3][1]);
        KSb = _mm256_load_si256((const __m256i *)ksa[1]);
    }

    const int64_t F = frames, D = (int64_t)BQS_K * (ns - 1);
#define BQS_Y(x, v) \
    _mm256_sub_ps(_mm256_sub_ps(_mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(b0, x), _mm256_mul_ps(b1, X1##v)), \
                                              _mm256_mul_ps(b2, X2##v)),                                  \
                                _mm256_mul_ps(a1, Y1##v)),                                                \
                  _mm256_mul_ps(a2, Y2##v))
/* One step's inputs, from the outputs K = 2 steps back (SRC2a, SRC2b) and
 * the new frame, and its outputs ya, yb. */
#define BQS_COMPUTE(SRC2a, SRC2b, in)                                                    \
    const __m256 pa = _mm256_permutevar8x32_ps(SRC2a, sh);                                \
    const __m256 xa = bqs_blend_low(pa, in, C);                                           \
    const __m256 xb = NV == 2 ? bqs_blend_low(_mm256_permutevar8x32_ps(SRC2b, sh), pa, C) : pa; \
    const __m256 ya = BQS_Y(xa, a);                                                       \
    const __m256 yb = NV == 2 ? BQS_Y(xb, b) : ya;
#define BQS_MASK(v, m)                                                                    \
    X2##v = _mm256_blendv_ps(X2##v, X1##v, m);                                            \
    X1##v = _mm256_blendv_ps(X1##v, x##v, m);                                             \
    Y2##v = _mm256_blendv_ps(Y2##v, Y1##v, m);                                            \
    Y1##v = _mm256_blendv_ps(Y1##v, y##v, m);                                             \
    O2##v = O1##v;                                                                        \
    O1##v = _mm256_and_ps(y##v, m);
#define BQS_ACTIVE(KS) \
    _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(KS, tv), _mm256_cmpgt_epi32(KS, tf)))

    /* Steps where some lane is outside its frames: [lo, hi). */
#define BQS_MASKED(lo, hi)                                                                         \
    for (int64_t t = (lo); t < (hi); t++) {                                                        \
        const __m256 in = t < F ? bqs_load(buf + (size_t)t * channels, C) : _mm256_setzero_ps();  \
        BQS_COMPUTE(O2a, O2b, in)                                                                  \
        const __m256i tv = _mm256_set1_epi32((int32_t)t), tf = _mm256_set1_epi32((int32_t)(t - F)); \
        const __m256 ma = BQS_ACTIVE(KSa);                                                         \
        BQS_MASK(a, ma)                                                                            \
        if (NV == 2) {                                                                             \
            const __m256 mb = BQS_ACTIVE(KSb);                                                     \
            BQS_MASK(b, mb)                                                                        \
        }                                                                                          \
        if (t >= D && t - D < F) bqs_store(buf + (size_t)(t - D) * channels, ov ? yb : ya, at, C); \
    }

    if (F <= D) {
        BQS_MASKED(0, F + D)
    } else {
        BQS_MASKED(0, D)
        /* Every section busy: each one's y2 is its output K steps back. */
        if (ov) {
            for (int64_t t = D; t < F; t++) {
                const __m256 in = bqs_load(buf + (size_t)t * channels, C);
                BQS_COMPUTE(Y2a, Y2b, in)
                X2a = X1a, X1a = xa, Y2a = Y1a, Y1a = ya;
                X2b = X1b, X1b = xb, Y2b = Y1b, Y1b = yb;
                bqs_store(buf + (size_t)(t - D) * channels, yb, at, C);
            }
        } else {
            for (int64_t t = D; t < F; t++) {
                const __m256 in = bqs_load(buf + (size_t)t * channels, C);
                BQS_COMPUTE(Y2a, Y2b, in)
                X2a = X1a, X1a = xa, Y2a = Y1a, Y1a = ya;
                if (NV == 2) X2b = X1b, X1b = xb, Y2b = Y1b, Y1b = yb;
                bqs_store(buf + (size_t)(t - D) * channels, ya, at, C);
            }
        }
        O1a = Y1a, O2a = Y2a, O1b = Y1b, O2b = Y2b;
        BQS_MASKED(F, F + D)
    }
#undef BQS_MASKED
#undef BQS_ACTIVE
#undef BQS_MASK
#undef BQS_COMPUTE
#undef BQS_Y

    _mm256_store_ps(tmp[0][0], X1a);
    _mm256_store_ps(tmp[1][0], X2a);
    _mm256_store_ps(tmp[2][0], Y1a);
    _mm256_store_ps(tmp[3][0], Y2a);
    if (NV == 2) {
        _mm256_store_ps(tmp[0][1], X1b);
        _mm256_store_ps(tmp[1][1], X2b);
        _mm256_store_ps(tmp[2][1], Y1b);
        _mm256_store_ps(tmp[3][1], Y2b);
    }
    for (uint32_t v = 0; v < NV; v++)
        for (uint32_t l = 0; l < 8; l++) {
            const uint32_t lane = 8 * v + l, s = lane / C, c = lane % C;
            if (s < ns)
                for (uint32_t k = 0; k < 4; k++) z[((size_t)c * ns + s) * 4 + k] = tmp[k][v][l];
        }
}

/* The one or two channels left after the groups of 4 and 8. */
static TGT_AVX2 void bq_skew_rest(const us_bq_state *st, float *z, uint32_t ns, float *buf, uint32_t frames,
                                  uint32_t channels, uint32_t cnt) {
    if (cnt == 1)
        bq_skew(st, z, ns, buf, frames, channels, 1, 1);
    else if (ns <= 4)
        bq_skew(st, z, ns, buf, frames, channels, 2, 1);
    else
        bq_skew(st, z, ns, buf, frames, channels, 2, 2);
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
    /* One section has no cascade to pipeline: its lanes' input would wait on
     * a permute of its own outputs, and the narrow group is faster. The
     * pipeline's step index is compared as int32; a block that long (never
     * met in practice) takes the wavefront. */
    const int skew = ns >= 2 && frames < (uint32_t)INT32_MAX / 2;
    if (skew && nch - c == 3) {
        bq_skew_rest(st, st->z + (size_t)c * ns * 4, ns, buf + c, frames, channels, 2);
        c += 2;
    }
    float *z = st->z + (size_t)c * ns * 4;
    switch (nch - c) {
    case 1:
        if (skew)
            bq_skew_rest(st, z, ns, buf + c, frames, channels, 1);
        else
            bq_group_avx2_128(st, z, ns, buf + c, frames, channels, 1);
        break;
    case 2:
        if (skew)
            bq_skew_rest(st, z, ns, buf + c, frames, channels, 2);
        else
            bq_group_avx2_128(st, z, ns, buf + c, frames, channels, 2);
        break;
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
