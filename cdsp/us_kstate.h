/* us_kstate.h — what the variants of a kernel share. Internal to cdsp.
 *
 * Every variant of a kernel reads and writes the same state bytes, so this
 * header owns the layouts, and the few pieces of a process call that are not
 * worth vectorising (a gain ramp, the FIR's history handling) live here once
 * so that no variant can drift from the scalar one. The per-variant process
 * functions are defined in simd_x86.c and simd_neon.c. */
#ifndef US_KSTATE_H
#define US_KSTATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "us_dspmath.h"
#include "us_kernel.h"

#define US_ALWAYS_INLINE inline __attribute__((always_inline))

typedef void us_process_fn(void *state, const float *params, float *buf, uint32_t frames,
                           uint32_t channels);

/* ---- gain (gain.c) ---- */

#define US_GAIN_RAMP 64u /* 1.3 ms at 48 kHz: inaudible as a fade, long enough to hide the step */

/* Mirrored byte for byte by cdsp/gotwin/gain.go (State, SetState). */
typedef struct us_gain_state {
    float db;      /* the param value the target was made from: a change is detected on it */
    float target;  /* linear */
    float start;   /* linear gain the current ramp left from */
    float cur;     /* linear gain applied to the last frame */
    uint32_t pos;  /* ramp frames done; US_GAIN_RAMP once settled */
} us_gain_state;

static inline float us_db_to_linear(float db) { return (float)us_exp((double)db * US_LN10_20); }

/* Takes a new db into account and runs the ramping frames of the block.
 * Returns how many samples it did; the rest of the block gets st->cur, which a
 * variant may apply as it likes since it is one multiply per sample. */
static US_ALWAYS_INLINE size_t us_gain_ramp(us_gain_state *st, float db, float *buf, uint32_t frames,
                                            uint32_t channels) {
    if (db != st->db) {
        st->db = db;
        st->target = us_db_to_linear(db);
        st->start = st->cur;
        st->pos = st->target == st->cur ? US_GAIN_RAMP : 0;
    }
    uint32_t pos = st->pos;
    float g = st->cur;
    size_t i = 0;
    for (uint32_t n = 0; n < frames && pos < US_GAIN_RAMP; n++) {
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
    return i;
}

/* The same ramp one frame at a time, for the generators (gen.c), whose level
 * is a us_gain_state too: us_level_set once per block, us_level_next before
 * each frame. The arithmetic is us_gain_ramp's, frame for frame. */
static inline void us_level_set(us_gain_state *l, float db) {
    if (db != l->db) {
        l->db = db;
        l->target = us_db_to_linear(db);
        l->start = l->cur;
        l->pos = l->target == l->cur ? US_GAIN_RAMP : 0;
    }
}

static inline float us_level_next(us_gain_state *l) {
    if (l->pos < US_GAIN_RAMP) {
        l->pos++;
        if (l->pos == US_GAIN_RAMP)
            l->cur = l->target;
        else
            l->cur = l->start + (l->target - l->start) * ((float)l->pos * (1.0f / (float)US_GAIN_RAMP));
    }
    return l->cur;
}

static inline void us_level_init(us_gain_state *l, float db) {
    l->db = db;
    l->target = l->start = l->cur = us_db_to_linear(db);
    l->pos = US_GAIN_RAMP;
}

/* ---- biquad family (biquad.c) ---- */

#define US_BQ_MAX_SECTIONS 8u

/* Mirrored byte for byte by cdsp/gotwin/biquad.go (State, SetState). */
typedef struct us_bq_state {
    uint32_t channels; /* as at init: bounds every access to z */
    uint32_t sections;
    float b0, b1, b2, a1, a2; /* normalised by a0 */
    uint32_t reserved;        /* zero; keeps z 16-byte aligned for SIMD variants */
    float z[];                /* [channel][section][x1 x2 y1 y2] */
} us_bq_state;

/* ---- fir (fir.c) ---- */

#define US_FIR_MAX_TAPS 4096u
/* Taps are symmetric; the state keeps h[0 .. ceil(taps/2)). */
#define US_FIR_HALF_MAX (US_FIR_MAX_TAPS / 2u)
/* Floats of history per channel: taps - 1 are used, one more keeps each
 * channel's line 16-byte aligned. */
#define US_FIR_HIST US_FIR_MAX_TAPS
/* 16 + 8 KiB + 16 KiB per channel: three channels take 56 KiB of a lane's
 * 64 KiB, four would not fit at all. */
#define US_FIR_MAX_CHANNELS 3u
/* Frames filtered per pass over the history. The pass's scratch lives on the
 * stack, (US_FIR_MAX_TAPS - 1 + US_FIR_CHUNK + US_FIR_PAD) floats, 17 KiB. */
#define US_FIR_CHUNK 256u
/* Zeros after a chunk's inputs, so a variant may compute a last, partly
 * used vector of outputs without reading anything undefined. */
#define US_FIR_PAD 16u

/* Mirrored byte for byte by cdsp/gotwin/fir.go (State, SetState). */
typedef struct us_fir_state {
    uint32_t channels;             /* as at init, 1..US_FIR_MAX_CHANNELS */
    uint32_t taps;                 /* 1..US_FIR_MAX_TAPS */
    uint32_t reserved[2];          /* zero; keeps h and d 16-byte aligned */
    float h[US_FIR_HALF_MAX];      /* h[k] = h[taps-1-k]; unused entries zero */
    float d[];                     /* [channel][US_FIR_HIST]: the last taps-1 inputs, oldest first */
} us_fir_state;

/* One output of the folded (linear-phase) form over w[0 .. taps), w[taps-1]
 * the newest input:
 *     y = sum over k < taps/2 of h[k] * (w[taps-1-k] + w[k])  [+ h[mid] * w[mid]]
 * accumulated from 0 in ascending k. Every variant computes every output with
 * exactly these float operations in exactly this order. */
static inline float us_fir_dot1(const float *h, uint32_t taps, const float *w) {
    const uint32_t half = taps / 2u;
    const float *newest = w + taps - 1u;
    float acc = 0.0f;
    for (uint32_t k = 0; k < half; k++) acc = acc + h[k] * (newest[-(ptrdiff_t)k] + w[k]);
    if (taps & 1u) acc = acc + h[half] * w[half];
    return acc;
}

/* Computes y[i] = us_fir_dot1(h, taps, w + i) for i < m. */
typedef void us_fir_block_fn(const float *h, uint32_t taps, const float *w, float *y, uint32_t m);

/* The history handling every FIR variant shares: per channel, the committed
 * history and the block's samples are laid end to end in a scratch line, so
 * every output's window is contiguous whatever the block size, and the state
 * keeps exactly the last taps-1 inputs, never anything that depends on how the
 * stream was cut into blocks. `block` is a constant at each call and gets
 * inlined. */
static US_ALWAYS_INLINE void us_fir_run(us_fir_state *st, float *buf, uint32_t frames, uint32_t channels,
                                        us_fir_block_fn *block) {
    /* A state that disagrees with the call (a host bug) must not send us
     * outside the state or scratch buffers. */
    const uint32_t nch = channels < st->channels ? channels : st->channels;
    const uint32_t taps = st->taps < 1u ? 1u : st->taps > US_FIR_MAX_TAPS ? US_FIR_MAX_TAPS : st->taps;
    const size_t keep = (size_t)(taps - 1u) * sizeof(float);
    float w[US_FIR_MAX_TAPS - 1u + US_FIR_CHUNK + US_FIR_PAD] __attribute__((aligned(32)));
    float y[US_FIR_CHUNK] __attribute__((aligned(32)));

    for (uint32_t ch = 0; ch < nch; ch++) {
        float *hist = st->d + (size_t)ch * US_FIR_HIST;
        memcpy(w, hist, keep);
        for (uint32_t n0 = 0; n0 < frames;) {
            const uint32_t m = frames - n0 < US_FIR_CHUNK ? frames - n0 : US_FIR_CHUNK;
            float *p = buf + (size_t)n0 * channels + ch;
            for (uint32_t i = 0; i < m; i++) w[taps - 1u + i] = p[(size_t)i * channels];
            memset(w + taps - 1u + m, 0, US_FIR_PAD * sizeof(float));
            block(st->h, taps, w, y, m);
            for (uint32_t i = 0; i < m; i++) p[(size_t)i * channels] = y[i];
            memmove(w, w + m, keep);
            n0 += m;
        }
        memcpy(hist, w, keep);
    }
}

/* ---- variants ---- */

#if defined(__x86_64__)
us_process_fn us_gain_process_sse2, us_gain_process_avx2;
us_process_fn us_bq_process_sse2, us_bq_process_avx2;
us_process_fn us_fir_process_sse2, us_fir_process_avx2;
#endif
#if defined(__aarch64__)
us_process_fn us_gain_process_neon, us_bq_process_neon, us_fir_process_neon;
#endif

#endif
