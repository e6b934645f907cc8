/*
 * sample.c - read the process's memory from Linux /proc.
 *
 * Costs measured on the target machines decide the split:
 *   quick: pread of a kept-open statm (~2 us, flat) + getrusage (~1.7 us);
 *   full:  pread of smaps_rollup (~15 us small, ~4 ms per resident GiB of
 *          4 KiB pages), so the meter calls it only on a time budget.
 * Files stay open between calls so a reading costs one pread, not
 * open+read+close; they are closed by mp_proc_close.
 *
 * Fork: the fds name the files of the process that opened them (an fd on
 * /proc/self/clear_refs opened in the parent still resets the PARENT's
 * peak), so an atfork hook closes them in the child, and every reading and
 * reset first compares getpid() with the pid that opened them and, in a
 * child, opens its own (the check alone covers a fork the hook missed).
 *
 * Peaks: writing "5" to /proc/self/clear_refs (~1.6 us) resets the kernel's
 * high-water mark of rss to the current rss, which is how the tracer gets a
 * peak per line.  Opening the file writes nothing: the first reset comes
 * from the meter, after it has read the mark as it was (VmHWM).  getrusage
 * reports that mark, but as max(mark, a value frozen at exec: the peak of
 * the process image before exec), so a program started by a large process
 * sees the parent's peak for ever.  The value getrusage gives right after
 * our first reset bounds that frozen part from above ("floor"); a getrusage
 * figure above the floor is the mark itself, and only in between (and
 * before the first reset) is /proc/self/status (VmHWM, ~6 us) read.  Where
 * clear_refs cannot be opened, peaks are the lifetime peak.
 *
 * Kinds: statm's third field, shared, is the file-backed plus shared-memory
 * (shmem) pages and resident - shared the anonymous ones, the very
 * counters of status's RssFile, RssShmem and RssAnon.  So the quick
 * reading knows anon exactly at no extra cost, and splits shared by
 * status's RssShmem (one more pread, ~6 us) only when shared moved since
 * its last split: a loop that allocates heap memory pays nothing more.
 * A full reading asks for a fresh split at the next quick one, so a move
 * between file and shmem that left shared unchanged is seen within the
 * full readings' budget.  Kernels before 4.5 have no RssShmem: file and
 * shmem stay unknown there.
 *
 * Elsewhere than Linux the same functions exist and mp_proc_open fails with
 * MP_ESTATM and errno ENOSYS, so one file list builds on every platform.
 */
#include "mempulse.h"
#include "port.h"

#include <errno.h>
#include <stdlib.h>

#if defined(__linux__)

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct mp_proc {
    struct mp_proc *next;   /* every open sampler, for the fork hook */
    int statm_fd;
    int rollup_fd;
    int clear_fd;       /* clear_refs, or -1: lifetime peaks */
    int status_fd;      /* status, or -1 */
    long long split_shared; /* statm's shared at the last split; -1: none */
    int64_t shmem;      /* RssShmem then, in bytes; MP_NONE: unknown */
    int64_t page_size;
    int64_t floor;      /* getrusage's peak may not fall below this */
    int reset_done;     /* the mark has been reset since the files opened */
    int64_t pid;        /* process that opened the fds */
    char dir[256];
};

/* Large enough for statm and for smaps_rollup (about 20 short lines). */
#define READ_BUF 4096

static int open_proc_file(const char *dir, const char *name, int flags, int *fd_out)
{
    char path[512];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    do {
        *fd_out = open(path, flags | O_CLOEXEC);
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
        /* These /proc files are made whole on the first read: a short
         * read is all of it, and reading on to see 0 costs a syscall. */
        if ((size_t)r < cap - 1 - (got - (size_t)r))
            break;
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
    if (open_proc_file(dir, name, O_RDONLY, fd) < 0 || read_whole(*fd, buf, sizeof buf) <= 0) {
        if (errno == 0)
            errno = EIO;  /* an empty file sets no errno */
        return -1;
    }
    return 0;
}

static void close_fds(mp_proc *p)
{
    int *fds[4];
    int i;
    fds[0] = &p->statm_fd;
    fds[1] = &p->rollup_fd;
    fds[2] = &p->clear_fd;
    fds[3] = &p->status_fd;
    for (i = 0; i < 4; i++) {
        if (*fds[i] >= 0)
            (void)close(*fds[i]);   /* read-only /proc files: nothing to lose */
        *fds[i] = -1;
    }
}

/* Open the files for the calling process; MP_OK or MP_ESTATM/MP_EROLLUP. */
static int open_fds(mp_proc *p)
{
    int saved;
    p->floor = 0;
    p->reset_done = 0;
    p->split_shared = -1;
    p->shmem = MP_NONE;
    p->pid = mp_getpid();
    if (open_and_check(p->dir, "statm", &p->statm_fd) < 0) {
        saved = errno;
        close_fds(p);
        errno = saved;
        return MP_ESTATM;
    }
    if (open_and_check(p->dir, "smaps_rollup", &p->rollup_fd) < 0) {
        saved = errno;
        close_fds(p);
        errno = saved;
        return MP_EROLLUP;
    }
    /* status for the peak before our first reset and the kinds' split;
     * per-line peaks if clear_refs opens for writing too (containers may
     * refuse it); nothing is written yet. */
    if (open_and_check(p->dir, "status", &p->status_fd) < 0) {
        if (p->status_fd >= 0)
            (void)close(p->status_fd);
        p->status_fd = -1;
        return MP_OK;
    }
    if (open_proc_file(p->dir, "clear_refs", O_WRONLY, &p->clear_fd) < 0)
        p->clear_fd = -1;
    return MP_OK;
}

/* Every open sampler: a forked child closes the parent's fds at once (the
 * next reading opens its own), so a child holds none of the parent's /proc
 * files even if it never reads. */
static mp_mutex procs_lock = MP_MUTEX_INIT;
static mp_proc *procs;
static mp_once procs_once = MP_ONCE_INIT;

static void procs_after_fork(void)
{
    mp_proc *p;
    mp_mutex_reinit(&procs_lock);
    for (p = procs; p != NULL; p = p->next) {
        close_fds(p);
        p->pid = -1;
    }
}

static void install_procs_hook(void)
{
    /* Refused: the pid check below still reopens before any use. */
    (void)mp_atfork_child(procs_after_fork);
}

/* In a forked child: drop the parent's fds, open our own. */
static int own_fds(mp_proc *p)
{
    if (p->pid == mp_getpid())
        return MP_OK;
    close_fds(p);
    return open_fds(p);
}

int mp_proc_open(const char *dir, mp_proc **out, int *err)
{
    mp_proc *p;
    int status, saved;

    if (err != NULL)
        *err = 0;
    if (dir == NULL || out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (strlen(dir) >= sizeof p->dir) {
        errno = ENAMETOOLONG;
        if (err != NULL)
            *err = errno;
        return MP_ESTATM;
    }
    p = malloc(sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    strcpy(p->dir, dir);
    p->statm_fd = p->rollup_fd = p->clear_fd = p->status_fd = -1;
    p->page_size = (int64_t)sysconf(_SC_PAGESIZE);
    if (p->page_size <= 0)
        p->page_size = 4096;
    status = open_fds(p);
    if (status != MP_OK) {
        saved = errno;
        free(p);
        errno = saved;
        if (err != NULL)
            *err = saved;
        return status;
    }
    (void)mp_run_once(&procs_once, install_procs_hook);  /* refused: see there */
    mp_mutex_lock(&procs_lock);
    p->next = procs;
    procs = p;
    mp_mutex_unlock(&procs_lock);
    *out = p;
    return MP_OK;
}

void mp_proc_close(mp_proc *p)
{
    mp_proc **q;
    if (p == NULL)
        return;
    mp_mutex_lock(&procs_lock);
    for (q = &procs; *q != NULL; q = &(*q)->next) {
        if (*q == p) {
            *q = p->next;
            break;
        }
    }
    mp_mutex_unlock(&procs_lock);
    close_fds(p);
    free(p);
}

void mp_proc_sampler(mp_proc *p, mp_sampler *out)
{
    out->quick = mp_proc_quick;
    out->full = mp_proc_full;
    out->reset_peak = p->clear_fd >= 0 ? mp_proc_reset_peak : NULL;
    out->ctx = p;
    out->serial = 1;    /* no Python, no lock: readings may wait for each other */
}

int mp_proc_reset_peak(void *ctx)
{
    mp_proc *p = ctx;
    struct rusage ru;
    ssize_t r;

    if (own_fds(p) != MP_OK || p->clear_fd < 0)
        return MP_ESAMPLER;
    do {
        r = pwrite(p->clear_fd, "5", 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r != 1) {
        /* Refused (some containers): lifetime peaks from getrusage now. */
        (void)close(p->clear_fd);
        p->clear_fd = -1;
        return MP_ESAMPLER;
    }
    if (!p->reset_done) {
        if (getrusage(RUSAGE_SELF, &ru) != 0)
            return MP_ESAMPLER;
        p->floor = (int64_t)ru.ru_maxrss * 1024;
        p->reset_done = 1;
    }
    return MP_OK;
}

/* A decimal number after optional spaces; the end of it, or NULL.
 * sscanf costs ~300 instructions a number, this a tenth of that, and
 * statm is parsed at every reading. */
static const char *parse_count(const char *p, long long *out)
{
    long long v = 0;
    int digits = 0;
    while (*p == ' ')
        p++;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++digits > 18)
            return NULL;   /* no page count is that large */
        v = v * 10 + (*p - '0');
    }
    if (digits == 0)
        return NULL;
    *out = v;
    return p;
}

/* The kB figure of the status field "\nname:" in bytes, or MP_NONE. */
static int64_t status_field(const char *text, const char *name)
{
    const char *line = strstr(text, name);
    long long kb;
    if (line == NULL || sscanf(line + strlen(name), "%lld", &kb) != 1)
        return MP_NONE;
    return (int64_t)kb * 1024;
}

/* /proc/self/status, read at most once per quick reading. */
typedef struct status_text {
    int state;          /* 0 not read yet, 1 read, -1 unreadable */
    char buf[READ_BUF];
} status_text;

static const char *status_read(mp_proc *p, status_text *st)
{
    if (st->state == 0)
        st->state = p->status_fd >= 0 && read_whole(p->status_fd, st->buf, sizeof st->buf) > 0 ? 1 : -1;
    return st->state > 0 ? st->buf : NULL;
}

/* VmHWM in bytes, or MP_NONE. */
static int64_t status_hwm(mp_proc *p, status_text *st)
{
    const char *text = status_read(p, st);
    return text != NULL ? status_field(text, "\nVmHWM:") : MP_NONE;
}

/* anon, file and shmem from statm's resident and shared (pages). */
static void split_kinds(mp_proc *p, long long resident, long long shared, status_text *st,
                        mp_usage *out)
{
    int64_t shared_bytes;
    if (shared > resident)  /* not seen; a kind is never negative */
        shared = resident;
    shared_bytes = (int64_t)shared * p->page_size;
    out->anon = (int64_t)(resident - shared) * p->page_size;
    if (shared != p->split_shared) {
        const char *text = status_read(p, st);
        p->shmem = text != NULL ? status_field(text, "\nRssShmem:") : MP_NONE;
        p->split_shared = shared;
    }
    if (p->shmem == MP_NONE)
        return;
    /* status's counters may lag statm's by a few pages (per-CPU counters
     * on newer kernels): the split never leaves [0, shared]. */
    out->shmem = p->shmem < shared_bytes ? p->shmem : shared_bytes;
    out->file = shared_bytes - out->shmem;
}

int mp_proc_quick(void *ctx, mp_usage *out)
{
    mp_proc *p = ctx;
    char buf[256];
    long long size, resident, shared;
    const char *text;
    struct rusage ru;
    int64_t peak;
    status_text st;
    int rc = own_fds(p);

    if (rc != MP_OK)
        return rc;
    if (read_whole(p->statm_fd, buf, sizeof buf) <= 0)
        return MP_ESTATM;
    /* statm: size resident shared text lib data dt, in pages. */
    if ((text = parse_count(buf, &size)) == NULL || (text = parse_count(text, &resident)) == NULL ||
        parse_count(text, &shared) == NULL)
        return MP_EPARSE;
    out->rss = (int64_t)resident * p->page_size;
    st.state = 0;
    split_kinds(p, resident, shared, &st, out);
    if (p->clear_fd >= 0 && !p->reset_done) {
        /* The lifetime mark as it is before our first reset, exec'd
         * parent's part excluded. */
        peak = status_hwm(p, &st);
        if (peak == MP_NONE)
            return MP_EPARSE;
        /* A mark at rss loses nothing to a reset, which the meter would not
         * make (it resets marks above rss only): make it here, so the
         * floor is known and later readings take getrusage, not status
         * (a third of the cost).  Refused: lifetime peaks, as there. */
        if (peak <= out->rss)
            (void)mp_proc_reset_peak(p);
    } else {
        if (getrusage(RUSAGE_SELF, &ru) != 0) {
            out->peak_rss = MP_NONE;
            return MP_OK;
        }
        peak = (int64_t)ru.ru_maxrss * 1024;   /* ru_maxrss is in KiB */
        if (p->clear_fd >= 0 && peak <= p->floor && peak > out->rss) {
            /* Maybe the frozen pre-exec peak, not ours: ask status. */
            peak = status_hwm(p, &st);
            if (peak == MP_NONE)
                return MP_EPARSE;
        }
    }
    /* The mark comes from the kernel's approximate per-CPU rss counters
     * while statm sums them exactly (newer kernels), so it can trail the
     * current rss by some pages; a peak is never below it. */
    out->peak_rss = peak > out->rss ? peak : out->rss;
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
    int rc = own_fds(p);

    if (rc != MP_OK)
        return rc;
    if (read_whole(p->rollup_fd, buf, sizeof buf) <= 0)
        return MP_EROLLUP;
    clean = rollup_field(buf, "Private_Clean");
    dirty = rollup_field(buf, "Private_Dirty");
    swap = rollup_field(buf, "Swap");
    if (clean < 0 || dirty < 0)
        return MP_EPARSE;
    out->uss = (clean + dirty) * 1024;
    out->swap = swap < 0 ? MP_NONE : swap * 1024;
    p->split_shared = -1;   /* a fresh split at the next quick reading */
    return MP_OK;
}

#else /* not Linux: no /proc; MemoryUsageTracer (psutil) serves there */

struct mp_proc {
    int unused;
};

int mp_proc_open(const char *dir, mp_proc **out, int *err)
{
    if (err != NULL)
        *err = 0;
    if (dir == NULL || out == NULL)
        return MP_EINVAL;
    *out = NULL;
    errno = ENOSYS;
    if (err != NULL)
        *err = errno;
    return MP_ESTATM;
}

void mp_proc_close(mp_proc *p)
{
    free(p);
}

void mp_proc_sampler(mp_proc *p, mp_sampler *out)
{
    out->quick = mp_proc_quick;
    out->full = mp_proc_full;
    out->reset_peak = NULL;
    out->ctx = p;
    out->serial = 1;
}

int mp_proc_quick(void *p, mp_usage *out)
{
    (void)p;
    (void)out;
    errno = ENOSYS;
    return MP_ESTATM;
}

int mp_proc_full(void *p, mp_usage *out)
{
    (void)p;
    (void)out;
    errno = ENOSYS;
    return MP_EROLLUP;
}

int mp_proc_reset_peak(void *p)
{
    (void)p;
    errno = ENOSYS;
    return MP_ESAMPLER;
}

#endif
