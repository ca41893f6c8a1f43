#define _GNU_SOURCE
#include "cpagecache.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

// The number is the same on every architecture (the unified table).
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

// <linux/mman.h>'s struct cachestat_range and struct cachestat, spelled out
// so that older kernel headers build too.
struct cpagecache_range {
    uint64_t off;
    uint64_t len;
};

struct cpagecache_stat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
};

int cpagecache_range_is_resident(int fd, uint64_t offset, uint64_t length) {
    if (length == 0) return 1;
    if (offset + length < offset) {
        errno = EOVERFLOW;
        return -1;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    struct cpagecache_range range = { offset, length };
    struct cpagecache_stat stat = { 0 };
    if (syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) return -1;
    // nr_cache counts the cached pages of the range, large folios clipped to it.
    uint64_t first = offset / (uint64_t)page;
    uint64_t last = (offset + length - 1) / (uint64_t)page;
    return stat.nr_cache >= last - first + 1 ? 1 : 0;
}

int cpagecache_is_supported(void) {
    // An invalid descriptor: EBADF where the call exists.
    if (syscall(__NR_cachestat, -1, 0, 0, 0) == 0) return 1;
    return errno != ENOSYS && errno != EPERM;
}
