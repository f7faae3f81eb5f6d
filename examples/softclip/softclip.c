/* softclip.c — an example of a user's own kernel: a tanh-like soft clipper.
 *
 * One C file is all a kernel needs. Build a worker that carries it (and the
 * built-in kernels) either way:
 *   make -C examples/softclip                  -> examples/softclip/softclip-worker
 *   cmake -S examples/softclip -B build && cmake --build build
 * then run it under supervision:
 *   understudy process --worker examples/softclip/softclip-worker \
 *       --in in.wav --out out.wav --chain "softclip drive=12 | gain db=-3"
 */
#include <stddef.h>
#include <stdint.h>

#include "us_kernel.h"

static const us_param_spec softclip_params[] = {
    {"drive", "dB", 0.0f, 36.0f, 6.0f, 0},
};

/* The state holds the linear drive computed in init. Nothing else is kept
 * between blocks: a clipper has no memory, so failover is trivially exact. */
typedef struct {
    float drive;
} softclip_state;

static size_t softclip_state_bytes(uint32_t channels) {
    (void)channels;
    return sizeof(softclip_state);
}

/* 10^(db/20) without libm, by repeated squaring of 10^(1/20) steps: the
 * result only has to be deterministic, and this is. */
static float db_to_gain(float db) {
    float g = 1.0f;
    const float step = 1.12201845f; /* 10^(1/20) */
    for (float d = 0.0f; d + 1.0f <= db; d += 1.0f) g *= step;
    return g;
}

static int softclip_init(void *state, const float *params, uint32_t channels, float rate) {
    (void)channels;
    (void)rate;
    softclip_state *s = state;
    s->drive = db_to_gain(params[0]);
    return 0;
}

/* y = x / (1 + |x|) after the drive: smooth, odd, bounded by 1. */
static void softclip_process(void *state, const float *params, float *buf, uint32_t frames, uint32_t channels) {
    (void)params;
    const softclip_state *s = state;
    const size_t n = (size_t)frames * channels;
    for (size_t i = 0; i < n; i++) {
        float x = buf[i] * s->drive;
        float a = x < 0.0f ? -x : x;
        buf[i] = x / (1.0f + a);
    }
}

static const us_kernel softclip = {
    .abi_version = US_KERNEL_ABI_VERSION,
    .name = "softclip",
    .variant = "scalar",
    .summary = "soft clipper x/(1+|x|) after a drive in dB",
    .n_params = 1,
    .params = softclip_params,
    .state_bytes = softclip_state_bytes,
    .init = softclip_init,
    .process = softclip_process,
};

US_USER_KERNELS(&softclip);
