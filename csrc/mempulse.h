/*
 * mempulse.h - the whole interface of the mempulse C core.
 *
 * The core has no Python headers: the Python layer reaches it through cffi
 * (build_ffi.py reads the declarations between the two "cffi" markers below,
 * so they must stay in the plain-C subset that cffi's cdef parser accepts).
 *
 * Data path: a process-wide meter (one per kind of sampler) takes readings
 * through an mp_sampler; each traced thread has a tracer that gets one call
 * per Python event (mp_call, mp_line, mp_return), asks the meter for a
 * reading when memory may have changed, and charges what it saw to the line
 * that just finished.  mp_records copies the per-callsite aggregates out;
 * mp_format turns rows into the report table.
 *
 * Every function that can fail returns an mp_status; the tracer's event
 * functions return nothing (they sit on the hot path) and keep the first
 * real failure (out of memory, a sampler failure) as a sticky error that
 * mp_error reports.  Events that make no sense in the tracer's state (a
 * line or return with no frame, anything before mp_start or after
 * mp_finish) are ignored and counted by mp_dropped: threads still running
 * when a trace ends and generator or coroutine oddities must not turn into
 * failures.
 *
 * Threads.  Which calls may run concurrently:
 *   - meter (mp_meter_*): any thread, any time; readings are serialized by
 *     the meter's mutex.  mp_meter_free only once no tracer uses it.
 *   - tracer: one writer.  mp_start, the events and mp_finish come from the
 *     thread that owns it (through mp_bind, its bound thread), or from
 *     another thread that excludes the owner's events by a lock of its own
 *     (the Python layer's session lock).  mp_merge, mp_records, mp_series, mp_count,
 *     mp_error, mp_uss_age_ns and mp_dropped read a finished tracer and
 *     may run on any thread once mp_finish returned.  mp_tracer_free may be
 *     called by any thread after mp_finish, even while the bound thread
 *     still sends events: those are ignored, and the memory lives on until
 *     that thread unbinds or exits (the calling thread's own binding of t,
 *     if any, is undone by the free).  But mp_bind(t) must come before
 *     mp_tracer_free(t) (the caller orders them: the Python layer binds
 *     under the trace's lock, which it frees under): a tracer bound after
 *     it was freed is freed memory.
 *   - mp_proc_*: through a meter only (its mutex serializes them).
 *   - mp_format, mp_strerror: any thread.
 * A forked child may use the meter at once: its state (anchor, peaks,
 * running tracers) belongs to the parent and is dropped at the child's first
 * reading; the /proc sampler reopens its files; mutexes held by other
 * threads at fork are re-initialized in the child.
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
    MP_ESTATE = -6,     /* mp_start twice, or mp_finish without mp_start */
    MP_ERANGE = -7,     /* output buffer too small; *needed says how big */
    MP_EINVAL = -8,     /* invalid argument */
    MP_EAGAIN = -9      /* no reading this time (another thread's was under way,
                           or a sampler callback was interrupted): not an error */
} mp_status;

/* One reading of the process's memory, in bytes; MP_NONE where unknown. */
typedef struct mp_usage {
    int64_t rss;        /* resident set size */
    int64_t uss;        /* unique set size: private clean + private dirty */
    int64_t swap;       /* swapped-out bytes */
    int64_t peak_rss;   /* highest rss since the last reset_peak (or ever) */
    int64_t anon;       /* resident anonymous memory (heap, stacks, private mappings) */
    int64_t file;       /* resident file-backed memory (mmap'd files, code of libraries) */
    int64_t shmem;      /* resident shared memory (shm_open, /dev/shm, MAP_SHARED|MAP_ANONYMOUS) */
} mp_usage;

/*
 * Where readings come from.  quick() must be cheap (a syscall or two): it
 * fills rss and peak_rss, and anon, file and shmem where it can (the
 * meter sets every field to MP_NONE first; anon + file + shmem = rss).
 * full() may be slow (it may read smaps_rollup, whose cost grows with
 * resident memory): it fills uss and swap.
 * reset_peak(), which may be NULL, starts a new peak window: after it,
 * peak_rss is the highest rss since that call.  Without it peak_rss is the
 * process's lifetime peak.  All return 0 on success, MP_EAGAIN to skip this
 * reading without failing (an interrupted callback), other nonzero on
 * failure.  serial: 1 when the callbacks never wait for anything another
 * thread may hold (C, /proc), so a reading may wait for another thread's;
 * 0 when they do (Python callbacks need the GIL), so a reading that finds
 * another under way is skipped instead.
 */
typedef struct mp_sampler {
    int (*quick)(void *ctx, mp_usage *out);
    int (*full)(void *ctx, mp_usage *out);
    int (*reset_peak)(void *ctx);
    void *ctx;
    int serial;
} mp_sampler;

/*
 * The process-wide meter: one per process per kind of sampler, shared by
 * every tracer of every thread.  It keeps the USS anchor (the last full
 * reading), the process-wide budget for full readings (at most 1% of wall
 * time), the per-line peak resets and the lifetime peak: the process's
 * highest rss as it was before our first reset, maxed with every window
 * since, so the user loses nothing to the resets.  Every running tracer
 * gets the peak of every window since its own last reading, whichever
 * thread took the readings.  mp_meter_new makes no system call and takes
 * no reading.
 */
typedef struct mp_meter mp_meter;
int mp_meter_new(const mp_sampler *sampler, mp_meter **out);
void mp_meter_free(mp_meter *m);
int mp_meter_peak_per_line(const mp_meter *m);  /* 1 per-line peaks, 0 lifetime peaks */
int64_t mp_meter_lifetime_peak(mp_meter *m);     /* bytes or MP_NONE; takes a quick
                                                    reading, resets nothing */
int64_t mp_meter_known_peak(const mp_meter *m);  /* the same as far as the readings
                                                    so far tell; takes none */
/* One reading outside any trace: rss, uss (fresh if full, else from the
 * anchor), swap, the kinds, and peak_rss = the lifetime peak. */
int mp_meter_read(mp_meter *m, int full, mp_usage *out);

/* Linux /proc sampler (sample.c).  dir is normally "/proc/self".  Opens
 * its files (the only I/O: it writes nothing); each reading reopens them in
 * a forked child.  On failure *err (when not NULL) is the errno behind it,
 * else 0: the API-mode binding does not carry errno across calls.
 * Elsewhere mp_proc_open fails: MP_ESTATM, errno ENOSYS. */
typedef struct mp_proc mp_proc;
int mp_proc_open(const char *dir, mp_proc **out, int *err);
void mp_proc_close(mp_proc *p);
void mp_proc_sampler(mp_proc *p, mp_sampler *out);  /* serial = 1 */
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
    int64_t max_increment;   /* largest (uss after - uss before) of one execution */
    int64_t anon_increment;  /* sums over executions of the change in resident */
    int64_t file_increment;  /* anonymous / file-backed / shared memory; MP_NONE */
    int64_t shmem_increment; /* when the sampler cannot tell */
} mp_record;

/*
 * Memory over time: every reading a tracer takes (time, rss, uss estimate,
 * the innermost line open then) goes into a series of at most
 * MP_SERIES_MAX points however long the run.  When full, neighbours are
 * merged two by two, keeping the one with the higher rss, and later
 * readings are folded the same way; the first and the latest reading and
 * the highest rss are always kept.  Times are ns since the tracer's first
 * mp_start (for a tracer that was only merged into: the earliest start).
 */
#define MP_SERIES_MAX 4096
typedef struct mp_point {
    int64_t time_ns;
    int64_t rss;
    int64_t uss;        /* MP_NONE where unknown */
    int32_t code_id;    /* the line's frame as given to mp_call, or -1: no line open */
    int32_t lineno;
} mp_point;

/* Line tracer (tracer.c).  One per traced thread; see "Threads" above. */
typedef struct mp_tracer mp_tracer;
int mp_tracer_new(mp_meter *meter, int64_t period_ns, mp_tracer **out);
void mp_tracer_free(mp_tracer *t);
int mp_start(mp_tracer *t);                 /* a quick reading (full only without an
                                               anchor or on budget); before any event */
void mp_call(mp_tracer *t, int32_t code_id); /* a traced frame starts or resumes;
                                               code_id < 0: a muted frame, whose
                                               lines are ignored */
void mp_line(mp_tracer *t, int32_t lineno);  /* a line starts in the newest frame */
void mp_return(mp_tracer *t);               /* the newest frame returns or yields */
int mp_finish(mp_tracer *t);                /* a last reading (full on budget); close open lines */
int mp_merge(mp_tracer *dst, const mp_tracer *src); /* add src's callsites and series
                                               into dst (series: time-ordered, re-bounded) */
int mp_peak_per_line(const mp_tracer *t);   /* 1: peaks per line; 0: lifetime peaks */
int mp_error(const mp_tracer *t);           /* first failure, or MP_OK */
int mp_error_errno(const mp_tracer *t);     /* errno that went with it, or 0 */
int64_t mp_uss_age_ns(const mp_tracer *t);  /* after mp_finish: age of the full reading
                                               its final USS derives from; -1 unknown */
int64_t mp_dropped(const mp_tracer *t);     /* events ignored as out of order */
size_t mp_count(const mp_tracer *t);        /* distinct callsites so far */
size_t mp_records(const mp_tracer *t, mp_record *out, size_t n); /* in order of first execution */
size_t mp_series_count(const mp_tracer *t); /* points mp_series would copy, <= MP_SERIES_MAX */
size_t mp_series(const mp_tracer *t, mp_point *out, size_t n); /* in time order; returns
                                               how many were copied */
size_t mp_footprint(const mp_tracer *t);    /* bytes of heap the tracer holds */

/*
 * The same, for callers that pay per call (the Python layer pays ~1 us per
 * cffi call, a dozen per traced block otherwise).
 * mp_tracer_make: mp_tracer_new's tracer, or NULL (out of memory, or an
 * invalid argument).  mp_begin: mp_start, then, if it succeeded, bind t to
 * the calling thread and, with code_id >= 0, mp_call(t, code_id) (the root
 * frame); on failure nothing is bound.
 * mp_result: a finished tracer's whole result in one copy of
 * mp_result_size(t) bytes into out (any alignment): MP_RESULT_HEAD int64
 * values (the MP_RESULT_* indexes below), then the records as mp_records
 * copies them, then the series as mp_series does.  Returns the bytes
 * written: 0 when cap is too small.
 */
mp_tracer *mp_tracer_make(mp_meter *meter, int64_t period_ns);
int mp_begin(mp_tracer *t, int32_t code_id);
#define MP_RESULT_STATUS 0      /* mp_error */
#define MP_RESULT_ERRNO 1       /* mp_error_errno */
#define MP_RESULT_USS_AGE 2     /* mp_uss_age_ns */
#define MP_RESULT_DROPPED 3     /* mp_dropped */
#define MP_RESULT_RECORDS 4     /* records that follow the head */
#define MP_RESULT_POINTS 5      /* points that follow the records */
#define MP_RESULT_PEAK_BEFORE 6 /* the meter's known lifetime peak right after
                                   mp_start's reading (the process's peak
                                   before the trace; MP_NONE unknown) */
#define MP_RESULT_PEAK_PER_LINE 7  /* mp_peak_per_line */
#define MP_RESULT_UNKNOWN 8     /* 1 when some record has an MP_NONE field, else 0 */
#define MP_RESULT_HEAD 9
size_t mp_result_size(const mp_tracer *t);
size_t mp_result(const mp_tracer *t, void *out, size_t cap);

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
    int64_t max_increment;
    int64_t anon_increment;
    int64_t file_increment;
    int64_t shmem_increment;
} mp_row;
/* The table; kinds: 1 shows the anon/file/shmem columns, 0 hides them,
 * -1 shows them when some row has a known value. */
#define MP_KINDS_AUTO -1
int mp_format(const mp_row *rows, size_t n, char *buf, size_t cap, size_t *needed);  /* kinds auto */
int mp_format_table(const mp_row *rows, size_t n, int kinds, char *buf, size_t cap, size_t *needed);

const char *mp_strerror(int status);
/* cffi:end */

#endif /* MEMPULSE_H */
