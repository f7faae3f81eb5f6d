/* pan.c — re-pans a stereo lane: its mono sum placed anywhere from left to
 * right.
 *
 * Blocks are in place with as many channels out as in, so a kernel cannot
 * take N inputs to a stereo bus. What it can do honestly, per frame:
 *   2 channels:  m = (L + R) * 0.5;  L' = m * gl;  R' = m * gr
 *   1 channel:   x' = (x * gl + x * gr) * 0.5
 * The mono case has nowhere to pan to, so it outputs the mono fold-down of
 * what the stereo case would make of x on both channels, operation for
 * operation: a pure gain, (gl + gr) / 2, which is -3 dB at the centre and
 * -6 dB at either edge under the constant-power law and -6 dB everywhere
 * under the linear one. Lanes of more channels are refused (state_bytes 0,
 * init -1): which pairs to pan, or how, is a choice this kernel does not make.
 *
 * Laws, for pos in -1 (left) .. 1 (right):
 *   law 0, constant power: gl = cos t, gr = sin t, t = (pos + 1) pi/4
 *          (-3 dB each at the centre, the summed power constant)
 *   law 1, linear:         gl = (1 - pos)/2, gr = (1 + pos)/2
 *          (-6 dB each at the centre, the summed amplitude constant)
 * Computed in double from us_dspmath.h, from the nearer edge, so that a hard
 * pan is exactly 0 and 1 and pos and -pos give mirrored gains bit for bit
 * (us_panlaw.h, shared with mix.c).
 *
 * pos and law may change between any two blocks: as with gain, the change
 * ramps both gains linearly over US_PAN_RAMP frames from wherever they are,
 * and the ramp lives in the state so a spare continues it. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_dspmath.h"
#include "us_kernel.h"
#include "us_panlaw.h"

#define US_PAN_RAMP 64u
#define US_PAN_MAX_CHANNELS 2u

/* Mirrored byte for byte by cdsp/gotwin/pan.go (State, SetState). */
typedef struct us_pan_state {
    uint32_t channels; /* as at init: 1 or 2 */
    float pos, law;    /* the params the targets were made from: a change is detected on them */
    float tl, tr;      /* target gains */
    float sl, sr;      /* gains the current ramp left from */
    float cl, cr;      /* gains applied to the last frame */
    uint32_t ramp;     /* ramp frames done; US_PAN_RAMP once settled */
} us_pan_state;

static const us_param_spec pan_params[] = {
    {"pos", "", -1.0f, 1.0f, 0.0f, 0},
    {"law", "", 0.0f, 1.0f, 0.0f, 1},
};

static void pan_gains(float pos, float law, float *gl, float *gr) {
    double l, r;
    us_pan_law(pos, law, &l, &r);
    *gl = (float)l;
    *gr = (float)r;
}

static size_t pan_state_bytes(uint32_t channels) {
    return channels <= US_PAN_MAX_CHANNELS ? sizeof(us_pan_state) : 0;
}

static int pan_init(void *state, const float *params, uint32_t channels, float rate) {
    (void)rate;
    const float pos = params[0], law = params[1];
    if (channels == 0 || channels > US_PAN_MAX_CHANNELS || !(pos >= -1.0f && pos <= 1.0f) ||
        !(law == 0.0f || law == 1.0f))
        return -1;
    us_pan_state *st = state;
    memset(st, 0, sizeof *st);
    st->channels = channels;
    st->pos = pos;
    st->law = law;
    pan_gains(pos, law, &st->tl, &st->tr);
    st->sl = st->cl = st->tl;
    st->sr = st->cr = st->tr;
    st->ramp = US_PAN_RAMP;
    return 0;
}

static void pan_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    us_pan_state *st = state;
    const float pos = params[0], law = params[1];
    if (pos != st->pos || law != st->law) {
        st->pos = pos;
        st->law = law;
        pan_gains(pos, law, &st->tl, &st->tr);
        st->sl = st->cl;
        st->sr = st->cr;
        st->ramp = st->tl == st->cl && st->tr == st->cr ? US_PAN_RAMP : 0;
    }
    /* The call's channel count lays out buf; one the kernel never agreed to
     * (a host bug) leaves the block alone rather than guess. */
    if (channels != st->channels) return;

    float gl = st->cl, gr = st->cr;
    uint32_t ramp = st->ramp;
    for (uint32_t n = 0; n < frames; n++) {
        if (ramp < US_PAN_RAMP) {
            ramp++;
            /* The last ramp frame takes the targets themselves, as gain does. */
            if (ramp == US_PAN_RAMP) {
                gl = st->tl;
                gr = st->tr;
            } else {
                const float u = (float)ramp * (1.0f / (float)US_PAN_RAMP);
                gl = st->sl + (st->tl - st->sl) * u;
                gr = st->sr + (st->tr - st->sr) * u;
            }
        }
        if (channels == 2) {
            float *p = buf + 2 * (size_t)n;
            const float m = (p[0] + p[1]) * 0.5f;
            p[0] = m * gl;
            p[1] = m * gr;
        } else {
            const float x = buf[n];
            buf[n] = (x * gl + x * gr) * 0.5f;
        }
    }
    st->cl = gl;
    st->cr = gr;
    st->ramp = ramp;
}

const us_kernel us_kernel_pan = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "pan",
    .variant = "scalar",
    .summary = "mono sum of a stereo lane re-panned (constant-power or linear law); 1 channel: a gain",
    .n_params = sizeof pan_params / sizeof pan_params[0],
    .params = pan_params,
    .state_bytes = pan_state_bytes,
    .init = pan_init,
    .process = pan_process,
};
