/*
 * report.c - format rows as the line-by-line table.
 *
 *   Callsite    Method Name        USS  Swap    Peak RSS  Hits  Increment (net)    Max/exec
 *   ------------------------------------------------------------------------------------
 *   demo.py:12  work        26,525,696     0  28,057,600     1       +1,048,576  +1,048,576
 *
 * then, unless hidden, the kinds: "Anon (net)", "File (net)", "Shmem (net)",
 * the sums of the changes in resident anonymous, file-backed and shared
 * memory ("net", like the increment: over all executions).
 * Widths are measured in characters (UTF-8 code points), so non-ASCII paths
 * stay aligned.  Paths under the current directory are shown relative to
 * it; a callsite still wider than CALLSITE_MAX keeps its end (the file name
 * and line) and loses its beginning to "...".
 */
#include "mempulse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CALLSITE_MAX 40
#define NCOLS 11            /* all of them; the last KIND_COLS may be hidden */
#define KIND_COLS 3
#define NUM_MAX 32  /* "-9,223,372,036,854,775,808" plus sign and NUL */

/* Output that counts what it would have written past cap. */
typedef struct out {
    char *buf;
    size_t cap;
    size_t len;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void pad(out *o, size_t n)
{
    while (n-- > 0)
        put(o, " ", 1);
}

static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* Pointer to the last max_chars characters of s (a code-point boundary). */
static const char *tail(const char *s, size_t max_chars)
{
    size_t w = width(s);
    while (w > max_chars) {
        s++;
        while (((unsigned char)*s & 0xC0) == 0x80)
            s++;
        w--;
    }
    return s;
}

/* Decimal with thousands separators; "-" for MP_NONE; "+" if sign asked. */
static void fmt_bytes(char *dst, int64_t v, int sign)
{
    char digits[NUM_MAX];
    char *p = dst;
    uint64_t mag;
    int n, i;

    if (v == MP_NONE) {
        strcpy(dst, "-");
        return;
    }
    mag = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)mag);
    if (v < 0)
        *p++ = '-';
    else if (sign && v > 0)
        *p++ = '+';
    for (i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            *p++ = ',';
        *p++ = digits[i];
    }
    *p = '\0';
}

/* Column i of row r as text into dst (callsite and name point elsewhere). */
static const char *cell(const mp_row *r, int col, char *dst, const char *callsite)
{
    switch (col) {
    case 0: return callsite;
    case 1: return r->function != NULL ? r->function : "";
    case 2: fmt_bytes(dst, r->uss, 0); return dst;
    case 3: fmt_bytes(dst, r->swap, 0); return dst;
    case 4: fmt_bytes(dst, r->peak_rss, 0); return dst;
    case 5: fmt_bytes(dst, r->hits, 0); return dst;
    case 6: fmt_bytes(dst, r->increment, 1); return dst;
    case 7: fmt_bytes(dst, r->max_increment, 1); return dst;
    case 8: fmt_bytes(dst, r->anon_increment, 1); return dst;
    case 9: fmt_bytes(dst, r->file_increment, 1); return dst;
    default: fmt_bytes(dst, r->shmem_increment, 1); return dst;
    }
}

/* filename without the cwd prefix when it lies below cwd. */
static const char *relative(const char *filename, const char *cwd)
{
    size_t n = strlen(cwd);
    if (n > 1 && strncmp(filename, cwd, n) == 0 && filename[n] == '/' && filename[n + 1] != '\0')
        return filename + n + 1;
    return filename;
}

static const char *const HEADERS[NCOLS] = {
    "Callsite", "Method Name", "USS", "Swap", "Peak RSS", "Hits", "Increment (net)", "Max/exec",
    "Anon (net)", "File (net)", "Shmem (net)"
};

static void put_cell(out *o, const char *text, size_t w, int col)
{
    size_t tw = width(text);
    size_t gap = w > tw ? w - tw : 0;
    if (col > 0)
        pad(o, 2);
    if (col >= 2)
        pad(o, gap);  /* numbers align right */
    put(o, text, strlen(text));
    if (col < 2)
        pad(o, gap);
}

static int any_kind(const mp_row *rows, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (rows[i].anon_increment != MP_NONE || rows[i].file_increment != MP_NONE ||
            rows[i].shmem_increment != MP_NONE)
            return 1;
    return 0;
}

int mp_format(const mp_row *rows, size_t n, char *buf, size_t cap, size_t *needed)
{
    return mp_format_table(rows, n, MP_KINDS_AUTO, buf, cap, needed);
}

int mp_format_table(const mp_row *rows, size_t n, int kinds, char *buf, size_t cap, size_t *needed)
{
    int ncols;
    char **callsites;
    size_t widths[NCOLS];
    size_t total = 0;
    char num[NUM_MAX];
    char cwd[4096];
    out o;
    size_t i;
    int c;

    if ((rows == NULL && n > 0) || (buf == NULL && cap > 0) || needed == NULL ||
        kinds < MP_KINDS_AUTO || kinds > 1)
        return MP_EINVAL;
    if (kinds == MP_KINDS_AUTO)
        kinds = any_kind(rows, n);
    ncols = kinds ? NCOLS : NCOLS - KIND_COLS;
    callsites = calloc(n > 0 ? n : 1, sizeof *callsites);
    if (callsites == NULL)
        return MP_ENOMEM;
    if (getcwd(cwd, sizeof cwd) == NULL)
        cwd[0] = '\0';  /* unknown or too long: show paths as given */

    for (c = 0; c < ncols; c++)
        widths[c] = width(HEADERS[c]);
    for (i = 0; i < n; i++) {
        const char *file = rows[i].filename != NULL ? relative(rows[i].filename, cwd) : "?";
        size_t len = strlen(file) + 16;
        char *full = malloc(len);
        const char *shown;
        if (full == NULL) {
            while (i-- > 0)
                free(callsites[i]);
            free(callsites);
            return MP_ENOMEM;
        }
        snprintf(full, len, "%s:%ld", file, (long)rows[i].lineno);
        if (width(full) > CALLSITE_MAX) {
            /* Keep the end, from a path separator if there is one; "..."
             * marks what was cut (at least 4 bytes, so it fits). */
            const char *slash;
            shown = tail(full, CALLSITE_MAX - 3);
            slash = strchr(shown, '/');
            if (slash != NULL)
                shown = slash;
            size_t keep = strlen(shown);
            memmove(full + 3, shown, keep + 1);
            memcpy(full, "...", 3);
        }
        callsites[i] = full;
        for (c = 0; c < ncols; c++) {
            size_t w = width(cell(&rows[i], c, num, full));
            if (w > widths[c])
                widths[c] = w;
        }
    }

    o.buf = buf;
    o.cap = cap;
    o.len = 0;
    for (c = 0; c < ncols; c++) {
        put_cell(&o, HEADERS[c], widths[c], c);
        total += widths[c] + (c > 0 ? 2 : 0);
    }
    put(&o, "\n", 1);
    for (i = 0; i < total; i++)
        put(&o, "-", 1);
    put(&o, "\n", 1);
    for (i = 0; i < n; i++) {
        for (c = 0; c < ncols; c++)
            put_cell(&o, cell(&rows[i], c, num, callsites[i]), widths[c], c);
        put(&o, "\n", 1);
    }

    for (i = 0; i < n; i++)
        free(callsites[i]);
    free(callsites);

    *needed = o.len + 1;
    if (o.len + 1 > cap)
        return MP_ERANGE;
    buf[o.len] = '\0';
    return MP_OK;
}
