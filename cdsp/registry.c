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

const us_kernel *us_find_kernel(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; us_builtin_kernels[i]; i++)
        if (strcmp(us_builtin_kernels[i]->name, name) == 0) return us_builtin_kernels[i];
    return NULL;
}
