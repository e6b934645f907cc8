/*
 * table.h - per-callsite aggregates, private to the core.
 *
 * A callsite is (code_id, lineno).  Entries are allocated one by one, so a
 * pointer to an entry stays valid while the table lives: the tracer keeps
 * one per open line instead of looking the line up again when it closes.
 */
#ifndef MEMPULSE_TABLE_H
#define MEMPULSE_TABLE_H

#include "mempulse.h"
#include "uthash.h"

typedef struct mp_site_key {
    int32_t code_id;
    int32_t lineno;
} mp_site_key;

typedef struct mp_site {
    mp_site_key key;
    int64_t uss;
    int64_t swap;
    int64_t peak_rss;
    int64_t hits;
    int64_t increment;
    int64_t max_increment;  /* MP_NONE until an execution had both readings */
    int64_t anon_inc;       /* 0 while unknown: the tracer knows whether */
    int64_t file_inc;
    int64_t shmem_inc;
    int64_t seen_ns;    /* time of the reading behind uss and swap */
    UT_hash_handle hh;
} mp_site;

/* Direct-mapped cache in front of the hash: a loop's few lines hit it on
 * every event, which saves hashing the key (a third of mp_line's cost). */
#define MP_TABLE_CACHE 256

typedef struct mp_table {
    mp_site *head;  /* uthash head; iteration follows insertion order */
    mp_site *cache[MP_TABLE_CACHE];
} mp_table;

/* Find the callsite, adding it (zeroed) if new; NULL when out of memory. */
mp_site *mp_table_get(mp_table *t, int32_t code_id, int32_t lineno);
size_t mp_table_count(const mp_table *t);
size_t mp_table_footprint(const mp_table *t);
void mp_table_clear(mp_table *t);

#endif /* MEMPULSE_TABLE_H */
