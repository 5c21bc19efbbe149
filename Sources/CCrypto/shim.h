#ifndef REHOST_CCRYPTO_SHIM_H
#define REHOST_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif
