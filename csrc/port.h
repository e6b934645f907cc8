/*
 * port.h - the few operating-system services the portable core needs:
 * thread-local storage, a statically initialized mutex, run-once, a
 * per-thread exit hook, fork hooks, the process id, a monotonic clock and
 * the TSC.  POSIX (Linux, macOS) and Windows; private to the core.
 *
 * Only sample.c needs Linux itself (/proc); everything else goes through
 * this header so table.c, tracer.c, meter.c and report.c compile anywhere.
 */
#ifndef MEMPULSE_PORT_H
#define MEMPULSE_PORT_H

#include <stdint.h>

#if defined(_WIN32)
#define MP_WINDOWS 1
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN 1
#endif
#include <windows.h>
#else
#include <pthread.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <x86intrin.h>
#endif
#define MP_HAVE_TSC 1
#endif

/* Thread-local storage class. */
#if defined(_MSC_VER)
#define MP_THREAD_LOCAL __declspec(thread)
#else
#define MP_THREAD_LOCAL __thread
#endif

/* A mutex that needs no run-time initialization. */
#ifdef MP_WINDOWS
typedef SRWLOCK mp_mutex;
#define MP_MUTEX_INIT SRWLOCK_INIT
static inline void mp_mutex_lock(mp_mutex *m) { AcquireSRWLockExclusive(m); }
static inline int mp_mutex_trylock(mp_mutex *m) { return TryAcquireSRWLockExclusive(m) ? 0 : -1; }
static inline void mp_mutex_unlock(mp_mutex *m) { ReleaseSRWLockExclusive(m); }
/* Windows has no fork: nothing ever needs re-initializing. */
static inline void mp_mutex_reinit(mp_mutex *m) { InitializeSRWLock(m); }
#else
typedef pthread_mutex_t mp_mutex;
#define MP_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
/* pthread_mutex_lock on a valid, non-recursive, initialized mutex cannot
 * fail; its result is ignored by design. */
static inline void mp_mutex_lock(mp_mutex *m) { (void)pthread_mutex_lock(m); }
static inline int mp_mutex_trylock(mp_mutex *m) { return pthread_mutex_trylock(m) == 0 ? 0 : -1; }
static inline void mp_mutex_unlock(mp_mutex *m) { (void)pthread_mutex_unlock(m); }
/* In a forked child: the thread that held the mutex does not exist there. */
static inline void mp_mutex_reinit(mp_mutex *m)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    *m = fresh;
}
#endif

/* Run init once per process; returns 0, or -1 if the system refused. */
#ifdef MP_WINDOWS
typedef INIT_ONCE mp_once;
#define MP_ONCE_INIT INIT_ONCE_STATIC_INIT
typedef struct mp_once_fn { void (*fn)(void); } mp_once_fn;
static inline BOOL CALLBACK mp_once_trampoline(PINIT_ONCE once, PVOID arg, PVOID *ctx)
{
    (void)once;
    (void)ctx;
    ((mp_once_fn *)arg)->fn();
    return TRUE;
}
static inline int mp_run_once(mp_once *once, void (*init)(void))
{
    mp_once_fn f;
    f.fn = init;
    return InitOnceExecuteOnce(once, mp_once_trampoline, &f, NULL) ? 0 : -1;
}
#else
typedef pthread_once_t mp_once;
#define MP_ONCE_INIT PTHREAD_ONCE_INIT
static inline int mp_run_once(mp_once *once, void (*init)(void))
{
    return pthread_once(once, init) == 0 ? 0 : -1;
}
#endif

/* A per-thread value with a destructor run when the thread exits. */
#ifdef MP_WINDOWS
typedef DWORD mp_key;
static inline int mp_key_create(mp_key *k, void (*dtor)(void *))
{
    *k = FlsAlloc((PFLS_CALLBACK_FUNCTION)dtor);
    return *k == FLS_OUT_OF_INDEXES ? -1 : 0;
}
static inline int mp_key_set(mp_key k, void *v) { return FlsSetValue(k, v) ? 0 : -1; }
#else
typedef pthread_key_t mp_key;
static inline int mp_key_create(mp_key *k, void (*dtor)(void *))
{
    return pthread_key_create(k, dtor) == 0 ? 0 : -1;
}
static inline int mp_key_set(mp_key k, void *v) { return pthread_setspecific(k, v) == 0 ? 0 : -1; }
#endif

/* Hook run in the child after fork (nothing to do where there is no fork). */
static inline int mp_atfork_child(void (*child)(void))
{
#ifdef MP_WINDOWS
    (void)child;
    return 0;
#else
    return pthread_atfork(NULL, NULL, child) == 0 ? 0 : -1;
#endif
}

#ifndef MP_WINDOWS
/* glibc's getpid() is a system call; every reading checks the pid (fork
 * safety), so it is cached, and forgotten in a forked child by an atfork
 * hook registered before the first value is cached.  Function-local
 * statics: one cache per translation unit, no unused-variable warnings. */
static inline int64_t *mp_pid_slot(void)
{
    static int64_t pid;     /* 0: not cached */
    return &pid;
}
static inline int *mp_pid_hooked(void)
{
    static int state;       /* 0 no hook, 1 being registered, 2 registered */
    return &state;
}
static inline void mp_pid_forget(void)
{
    __atomic_store_n(mp_pid_slot(), 0, __ATOMIC_RELAXED);
}
#endif

static inline int64_t mp_getpid(void)
{
#ifdef MP_WINDOWS
    return (int64_t)GetCurrentProcessId();
#else
    int64_t pid = __atomic_load_n(mp_pid_slot(), __ATOMIC_RELAXED);
    int expected = 0;
    if (pid != 0)
        return pid;
    pid = (int64_t)getpid();
    if (__atomic_load_n(mp_pid_hooked(), __ATOMIC_ACQUIRE) == 2) {
        __atomic_store_n(mp_pid_slot(), pid, __ATOMIC_RELAXED);
    } else if (__atomic_compare_exchange_n(mp_pid_hooked(), &expected, 1, 0,
                                           __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        if (pthread_atfork(NULL, NULL, mp_pid_forget) == 0)
            __atomic_store_n(mp_pid_hooked(), 2, __ATOMIC_RELEASE);
        /* else: never cached, every call asks the kernel */
    }
    return pid;
#endif
}

/* Monotonic nanoseconds. */
static inline int64_t mp_now_ns(void)
{
#ifdef MP_WINDOWS
    static LARGE_INTEGER freq;
    LARGE_INTEGER c;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);   /* cannot fail since XP */
    QueryPerformanceCounter(&c);
    return (int64_t)((double)c.QuadPart * 1e9 / (double)freq.QuadPart);
#else
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;   /* CLOCK_MONOTONIC exists everywhere we build */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

static inline uint64_t mp_ticks(void)
{
#ifdef MP_HAVE_TSC
    return __rdtsc();
#else
    return 0;
#endif
}

#endif /* MEMPULSE_PORT_H */
