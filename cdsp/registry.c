/* registry.c — the kernels this worker carries. */
#include <string.h>

#include "us_builtin.h"
#include "us_kernel.h"

const us_kernel *const us_builtin_kernels[] = {
    &us_kernel_gain,
    &us_kernel_lowpass,
    &us_kernel_highpass,
    &us_kernel_bandpass,
    &us_kernel_peaking,
    &us_kernel_lowshelf,
    &us_kernel_highshelf,
    NULL,
};

const us_kernel *us_find_kernel(const char *name) { return us_find_kernel_variant(name, "scalar"); }

const us_kernel *us_find_kernel_variant(const char *name, const char *variant) {
    if (!name) return NULL;
    if (!variant || !*variant) variant = "scalar";
    for (size_t i = 0; us_builtin_kernels[i]; i++) {
        const us_kernel *k = us_builtin_kernels[i];
        if (strcmp(k->name, name) == 0 && strcmp(k->variant, variant) == 0) return k;
    }
    return NULL;
}

int us_variant_supported(const char *variant) {
    if (!variant || !*variant || strcmp(variant, "scalar") == 0) return 1;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(variant, "sse2") == 0) return __builtin_cpu_supports("sse2");
    if (strcmp(variant, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(variant, "avx512") == 0) return __builtin_cpu_supports("avx512f");
#endif
#if defined(__aarch64__)
    if (strcmp(variant, "neon") == 0) return 1; /* mandatory on AArch64 */
#endif
    return 0;
}
