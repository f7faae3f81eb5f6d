/* simd_neon.c — the "neon" variants of gain, the biquads and fir, for
 * AArch64, where Advanced SIMD is part of the base architecture (no target
 * attribute, nothing to detect).
 *
 * The same algorithms as the x86 variants (us_simd_tmpl.h), 4 floats per
 * vector. AArch64 has fused multiply-add instructions and GCC implements
 * vmulq_f32 and vaddq_f32 as plain vector arithmetic, which it would fuse
 * into FMLA under its default -ffp-contract=fast: us_dspmath.h (included
 * through us_kstate.h) turns contraction off for this file, and the Makefile
 * says so again, so each product is rounded before it is added, as in the
 * scalar kernels. FPCR.FZ, which the worker sets, governs Advanced SIMD and
 * scalar arithmetic alike, so flushing cannot part them either.
 *
 * Not yet run on AArch64 hardware: the cdsp tests compare it with the scalar
 * kernels bit for bit wherever it is built. */
#include "us_kstate.h"

#if defined(__aarch64__)

#include <arm_neon.h>

static US_ALWAYS_INLINE float32x4_t ldp_neon(const float *p, uint32_t n) {
    const float32x4_t z = vdupq_n_f32(0.0f);
    if (n == 1) return vld1q_lane_f32(p, z, 0);
    const float32x4_t lo = vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
    return n == 2 ? lo : vld1q_lane_f32(p + 2, lo, 2);
}

static US_ALWAYS_INLINE void stp_neon(float *p, float32x4_t v, uint32_t n) {
    if (n == 1) {
        vst1q_lane_f32(p, v, 0);
        return;
    }
    vst1_f32(p, vget_low_f32(v));
    if (n == 3) vst1q_lane_f32(p + 2, v, 2);
}

#define TMPL_SFX neon
#define TMPL_TGT
#define TMPL_W 4
#define TMPL_PARTIAL 1
#define TV float32x4_t
#define TV_LOADU(p) vld1q_f32(p)
#define TV_STOREU(p, v) vst1q_f32(p, v)
#define TV_LOADP(p, n) ldp_neon(p, n)
#define TV_STOREP(p, v, n) stp_neon(p, v, n)
#define TV_SET1(x) vdupq_n_f32(x)
#define TV_ZERO() vdupq_n_f32(0.0f)
#define TV_ADD(a, b) vaddq_f32(a, b)
#define TV_SUB(a, b) vsubq_f32(a, b)
#define TV_MUL(a, b) vmulq_f32(a, b)
#include "us_simd_tmpl.h"

void us_gain_process_neon(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    us_gain_state *st = state;
    const size_t i = us_gain_ramp(st, params[0], buf, frames, channels);
    gain_mul_neon(buf + i, (size_t)frames * channels - i, st->cur);
}

void us_bq_process_neon(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    (void)params;
    us_bq_state *st = state;
    const uint32_t nch = channels < st->channels ? channels : st->channels;
    const uint32_t ns = st->sections < US_BQ_MAX_SECTIONS ? st->sections : US_BQ_MAX_SECTIONS;
    if (ns == 0) return;
    uint32_t c = 0;
    for (; c + 4 <= nch; c += 4) bq_group_neon(st, st->z + (size_t)c * ns * 4, ns, buf + c, frames, channels, 4);
    float *z = st->z + (size_t)c * ns * 4;
    switch (nch - c) {
    case 1: bq_group_neon(st, z, ns, buf + c, frames, channels, 1); break;
    case 2: bq_group_neon(st, z, ns, buf + c, frames, channels, 2); break;
    case 3: bq_group_neon(st, z, ns, buf + c, frames, channels, 3); break;
    default: break;
    }
}

void us_fir_process_neon(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    (void)params;
    us_fir_run(state, buf, frames, channels, fir_block_neon);
}

#endif
