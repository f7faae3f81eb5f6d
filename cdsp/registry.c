/* registry.c — the kernels this worker carries. */
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

/* Lookups live in csrc/us_registry.c, shared with user-built workers. */
