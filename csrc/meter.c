/*
 * meter.c - one process-wide meter per kind of sampler, shared by every
 * tracer of every thread.
 *
 * Why one per process: the full reading (smaps_rollup) costs ~15 us small
 * and tens of ms per resident GiB, so a traced block must not pay one at
 * each enter and exit.  The meter keeps the last full reading as an anchor
 * (its uss and rss, and when) and takes a new one only when the time spent
 * on full readings stays under FULL_SHARE of wall time, across all blocks
 * and threads; in between, uss = anchor uss + (rss - anchor rss), which
 * follows the quick reading exactly for pages the process gains or loses.
 *
 * Peaks: each reading resets the kernel's high-water mark (when the sampler
 * can), so the next one sees only its own window.  The lifetime peak keeps
 * what the user would otherwise lose to those resets: the mark as it was at
 * the first reading (the process's peak before any reset) maxed with every
 * window since.
 *
 * Locking: one mutex per meter serializes readings (ABI-mode cffi releases
 * the GIL around calls; free-threaded Python has none).  A serial sampler
 * (C, /proc) waits for it.  A sampler whose callbacks run Python (psutil)
 * only tries it: a thread holding the GIL must not wait for a thread that
 * holds the meter and waits for the GIL; it takes a quick reading without
 * the mutex instead (take_unlocked).  The list of running tracers has
 * a mutex of its own, never held across a sampler call, so starting or
 * ending a trace never waits for a reading.
 *
 * Fork: the state belongs to the process that took it (pid); a child starts
 * afresh, and an atfork hook re-initializes every meter's mutex there,
 * since the thread that held one at fork does not exist in the child.
 */
#include "mempulse.h"
#include "meter.h"
#include "port.h"

#include <errno.h>
#include <stdlib.h>

/* At most 1/FULL_SHARE of wall time goes to full readings. */
#define FULL_SHARE 100

struct mp_meter {
    mp_sampler sampler;
    mp_mutex lock;
    int64_t pid;            /* process the state belongs to; 0: none yet */
    int peak_resets;        /* resets work (until the sampler refuses one) */
    int64_t uss_base;       /* anchor: uss at the last full reading, ... */
    int64_t rss_base;       /* ... rss then, ... */
    int64_t swap;           /* ... swap then, ... */
    int64_t anchor_ns;      /* ... and when */
    int64_t next_full_ns;   /* the budget allows a full reading from then on */
    int64_t lifetime;       /* highest rss of the process, resets undone */
    int64_t open_peak;      /* the peak a line starting now begins with */
    mp_mutex watch_lock;    /* guards watches; never held across a sampler call,
                               so attaching never waits for a reading */
    mp_watch *watches;      /* tracers running on this meter */
    int64_t watch_pid;      /* process the watches belong to */
    struct mp_meter *next_meter;
};

/* Every meter, so a forked child can re-initialize their mutexes. */
static mp_mutex registry_lock = MP_MUTEX_INIT;
static mp_meter *meters;
static mp_once fork_once = MP_ONCE_INIT;

static void meters_after_fork(void)
{
    mp_meter *m;
    mp_mutex_reinit(&registry_lock);
    for (m = meters; m != NULL; m = m->next_meter) {
        mp_mutex_reinit(&m->lock);
        mp_mutex_reinit(&m->watch_lock);
    }
}

static void install_fork_hook(void)
{
    /* Without the hook a child whose fork caught a reading in another
     * thread would deadlock on its first reading; nothing else to do. */
    (void)mp_atfork_child(meters_after_fork);
}

/* watch_lock held.  A child's tracers were its parent's: not running here. */
static void own_watches(mp_meter *m, int64_t pid)
{
    mp_watch *w;
    if (m->watch_pid == pid)
        return;
    for (w = m->watches; w != NULL; w = w->next)
        w->attached = 0;
    m->watches = NULL;
    m->watch_pid = pid;
}

static void forget(mp_meter *m)    /* lock held: state of another process */
{
    m->pid = mp_getpid();
    m->peak_resets = m->sampler.reset_peak != NULL;
    m->uss_base = m->rss_base = m->swap = MP_NONE;
    m->anchor_ns = MP_NONE;
    m->next_full_ns = 0;
    m->lifetime = m->open_peak = MP_NONE;
}

int mp_meter_new(const mp_sampler *sampler, mp_meter **out)
{
    mp_meter *m;
    mp_mutex fresh = MP_MUTEX_INIT;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (sampler == NULL || sampler->quick == NULL || sampler->full == NULL)
        return MP_EINVAL;
    if (mp_run_once(&fork_once, install_fork_hook) != 0)
        return MP_ENOMEM;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return MP_ENOMEM;
    m->sampler = *sampler;
    m->lock = fresh;
    m->watch_lock = fresh;
    m->pid = 0;   /* no syscall here: the first reading sets it */
    m->peak_resets = sampler->reset_peak != NULL;
    m->uss_base = m->rss_base = m->swap = m->anchor_ns = MP_NONE;
    m->lifetime = m->open_peak = MP_NONE;
    mp_mutex_lock(&registry_lock);
    m->next_meter = meters;
    meters = m;
    mp_mutex_unlock(&registry_lock);
    *out = m;
    return MP_OK;
}

void mp_meter_free(mp_meter *m)
{
    mp_meter **p;
    if (m == NULL)
        return;
    mp_mutex_lock(&registry_lock);
    for (p = &meters; *p != NULL; p = &(*p)->next_meter) {
        if (*p == m) {
            *p = m->next_meter;
            break;
        }
    }
    mp_mutex_unlock(&registry_lock);
    free(m);
}

static int lock_meter(mp_meter *m)
{
    if (m->sampler.serial) {
        mp_mutex_lock(&m->lock);
        return 0;
    }
    return mp_mutex_trylock(&m->lock);
}

void mp_meter_attach(mp_meter *m, mp_watch *w)
{
    mp_mutex_lock(&m->watch_lock);
    own_watches(m, mp_getpid());
    if (!w->attached) {
        w->prev = NULL;
        w->next = m->watches;
        if (m->watches != NULL)
            m->watches->prev = w;
        m->watches = w;
        w->attached = 1;
    }
    w->pending = MP_NONE;
    w->last_rss = MP_NONE;
    w->last_window = MP_NONE;
    mp_mutex_unlock(&m->watch_lock);
}

void mp_meter_detach(mp_meter *m, mp_watch *w)
{
    mp_mutex_lock(&m->watch_lock);
    own_watches(m, mp_getpid());
    if (w->attached) {
        if (w->prev != NULL)
            w->prev->next = w->next;
        else
            m->watches = w->next;
        if (w->next != NULL)
            w->next->prev = w->prev;
    }
    w->attached = 0;
    w->prev = w->next = NULL;
    mp_mutex_unlock(&m->watch_lock);
}

/* Sampler callbacks may return any nonzero value; keep ours, map the rest. */
static int sampler_status(int rc)
{
    if (rc < 0 && rc >= MP_EAGAIN)
        return rc;
    return MP_ESAMPLER;
}

static int take_locked(mp_meter *m, mp_watch *w, int flags, mp_view *out)
{
    mp_usage u;
    mp_watch *x;
    int64_t now, window, view_window, pid = mp_getpid();
    int rc, moved, new_peak;

    if (pid != m->pid)
        forget(m);
    now = mp_now_ns();
    u.rss = u.uss = u.swap = u.peak_rss = MP_NONE;
    u.anon = u.file = u.shmem = MP_NONE;
    errno = 0;
    rc = m->sampler.quick(m->sampler.ctx, &u);
    if (rc != 0)
        return sampler_status(rc);
    window = mp_max64(u.rss, u.peak_rss);   /* MP_NONE is the least */
    m->lifetime = mp_max64(m->lifetime, window);
    m->open_peak = mp_max64(m->open_peak, window);
    mp_mutex_lock(&m->watch_lock);
    own_watches(m, pid);
    for (x = m->watches; x != NULL; x = x->next)
        x->pending = mp_max64(x->pending, window);
    if (w != NULL && w->attached) {
        view_window = w->pending;
        w->pending = MP_NONE;
        moved = u.rss != w->last_rss;
        /* The kernel keeps the mark from per-CPU approximations of rss, so
         * after a reset it can stay some pages above the exact rss until
         * those counters are folded: the same mark over the same rss is
         * that leftover, not a new transient peak. */
        new_peak = view_window != w->last_window;
        w->last_rss = u.rss;
        w->last_window = view_window;
    } else {
        view_window = window;
        moved = new_peak = 0;
    }
    mp_mutex_unlock(&m->watch_lock);
    if (m->peak_resets && u.rss != MP_NONE && !(flags & MP_TAKE_NO_RESET)) {
        m->open_peak = u.rss;
        /* A mark at rss needs no reset: the next window starts there. */
        errno = 0;
        if (u.peak_rss > u.rss && m->sampler.reset_peak(m->sampler.ctx) != 0) {
            m->peak_resets = 0;   /* refused from now on: lifetime peaks */
            m->open_peak = m->lifetime;
        }
    }
    if ((flags & MP_TAKE_FORCE_FULL) || m->uss_base == MP_NONE || now >= m->next_full_ns) {
        int64_t done;
        errno = 0;
        rc = m->sampler.full(m->sampler.ctx, &u);
        if (rc != 0)
            return sampler_status(rc);
        done = mp_now_ns();
        m->next_full_ns = done + (done - now) * FULL_SHARE;
        m->uss_base = u.uss;
        m->rss_base = u.rss;
        m->swap = u.swap;
        m->anchor_ns = now;
    }
    out->rss = u.rss;
    out->anon = u.anon;
    out->file = u.file;
    out->shmem = u.shmem;
    if (m->uss_base != MP_NONE && u.rss != MP_NONE && m->rss_base != MP_NONE)
        out->uss = m->uss_base + (u.rss - m->rss_base);
    else
        out->uss = m->uss_base;
    out->swap = m->swap;
    out->open_peak = m->open_peak;
    out->now_ns = now;
    out->anchor_ns = m->anchor_ns;
    out->window = view_window;
    out->moved = moved || (new_peak && m->peak_resets && view_window > u.rss);
    return MP_OK;
}

/*
 * A sampler that is not serial found another thread's reading under way:
 * take a quick reading anyway, which such samplers allow (Python callbacks
 * under the GIL), but touch nothing that needs the meter's mutex: no reset,
 * no full reading, the anchor read as it is.  The line at hand still gets
 * its own increment instead of leaving it to the next line.
 */
static int take_unlocked(mp_meter *m, mp_watch *w, mp_view *out)
{
    mp_usage u;
    int64_t now = mp_now_ns(), uss_base, rss_base, window;
    int rc;

    u.rss = u.uss = u.swap = u.peak_rss = MP_NONE;
    u.anon = u.file = u.shmem = MP_NONE;
    errno = 0;
    rc = m->sampler.quick(m->sampler.ctx, &u);
    if (rc != 0)
        return sampler_status(rc);
    window = mp_max64(u.rss, u.peak_rss);
    uss_base = m->uss_base;
    rss_base = m->rss_base;
    if (uss_base == MP_NONE || rss_base == MP_NONE || u.rss == MP_NONE)
        return MP_EAGAIN;   /* no anchor yet: wait for a locked reading */
    out->rss = u.rss;
    out->anon = u.anon;
    out->file = u.file;
    out->shmem = u.shmem;
    out->uss = uss_base + (u.rss - rss_base);
    out->swap = m->swap;
    out->now_ns = now;
    out->anchor_ns = m->anchor_ns;
    mp_mutex_lock(&m->watch_lock);
    own_watches(m, mp_getpid());
    if (w != NULL && w->attached) {
        out->window = mp_max64(w->pending, window);
        w->pending = MP_NONE;
        out->moved = u.rss != w->last_rss;
        w->last_rss = u.rss;
        w->last_window = out->window;
    } else {
        out->window = window;
        out->moved = 0;
    }
    mp_mutex_unlock(&m->watch_lock);
    /* Without a reset the mark is the window's upper bound. */
    out->open_peak = m->peak_resets ? u.rss : window;
    return MP_OK;
}

int mp_meter_take(mp_meter *m, mp_watch *w, int flags, mp_view *out)
{
    int rc;
    if (lock_meter(m) != 0)
        return m->pid == mp_getpid() ? take_unlocked(m, w, out) : MP_EAGAIN;
    rc = take_locked(m, w, flags, out);
    mp_mutex_unlock(&m->lock);
    return rc;
}

int mp_meter_peak_per_line(const mp_meter *m)
{
    return m->peak_resets;
}

int64_t mp_meter_lifetime_peak(mp_meter *m)
{
    mp_view v;
    int64_t peak;
    if (lock_meter(m) != 0)
        return m->lifetime;   /* a reading is under way: what we know */
    /* A reading without reset: a process that never traced gets its mark. */
    if (take_locked(m, NULL, MP_TAKE_NO_RESET, &v) != MP_OK)
        v.window = MP_NONE;
    peak = mp_max64(m->lifetime, v.window);
    mp_mutex_unlock(&m->lock);
    return peak;
}

int64_t mp_meter_known_peak(const mp_meter *m)
{
    /* A plain load: a reading racing with it may make it one window old. */
    return m->lifetime;
}

int mp_meter_read(mp_meter *m, int full, mp_usage *out)
{
    mp_view v;
    int rc;
    if (m == NULL || out == NULL)
        return MP_EINVAL;
    if (lock_meter(m) != 0)
        return MP_EAGAIN;
    rc = take_locked(m, NULL, full ? MP_TAKE_FORCE_FULL : 0, &v);
    if (rc == MP_OK) {
        out->rss = v.rss;
        out->uss = v.uss;
        out->swap = v.swap;
        out->peak_rss = m->lifetime;
        out->anon = v.anon;
        out->file = v.file;
        out->shmem = v.shmem;
    }
    mp_mutex_unlock(&m->lock);
    return rc;
}
