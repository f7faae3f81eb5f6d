/* gain.c — a level control that never clicks.
 *
 * `db` changes live (the host may rewrite it between any two blocks). Jumping to the new level
 * would put a step into the waveform, so a change starts a linear ramp over
 * US_GAIN_RAMP samples from the gain in force (even mid-ramp) to the new one.
 * Everything the ramp needs is in the state, so a spare that takes over in
 * the middle of a ramp continues it sample for sample.
 *
 * The SIMD variants (simd_x86.c, simd_neon.c) share the ramp and only
 * vectorise the settled part, one product per sample as here: every variant
 * gives the scalar's bits. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_kernel.h"
#include "us_kstate.h"

static const us_param_spec gain_params[] = {
    {"db", "dB", -120.0f, 24.0f, 0.0f, 0},
};

static size_t gain_state_bytes(uint32_t channels) {
    (void)channels; /* one gain for all channels */
    return sizeof(us_gain_state);
}

static int gain_init(void *state, const float *params, uint32_t channels, float rate) {
    (void)rate;
    const float db = params[0];
    if (channels == 0 || !(db >= -120.0f && db <= 24.0f)) return -1;
    us_gain_state *st = state;
    memset(st, 0, sizeof *st);
    st->db = db;
    st->target = st->start = st->cur = us_db_to_linear(db);
    st->pos = US_GAIN_RAMP;
    return 0;
}

static void gain_process(void *state, const float *params, float *buf,
                         uint32_t frames, uint32_t channels) {
    us_gain_state *st = state;
    size_t i = us_gain_ramp(st, params[0], buf, frames, channels);
    const float g = st->cur;
    const size_t end = (size_t)frames * channels;
    for (; i < end; i++) buf[i] = buf[i] * g;
}

#define GAIN_KERNEL(sym, var, proc)                                   \
    const us_kernel sym = {                                           \
        .abi_version = US_KERNEL_ABI_VERSION,                         \
        .name = "gain",                                               \
        .variant = var,                                               \
        .summary = "gain in dB; a change ramps linearly over 64 samples", \
        .n_params = sizeof gain_params / sizeof gain_params[0],       \
        .params = gain_params,                                        \
        .state_bytes = gain_state_bytes,                              \
        .init = gain_init,                                            \
        .process = proc,                                              \
        .live = 1u, /* db: process ramps to it, no update needed */    \
    }

GAIN_KERNEL(us_kernel_gain, "scalar", gain_process);
#if defined(__x86_64__)
GAIN_KERNEL(us_kernel_gain_sse2, "sse2", us_gain_process_sse2);
GAIN_KERNEL(us_kernel_gain_avx2, "avx2", us_gain_process_avx2);
#endif
#if defined(__aarch64__)
GAIN_KERNEL(us_kernel_gain_neon, "neon", us_gain_process_neon);
#endif
