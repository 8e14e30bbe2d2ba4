/* The row formats an import reads, from a cm_src stream one row at a time
 * (never the whole source): .fvecs, .npy (float32 '<f4' or uint8 '|u1', C
 * order, shape (rows, dimension)) with optional metadata from a parallel
 * .jsonl, and .jsonl rows of [...] or {"id", "vector", "metadata"}. And the
 * deterministic row ids of an import: row r of a source always gets the
 * same id, so an import written again (resumed, retried) replaces its own
 * records instead of adding copies. */
#ifndef CM_FORMATS_H
#define CM_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "cm_source.h"
#include "types.pb-c.h"

enum { CM_FMT_FVECS = 1, CM_FMT_NPY, CM_FMT_JSONL };

#define CM_FMT_DIM_MAX 65536

/* "fvecs" | "npy" | "jsonl" -> CM_FMT_*, -1 otherwise. */
int cm_fmt_of(const char *s);
/* The format a file name's suffix names, -1 when none does. */
int cm_fmt_guess(const char *name);

/* One import's reading state. The caller sets source, fmt and chunk, then
 * cm_reader_header (fvecs and npy: dim, total, layout), then start_row (and
 * byte / meta_byte for jsonl and metadata: the stream offsets after the rows
 * done) and cm_reader_open; cm_reader_close frees. */
typedef struct cm_reader {
	const char *source;
	int fmt;
	size_t dim;              /* 0 for jsonl until its first row */
	int u8;                  /* npy of uint8 */
	size_t chunk;            /* bytes per range request (0: CM_SRC_CHUNK) */
	uint64_t data_off, row_bytes, total; /* total 0: unknown (jsonl) */
	uint64_t start_row;
	cm_src *src, *meta;
	char *line, *mline;
	size_t cap, mcap;
	uint64_t byte, meta_byte; /* stream offsets after the rows read */
	char err[600];
} cm_reader;

/* Dimension and layout from the first bytes (.fvecs's first row length,
 * .npy's header); 0, or -1 with m->err set. */
int cm_reader_header(cm_reader *m);
/* Opens the source (and the metadata .jsonl when not NULL) where start_row
 * begins; 0, or -1 with m->err set. */
int cm_reader_open(cm_reader *m, const char *metadata);
/* Row `row` (0-based, for messages): its vector into vec (m->dim floats;
 * for jsonl the first row sets dim, and later rows must match), its id
 * into id when the row names one (else id[0] = 0), its metadata (heap, free
 * with cm_json_metadata_free; NULL when none). 1 a row, 0 the end, -1 an
 * error (m->err says which row and why). */
int cm_reader_next(cm_reader *m, uint64_t row, float *vec, char *id, Muri__V1__Metadata **meta);
void cm_reader_close(cm_reader *m);

/* A UUIDv4-shaped id derived from (collection, namespace, row): the same
 * row of the same source gets the same id on every run and on every
 * importer (the muri command, the gateway). */
void cm_import_row_id(char out[37], const char *collection, const char *ns, uint64_t row);

#endif
