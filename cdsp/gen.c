/* gen.c — test signal generators: `sine` and `noise`. Each REPLACES the block
 * with its signal, the same on (sine) or independent across (noise) every
 * channel; whatever came in is discarded.
 *
 * A generator's output is a function of how many samples it has made, never
 * of how they were cut into blocks: each keeps its whole position in the
 * state and advances it per sample by a fixed recurrence. A spare resuming
 * from committed state goes on with the very next sample.
 *
 * The level, `db` (peak, dBFS), may change between blocks and ramps over 64
 * samples exactly like the gain kernel, whose state and arithmetic it shares
 * (us_kstate.h). Both start at full level without a fade-in; the sine starts
 * at phase 0, so its first sample is 0 and the start does not click. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_dspmath.h"
#include "us_kernel.h"
#include "us_kstate.h"

#define GEN_PARAM_DB {"db", "dB", -120.0f, 0.0f, -20.0f, 0}

/* ---- sine ----
 *
 * The phase is a double in turns, 0 <= phase < 1, advanced per sample by
 * inc = f / rate (itself a double). Each addition rounds by at most 2^-54
 * turn, a few 1e-7 turn after a day at 48 kHz; a float accumulator can lose
 * that much in ten samples. The sample is us_sin_turns(phase) rounded to
 * float, times the
 * level. f may change between blocks; the phase carries on, so there is no
 * click. init refuses f >= rate/2 like the filters; a later change above it
 * is taken as given (and aliases), since process cannot fail. */

/* Mirrored byte for byte by cdsp/gotwin/gen.go (Sine.State, SetState). */
typedef struct us_sine_state {
    double phase;        /* turns, of the next sample */
    double rate;         /* Hz, as init was given it: process does not see it */
    us_gain_state level; /* the gain kernel's ramp, 20 bytes */
    uint32_t reserved;   /* zero */
} us_sine_state;

static const us_param_spec sine_params[] = {
    {"f", "Hz", 0.0f, 20000.0f, 1000.0f, 0},
    GEN_PARAM_DB,
};

static size_t sine_state_bytes(uint32_t channels) {
    (void)channels; /* one oscillator for every channel */
    return sizeof(us_sine_state);
}

static int sine_init(void *state, const float *params, uint32_t channels, float rate) {
    const float f = params[0], db = params[1];
    if (channels == 0 || !(rate > 0.0f) || !(f >= 0.0f) || !((double)f < 0.5 * (double)rate) ||
        !(db >= -120.0f && db <= 0.0f))
        return -1;
    us_sine_state *st = state;
    memset(st, 0, sizeof *st);
    st->rate = (double)rate;
    us_level_init(&st->level, db);
    return 0;
}

static void sine_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    us_sine_state *st = state;
    const double inc = (double)params[0] / st->rate;
    us_level_set(&st->level, params[1]);
    double ph = st->phase;
    float *p = buf;
    for (uint32_t n = 0; n < frames; n++) {
        const float g = us_level_next(&st->level);
        const float v = (float)us_sin_turns(ph) * g;
        for (uint32_t c = 0; c < channels; c++) *p++ = v;
        ph = ph + inc;
        /* Exact: the integer part of a double, subtracted from it. */
        if (ph >= 1.0) ph = ph - (double)(int64_t)ph;
    }
    st->phase = ph;
}

const us_kernel us_kernel_sine = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "sine",
    .variant = "scalar",
    .summary = "sine generator (replaces the input); f Hz, db peak level, phase kept across blocks",
    .n_params = sizeof sine_params / sizeof sine_params[0],
    .params = sine_params,
    .state_bytes = sine_state_bytes,
    .init = sine_init,
    .process = sine_process,
    .live = 3u, /* f and db: process reads both each block */
};

/* ---- noise ----
 *
 * White noise, uniform in [-level, level], from Marsaglia's 32-bit xorshift
 * (13, 17, 5): period 2^32 - 1, three shifts and xors per sample, integer
 * arithmetic that every machine and the Go twin compute alike. A sample is
 * the generator's word read as a signed integer and scaled by 2^-31 (the
 * conversion to float rounds to nearest, as Go's does, which can round the
 * largest words up to exactly 1). Channels draw in interleaved order, so
 * they are independent.
 *
 * The seed is mixed (MurmurHash3's finaliser, a bijection) into the initial
 * word so that neighbouring seeds do not start on neighbouring sequences; the
 * one seed that mixes to 0, which xorshift cannot leave, takes a fixed word
 * instead. The seed is read at init only: the generator's word is the state. */

/* Mirrored byte for byte by cdsp/gotwin/gen.go (Noise.State, SetState). */
typedef struct us_noise_state {
    uint32_t x;          /* xorshift32 word, never 0 */
    us_gain_state level; /* the gain kernel's ramp */
} us_noise_state;

static const us_param_spec noise_params[] = {
    /* Up to 2^24 - 1: every integer a float param can carry exactly. */
    {"seed", "", 0.0f, 16777215.0f, 1.0f, 1},
    GEN_PARAM_DB,
};

static size_t noise_state_bytes(uint32_t channels) {
    (void)channels;
    return sizeof(us_noise_state);
}

static uint32_t noise_mix(uint32_t h) {
    h += 0x9e3779b9u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h ? h : 0x6d2b79f5u;
}

static int noise_init(void *state, const float *params, uint32_t channels, float rate) {
    (void)rate;
    const float seed = params[0], db = params[1];
    if (channels == 0 || !(seed >= 0.0f && seed <= 16777215.0f) || (float)(uint32_t)seed != seed ||
        !(db >= -120.0f && db <= 0.0f))
        return -1;
    us_noise_state *st = state;
    memset(st, 0, sizeof *st);
    st->x = noise_mix((uint32_t)seed);
    us_level_init(&st->level, db);
    return 0;
}

static void noise_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    us_noise_state *st = state;
    us_level_set(&st->level, params[1]);
    uint32_t x = st->x;
    float *p = buf;
    for (uint32_t n = 0; n < frames; n++) {
        const float g = us_level_next(&st->level);
        for (uint32_t c = 0; c < channels; c++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *p++ = ((float)(int32_t)x * 0x1p-31f) * g;
        }
    }
    st->x = x;
}

const us_kernel us_kernel_noise = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "noise",
    .variant = "scalar",
    .summary = "white noise generator (replaces the input), xorshift32; seed, db peak level",
    .n_params = sizeof noise_params / sizeof noise_params[0],
    .params = noise_params,
    .state_bytes = noise_state_bytes,
    .init = noise_init,
    .process = noise_process,
    .live = 2u, /* db; the seed only starts the generator */
};
