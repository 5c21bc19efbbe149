#ifndef REHOST_CLINUX_SHIM_H
#define REHOST_CLINUX_SHIM_H

// Linux calls that Swift's Glibc module does not import: glibc declares them only under
// _GNU_SOURCE, which the Glibc module map is not built with.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

// sync_file_range(SYNC_FILE_RANGE_WRITE): starts writeback of a range without waiting for it,
// so the disk works while the writer goes on and the final fsync finds little left to do.
static inline int rehost_start_writeback(int fd, int64_t offset, int64_t length) {
#ifdef __linux__
    return sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd; (void)offset; (void)length;
    return 0;
#endif
}

// memfd_create(MFD_CLOEXEC): a file that lives in memory only, for libraries that want a file
// descriptor (libblkid) when the bytes come from a disk image read through its tables.
static inline int rehost_memfd_create(const char *name) {
#ifdef __linux__
    return memfd_create(name, MFD_CLOEXEC);
#else
    (void)name;
    return -1;
#endif
}

// ioprio_set/ioprio_get on the calling process (glibc has no wrapper): the I/O class and level
// its reads and writes get from the kernel's I/O scheduler, inherited by its children.
static inline int rehost_ioprio_set_self(int ioprio) {
#ifdef SYS_ioprio_set
    return (int)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, ioprio);
#else
    (void)ioprio;
    return -1;
#endif
}

static inline int rehost_ioprio_get(int pid) {
#ifdef SYS_ioprio_get
    return (int)syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, pid);
#else
    (void)pid;
    return -1;
#endif
}

#endif
