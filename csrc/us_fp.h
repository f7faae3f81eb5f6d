/* us_fp.h — floating-point environment for DSP threads.
 *
 * A decaying IIR tail passes through the subnormal range, where x86 cores take
 * a microcode assist per operation (tens to hundreds of cycles): a filter fed
 * silence can blow its deadline exactly when nothing is happening. Flushing
 * subnormals to zero costs nothing and changes results only below 1.2e-38
 * (about -758 dBFS), far under any converter's noise floor.
 *
 * The mode is per thread and determinism needs every worker to agree, so each
 * worker sets it once at start, before its first init or process call: a spare
 * that resumes a lane then computes with exactly the same rules as the owner
 * it replaces. */
#ifndef US_FP_H
#define US_FP_H

#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
#include <xmmintrin.h>
#include <pmmintrin.h>
#elif defined(__aarch64__)
#include <stdint.h>
#endif

static inline void us_fp_flush_denormals(void) {
#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE2__))
    /* FTZ flushes subnormal results, DAZ treats subnormal inputs as zero: both
     * are needed, or a subnormal arriving in the input still takes the assist. */
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#elif defined(__aarch64__)
    /* FPCR.FZ (bit 24) covers inputs and outputs of single and double ops. */
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    fpcr |= (uint64_t)1 << 24;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
#endif
}

#endif
