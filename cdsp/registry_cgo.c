// cgo compiles only files in this directory: the registry's lookups, which
// workers build from csrc/, come in through this shim.
#include "../csrc/us_registry.c"
