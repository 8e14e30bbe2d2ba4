/* Private to the store (lg_store*.c): the connection's struct, the table
 * ids of the write set, the cached statements, typed columns and the row
 * helpers the store's files share. Nothing else includes this. */
#ifndef LG_STORE_INT_H
#define LG_STORE_INT_H

#include "lg_store.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <sqlite3.h>
#include <string.h>

#define SP_MAX 8               /* nested savepoints */

/* Tables whose rows make up the state; their ids are part of the write-set
 * encoding and so of every state root: never renumber. */
enum table {
	T_ACCOUNTS = 1,
	T_UNBONDING = 2,
	T_INDEXERS = 3,
	T_MAGUS = 4,
	T_SLOTS = 5,
	T_FRAGMENTS = 6,
	T_ROOT_VOTES = 7,
	T_FAILOVERS = 8,
	T_CHALLENGES = 9,
	T_PROPOSALS = 10,
	T_VOTES = 11,
	T_PARAMS = 12,
	T_COUNTERS = 13,
	T_REPLICAS = 14,
	T_GATEWAYS = 15,
	T_TXS = 16,
	T_ALLOWANCES = 17,
	T_RECEIPTS = 18,
	T_PAYOUTS = 19,
	T_EARNINGS = 20,
	T_DOUBLE_ROOTS = 21,
	T_ANSWER_FRAUDS = 22,
	T_HANDOVERS = 23,
	T_API_KEYS = 24,
	T_ACCESS = 25,
	T_CELLS = 26,
};


/* Cached statements, prepared on first use. */
enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_META_GET, S_META_PUT,
	S_BLOCK_PUT, S_BLOCK_GET, S_BLOCK_GET_HASH,
	S_SAFETY_PUT, S_SAFETY_GET,
	S_TX_PUT, S_TX_GET,
	S_ACCOUNT_GET, S_ACCOUNT_PUT,
	S_UNBOND_GET, S_UNBOND_PUT, S_UNBOND_DEL, S_UNBOND_DUE, S_UNBOND_OF,
	S_INDEXER_GET, S_INDEXER_PUT, S_INDEXER_KEYS, S_INDEXER_ACTIVE,
	S_MAGU_GET, S_MAGU_PUT, S_MAGU_DEL, S_MAGU_NAMES,
	S_SLOT_PUT, S_SLOT_DEL, S_SLOTS_MAGU, S_SLOTS_HOLDER,
	S_FRAG_GET, S_FRAG_PUT, S_FRAG_DEL, S_FRAGS_OF, S_FRAG_COUNT, S_FRAG_NTH,
	S_RVOTE_PUT, S_RVOTE_DEL, S_RVOTES, S_RVOTE_KEYS,
	S_FAILOVER_PUT, S_FAILOVER_DEL, S_FAILOVERS, S_FAILOVER_KEYS,
	S_CH_GET, S_CH_PUT, S_CH_DUE, S_CH_MAGU, S_CH_OF, S_CH_OF_OPEN,
	S_PROP_GET, S_PROP_PUT, S_PROP_DUE,
	S_VOTE_PUT, S_VOTE_YES,
	S_PARAM_PUT, S_PARAMS,
	S_COUNTER_GET, S_COUNTER_PUT,
	S_REPLICA_PUT, S_REPLICAS,
	S_GATEWAY_PUT, S_GATEWAY_GET,
	S_READ_BEGIN, S_ROOT_PUT, S_ROOT_GET, S_ROOT_GET_BLOCK, S_EFFECTS_PUT, S_EFFECTS_GET,
	S_MAGU_NAMES_AFTER,
	S_ALLOW_GET, S_ALLOW_PUT, S_ALLOW_DEL,
	S_RCPT_HAS, S_RCPT_PUT, S_PAYOUT_PUT, S_RCPT_BY_SEARCHER, S_RCPT_BY_GATEWAY, S_RCPT_BY_NODE,
	S_EARN_GET, S_EARN_PUT, S_DROOT_HAS, S_DROOT_PUT, S_AFRAUD_HAS, S_AFRAUD_PUT,
	S_HO_PUT, S_HO_DEL, S_HO_OF, S_HO_ALL, S_HO_LEAVER,
	S_KEY_GET, S_KEY_PUT, S_KEYS_OF, S_ACCESS_GET, S_ACCESS_PUT, S_ACCESS_DEL,
	S_CELL_GET, S_CELL_PUT, S_CELL_DEL,
	S_HEAD_COUNT
};


/* lg_store_sql.c: the schema, the statements by id, the state tables in
 * digest order with their key order. */
extern const char lg_store_schema_sql[];
extern const char *const lg_store_stmt_sql[S_HEAD_COUNT];
typedef struct lg_store_table {
	const char *name, *order;
} lg_store_table;
extern const lg_store_table lg_store_state_tables[];
extern const size_t lg_store_state_table_count;

/* One write-set entry: key then value at wbuf + off. */
typedef struct ws_entry {
	size_t off;
	const uint8_t *p; /* wbuf + off, set while sorting */
	uint32_t klen, vlen;
	size_t seq;       /* write order; equals the entry's index outside sorting */
} ws_entry;

struct lg_store {
	sqlite3 *db;
	int readonly;
	int in_block;
	int sp_depth;
	int read_depth;   /* nested lg_store_read_begin calls */
	int read_open;    /* the outermost one opened a read transaction */
	sqlite3_stmt *st[S_HEAD_COUNT];
	uint8_t *wbuf;
	size_t wlen, wcap;
	ws_entry *ents;
	size_t nents, ecap;
	struct {
		size_t nents, wlen;
	} marks[SP_MAX];
	lg_store_fault_fn fault;
	void *fault_arg;
	uint64_t step;
	char err[512];
};

typedef struct col {
	char t;          /* 'u' unsigned 64, 'b' blob, 't' text, 'n' null */
	uint64_t u;
	const void *p;
	size_t n;
} col;

static inline col cu(uint64_t v) { return (col){'u', v, NULL, 0}; }
static inline col cb(const void *p, size_t n) { return (col){'b', 0, p, n}; }
static inline col ct(const char *t) { return (col){'t', 0, t, strlen(t)}; }
static inline col cnull(void) { return (col){'n', 0, NULL, 0}; }

typedef int (*row_fn)(sqlite3_stmt *st, void *dst);

typedef struct bytes_out {
	uint8_t *p;
	size_t n;
} bytes_out;

/* ---- shared by lg_store*.c (defined in lg_store.c unless said) ---- */

/* Sets s->err; returns rc. */
int ls_err(lg_store *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* CM_ERR_IO with SQLite's message. */
int ls_db_err(lg_store *s, const char *what);
/* The cached statement, reset and unbound, or NULL (error set). */
sqlite3_stmt *ls_stmt(lg_store *s, enum stmt_id id);
/* Resets and unbinds a statement after use. */
void ls_done(sqlite3_stmt *st);
/* Calls the fault hook before a write; CM_ERR_IO if it asks for a failure. */
int ls_fault_point(lg_store *s);
/* Runs a statement that returns no rows. */
int ls_exec(lg_store *s, enum stmt_id id, const char *what);
/* Inserts or replaces a row (cols[0..nkeys) the key) and logs it in the write set. */
int ls_write_row(lg_store *s, enum table t, enum stmt_id id, const col *cols, size_t nkeys,
		 size_t ncols);
/* Deletes a row by key and logs the deletion in the write set. */
int ls_delete_row(lg_store *s, enum table t, enum stmt_id id, const col *keys, size_t nkeys);
/* Column readers: fixed-size blob, text into cap bytes, malloc'd blob; 0 if malformed. */
uint64_t ls_col_u64(sqlite3_stmt *st, int i);
int ls_col_fixed(sqlite3_stmt *st, int i, void *dst, size_t n);
int ls_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap);
int ls_col_dup(sqlite3_stmt *st, int i, uint8_t **dst, size_t *n);
/* One row decoded by fn (CM_ERR_NOTFOUND if none), or every row into a
 * malloc'd array owned by the caller. */
int ls_get_row(lg_store *s, sqlite3_stmt *st, row_fn fn, void *dst);
int ls_list_rows(lg_store *s, sqlite3_stmt *st, size_t elem, row_fn fn, void **out, size_t *n);
/* A cached statement with columns bound, for a read; NULL on failure. */
sqlite3_stmt *ls_prep(lg_store *s, enum stmt_id id, const col *c, size_t n);
/* Row decoders: any row (presence), one integer, one blob into bytes_out,
 * one name of LG_NAME_MAX + 1 bytes. */
int ls_one_row(sqlite3_stmt *st, void *dst);    /* lg_store_rows.c */
int ls_amount_row(sqlite3_stmt *st, void *dst); /* lg_store_rows.c */
int ls_bytes_row(sqlite3_stmt *st, void *dst);
int ls_name_row(sqlite3_stmt *st, void *dst);   /* lg_store_magu.c */

#endif
