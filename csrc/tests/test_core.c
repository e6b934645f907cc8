/*
 * test_core.c - tests of the mempulse C core (sample.c, tracer.c, table.c,
 * report.c).  Plain C99, no framework: run by scripts/test-c.sh under
 * ASan+UBSan with leak detection (or valgrind).  Prints failed checks as
 * file:line and a last line "N passed, M failed"; exits nonzero on failure.
 *
 * Memory is real where memory is the subject: the /proc sampler is checked
 * against 64 MiB that the test allocates, touches and frees.  The tracer's
 * arithmetic is checked exactly with a scripted sampler.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "mempulse.h"
#include "port.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The /proc sampler, fork and fd checks need Linux; the rest (the tracer's
 * arithmetic with a scripted sampler, the meter, binding, the report) runs
 * everywhere, Windows included (scripts/check-portability.sh, under wine). */
#if defined(__linux__)
#define MP_TEST_LINUX 1
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */

static int g_passed, g_failed;

#define CHECK(expr)                                                        \
    do {                                                                   \
        if (expr) {                                                        \
            g_passed++;                                                    \
        } else {                                                           \
            g_failed++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #expr);                                      \
        }                                                                  \
    } while (0)

/* Equality of two integers, printing both values when it fails. */
#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                \
        if (a_ == b_) {                                                    \
            g_passed++;                                                    \
        } else {                                                           \
            g_failed++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, #a, #b, a_, b_);                   \
        }                                                                  \
    } while (0)

#define MIB ((int64_t)1024 * 1024)

/* ASan keeps freed blocks in a quarantine (256 MiB by default), so a freed
 * 64 MiB block would stay resident and the "memory drops after free" checks
 * would test ASan, not the sampler.  A quarantine smaller than the block
 * lets ASan unmap it at once, as glibc does; small blocks are still
 * quarantined, so use-after-free detection stays on.  ASAN_OPTIONS given
 * in the environment still override this. */
#if defined(__SANITIZE_ADDRESS__)
#define MP_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_TEST_ASAN 1
#endif
#endif
#ifdef MP_TEST_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}
#endif

/* How far ru_maxrss may trail an exact rss reading (see test_sampler_real). */
#define PEAK_SLACK (4 * MIB)

#ifdef MP_TEST_LINUX
/* Valgrind's malloc replacement does not return freed blocks to the
 * kernel, so there a free cannot lower rss.  Valgrind preloads its
 * vgpreload_*.so into the program it runs. */
static int under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

/* Keeps the compiler from eliding malloc+memset+free. */
static void *volatile g_sink;
#endif

#ifdef MP_TEST_LINUX
/* Open file descriptors of this process (the directory handle excluded). */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}
#else
static int count_fds(void)
{
    return 0;   /* not checked here */
}
#endif

static void sleep_ns(long ns)
{
#ifdef MP_WINDOWS
    Sleep((DWORD)((ns + 999999) / 1000000));
#else
    struct timespec ts;
    ts.tv_sec = ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
#endif
}

#ifdef MP_TEST_LINUX

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}


static void blank(mp_usage *u)
{
    u->rss = u->uss = u->swap = u->peak_rss = MP_NONE;
    u->anon = u->file = u->shmem = MP_NONE;
}
#endif

#ifdef MP_TEST_LINUX
/* ------------------------------------------------------------------------ */
/* 1. The /proc sampler on real memory                                      */

static void test_sampler_real(void)
{
    const size_t size = 64 * 1024 * 1024;
    mp_proc *p = NULL;
    mp_sampler s;
    mp_usage q0, q1, q2, f0, f1, f2;
    char *big;

    CHECK_EQ(mp_proc_open("/proc/self", &p, NULL), MP_OK);
    CHECK(p != NULL);
    if (p == NULL)
        return;
    mp_proc_sampler(p, &s);
    CHECK(s.quick == mp_proc_quick);
    CHECK(s.full == mp_proc_full);
    CHECK(s.ctx == p);

    blank(&q0);
    blank(&f0);
    CHECK_EQ(mp_proc_quick(p, &q0), MP_OK);
    CHECK(q0.rss > 0);
    CHECK(q0.peak_rss >= q0.rss);
    CHECK_EQ(mp_proc_full(p, &f0), MP_OK);
    CHECK(f0.uss > 0);
    CHECK(f0.swap != MP_NONE && f0.swap >= 0);
    CHECK(f0.uss <= q0.rss + 4 * MIB); /* unique pages are resident pages */

    big = malloc(size);
    CHECK(big != NULL);
    if (big == NULL) {
        mp_proc_close(p);
        return;
    }
    memset(big, 0xA5, size);
    g_sink = big;

    blank(&q1);
    blank(&f1);
    CHECK_EQ(mp_proc_quick(p, &q1), MP_OK);
    CHECK_EQ(mp_proc_full(p, &f1), MP_OK);
    CHECK(q1.rss - q0.rss >= 60 * MIB);
    CHECK(f1.uss - f0.uss >= 60 * MIB);
    CHECK(q1.peak_rss >= q1.rss);

    free(big);
    g_sink = NULL;

    blank(&q2);
    blank(&f2);
    CHECK_EQ(mp_proc_quick(p, &q2), MP_OK);
    CHECK_EQ(mp_proc_full(p, &f2), MP_OK);
    if (under_valgrind()) {
        printf("note: under valgrind, whose malloc keeps freed blocks resident:"
               " drop-after-free checks skipped\n");
    } else {
        CHECK(q1.rss - q2.rss >= 60 * MIB);
        CHECK(f1.uss - f2.uss >= 60 * MIB);
        CHECK(q2.peak_rss - q2.rss >= 56 * MIB);
    }
    /* The high-water mark stays.  It comes from getrusage's ru_maxrss,
     * which the kernel derives from approximate per-CPU rss counters while
     * statm sums them exactly, so it may trail statm by some pages. */
    CHECK(q2.peak_rss >= q1.rss - PEAK_SLACK);

    /* Resetting the mark starts a new window at the current level. */
    if (s.reset_peak == NULL) {
        printf("note: /proc/self/clear_refs refused: peak reset checks skipped\n");
    } else {
        mp_usage q3;
        CHECK(s.reset_peak == mp_proc_reset_peak);
        CHECK_EQ(s.reset_peak(p), MP_OK);
        blank(&q3);
        CHECK_EQ(mp_proc_quick(p, &q3), MP_OK);
        CHECK(q3.peak_rss >= q3.rss);
        CHECK(q3.peak_rss - q3.rss <= PEAK_SLACK);
    }

    mp_proc_close(p);
    mp_proc_close(NULL); /* allowed, like free(NULL) */
}

static void test_sampler_errors(void)
{
    char dir[] = "/tmp/mempulse-test-XXXXXX";
    mp_proc *p = (mp_proc *)&p; /* non-NULL: failures must reset it */
    mp_usage u;
    long page = sysconf(_SC_PAGESIZE);
    int fds_before = count_fds();
    int err;

    CHECK(fds_before > 0);

    errno = 0;
    CHECK_EQ(mp_proc_open("/nonexistent-dir", &p, NULL), MP_ESTATM);
    CHECK_EQ(errno, ENOENT);
    CHECK(p == NULL);
    err = -1;
    CHECK_EQ(mp_proc_open("/nonexistent-dir", &p, &err), MP_ESTATM);
    CHECK_EQ(err, ENOENT);

    CHECK_EQ(mp_proc_open(NULL, &p, &err), MP_EINVAL);
    CHECK_EQ(err, 0);
    CHECK_EQ(mp_proc_open(NULL, &p, NULL), MP_EINVAL);
    CHECK_EQ(mp_proc_open("/proc/self", NULL, NULL), MP_EINVAL);

    if (mkdtemp(dir) == NULL) {
        CHECK(!"mkdtemp failed");
        return;
    }

    /* statm but no smaps_rollup (a kernel before 4.14). */
    CHECK_EQ(write_file(dir, "statm", "100 50 10 1 0 40 0\n"), 0);
    p = (mp_proc *)&p;
    err = -1;
    CHECK_EQ(mp_proc_open(dir, &p, &err), MP_EROLLUP);
    CHECK_EQ(err, ENOENT);
    CHECK(p == NULL);

    /* An empty statm cannot be read. */
    CHECK_EQ(write_file(dir, "statm", ""), 0);
    p = (mp_proc *)&p;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_ESTATM);
    CHECK(p == NULL);

    /* smaps_rollup without Private_Clean: opens, then full() cannot parse. */
    CHECK_EQ(write_file(dir, "statm", "100 50 10 1 0 40 0\n"), 0);
    CHECK_EQ(write_file(dir, "smaps_rollup",
                        "00400000-7fff0000 ---p 00000000 00:00 0 [rollup]\n"
                        "Rss:                 200 kB\n"
                        "Private_Dirty:        16 kB\n"
                        "Swap:                  0 kB\n"), 0);
    p = NULL;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_OK);
    CHECK(p != NULL);
    if (p != NULL) {
        blank(&u);
        CHECK_EQ(mp_proc_quick(p, &u), MP_OK);
        CHECK_EQ(u.rss, 50 * (int64_t)page);
        CHECK_EQ(mp_proc_full(p, &u), MP_EPARSE);
        mp_proc_close(p);
    }

    /* A well-formed file: exact values; "SwapPss" is not "Swap"; the
     * file is re-read on every call (pread from offset 0). */
    CHECK_EQ(write_file(dir, "smaps_rollup",
                        "00400000-7fff0000 ---p 00000000 00:00 0 [rollup]\n"
                        "Rss:                 200 kB\n"
                        "Private_Clean:        40 kB\n"
                        "Private_Dirty:       116 kB\n"
                        "SwapPss:               7 kB\n"
                        "Swap:                  3 kB\n"), 0);
    p = NULL;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_OK);
    if (p != NULL) {
        blank(&u);
        CHECK_EQ(mp_proc_full(p, &u), MP_OK);
        CHECK_EQ(u.uss, (40 + 116) * 1024);
        CHECK_EQ(u.swap, 3 * 1024);
        blank(&u);
        CHECK_EQ(mp_proc_full(p, &u), MP_OK);
        CHECK_EQ(u.uss, (40 + 116) * 1024);
        mp_proc_close(p);
    }

    /* No clear_refs there: the sampler cannot reset, peaks are lifetime. */
    p = NULL;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_OK);
    if (p != NULL) {
        mp_sampler smp;
        mp_proc_sampler(p, &smp);
        CHECK(smp.reset_peak == NULL);
        mp_proc_close(p);
    }

    /* With clear_refs and status: getrusage's figure (this process's real
     * one) is at most the floor taken at open and above the scripted rss,
     * so it may be a peak frozen at exec and status decides. */
    CHECK_EQ(write_file(dir, "clear_refs", ""), 0);
    CHECK_EQ(write_file(dir, "status", "Name:\tx\nVmPeak:\t 9 kB\nVmHWM:\t    1234 kB\n"), 0);
    p = NULL;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_OK);
    if (p != NULL) {
        mp_sampler smp;
        mp_proc_sampler(p, &smp);
        CHECK(smp.reset_peak == mp_proc_reset_peak);
        blank(&u);
        CHECK_EQ(mp_proc_quick(p, &u), MP_OK);
        CHECK_EQ(u.rss, 50 * (int64_t)page);
        CHECK_EQ(u.peak_rss, 1234 * 1024);
        CHECK_EQ(write_file(dir, "status", "Name:\tx\n"), 0);
        CHECK_EQ(mp_proc_quick(p, &u), MP_EPARSE);
        mp_proc_close(p);
    }
    remove_file(dir, "clear_refs");
    remove_file(dir, "status");

    /* Without a Swap line swap is unknown, not an error. */
    CHECK_EQ(write_file(dir, "smaps_rollup",
                        "Private_Clean: 1 kB\nPrivate_Dirty: 2 kB\n"), 0);
    p = NULL;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_OK);
    if (p != NULL) {
        blank(&u);
        CHECK_EQ(mp_proc_full(p, &u), MP_OK);
        CHECK_EQ(u.uss, 3 * 1024);
        CHECK(u.swap == MP_NONE);
        mp_proc_close(p);
    }

    /* Garbage statm: quick() reports a parse error. */
    CHECK_EQ(write_file(dir, "statm", "not numbers\n"), 0);
    p = NULL;
    CHECK_EQ(mp_proc_open(dir, &p, NULL), MP_OK);
    if (p != NULL) {
        CHECK_EQ(mp_proc_quick(p, &u), MP_EPARSE);
        mp_proc_close(p);
    }

    remove_file(dir, "statm");
    remove_file(dir, "smaps_rollup");
    CHECK_EQ(rmdir(dir), 0);

    CHECK_EQ(count_fds(), fds_before); /* failed opens closed what they opened */
}

static void test_sampler_no_fd_leak(void)
{
    int before = count_fds();
    int i, ok = 1;
    for (i = 0; i < 100; i++) {
        mp_proc *p = NULL;
        mp_usage u;
        if (mp_proc_open("/proc/self", &p, NULL) != MP_OK || p == NULL) {
            ok = 0;
            break;
        }
        if (mp_proc_quick(p, &u) != MP_OK || mp_proc_full(p, &u) != MP_OK)
            ok = 0;
        if (i == 0) {
            mp_sampler smp;
            mp_proc_sampler(p, &smp);
            /* statm + smaps_rollup, kept open; + clear_refs and status
             * where peaks can be reset */
            CHECK_EQ(count_fds(), before + (smp.reset_peak != NULL ? 4 : 2));
        }
        mp_proc_close(p);
    }
    CHECK(ok);
    CHECK_EQ(count_fds(), before);
    for (i = 0; i < 100; i++) {
        mp_proc *p;
        mp_proc_open("/nonexistent-dir", &p, NULL);
    }
    CHECK_EQ(count_fds(), before);
}

#endif

/* ------------------------------------------------------------------------ */
/* 2. The tracer, with a scripted sampler                                    */

/*
 * The test sets the memory level; quick() reports rss = level and
 * peak_rss = the highest level since the last reset_peak (or a spike the
 * test sets), full() reports uss = level - gap.  With a constant gap the tracer's estimate
 * between full readings (uss at the last full + change of rss) equals what
 * full() would say, so expectations are exact however often full() runs.
 */
typedef struct script {
    int64_t rss;
    int64_t peak;
    int64_t gap;
    int64_t swap;
    long full_sleep_ns;   /* make full() slow, to push the next one out */
    long full_took_ns;    /* how long the last slow full() took */
    int quick_calls;
    int full_calls;
    int resets;
    int64_t reset_residue;  /* a reset leaves the mark this far above rss */
    int quick_fail_at;    /* fail on this quick() call (1-based); 0 = never */
    int quick_fail_rc;
    int full_fail_at;
    int full_fail_rc;
    int kinds_from;       /* quick() gives the kinds from this call on (1-based); 0 = never */
    int64_t anon, file, shmem;
} script;

/* Sleep until the meter's budget allows the next full reading: it spends at
 * most 1% of wall time on them (FULL_SHARE in meter.c). */
static void past_budget(const script *s)
{
    sleep_ns(s->full_took_ns * 100 + 20000000);
}

static void set_rss(script *s, int64_t rss)
{
    s->rss = rss;
    if (rss > s->peak)
        s->peak = rss;
}

static int script_quick(void *ctx, mp_usage *out)
{
    script *s = ctx;
    s->quick_calls++;
    if (s->quick_fail_at != 0 && s->quick_calls >= s->quick_fail_at) {
        errno = EIO;
        return s->quick_fail_rc;
    }
    out->rss = s->rss;
    out->peak_rss = s->peak;
    if (s->kinds_from != 0 && s->quick_calls >= s->kinds_from) {
        out->anon = s->anon;
        out->file = s->file;
        out->shmem = s->shmem;
    }
    return 0;
}

static int script_full(void *ctx, mp_usage *out)
{
    script *s = ctx;
    s->full_calls++;
    if (s->full_sleep_ns > 0) {
        int64_t a = mp_now_ns();
        sleep_ns(s->full_sleep_ns);
        s->full_took_ns = (long)(mp_now_ns() - a);
    }
    if (s->full_fail_at != 0 && s->full_calls >= s->full_fail_at) {
        errno = EACCES;
        return s->full_fail_rc;
    }
    out->uss = s->rss - s->gap;
    out->swap = s->swap;
    return 0;
}

static int script_reset_peak(void *ctx)
{
    script *s = ctx;
    s->resets++;
    s->peak = s->rss + s->reset_residue;
    return 0;
}

static void script_init(script *s, mp_sampler *smp, int64_t rss, int64_t gap, int64_t swap)
{
    memset(s, 0, sizeof *s);
    s->rss = s->peak = rss;
    s->gap = gap;
    s->swap = swap;
    smp->quick = script_quick;
    smp->full = script_full;
    smp->reset_peak = script_reset_peak;
    smp->ctx = s;
    smp->serial = 1;
}

/* Each tracer of these tests gets a fresh meter (a fresh "process"): the
 * meters are freed at the end of main. */
static mp_meter *g_meters[256];
static int g_nmeters;

static int tracer_on(const mp_sampler *smp, int64_t period_ns, mp_tracer **out)
{
    mp_meter *m = NULL;
    int rc;
    if (smp == NULL || out == NULL)
        return mp_tracer_new(NULL, period_ns, out);
    rc = mp_meter_new(smp, &m);
    if (rc != MP_OK) {
        *out = NULL;
        return rc;
    }
    if (g_nmeters < 256)
        g_meters[g_nmeters++] = m;
    return mp_tracer_new(m, period_ns, out);
}

static void free_meters(void)
{
    while (g_nmeters > 0)
        mp_meter_free(g_meters[--g_nmeters]);
}

typedef struct expect {
    int32_t code_id, lineno;
    int64_t uss, swap, peak_rss, hits, increment;
} expect;

static void check_records(const mp_tracer *t, const expect *want, size_t n, int line)
{
    mp_record got[16];
    size_t i, m;
    memset(got, 0x5A, sizeof got);
    if (n > 16) {
        CHECK(!"check_records: too many");
        return;
    }
    CHECK_EQ(mp_count(t), n);
    m = mp_records(t, got, 16);
    CHECK_EQ(m, n);
    for (i = 0; i < m && i < n; i++) {
        const mp_record *g = &got[i];
        const expect *w = &want[i];
        if (g->code_id != w->code_id || g->lineno != w->lineno ||
            g->uss != w->uss || g->swap != w->swap ||
            g->peak_rss != w->peak_rss || g->hits != w->hits ||
            g->increment != w->increment) {
            g_failed++;
            fprintf(stderr,
                    "%s:%d: record %zu: got {%d:%d uss=%lld swap=%lld peak=%lld "
                    "hits=%lld inc=%lld}, want {%d:%d uss=%lld swap=%lld "
                    "peak=%lld hits=%lld inc=%lld}\n",
                    __FILE__, line, i, g->code_id, g->lineno, (long long)g->uss,
                    (long long)g->swap, (long long)g->peak_rss, (long long)g->hits,
                    (long long)g->increment, w->code_id, w->lineno,
                    (long long)w->uss, (long long)w->swap, (long long)w->peak_rss,
                    (long long)w->hits, (long long)w->increment);
        } else {
            g_passed++;
        }
    }
}

/*
 * resets: the sampler can reset its peak mark (peaks per line) or not
 * (lifetime peaks); the two differ only in line 6, which runs after a spike
 * inside line 5.
 */
static void run_tracer_arithmetic(int resets)
{
    /* rss starts at 10,000,000; uss = rss - 4,000,000; swap 4096. */
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    int k;
    expect want[] = {
        {7, 1, 6001000, 4096, 10001000, 1, 1000},
        {7, 2, 6001000, 4096, 10001000, 1, 0},
        {7, 3, 6006000, 4096, 10006000, 3, 6000},      /* loop: 3 x +2000 */
        {7, 4, 6005500, 4096, 10006000, 3, -1500},     /* loop: 3 x -500 */
        {7, 5, 6305517, 4096, 20000000, 1, 300017},    /* includes callee */
        {9, 20, 6305500, 4096, 10305500, 1, 300000},   /* callee, own lines */
        {9, 21, 6305507, 4096, 10305507, 1, 7},
        {7, 6, 6305559, 4096, 10305559, 1, 42},        /* open at finish */
    };

    script_init(&s, &smp, 10000000, 4000000, 4096);
    if (!resets) {
        smp.reset_peak = NULL;
        want[7].peak_rss = 20000000;   /* it inherits line 5's spike */
    }
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_count(t), 0);
    CHECK_EQ(mp_start(t), MP_OK);
    CHECK_EQ(s.quick_calls, 1);
    CHECK_EQ(s.full_calls, 1);
    CHECK_EQ(mp_start(t), MP_ESTATE);   /* twice: refused, not sticky */
    CHECK_EQ(mp_error(t), MP_OK);

    mp_call(t, 7);
    mp_line(t, 1);
    set_rss(&s, s.rss + 1000);
    mp_line(t, 2);
    for (k = 0; k < 3; k++) {
        mp_line(t, 3);
        set_rss(&s, s.rss + 2000);
        mp_line(t, 4);
        set_rss(&s, s.rss - 500);
    }
    mp_line(t, 5);
    mp_call(t, 9);
    mp_line(t, 20);
    set_rss(&s, s.rss + 300000);
    mp_line(t, 21);
    set_rss(&s, s.rss + 7);
    mp_return(t);
    set_rss(&s, s.rss + 10);
    s.peak = 20000000;          /* a spike between two readings */
    mp_line(t, 6);
    set_rss(&s, s.rss + 42);
    CHECK_EQ(mp_error(t), MP_OK);
    /* period 0: every event read memory (start, 12 lines, 1 return). */
    CHECK_EQ(s.quick_calls, 1 + 12 + 1);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(s.quick_calls, 1 + 12 + 1 + 1);
    CHECK(s.full_calls >= 1);           /* the anchor, and others on budget */
    CHECK(mp_uss_age_ns(t) >= 0);
    CHECK_EQ(mp_dropped(t), 0);
    check_records(t, want, sizeof want / sizeof want[0], __LINE__);
    CHECK_EQ(mp_peak_per_line(t), resets);
    if (resets)
        CHECK(s.resets >= 2);   /* at least after line 4's drops and the spike */
    else
        CHECK_EQ(s.resets, 0);

    /* A short copy-out takes the first n, in order. */
    {
        mp_record two[2];
        CHECK_EQ(mp_records(t, two, 2), 2);
        CHECK_EQ(two[0].lineno, 1);
        CHECK_EQ(two[1].lineno, 2);
        CHECK_EQ(mp_records(t, two, 0), 0);
    }
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(mp_error_errno(t), 0);
    mp_tracer_free(t);
    mp_tracer_free(NULL);
}

static void test_tracer_arithmetic(void)
{
    run_tracer_arithmetic(1);
    run_tracer_arithmetic(0);
}

/* mp_merge: a second thread's tracer folded into the first, per callsite. */
static void test_tracer_merge(void)
{
    script sa, sb;
    mp_sampler ma, mb;
    mp_tracer *a = NULL, *b = NULL;
    script_init(&sa, &ma, 9000000, 4000000, 0);
    script_init(&sb, &mb, 9000000, 4000000, 0);
    CHECK_EQ(tracer_on(&ma, 0, &a), MP_OK);
    CHECK_EQ(tracer_on(&mb, 0, &b), MP_OK);
    if (a == NULL || b == NULL) {
        mp_tracer_free(a);
        mp_tracer_free(b);
        return;
    }
    CHECK_EQ(mp_start(a), MP_OK);
    mp_call(a, 1);
    mp_line(a, 10);
    set_rss(&sa, sa.rss + 1000);
    mp_line(a, 11);
    set_rss(&sa, sa.rss - 900);
    CHECK_EQ(mp_finish(a), MP_OK);

    sleep_ns(1000000);  /* b's readings are later than a's */
    CHECK_EQ(mp_start(b), MP_OK);
    mp_call(b, 1);
    mp_line(b, 10);
    set_rss(&sb, sb.rss + 1000);
    mp_line(b, 10);
    set_rss(&sb, sb.rss + 1000);
    mp_line(b, 30);
    set_rss(&sb, sb.rss - 500);
    CHECK_EQ(mp_finish(b), MP_OK);

    CHECK_EQ(mp_merge(a, b), MP_OK);
    CHECK_EQ(mp_merge(a, a), MP_EINVAL);
    {
        /* Line 10 ran once in a (+1000) and twice in b (+1000, +1000);
         * b's last reading is the later one, so its uss and peak win. */
        mp_record got[3];
        CHECK_EQ(mp_records(a, got, 3), 3);
        CHECK_EQ(got[0].hits, 3);
        CHECK_EQ(got[0].increment, 1000 + 2000);
        CHECK_EQ(got[0].uss, 5002000);
        CHECK_EQ(got[0].peak_rss, 9002000);
        CHECK_EQ(got[1].hits, 1);
        CHECK_EQ(got[1].increment, -900);
        CHECK_EQ(got[2].code_id, 1);
        CHECK_EQ(got[2].lineno, 30);
        CHECK_EQ(got[2].increment, -500);
    }
    mp_tracer_free(a);
    mp_tracer_free(b);
}

/* mp_return then mp_finish; start again after finish; deep recursion grows
 * the frame stack past its initial size. */
static void test_tracer_return_and_recursion(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    int d;

    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 3);
    mp_line(t, 10);
    set_rss(&s, s.rss + 4096);
    mp_return(t);
    set_rss(&s, s.rss + 1);     /* after the frame returned: charged to no one */
    CHECK_EQ(mp_finish(t), MP_OK);
    {
        static const expect want[] = {{3, 10, 1004096, 0, 1004096, 1, 4096}};
        check_records(t, want, 1, __LINE__);
    }
    CHECK_EQ(mp_finish(t), MP_ESTATE); /* not started any more */

    /* Restart on the same tracer: aggregates accumulate. 1000 nested
     * frames, each line adds 1 byte before calling deeper, so the line at
     * depth d (0-based) sees 1000 - d bytes by the time it returns. */
    set_rss(&s, 2000000);
    CHECK_EQ(mp_start(t), MP_OK);
    for (d = 0; d < 1000; d++) {
        mp_call(t, 5);
        mp_line(t, 1);
        set_rss(&s, s.rss + 1);
    }
    for (d = 0; d < 1000; d++)
        mp_return(t);
    CHECK_EQ(mp_finish(t), MP_OK);
    {
        static const expect want[] = {
            {3, 10, 1004096, 0, 1004096, 1, 4096},
            {5, 1, 2001000, 0, 2001000, 1000, 500500},
        };
        check_records(t, want, 2, __LINE__);
    }
    mp_tracer_free(t);
}

/* Between full readings uss is estimated from rss; full() corrects it. */
static void test_tracer_estimate(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;

    script_init(&s, &smp, 50000000, 20000000, 0);
    /* full() takes 1 ms, so the next one is not due for ~100 ms. */
    s.full_sleep_ns = 1000000;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);       /* uss 30,000,000 */
    mp_call(t, 1);
    mp_line(t, 1);
    set_rss(&s, s.rss + 100000);
    s.gap = 20050000;                   /* truth moved less than rss did */
    mp_line(t, 2);                      /* estimate: 30,100,000 */
    set_rss(&s, s.rss + 10);
    CHECK_EQ(s.full_calls, 1);          /* only at start so far */
    CHECK_EQ(s.quick_calls, 3);
    past_budget(&s);
    CHECK_EQ(mp_finish(t), MP_OK);      /* full: 50,100,010 - 20,050,000 */
    CHECK_EQ(s.full_calls, 2);
    CHECK(mp_uss_age_ns(t) >= 0 && mp_uss_age_ns(t) < 100000000);
    {
        static const expect want[] = {
            {1, 1, 30100000, 0, 50100000, 1, 100000},
            {1, 2, 30050010, 0, 50100010, 1, -49990},
        };
        check_records(t, want, 2, __LINE__);
    }
    mp_tracer_free(t);
}

/*
 * One meter, many short blocks: the anchor is shared, so only the first
 * block pays a full reading until the budget allows the next; increments
 * of blocks without a fresh full reading still come out exact.  A second
 * tracer started while the first runs shares the peak windows.
 */
static void test_meter_shared(void)
{
    script s;
    mp_sampler smp;
    mp_meter *m = NULL;
    mp_tracer *a = NULL, *b = NULL;
    mp_record r[2];
    int i;

    script_init(&s, &smp, 40000000, 10000000, 0);
    s.full_sleep_ns = 1000000;          /* next full due ~100 ms later */
    CHECK_EQ(mp_meter_new(&smp, &m), MP_OK);
    if (m == NULL)
        return;
    CHECK_EQ(s.quick_calls + s.full_calls, 0);  /* no reading at construction */
    CHECK_EQ(mp_meter_peak_per_line(m), 1);
    for (i = 0; i < 200; i++) {
        CHECK_EQ(mp_tracer_new(m, 0, &a), MP_OK);
        if (a == NULL)
            break;
        CHECK_EQ(mp_start(a), MP_OK);
        mp_call(a, 1);
        mp_line(a, 1);
        set_rss(&s, s.rss + 4096);
        mp_line(a, 2);
        CHECK_EQ(mp_finish(a), MP_OK);
        CHECK_EQ(mp_records(a, r, 2), 2);
        CHECK_EQ(r[0].increment, 4096);
        CHECK_EQ(r[0].uss, s.rss - 10000000);
        CHECK(mp_uss_age_ns(a) >= 0);
        mp_tracer_free(a);
        a = NULL;
    }
    CHECK(s.full_calls <= 3);           /* not one per block */

    /* Two tracers on one meter: b's reading sees a spike and resets the
     * mark; a's next reading must still get it. */
    CHECK_EQ(mp_tracer_new(m, 0, &a), MP_OK);
    CHECK_EQ(mp_tracer_new(m, 0, &b), MP_OK);
    if (a != NULL && b != NULL) {
        CHECK_EQ(mp_start(a), MP_OK);
        CHECK_EQ(mp_start(b), MP_OK);
        mp_call(a, 1);
        mp_line(a, 10);
        mp_call(b, 2);
        mp_line(b, 20);
        s.peak = s.rss + 50000000;      /* spike while both lines run */
        mp_line(b, 21);                 /* b reads and resets */
        CHECK_EQ(s.peak, s.rss);
        mp_line(a, 11);                 /* a's window includes b's */
        CHECK_EQ(mp_finish(a), MP_OK);
        CHECK_EQ(mp_finish(b), MP_OK);
        CHECK_EQ(mp_records(a, r, 1), 1);
        CHECK_EQ(r[0].peak_rss, s.rss + 50000000);
        CHECK_EQ(mp_records(b, r, 1), 1);
        CHECK_EQ(r[0].peak_rss, s.rss + 50000000);
        /* What the readings so far saw, without one more: the same peak. */
        CHECK_EQ(mp_meter_known_peak(m), s.rss + 50000000);
        CHECK_EQ(mp_meter_lifetime_peak(m), s.rss + 50000000);
    }
    mp_tracer_free(a);
    mp_tracer_free(b);
    mp_meter_free(m);
    mp_meter_free(NULL);
}

/* With a long period, line events do not read memory at all. */
static void test_tracer_time_gate(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    mp_record r[3];
    int i, q;

    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 1000000000, &t), MP_OK); /* 1 s */
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    CHECK_EQ(s.quick_calls, 1);
    mp_call(t, 1);
    for (i = 0; i < 3000; i++)
        mp_line(t, 1 + i % 3);
    mp_return(t);
    mp_call(t, 1);
    mp_line(t, 4);
    set_rss(&s, s.rss + 777);
    CHECK_EQ(s.quick_calls, 1);         /* the gate held every event back */
    CHECK_EQ(s.full_calls, 1);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(s.quick_calls, 2);
    CHECK(s.full_calls == 1 || s.full_calls == 2);  /* at finish on budget */
    CHECK_EQ(mp_count(t), 4);
    CHECK_EQ(mp_records(t, r, 3), 3);
    for (i = 0; i < 3; i++) {
        CHECK_EQ(r[i].lineno, i + 1);
        CHECK_EQ(r[i].hits, 1000);
        CHECK_EQ(r[i].increment, 0);
    }
    {
        mp_record all[4];
        CHECK_EQ(mp_records(t, all, 4), 4);
        CHECK_EQ(all[3].lineno, 4);
        CHECK_EQ(all[3].increment, 777); /* seen at finish, charged to the open line */
    }
    mp_tracer_free(t);

    /* A short period: after sleeping past it, the next event does read. */
    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 1000000, &t), MP_OK); /* 1 ms */
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 1);
    q = s.quick_calls;
    sleep_ns(3000000);
    mp_line(t, 2);
    CHECK_EQ(s.quick_calls, q + 1);
    CHECK_EQ(mp_finish(t), MP_OK);
    mp_tracer_free(t);
}

static void test_tracer_errors(void)
{
    script s;
    mp_sampler smp, bad;
    mp_tracer *t;
    int q;

    script_init(&s, &smp, 1000000, 0, 0);

    /* mp_tracer_new arguments */
    t = (mp_tracer *)&t;
    CHECK_EQ(tracer_on(NULL, 0, &t), MP_EINVAL);
    CHECK(t == NULL);
    t = (mp_tracer *)&t;
    CHECK_EQ(tracer_on(&smp, -1, &t), MP_EINVAL);
    CHECK(t == NULL);
    CHECK_EQ(tracer_on(&smp, 0, NULL), MP_EINVAL);
    bad = smp;
    bad.quick = NULL;
    CHECK_EQ(tracer_on(&bad, 0, &t), MP_EINVAL);
    bad = smp;
    bad.full = NULL;
    CHECK_EQ(tracer_on(&bad, 0, &t), MP_EINVAL);

    /* mp_line with no frame: ignored and counted, not an error */
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    q = s.quick_calls;
    mp_line(t, 1);
    mp_return(t);
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(mp_dropped(t), 2);
    CHECK_EQ(s.quick_calls, q);         /* dropped events read nothing */
    mp_call(t, 1);                      /* the trace goes on */
    mp_line(t, 2);
    mp_return(t);
    mp_return(t);                       /* one too many: dropped */
    mp_line(t, 3);                      /* no frame: dropped */
    CHECK_EQ(mp_count(t), 1);
    CHECK_EQ(mp_dropped(t), 4);
    CHECK_EQ(mp_finish(t), MP_OK);
    /* After finish: ignored (a thread still running at the trace's end). */
    mp_call(t, 1);
    mp_line(t, 7);
    mp_return(t);
    CHECK_EQ(mp_count(t), 1);
    CHECK_EQ(mp_dropped(t), 7);
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(mp_finish(t), MP_ESTATE);  /* twice: refused, not sticky */
    CHECK_EQ(mp_error(t), MP_OK);
    mp_tracer_free(t);

    /* Events before mp_start: ignored */
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_finish(t), MP_ESTATE);  /* finish before start: refused */
    mp_call(t, 1);
    mp_line(t, 1);
    CHECK_EQ(mp_count(t), 0);
    CHECK_EQ(mp_dropped(t), 2);
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(mp_start(t), MP_OK);       /* and it can still start */
    CHECK_EQ(mp_finish(t), MP_OK);
    mp_tracer_free(t);

    /* quick() failing with 1 at start */
    script_init(&s, &smp, 1000000, 0, 0);
    s.quick_fail_at = 1;
    s.quick_fail_rc = 1;
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_ESAMPLER);
    CHECK_EQ(mp_error(t), MP_ESAMPLER);
    CHECK_EQ(mp_error_errno(t), EIO);
    mp_tracer_free(t);

    /* quick() failing with MP_EPARSE mid-trace: kept as is, sticky */
    script_init(&s, &smp, 1000000, 0, 0);
    s.quick_fail_at = 3;
    s.quick_fail_rc = MP_EPARSE;
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);       /* quick #1 */
    mp_call(t, 1);
    mp_line(t, 1);                      /* quick #2 */
    CHECK_EQ(mp_error(t), MP_OK);
    mp_line(t, 2);                      /* quick #3 fails */
    CHECK_EQ(mp_error(t), MP_EPARSE);
    CHECK_EQ(mp_error_errno(t), EIO);
    mp_line(t, 3);
    CHECK_EQ(s.quick_calls, 3);
    CHECK_EQ(mp_finish(t), MP_EPARSE);
    CHECK_EQ(s.quick_calls, 3);
    mp_tracer_free(t);

    /* an unknown negative code from quick() maps to MP_ESAMPLER */
    script_init(&s, &smp, 1000000, 0, 0);
    s.quick_fail_at = 1;
    s.quick_fail_rc = -100;
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_ESAMPLER);
    mp_tracer_free(t);

    /* full() failing: 1 -> MP_ESAMPLER, MP_EROLLUP kept (at finish) */
    script_init(&s, &smp, 1000000, 0, 0);
    s.full_fail_at = 1;
    s.full_fail_rc = 1;
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_ESAMPLER);
    CHECK_EQ(mp_error_errno(t), EACCES);
    mp_tracer_free(t);

    script_init(&s, &smp, 1000000, 0, 0);
    s.full_fail_at = 2;
    s.full_fail_rc = MP_EROLLUP;
    s.full_sleep_ns = 1000000;          /* the next full() ~100 ms later */
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 1);
    past_budget(&s);
    CHECK_EQ(mp_finish(t), MP_EROLLUP);
    CHECK_EQ(mp_error(t), MP_EROLLUP);
    mp_tracer_free(t);
}

/* Thread-bound events, muted frames, and a free while another thread has
 * the tracer bound (ASan/valgrind catch a use after free; the leak checker
 * catches a tracer never freed). */
typedef struct bind_job {
    mp_tracer *t;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int step;           /* 1: thread has bound; 2: main has freed */
} bind_job;

static void *bind_thread(void *arg)
{
    bind_job *job = arg;
    mp_bind(job->t);
    mp_bound_call(3);
    mp_bound_line(30);
    pthread_mutex_lock(&job->lock);
    job->step = 1;
    pthread_cond_signal(&job->cond);
    while (job->step != 2)
        pthread_cond_wait(&job->cond, &job->lock);
    pthread_mutex_unlock(&job->lock);
    /* Freed by its owner meanwhile: still valid here; the event only sets
     * the finished tracer's sticky error.  Exiting frees it. */
    mp_bound_line(31);
    return NULL;
}

static void test_tracer_binding(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL, *u = NULL;
    mp_record r[4];
    bind_job job;
    pthread_t th;

    /* Nothing bound: events are ignored (no crash, nothing recorded). */
    mp_bound_call(1);
    mp_bound_line(1);
    mp_bound_return();

    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_bind(t);
    mp_bound_call(5);
    mp_bound_line(50);
    set_rss(&s, s.rss + 100);
    mp_bound_call(-1);          /* muted: e.g. a deeper call of traced code */
    mp_bound_line(60);
    set_rss(&s, s.rss + 20);
    mp_bound_line(61);
    mp_bound_return();
    mp_bound_line(51);
    mp_bound_return();
    mp_bind(NULL);
    mp_bound_line(99);          /* unbound again: ignored */
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(mp_count(t), 2);
    CHECK_EQ(mp_records(t, r, 4), 2);
    CHECK_EQ(r[0].lineno, 50);
    CHECK_EQ(r[0].increment, 120);  /* the muted frame's memory is its caller's */
    CHECK_EQ(r[1].lineno, 51);
    mp_tracer_free(t);

    /* Freed by one thread while another has it bound. */
    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 1000000000, &u), MP_OK);
    if (u == NULL)
        return;
    CHECK_EQ(mp_start(u), MP_OK);
    job.t = u;
    job.step = 0;
    pthread_mutex_init(&job.lock, NULL);
    pthread_cond_init(&job.cond, NULL);
    /* Freed by the thread that has it bound: unbound with it (ASan sees a
     * use after free if a later event still reached it). */
    {
        mp_tracer *w = NULL;
        script_init(&s, &smp, 1000000, 0, 0);
        CHECK_EQ(tracer_on(&smp, 0, &w), MP_OK);
        if (w != NULL) {
            CHECK_EQ(mp_begin(w, 3), MP_OK);
            mp_bound_line(1);
            mp_bound_line(2);
            CHECK_EQ(mp_finish(w), MP_OK);
            CHECK_EQ(mp_count(w), 2);
            mp_bound_line(3);     /* bound, finished: ignored */
            CHECK_EQ(mp_dropped(w), 1);
            mp_tracer_free(w);
            mp_bound_line(4);     /* nothing bound now: ignored (ASan: no use after free) */
            mp_bound_return();
        }
    }

    CHECK_EQ(pthread_create(&th, NULL, bind_thread, &job), 0);
    pthread_mutex_lock(&job.lock);
    while (job.step != 1)
        pthread_cond_wait(&job.cond, &job.lock);
    pthread_mutex_unlock(&job.lock);
    CHECK_EQ(mp_finish(u), MP_OK);
    CHECK_EQ(mp_count(u), 1);
    mp_tracer_free(u);
    pthread_mutex_lock(&job.lock);
    job.step = 2;
    pthread_cond_signal(&job.cond);
    pthread_mutex_unlock(&job.lock);
    CHECK_EQ(pthread_join(th, NULL), 0);
    pthread_mutex_destroy(&job.lock);
    pthread_cond_destroy(&job.cond);
}

#ifdef MP_TEST_LINUX
/* The tracer on the real /proc sampler, with real memory. */
static void test_tracer_real(void)
{
    const size_t size = 32 * 1024 * 1024;
    mp_proc *p = NULL;
    mp_sampler smp;
    mp_tracer *t = NULL;
    mp_record r[3];
    char *buf;

    CHECK_EQ(mp_proc_open("/proc/self", &p, NULL), MP_OK);
    if (p == NULL)
        return;
    mp_proc_sampler(p, &smp);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL) {
        mp_proc_close(p);
        return;
    }
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 1);
    buf = malloc(size);
    if (buf != NULL)
        memset(buf, 1, size);
    g_sink = buf;
    mp_line(t, 2);
    free(buf);
    g_sink = NULL;
    mp_line(t, 3);
    mp_return(t);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 3), 3);
    CHECK(buf != NULL);
    CHECK(r[0].increment >= 30 * MIB);
    if (!under_valgrind())
        CHECK(r[1].increment <= -30 * MIB);
    CHECK(r[0].peak_rss >= 32 * MIB);
    CHECK(r[1].peak_rss >= r[0].peak_rss);      /* it started at that level */
    if (mp_peak_per_line(t))
        CHECK(r[2].peak_rss <= r[0].peak_rss - 30 * MIB);  /* not inherited */
    else
        CHECK(r[2].peak_rss >= r[0].peak_rss);
    CHECK(r[2].uss > 0 && r[2].swap >= 0);
    mp_tracer_free(t);
    mp_proc_close(p);
}
#endif


/*
 * The movement gate: with a period far too long for the time gate, lines
 * that move memory are each measured at their own end, and the gate closes
 * again after HOT_READINGS (128) quiet readings.
 */
static void test_tracer_movement_gate(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    mp_record r[3];
    int i, q;

    /* The time gate alone holds quiet lines back. */
    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 1000000000, &t), MP_OK); /* 1 s */
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    for (i = 0; i < 300; i++)
        mp_line(t, 2);
    CHECK_EQ(s.quick_calls, 1);
    CHECK_EQ(mp_finish(t), MP_OK);
    mp_tracer_free(t);

    /* The realistic loop: every iteration allocates on line 2 only. */
    script_init(&s, &smp, 1000000, 0, 0);
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 1000000, &t), MP_OK);    /* 1 ms */
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 1);
    sleep_ns(2000000);                  /* the time gate opens once ... */
    set_rss(&s, s.rss + 1024);
    mp_line(t, 2);                      /* ... and sees line 1 move: hot */
    for (i = 0; i < 1000; i++) {
        set_rss(&s, s.rss + 1024);      /* line 2 allocates */
        mp_line(t, 3);
        mp_line(t, 1);
        mp_line(t, 2);
    }
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 3), 3);
    CHECK_EQ(r[0].lineno, 1);
    CHECK_EQ(r[0].increment, 1024);     /* the one before the loop */
    CHECK_EQ(r[1].lineno, 2);
    CHECK_EQ(r[1].increment, 1000 * 1024);
    CHECK_EQ(r[2].lineno, 3);
    CHECK_EQ(r[2].increment, 0);

    /* Quiet from now on: after HOT_READINGS readings the gate closes. */
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 5);
    q = s.quick_calls;
    for (i = 0; i < 5000; i++) {
        mp_line(t, 4);
        mp_line(t, 5);
    }
    CHECK(s.quick_calls - q <= 128 + 1);
    CHECK_EQ(mp_finish(t), MP_OK);

    /* A line that follows itself while memory moves (a comprehension):
     * readings between its executions would move nothing between lines,
     * so the open movement gate does not make it read. */
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 6);
    sleep_ns(2000000);
    set_rss(&s, s.rss + 4096);
    mp_line(t, 7);                      /* time gate: sees the move, hot */
    q = s.quick_calls;
    for (i = 0; i < 1000; i++) {
        set_rss(&s, s.rss + 4096);
        mp_line(t, 7);
    }
    CHECK(s.quick_calls - q <= 2);      /* only if 1 ms passed meanwhile */
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 3), 3);
    mp_tracer_free(t);
}


/*
 * Linux keeps the peak mark from per-CPU approximations of rss, so a reset
 * can leave it some pages above the exact rss statm gives until those
 * counters fold (seen: for seconds in a loop that touches no new page).
 * That leftover is no transient peak: it must not keep the movement gate
 * open (it did: a reading, and a reset, at every line event).  A real
 * spike on top of it still is one.
 */
static void test_tracer_peak_residue_is_no_movement(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    mp_record r[3];
    int i, q;

    script_init(&s, &smp, 1000000, 0, 0);
    s.reset_residue = 8192;
    s.peak = s.rss + 8192;
    CHECK_EQ(tracer_on(&smp, 1000000, &t), MP_OK);    /* 1 ms */
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 1);
    sleep_ns(2000000);
    q = s.quick_calls;
    for (i = 0; i < 5000; i++) {
        mp_line(t, 2);                  /* the first: the time gate */
        mp_line(t, 1);
    }
    /* At most one hot stretch (rss moved since the start's reading), then
     * the time gate: 10,000 events take far less than 1 ms each. */
    CHECK(s.quick_calls - q <= 1 + 128 + 10000 / 20);
    CHECK(s.resets > 1);
    /* A spike on top of the leftover is a peak, charged to its line, and
     * opens the movement gate. */
    mp_line(t, 2);
    s.peak = s.rss + 5000000;
    sleep_ns(2000000);
    mp_line(t, 3);                      /* the time gate: sees the spike */
    q = s.quick_calls;
    mp_line(t, 1);
    CHECK_EQ(s.quick_calls - q, 1);     /* hot: this event read too */
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 3), 3);
    for (i = 0; i < 3; i++) {
        CHECK(r[i].lineno >= 1 && r[i].lineno <= 3);
        if (r[i].lineno == 2)
            CHECK_EQ(r[i].peak_rss, 1000000 + 5000000);
        else if (r[i].lineno == 3)
            CHECK(r[i].peak_rss < 1000000 + 5000000);
    }
    mp_tracer_free(t);
}


/*
 * A sampler that is not serial (its callbacks run Python and need the GIL)
 * never waits for the meter: while another thread is inside a reading, a
 * tracer takes a quick reading without the mutex and still charges its
 * line exactly.
 */
typedef struct busy_sampler {
    volatile int64_t rss;
    volatile int holder_inside;
    volatile int release;
    volatile int calls;
} busy_sampler;

static int busy_quick(void *ctx, mp_usage *out)
{
    busy_sampler *b = ctx;
    int call = ++b->calls;
    if (call == 3) {                    /* the holder thread's reading */
        b->holder_inside = 1;
        while (!b->release)
            sleep_ns(1000000);
    }
    out->rss = out->peak_rss = b->rss;
    return 0;
}

static int busy_full(void *ctx, mp_usage *out)
{
    busy_sampler *b = ctx;
    out->uss = b->rss - 1000;
    out->swap = 0;
    return 0;
}

typedef struct busy_job {
    mp_meter *m;
    int rc;
} busy_job;

static void *busy_holder(void *arg)
{
    busy_job *job = arg;
    mp_usage u;
    job->rc = mp_meter_read(job->m, 0, &u);
    return NULL;
}

static void test_meter_not_serial(void)
{
    busy_sampler b;
    mp_sampler smp;
    mp_meter *m = NULL;
    mp_tracer *t = NULL;
    mp_record r[2];
    busy_job job;
    pthread_t th;

    memset(&b, 0, sizeof b);
    b.rss = 5000000;
    memset(&smp, 0, sizeof smp);
    smp.quick = busy_quick;
    smp.full = busy_full;
    smp.ctx = &b;
    smp.serial = 0;
    CHECK_EQ(mp_meter_new(&smp, &m), MP_OK);
    CHECK_EQ(mp_tracer_new(m, 0, &t), MP_OK);
    if (m == NULL || t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);       /* quick #1, the anchor */
    mp_call(t, 1);
    mp_line(t, 1);                      /* quick #2 */
    job.m = m;
    job.rc = -1;
    CHECK_EQ(pthread_create(&th, NULL, busy_holder, &job), 0);
    while (!b.holder_inside)
        sleep_ns(1000000);
    b.rss += 8192;                      /* line 1 allocates */
    mp_line(t, 2);                      /* meter busy: an unlocked reading */
    CHECK_EQ(b.calls, 4);
    b.release = 1;
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(job.rc, MP_OK);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 2), 2);
    CHECK_EQ(r[0].increment, 8192);
    CHECK_EQ(r[0].uss, 5000000 + 8192 - 1000);
    CHECK_EQ(mp_error(t), MP_OK);
    mp_tracer_free(t);
    mp_meter_free(m);
}

#ifdef MP_TEST_LINUX
/* Readings in a forked child use the child's own /proc files; a child
 * forked while another thread holds the meter does not deadlock. */
static int fd_names_pid(const char *name, long pid)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    char link[256], want[64], path[300];
    int found = 0;
    if (d == NULL)
        return -1;
    snprintf(want, sizeof want, "/proc/%ld/%s", pid, name);
    while ((e = readdir(d)) != NULL) {
        ssize_t n;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, want) == 0)
            found = 1;
    }
    closedir(d);
    return found;
}

typedef struct hold_job {
    mp_meter *m;
    volatile int inside;
} hold_job;

static int slow_quick(void *ctx, mp_usage *out)
{
    hold_job *job = ctx;
    job->inside = 1;
    sleep_ns(300000000);    /* the main thread forks meanwhile */
    out->rss = out->peak_rss = 1000000;
    return 0;
}

static int fast_full(void *ctx, mp_usage *out)
{
    (void)ctx;
    out->uss = 500000;
    out->swap = 0;
    return 0;
}

static void *hold_thread(void *arg)
{
    hold_job *job = arg;
    mp_usage u;
    CHECK_EQ(mp_meter_read(job->m, 0, &u), MP_OK);
    return NULL;
}

static void test_fork(void)
{
    mp_proc *p = NULL;
    mp_sampler smp;
    mp_meter *m = NULL;
    mp_tracer *t = NULL;
    mp_usage u;
    pid_t child;
    int status = -1;
    long parent = (long)getpid();

    CHECK_EQ(mp_proc_open("/proc/self", &p, NULL), MP_OK);
    if (p == NULL)
        return;
    mp_proc_sampler(p, &smp);
    CHECK_EQ(mp_meter_new(&smp, &m), MP_OK);
    CHECK_EQ(mp_tracer_new(m, 0, &t), MP_OK);
    if (m == NULL || t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    mp_line(t, 1);
    CHECK_EQ(fd_names_pid("statm", parent), 1);
    fflush(stdout);
    fflush(stderr);
    child = fork();
    if (child == 0) {
        /* The child: its tracer is the parent's; a reading reopens. */
        int ok = 1;
        long me = (long)getpid();
        char *big;
        ok &= fd_names_pid("statm", parent) == 0;  /* closed by the fork hook */
        ok &= fd_names_pid("clear_refs", parent) == 0;
        ok &= mp_meter_read(m, 1, &u) == MP_OK;
        ok &= fd_names_pid("statm", me) == 1;
        ok &= fd_names_pid("statm", parent) == 0;
        ok &= fd_names_pid("clear_refs", parent) == 0;
        /* A child's tracer measures the child. */
        {
            mp_tracer *c = NULL;
            mp_record r[2];
            ok &= mp_tracer_new(m, 0, &c) == MP_OK;
            ok &= c != NULL && mp_start(c) == MP_OK;
            mp_call(c, 2);
            mp_line(c, 1);
            big = malloc(32 * MIB);
            if (big != NULL)
                memset(big, 3, 32 * MIB);
            g_sink = big;
            mp_line(c, 2);
            ok &= mp_finish(c) == MP_OK;
            ok &= mp_records(c, r, 2) == 2 && r[0].increment >= 30 * MIB;
            free(big);
            mp_tracer_free(c);
        }
        _exit(ok ? 0 : 1);
    }
    CHECK(child > 0);
    if (child > 0) {
        CHECK_EQ(waitpid(child, &status, 0), child);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* The parent goes on with its own files. */
    mp_line(t, 2);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(fd_names_pid("statm", parent), 1);
    mp_tracer_free(t);
    mp_meter_free(m);
    mp_proc_close(p);

    /* Fork while another thread is inside a reading (holding the meter). */
    {
        hold_job job;
        mp_sampler slow;
        pthread_t th;
        int round;
        memset(&slow, 0, sizeof slow);
        slow.quick = slow_quick;
        slow.full = fast_full;
        slow.ctx = &job;
        slow.serial = 1;
        for (round = 0; round < 3; round++) {
            job.m = NULL;
            job.inside = 0;
            CHECK_EQ(mp_meter_new(&slow, &job.m), MP_OK);
            if (job.m == NULL)
                return;
            CHECK_EQ(pthread_create(&th, NULL, hold_thread, &job), 0);
            while (!job.inside)
                sleep_ns(1000000);
            fflush(stdout);
            fflush(stderr);
            child = fork();
            if (child == 0) {
                /* slow_quick sleeps 300 ms in the child's reading too;
                 * alarm() kills a deadlocked child. */
                mp_tracer *c = NULL;
                alarm(5);
                mp_bind(NULL);
                _exit(mp_meter_read(job.m, 0, &u) == MP_OK &&
                              mp_tracer_new(job.m, 0, &c) == MP_OK && mp_start(c) == MP_OK
                          ? 0 : 1);
            }
            CHECK(child > 0);
            if (child > 0) {
                CHECK_EQ(waitpid(child, &status, 0), child);
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            }
            CHECK_EQ(pthread_join(th, NULL), 0);
            mp_meter_free(job.m);
        }
    }
}

/* Several threads, each its own tracer on one real /proc meter. */
typedef struct thread_job {
    mp_meter *m;
    int ok;
} thread_job;

static void *meter_thread(void *arg)
{
    thread_job *job = arg;
    mp_tracer *t = NULL;
    int i, k;
    job->ok = mp_tracer_new(job->m, 0, &t) == MP_OK;
    if (!job->ok)
        return NULL;
    for (k = 0; k < 20; k++) {
        job->ok &= mp_start(t) == MP_OK;
        mp_bind(t);
        mp_bound_call(1);
        for (i = 0; i < 200; i++)
            mp_bound_line(1 + i % 5);
        mp_bound_return();
        mp_bound_return();              /* one too many: dropped */
        mp_bind(NULL);
        job->ok &= mp_finish(t) == MP_OK;
    }
    job->ok &= mp_dropped(t) == 20;
    job->ok &= mp_count(t) == 5;
    mp_tracer_free(t);
    return NULL;
}

static void test_meter_threads(void)
{
    mp_proc *p = NULL;
    mp_sampler smp;
    mp_meter *m = NULL;
    pthread_t th[4];
    thread_job jobs[4];
    int i;

    CHECK_EQ(mp_proc_open("/proc/self", &p, NULL), MP_OK);
    if (p == NULL)
        return;
    mp_proc_sampler(p, &smp);
    CHECK_EQ(mp_meter_new(&smp, &m), MP_OK);
    if (m == NULL)
        return;
    for (i = 0; i < 4; i++) {
        jobs[i].m = m;
        jobs[i].ok = 0;
        CHECK_EQ(pthread_create(&th[i], NULL, meter_thread, &jobs[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK(jobs[i].ok);
    }
    CHECK(mp_meter_lifetime_peak(m) > 0);
    mp_meter_free(m);
    mp_proc_close(p);
}
#endif

/* ------------------------------------------------------------------------ */
/* 2b. Largest increment per execution, memory by kind, memory over time    */

/* max_increment: the largest (uss after - uss before) of one execution. */
static void test_tracer_max_increment(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    mp_record r[3];
    static const int64_t steps[] = {2000, 5000, -500};
    int k;

    script_init(&s, &smp, 10000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    for (k = 0; k < 3; k++) {
        mp_line(t, 1);
        set_rss(&s, s.rss + steps[k]);
        mp_line(t, 2);
        set_rss(&s, s.rss - 100 * (k + 1));  /* line 2 only ever frees */
    }
    mp_line(t, 3);                           /* opens and closes, nothing moves */
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 3), 3);
    CHECK_EQ(r[0].increment, 6500);
    CHECK_EQ(r[0].max_increment, 5000);
    CHECK_EQ(r[1].increment, -600);
    CHECK_EQ(r[1].max_increment, -100);      /* the largest of three decreases */
    CHECK_EQ(r[2].max_increment, 0);
    /* Without a sampler's kinds, they are unknown. */
    CHECK_EQ(r[0].anon_increment, MP_NONE);
    CHECK_EQ(r[0].file_increment, MP_NONE);
    CHECK_EQ(r[0].shmem_increment, MP_NONE);
    mp_tracer_free(t);
}

/* Kinds: sums of each kind's change per line, merged by addition; a kind
 * that becomes known mid-line starts that line from its first value. */
static void test_tracer_kinds(void)
{
    script sa, sb;
    mp_sampler ma, mb;
    mp_tracer *a = NULL, *b = NULL;
    mp_record r[3];
    int k;

    script_init(&sa, &ma, 10000000, 0, 0);
    sa.kinds_from = 1;
    sa.anon = 6000000;
    sa.file = 3000000;
    sa.shmem = 1000000;
    CHECK_EQ(tracer_on(&ma, 0, &a), MP_OK);
    /* b's sampler gives kinds from its third reading on (start, line 10, then ...). */
    script_init(&sb, &mb, 10000000, 0, 0);
    sb.kinds_from = 3;
    sb.anon = 50000000;
    sb.file = 0;
    sb.shmem = 0;
    CHECK_EQ(tracer_on(&mb, 0, &b), MP_OK);
    if (a == NULL || b == NULL) {
        mp_tracer_free(a);
        mp_tracer_free(b);
        return;
    }
    CHECK_EQ(mp_start(a), MP_OK);
    mp_call(a, 1);
    for (k = 0; k < 2; k++) {
        mp_line(a, 10);                 /* +4096 anon, +8192 file, +12288 shmem */
        sa.anon += 4096;
        sa.file += 8192;
        sa.shmem += 12288;
        set_rss(&sa, sa.rss + 4096 + 8192 + 12288);
        mp_line(a, 11);                 /* -4096 shmem */
        sa.shmem -= 4096;
        set_rss(&sa, sa.rss - 4096);
    }
    CHECK_EQ(mp_finish(a), MP_OK);
    CHECK_EQ(mp_records(a, r, 3), 2);
    CHECK_EQ(r[0].anon_increment, 2 * 4096);
    CHECK_EQ(r[0].file_increment, 2 * 8192);
    CHECK_EQ(r[0].shmem_increment, 2 * 12288);
    CHECK_EQ(r[1].anon_increment, 0);
    CHECK_EQ(r[1].file_increment, 0);
    CHECK_EQ(r[1].shmem_increment, -2 * 4096);
    CHECK_EQ(r[0].max_increment, 4096 + 8192 + 12288);

    CHECK_EQ(mp_start(b), MP_OK);       /* reading 1: no kinds */
    mp_call(b, 1);
    mp_line(b, 10);                     /* reading 2: none yet */
    sb.anon += 1000;
    set_rss(&sb, sb.rss + 1000);
    mp_line(b, 20);                     /* reading 3: kinds known; line 10 gets 0, not 50 MB */
    sb.anon += 7000;
    set_rss(&sb, sb.rss + 7000);
    CHECK_EQ(mp_finish(b), MP_OK);
    CHECK_EQ(mp_records(b, r, 3), 2);
    CHECK_EQ(r[0].anon_increment, 0);
    CHECK_EQ(r[1].anon_increment, 7000);
    CHECK_EQ(r[1].file_increment, 0);

    CHECK_EQ(mp_merge(a, b), MP_OK);
    CHECK_EQ(mp_records(a, r, 3), 3);
    CHECK_EQ(r[0].lineno, 10);
    CHECK_EQ(r[0].anon_increment, 2 * 4096 + 0);
    CHECK_EQ(r[0].max_increment, 4096 + 8192 + 12288);   /* max of both */
    CHECK_EQ(r[2].lineno, 20);
    CHECK_EQ(r[2].anon_increment, 7000);
    CHECK_EQ(r[2].max_increment, 7000);
    mp_tracer_free(a);
    mp_tracer_free(b);
}

/* Points of t into a fresh array (caller frees); *n gets the count. */
static mp_point *series_of(const mp_tracer *t, size_t *n)
{
    mp_point *pts = malloc(MP_SERIES_MAX * sizeof *pts);
    *n = 0;
    if (pts == NULL)
        return NULL;
    memset(pts, 0x5A, MP_SERIES_MAX * sizeof *pts);
    CHECK(mp_series_count(t) <= MP_SERIES_MAX);
    *n = mp_series(t, pts, MP_SERIES_MAX);
    CHECK_EQ(*n, mp_series_count(t));
    return pts;
}

static int series_ordered(const mp_point *pts, size_t n)
{
    size_t i;
    for (i = 1; i < n; i++)
        if (pts[i].time_ns < pts[i - 1].time_ns)
            return 0;
    return 1;
}

/* The highest rss of the series and where it is. */
static size_t series_argmax(const mp_point *pts, size_t n)
{
    size_t i, best = 0;
    for (i = 1; i < n; i++)
        if (pts[i].rss > pts[best].rss)
            best = i;
    return best;
}

/* rss of reading k of a long run: a saw tooth with one spike. */
static int64_t saw(long k, long spike)
{
    return k == spike ? 900000000 : 100000000 + (k % 1000) * 4096;
}

/* Drive t through `readings` readings (period 0: one per event), the
 * spike at reading `spike`, on lines 1..3 of code 4. */
static void run_series(mp_tracer *t, script *s, long readings, long spike)
{
    long k;
    set_rss(s, saw(0, spike));
    CHECK_EQ(mp_start(t), MP_OK);           /* reading 0 */
    mp_call(t, 4);
    for (k = 1; k < readings - 1; k++) {    /* a reading at each line's start */
        set_rss(s, saw(k, spike));
        mp_line(t, (int32_t)(k % 3) + 1);
    }
    set_rss(s, saw(readings - 1, spike));
    CHECK_EQ(mp_finish(t), MP_OK);          /* the last reading */
}

static void test_series_bounded(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    mp_point *pts;
    size_t n, top;
    long readings = 50000, spike = 31337;
    size_t fp_start, fp_end;

    /* A short run: every reading is a point, with the line that ran. */
    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_series_count(t), 0);
    CHECK_EQ(mp_series(t, NULL, 0), 0);
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 7);
    mp_line(t, 1);
    set_rss(&s, 1004096);
    mp_line(t, 2);                          /* the reading that closes line 1 */
    set_rss(&s, 1000000);
    mp_return(t);
    CHECK_EQ(mp_finish(t), MP_OK);
    pts = series_of(t, &n);
    CHECK_EQ(n, 5);     /* start, line 1's start and end, line 2's end (return), finish */
    if (pts != NULL && n == 5) {
        CHECK_EQ(pts[0].time_ns, 0);
        CHECK_EQ(pts[0].code_id, -1);       /* before any line */
        CHECK_EQ(pts[0].rss, 1000000);
        CHECK_EQ(pts[0].uss, 1000000);
        CHECK_EQ(pts[1].rss, 1000000);      /* line 1 just opened: */
        CHECK_EQ(pts[1].code_id, -1);       /* nothing was open at its reading */
        CHECK_EQ(pts[2].rss, 1004096);
        CHECK_EQ(pts[2].code_id, 7);
        CHECK_EQ(pts[2].lineno, 1);
        CHECK_EQ(pts[3].rss, 1000000);
        CHECK_EQ(pts[3].lineno, 2);
        CHECK_EQ(pts[4].code_id, -1);       /* finish: the frame had returned */
        CHECK(series_ordered(pts, n));
    }
    free(pts);
    mp_tracer_free(t);

    /* Far more readings than points. */
    script_init(&s, &smp, saw(0, spike), 0, 0);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    run_series(t, &s, readings / 2, -1);
    fp_start = mp_footprint(t);
    run_series(t, &s, readings, spike);     /* restarted: the series goes on */
    fp_end = mp_footprint(t);
    CHECK_EQ(fp_end, fp_start);             /* the series allocates nothing as it grows */
    CHECK_EQ(s.quick_calls, readings / 2 + readings);
    pts = series_of(t, &n);
    CHECK(n <= MP_SERIES_MAX);
    CHECK(n >= MP_SERIES_MAX / 2);          /* halving keeps at least half */
    if (pts != NULL && n > 2) {
        CHECK(series_ordered(pts, n));
        CHECK_EQ(pts[0].rss, saw(0, spike));        /* the first reading */
        CHECK_EQ(pts[0].time_ns, 0);
        CHECK_EQ(pts[n - 1].rss, saw(readings - 1, spike));   /* the last */
        top = series_argmax(pts, n);
        CHECK_EQ(pts[top].rss, 900000000);          /* the spike survived */
        CHECK_EQ(pts[top].code_id, 4);
        CHECK_EQ(pts[top].lineno, (spike - 1) % 3 + 1);  /* the line it ended */
    }
    free(pts);
    mp_tracer_free(t);
}

/* Threads' series merge in time order, re-bounded; sequential tracers
 * (calls of one function) append; a tracer never started adopts them. */
static void test_series_merge(void)
{
    script sa, sb;
    mp_sampler ma, mb;
    mp_tracer *a = NULL, *b = NULL, *agg = NULL;
    mp_point *pts;
    size_t n, top, na;
    long k;

    script_init(&sa, &ma, 100000000, 0, 0);
    script_init(&sb, &mb, 200000000, 0, 0);
    CHECK_EQ(tracer_on(&ma, 0, &a), MP_OK);
    CHECK_EQ(tracer_on(&mb, 0, &b), MP_OK);
    CHECK_EQ(tracer_on(&ma, 0, &agg), MP_OK);
    if (a == NULL || b == NULL || agg == NULL)
        goto out;

    /* Interleaved, as two threads: small first. */
    CHECK_EQ(mp_start(a), MP_OK);
    mp_call(a, 1);
    CHECK_EQ(mp_start(b), MP_OK);
    mp_call(b, 2);
    for (k = 0; k < 10; k++) {
        set_rss(&sa, 100000000 + k);
        mp_line(a, 1);
        set_rss(&sb, 200000000 + k);
        mp_line(b, 1);
    }
    CHECK_EQ(mp_finish(a), MP_OK);
    CHECK_EQ(mp_finish(b), MP_OK);
    na = mp_series_count(a);
    CHECK_EQ(na, 12);
    CHECK_EQ(mp_series_count(b), 12);
    CHECK_EQ(mp_merge(a, b), MP_OK);
    pts = series_of(a, &n);
    CHECK_EQ(n, 24);
    if (pts != NULL) {
        CHECK(series_ordered(pts, n));
        CHECK_EQ(pts[0].rss, 100000000);    /* a started first */
        CHECK_EQ(pts[n - 1].code_id, 2);    /* b finished last */
    }
    free(pts);

    /* Both far beyond the bound: the merge is bounded, ordered, keeps
     * the spike (in b), the earliest and the latest reading. */
    mp_tracer_free(a);
    mp_tracer_free(b);
    a = b = NULL;
    CHECK_EQ(tracer_on(&ma, 0, &a), MP_OK);
    CHECK_EQ(tracer_on(&mb, 0, &b), MP_OK);
    if (a == NULL || b == NULL)
        goto out;
    set_rss(&sa, 100000000);
    set_rss(&sb, 200000000);
    CHECK_EQ(mp_start(a), MP_OK);
    CHECK_EQ(mp_start(b), MP_OK);
    mp_call(a, 1);
    mp_call(b, 2);
    for (k = 0; k < 20000; k++) {
        set_rss(&sa, 100000000 + (k % 77) * 4096);
        mp_line(a, (int32_t)(k % 2) + 1);
        set_rss(&sb, k == 12345 ? 999000000 : 200000000 + (k % 55) * 4096);
        mp_line(b, (int32_t)(k % 2) + 1);
    }
    set_rss(&sb, 200000001);
    CHECK_EQ(mp_finish(a), MP_OK);
    CHECK_EQ(mp_finish(b), MP_OK);
    CHECK_EQ(mp_merge(a, b), MP_OK);
    pts = series_of(a, &n);
    CHECK(n <= MP_SERIES_MAX && n >= MP_SERIES_MAX / 2);
    if (pts != NULL && n > 2) {
        CHECK(series_ordered(pts, n));
        CHECK_EQ(pts[0].rss, 100000000);
        CHECK_EQ(pts[0].time_ns, 0);
        CHECK_EQ(pts[n - 1].rss, 200000001);
        top = series_argmax(pts, n);
        CHECK_EQ(pts[top].rss, 999000000);
        CHECK_EQ(pts[top].code_id, 2);
    }
    free(pts);

    /* Aggregation: a tracer never started takes a's series, then b's
     * again later (b restarted: its readings all come after a's). */
    CHECK_EQ(mp_series_count(agg), 0);
    CHECK_EQ(mp_merge(agg, a), MP_OK);
    CHECK_EQ(mp_series_count(agg), mp_series_count(a));
    set_rss(&sb, 300000000);
    CHECK_EQ(mp_start(b), MP_OK);
    mp_call(b, 3);
    mp_line(b, 9);
    set_rss(&sb, 300004096);
    CHECK_EQ(mp_finish(b), MP_OK);
    CHECK_EQ(mp_merge(agg, b), MP_OK);
    pts = series_of(agg, &n);
    CHECK(n <= MP_SERIES_MAX);
    if (pts != NULL && n > 2) {
        CHECK(series_ordered(pts, n));
        CHECK_EQ(pts[0].rss, 100000000);
        CHECK_EQ(pts[n - 1].rss, 300004096);
        top = series_argmax(pts, n);
        CHECK_EQ(pts[top].rss, 999000000);
    }
    free(pts);
out:
    mp_tracer_free(a);
    mp_tracer_free(b);
    mp_tracer_free(agg);
}

#ifdef MP_TEST_LINUX
/* The /proc sampler's kinds against real memory: anonymous pages, a file
 * mapped and read, and shared memory (MAP_SHARED|MAP_ANONYMOUS is shmem). */
static void test_sampler_kinds_real(void)
{
    const size_t size = 16 * 1024 * 1024;
    mp_proc *p = NULL;
    mp_usage a, b;
    char path[] = "/tmp/mempulse-test-XXXXXX";
    volatile char *map;
    char *anon;
    size_t i;
    long sum = 0;
    int fd;

    CHECK_EQ(mp_proc_open("/proc/self", &p, NULL), MP_OK);
    if (p == NULL)
        return;
    blank(&a);
    CHECK_EQ(mp_proc_quick(p, &a), MP_OK);
    CHECK(a.anon > 0 && a.file > 0 && a.shmem >= 0);
    CHECK_EQ(a.anon + a.file + a.shmem, a.rss);

    anon = malloc(size);
    CHECK(anon != NULL);
    if (anon != NULL)
        memset(anon, 3, size);
    g_sink = anon;
    blank(&b);
    CHECK_EQ(mp_proc_quick(p, &b), MP_OK);
    CHECK(b.anon - a.anon >= (int64_t)size - 2 * MIB);
    CHECK(llabs(b.file - a.file) < 2 * MIB);
    CHECK(llabs(b.shmem - a.shmem) < 2 * MIB);
    free(anon);
    g_sink = NULL;

    fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0) {
        /* Written through write(2) so the pages are in the page cache, then
         * mapped and read: file-backed resident memory. */
        char chunk[65536];
        memset(chunk, 7, sizeof chunk);
        for (i = 0; i < size; i += sizeof chunk)
            CHECK_EQ(pwrite(fd, chunk, sizeof chunk, (off_t)i), (long)sizeof chunk);
        blank(&a);
        CHECK_EQ(mp_proc_quick(p, &a), MP_OK);
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        CHECK(map != MAP_FAILED);
        if (map != MAP_FAILED) {
            for (i = 0; i < size; i += 4096)
                sum += map[i];
            blank(&b);
            CHECK_EQ(mp_proc_quick(p, &b), MP_OK);
            CHECK(sum == 7 * (long)(size / 4096));
            CHECK(b.file - a.file >= (int64_t)size - 2 * MIB);
            CHECK(llabs(b.anon - a.anon) < 2 * MIB);
            CHECK(llabs(b.shmem - a.shmem) < 2 * MIB);
            (void)munmap((void *)map, size);
        }
    }
    if (fd >= 0) {
        (void)close(fd);
        (void)unlink(path);
    }

    blank(&a);
    CHECK_EQ(mp_proc_quick(p, &a), MP_OK);
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map != MAP_FAILED) {
        for (i = 0; i < size; i += 4096)
            map[i] = 1;
        blank(&b);
        CHECK_EQ(mp_proc_quick(p, &b), MP_OK);
        CHECK(b.shmem - a.shmem >= (int64_t)size - 2 * MIB);
        CHECK(llabs(b.anon - a.anon) < 2 * MIB);
        CHECK(llabs(b.file - a.file) < 2 * MIB);
        (void)munmap((void *)map, size);
    }
    mp_proc_close(p);
}
#endif

/* ------------------------------------------------------------------------ */
/* 3. Memory bounds                                                          */

/* mp_tracer_make, mp_begin and mp_result: the calls the Python layer makes
 * per block give what the one-value calls give. */
static int64_t head_at(const unsigned char *buf, int i)
{
    int64_t v;
    memcpy(&v, buf + i * sizeof v, sizeof v);
    return v;
}

/* mp_tracer_make on a fresh meter of smp (freed at the end of main), or NULL. */
static mp_tracer *made_on(const mp_sampler *smp)
{
    mp_meter *m = NULL;
    if (mp_meter_new(smp, &m) != MP_OK || m == NULL)
        return NULL;
    if (g_nmeters < 256)
        g_meters[g_nmeters++] = m;
    return mp_tracer_make(m, 0);
}

static void test_result_in_one_copy(void)
{
    script s;
    mp_sampler smp;
    mp_meter *m = NULL;
    mp_tracer *t;
    mp_record want[8];
    mp_point pts[MP_SERIES_MAX];
    unsigned char *raw, *buf;
    size_t size, nrec, npts, i;

    script_init(&s, &smp, 5000000, 1000000, 4096);
    CHECK_EQ(mp_meter_new(&smp, &m), MP_OK);
    if (m == NULL)
        return;
    if (g_nmeters < 256)
        g_meters[g_nmeters++] = m;
    CHECK(mp_tracer_make(NULL, 0) == NULL);
    CHECK(mp_tracer_make(m, -1) == NULL);
    t = mp_tracer_make(m, 0);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    /* mp_begin: started, bound, the root frame pushed. */
    CHECK_EQ(mp_begin(t, 3), MP_OK);
    CHECK_EQ(mp_begin(t, 3), MP_ESTATE);
    mp_bound_line(10);
    set_rss(&s, s.rss + 8192);
    mp_bound_line(11);
    mp_bound_call(4);
    mp_bound_line(40);
    set_rss(&s, s.rss + 4096);
    mp_bound_return();
    mp_bound_line(12);
    mp_bind(NULL);
    CHECK_EQ(mp_finish(t), MP_OK);
    nrec = mp_count(t);
    npts = mp_series_count(t);
    CHECK_EQ(nrec, 4);
    CHECK(npts >= 2);
    size = mp_result_size(t);
    CHECK_EQ(size, MP_RESULT_HEAD * 8 + nrec * sizeof(mp_record) + npts * sizeof(mp_point));
    /* Misaligned on purpose: the Python layer hands a byte buffer. */
    raw = malloc(size + 1);
    CHECK(raw != NULL);
    if (raw == NULL) {
        mp_tracer_free(t);
        return;
    }
    buf = raw + 1;
    CHECK_EQ(mp_result(t, buf, size - 1), 0);   /* too small: nothing */
    CHECK_EQ(mp_result(t, NULL, size), 0);
    CHECK_EQ(mp_result(t, buf, size), size);
    CHECK_EQ(head_at(buf, MP_RESULT_STATUS), mp_error(t));
    CHECK_EQ(head_at(buf, MP_RESULT_ERRNO), mp_error_errno(t));
    CHECK_EQ(head_at(buf, MP_RESULT_USS_AGE), mp_uss_age_ns(t));
    CHECK_EQ(head_at(buf, MP_RESULT_DROPPED), mp_dropped(t));
    CHECK_EQ(head_at(buf, MP_RESULT_RECORDS), nrec);
    CHECK_EQ(head_at(buf, MP_RESULT_POINTS), npts);
    CHECK_EQ(head_at(buf, MP_RESULT_PEAK_BEFORE), 5000000);  /* the mark at start */
    CHECK_EQ(head_at(buf, MP_RESULT_PEAK_PER_LINE), mp_peak_per_line(t));
    CHECK_EQ(head_at(buf, MP_RESULT_UNKNOWN), 1);   /* this sampler gives no kinds */
    CHECK_EQ(mp_records(t, want, 8), nrec);
    CHECK(memcmp(buf + MP_RESULT_HEAD * 8, want, nrec * sizeof(mp_record)) == 0);
    CHECK_EQ(mp_series(t, pts, MP_SERIES_MAX), npts);
    CHECK(memcmp(buf + MP_RESULT_HEAD * 8 + nrec * sizeof(mp_record), pts, npts * sizeof(mp_point)) == 0);
    for (i = 0; i < nrec; i++)
        CHECK(want[i].code_id == 3 || want[i].code_id == 4);
    for (i = 0; i < nrec; i++)
        CHECK(want[i].anon_increment == MP_NONE);
    CHECK_EQ(want[0].increment, 8192);   /* line 10 */
    CHECK_EQ(want[1].increment, 4096);   /* line 11: its callee's */
    free(raw);
    mp_tracer_free(t);

    /* Every field known (kinds from the first reading): the head says so. */
    script_init(&s, &smp, 5000000, 1000000, 0);
    s.kinds_from = 1;
    s.anon = 3000000;
    s.file = 2000000;
    t = made_on(&smp);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    CHECK_EQ(mp_begin(t, 0), MP_OK);
    mp_bound_line(1);
    set_rss(&s, s.rss + 4096);
    mp_bound_line(2);
    mp_bind(NULL);
    CHECK_EQ(mp_finish(t), MP_OK);
    size = mp_result_size(t);
    raw = malloc(size);
    CHECK(raw != NULL);
    if (raw != NULL) {
        CHECK_EQ(mp_result(t, raw, size), size);
        CHECK_EQ(head_at(raw, MP_RESULT_RECORDS), 2);
        CHECK_EQ(head_at(raw, MP_RESULT_UNKNOWN), 0);
        free(raw);
    }
    mp_tracer_free(t);

    /* A failed start binds nothing; code_id < 0 pushes no frame. */
    script_init(&s, &smp, 5000000, 1000000, 0);
    s.quick_fail_at = 1;
    s.quick_fail_rc = MP_ESAMPLER;
    t = made_on(&smp);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    CHECK(mp_begin(t, 1) != MP_OK);
    mp_bound_call(1);       /* nothing bound: ignored, not a dropped event of t */
    CHECK_EQ(mp_dropped(t), 0);
    mp_tracer_free(t);

    script_init(&s, &smp, 5000000, 1000000, 0);
    t = made_on(&smp);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    CHECK_EQ(mp_begin(t, -1), MP_OK);
    mp_bound_line(5);       /* no frame: dropped */
    CHECK_EQ(mp_dropped(t), 1);
    mp_bind(NULL);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_count(t), 0);
    mp_tracer_free(t);
}

static void test_footprint(void)
{
    script s;
    mp_sampler smp;
    mp_tracer *t = NULL;
    size_t fp0, fp10, fp1m, fp_more, fp_big;
    long i;
    mp_record r[4];
    mp_record *all;

    script_init(&s, &smp, 1000000, 0, 0);
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    fp0 = mp_footprint(t);
    CHECK(fp0 > 0);
    CHECK_EQ(mp_start(t), MP_OK);
    mp_call(t, 1);
    for (i = 0; i < 10; i++) {
        mp_line(t, 1);
        mp_line(t, 2);
        mp_line(t, 3);
    }
    fp10 = mp_footprint(t);
    CHECK(fp10 > fp0);
    for (; i < 1000000; i++) {
        mp_line(t, 1);
        mp_line(t, 2);
        mp_line(t, 3);
    }
    fp1m = mp_footprint(t);
    CHECK_EQ(fp1m, fp10);
    CHECK_EQ(mp_count(t), 3);
    mp_line(t, 4);
    fp_more = mp_footprint(t);
    CHECK(fp_more > fp1m);
    CHECK_EQ(mp_error(t), MP_OK);
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_records(t, r, 4), 4);
    CHECK_EQ(r[0].hits, 1000000);
    CHECK_EQ(r[1].hits, 1000000);
    CHECK_EQ(r[2].hits, 1000000);
    CHECK_EQ(r[3].hits, 1);
    mp_tracer_free(t);

    /* 100,000 distinct callsites: 1,000 code objects x 100 lines. */
    t = NULL;
    CHECK_EQ(tracer_on(&smp, 0, &t), MP_OK);
    if (t == NULL)
        return;
    CHECK_EQ(mp_start(t), MP_OK);
    for (i = 0; i < 100000; i++) {
        if (i % 100 == 0)
            mp_call(t, (int32_t)(i / 100));
        mp_line(t, (int32_t)(i % 100) + 1);
        if (i % 100 == 99)
            mp_return(t);
    }
    CHECK_EQ(mp_finish(t), MP_OK);
    CHECK_EQ(mp_count(t), 100000);
    fp_big = mp_footprint(t);
    CHECK(fp_big > fp_more);
    CHECK(fp_big < (size_t)100000 * 256); /* bounded per callsite */
    all = malloc(100000 * sizeof *all);
    CHECK(all != NULL);
    if (all != NULL) {
        int ok = 1;
        CHECK_EQ(mp_records(t, all, 100000), 100000);
        for (i = 0; i < 100000; i++)
            if (all[i].code_id != i / 100 || all[i].lineno != i % 100 + 1 ||
                all[i].hits != 1)
                ok = 0;
        CHECK(ok); /* in order of first execution */
        free(all);
    }
    mp_tracer_free(t);
}

/* ------------------------------------------------------------------------ */
/* 4. Report                                                                 */

/* Characters (UTF-8 code points) in s[0..n). */
static size_t u8len(const char *s, size_t n)
{
    size_t i, w = 0;
    for (i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            w++;
    return w;
}

/* Is s well-formed UTF-8 (no check for overlongs)? */
static int u8valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0)
            return 0;
        p++;
        while (k-- > 0) {
            if ((*p & 0xC0) != 0x80)
                return 0;
            p++;
        }
    }
    return 1;
}

/* Format rows into a fresh buffer (caller frees); NULL on failure. */
static char *format(const mp_row *rows, size_t n)
{
    size_t needed = 0;
    char *buf;
    if (mp_format(rows, n, NULL, 0, &needed) != MP_ERANGE || needed == 0)
        return NULL;
    buf = malloc(needed);
    if (buf == NULL)
        return NULL;
    if (mp_format(rows, n, buf, needed, &needed) != MP_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Line `idx` (0-based) of text, into dst; its length in characters, or -1. */
static long get_line(const char *text, int idx, char *dst, size_t cap)
{
    const char *p = text, *nl;
    size_t len;
    while (idx-- > 0) {
        p = strchr(p, '\n');
        if (p == NULL)
            return -1;
        p++;
    }
    nl = strchr(p, '\n');
    if (nl == NULL)
        return -1;
    len = (size_t)(nl - p);
    if (len >= cap)
        return -1;
    memcpy(dst, p, len);
    dst[len] = '\0';
    return (long)u8len(p, len);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        if (*text == '\n')
            n++;
    return n;
}

/* Every line has the same width in characters and ends with '\n'. */
static int aligned(const char *text)
{
    char line[1024];
    int i, n = count_lines(text);
    long w0 = get_line(text, 0, line, sizeof line);
    if (w0 <= 0 || n < 2 || text[strlen(text) - 1] != '\n')
        return 0;
    for (i = 1; i < n; i++)
        if (get_line(text, i, line, sizeof line) != w0)
            return 0;
    return 1;
}

/* Split a row line into its whitespace-separated fields. */
static int fields(char *line, char **f, int max)
{
    int n = 0;
    char *tok = strtok(line, " ");
    while (tok != NULL && n < max) {
        f[n++] = tok;
        tok = strtok(NULL, " ");
    }
    return n;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_report(void)
{
    char longpath[256], cyrpath[512];
    char line[1024];
    char *f[16];
    char *text;
    size_t needed, i;
    int k;
    mp_row rows[6];

    /* 200 characters: "/srv/" + "dir-NNNN/" x 20 + padding + "/file.py" */
    strcpy(longpath, "/srv");
    for (k = 0; strlen(longpath) < 200 - 9; k++)
        sprintf(longpath + strlen(longpath), "/dir-%04d", k);
    longpath[200 - 8] = '\0';
    strcat(longpath, "/file.py");
    CHECK_EQ(strlen(longpath), 200);
    /* 120 two-byte characters and no '/' near the end: cut mid-name. */
    strcpy(cyrpath, "/");
    for (k = 0; k < 120; k++)
        strcat(cyrpath, "ж");
    strcat(cyrpath, ".py");

    memset(rows, 0, sizeof rows);
    /* No kinds known: their columns are hidden (MP_KINDS_AUTO). */
    rows[0] = (mp_row){"demo.py", 12, "work", 26525696, 0, 28057600, 1, 1048576, 1048576, MP_NONE, MP_NONE, MP_NONE};
    rows[1] = (mp_row){"demo.py", 13, "work", 1234567, MP_NONE, MP_NONE, 1234567, -1048576,
                       -1, MP_NONE, MP_NONE, MP_NONE};
    rows[2] = (mp_row){"/tmp/ünïcode/файл.py", 7,
                       "функ", INT64_MAX, INT64_MIN + 1, 0, 0, 0, 0, MP_NONE, MP_NONE, MP_NONE};
    rows[3] = (mp_row){longpath, 123, "f", 1, 2, 3, 4, 5, 5, MP_NONE, MP_NONE, MP_NONE};
    rows[4] = (mp_row){cyrpath, 9, "g", 1, 2, 3, 4, -5, -5, MP_NONE, MP_NONE, MP_NONE};
    rows[5] = (mp_row){NULL, 1, NULL, MP_NONE, MP_NONE, MP_NONE, MP_NONE, MP_NONE, MP_NONE, MP_NONE, MP_NONE, MP_NONE};

    text = format(rows, 6);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    CHECK_EQ(count_lines(text), 2 + 6);
    CHECK(aligned(text));
    CHECK(u8valid(text));

    /* header */
    CHECK(get_line(text, 0, line, sizeof line) > 0);
    CHECK(strstr(line, "Callsite") == line);
    CHECK(strstr(line, "Method Name") != NULL);
    CHECK(strstr(line, "USS") != NULL);
    CHECK(strstr(line, "Swap") != NULL);
    CHECK(strstr(line, "Peak RSS") != NULL);
    CHECK(strstr(line, "Hits") != NULL);
    CHECK(strstr(line, "Increment (net)") != NULL);
    CHECK(strstr(line, "Max/exec") != NULL);
    CHECK(strstr(line, "Anon") == NULL);    /* no kinds known: hidden */
    CHECK(strstr(line, "USS") < strstr(line, "Swap"));
    CHECK(strstr(line, "Hits") < strstr(line, "Increment"));
    CHECK(strstr(line, "Increment") < strstr(line, "Max/exec"));
    CHECK(ends_with(line, "Max/exec"));
    CHECK(get_line(text, 1, line, sizeof line) > 0);
    CHECK(strspn(line, "-") == strlen(line));

    /* row 0: demo.py:12 work 26,525,696 0 28,057,600 1 +1,048,576 */
    CHECK(get_line(text, 2, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 8);
    CHECK(strcmp(f[0], "demo.py:12") == 0);
    CHECK(strcmp(f[1], "work") == 0);
    CHECK(strcmp(f[2], "26,525,696") == 0);
    CHECK(strcmp(f[3], "0") == 0);
    CHECK(strcmp(f[4], "28,057,600") == 0);
    CHECK(strcmp(f[5], "1") == 0);
    CHECK(strcmp(f[6], "+1,048,576") == 0);
    CHECK(strcmp(f[7], "+1,048,576") == 0);

    /* row 1: thousands separators, MP_NONE as "-", negative increment */
    CHECK(get_line(text, 3, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 8);
    CHECK(strcmp(f[2], "1,234,567") == 0);
    CHECK(strcmp(f[3], "-") == 0);
    CHECK(strcmp(f[4], "-") == 0);
    CHECK(strcmp(f[5], "1,234,567") == 0);
    CHECK(strcmp(f[6], "-1,048,576") == 0);
    CHECK(strcmp(f[7], "-1") == 0);

    /* row 2: UTF-8 names, extreme values, zero increment without sign */
    CHECK(get_line(text, 4, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 8);
    CHECK(strcmp(f[0], "/tmp/ünïcode/файл.py:7") == 0);
    CHECK(strcmp(f[1], "функ") == 0);
    CHECK(strcmp(f[2], "9,223,372,036,854,775,807") == 0);
    CHECK(strcmp(f[3], "-9,223,372,036,854,775,807") == 0);
    CHECK(strcmp(f[4], "0") == 0);
    CHECK(strcmp(f[5], "0") == 0);
    CHECK(strcmp(f[6], "0") == 0);
    CHECK(strcmp(f[7], "0") == 0);

    /* row 3: long path shortened from the left, file and line kept */
    CHECK(get_line(text, 5, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 8);
    CHECK(strncmp(f[0], "...", 3) == 0);
    CHECK(ends_with(f[0], "/file.py:123"));
    CHECK(strlen(f[0]) <= 40);
    CHECK(strlen(f[0]) > 3 + strlen("/file.py:123") - 1);
    CHECK(strcmp(f[6], "+5") == 0);

    /* row 4: shortened inside multi-byte characters: still valid UTF-8 */
    CHECK(get_line(text, 6, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 8);
    CHECK(strncmp(f[0], "...", 3) == 0);
    CHECK(ends_with(f[0], "ж.py:9"));
    CHECK_EQ(u8len(f[0], strlen(f[0])), 40);
    CHECK(u8valid(f[0]));
    CHECK(strcmp(f[6], "-5") == 0);

    /* row 5: NULL filename and function; all numbers unknown */
    CHECK(get_line(text, 7, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 7); /* the empty function leaves no field */
    CHECK(strcmp(f[0], "?:1") == 0);
    for (k = 1; k < 7; k++)
        CHECK(strcmp(f[k], "-") == 0);
    free(text);

    /* Each row alone is aligned too, UTF-8 row included. */
    for (i = 0; i < 6; i++) {
        text = format(&rows[i], 1);
        CHECK(text != NULL && aligned(text));
        free(text);
    }

    /* Buffer sizes: too small -> MP_ERANGE and the exact size needed. */
    {
        size_t full_size = 0, again = 0;
        char *buf;
        CHECK_EQ(mp_format(rows, 3, NULL, 0, &full_size), MP_ERANGE);
        CHECK(full_size > 1);
        buf = malloc(full_size - 1); /* exact-size heap block: ASan sees overruns */
        if (buf != NULL) {
            CHECK_EQ(mp_format(rows, 3, buf, full_size - 1, &again), MP_ERANGE);
            CHECK_EQ(again, full_size);
            free(buf);
        }
        buf = malloc(full_size);
        if (buf != NULL) {
            again = 0;
            CHECK_EQ(mp_format(rows, 3, buf, full_size, &again), MP_OK);
            CHECK_EQ(again, full_size);
            CHECK_EQ(strlen(buf) + 1, full_size);
            free(buf);
        }
        buf = malloc(1);
        if (buf != NULL) {
            CHECK_EQ(mp_format(rows, 3, buf, 1, &again), MP_ERANGE);
            CHECK_EQ(again, full_size);
            free(buf);
        }
    }

    /* n = 0: just the header (column names and the rule). */
    text = format(NULL, 0);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK_EQ(count_lines(text), 2);
        CHECK(aligned(text));
        CHECK(strstr(text, "Callsite") == text);
        CHECK(strstr(text, "Increment") != NULL);
        free(text);
    }

    /* Invalid arguments. */
    {
        char small[8];
        CHECK_EQ(mp_format(NULL, 1, small, sizeof small, &needed), MP_EINVAL);
        CHECK_EQ(mp_format(rows, 1, NULL, 10, &needed), MP_EINVAL);
        CHECK_EQ(mp_format(rows, 1, small, sizeof small, NULL), MP_EINVAL);
    }
}

/* The kinds' columns: shown when some row knows one (or asked), hidden
 * when asked; the other columns do not move. */
static void test_report_kinds(void)
{
    char line[1024];
    char *f[16];
    char *text;
    size_t needed = 0;
    mp_row rows[2];

    memset(rows, 0, sizeof rows);
    rows[0] = (mp_row){"k.py", 1, "f", 100, 0, 200, 1, 52428800, 52428800,
                       52428800, 0, MP_NONE};
    rows[1] = (mp_row){"k.py", 2, "f", 100, 0, 200, 3, -4096, 4096,
                       MP_NONE, 67108864, -8192};
    text = format(rows, 2);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    CHECK(aligned(text));
    CHECK(get_line(text, 0, line, sizeof line) > 0);
    CHECK(strstr(line, "Max/exec") < strstr(line, "Anon (net)"));
    CHECK(strstr(line, "Anon (net)") < strstr(line, "File (net)"));
    CHECK(ends_with(line, "Shmem (net)"));
    CHECK(get_line(text, 2, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 11);
    CHECK(strcmp(f[6], "+52,428,800") == 0);
    CHECK(strcmp(f[7], "+52,428,800") == 0);
    CHECK(strcmp(f[8], "+52,428,800") == 0);
    CHECK(strcmp(f[9], "0") == 0);
    CHECK(strcmp(f[10], "-") == 0);
    CHECK(get_line(text, 3, line, sizeof line) > 0);
    CHECK_EQ(fields(line, f, 16), 11);
    CHECK(strcmp(f[6], "-4,096") == 0);
    CHECK(strcmp(f[7], "+4,096") == 0);
    CHECK(strcmp(f[8], "-") == 0);
    CHECK(strcmp(f[9], "+67,108,864") == 0);
    CHECK(strcmp(f[10], "-8,192") == 0);
    free(text);

    /* Hidden on request: the same first eight columns. */
    CHECK_EQ(mp_format_table(rows, 2, 0, NULL, 0, &needed), MP_ERANGE);
    text = malloc(needed);
    if (text != NULL) {
        CHECK_EQ(mp_format_table(rows, 2, 0, text, needed, &needed), MP_OK);
        CHECK(aligned(text));
        CHECK(strstr(text, "Anon") == NULL);
        CHECK(get_line(text, 3, line, sizeof line) > 0);
        CHECK_EQ(fields(line, f, 16), 8);
        CHECK(strcmp(f[7], "+4,096") == 0);
        free(text);
    }
    /* Shown on request though unknown: dashes. */
    rows[0].anon_increment = rows[0].file_increment = MP_NONE;
    rows[1].file_increment = rows[1].shmem_increment = MP_NONE;
    CHECK_EQ(mp_format_table(rows, 2, 1, NULL, 0, &needed), MP_ERANGE);
    text = malloc(needed);
    if (text != NULL) {
        CHECK_EQ(mp_format_table(rows, 2, 1, text, needed, &needed), MP_OK);
        CHECK(strstr(text, "Shmem (net)") != NULL);
        CHECK(get_line(text, 2, line, sizeof line) > 0);
        CHECK_EQ(fields(line, f, 16), 11);
        CHECK(strcmp(f[8], "-") == 0);
        free(text);
    }
    CHECK_EQ(mp_format(rows, 2, NULL, 0, &needed), MP_ERANGE);   /* auto: hidden */
    text = format(rows, 2);
    CHECK(text != NULL && strstr(text, "Anon") == NULL);
    free(text);
    CHECK_EQ(mp_format_table(rows, 2, 2, NULL, 0, &needed), MP_EINVAL);
    CHECK_EQ(mp_format_table(rows, 2, -2, NULL, 0, &needed), MP_EINVAL);
}

static void test_strerror(void)
{
    static const int all[] = {MP_OK, MP_ENOMEM, MP_ESTATM, MP_EROLLUP, MP_EPARSE,
                              MP_ESAMPLER, MP_ESTATE, MP_ERANGE, MP_EINVAL};
    const char *unknown = mp_strerror(12345);
    size_t i, j;
    CHECK(unknown != NULL && unknown[0] != '\0');
    CHECK(mp_strerror(-99) != NULL && mp_strerror(-99)[0] != '\0');
    for (i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *m = mp_strerror(all[i]);
        CHECK(m != NULL && m[0] != '\0');
        CHECK(m != NULL && strcmp(m, unknown) != 0);
        for (j = 0; j < i; j++)
            CHECK(strcmp(m, mp_strerror(all[j])) != 0);
    }
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    int fds = count_fds();

#ifdef MP_TEST_LINUX
    test_sampler_real();
    test_sampler_errors();
    test_sampler_no_fd_leak();
#endif
    test_tracer_arithmetic();
    test_tracer_return_and_recursion();
    test_tracer_merge();
    test_tracer_estimate();
    test_meter_shared();
    test_tracer_time_gate();
    test_tracer_errors();
    test_tracer_binding();
#ifdef MP_TEST_LINUX
    test_tracer_real();
    test_fork();
    test_meter_threads();
#endif
    test_tracer_movement_gate();
    test_tracer_peak_residue_is_no_movement();
    test_meter_not_serial();
    test_tracer_max_increment();
    test_tracer_kinds();
    test_series_bounded();
    test_series_merge();
#ifdef MP_TEST_LINUX
    test_sampler_kinds_real();
#endif
    test_footprint();
    test_result_in_one_copy();
    test_report();
    test_report_kinds();
    test_strerror();
    free_meters();

    CHECK_EQ(count_fds(), fds); /* nothing in the core left a file open */

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed != 0;
}
