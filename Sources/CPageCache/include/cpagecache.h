#ifndef CIMNBD_CPAGECACHE_H
#define CIMNBD_CPAGECACHE_H
#include <stdint.h>

// Small C shim for NBDServer: cachestat(2) (Linux 6.5+) has no glibc
// wrapper, and the variadic syscall(2) is not callable from Swift.
//
// Returns 1 when every page of [offset, offset + length) of the file open on
// fd is in the page cache, 0 when some page is not, and -1 (errno set) when
// this cannot be told: ENOSYS before Linux 6.5, EBADF, EOPNOTSUPP on some
// filesystems. A length of 0 answers 1.
int cpagecache_range_is_resident(int fd, uint64_t offset, uint64_t length);

// Returns 1 when this kernel has cachestat(2) and lets us call it (a seccomp
// filter may answer ENOSYS or EPERM), 0 otherwise.
int cpagecache_is_supported(void);

#endif
