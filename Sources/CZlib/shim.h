#ifndef REHOST_CZLIB_SHIM_H
#define REHOST_CZLIB_SHIM_H
#include <zlib.h>

// deflateInit2/inflateInit2 are function-like macros, which Swift does not import.
static inline int rehost_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
static inline int rehost_deflateInit2(z_streamp strm, int level, int method, int windowBits,
                                      int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}
#endif
