/* gain.c — a level control that never clicks.
 *
 * The host may rewrite `db` between any two blocks. Jumping to the new level
 * would put a step into the waveform, so a change starts a linear ramp over
 * US_GAIN_RAMP samples from the gain in force (even mid-ramp) to the new one.
 * Everything the ramp needs is in the state, so a spare that takes over in
 * the middle of a ramp continues it sample for sample. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_dspmath.h"
#include "us_kernel.h"

#define US_GAIN_RAMP 64u /* 1.3 ms at 48 kHz: inaudible as a fade, long enough to hide the step */

/* Mirrored byte for byte by cdsp/gotwin/gain.go (State, SetState). */
typedef struct us_gain_state {
    float db;      /* the param value the target was made from: a change is detected on it */
    float target;  /* linear */
    float start;   /* linear gain the current ramp left from */
    float cur;     /* linear gain applied to the last frame */
    uint32_t pos;  /* ramp frames done; US_GAIN_RAMP once settled */
} us_gain_state;

static const us_param_spec gain_params[] = {
    {"db", "dB", -120.0f, 24.0f, 0.0f, 0},
};

static float db_to_linear(float db) {
    return (float)us_exp((double)db * US_LN10_20);
}

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
    st->target = st->start = st->cur = db_to_linear(db);
    st->pos = US_GAIN_RAMP;
    return 0;
}

static void gain_process(void *state, const float *params, float *buf,
                         uint32_t frames, uint32_t channels) {
    us_gain_state *st = state;
    const float db = params[0];
    if (db != st->db) {
        st->db = db;
        st->target = db_to_linear(db);
        st->start = st->cur;
        st->pos = st->target == st->cur ? US_GAIN_RAMP : 0;
    }

    uint32_t pos = st->pos;
    float g = st->cur;
    size_t i = 0;
    uint32_t n = 0;
    for (; n < frames && pos < US_GAIN_RAMP; n++) {
        pos++;
        /* The last ramp frame takes the target itself: start + (target - start)
         * need not round back to target, and a settled gain must be exact. */
        if (pos == US_GAIN_RAMP)
            g = st->target;
        else
            g = st->start + (st->target - st->start) * ((float)pos * (1.0f / (float)US_GAIN_RAMP));
        for (uint32_t c = 0; c < channels; c++, i++) buf[i] = buf[i] * g;
    }
    st->pos = pos;
    st->cur = g;

    const size_t end = (size_t)frames * channels;
    for (; i < end; i++) buf[i] = buf[i] * g;
}

const us_kernel us_kernel_gain = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "gain",
    .variant = "scalar",
    .summary = "gain in dB; a change ramps linearly over 64 samples",
    .n_params = sizeof gain_params / sizeof gain_params[0],
    .params = gain_params,
    .state_bytes = gain_state_bytes,
    .init = gain_init,
    .process = gain_process,
};
