#ifndef REHOST_CCURL_SHIM_H
#define REHOST_CCURL_SHIM_H

// libcurl's easy API for the Curl module. curl_easy_setopt and curl_easy_getinfo are variadic,
// which Swift cannot call: each typed wrapper below passes exactly one argument of the type the
// option documents (a long, a curl_off_t, a pointer, a function pointer), so no wrong-width value
// ever reaches the va_list.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

/// curl_easy_setopt for CURLOPTTYPE_LONG and CURLOPTTYPE_VALUES options.
static inline CURLcode rehost_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt for CURLOPTTYPE_OFF_T options (the *_LARGE sizes).
static inline CURLcode rehost_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt for CURLOPTTYPE_STRINGPOINT options (libcurl copies the string) and
/// CURLOPTTYPE_CBPOINT / OBJECTPOINT ones (the *DATA pointers, the error buffer, a curl_slist).
static inline CURLcode rehost_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

/// CURLOPT_READFUNCTION, CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION share one prototype.
typedef size_t (*rehost_curl_data_callback)(char *buffer, size_t size, size_t count, void *context);

static inline CURLcode rehost_curl_setopt_data_callback(CURL *handle, CURLoption option,
                                                        rehost_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

/// CURLOPT_XFERINFOFUNCTION.
static inline CURLcode rehost_curl_setopt_xferinfo(CURL *handle, curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

/// CURLOPT_SEEKFUNCTION.
static inline CURLcode rehost_curl_setopt_seek(CURL *handle, curl_seek_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, callback);
}

/// curl_easy_getinfo for CURLINFO_LONG items.
static inline CURLcode rehost_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// curl_easy_getinfo for CURLINFO_OFF_T items.
static inline CURLcode rehost_curl_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// Compound macros Swift does not import.
static inline long rehost_curl_global_default(void) { return CURL_GLOBAL_DEFAULT; }

/// The return values of callbacks, which are macros of mixed types in curl.h.
static inline size_t rehost_curl_readfunc_abort(void) { return CURL_READFUNC_ABORT; }
static inline int rehost_curl_seekfunc_ok(void) { return CURL_SEEKFUNC_OK; }
static inline int rehost_curl_seekfunc_cantseek(void) { return CURL_SEEKFUNC_CANTSEEK; }
static inline int rehost_curl_seekfunc_fail(void) { return CURL_SEEKFUNC_FAIL; }

#endif
