/*
 * mempulse.h - the whole interface of the mempulse C core.
 *
 * The core has no Python headers: the Python layer reaches it through cffi
 * (build_ffi.py reads the declarations between the two "cffi" markers below,
 * so they must stay in the plain-C subset that cffi's cdef parser accepts).
 *
 * Data path: the tracer gets one call per Python event (mp_call, mp_line,
 * mp_return), samples memory through an mp_sampler when enough time has
 * passed for memory to have changed, and charges what it saw to the line
 * that just finished.  mp_records copies the per-callsite aggregates out;
 * mp_format turns rows into the report table.
 *
 * Every function that can fail returns an mp_status; the tracer's event
 * functions return nothing (they sit on the hot path) and keep the first
 * failure as a sticky error that mp_error reports.
 */
#ifndef MEMPULSE_H
#define MEMPULSE_H

#include <stddef.h>
#include <stdint.h>

/* A byte count the platform could not give. */
#define MP_NONE INT64_MIN

/* cffi:begin */
typedef enum mp_status {
    MP_OK = 0,
    MP_ENOMEM = -1,     /* malloc failed */
    MP_ESTATM = -2,     /* /proc/<pid>/statm could not be opened or read (errno) */
    MP_EROLLUP = -3,    /* /proc/<pid>/smaps_rollup could not be opened or read (errno) */
    MP_EPARSE = -4,     /* a /proc file did not have the expected format */
    MP_ESAMPLER = -5,   /* an external sampler callback reported failure */
    MP_ESTATE = -6,     /* call out of order, e.g. mp_line with no frame */
    MP_ERANGE = -7,     /* output buffer too small; *needed says how big */
    MP_EINVAL = -8      /* invalid argument */
} mp_status;

/* One reading of the process's memory, in bytes; MP_NONE where unknown. */
typedef struct mp_usage {
    int64_t rss;        /* resident set size */
    int64_t uss;        /* unique set size: private clean + private dirty */
    int64_t swap;       /* swapped-out bytes */
    int64_t peak_rss;   /* highest rss since the last reset_peak (or ever) */
} mp_usage;

/*
 * Where readings come from.  quick() must be cheap (a syscall or two): it
 * fills rss and peak_rss.  full() may be slow (it may read
 * smaps_rollup, whose cost grows with resident memory): it fills uss and
 * swap.  reset_peak(), which may be NULL, starts a new peak window: after
 * it, peak_rss is the highest rss since that call.  Without it peak_rss is
 * the process's lifetime peak.  All return 0 on success, nonzero on
 * failure.
 */
typedef struct mp_sampler {
    int (*quick)(void *ctx, mp_usage *out);
    int (*full)(void *ctx, mp_usage *out);
    int (*reset_peak)(void *ctx);
    void *ctx;
} mp_sampler;

/* Linux /proc sampler (sample.c).  dir is normally "/proc/self". */
typedef struct mp_proc mp_proc;
int mp_proc_open(const char *dir, mp_proc **out);
void mp_proc_close(mp_proc *p);
void mp_proc_sampler(mp_proc *p, mp_sampler *out);
int mp_proc_quick(void *p, mp_usage *out);
int mp_proc_full(void *p, mp_usage *out);
int mp_proc_reset_peak(void *p);          /* write 5 to clear_refs */

/* Per-callsite aggregate, as copied out by mp_records. */
typedef struct mp_record {
    int32_t code_id;    /* the id the caller gave mp_call for the frame */
    int32_t lineno;
    int64_t uss;        /* after the line's last execution */
    int64_t swap;       /* after the line's last execution */
    int64_t peak_rss;   /* highest rss while the line ran (see mp_peak_per_line) */
    int64_t hits;       /* executions */
    int64_t increment;  /* sum over executions of (uss after - uss before) */
} mp_record;

/* Line tracer (tracer.c).  One per traced thread; not thread-safe. */
typedef struct mp_tracer mp_tracer;
int mp_tracer_new(const mp_sampler *sampler, int64_t period_ns, mp_tracer **out);
void mp_tracer_free(mp_tracer *t);
int mp_start(mp_tracer *t);                 /* first reading; call before any event */
void mp_call(mp_tracer *t, int32_t code_id); /* a traced frame starts or resumes;
                                               code_id < 0: a muted frame, whose
                                               lines are ignored */
void mp_line(mp_tracer *t, int32_t lineno);  /* a line starts in the newest frame */
void mp_return(mp_tracer *t);               /* the newest frame returns or yields */
int mp_finish(mp_tracer *t);                /* close open lines, take a last full reading */
int mp_merge(mp_tracer *dst, const mp_tracer *src); /* add src's callsites into dst */
int mp_peak_per_line(const mp_tracer *t);   /* 1: peaks per line; 0: lifetime peaks */
int mp_error(const mp_tracer *t);           /* first failure, or MP_OK */
int mp_error_errno(const mp_tracer *t);     /* errno that went with it, or 0 */
size_t mp_count(const mp_tracer *t);        /* distinct callsites so far */
size_t mp_records(const mp_tracer *t, mp_record *out, size_t n); /* in order of first execution */
size_t mp_footprint(const mp_tracer *t);    /* bytes of heap the tracer holds */

/*
 * The same events for the tracer bound to the calling thread, so the hot
 * path passes one argument or none (cffi then builds no argument tuple):
 * each traced thread binds its own tracer.  Events with nothing bound are
 * ignored.  A tracer freed while another thread has it bound lives on
 * until that thread unbinds or exits.
 */
void mp_bind(mp_tracer *t);                 /* NULL unbinds */
void mp_bound_call(int32_t code_id);
void mp_bound_line(int32_t lineno);
void mp_bound_return(void);

/* Report table (report.c).  Byte fields may be MP_NONE. */
typedef struct mp_row {
    const char *filename;   /* UTF-8 */
    int32_t lineno;
    const char *function;   /* UTF-8 */
    int64_t uss;
    int64_t swap;
    int64_t peak_rss;
    int64_t hits;
    int64_t increment;
} mp_row;
int mp_format(const mp_row *rows, size_t n, char *buf, size_t cap, size_t *needed);

const char *mp_strerror(int status);
/* cffi:end */

#endif /* MEMPULSE_H */
