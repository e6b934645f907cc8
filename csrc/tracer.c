/*
 * tracer.c - turn Python line events into per-callsite memory aggregates.
 *
 * Each traced frame has at most one open line.  A line closes when the next
 * line of the same frame starts or the frame returns; what memory did while
 * it was open (callees included) is charged to it.
 *
 * Sampling is gated by time, because memory can only change as fast as the
 * kernel maps or unmaps pages: on the target machines touching 1 MiB of new
 * 4 KiB pages takes ~500 us and unmapping it ~65 us.  So a line event reads
 * /proc only when at least period_ns passed since the last reading.  The
 * check is one rdtsc (~12 ns here; clock_gettime costs ~30) against a tick
 * count calibrated once per process, or clock_gettime where there is no
 * TSC.  Consequences, which the README states as the accuracy bound:
 *   - a line that runs for period_ns or longer is always measured at its end;
 *   - a change made by lines shorter than that is seen by the next reading
 *     and charged to the line that ends there, at most period_ns later.
 *
 * USS comes from smaps_rollup, whose cost grows with resident memory, so the
 * full reading is taken at start, at finish, and otherwise only when the
 * time since the last one is FULL_BUDGET times what that one cost (keeping
 * it under ~2% of run time).  Between full readings USS moves with the
 * resident size from the quick reading: pages the process gains or loses
 * are its own almost always (what it shares with other processes, such as
 * libc's code, rarely changes), and the next full reading corrects the
 * rest.
 *
 * Peaks: every reading gives the highest rss since the previous one (the
 * sampler resets the kernel's high-water mark after it), which is charged
 * to every line open at that moment, in this frame and the ones below it:
 * they were all running.  A line's peak_rss is the highest over its
 * executions.  A sampler that cannot reset gives lifetime peaks instead.
 */
#include "mempulse.h"
#include "table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#define FULL_BUDGET 50
#define MIN_STACK 16

typedef struct mp_frame {
    mp_site *open;      /* the line running in this frame, or NULL */
    int64_t before;     /* USS estimate when it started */
    int64_t peak;       /* highest rss seen while it ran */
    int32_t code_id;
} mp_frame;

struct mp_tracer {
    mp_sampler sampler;
    int64_t period_ns;
    mp_table table;

    mp_frame *stack;
    size_t depth;
    size_t cap;

    int64_t uss;        /* current USS estimate */
    int64_t swap;       /* from the last full reading */
    int64_t open_peak;  /* peak of a line starting now: rss at the last
                           reading, or the lifetime peak without resets */
    int64_t uss_base;   /* USS at the last full reading ... */
    int64_t rss_base;   /* ... and the resident size then */
    int64_t last_ns;    /* time of the last quick reading */
    uint64_t last_tsc;  /* ... in TSC ticks */
    uint64_t period_ticks; /* period_ns in TSC ticks; 0: use the clock */
    int64_t next_full_ns;
    int peak_resets;    /* the sampler resets the peak mark */

    int started;
    int err;
    int err_errno;

    int binds;          /* threads that have it bound (0 or 1) */
    int freed;          /* mp_tracer_free was called; free on the last unbind */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t ticks(void)
{
#ifdef HAVE_TSC
    return __rdtsc();
#else
    return 0;
#endif
}

/*
 * TSC ticks per ns, measured once per process over ~200 us, or 0 when
 * there is no usable TSC.  Threads racing here compute the same value.
 */
static double tsc_per_ns(void)
{
    static volatile double rate = -1;
#ifdef HAVE_TSC
    if (rate < 0) {
        int64_t t0 = now_ns(), t1;
        uint64_t c0 = ticks(), c1;
        do {
            t1 = now_ns();
        } while (t1 - t0 < 200000);
        c1 = ticks();
        /* A TSC that went backwards or stood still is not a clock. */
        rate = c1 > c0 ? (double)(c1 - c0) / (double)(t1 - t0) : 0;
    }
#else
    rate = 0;
#endif
    return rate;
}

/* Has period_ns passed since the last reading? */
static int gate_open(const mp_tracer *t)
{
    if (t->period_ticks != 0)
        return ticks() - t->last_tsc >= t->period_ticks;
    return now_ns() - t->last_ns >= t->period_ns;
}

static void fail(mp_tracer *t, int status)
{
    if (t->err == MP_OK) {
        t->err = status;
        t->err_errno = errno;
    }
}

/* Sampler callbacks may return any nonzero value; keep ours, map the rest. */
static int sampler_status(int rc)
{
    if (rc < 0 && rc >= MP_EINVAL)
        return rc;
    return MP_ESAMPLER;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Charge the peak of the window that just ended to every open line. */
static void note_peak(mp_tracer *t, int64_t peak)
{
    size_t i;
    for (i = 0; i < t->depth; i++)
        t->stack[i].peak = max64(t->stack[i].peak, peak);
}

/* Bring the estimate up to date if the gate allows (or force is set). */
static void refresh(mp_tracer *t, int force)
{
    mp_usage u;
    int64_t now, window;
    int rc;

    if (!force && !gate_open(t))
        return;
    now = now_ns();
    u.rss = u.uss = u.swap = u.peak_rss = MP_NONE;
    errno = 0;
    rc = t->sampler.quick(t->sampler.ctx, &u);
    if (rc != 0) {
        fail(t, sampler_status(rc));
        return;
    }
    t->last_ns = now;
    t->last_tsc = ticks();
    window = max64(u.rss, u.peak_rss);  /* MP_NONE is the least */
    note_peak(t, window);
    t->open_peak = max64(t->open_peak, window);
    if (t->peak_resets && u.rss != MP_NONE) {
        t->open_peak = u.rss;
        /* The lines after this reading must not inherit this peak. */
        errno = 0;
        if (u.peak_rss > u.rss && t->sampler.reset_peak(t->sampler.ctx) != 0) {
            t->peak_resets = 0;   /* refused from now on: lifetime peaks */
            t->open_peak = window;
        }
    }

    if (force || now >= t->next_full_ns) {
        int64_t done;
        errno = 0;
        rc = t->sampler.full(t->sampler.ctx, &u);
        if (rc != 0) {
            fail(t, sampler_status(rc));
            return;
        }
        done = now_ns();
        t->next_full_ns = done + (done - now) * FULL_BUDGET;
        t->uss_base = u.uss;
        t->rss_base = u.rss;
        t->swap = u.swap;
        t->uss = u.uss;
    } else if (t->uss_base != MP_NONE && u.rss != MP_NONE && t->rss_base != MP_NONE) {
        t->uss = t->uss_base + (u.rss - t->rss_base);
    }
}

static void close_line(mp_tracer *t, mp_frame *f)
{
    mp_site *s = f->open;
    if (s == NULL)
        return;
    s->hits++;
    if (t->uss != MP_NONE && f->before != MP_NONE)
        s->increment += t->uss - f->before;
    s->uss = t->uss;
    s->swap = t->swap;
    s->seen_ns = t->last_ns;
    s->peak_rss = max64(s->peak_rss, f->peak);
    f->open = NULL;
}

int mp_tracer_new(const mp_sampler *sampler, int64_t period_ns, mp_tracer **out)
{
    mp_tracer *t;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (sampler == NULL || sampler->quick == NULL || sampler->full == NULL || period_ns < 0)
        return MP_EINVAL;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return MP_ENOMEM;
    t->stack = malloc(MIN_STACK * sizeof *t->stack);
    if (t->stack == NULL) {
        free(t);
        return MP_ENOMEM;
    }
    t->cap = MIN_STACK;
    t->sampler = *sampler;
    t->period_ns = period_ns;
    t->peak_resets = sampler->reset_peak != NULL;
    if (period_ns > 0) {
        double rate = tsc_per_ns();
        if (rate > 0)
            t->period_ticks = (uint64_t)((double)period_ns * rate);
    }
    t->uss = t->swap = t->open_peak = MP_NONE;
    t->uss_base = t->rss_base = MP_NONE;
    *out = t;
    return MP_OK;
}

static void destroy(mp_tracer *t)
{
    mp_table_clear(&t->table);
    free(t->stack);
    free(t);
}

/*
 * Binding.  A thread's events go to the tracer it bound last.  Another
 * thread (the one that ends the trace) frees it, possibly while the bound
 * thread is about to send one more event, so a tracer still bound somewhere
 * outlives mp_tracer_free until that thread binds another tracer, unbinds,
 * or exits (a pthread key destructor).  Events sent to a finished tracer
 * only set its sticky error.
 */
static __thread mp_tracer *bound;
static pthread_mutex_t bind_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;
static pthread_key_t bind_key;
static int have_bind_key;

static void release(mp_tracer *t)   /* bind_lock held */
{
    if (t != NULL && t->freed && t->binds == 0)
        destroy(t);
}

static void unbind_at_exit(void *value)
{
    mp_tracer *t = value;
    pthread_mutex_lock(&bind_lock);
    t->binds--;
    release(t);
    pthread_mutex_unlock(&bind_lock);
}

static void make_bind_key(void)
{
    have_bind_key = pthread_key_create(&bind_key, unbind_at_exit) == 0;
}

void mp_bind(mp_tracer *t)
{
    pthread_once(&bind_once, make_bind_key);
    pthread_mutex_lock(&bind_lock);
    if (bound != NULL) {
        bound->binds--;
        release(bound);
    }
    bound = t;
    if (t != NULL)
        t->binds++;
    pthread_mutex_unlock(&bind_lock);
    /* Without the key a tracer bound by a thread that exits is never freed:
     * a leak, not a crash. */
    if (have_bind_key)
        pthread_setspecific(bind_key, t);
}

void mp_tracer_free(mp_tracer *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&bind_lock);
    t->freed = 1;
    release(t);
    pthread_mutex_unlock(&bind_lock);
}

int mp_start(mp_tracer *t)
{
    if (t->started)
        return MP_ESTATE;
    refresh(t, 1);
    if (t->err != MP_OK)
        return t->err;
    t->started = 1;
    return MP_OK;
}

void mp_call(mp_tracer *t, int32_t code_id)
{
    mp_frame *f;

    if (t->err != MP_OK)
        return;
    if (!t->started) {
        fail(t, MP_ESTATE);
        return;
    }
    if (t->depth == t->cap) {
        size_t cap = t->cap * 2;
        mp_frame *grown = realloc(t->stack, cap * sizeof *grown);
        if (grown == NULL) {
            fail(t, MP_ENOMEM);
            return;
        }
        t->stack = grown;
        t->cap = cap;
    }
    f = &t->stack[t->depth++];
    f->open = NULL;
    f->before = MP_NONE;
    f->peak = MP_NONE;
    f->code_id = code_id;
}

void mp_line(mp_tracer *t, int32_t lineno)
{
    mp_frame *f;
    mp_site *s;

    if (t->err != MP_OK)
        return;
    if (t->depth == 0) {
        fail(t, MP_ESTATE);
        return;
    }
    f = &t->stack[t->depth - 1];
    if (f->code_id < 0)
        return;   /* a muted frame: its lines are not recorded */
    refresh(t, 0);
    close_line(t, f);
    s = mp_table_get(&t->table, f->code_id, lineno);
    if (s == NULL) {
        fail(t, MP_ENOMEM);
        return;
    }
    f->open = s;
    f->before = t->uss;
    f->peak = t->open_peak;
}

void mp_return(mp_tracer *t)
{
    if (t->err != MP_OK)
        return;
    if (t->depth == 0) {
        fail(t, MP_ESTATE);
        return;
    }
    refresh(t, 0);
    close_line(t, &t->stack[t->depth - 1]);
    t->depth--;
}

int mp_finish(mp_tracer *t)
{
    if (t->err != MP_OK)
        return t->err;
    if (!t->started)
        return MP_ESTATE;
    refresh(t, 1);
    while (t->err == MP_OK && t->depth > 0) {
        close_line(t, &t->stack[t->depth - 1]);
        t->depth--;
    }
    t->started = 0;
    return t->err;
}

int mp_merge(mp_tracer *dst, const mp_tracer *src)
{
    const mp_site *s;

    if (dst == src)
        return MP_EINVAL;
    for (s = src->table.head; s != NULL; s = s->hh.next) {
        mp_site *d = mp_table_get(&dst->table, s->key.code_id, s->key.lineno);
        if (d == NULL)
            return MP_ENOMEM;
        d->hits += s->hits;
        d->increment += s->increment;
        d->peak_rss = max64(d->peak_rss, s->peak_rss);  /* MP_NONE is the least */
        /* "After the last execution": the later reading wins. */
        if (s->hits > 0 && (d->uss == MP_NONE || s->seen_ns >= d->seen_ns)) {
            d->uss = s->uss;
            d->swap = s->swap;
            d->seen_ns = s->seen_ns;
        }
    }
    return MP_OK;
}

int mp_peak_per_line(const mp_tracer *t)
{
    return t->peak_resets;
}

void mp_bound_call(int32_t code_id)
{
    if (bound != NULL)
        mp_call(bound, code_id);
}

void mp_bound_line(int32_t lineno)
{
    if (bound != NULL)
        mp_line(bound, lineno);
}

void mp_bound_return(void)
{
    if (bound != NULL)
        mp_return(bound);
}

int mp_error(const mp_tracer *t)
{
    return t->err;
}

int mp_error_errno(const mp_tracer *t)
{
    return t->err_errno;
}

size_t mp_count(const mp_tracer *t)
{
    return mp_table_count(&t->table);
}

size_t mp_records(const mp_tracer *t, mp_record *out, size_t n)
{
    const mp_site *s;
    size_t i = 0;

    for (s = t->table.head; s != NULL && i < n; s = s->hh.next, i++) {
        out[i].code_id = s->key.code_id;
        out[i].lineno = s->key.lineno;
        out[i].uss = s->uss;
        out[i].swap = s->swap;
        out[i].peak_rss = s->peak_rss;
        out[i].hits = s->hits;
        out[i].increment = s->increment;
    }
    return i;
}

size_t mp_footprint(const mp_tracer *t)
{
    return sizeof *t + t->cap * sizeof *t->stack + mp_table_footprint(&t->table);
}

const char *mp_strerror(int status)
{
    switch (status) {
    case MP_OK: return "no error";
    case MP_ENOMEM: return "out of memory";
    case MP_ESTATM: return "cannot read /proc/self/statm";
    case MP_EROLLUP: return "cannot read /proc/self/smaps_rollup";
    case MP_EPARSE: return "unexpected format in a /proc memory file";
    case MP_ESAMPLER: return "the memory sampler failed";
    case MP_ESTATE: return "tracer events out of order";
    case MP_ERANGE: return "output buffer too small";
    case MP_EINVAL: return "invalid argument";
    default: return "unknown error";
    }
}
