// The C audio clock lives in csrc/ with the rest of the runtime's C; cgo only
// compiles files in the package directory, hence this one-line shim.
#include "../../csrc/us_clock.c"
