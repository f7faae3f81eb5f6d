/* us_kernel.h — the versioned ABI between a worker and a DSP kernel.
 *
 * A kernel is deterministic, in-place and state-explicit:
 *   - audio is interleaved float32: buf[frame * channels + ch];
 *   - every bit of history the kernel needs lives in `state` (state_bytes()
 *     long), which the worker copies from the lane's committed buffer before
 *     each block and commits after it; a kernel keeps no static or heap state;
 *   - same params, state and input give the same output bits on every run, in
 *     every worker, so a spare that resumes from committed state is bit-exact.
 *
 * The worker refuses a kernel whose abi_version differs from the one it was
 * built with. */
#ifndef US_KERNEL_H
#define US_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#define US_KERNEL_ABI_VERSION 1u

#define US_KERNEL_MAX_PARAMS 16 /* params per kernel in a chain */
#define US_KERNEL_NAME_MAX 24   /* bytes, including the NUL */
#define US_KERNEL_VARIANT_MAX 16 /* bytes, including the NUL */

/* One parameter: every value is carried as float; `integer` asks the host to
 * refuse values with a fractional part (e.g. a section count). */
typedef struct us_param_spec {
    const char *name;  /* as written in a chain: "f", "q", "db" */
    const char *unit;  /* "Hz", "dB", "" */
    float min, max, def;
    int integer;       /* 1: value must be a whole number */
} us_param_spec;

typedef struct us_kernel {
    uint32_t abi_version;        /* US_KERNEL_ABI_VERSION at build time */
    const char *name;            /* unique within a worker, < US_KERNEL_NAME_MAX */
    const char *variant;         /* "scalar", "sse2", "avx2", "neon", ... */
    const char *summary;         /* one line for `understudy kernels` */
    uint32_t n_params;
    const us_param_spec *params; /* n_params entries */
    /* Bytes of state for this many channels; at most US_LANE_STATE_BYTES for the
     * whole chain of a lane. */
    size_t (*state_bytes)(uint32_t channels);
    /* Writes the initial state from params. Returns 0, or -1 if the params
     * cannot be realised (the host validated ranges already). */
    int (*init)(void *state, const float *params, uint32_t channels, float rate);
    /* Processes one block in place. Must not fail, allocate, lock or block. */
    void (*process)(void *state, const float *params, float *buf,
                    uint32_t frames, uint32_t channels);
} us_kernel;

/* The built-in kernels a worker carries, terminated by a NULL entry. */
extern const us_kernel *const us_builtin_kernels[];

/* A user's own kernels, terminated by a NULL entry. A worker built from one
 * C file of the user's declares them with US_USER_KERNELS(&a, &b, ...); a
 * worker without one carries none. User kernels are found before built-in
 * ones of the same name and variant. */
extern const us_kernel *const us_user_kernels[];
#define US_USER_KERNELS(...) const us_kernel *const us_user_kernels[] = {__VA_ARGS__, NULL}

/* Kernel i of all a worker carries, user ones first; NULL past the end. */
const us_kernel *us_kernel_at(size_t i);

/* Looks a kernel up by name; the "scalar" variant, or NULL when the worker has
 * none of that name. */
const us_kernel *us_find_kernel(const char *name);

/* Looks up one variant of a kernel ("scalar", "sse2", "avx2", "neon", ...);
 * NULL when this worker carries no such variant. An empty or NULL variant
 * means "scalar". */
const us_kernel *us_find_kernel_variant(const char *name, const char *variant);

/* 1 when this CPU can execute the variant's instructions, else 0: a worker
 * refuses a variant the CPU lacks instead of dying of SIGILL. */
int us_variant_supported(const char *variant);

#endif
