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
 * The worker refuses a kernel whose abi_version is outside
 * US_KERNEL_ABI_MIN..US_KERNEL_ABI_VERSION.
 *
 * What a kernel may and may not do (the SDK contract; docs/sdk.md says it
 * for users, with what happens when a kernel breaks it, repro files and
 * `understudy replay`):
 *
 *   - No system calls, in any of the kernel's functions. The worker runs its
 *     kernels under a seccomp allowlist that kills the whole worker
 *     (SIGSYS, reported as the fault path `sandbox`) on any call outside it:
 *     no files, sockets, processes, signals to others, sleeps, scheduling
 *     or prctl (docs/design.md section 3 lists what the worker itself may
 *     call). `--unsandboxed` lifts it for debugging only. Writes to stderr
 *     and stdout are allowed (the host keeps a worker's last 4 KiB for its
 *     failure event), but cost a system call on the real-time path.
 *   - `process` must not allocate, lock, block or wait, and must return
 *     within the block's time budget: in real time (demo, live) that is the
 *     hang timeout (--hang-timeout; by default half a period, at least
 *     500 µs), past which the worker is killed as hung and the lane fails
 *     over; in `understudy process`, a block that produces nothing for 10 s
 *     ends the render. A kernel that dies on an input block (crash, hang,
 *     sandbox kill) is retried once in a fresh worker; if that one dies
 *     too, the block is bypassed (its output is the dry input), and
 *     `understudy process` then fails unless --allow-bypass.
 *   - `state_bytes` is pure and quick: the host calls it (through
 *     `--list-kernels`) for every channel count 1..US_MAX_CHANNELS, and the
 *     whole listing must finish within 5 s or the worker is killed. Return
 *     0 for a channel count the kernel cannot run. A whole chain's state is
 *     at most US_LANE_STATE_BYTES (65536) bytes; a kernel asking for more is
 *     refused when the worker is loaded (exit status 2).
 *   - State alignment: each kernel's state starts at a 16-byte-aligned
 *     offset in the lane's state buffer (itself cache-line aligned), so
 *     16-byte SIMD loads of the state are aligned; 32-byte AVX loads must
 *     use unaligned instructions. The state is copied from the committed
 *     buffer before each block and committed after it: keep every bit of
 *     history there, and no pointer into it (it moves between buffers).
 *   - Frames and channels: `buf` holds frames * channels interleaved floats,
 *     frames in 1..US_MAX_FRAMES and channels in 1..US_MAX_CHANNELS with
 *     frames * channels <= US_SLOT_SAMPLES; frames is the same for every
 *     block of a run (the last block is zero-padded). Never read or write
 *     past buf[frames * channels] or past state_bytes(channels) of state.
 *   - Floating point: the worker sets FTZ and DAZ (AArch64: FPCR.FZ) before
 *     the first init, so subnormals read and compute as zero (us_fp.h). Do
 *     not change the floating-point environment (rounding mode, exception
 *     masks): a spare resuming the lane must compute the same bits.
 *   - Parameters may change while a lane runs (ABI 2), but only those a
 *     kernel declares in `live` (bit j for params[j]); the host refuses the
 *     rest with one line (a parameter that sizes the state, such as an
 *     FIR's taps or a biquad's section count, is never live). `params`
 *     (n_params floats, range-checked against the schema) is read-only and
 *     lives in the lane's committed state, so a spare resumes with the
 *     values as of its commit point. A change reaches the kernel at a block
 *     boundary: before the block it rides in, the worker writes the new
 *     value and, when the kernel has one, calls `update` with the whole
 *     vector, once per block however many of its values changed. `update`
 *     recomputes what init derived from params (a biquad's coefficients)
 *     and keeps the history; it is pure, quick and never fails (a value it
 *     cannot realise keeps the derived state as it was). A kernel without
 *     `update` reads its params in `process` each block (gain ramps from
 *     the old level to the new one there, inside its state).
 *   - ABI versions: a worker loads kernels of ABI 1 (no `live`, no
 *     `update`: every parameter fixed, as before) and 2. It reads the
 *     fields after `process` only from kernels that declare ABI 2, so a
 *     kernel object built against the old header still loads.
 *   - Naming: name and variant are 1..23 and 1..15 characters of letters,
 *     digits, '_', '-' or '.', starting with a letter; a name must not be a
 *     built-in kernel's (`understudy kernels` lists them) nor be used twice
 *     with the same variant. A worker that breaks this refuses to start
 *     (exit status 2) and says which kernel and why.
 *   - Errors: `init` returning -1 means the kernel refused its parameters,
 *     and the host says so (exit status 2); only a kernel built for another
 *     ABI version is told to rebuild. */
#ifndef US_KERNEL_H
#define US_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#define US_KERNEL_ABI_VERSION 2u
#define US_KERNEL_ABI_MIN 1u /* the oldest ABI a worker still loads */

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
    /* ---- ABI 2: read only from a kernel whose abi_version is 2 or more ---- */
    /* Parameters that may change while the lane runs: bit j for params[j]. */
    uint32_t live;
    /* Optional: live params changed (params is the new vector); recompute
     * what init derived from them, keeping every bit of history. */
    void (*update)(void *state, const float *params, uint32_t channels, float rate);
} us_kernel;

/* Whether a worker can run a kernel of this ABI at all. */
static inline int us_kernel_abi_ok(const us_kernel *k) {
    return k->abi_version >= US_KERNEL_ABI_MIN && k->abi_version <= US_KERNEL_ABI_VERSION;
}
/* The live mask, 0 for an ABI-1 kernel (whose struct ends at process) or
 * one of an ABI this worker does not speak. */
static inline uint32_t us_kernel_live(const us_kernel *k) {
    if (k->abi_version < 2 || k->abi_version > US_KERNEL_ABI_VERSION) return 0;
    uint32_t m = k->live;
    return k->n_params >= 32 ? m : m & ((1u << k->n_params) - 1u);
}
/* The update hook, NULL for an ABI-1 kernel. */
static inline void (*us_kernel_update(const us_kernel *k))(void *, const float *, uint32_t, float) {
    return k->abi_version < 2 || k->abi_version > US_KERNEL_ABI_VERSION ? NULL : k->update;
}

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
