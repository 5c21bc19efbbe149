#ifndef REHOST_CBLKID_SHIM_H
#define REHOST_CBLKID_SHIM_H
#include <blkid/blkid.h>
#endif
