/*
 * tracer.c - turn Python line events into per-callsite memory aggregates.
 *
 * Each traced frame has at most one open line.  A line closes when the next
 * line of the same frame starts or the frame returns; what memory did while
 * it was open (callees included) is charged to it.
 *
 * Sampling is gated, because a reading (~4 us: statm + getrusage) costs a
 * hundred times a simple Python line.  Two gates, one open is enough:
 *   - time: at least period_ns since this tracer's last reading.  The check
 *     is one rdtsc (~12 ns here; clock_gettime costs ~30) against a tick
 *     count calibrated once per process, or the clock where there is no
 *     TSC.  Memory cannot move much in that time: touching 1 MiB of new
 *     4 KiB pages takes ~500 us here.
 *   - movement: after a reading saw rss move (or a transient peak), every
 *     following event reads, until HOT_READINGS readings in a row saw
 *     nothing move.  A loop that allocates small blocks keeps it open, so
 *     each line is measured at its own end; a fresh page costs about as
 *     much to fault as one reading, so the price follows what the program
 *     spends faulting.  A loop that moves no memory pays the time gate only,
 *     and so does a line that follows itself (a one-line loop or
 *     comprehension): a reading between two of its executions would move
 *     nothing from one line to another.
 * Consequences, which the README states as the accuracy bound:
 *   - a line that runs for period_ns or longer is always measured at its end;
 *   - while memory moves at least once every HOT_READINGS events, every line
 *     is measured at its end;
 *   - otherwise the first change after a quiet stretch is seen by the next
 *     reading, at most period_ns later, and charged to the line ending there.
 *
 * USS, the anchor and the budget for full readings live in the process-wide
 * meter (meter.c): a block too short for a fresh full reading still gets
 * exact increments from the quick readings.
 *
 * Peaks: every reading gives the highest rss since this tracer's previous
 * reading (the meter resets the kernel's mark and collects the windows of
 * every thread's readings), which is charged to every line open at that
 * moment, in this frame and the ones below it: they were all running.  A
 * line's peak_rss is the highest over its executions.  A sampler that
 * cannot reset gives lifetime peaks instead.
 *
 * Per line, besides the sum of its increments (net): the largest increment
 * of one execution, and the sums of the changes in resident anonymous,
 * file-backed and shared memory where the sampler tells them (quick
 * readings do: statm on Linux).  Kinds are kept as 0 while unknown and
 * reported as MP_NONE unless some reading gave them (`known`).
 *
 * What a line started from (USS, kinds) only matters if a reading comes
 * before it closes: opening a line notes the number of readings so far,
 * the next reading fills in the values for every line opened since (it
 * walks the open frames anyway, for the peak), and a line that closes
 * with no reading in between changed nothing, so its increments stay as
 * they are.  The tight loop between readings pays for none of it.
 *
 * Every reading also goes into the tracer's bounded series (series.c),
 * with the innermost open line: memory over time at no cost to events
 * that take no reading.
 */
#include "mempulse.h"
#include "meter.h"
#include "port.h"
#include "series.h"
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_STACK 16
#define HOT_READINGS 128

typedef struct mp_frame {
    mp_site *open;      /* the line running in this frame, or NULL */
    int64_t before;     /* USS estimate when it started ... */
    int64_t before_anon, before_file, before_shmem;   /* ... and the kinds, */
    uint64_t opened;    /* ... set at the first reading after `opened` */
    int64_t peak;       /* highest rss seen while it ran */
    int32_t code_id;
} mp_frame;

/* Bits of mp_tracer.known: which kinds some reading gave. */
#define KNOWN_ANON 1
#define KNOWN_FILE 2
#define KNOWN_SHMEM 4

struct mp_tracer {
    mp_meter *meter;
    mp_watch watch;
    int64_t period_ns;
    mp_table table;

    mp_frame *stack;
    size_t depth;
    size_t cap;

    int64_t uss;        /* current USS estimate */
    int64_t swap;       /* from the meter's anchor */
    int64_t anon, file, shmem;  /* last known kinds; 0 while unknown */
    int known;          /* KNOWN_* bits */
    uint64_t readings;  /* readings taken so far */
    mp_series_buf series;
    int64_t open_peak;  /* peak of a line starting now */
    int64_t anchor_ns;  /* time of the full reading behind uss */
    int64_t uss_age_ns; /* at finish */
    int64_t last_ns;    /* time of the last reading */
    uint64_t last_tsc;  /* ... in TSC ticks */
    uint64_t period_ticks; /* period_ns in TSC ticks; 0: use the clock */
    int hot;            /* readings left before the movement gate closes */
    int64_t dropped;
    int64_t peak_before;  /* the meter's known peak after mp_start's reading */

    int started;
    int err;
    int err_errno;

    int binds;          /* threads that have it bound (0 or 1) */
    int freed;          /* mp_tracer_free was called; free on the last unbind */
};

/*
 * TSC ticks per ns, measured once per process over ~200 us, or 0 when
 * there is no usable TSC.  Threads racing here compute the same value.
 */
static double tsc_per_ns(void)
{
    static volatile double rate = -1;
#ifdef MP_HAVE_TSC
    if (rate < 0) {
        int64_t t0 = mp_now_ns(), t1;
        uint64_t c0 = mp_ticks(), c1;
        do {
            t1 = mp_now_ns();
        } while (t1 - t0 < 200000);
        c1 = mp_ticks();
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
        return mp_ticks() - t->last_tsc >= t->period_ticks;
    return mp_now_ns() - t->last_ns >= t->period_ns;
}

static void fail(mp_tracer *t, int status)
{
    if (t->err == MP_OK) {
        t->err = status;
        t->err_errno = errno;
    }
}

/* A reading is about to update the estimates: charge the peak of the
 * window that just ended to every open line, and give the lines opened
 * since the previous reading what they started from. */
static void note_reading(mp_tracer *t, int64_t peak)
{
    size_t i;
    for (i = 0; i < t->depth; i++) {
        mp_frame *f = &t->stack[i];
        f->peak = mp_max64(f->peak, peak);
        if (f->open != NULL && f->opened == t->readings) {
            f->before = t->uss;
            f->before_anon = t->anon;
            f->before_file = t->file;
            f->before_shmem = t->shmem;
        }
    }
    t->readings++;
}

/* Take the kinds of a reading; an unknown one keeps its last value, so a
 * failed split moves nothing.  A kind known for the first time starts the
 * lines already open from its value (they opened at an unknown one). */
static void note_kinds(mp_tracer *t, const mp_view *v)
{
    int got = (v->anon != MP_NONE ? KNOWN_ANON : 0) | (v->file != MP_NONE ? KNOWN_FILE : 0) |
              (v->shmem != MP_NONE ? KNOWN_SHMEM : 0);
    int fresh = got & ~t->known;
    size_t i;
    if (fresh != 0) {   /* once per tracer and kind */
        for (i = 0; i < t->depth; i++) {
            mp_frame *f = &t->stack[i];
            if (fresh & KNOWN_ANON)
                f->before_anon = v->anon;
            if (fresh & KNOWN_FILE)
                f->before_file = v->file;
            if (fresh & KNOWN_SHMEM)
                f->before_shmem = v->shmem;
        }
        t->known |= fresh;
    }
    if (got & KNOWN_ANON)
        t->anon = v->anon;
    if (got & KNOWN_FILE)
        t->file = v->file;
    if (got & KNOWN_SHMEM)
        t->shmem = v->shmem;
}

/* The reading into the series, with the innermost open line. */
static void note_point(mp_tracer *t, const mp_view *v)
{
    mp_point p;
    size_t i = t->depth;
    p.time_ns = v->now_ns;
    p.rss = v->rss;
    p.uss = v->uss;
    p.code_id = -1;
    p.lineno = 0;
    while (i > 0) {
        const mp_site *open = t->stack[--i].open;
        if (open != NULL) {
            p.code_id = open->key.code_id;
            p.lineno = open->key.lineno;
            break;
        }
    }
    mp_series_add(&t->series, &p);
}

/* Bring the estimate up to date if a gate is open (or force is set).
 * again: the line starting is the one closing (a one-line loop, a
 * comprehension): a reading in between would charge nothing to anyone
 * else, so only the time gate counts. */
static void refresh(mp_tracer *t, int force, int again)
{
    mp_view v;
    int rc;

    if (!force && (t->hot == 0 || again) && !gate_open(t))
        return;
    rc = mp_meter_take(t->meter, &t->watch, 0, &v);
    if (rc == MP_EAGAIN)
        return;   /* gates stay open: the next event tries again */
    if (rc != MP_OK) {
        fail(t, rc);
        return;
    }
    t->last_ns = v.now_ns;
    t->last_tsc = mp_ticks();
    note_reading(t, v.window);
    t->open_peak = v.open_peak;
    t->uss = v.uss;
    t->swap = v.swap;
    t->anchor_ns = v.anchor_ns;
    note_kinds(t, &v);
    note_point(t, &v);
    if (v.moved)
        t->hot = HOT_READINGS;
    else if (t->hot > 0)
        t->hot--;
}

static void close_line(mp_tracer *t, mp_frame *f)
{
    mp_site *s = f->open;
    if (s == NULL)
        return;
    s->hits++;
    if (f->opened == t->readings) {
        /* No reading since it opened: it moved nothing we saw. */
        if (s->max_increment < 0 && t->uss != MP_NONE)
            s->max_increment = 0;
    } else {
        if (t->uss != MP_NONE && f->before != MP_NONE) {
            int64_t d = t->uss - f->before;
            s->increment += d;
            if (d > s->max_increment)   /* MP_NONE is the least */
                s->max_increment = d;
        }
        s->anon_inc += t->anon - f->before_anon;
        s->file_inc += t->file - f->before_file;
        s->shmem_inc += t->shmem - f->before_shmem;
    }
    s->uss = t->uss;
    s->swap = t->swap;
    s->seen_ns = t->last_ns;
    s->peak_rss = mp_max64(s->peak_rss, f->peak);
    f->open = NULL;
}

int mp_tracer_new(mp_meter *meter, int64_t period_ns, mp_tracer **out)
{
    mp_tracer *t;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (meter == NULL || period_ns < 0)
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
    t->meter = meter;
    t->period_ns = period_ns;
    if (period_ns > 0) {
        double rate = tsc_per_ns();
        if (rate > 0)
            t->period_ticks = (uint64_t)((double)period_ns * rate);
    }
    t->uss = t->swap = t->open_peak = MP_NONE;
    t->anchor_ns = MP_NONE;
    mp_series_init(&t->series);
    t->uss_age_ns = -1;
    t->peak_before = MP_NONE;
    *out = t;
    return MP_OK;
}

mp_tracer *mp_tracer_make(mp_meter *meter, int64_t period_ns)
{
    mp_tracer *t;
    return mp_tracer_new(meter, period_ns, &t) == MP_OK ? t : NULL;
}

static void destroy(mp_tracer *t)
{
    mp_table_clear(&t->table);
    mp_series_release(&t->series);
    free(t->stack);
    free(t);
}

/*
 * Binding.  A thread's events go to the tracer it bound last.  Another
 * thread (the one that ends the trace) frees it, possibly while the bound
 * thread is about to send one more event, so a tracer still bound somewhere
 * outlives mp_tracer_free until that thread binds another tracer, unbinds,
 * or exits (a thread-exit destructor).  Events sent to a finished tracer
 * are ignored.  Binding must come before the free: after it, t is gone
 * (and counting its binds would free it twice).
 */
static MP_THREAD_LOCAL mp_tracer *bound;
static mp_mutex bind_lock = MP_MUTEX_INIT;
static mp_once bind_once = MP_ONCE_INIT;
static mp_key bind_key;
static int have_bind_key;

static void release(mp_tracer *t)   /* bind_lock held */
{
    if (t != NULL && t->freed && t->binds == 0)
        destroy(t);
}

static void unbind_at_exit(void *value)
{
    mp_tracer *t = value;
    if (t == NULL)
        return;
    mp_mutex_lock(&bind_lock);
    t->binds--;
    release(t);
    mp_mutex_unlock(&bind_lock);
}

/* In a forked child the thread that held bind_lock is gone. */
static void bind_after_fork(void)
{
    mp_mutex_reinit(&bind_lock);
}

static void make_bind_key(void)
{
    have_bind_key = mp_key_create(&bind_key, unbind_at_exit) == 0;
    /* Without the hook a child forked while another thread held bind_lock
     * would deadlock at its first bind; nothing better to do if refused. */
    (void)mp_atfork_child(bind_after_fork);
}

void mp_bind(mp_tracer *t)
{
    /* Refused only by a broken system; then the key stays unset below. */
    (void)mp_run_once(&bind_once, make_bind_key);
    mp_mutex_lock(&bind_lock);
    if (bound != NULL) {
        bound->binds--;
        release(bound);
    }
    bound = t;
    if (t != NULL)
        t->binds++;
    mp_mutex_unlock(&bind_lock);
    /* Without the key a tracer bound by a thread that exits is never freed:
     * a leak, not a crash. */
    if (have_bind_key)
        (void)mp_key_set(bind_key, t);   /* refused: the same leak, no one to tell */
}

void mp_tracer_free(mp_tracer *t)
{
    if (t == NULL)
        return;
    if (t->watch.attached)
        mp_meter_detach(t->meter, &t->watch);
    mp_mutex_lock(&bind_lock);
    if (bound == t) {   /* the caller's own binding goes with it */
        bound = NULL;
        t->binds--;
        if (have_bind_key)
            (void)mp_key_set(bind_key, NULL);   /* refused: see mp_bind */
    }
    t->freed = 1;
    t->started = 0;
    release(t);
    mp_mutex_unlock(&bind_lock);
}

int mp_start(mp_tracer *t)
{
    int rc;
    mp_view v;

    if (t->started)
        return MP_ESTATE;
    if (t->err != MP_OK)
        return t->err;
    /* Before the reading, so the buffer's pages are in the baseline.
     * Without one (out of memory) the trace goes on without a series. */
    (void)mp_series_reserve(&t->series);
    mp_meter_attach(t->meter, &t->watch);
    rc = mp_meter_take(t->meter, &t->watch, 0, &v);
    if (t->series.start_ns == MP_NONE)
        t->series.start_ns = rc == MP_OK ? v.now_ns : mp_now_ns();
    if (rc == MP_OK) {
        t->last_ns = v.now_ns;
        t->last_tsc = mp_ticks();
        note_reading(t, v.window);
        t->open_peak = v.open_peak;
        t->uss = v.uss;
        t->swap = v.swap;
        t->anchor_ns = v.anchor_ns;
        note_kinds(t, &v);
        note_point(t, &v);
    } else if (rc == MP_EAGAIN) {
        /* Another thread's reading was under way (Python sampler): the
         * first event tries again. */
        t->last_ns = 0;
        t->last_tsc = 0;
    } else {
        mp_meter_detach(t->meter, &t->watch);
        fail(t, rc);
        return t->err;
    }
    t->hot = 0;
    t->started = 1;
    t->peak_before = mp_meter_known_peak(t->meter);
    return MP_OK;
}

int mp_begin(mp_tracer *t, int32_t code_id)
{
    int rc = mp_start(t);
    if (rc != MP_OK)
        return rc;
    mp_bind(t);
    if (code_id >= 0)
        mp_call(t, code_id);
    return MP_OK;
}

void mp_call(mp_tracer *t, int32_t code_id)
{
    mp_frame *f;

    if (!t->started || t->err != MP_OK) {
        t->dropped++;
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

    if (!t->started || t->err != MP_OK || t->depth == 0) {
        t->dropped++;
        return;
    }
    f = &t->stack[t->depth - 1];
    if (f->code_id < 0)
        return;   /* a muted frame: its lines are not recorded */
    s = mp_table_get(&t->table, f->code_id, lineno);
    if (s == NULL) {
        fail(t, MP_ENOMEM);
        return;
    }
    refresh(t, 0, s == f->open);
    close_line(t, f);
    f->open = s;
    f->opened = t->readings;
    f->peak = t->open_peak;
}

void mp_return(mp_tracer *t)
{
    if (!t->started || t->err != MP_OK || t->depth == 0) {
        t->dropped++;
        return;
    }
    refresh(t, 0, 0);
    close_line(t, &t->stack[t->depth - 1]);
    t->depth--;
}

int mp_finish(mp_tracer *t)
{
    if (!t->started)
        return t->err != MP_OK ? t->err : MP_ESTATE;
    if (t->err == MP_OK)
        refresh(t, 1, 0);
    while (t->err == MP_OK && t->depth > 0) {
        close_line(t, &t->stack[t->depth - 1]);
        t->depth--;
    }
    t->depth = 0;
    t->started = 0;
    mp_meter_detach(t->meter, &t->watch);
    t->uss_age_ns = t->anchor_ns == MP_NONE ? -1 : mp_now_ns() - t->anchor_ns;
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
        d->max_increment = mp_max64(d->max_increment, s->max_increment);
        d->anon_inc += s->anon_inc;
        d->file_inc += s->file_inc;
        d->shmem_inc += s->shmem_inc;
        d->peak_rss = mp_max64(d->peak_rss, s->peak_rss);  /* MP_NONE is the least */
        /* "After the last execution": the later reading wins. */
        if (s->hits > 0 && (d->uss == MP_NONE || s->seen_ns >= d->seen_ns)) {
            d->uss = s->uss;
            d->swap = s->swap;
            d->seen_ns = s->seen_ns;
        }
    }
    dst->known |= src->known;
    return mp_series_merge(&dst->series, &src->series);
}

int mp_peak_per_line(const mp_tracer *t)
{
    return mp_meter_peak_per_line(t->meter);
}

int64_t mp_uss_age_ns(const mp_tracer *t)
{
    return t->uss_age_ns;
}

int64_t mp_dropped(const mp_tracer *t)
{
    return t->dropped;
}

void mp_bound_call(int32_t code_id)
{
    if (bound != NULL)
        mp_call(bound, code_id);
}

void mp_bound_line(int32_t lineno)
{
    mp_tracer *t = bound;
    if (t != NULL)
        mp_line(t, lineno);
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

static void record_of(const mp_tracer *t, const mp_site *s, mp_record *r)
{
    r->code_id = s->key.code_id;
    r->lineno = s->key.lineno;
    r->uss = s->uss;
    r->swap = s->swap;
    r->peak_rss = s->peak_rss;
    r->hits = s->hits;
    r->increment = s->increment;
    r->max_increment = s->max_increment;
    r->anon_increment = (t->known & KNOWN_ANON) ? s->anon_inc : MP_NONE;
    r->file_increment = (t->known & KNOWN_FILE) ? s->file_inc : MP_NONE;
    r->shmem_increment = (t->known & KNOWN_SHMEM) ? s->shmem_inc : MP_NONE;
}

size_t mp_records(const mp_tracer *t, mp_record *out, size_t n)
{
    const mp_site *s;
    size_t i = 0;

    for (s = t->table.head; s != NULL && i < n; s = s->hh.next, i++)
        record_of(t, s, &out[i]);
    return i;
}

size_t mp_series_count(const mp_tracer *t)
{
    return mp_series_len(&t->series);
}

size_t mp_series(const mp_tracer *t, mp_point *out, size_t n)
{
    if (out == NULL)
        return 0;
    return mp_series_copy(&t->series, out, n);
}

size_t mp_result_size(const mp_tracer *t)
{
    return MP_RESULT_HEAD * sizeof(int64_t) + mp_count(t) * sizeof(mp_record) +
           mp_series_count(t) * sizeof(mp_point);
}

size_t mp_result(const mp_tracer *t, void *out, size_t cap)
{
    int64_t head[MP_RESULT_HEAD];
    char *at = out;
    const mp_site *s;
    size_t records = mp_count(t), points = mp_series_count(t), size = mp_result_size(t);

    if (out == NULL || cap < size)
        return 0;
    head[MP_RESULT_STATUS] = t->err;
    head[MP_RESULT_ERRNO] = t->err_errno;
    head[MP_RESULT_USS_AGE] = t->uss_age_ns;
    head[MP_RESULT_DROPPED] = t->dropped;
    head[MP_RESULT_RECORDS] = (int64_t)records;
    head[MP_RESULT_POINTS] = (int64_t)points;
    head[MP_RESULT_PEAK_BEFORE] = t->peak_before;
    head[MP_RESULT_PEAK_PER_LINE] = mp_peak_per_line(t);
    head[MP_RESULT_UNKNOWN] = 0;
    at += sizeof head;
    /* Through an aligned copy: out is a byte buffer. */
    for (s = t->table.head; s != NULL; s = s->hh.next) {
        mp_record r;
        record_of(t, s, &r);
        if (r.uss == MP_NONE || r.swap == MP_NONE || r.peak_rss == MP_NONE || r.max_increment == MP_NONE ||
            r.anon_increment == MP_NONE || r.file_increment == MP_NONE || r.shmem_increment == MP_NONE)
            head[MP_RESULT_UNKNOWN] = 1;
        memcpy(at, &r, sizeof r);
        at += sizeof r;
    }
    memcpy(out, head, sizeof head);
    if (points > 0 && mp_series_copy_bytes(&t->series, at, points) != points)
        return 0;
    return size;
}

size_t mp_footprint(const mp_tracer *t)
{
    return sizeof *t + t->cap * sizeof *t->stack + mp_table_footprint(&t->table) +
           mp_series_footprint(&t->series);
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
    case MP_ESTATE: return "tracer started twice, or finished without a start";
    case MP_ERANGE: return "output buffer too small";
    case MP_EINVAL: return "invalid argument";
    case MP_EAGAIN: return "no reading this time (not an error)";
    default: return "unknown error";
    }
}
