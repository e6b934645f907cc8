/*
 * series.c - the bounded memory-over-time series (see series.h).
 */
#include "series.h"
#include "port.h"

#include <stdlib.h>
#include <string.h>

#define BUF_BYTES (MP_SERIES_SLOTS * sizeof(mp_point))

/* Reserved buffers come back here when their tracer is freed: a service
 * tracing one block per request reuses one whose pages are resident
 * instead of paying (and being charged for) fresh page faults each time.
 * A few are kept for tracers of concurrent threads; the rest are freed. */
#define POOL_MAX 4

static mp_mutex pool_lock = MP_MUTEX_INIT;
static mp_point *pool[POOL_MAX];
static int pool_n;
static mp_once pool_once = MP_ONCE_INIT;

/* In a forked child the thread that held pool_lock is gone. */
static void pool_after_fork(void)
{
    mp_mutex_reinit(&pool_lock);
}

static void install_pool_hook(void)
{
    /* Refused: a child forked while another thread held the lock would
     * wait at its first trace; nothing better to do. */
    (void)mp_atfork_child(pool_after_fork);
}

void mp_series_init(mp_series_buf *s)
{
    memset(s, 0, sizeof *s);
    s->stride = 1;
    s->start_ns = MP_NONE;
}

int mp_series_reserve(mp_series_buf *s)
{
    mp_point *pts = NULL;
    size_t i;

    if (s->pts != NULL)
        return MP_OK;
    (void)mp_run_once(&pool_once, install_pool_hook);   /* refused: see there */
    mp_mutex_lock(&pool_lock);
    if (pool_n > 0)
        pts = pool[--pool_n];
    mp_mutex_unlock(&pool_lock);
    if (pts == NULL) {
        volatile char *touch;
        pts = malloc(BUF_BYTES);
        if (pts == NULL)
            return MP_ENOMEM;
        /* Make every page resident now, before the first reading: a write
         * per page (memset of zeros could become a calloc that touches
         * nothing). */
        touch = (volatile char *)pts;
        for (i = 0; i < BUF_BYTES; i += 4096)
            touch[i] = 1;
        touch[BUF_BYTES - 1] = 1;
    }
    s->pts = pts;
    return MP_OK;
}

void mp_series_release(mp_series_buf *s)
{
    mp_point *pts = s->pts;
    if (pts == NULL)
        return;
    s->pts = NULL;
    s->n = 0;
    mp_mutex_lock(&pool_lock);
    if (pool_n < POOL_MAX) {
        pool[pool_n++] = pts;
        pts = NULL;
    }
    mp_mutex_unlock(&pool_lock);
    free(pts);
}

static int same_point(const mp_point *a, const mp_point *b)
{
    return a->time_ns == b->time_ns && a->rss == b->rss && a->uss == b->uss &&
           a->code_id == b->code_id && a->lineno == b->lineno;
}

/* Halve pts[0..n): the first point stays, then each pair keeps its point
 * with the higher rss (the earlier on a tie); returns the new count. */
static size_t halve(mp_point *pts, size_t n)
{
    size_t i, j = 1;
    if (n < 2)
        return n;
    for (i = 1; i + 1 < n; i += 2)
        pts[j++] = pts[i + 1].rss > pts[i].rss ? pts[i + 1] : pts[i];
    if (i < n)
        pts[j++] = pts[i];
    return j;
}

void mp_series_add(mp_series_buf *s, const mp_point *p)
{
    mp_point *tail;

    if (s->pts == NULL)
        return;
    s->last = *p;
    if (s->n == 0) {
        s->pts[0] = *p;
        s->n = 1;
        s->fill = s->stride;   /* the first point is never folded into */
        return;
    }
    tail = &s->pts[s->n - 1];
    if (s->fill < s->stride) {
        if (p->rss > tail->rss)
            *tail = *p;
        s->fill++;
        return;
    }
    if (s->n == MP_SERIES_SLOTS) {
        s->n = halve(s->pts, s->n);
        s->stride *= 2;
    }
    s->pts[s->n++] = *p;
    s->fill = 1;
}

size_t mp_series_len(const mp_series_buf *s)
{
    if (s->pts == NULL || s->n == 0)
        return 0;
    return s->n + !same_point(&s->last, &s->pts[s->n - 1]);
}

/* Every point of s, absolute times, into out (room for MP_SERIES_MAX). */
static size_t gather(const mp_series_buf *s, mp_point *out)
{
    size_t n = mp_series_len(s);
    if (n == 0)
        return 0;
    memcpy(out, s->pts, s->n * sizeof *out);
    if (n > s->n)
        out[s->n] = s->last;
    return n;
}

/* Point i of the series, its time relative to start_ns. */
static mp_point point_at(const mp_series_buf *s, size_t i)
{
    mp_point p = i < s->n ? s->pts[i] : s->last;
    p.time_ns -= s->start_ns == MP_NONE ? 0 : s->start_ns;
    return p;
}

size_t mp_series_copy(const mp_series_buf *s, mp_point *out, size_t n)
{
    size_t i, len = mp_series_len(s);
    for (i = 0; i < len && i < n; i++)
        out[i] = point_at(s, i);
    return i;
}

size_t mp_series_copy_bytes(const mp_series_buf *s, void *out, size_t n)
{
    char *at = out;
    size_t i, len = mp_series_len(s);
    for (i = 0; i < len && i < n; i++, at += sizeof(mp_point)) {
        mp_point p = point_at(s, i);
        memcpy(at, &p, sizeof p);
    }
    return i;
}

int mp_series_merge(mp_series_buf *dst, const mp_series_buf *src)
{
    size_t na, nb, i, j, k, m;
    mp_point *tmp;
    int64_t stride;

    if (src->start_ns != MP_NONE && (dst->start_ns == MP_NONE || src->start_ns < dst->start_ns))
        dst->start_ns = src->start_ns;
    nb = mp_series_len(src);
    if (nb == 0)
        return MP_OK;
    if (mp_series_reserve(dst) != MP_OK)
        return MP_ENOMEM;
    na = mp_series_len(dst);
    if (na == 0) {
        memcpy(dst->pts, src->pts, src->n * sizeof *dst->pts);
        dst->n = src->n;
        dst->stride = src->stride;
        dst->fill = src->fill;
        dst->last = src->last;
        return MP_OK;
    }
    if (src->pts[0].time_ns >= dst->last.time_ns) {
        /* Later than all of dst (calls one after another): append. */
        for (i = 0; i < src->n; i++)
            mp_series_add(dst, &src->pts[i]);
        if (nb > src->n)
            mp_series_add(dst, &src->last);
        return MP_OK;
    }
    /* Interleaved (threads): merge by time, then halve until it fits. */
    tmp = malloc(2 * MP_SERIES_MAX * sizeof *tmp);
    if (tmp == NULL)
        return MP_ENOMEM;
    gather(dst, tmp);
    gather(src, tmp + MP_SERIES_MAX);
    {
        mp_point *a = tmp, *b = tmp + MP_SERIES_MAX;
        mp_point *out = malloc((na + nb) * sizeof *out);
        if (out == NULL) {
            free(tmp);
            return MP_ENOMEM;
        }
        for (i = j = k = 0; i < na || j < nb; k++)
            out[k] = (j >= nb || (i < na && a[i].time_ns <= b[j].time_ns)) ? a[i++] : b[j++];
        free(tmp);
        m = k - 1;              /* out[m] is the latest: it becomes last */
        dst->last = out[m];
        stride = dst->stride > src->stride ? dst->stride : src->stride;
        while (m > MP_SERIES_SLOTS) {
            m = halve(out, m);
            stride *= 2;
        }
        memcpy(dst->pts, out, m * sizeof *out);
        free(out);
    }
    dst->n = m;
    dst->stride = stride;
    dst->fill = stride;
    return MP_OK;
}

size_t mp_series_footprint(const mp_series_buf *s)
{
    return s->pts != NULL ? BUF_BYTES : 0;
}
