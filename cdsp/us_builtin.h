/* us_builtin.h — the kernels cdsp/registry.c collects. */
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

#endif
