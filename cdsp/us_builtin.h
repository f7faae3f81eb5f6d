/* us_builtin.h — the kernels cdsp/registry.c collects: one us_kernel per
 * (name, variant) compiled for this architecture. */
#ifndef US_BUILTIN_H
#define US_BUILTIN_H

#include "us_kernel.h"

extern const us_kernel us_kernel_gain;
extern const us_kernel us_kernel_lowpass;
extern const us_kernel us_kernel_highpass;
extern const us_kernel us_kernel_bandpass;
extern const us_kernel us_kernel_peaking;
extern const us_kernel us_kernel_lowshelf;
extern const us_kernel us_kernel_highshelf;
extern const us_kernel us_kernel_fir;
extern const us_kernel us_kernel_pan;
extern const us_kernel us_kernel_mix;
extern const us_kernel us_kernel_sine;
extern const us_kernel us_kernel_noise;

#if defined(__x86_64__)
extern const us_kernel us_kernel_gain_sse2, us_kernel_gain_avx2;
extern const us_kernel us_kernel_lowpass_sse2, us_kernel_lowpass_avx2;
extern const us_kernel us_kernel_highpass_sse2, us_kernel_highpass_avx2;
extern const us_kernel us_kernel_bandpass_sse2, us_kernel_bandpass_avx2;
extern const us_kernel us_kernel_peaking_sse2, us_kernel_peaking_avx2;
extern const us_kernel us_kernel_lowshelf_sse2, us_kernel_lowshelf_avx2;
extern const us_kernel us_kernel_highshelf_sse2, us_kernel_highshelf_avx2;
extern const us_kernel us_kernel_fir_sse2, us_kernel_fir_avx2;
#endif

#if defined(__aarch64__)
extern const us_kernel us_kernel_gain_neon;
extern const us_kernel us_kernel_lowpass_neon, us_kernel_highpass_neon, us_kernel_bandpass_neon;
extern const us_kernel us_kernel_peaking_neon, us_kernel_lowshelf_neon, us_kernel_highshelf_neon;
extern const us_kernel us_kernel_fir_neon;
#endif

#endif
