/* fir.c — a linear-phase low-pass FIR: a Hamming-windowed sinc, 1..4096 taps.
 *
 * Design, in double, in init only: for tap k of N, m = (N-1)/2 - k,
 *     h[k] = sin(2 pi fc m) / (pi m) * (0.54 - 0.46 cos(2 pi k / (N-1)))
 * with fc = f / rate (2 fc at m = 0), then scaled so the taps sum to 1: the
 * gain at DC is 1 up to the rounding of the taps to float. Hamming rather
 * than Blackman: its transition is 3.3 rate/N wide instead of 5.5 rate/N, and
 * its -53 dB stopband is plenty for a utility low-pass; at N >= 127 the
 * response at 2f is below -40 dB whenever f >= 2 rate/N (a narrower
 * transition than the window can make is asked for otherwise). The sine and
 * cosine come from us_dspmath.h, never libm, so the Go twin computes the same
 * taps; the sinc's phase fc*m is reduced to the nearest half turn first, which
 * keeps us_sincos within its 0..pi domain and its accuracy.
 *
 * The taps are symmetric, so the state keeps half of them and each output is
 * the folded sum of us_fir_dot1 (us_kstate.h): half the multiplies, and with
 * 4096 taps the state still fits a lane with three channels:
 *     16 + 8192 + 16384 * channels bytes = 57,360 at 3 channels.
 * Four channels would need 73,744 bytes, more than a lane's whole 64 KiB, so
 * state_bytes is 0 and init refuses beyond three (the taps are a param, and
 * state_bytes sees only the channel count, so room for 4096 is always kept).
 *
 * Direct form, not FFT overlap-save, although at 4096 taps an FFT would do
 * the arithmetic tens of times faster:
 *   - every output is one fixed sum of float products, so the scalar code,
 *     each SIMD variant and the Go twin agree to the bit whatever the block
 *     size; an FFT's result depends on its butterflies and twiddles, which
 *     every implementation (and every SIMD width) would have to reproduce;
 *   - it adds no latency and works with any block size; overlap-save buffers
 *     a whole FFT block, and its state holds a partial block whose contents
 *     depend on where the stream was cut unless the kernel adds that latency;
 *   - its state is just the last taps-1 inputs: readable, and the same bytes
 *     however the stream was split.
 * A long FIR is therefore costly here (see the benchmarks); it is meant for
 * a few hundred taps, with 4096 as the ceiling.
 *
 * f and taps passed to process are ignored, as for the biquads: the taps
 * belong to the state, and new values take a new init. */
#include <stdint.h>
#include <string.h>

#include "us_builtin.h"
#include "us_dspmath.h"
#include "us_kernel.h"
#include "us_kstate.h"
#include "us_region.h"

_Static_assert(sizeof(us_fir_state) + US_FIR_MAX_CHANNELS * US_FIR_HIST * sizeof(float) <= US_LANE_STATE_BYTES,
               "the FIR's channel limit must fit a lane's state");
_Static_assert(sizeof(us_fir_state) % 16 == 0 && US_FIR_HIST % 4 == 0, "history lines stay 16-byte aligned");

static const us_param_spec fir_params[] = {
    {"f", "Hz", 10.0f, 20000.0f, 1000.0f, 0},
    {"taps", "", 1.0f, (float)US_FIR_MAX_TAPS, 63.0f, 1},
};

static size_t fir_state_bytes(uint32_t channels) {
    if (channels > US_FIR_MAX_CHANNELS) return 0; /* cannot run: see above */
    return sizeof(us_fir_state) + (size_t)channels * US_FIR_HIST * sizeof(float);
}

/* The unnormalised, windowed tap k of n (k <= (n-1)/2). */
static double fir_tap(uint32_t n, uint32_t k, double fc) {
    const double m = (double)(n - 1u - 2u * k) * 0.5;
    double s;
    if (m == 0.0) {
        s = 2.0 * fc;
    } else {
        const double ph = fc * m; /* turns, >= 0 */
        const double r = ph - (double)(int64_t)(ph + 0.5); /* exact; -1/2..1/2 */
        double sn, cs;
        us_sincos(US_TWO_PI * (r < 0.0 ? -r : r), &sn, &cs);
        s = (r < 0.0 ? -sn : sn) / (US_PI * m);
    }
    double w = 1.0;
    if (n > 1u) {
        double sn, cs;
        us_sincos((US_TWO_PI * (double)k) / (double)(n - 1u), &sn, &cs);
        w = 0.54 - 0.46 * cs;
    }
    return s * w;
}

static int fir_init(void *state, const float *params, uint32_t channels, float rate) {
    const float f = params[0], tf = params[1];
    /* Written as negated comparisons so that NaN is refused too. */
    if (channels == 0 || channels > US_FIR_MAX_CHANNELS || !(rate > 0.0f) || !(f > 0.0f) ||
        !((double)f < 0.5 * (double)rate) || !(tf >= 1.0f && tf <= (float)US_FIR_MAX_TAPS) ||
        (float)(uint32_t)tf != tf)
        return -1;
    const uint32_t n = (uint32_t)tf, half = n / 2u, kept = (n + 1u) / 2u;
    const double fc = (double)f / (double)rate;

    double t[US_FIR_HALF_MAX];
    double sum = 0.0;
    for (uint32_t k = 0; k < kept; k++) {
        t[k] = fir_tap(n, k, fc);
        sum = sum + (k < half ? 2.0 * t[k] : t[k]);
    }

    us_fir_state *st = state;
    /* Every byte is defined: states are compared and copied as bytes. */
    memset(st, 0, fir_state_bytes(channels));
    st->channels = channels;
    st->taps = n;
    for (uint32_t k = 0; k < kept; k++) st->h[k] = (float)(t[k] / sum);
    return 0;
}

static void fir_block_scalar(const float *h, uint32_t taps, const float *w, float *y, uint32_t m) {
    for (uint32_t i = 0; i < m; i++) y[i] = us_fir_dot1(h, taps, w + i);
}

static void fir_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    (void)params;
    us_fir_run(state, buf, frames, channels, fir_block_scalar);
}

#define FIR_KERNEL(sym, var, proc)                                                            \
    const us_kernel sym = {                                                                   \
        .abi_version = US_KERNEL_ABI_VERSION,                                                 \
        .name = "fir",                                                                        \
        .variant = var,                                                                       \
        .summary = "windowed-sinc low-pass FIR, 1..4096 taps, linear phase; up to 3 channels", \
        .n_params = sizeof fir_params / sizeof fir_params[0],                                 \
        .params = fir_params,                                                                 \
        .state_bytes = fir_state_bytes,                                                       \
        .init = fir_init,                                                                     \
        .process = proc,                                                                      \
    }

FIR_KERNEL(us_kernel_fir, "scalar", fir_process);
#if defined(__x86_64__)
FIR_KERNEL(us_kernel_fir_sse2, "sse2", us_fir_process_sse2);
FIR_KERNEL(us_kernel_fir_avx2, "avx2", us_fir_process_avx2);
#endif
#if defined(__aarch64__)
FIR_KERNEL(us_kernel_fir_neon, "neon", us_fir_process_neon);
#endif
