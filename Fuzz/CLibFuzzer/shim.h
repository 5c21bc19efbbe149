#ifndef REHOST_CLIBFUZZER_SHIM_H
#define REHOST_CLIBFUZZER_SHIM_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver, called from our own main (compiler-rt/lib/fuzzer/FuzzerInterface.h).
// SwiftPM links an executable target with `--defsym main=<module>_main`, so libFuzzer's own
// main never runs: rehost-fuzz picks the target from argv[1], then hands the rest of argv to
// this driver. The symbol exists only when linked with -sanitize=fuzzer; rehost-fuzz calls it
// only when compiled with -DFUZZING (scripts/fuzz.sh), so a normal build links without it.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
