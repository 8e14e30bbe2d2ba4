/* One fragment of a Magu on local disk: the append-only write log in SQLite
 * (WAL, synchronous=FULL; the truth), its Merkle log, the current state
 * (id -> version, the seq that wrote it, deleted), the metadata tables, and a
 * FAISS index kept up to date by a background thread in batches aligned to
 * sequence numbers, so that the same log prefix gives the same index.
 *
 * Thread safety: appends, truncations and floor changes are serialized
 * internally; searches, gets, roots and proofs may run concurrently with
 * them and with each other from any number of threads. Searches see every
 * acknowledged append: what the index does not cover yet is searched exactly. */
#ifndef IX_FRAGMENT_H
#define IX_FRAGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_arena.h"
#include "cm_merkle.h"
#include "ix_filter.h"
#include "ix_index.h"
#include "ix_record.h"
#include "indexer.pb-c.h"

typedef struct ix_fragment ix_fragment;

/* Limits and tuning. Zero fields take the defaults of ix_options_default(),
 * except persist_interval_ms, where 0 means "save at close only", and
 * trim_interval_ms, where 0 means "never".
 * batch, seed, tombstone_share, exact_threshold, exact_share, train_min,
 * train_max and rerank shape the index and its answers: they are fixed when
 * a fragment is created and stored with it (replicas must agree on them; a
 * Magu's come from its IndexSpec on chain, ix_options_shape_from_pb), and
 * later values are ignored. */
typedef struct ix_options {
	uint32_t batch;              /* records per index batch [jB, (j+1)B); 256 */
	double tombstone_share;      /* rebuild when dead/indexed exceeds it at a batch boundary; 0.2 */
	uint32_t exact_threshold;    /* filters matching at most this many indexed vectors search exactly; 4096 */
	double exact_share;          /* ... or fewer than this share of the index; 0.02 */
	uint32_t max_k;              /* largest top_k; 1000 */
	uint32_t max_append;         /* records per append; 10000 */
	uint32_t max_get;            /* ids per get; 10000 */
	uint32_t train_min;          /* vectors before a trainable index is trained; ix_spec_train_min */
	uint32_t train_max;          /* training sample (strided over the live vectors); 256 per list */
	uint32_t persist_interval_ms; /* save the index this often while it changes (0: at close only); 60000 */
	uint32_t readers;            /* SQLite connections for concurrent reads; 8 */
	uint32_t rerank;             /* quantized indexes: candidates per k re-ranked exactly; 4 */
	uint64_t seed;               /* HNSW level seed */
	uint64_t postings_max_bytes; /* in-memory filter postings; past it filters read SQLite; 256 MiB */
	uint32_t trim_interval_ms;   /* when an indexer catches up, give the heap's free memory back
				      * (malloc_trim), at most this often per process (0: never); 1000 */
	uint32_t index_nice;         /* the indexer thread's (and its build threads') nice value, so
				      * writes and searches get the cores first; 0 */
} ix_options;

void ix_options_default(ix_options *o);
/* Sets the fields that shape the index from IndexSpec fields 9-16 (index
 * may be NULL): a 0 there takes ix_options_default's value (train_min and
 * train_max: derived from the spec), never this node's own setting, so
 * every replica of a fragment uses the same ones. Limits as the ledger
 * checks them, naming the field ("schema.index.rerank"). The other fields
 * of *o are left alone. */
int ix_options_shape_from_pb(const Muri__V1__IndexSpec *index, ix_options *o, char *err, size_t errlen);
/* Fills IndexSpec fields 9-16 with the shaping options f was created with. */
void ix_fragment_shape_to_pb(const ix_fragment *f, Muri__V1__IndexSpec *index);

/* Opens the fragment stored in dir (created with mode 0700 if missing).
 * spec: the schema of a new fragment, or NULL to open an existing one; for
 * an existing fragment it must equal the stored schema except ef_search and
 * nprobe, which are updated. opt may be NULL. Loads the saved index if it is
 * consistent with the log, otherwise rebuilds it in the background (searches
 * are exact meanwhile). *out is owned by the caller: ix_fragment_close(). */
int ix_fragment_open(const char *dir, const ix_spec *spec, const ix_options *opt, ix_fragment **out,
		     char *err, size_t errlen);
/* Stops the indexer, saves the index if it changed, releases everything.
 * No other call on f may be in flight. Accepts NULL. */
void ix_fragment_close(ix_fragment *f);

/* Appends n records whose seqs are size, size+1, ... (CM_ERR_RANGE
 * otherwise) and whose epochs do not decrease (CM_ERR_STATE); each is
 * validated (CM_ERR_INVALID naming records[i] and the field). Returns once
 * the records are durable; they are then visible to every search. A record
 * changes the state only if its version is >= the id's current version (the
 * later record wins a tie); older ones are logged and ignored. All or none
 * are appended. */
int ix_fragment_append(ix_fragment *f, const ix_record *recs, size_t n, char *err, size_t errlen);
/* The same with each record's canonical bytes (leaves[i], lens[i] bytes:
 * ix_record_encode's) and leaf hash given, as replication holds them, so
 * they are not computed again. */
int ix_fragment_append_encoded(ix_fragment *f, const ix_record *recs, size_t n, const uint8_t *const *leaves,
			       const size_t *lens, const uint8_t (*hashes)[CM_MERKLE_HASH_BYTES], char *err,
			       size_t errlen);

/* Drops the records from seq size on (an old primary's unacknowledged
 * suffix), restoring the state they replaced. CM_ERR_STATE below the floor,
 * CM_ERR_RANGE beyond the log. */
int ix_fragment_truncate(ix_fragment *f, uint64_t size, char *err, size_t errlen);
/* Raises the persisted floor below which truncation is refused (e.g. to a
 * committed root's size); it never goes down. CM_ERR_RANGE beyond the log. */
int ix_fragment_set_floor(ix_fragment *f, uint64_t min_size);

uint64_t ix_fragment_size(ix_fragment *f);
/* Records of complete index batches the index does not cover yet: the work
 * the indexer has before it (the partial batch at the end, fewer than the
 * batch size, is always searched exactly and not counted). */
uint64_t ix_fragment_backlog(ix_fragment *f);
/* The leaf hash of record seq (the Merkle log's, in memory). CM_ERR_RANGE beyond the log. */
int ix_fragment_leaf_hash(ix_fragment *f, uint64_t seq, uint8_t out[CM_MERKLE_HASH_BYTES]);
/* The root of the first size records (RFC 9162 MTH). CM_ERR_RANGE beyond the log. */
int ix_fragment_root(ix_fragment *f, uint64_t size, uint8_t out[CM_MERKLE_HASH_BYTES]);
int ix_fragment_inclusion(ix_fragment *f, uint64_t index, uint64_t size, cm_merkle_path *path);
int ix_fragment_consistency(ix_fragment *f, uint64_t old_size, uint64_t new_size, cm_merkle_path *path);
/* The canonical bytes of record index, copied into a. */
int ix_fragment_leaf(ix_fragment *f, uint64_t index, cm_arena *a, uint8_t **leaf, size_t *len);
/* Up to max records from seq from on, decoded into a (FetchLog). */
int ix_fragment_read(ix_fragment *f, uint64_t from, uint32_t max, cm_arena *a, ix_record **recs,
		     size_t *n);

/* A current version of an id, as search and get return it. */
typedef struct ix_hit {
	uint8_t id[IX_ID_BYTES];
	float distance;          /* 0 from get */
	uint64_t version;
	uint64_t seq;            /* the log record that wrote this version */
	uint32_t dim;            /* 0 unless vectors were asked for (HAMMING: bits) */
	const float *vec;        /* as written (not normalized) */
	const uint8_t *bin;      /* HAMMING: dim / 8 bytes, in place of vec */
	uint32_t nfields;
	const ix_field *fields;
} ix_hit;

typedef struct ix_query {
	const float *vec;
	uint32_t dim;            /* values, or bits of bin */
	const uint8_t *bin;      /* HAMMING: the packed query (dim / 8 bytes), in place of vec */
	uint32_t k;              /* 1..max_k */
	const ix_filter *filter; /* NULL or empty: none */
	int include_vectors;
} ix_query;

typedef struct ix_result {
	ix_hit *hits;            /* nearest first; ties by seq */
	size_t n;
	uint64_t log_size;       /* the log size the answer reflects */
	uint8_t root[CM_MERKLE_HASH_BYTES]; /* the Merkle root at log_size */
	double search_s, hits_s;  /* time in the index and reading the hits' records */
} ix_result;

/* The k nearest live vectors satisfying the filter. Hits and everything
 * they point to are allocated in a. With a filter, k hits come back whenever
 * k live vectors match. CM_ERR_INVALID names the field (query.vector, top_k). */
int ix_fragment_search(ix_fragment *f, const ix_query *q, cm_arena *a, ix_result *out, char *err,
		       size_t errlen);
/* The current versions of the given ids, skipping missing and deleted ones,
 * in request order; allocated in a. */
int ix_fragment_get(ix_fragment *f, const uint8_t (*ids)[IX_ID_BYTES], size_t nids, int include_vectors,
		    cm_arena *a, ix_hit **hits, size_t *n, char *err, size_t errlen);
/* A page of live records in ascending id order (ix_scroll.c). */
typedef struct ix_scroll_query {
	const uint8_t *after;    /* IX_ID_BYTES: start above this id; NULL: from the first */
	uint32_t limit;          /* hits at most, 1..max_get */
	uint32_t scan_max;       /* live records examined at most, >= 1 */
	const ix_filter *filter; /* NULL or empty: none */
	int include_vectors;
} ix_scroll_query;

typedef struct ix_scroll_result {
	ix_hit *hits;            /* ascending id; distance 0 */
	size_t n;
	uint64_t log_size;       /* the snapshot's log size */
	uint8_t root[CM_MERKLE_HASH_BYTES]; /* the Merkle root at log_size */
	int done;                /* no live record above last (or after, when none was examined) */
	int has_last;
	uint8_t last[IX_ID_BYTES]; /* the last id examined */
} ix_scroll_result;

/* The first q->limit live records above q->after that satisfy q->filter,
 * examining at most q->scan_max, read from one snapshot whose log size and
 * root are returned; hits allocated in a. CM_ERR_INVALID names limit or
 * scan_max; CM_ERR_TIMEOUT when writes kept the snapshot from settling. */
int ix_fragment_scroll(ix_fragment *f, const ix_scroll_query *q, cm_arena *a, ix_scroll_result *out, char *err,
		       size_t errlen);
/* A Hit message built in a, referring to h's memory. */
int ix_hit_to_pb(const ix_hit *h, cm_arena *a, Muri__V1__Hit **out);

typedef struct ix_fragment_info {
	ix_spec spec;
	uint32_t batch;
	uint64_t size;
	uint64_t last_epoch;     /* of the last record, 0 when empty */
	uint64_t floor;
	uint64_t live;           /* ids with a current, not deleted version */
	uint64_t indexed;        /* seqs below this are covered by the index */
	uint64_t index_vectors;  /* vectors in the FAISS index, live or not */
	uint64_t index_dead;     /* of which superseded or deleted now */
	uint64_t rebuilds;       /* index rebuilds (and trainings) since open */
	uint64_t saved;          /* seq coverage of the saved index file, 0: none */
	int trained;             /* 0 while a trainable index waits for data */
	int index_failed;        /* the indexer stopped on an error (index_error) */
	char index_error[256];
	int postings_on;         /* filters read in-memory postings (0: the SQLite tables) */
	uint64_t postings_bytes, postings_entries;
	/* filtered searches since open whose filter the graph walk tested per
	 * position (compiled), and those searched over the set of matching
	 * positions (few matches, or the walk came back short) */
	uint64_t filter_compiled, filter_sets;
} ix_fragment_info;

void ix_fragment_info_get(ix_fragment *f, ix_fragment_info *out);
/* Waits until the indexer has covered every complete batch and has nothing
 * left to do. CM_ERR_TIMEOUT after timeout_ms, CM_ERR_STATE if it failed. */
int ix_fragment_wait_indexed(ix_fragment *f, int timeout_ms);
/* Saves the index now if it changed since the last save (from any thread). */
int ix_fragment_save_index(ix_fragment *f, char *err, size_t errlen);

#endif
