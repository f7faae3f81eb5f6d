/* biquad.c — the RBJ "Audio EQ Cookbook" designs, each as a cascade of 1..8
 * identical second-order sections.
 *
 * Structure: Direct Form I,
 *     y = b0*x + b1*x1 + b2*x2 - a1*y1 - a2*y2
 * with x1 x2 y1 y2 kept per channel per section. Why not transposed DF-II,
 * which needs half the state:
 *   - DF-I's history is the signal itself, past inputs and outputs, bounded by
 *     the signal level whatever the coefficients. TDF-II keeps partial sums
 *     already weighted by the coefficients, so they mean something only for
 *     the coefficients that made them; once coefficients can change while a
 *     lane runs (a swept f), DF-I carries on from a valid history where
 *     TDF-II clicks.
 *   - A committed DF-I state is readable in a dump: the last two samples in
 *     and out of every section.
 *   - Each output is one expression with one fixed evaluation order, which the
 *     Go twin reproduces operation for operation.
 * The cost, 16 bytes per section per channel, is 2 KiB at 8 sections x 16
 * channels, within a lane's 64 KiB.
 *
 * Coefficients are computed in double, in init and in update (a live change
 * of f, q or db), and live in the state: process needs neither params nor
 * libm, and a spare resuming from committed state cannot compute them
 * differently. The params passed to process are therefore ignored. update
 * keeps the history (DF-I, above); `sections` is not live, since it changes
 * which history is in use.
 *
 * The SIMD variants (simd_x86.c, simd_neon.c) run 4 or 8 channels per vector
 * and all sections at once as a wavefront (us_simd_tmpl.h); avx2 runs one or
 * two channels with the sections themselves across the vector's lanes, a
 * pipelined cascade (simd_x86.c). Both use this very expression per lane and
 * section, so they give the scalar's bits. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_dspmath.h"
#include "us_kernel.h"
#include "us_kstate.h"

enum bq_design { BQ_LOWPASS, BQ_HIGHPASS, BQ_BANDPASS, BQ_PEAKING, BQ_LOWSHELF, BQ_HIGHSHELF };

#define BQ_PARAM_F {"f", "Hz", 10.0f, 20000.0f, 1000.0f, 0}
#define BQ_PARAM_Q {"q", "", 0.1f, 40.0f, 0.7071f, 0}
#define BQ_PARAM_DB {"db", "dB", -48.0f, 48.0f, 0.0f, 0}
#define BQ_PARAM_SECTIONS {"sections", "", 1.0f, 8.0f, 1.0f, 1}

static const us_param_spec bq_params_plain[] = {BQ_PARAM_F, BQ_PARAM_Q, BQ_PARAM_SECTIONS};
static const us_param_spec bq_params_gain[] = {BQ_PARAM_F, BQ_PARAM_Q, BQ_PARAM_DB, BQ_PARAM_SECTIONS};

static size_t bq_state_bytes(uint32_t channels) {
    /* The section count is a param and state_bytes sees only channels, so room
     * for the most sections is reserved. */
    return sizeof(us_bq_state) + (size_t)channels * US_BQ_MAX_SECTIONS * 4 * sizeof(float);
}

/* Whether the design's values can be realised; written as negated
 * comparisons so that NaN is refused too. */
static int bq_valid(float rate, float f, float q, float db) {
    return rate > 0.0f && f > 0.0f && (double)f < 0.5 * (double)rate && q > 0.0f && db >= -48.0f && db <= 48.0f;
}

/* Writes the coefficients of design d into st; nothing else. */
static void bq_design(us_bq_state *st, float rate, enum bq_design d, float f, float q, float db) {

    double sn, cs;
    us_sincos((US_TWO_PI * (double)f) / (double)rate, &sn, &cs);
    const double alpha = sn / (2.0 * (double)q);
    const double A = us_exp((double)db * US_LN10_40);
    const double sqrtA = us_exp((double)db * US_LN10_80);
    const double ap1 = A + 1.0, am1 = A - 1.0, twoSqrtAalpha = 2.0 * sqrtA * alpha;

    double b0, b1, b2, a0, a1, a2;
    switch (d) {
    case BQ_LOWPASS:
        b1 = 1.0 - cs;
        b0 = b2 = b1 * 0.5;
        a0 = 1.0 + alpha, a1 = -2.0 * cs, a2 = 1.0 - alpha;
        break;
    case BQ_HIGHPASS:
        b1 = -(1.0 + cs);
        b0 = b2 = (1.0 + cs) * 0.5;
        a0 = 1.0 + alpha, a1 = -2.0 * cs, a2 = 1.0 - alpha;
        break;
    case BQ_BANDPASS: /* the cookbook's constant 0 dB peak gain form */
        b0 = alpha, b1 = 0.0, b2 = -alpha;
        a0 = 1.0 + alpha, a1 = -2.0 * cs, a2 = 1.0 - alpha;
        break;
    case BQ_PEAKING:
        b0 = 1.0 + alpha * A, b1 = -2.0 * cs, b2 = 1.0 - alpha * A;
        a0 = 1.0 + alpha / A, a1 = -2.0 * cs, a2 = 1.0 - alpha / A;
        break;
    case BQ_LOWSHELF:
        b0 = A * ((ap1 - am1 * cs) + twoSqrtAalpha);
        b1 = 2.0 * A * (am1 - ap1 * cs);
        b2 = A * ((ap1 - am1 * cs) - twoSqrtAalpha);
        a0 = (ap1 + am1 * cs) + twoSqrtAalpha;
        a1 = -2.0 * (am1 + ap1 * cs);
        a2 = (ap1 + am1 * cs) - twoSqrtAalpha;
        break;
    case BQ_HIGHSHELF:
        b0 = A * ((ap1 + am1 * cs) + twoSqrtAalpha);
        b1 = -2.0 * A * (am1 + ap1 * cs);
        b2 = A * ((ap1 + am1 * cs) - twoSqrtAalpha);
        a0 = (ap1 - am1 * cs) + twoSqrtAalpha;
        a1 = 2.0 * (am1 - ap1 * cs);
        a2 = (ap1 - am1 * cs) - twoSqrtAalpha;
        break;
    default:
        return;
    }
    st->b0 = (float)(b0 / a0);
    st->b1 = (float)(b1 / a0);
    st->b2 = (float)(b2 / a0);
    st->a1 = (float)(a1 / a0);
    st->a2 = (float)(a2 / a0);
}

static int bq_init(void *state, uint32_t channels, float rate, enum bq_design d,
                   float f, float q, float db, float sections) {
    if (channels == 0 || !bq_valid(rate, f, q, db) ||
        !(sections >= 1.0f && sections <= (float)US_BQ_MAX_SECTIONS) ||
        (float)(uint32_t)sections != sections)
        return -1;
    us_bq_state *st = state;
    /* Every byte, padding and unused sections included, is defined: states are
     * compared and copied as bytes. */
    memset(st, 0, bq_state_bytes(channels));
    st->channels = channels;
    st->sections = (uint32_t)sections;
    bq_design(st, rate, d, f, q, db);
    return 0;
}

/* A live change: new coefficients over the same history. A value that
 * cannot be realised (a cutoff at Nyquist: the host refuses it for the
 * built-ins) keeps the coefficients in force. */
static void bq_update(void *state, uint32_t channels, float rate, enum bq_design d, float f, float q, float db) {
    (void)channels;
    if (bq_valid(rate, f, q, db)) bq_design(state, rate, d, f, q, db);
}

static void bq_process(void *state, const float *params, float *buf,
                       uint32_t frames, uint32_t channels) {
    (void)params;
    us_bq_state *st = state;
    /* A state that disagrees with the call (a host bug) must not send us
     * outside the state buffer: process what both agree on. */
    const uint32_t nch = channels < st->channels ? channels : st->channels;
    const uint32_t ns = st->sections < US_BQ_MAX_SECTIONS ? st->sections : US_BQ_MAX_SECTIONS;
    const float b0 = st->b0, b1 = st->b1, b2 = st->b2, a1 = st->a1, a2 = st->a2;

    /* Section by section over the whole block keeps the history in registers;
     * each section's output is the same sequence as a per-sample cascade. */
    for (uint32_t ch = 0; ch < nch; ch++) {
        float *z = st->z + (size_t)ch * ns * 4;
        for (uint32_t s = 0; s < ns; s++, z += 4) {
            float x1 = z[0], x2 = z[1], y1 = z[2], y2 = z[3];
            float *p = buf + ch;
            for (uint32_t n = 0; n < frames; n++, p += channels) {
                const float x = *p;
                const float y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
                x2 = x1;
                x1 = x;
                y2 = y1;
                y1 = y;
                *p = y;
            }
            z[0] = x1;
            z[1] = x2;
            z[2] = y1;
            z[3] = y2;
        }
    }
}

static int lowpass_init(void *s, const float *p, uint32_t ch, float rate) {
    return bq_init(s, ch, rate, BQ_LOWPASS, p[0], p[1], 0.0f, p[2]);
}
static void lowpass_update(void *s, const float *p, uint32_t ch, float rate) {
    bq_update(s, ch, rate, BQ_LOWPASS, p[0], p[1], 0.0f);
}
static int highpass_init(void *s, const float *p, uint32_t ch, float rate) {
    return bq_init(s, ch, rate, BQ_HIGHPASS, p[0], p[1], 0.0f, p[2]);
}
static void highpass_update(void *s, const float *p, uint32_t ch, float rate) {
    bq_update(s, ch, rate, BQ_HIGHPASS, p[0], p[1], 0.0f);
}
static int bandpass_init(void *s, const float *p, uint32_t ch, float rate) {
    return bq_init(s, ch, rate, BQ_BANDPASS, p[0], p[1], 0.0f, p[2]);
}
static void bandpass_update(void *s, const float *p, uint32_t ch, float rate) {
    bq_update(s, ch, rate, BQ_BANDPASS, p[0], p[1], 0.0f);
}
static int peaking_init(void *s, const float *p, uint32_t ch, float rate) {
    return bq_init(s, ch, rate, BQ_PEAKING, p[0], p[1], p[2], p[3]);
}
static void peaking_update(void *s, const float *p, uint32_t ch, float rate) {
    bq_update(s, ch, rate, BQ_PEAKING, p[0], p[1], p[2]);
}
static int lowshelf_init(void *s, const float *p, uint32_t ch, float rate) {
    return bq_init(s, ch, rate, BQ_LOWSHELF, p[0], p[1], p[2], p[3]);
}
static void lowshelf_update(void *s, const float *p, uint32_t ch, float rate) {
    bq_update(s, ch, rate, BQ_LOWSHELF, p[0], p[1], p[2]);
}
static int highshelf_init(void *s, const float *p, uint32_t ch, float rate) {
    return bq_init(s, ch, rate, BQ_HIGHSHELF, p[0], p[1], p[2], p[3]);
}
static void highshelf_update(void *s, const float *p, uint32_t ch, float rate) {
    bq_update(s, ch, rate, BQ_HIGHSHELF, p[0], p[1], p[2]);
}

#define BQ_KERNEL_VARIANT(kname, sym, var, proc, plist, summ) \
    const us_kernel sym = {                                    \
        .abi_version = US_KERNEL_ABI_VERSION,                  \
        .name = #kname,                                        \
        .variant = var,                                        \
        .summary = summ,                                       \
        .n_params = sizeof plist / sizeof plist[0],            \
        .params = plist,                                       \
        .state_bytes = bq_state_bytes,                         \
        .init = kname##_init,                                  \
        .process = proc,                                       \
        /* all but sections, the last */                       \
        .live = (1u << (sizeof plist / sizeof plist[0] - 1)) - 1u, \
        .update = kname##_update,                              \
    }

#if defined(__x86_64__)
#define BQ_KERNEL(kname, plist, summ)                                                         \
    BQ_KERNEL_VARIANT(kname, us_kernel_##kname, "scalar", bq_process, plist, summ);           \
    BQ_KERNEL_VARIANT(kname, us_kernel_##kname##_sse2, "sse2", us_bq_process_sse2, plist, summ); \
    BQ_KERNEL_VARIANT(kname, us_kernel_##kname##_avx2, "avx2", us_bq_process_avx2, plist, summ)
#elif defined(__aarch64__)
#define BQ_KERNEL(kname, plist, summ)                                               \
    BQ_KERNEL_VARIANT(kname, us_kernel_##kname, "scalar", bq_process, plist, summ); \
    BQ_KERNEL_VARIANT(kname, us_kernel_##kname##_neon, "neon", us_bq_process_neon, plist, summ)
#else
#define BQ_KERNEL(kname, plist, summ) \
    BQ_KERNEL_VARIANT(kname, us_kernel_##kname, "scalar", bq_process, plist, summ)
#endif

BQ_KERNEL(lowpass, bq_params_plain, "RBJ low-pass biquad, 1..8 identical sections");
BQ_KERNEL(highpass, bq_params_plain, "RBJ high-pass biquad, 1..8 identical sections");
BQ_KERNEL(bandpass, bq_params_plain, "RBJ band-pass biquad (0 dB peak), 1..8 identical sections");
BQ_KERNEL(peaking, bq_params_gain, "RBJ peaking EQ biquad, 1..8 identical sections");
BQ_KERNEL(lowshelf, bq_params_gain, "RBJ low-shelf biquad, 1..8 identical sections");
BQ_KERNEL(highshelf, bq_params_gain, "RBJ high-shelf biquad, 1..8 identical sections");
