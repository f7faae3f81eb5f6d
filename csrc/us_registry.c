/* us_registry.c — how a worker finds a kernel by name and variant: first
 * among the user's kernels (US_USER_KERNELS in a file of their own), then
 * among the built-in ones (cdsp/registry.c). */
#include <stdio.h>
#include <stdlib.h>
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

/* What a kernel or variant name may be: what a chain can spell (no space,
 * '|' or '='), a letter first. The host's catalog applies the same rule. */
static int valid_name(const char *s, size_t max) {
    if (!s || !*s || strlen(s) >= max) return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int other = (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (!letter && !(i > 0 && other)) return 0;
    }
    return 1;
}

/* Refuses, before main, a worker whose user kernels cannot be trusted to
 * be found by name: one named like a built-in (a chain naming it would get
 * the built-in's SIMD variants run with the user's parameters), two user
 * kernels with the same name and variant, or a definition missing what
 * the worker calls. Nothing of the kernel's own code runs here: state_bytes
 * and init run later, under the worker's sandbox. The exit status 2 tells
 * the host that the message is about a kernel's definition, to show as it
 * is; a kernel of another ABI is left to the host, which says to rebuild. */
__attribute__((constructor)) static void us_check_user_kernels(void) {
    if (!us_user_kernels) return;
    for (size_t i = 0; us_user_kernels[i]; i++) {
        const us_kernel *k = us_user_kernels[i];
        if (!us_kernel_abi_ok(k)) continue;
        const char *why = NULL;
        if (!valid_name(k->name, US_KERNEL_NAME_MAX))
            why = "has a name a chain cannot use: 1 to 23 letters, digits, '_', '-' or '.', starting with a letter";
        else if (!valid_name(k->variant, US_KERNEL_VARIANT_MAX))
            why = "has a variant name a chain cannot use: use scalar, sse2, avx2, neon, ...";
        else if (!k->state_bytes || !k->init || !k->process)
            why = "lacks state_bytes, init or process";
        else if (k->n_params > US_KERNEL_MAX_PARAMS || (k->n_params && !k->params))
            why = "declares more than 16 parameters, or none behind n_params";
        for (size_t j = 0; !why && us_builtin_kernels[j]; j++)
            if (!strcmp(us_builtin_kernels[j]->name, k->name))
                why = "takes the name of a built-in kernel, which would run the built-in's variants with your parameters";
        for (size_t j = 0; !why && j < i; j++)
            if (us_user_kernels[j]->name && !strcmp(us_user_kernels[j]->name, k->name) &&
                us_user_kernels[j]->variant && k->variant && !strcmp(us_user_kernels[j]->variant, k->variant))
                why = "is defined twice with the same variant";
        if (why) {
            fprintf(stderr, "understudy-worker: user kernel \"%.40s\" %s; rename or fix it in your kernel file and build the worker again\n",
                    k->name ? k->name : "(null)", why);
            exit(2);
        }
    }
}
