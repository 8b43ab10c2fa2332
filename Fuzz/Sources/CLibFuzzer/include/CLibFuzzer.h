#ifndef STRATA_CLIBFUZZER_H
#define STRATA_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

// The test each fuzz target defines (in Swift, with @_cdecl).
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): parses libFuzzer's flags from
// argv and runs `callback` on each input. The fuzz targets' main calls it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
