/*
 * table.c - callsite aggregates in a uthash table.
 *
 * uthash calls exit() on allocation failure unless told otherwise; the core
 * must never exit the user's process, so out-of-memory is reported instead.
 */
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) (oom = 1)

#include "table.h"

static size_t cache_slot(int32_t code_id, int32_t lineno)
{
    /* A function's lines are consecutive numbers: they get distinct slots. */
    return ((uint32_t)lineno + (uint32_t)code_id * 97u) % MP_TABLE_CACHE;
}

mp_site *mp_table_get(mp_table *t, int32_t code_id, int32_t lineno)
{
    mp_site_key key;
    mp_site *site;
    mp_site **slot = &t->cache[cache_slot(code_id, lineno)];
    int oom = 0;

    site = *slot;
    if (site != NULL && site->key.code_id == code_id && site->key.lineno == lineno)
        return site;
    memset(&key, 0, sizeof key);
    key.code_id = code_id;
    key.lineno = lineno;
    HASH_FIND(hh, t->head, &key, sizeof key, site);
    if (site != NULL) {
        *slot = site;
        return site;
    }

    site = calloc(1, sizeof *site);
    if (site == NULL)
        return NULL;
    site->key = key;
    site->uss = MP_NONE;
    site->swap = MP_NONE;
    site->peak_rss = MP_NONE;
    site->max_increment = MP_NONE;
    HASH_ADD(hh, t->head, key, sizeof key, site);
    if (oom) {
        /* uthash left the table as it was; the new entry is ours to free. */
        free(site);
        return NULL;
    }
    *slot = site;
    return site;
}

size_t mp_table_count(const mp_table *t)
{
    return HASH_COUNT(t->head);
}

size_t mp_table_footprint(const mp_table *t)
{
    size_t n = HASH_COUNT(t->head);
    /* HASH_OVERHEAD counts the handles too, which live inside each site. */
    size_t overhead = HASH_OVERHEAD(hh, t->head);
    if (overhead > 0)
        overhead -= n * sizeof(UT_hash_handle);
    return n * sizeof(mp_site) + overhead;
}

void mp_table_clear(mp_table *t)
{
    mp_site *site, *tmp;
    HASH_ITER(hh, t->head, site, tmp) {
        HASH_DEL(t->head, site);
        free(site);
    }
    t->head = NULL;
    memset(t->cache, 0, sizeof t->cache);
}
