/* mix.c — mixes the N channels of a lane to stereo, each panned on its own.
 *
 * Blocks are in place with as many channels out as in, so the stereo bus is
 * the lane's first two channels: for a lane of N channels, 1 <= N <= 8
 * (state_bytes 0 and init -1 beyond), input i (0-based, pan position param
 * p<i+1>) is placed by pan.c's laws (us_panlaw.h) and
 *     channel 0 (L) gets the left mix, channel 1 (R) the right mix,
 *     channels 2 .. N-1 get +0.
 * One channel has nowhere to pan to: as in pan.c, it gets the mono fold-down
 * of what the stereo mix would be, operation for operation: (L + R) * 0.5.
 *
 * Params: p1 .. p8, positions -1 (left) .. 1 (right), default 0, so by
 * default every input sits in the centre (-3 dB on each side under the
 * constant-power law: a stereo lane left at the defaults comes out as its
 * mono sum on both sides); p<k> for k > N is ignored. law 0 constant power,
 * 1 linear, as pan's. trim, in dB, scales both outputs; 0 dB is exactly 1.
 *
 * Gains, one pair per input, trim folded in, in double and rounded to float
 * once (when params change, never per frame):
 *     gl_i = (float)(panL(p_i) * trim),  gr_i = (float)(panR(p_i) * trim)
 * Per frame, in float, left to right, in exactly this order:
 *     L = ((x0*gl0 + x1*gl1) + x2*gl2) + ... + x(N-1)*gl(N-1)
 *     R = the same with gr
 * with two refinements that change no non-zero finite result:
 *   - a term whose gain is exactly 0 (the far side of a hard pan) is left
 *     out; x*0 could only flip the sign of a zero sum, or turn an inf on one
 *     input into a NaN on the side it is panned away from;
 *   - each sum starts from -0, which adding leaves alone (-0 + y is y, bit for
 *     bit, for every y), so a sum of one term is that term. Hence N = 2 with
 *     p1 = -1, p2 = 1, law 0, trim 0 (gains exactly 1, 0 / 0, 1) passes the
 *     lane through bit for bit, signed zeros and infinities included. A side
 *     with no terms at all is -0.
 *
 * Any param may change between any two blocks: as with gain and pan, every
 * gain then ramps linearly over US_MIX_RAMP frames from wherever it is to its
 * new target, one ramp counter for all of them; the ramp lives in the state,
 * so a spare continues it. A call whose channel count differs from init's
 * leaves the block alone. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_dspmath.h"
#include "us_kernel.h"
#include "us_panlaw.h"

#define US_MIX_RAMP 64u
#define US_MIX_MAX_INPUTS 8u
#define US_MIX_LAW US_MIX_MAX_INPUTS         /* params[8] */
#define US_MIX_TRIM (US_MIX_MAX_INPUTS + 1u) /* params[9] */
#define US_MIX_TRIM_MIN (-60.0f)
#define US_MIX_TRIM_MAX 12.0f

/* Mirrored byte for byte by cdsp/gotwin/mix.go (State, SetState). The same
 * 240 bytes for every channel count; entries from N on stay 0. */
typedef struct us_mix_state {
    uint32_t channels;              /* as at init: 1 .. US_MIX_MAX_INPUTS */
    uint32_t ramp;                  /* ramp frames done; US_MIX_RAMP once settled */
    float law, trim;                /* the params the targets were made from: */
    float pos[US_MIX_MAX_INPUTS];   /* a change is detected on them */
    float tl[US_MIX_MAX_INPUTS], tr[US_MIX_MAX_INPUTS]; /* target gains, trim included */
    float sl[US_MIX_MAX_INPUTS], sr[US_MIX_MAX_INPUTS]; /* gains the current ramp left from */
    float cl[US_MIX_MAX_INPUTS], cr[US_MIX_MAX_INPUTS]; /* gains applied to the last frame */
} us_mix_state;

_Static_assert(sizeof(us_mix_state) == 240, "us_mix_state is mirrored by cdsp/gotwin/mix.go");

static const us_param_spec mix_params[] = {
    {"p1", "", -1.0f, 1.0f, 0.0f, 0},
    {"p2", "", -1.0f, 1.0f, 0.0f, 0},
    {"p3", "", -1.0f, 1.0f, 0.0f, 0},
    {"p4", "", -1.0f, 1.0f, 0.0f, 0},
    {"p5", "", -1.0f, 1.0f, 0.0f, 0},
    {"p6", "", -1.0f, 1.0f, 0.0f, 0},
    {"p7", "", -1.0f, 1.0f, 0.0f, 0},
    {"p8", "", -1.0f, 1.0f, 0.0f, 0},
    {"law", "", 0.0f, 1.0f, 0.0f, 1},
    {"trim", "dB", US_MIX_TRIM_MIN, US_MIX_TRIM_MAX, 0.0f, 0},
};

/* Sets the targets of the first n inputs from params. The host never sends a
 * trim outside its range; should one come anyway (NaN included) it is clamped,
 * so that us_exp stays in its domain and the call stays short. */
static void mix_targets(us_mix_state *st, const float *params, uint32_t n) {
    const float law = params[US_MIX_LAW], trim = params[US_MIX_TRIM];
    const float db = trim >= US_MIX_TRIM_MIN ? (trim <= US_MIX_TRIM_MAX ? trim : US_MIX_TRIM_MAX) : US_MIX_TRIM_MIN;
    const double t = us_exp((double)db * US_LN10_20); /* exactly 1.0 at 0 dB */
    st->law = law;
    st->trim = trim;
    for (uint32_t i = 0; i < n; i++) {
        double l, r;
        st->pos[i] = params[i];
        us_pan_law(params[i], law, &l, &r);
        st->tl[i] = (float)(l * t);
        st->tr[i] = (float)(r * t);
    }
}

static size_t mix_state_bytes(uint32_t channels) {
    return channels <= US_MIX_MAX_INPUTS ? sizeof(us_mix_state) : 0;
}

static int mix_init(void *state, const float *params, uint32_t channels, float rate) {
    (void)rate;
    if (channels == 0 || channels > US_MIX_MAX_INPUTS) return -1;
    for (uint32_t i = 0; i < US_MIX_MAX_INPUTS; i++)
        if (!(params[i] >= -1.0f && params[i] <= 1.0f)) return -1;
    const float law = params[US_MIX_LAW], trim = params[US_MIX_TRIM];
    if (!(law == 0.0f || law == 1.0f) || !(trim >= US_MIX_TRIM_MIN && trim <= US_MIX_TRIM_MAX)) return -1;
    us_mix_state *st = state;
    memset(st, 0, sizeof *st);
    st->channels = channels;
    mix_targets(st, params, channels);
    memcpy(st->sl, st->tl, sizeof st->sl);
    memcpy(st->cl, st->tl, sizeof st->cl);
    memcpy(st->sr, st->tr, sizeof st->sr);
    memcpy(st->cr, st->tr, sizeof st->cr);
    st->ramp = US_MIX_RAMP;
    return 0;
}

static void mix_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    us_mix_state *st = state;
    /* Bounds every array access even on a state that was never init's. */
    const uint32_t n = st->channels < US_MIX_MAX_INPUTS ? st->channels : US_MIX_MAX_INPUTS;

    int changed = params[US_MIX_LAW] != st->law || params[US_MIX_TRIM] != st->trim;
    for (uint32_t i = 0; i < n; i++) changed |= params[i] != st->pos[i];
    if (changed) {
        mix_targets(st, params, n);
        int settled = 1;
        for (uint32_t i = 0; i < n; i++) {
            st->sl[i] = st->cl[i];
            st->sr[i] = st->cr[i];
            settled &= st->tl[i] == st->cl[i] && st->tr[i] == st->cr[i];
        }
        st->ramp = settled ? US_MIX_RAMP : 0;
    }
    /* The call's channel count lays out buf; one the kernel never agreed to
     * (a host bug) leaves the block alone rather than guess. */
    if (channels != st->channels || channels != n || n == 0) return;

    float gl[US_MIX_MAX_INPUTS], gr[US_MIX_MAX_INPUTS];
    memcpy(gl, st->cl, sizeof gl);
    memcpy(gr, st->cr, sizeof gr);
    uint32_t ramp = st->ramp;
    for (uint32_t f = 0; f < frames; f++) {
        if (ramp < US_MIX_RAMP) {
            ramp++;
            if (ramp == US_MIX_RAMP) {
                /* The last ramp frame takes the targets themselves, as gain does. */
                for (uint32_t i = 0; i < n; i++) {
                    gl[i] = st->tl[i];
                    gr[i] = st->tr[i];
                }
            } else {
                const float u = (float)ramp * (1.0f / (float)US_MIX_RAMP);
                for (uint32_t i = 0; i < n; i++) {
                    gl[i] = st->sl[i] + (st->tl[i] - st->sl[i]) * u;
                    gr[i] = st->sr[i] + (st->tr[i] - st->sr[i]) * u;
                }
            }
        }
        float *p = buf + (size_t)f * n;
        float l = -0.0f, r = -0.0f;
        for (uint32_t i = 0; i < n; i++) {
            const float x = p[i];
            if (gl[i] != 0.0f) l = l + x * gl[i];
            if (gr[i] != 0.0f) r = r + x * gr[i];
        }
        if (n == 1) {
            p[0] = (l + r) * 0.5f;
        } else {
            p[0] = l;
            p[1] = r;
            for (uint32_t i = 2; i < n; i++) p[i] = 0.0f;
        }
    }
    memcpy(st->cl, gl, sizeof gl);
    memcpy(st->cr, gr, sizeof gr);
    st->ramp = ramp;
}

const us_kernel us_kernel_mix = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "mix",
    .variant = "scalar",
    .summary = "1-8 channels panned (p1..p8, constant-power or linear) and summed to stereo in ch 0-1, "
               "trim in dB, the rest zeroed; 1 channel: mono fold-down",
    .n_params = sizeof mix_params / sizeof mix_params[0],
    .params = mix_params,
    .state_bytes = mix_state_bytes,
    .init = mix_init,
    .process = mix_process,
};
