/* registry.c — the kernels this worker carries.
 *
 * Every variant compiled for this architecture is listed, supported by this
 * CPU or not: the worker reports each with us_variant_supported() and runs
 * none that the CPU lacks. Each name's scalar variant comes first, so a
 * reader that keeps the first entry per name (the host's catalog) keeps the
 * reference one. */
#include "us_builtin.h"
#include "us_kernel.h"

#if defined(__x86_64__)
#define US_VARIANTS(k) &us_kernel_##k, &us_kernel_##k##_sse2, &us_kernel_##k##_avx2
#elif defined(__aarch64__)
#define US_VARIANTS(k) &us_kernel_##k, &us_kernel_##k##_neon
#else
#define US_VARIANTS(k) &us_kernel_##k
#endif

const us_kernel *const us_builtin_kernels[] = {
    US_VARIANTS(gain),
    US_VARIANTS(lowpass),
    US_VARIANTS(highpass),
    US_VARIANTS(bandpass),
    US_VARIANTS(peaking),
    US_VARIANTS(lowshelf),
    US_VARIANTS(highshelf),
    US_VARIANTS(fir),
    &us_kernel_pan,
    &us_kernel_mix,
    &us_kernel_sine,
    &us_kernel_noise,
    NULL,
};

/* Lookups live in csrc/us_registry.c, shared with user-built workers. */
