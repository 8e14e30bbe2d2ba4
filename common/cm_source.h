/* A byte stream an import reads from: a local path or file:// URL, an
 * http(s):// URL read in Range requests of a bounded size (never the whole
 * body at once), or s3://BUCKET/KEY signed with SigV4 by libcurl. Each range
 * is retried with exponential backoff. Opened at any offset, for resuming.
 * `muri import` and the gateway's Import read through it. */
#ifndef CM_SOURCE_H
#define CM_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CM_SRC_CHUNK (4u << 20)  /* bytes per range request by default */
#define CM_SRC_CHUNK_MAX (64u << 20)
#define CM_SRC_RETRIES 6         /* attempts per range beyond the first */
#define CM_SRC_BACKOFF_MS 200    /* first wait; doubles, at most 10 s */

typedef struct cm_src cm_src;

/* Opens source at byte offset, reading URLs in ranges of chunk bytes (0:
 * CM_SRC_CHUNK); *out owned by the caller. */
int cm_src_open(const char *source, uint64_t offset, size_t chunk, cm_src **out, char *err, size_t errlen);
/* The whole source's size in bytes, -1 when unknown. */
int64_t cm_src_size(const cm_src *s);
/* Reads up to n bytes (fewer only at the end); 0 at the end, -1 on error
 * (cm_src_error says why). */
ssize_t cm_src_read(cm_src *s, void *buf, size_t n);
/* Reads one line (without its '\n') into a growing buffer; returns its
 * length, -1 at the end with nothing read, -2 on error. *consumed gets the
 * bytes taken from the stream, newline included. */
ssize_t cm_src_line(cm_src *s, char **line, size_t *cap, size_t *consumed);
const char *cm_src_error(const cm_src *s);
void cm_src_close(cm_src *s);
/* The last path component of the source, without a query: the namespace of
 * an import's row ids, the same for a file and its URL. */
void cm_src_name(const char *source, char *out, size_t len);

#endif
