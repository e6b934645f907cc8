/*
 * series.h - a tracer's bounded memory-over-time series; private to the core.
 *
 * At most MP_SERIES_SLOTS points plus the latest reading, so a series
 * never holds more than MP_SERIES_MAX whatever the length of the run.
 * Each point stands for `stride` consecutive readings and is the one with
 * the highest rss among them (the first point stands for itself alone):
 * when the slots are full, neighbours are merged two by two and stride
 * doubles, so every point covers the same number of readings and the
 * highest rss of the run always survives.  Times are absolute here
 * (mp_now_ns); mp_series_copy makes them relative to start_ns.
 *
 * Cost: mp_series_add runs only when a reading was taken (microseconds)
 * and never allocates; the buffer comes at mp_start, from a small
 * process-wide pool of buffers whose pages are already resident, so no
 * page of ours faults while the user's lines run (they would be charged
 * for it).
 */
#ifndef MEMPULSE_SERIES_H
#define MEMPULSE_SERIES_H

#include "mempulse.h"

#define MP_SERIES_SLOTS (MP_SERIES_MAX - 1)   /* the last one is `last` */

typedef struct mp_series_buf {
    mp_point *pts;      /* MP_SERIES_SLOTS points, or NULL: none reserved */
    size_t n;
    int64_t stride;     /* readings per point from pts[n-1] on */
    int64_t fill;       /* readings folded into pts[n-1] so far */
    mp_point last;      /* the latest reading (valid when n > 0) */
    int64_t start_ns;   /* what times are relative to; MP_NONE: unset */
} mp_series_buf;

void mp_series_init(mp_series_buf *s);
/* A buffer for s if it has none: MP_OK or MP_ENOMEM. */
int mp_series_reserve(mp_series_buf *s);
/* Give the buffer back (to the pool, or free it). */
void mp_series_release(mp_series_buf *s);
/* One reading (time absolute); nothing without a buffer. */
void mp_series_add(mp_series_buf *s, const mp_point *p);
size_t mp_series_len(const mp_series_buf *s);
size_t mp_series_copy(const mp_series_buf *s, mp_point *out, size_t n);
/* The same into a byte buffer of any alignment. */
size_t mp_series_copy_bytes(const mp_series_buf *s, void *out, size_t n);
/* Fold src's points into dst, in time order, re-bounded: MP_OK or MP_ENOMEM. */
int mp_series_merge(mp_series_buf *dst, const mp_series_buf *src);
size_t mp_series_footprint(const mp_series_buf *s);

#endif /* MEMPULSE_SERIES_H */
