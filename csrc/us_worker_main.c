/* us_worker_main.c — the stock understudy-worker: the worker runtime (whose
 * main is in us_worker.c) with the built-in kernels and no user kernels.
 * CMake needs a source file of the executable's own; a user's worker has its
 * kernel file here instead (see examples/softclip). */
#include "us_kernel.h"
