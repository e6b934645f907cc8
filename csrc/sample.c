/*
 * sample.c - read the process's memory from Linux /proc.
 *
 * Costs measured on the target machines decide the split:
 *   quick: pread of a kept-open statm (~2 us, flat) + getrusage (~1.7 us);
 *   full:  pread of smaps_rollup (~15 us small, ~4 ms per resident GiB of
 *          4 KiB pages), so the tracer calls it only on a time budget.
 * Files stay open between calls so a reading costs one pread, not
 * open+read+close; they are closed by mp_proc_close.
 */
#include "mempulse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct mp_proc {
    int statm_fd;
    int rollup_fd;
    int64_t page_size;
};

/* Large enough for statm and for smaps_rollup (about 20 short lines). */
#define READ_BUF 4096

static int open_proc_file(const char *dir, const char *name, int *fd_out)
{
    char path[512];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    do {
        *fd_out = open(path, O_RDONLY | O_CLOEXEC);
    } while (*fd_out < 0 && errno == EINTR);
    return *fd_out < 0 ? -1 : 0;
}

/* pread from offset 0 into buf, NUL-terminated; returns bytes read or -1. */
static ssize_t read_whole(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = pread(fd, buf + got, cap - 1 - got, (off_t)got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Open dir/name and read it once, so a kernel without smaps_rollup (before
 * 4.14) or a /proc we may not read fails here, not mid-trace.  The fd stays
 * open for later preads. */
static int open_and_check(const char *dir, const char *name, int *fd)
{
    char buf[READ_BUF];

    errno = 0;
    if (open_proc_file(dir, name, fd) < 0 || read_whole(*fd, buf, sizeof buf) <= 0) {
        if (errno == 0)
            errno = EIO;  /* an empty file sets no errno */
        return -1;
    }
    return 0;
}

int mp_proc_open(const char *dir, mp_proc **out)
{
    mp_proc *p;
    int status = MP_OK;
    int saved;

    if (dir == NULL || out == NULL)
        return MP_EINVAL;
    *out = NULL;
    p = malloc(sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    p->statm_fd = -1;
    p->rollup_fd = -1;
    p->page_size = (int64_t)sysconf(_SC_PAGESIZE);
    if (p->page_size <= 0)
        p->page_size = 4096;

    if (open_and_check(dir, "statm", &p->statm_fd) < 0)
        status = MP_ESTATM;
    else if (open_and_check(dir, "smaps_rollup", &p->rollup_fd) < 0)
        status = MP_EROLLUP;
    if (status != MP_OK) {
        saved = errno;
        mp_proc_close(p);
        errno = saved;
        return status;
    }
    *out = p;
    return MP_OK;
}

void mp_proc_close(mp_proc *p)
{
    if (p == NULL)
        return;
    if (p->statm_fd >= 0)
        close(p->statm_fd);
    if (p->rollup_fd >= 0)
        close(p->rollup_fd);
    free(p);
}

void mp_proc_sampler(mp_proc *p, mp_sampler *out)
{
    out->quick = mp_proc_quick;
    out->full = mp_proc_full;
    out->ctx = p;
}

int mp_proc_quick(void *ctx, mp_usage *out)
{
    mp_proc *p = ctx;
    char buf[256];
    long long size, resident;
    struct rusage ru;

    if (read_whole(p->statm_fd, buf, sizeof buf) <= 0)
        return MP_ESTATM;
    /* statm: size resident shared text lib data dt, in pages. */
    if (sscanf(buf, "%lld %lld", &size, &resident) != 2)
        return MP_EPARSE;
    out->rss = (int64_t)resident * p->page_size;
    /* ru_maxrss is in KiB on Linux. */
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        out->peak_rss = (int64_t)ru.ru_maxrss * 1024;
        /* ru_maxrss comes from the kernel's approximate per-CPU rss
         * counters while statm sums them exactly (newer kernels), so it can
         * trail the current rss by some pages; a peak is never below it. */
        if (out->peak_rss < out->rss)
            out->peak_rss = out->rss;
    } else {
        out->peak_rss = MP_NONE;
    }
    return MP_OK;
}

/* Value in kB of the smaps_rollup field "name:", or -1 when absent. */
static int64_t rollup_field(const char *text, const char *name)
{
    size_t len = strlen(name);
    const char *line = text;
    while (line != NULL && *line != '\0') {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            char *end;
            long long kb = strtoll(line + len + 1, &end, 10);
            if (end == line + len + 1)
                return -1;
            return (int64_t)kb;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

int mp_proc_full(void *ctx, mp_usage *out)
{
    mp_proc *p = ctx;
    char buf[READ_BUF];
    int64_t clean, dirty, swap;

    if (read_whole(p->rollup_fd, buf, sizeof buf) <= 0)
        return MP_EROLLUP;
    clean = rollup_field(buf, "Private_Clean");
    dirty = rollup_field(buf, "Private_Dirty");
    swap = rollup_field(buf, "Swap");
    if (clean < 0 || dirty < 0)
        return MP_EPARSE;
    out->uss = (clean + dirty) * 1024;
    out->swap = swap < 0 ? MP_NONE : swap * 1024;
    return MP_OK;
}
