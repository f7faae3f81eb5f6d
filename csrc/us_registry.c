/* us_registry.c — how a worker finds a kernel by name and variant: first
 * among the user's kernels (US_USER_KERNELS in a file of their own), then
 * among the built-in ones (cdsp/registry.c). */
#include <string.h>

#include "us_kernel.h"

/* A weak reference, not a weak definition: a worker built without a user
 * file has no us_user_kernels at all (its address is null), and the compiler
 * cannot fold the contents of a table it never saw. */
extern const us_kernel *const us_user_kernels[] __attribute__((weak));

const us_kernel *us_kernel_at(size_t i) {
    size_t n_user = 0;
    if (us_user_kernels)
        while (us_user_kernels[n_user]) n_user++;
    if (i < n_user) return us_user_kernels[i];
    i -= n_user;
    for (size_t j = 0; us_builtin_kernels[j]; j++)
        if (j == i) return us_builtin_kernels[j];
    return NULL;
}

const us_kernel *us_find_kernel(const char *name) { return us_find_kernel_variant(name, "scalar"); }

const us_kernel *us_find_kernel_variant(const char *name, const char *variant) {
    if (!name) return NULL;
    if (!variant || !*variant) variant = "scalar";
    for (size_t i = 0;; i++) {
        const us_kernel *k = us_kernel_at(i);
        if (!k) return NULL;
        if (strcmp(k->name, name) == 0 && strcmp(k->variant, variant) == 0) return k;
    }
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
