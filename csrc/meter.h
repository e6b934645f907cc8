/*
 * meter.h - what tracer.c needs from meter.c; private to the core.
 *
 * A tracer registers a watch with the meter while it runs.  Every reading,
 * by whichever thread, raises the pending peak of every watch, so a tracer
 * gets the highest rss of every window since ITS previous reading, not
 * only since the last reading of any thread.
 */
#ifndef MEMPULSE_METER_H
#define MEMPULSE_METER_H

#include "mempulse.h"

typedef struct mp_watch {
    struct mp_watch *prev, *next;
    int64_t pending;    /* highest rss since the owner's last reading */
    int64_t last_rss;   /* rss at the owner's last reading */
    int64_t last_window;   /* its window at that reading */
    int attached;
} mp_watch;

/* What one reading tells a tracer. */
typedef struct mp_view {
    int64_t rss;
    int64_t uss;        /* anchor uss + (rss - anchor rss), or a fresh full reading */
    int64_t swap;       /* from the anchor */
    int64_t anon, file, shmem;  /* from the quick reading; MP_NONE where unknown */
    int64_t window;     /* highest rss since the watch's previous reading */
    int64_t open_peak;  /* the peak a line starting now begins with */
    int64_t now_ns;     /* time of the quick reading */
    int64_t anchor_ns;  /* time of the full reading behind uss */
    int moved;          /* rss differs from the watch's previous reading, or a
                           new transient peak above it was seen */
} mp_view;

#define MP_TAKE_FORCE_FULL 1   /* a full reading whatever the budget */
#define MP_TAKE_NO_RESET 2     /* leave the kernel's peak mark alone */

void mp_meter_attach(mp_meter *m, mp_watch *w);
void mp_meter_detach(mp_meter *m, mp_watch *w);
/* MP_OK, MP_EAGAIN (no reading: another was under way, or the sampler was
 * interrupted), or the sampler's failure. */
int mp_meter_take(mp_meter *m, mp_watch *w, int flags, mp_view *out);

static inline int64_t mp_max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

#endif /* MEMPULSE_METER_H */
