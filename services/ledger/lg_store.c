/* The ledger's SQLite store. Every state row is written through write_row()
 * or delete_row(), which bind typed columns to a cached prepared statement
 * and append the same columns, canonically encoded, to the block's write set;
 * the state root hashes that write set (see lg_state.c). Statements are
 * prepared once per connection. Unsigned 64-bit values are stored as SQLite
 * INTEGERs with the same bits; no query orders by a value that may exceed
 * 2^63 (heights, ids and positions never do). */
#include "lg_store.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1
#define SP_MAX 8               /* nested savepoints */
#define WS_MIN 4096            /* initial write-set buffer */

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
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS safety(id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS blocks(height INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
	" state_root BLOB NOT NULL, ntxs INTEGER NOT NULL, header BLOB, payload BLOB, qc BLOB);"
	"CREATE TABLE IF NOT EXISTS txs(hash BLOB PRIMARY KEY, height INTEGER NOT NULL,"
	" idx INTEGER NOT NULL, state INTEGER NOT NULL, message TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS accounts(pk BLOB PRIMARY KEY, balance INTEGER NOT NULL,"
	" nonce INTEGER NOT NULL, staked INTEGER NOT NULL, unbonding INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS unbonding(release_height INTEGER NOT NULL, pk BLOB NOT NULL,"
	" amount INTEGER NOT NULL, PRIMARY KEY(release_height, pk)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS unbonding_pk ON unbonding(pk, release_height);"
	"CREATE TABLE IF NOT EXISTS indexers(pk BLOB PRIMARY KEY, address TEXT NOT NULL,"
	" capacity INTEGER NOT NULL, failures INTEGER NOT NULL, jailed INTEGER NOT NULL,"
	" active INTEGER NOT NULL, registered_height INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS indexers_active ON indexers(active, pk);"
	"CREATE TABLE IF NOT EXISTS magus(name TEXT PRIMARY KEY, owner BLOB NOT NULL,"
	" dimension INTEGER NOT NULL, metric INTEGER NOT NULL, fragments INTEGER NOT NULL,"
	" replication INTEGER NOT NULL, slots INTEGER NOT NULL, index_spec BLOB NOT NULL,"
	" deposit INTEGER NOT NULL, created_height INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS slots(magu TEXT NOT NULL, slot INTEGER NOT NULL, holder BLOB,"
	" PRIMARY KEY(magu, slot)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS slots_holder ON slots(holder, magu, slot);"
	"CREATE TABLE IF NOT EXISTS fragments(magu TEXT NOT NULL, fragment INTEGER NOT NULL,"
	" epoch INTEGER NOT NULL, primary_pk BLOB NOT NULL, replicas BLOB NOT NULL,"
	" committed_size INTEGER NOT NULL, committed_root BLOB NOT NULL,"
	" committed_height INTEGER NOT NULL, signers BLOB NOT NULL,"
	" PRIMARY KEY(magu, fragment)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS fragments_committed ON fragments(magu, fragment)"
	" WHERE committed_size > 0;"
	"CREATE TABLE IF NOT EXISTS root_votes(magu TEXT NOT NULL, fragment INTEGER NOT NULL,"
	" size INTEGER NOT NULL, signer BLOB NOT NULL, root BLOB NOT NULL,"
	" PRIMARY KEY(magu, fragment, size, signer)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS failovers(magu TEXT NOT NULL, fragment INTEGER NOT NULL,"
	" requester BLOB NOT NULL, epoch INTEGER NOT NULL, log_size INTEGER NOT NULL,"
	" PRIMARY KEY(magu, fragment, requester)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS challenges(id INTEGER PRIMARY KEY, magu TEXT NOT NULL,"
	" fragment INTEGER NOT NULL, indexer BLOB NOT NULL, beacon BLOB NOT NULL,"
	" size INTEGER NOT NULL, root BLOB NOT NULL, leaves BLOB NOT NULL,"
	" issued_height INTEGER NOT NULL, deadline INTEGER NOT NULL, status INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS challenges_open ON challenges(deadline, id) WHERE status = 1;"
	"CREATE INDEX IF NOT EXISTS challenges_open_magu ON challenges(magu, id) WHERE status = 1;"
	"CREATE INDEX IF NOT EXISTS challenges_indexer ON challenges(indexer, id);"
	"CREATE TABLE IF NOT EXISTS proposals(id INTEGER PRIMARY KEY, proposer BLOB NOT NULL,"
	" param TEXT NOT NULL, value INTEGER NOT NULL, apply_height INTEGER NOT NULL,"
	" created_height INTEGER NOT NULL, yes_stake INTEGER NOT NULL,"
	" total_stake INTEGER NOT NULL, status INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS proposals_open ON proposals(apply_height, id) WHERE status = 1;"
	"CREATE TABLE IF NOT EXISTS votes(proposal INTEGER NOT NULL, voter BLOB NOT NULL,"
	" yes INTEGER NOT NULL, PRIMARY KEY(proposal, voter)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS params(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS replicas(position INTEGER PRIMARY KEY, pk BLOB NOT NULL,"
	" address TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS gateways(pk BLOB PRIMARY KEY) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS allowances(searcher BLOB NOT NULL, gateway BLOB NOT NULL,"
	" amount INTEGER NOT NULL, expiry INTEGER NOT NULL, PRIMARY KEY(searcher, gateway)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS receipts(id BLOB PRIMARY KEY, seq INTEGER NOT NULL, magu TEXT NOT NULL,"
	" searcher BLOB NOT NULL, gateway BLOB NOT NULL, fee INTEGER NOT NULL, payouts BLOB NOT NULL,"
	" height INTEGER NOT NULL, tx_hash BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE UNIQUE INDEX IF NOT EXISTS receipts_seq ON receipts(seq);"
	"CREATE INDEX IF NOT EXISTS receipts_searcher ON receipts(searcher, seq);"
	"CREATE INDEX IF NOT EXISTS receipts_gateway ON receipts(gateway, seq);"
	"CREATE TABLE IF NOT EXISTS payouts(node BLOB NOT NULL, seq INTEGER NOT NULL,"
	" amount INTEGER NOT NULL, PRIMARY KEY(node, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS earnings(node BLOB PRIMARY KEY, total INTEGER NOT NULL,"
	" receipts INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS double_roots(signer BLOB NOT NULL, magu TEXT NOT NULL,"
	" fragment INTEGER NOT NULL, size INTEGER NOT NULL,"
	" PRIMARY KEY(signer, magu, fragment, size)) WITHOUT ROWID;"
	/* derived from the chain, outside the state root */
	"CREATE TABLE IF NOT EXISTS roots(height INTEGER PRIMARY KEY, root BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS effects(height INTEGER PRIMARY KEY, data BLOB NOT NULL);";

/* The state tables in digest order, each with its key order. */
static const struct {
	const char *name, *order;
} state_tables[] = {
	{"accounts", "pk"}, {"unbonding", "release_height, pk"}, {"indexers", "pk"},
	{"magus", "name"}, {"slots", "magu, slot"}, {"fragments", "magu, fragment"},
	{"root_votes", "magu, fragment, size, signer"}, {"failovers", "magu, fragment, requester"},
	{"challenges", "id"}, {"proposals", "id"}, {"votes", "proposal, voter"},
	{"params", "name"}, {"counters", "name"}, {"replicas", "position"}, {"gateways", "pk"},
	{"txs", "hash"}, {"allowances", "searcher, gateway"}, {"receipts", "id"},
	{"payouts", "node, seq"}, {"earnings", "node"}, {"double_roots", "signer, magu, fragment, size"},
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
	S_EARN_GET, S_EARN_PUT, S_DROOT_HAS, S_DROOT_PUT,
	S_HEAD_COUNT
};

static const char *const stmt_sql[S_HEAD_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT lg_tx",
	[S_RELEASE] = "RELEASE lg_tx",
	[S_ROLLBACK_TO] = "ROLLBACK TO lg_tx",
	[S_META_GET] = "SELECT v FROM meta WHERE k = ?1",
	[S_META_PUT] = "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)",
	[S_BLOCK_PUT] = "INSERT INTO blocks(height, hash, state_root, ntxs, header, payload, qc)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_BLOCK_GET] = "SELECT height, hash, state_root, ntxs, header, payload, qc FROM blocks"
			" WHERE height = ?1",
	[S_BLOCK_GET_HASH] = "SELECT height, hash, state_root, ntxs, header, payload, qc FROM blocks"
			     " WHERE hash = ?1",
	[S_SAFETY_PUT] = "INSERT OR REPLACE INTO safety(id, data) VALUES (1, ?1)",
	[S_SAFETY_GET] = "SELECT data FROM safety WHERE id = 1",
	[S_TX_PUT] = "INSERT OR REPLACE INTO txs(hash, height, idx, state, message)"
		     " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_TX_GET] = "SELECT height, idx, state, message FROM txs WHERE hash = ?1",
	[S_ACCOUNT_GET] = "SELECT balance, nonce, staked, unbonding FROM accounts WHERE pk = ?1",
	[S_ACCOUNT_PUT] = "INSERT OR REPLACE INTO accounts(pk, balance, nonce, staked, unbonding)"
			  " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_UNBOND_GET] = "SELECT amount FROM unbonding WHERE release_height = ?1 AND pk = ?2",
	[S_UNBOND_PUT] = "INSERT OR REPLACE INTO unbonding(release_height, pk, amount) VALUES (?1, ?2, ?3)",
	[S_UNBOND_DEL] = "DELETE FROM unbonding WHERE release_height = ?1 AND pk = ?2",
	[S_UNBOND_DUE] = "SELECT release_height, pk, amount FROM unbonding WHERE release_height <= ?1"
			 " ORDER BY release_height, pk",
	[S_UNBOND_OF] = "SELECT release_height, pk, amount FROM unbonding WHERE pk = ?1"
			" ORDER BY release_height DESC",
	[S_INDEXER_GET] = "SELECT address, capacity, failures, jailed, active, registered_height"
			  " FROM indexers WHERE pk = ?1",
	[S_INDEXER_PUT] = "INSERT OR REPLACE INTO indexers(pk, address, capacity, failures, jailed,"
			  " active, registered_height) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_INDEXER_KEYS] = "SELECT pk FROM indexers ORDER BY pk",
	[S_INDEXER_ACTIVE] = "SELECT i.pk, a.staked FROM indexers i JOIN accounts a ON a.pk = i.pk"
			     " WHERE i.active = 1 ORDER BY i.pk",
	[S_MAGU_GET] = "SELECT owner, dimension, metric, fragments, replication, slots, index_spec,"
		       " deposit, created_height FROM magus WHERE name = ?1",
	[S_MAGU_PUT] = "INSERT OR REPLACE INTO magus(name, owner, dimension, metric, fragments,"
		       " replication, slots, index_spec, deposit, created_height)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[S_MAGU_DEL] = "DELETE FROM magus WHERE name = ?1",
	[S_MAGU_NAMES] = "SELECT name FROM magus ORDER BY name",
	[S_SLOT_PUT] = "INSERT OR REPLACE INTO slots(magu, slot, holder) VALUES (?1, ?2, ?3)",
	[S_SLOT_DEL] = "DELETE FROM slots WHERE magu = ?1 AND slot = ?2",
	[S_SLOTS_MAGU] = "SELECT magu, slot, holder FROM slots WHERE magu = ?1 ORDER BY slot",
	[S_SLOTS_HOLDER] = "SELECT magu, slot, holder FROM slots WHERE holder = ?1 ORDER BY magu, slot",
	[S_FRAG_GET] = "SELECT magu, fragment, epoch, primary_pk, replicas, committed_size,"
		       " committed_root, committed_height, signers FROM fragments"
		       " WHERE magu = ?1 AND fragment = ?2",
	[S_FRAG_PUT] = "INSERT OR REPLACE INTO fragments(magu, fragment, epoch, primary_pk, replicas,"
		       " committed_size, committed_root, committed_height, signers)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_FRAG_DEL] = "DELETE FROM fragments WHERE magu = ?1 AND fragment = ?2",
	[S_FRAGS_OF] = "SELECT magu, fragment, epoch, primary_pk, replicas, committed_size,"
		       " committed_root, committed_height, signers FROM fragments WHERE magu = ?1"
		       " ORDER BY fragment",
	[S_FRAG_COUNT] = "SELECT COUNT(*) FROM fragments WHERE committed_size > 0",
	[S_FRAG_NTH] = "SELECT magu, fragment, epoch, primary_pk, replicas, committed_size,"
		       " committed_root, committed_height, signers FROM fragments"
		       " WHERE committed_size > 0 ORDER BY magu, fragment LIMIT 1 OFFSET ?1",
	[S_RVOTE_PUT] = "INSERT OR REPLACE INTO root_votes(magu, fragment, size, signer, root)"
			" VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_RVOTE_DEL] = "DELETE FROM root_votes WHERE magu = ?1 AND fragment = ?2 AND size = ?3"
			" AND signer = ?4",
	[S_RVOTES] = "SELECT signer, root FROM root_votes WHERE magu = ?1 AND fragment = ?2"
		     " AND size = ?3 ORDER BY signer",
	[S_RVOTE_KEYS] = "SELECT size, signer FROM root_votes WHERE magu = ?1 AND fragment = ?2"
			 " ORDER BY size, signer",
	[S_FAILOVER_PUT] = "INSERT OR REPLACE INTO failovers(magu, fragment, requester, epoch, log_size)"
			   " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_FAILOVER_DEL] = "DELETE FROM failovers WHERE magu = ?1 AND fragment = ?2 AND requester = ?3",
	[S_FAILOVERS] = "SELECT requester, epoch, log_size FROM failovers WHERE magu = ?1"
			" AND fragment = ?2 AND epoch = ?3 ORDER BY requester",
	[S_FAILOVER_KEYS] = "SELECT requester, epoch, log_size FROM failovers WHERE magu = ?1"
			    " AND fragment = ?2 ORDER BY requester",
	[S_CH_GET] = "SELECT id, magu, fragment, indexer, beacon, size, root, leaves, issued_height,"
		     " deadline, status FROM challenges WHERE id = ?1",
	[S_CH_PUT] = "INSERT OR REPLACE INTO challenges(id, magu, fragment, indexer, beacon, size, root,"
		     " leaves, issued_height, deadline, status)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_CH_DUE] = "SELECT id, magu, fragment, indexer, beacon, size, root, leaves, issued_height,"
		     " deadline, status FROM challenges WHERE status = 1 AND deadline <= ?1 ORDER BY id",
	[S_CH_MAGU] = "SELECT id, magu, fragment, indexer, beacon, size, root, leaves, issued_height,"
		      " deadline, status FROM challenges WHERE status = 1 AND magu = ?1 ORDER BY id",
	[S_CH_OF] = "SELECT id, magu, fragment, indexer, beacon, size, root, leaves, issued_height,"
		    " deadline, status FROM challenges WHERE indexer = ?1 AND id < ?3"
		    " ORDER BY id DESC LIMIT ?2",
	[S_CH_OF_OPEN] = "SELECT id, magu, fragment, indexer, beacon, size, root, leaves, issued_height,"
			 " deadline, status FROM challenges WHERE indexer = ?1 AND status = 1"
			 " AND id < ?3 ORDER BY id DESC LIMIT ?2",
	[S_PROP_GET] = "SELECT id, proposer, param, value, apply_height, created_height, yes_stake,"
		       " total_stake, status FROM proposals WHERE id = ?1",
	[S_PROP_PUT] = "INSERT OR REPLACE INTO proposals(id, proposer, param, value, apply_height,"
		       " created_height, yes_stake, total_stake, status)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_PROP_DUE] = "SELECT id, proposer, param, value, apply_height, created_height, yes_stake,"
		       " total_stake, status FROM proposals WHERE status = 1 AND apply_height <= ?1"
		       " ORDER BY id",
	[S_VOTE_PUT] = "INSERT OR REPLACE INTO votes(proposal, voter, yes) VALUES (?1, ?2, ?3)",
	[S_VOTE_YES] = "SELECT voter FROM votes WHERE proposal = ?1 AND yes = 1 ORDER BY voter",
	[S_PARAM_PUT] = "INSERT OR REPLACE INTO params(name, value) VALUES (?1, ?2)",
	[S_PARAMS] = "SELECT name, value FROM params ORDER BY name",
	[S_COUNTER_GET] = "SELECT value FROM counters WHERE name = ?1",
	[S_COUNTER_PUT] = "INSERT OR REPLACE INTO counters(name, value) VALUES (?1, ?2)",
	[S_REPLICA_PUT] = "INSERT OR REPLACE INTO replicas(position, pk, address) VALUES (?1, ?2, ?3)",
	[S_REPLICAS] = "SELECT position, pk, address FROM replicas ORDER BY position",
	[S_GATEWAY_PUT] = "INSERT OR REPLACE INTO gateways(pk) VALUES (?1)",
	[S_GATEWAY_GET] = "SELECT 1 FROM gateways WHERE pk = ?1",
	[S_READ_BEGIN] = "BEGIN",
	[S_ROOT_PUT] = "INSERT OR REPLACE INTO roots(height, root) VALUES (?1, ?2)",
	[S_ROOT_GET] = "SELECT root FROM roots WHERE height = ?1",
	[S_ROOT_GET_BLOCK] = "SELECT state_root FROM blocks WHERE height = ?1",
	[S_EFFECTS_PUT] = "INSERT OR REPLACE INTO effects(height, data) VALUES (?1, ?2)",
	[S_EFFECTS_GET] = "SELECT data FROM effects WHERE height = ?1",
	[S_MAGU_NAMES_AFTER] = "SELECT name FROM magus WHERE name > ?1 ORDER BY name LIMIT ?2",
	[S_ALLOW_GET] = "SELECT amount, expiry FROM allowances WHERE searcher = ?1 AND gateway = ?2",
	[S_ALLOW_PUT] = "INSERT OR REPLACE INTO allowances(searcher, gateway, amount, expiry)"
			" VALUES (?1, ?2, ?3, ?4)",
	[S_ALLOW_DEL] = "DELETE FROM allowances WHERE searcher = ?1 AND gateway = ?2",
	[S_RCPT_HAS] = "SELECT 1 FROM receipts WHERE id = ?1",
	[S_RCPT_PUT] = "INSERT INTO receipts(id, seq, magu, searcher, gateway, fee, payouts, height,"
		       " tx_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_PAYOUT_PUT] = "INSERT OR REPLACE INTO payouts(node, seq, amount) VALUES (?1, ?2, ?3)",
	[S_RCPT_BY_SEARCHER] = "SELECT id, seq, magu, searcher, gateway, fee, payouts, height, tx_hash"
			       " FROM receipts WHERE searcher = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
	[S_RCPT_BY_GATEWAY] = "SELECT id, seq, magu, searcher, gateway, fee, payouts, height, tx_hash"
			      " FROM receipts WHERE gateway = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
	[S_RCPT_BY_NODE] = "SELECT r.id, r.seq, r.magu, r.searcher, r.gateway, r.fee, r.payouts,"
			   " r.height, r.tx_hash FROM payouts p JOIN receipts r ON r.seq = p.seq"
			   " WHERE p.node = ?1 AND p.seq < ?2 ORDER BY p.seq DESC LIMIT ?3",
	[S_EARN_GET] = "SELECT total, receipts FROM earnings WHERE node = ?1",
	[S_EARN_PUT] = "INSERT OR REPLACE INTO earnings(node, total, receipts) VALUES (?1, ?2, ?3)",
	[S_DROOT_HAS] = "SELECT 1 FROM double_roots WHERE signer = ?1 AND magu = ?2 AND fragment = ?3"
			" AND size = ?4",
	[S_DROOT_PUT] = "INSERT OR REPLACE INTO double_roots(signer, magu, fragment, size)"
			" VALUES (?1, ?2, ?3, ?4)",
};

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

/* ---- errors and statements ---- */

static int set_err(lg_store *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(lg_store *s, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return rc;
}

static int db_err(lg_store *s, const char *what)
{
	return set_err(s, CM_ERR_IO, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* The cached statement, reset and unbound, or NULL (error set). */
static sqlite3_stmt *stmt(lg_store *s, enum stmt_id id)
{
	if (!s->st[id]) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id],
				       NULL) != SQLITE_OK) {
			db_err(s, "prepare");
			return NULL;
		}
	}
	return s->st[id];
}

static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Calls the fault hook before a write; CM_ERR_IO if it asks for a failure. */
static int fault_point(lg_store *s)
{
	s->step++;
	if (s->fault && s->fault(s->fault_arg, s->step))
		return set_err(s, CM_ERR_IO, "injected fault at step %llu", (unsigned long long)s->step);
	return CM_OK;
}

/* Runs a statement that returns no rows. */
static int exec_stmt(lg_store *s, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? CM_OK : db_err(s, what);
}

/* ---- typed columns: bound to statements and encoded into the write set ---- */

typedef struct col {
	char t;          /* 'u' unsigned 64, 'b' blob, 't' text, 'n' null */
	uint64_t u;
	const void *p;
	size_t n;
} col;

static col cu(uint64_t v) { return (col){'u', v, NULL, 0}; }
static col cb(const void *p, size_t n) { return (col){'b', 0, p, n}; }
static col ct(const char *t) { return (col){'t', 0, t, strlen(t)}; }
static col cnull(void) { return (col){'n', 0, NULL, 0}; }

static int bind_cols(sqlite3_stmt *st, const col *c, size_t n)
{
	int rc = SQLITE_OK;
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		int k = (int)i + 1;
		switch (c[i].t) {
		case 'u': rc = sqlite3_bind_int64(st, k, (sqlite3_int64)c[i].u); break;
		case 'b': rc = sqlite3_bind_blob(st, k, c[i].n ? c[i].p : "", (int)c[i].n, SQLITE_STATIC); break;
		case 't': rc = sqlite3_bind_text(st, k, c[i].p, (int)c[i].n, SQLITE_STATIC); break;
		default: rc = sqlite3_bind_null(st, k); break;
		}
	}
	return rc;
}

static size_t enc_size(const col *c, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += 1 + (c[i].t == 'u' ? 8 : c[i].t == 'n' ? 0 : 4 + c[i].n);
	return len;
}

/* Canonical encoding of columns: a type byte, then 8 bytes big-endian for an
 * integer, or a 4-byte big-endian length and the bytes for blob and text. */
static uint8_t *enc_cols(uint8_t *p, const col *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		*p++ = (uint8_t)c[i].t;
		if (c[i].t == 'u') {
			cm_put_be64(p, c[i].u);
			p += 8;
		} else if (c[i].t != 'n') {
			uint32_t len = (uint32_t)c[i].n;
			p[0] = (uint8_t)(len >> 24);
			p[1] = (uint8_t)(len >> 16);
			p[2] = (uint8_t)(len >> 8);
			p[3] = (uint8_t)len;
			if (c[i].n)
				memcpy(p + 4, c[i].p, c[i].n);
			p += 4 + c[i].n;
		}
	}
	return p;
}

/* Appends (table, key columns) -> value columns, or a deletion when vals is
 * NULL, to the write set. Outside a block transaction writes are not logged. */
static int ws_record(lg_store *s, enum table t, const col *keys, size_t nkeys, const col *vals,
		     size_t nvals)
{
	size_t klen = 1 + enc_size(keys, nkeys), vlen = 1 + (vals ? enc_size(vals, nvals) : 0);
	uint8_t *p;

	if (!s->in_block)
		return CM_OK;
	if (s->wlen + klen + vlen > s->wcap) {
		size_t cap = s->wcap ? s->wcap : WS_MIN;
		while (cap < s->wlen + klen + vlen)
			cap *= 2;
		uint8_t *nb = realloc(s->wbuf, cap);
		if (!nb)
			return set_err(s, CM_ERR_NOMEM, "write set: out of memory");
		s->wbuf = nb;
		s->wcap = cap;
	}
	if (s->nents == s->ecap) {
		size_t cap = s->ecap ? 2 * s->ecap : 256;
		ws_entry *ne = realloc(s->ents, cap * sizeof(*ne));
		if (!ne)
			return set_err(s, CM_ERR_NOMEM, "write set: out of memory");
		s->ents = ne;
		s->ecap = cap;
	}
	p = s->wbuf + s->wlen;
	*p++ = (uint8_t)t;
	p = enc_cols(p, keys, nkeys);
	*p++ = vals ? 1 : 0;
	if (vals)
		enc_cols(p, vals, nvals);
	s->ents[s->nents] = (ws_entry){s->wlen, NULL, (uint32_t)klen, (uint32_t)vlen, s->nents};
	s->nents++;
	s->wlen += klen + vlen;
	return CM_OK;
}

/* Inserts or replaces a row: cols[0..nkeys) are the key, bound as ?1.. in
 * column order with the rest. */
static int write_row(lg_store *s, enum table t, enum stmt_id id, const col *cols, size_t nkeys,
		     size_t ncols)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = stmt(s, id)))
		return CM_ERR_IO;
	if (bind_cols(st, cols, ncols) != SQLITE_OK) {
		done(st);
		return db_err(s, "bind");
	}
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE)
		return db_err(s, "write");
	return ws_record(s, t, cols, nkeys, cols + nkeys, ncols - nkeys);
}

static int delete_row(lg_store *s, enum table t, enum stmt_id id, const col *keys, size_t nkeys)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = stmt(s, id)))
		return CM_ERR_IO;
	if (bind_cols(st, keys, nkeys) != SQLITE_OK) {
		done(st);
		return db_err(s, "bind");
	}
	rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE)
		return db_err(s, "delete");
	return ws_record(s, t, keys, nkeys, NULL, 0);
}

/* ---- reading columns ---- */

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

/* Copies a blob column of exactly n bytes; 0 if its size differs. */
static int col_fixed(sqlite3_stmt *st, int i, void *dst, size_t n)
{
	const void *p = sqlite3_column_blob(st, i);
	if ((size_t)sqlite3_column_bytes(st, i) != n || (n && !p))
		return 0;
	if (n)
		memcpy(dst, p, n);
	return 1;
}

/* Copies a text column into a buffer of cap bytes (with NUL); 0 if too long. */
static int col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
	const unsigned char *p = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (n >= cap)
		return 0;
	if (n)
		memcpy(dst, p, n);
	dst[n] = '\0';
	return 1;
}

/* Copies a blob column into a malloc'd buffer; 0 on allocation failure. */
static int col_dup(sqlite3_stmt *st, int i, uint8_t **dst, size_t *n)
{
	const void *p = sqlite3_column_blob(st, i);
	size_t len = (size_t)sqlite3_column_bytes(st, i);
	*dst = malloc(len ? len : 1);
	if (!*dst)
		return 0;
	if (len)
		memcpy(*dst, p, len);
	*n = len;
	return 1;
}

typedef int (*row_fn)(sqlite3_stmt *st, void *dst);

/* Runs a bound statement expected to give at most one row and decodes it
 * with fn. CM_ERR_NOTFOUND if none. */
static int get_row(lg_store *s, sqlite3_stmt *st, row_fn fn, void *dst)
{
	int rc = sqlite3_step(st), out;
	if (rc == SQLITE_ROW)
		out = fn(st, dst) ? CM_OK : set_err(s, CM_ERR_INTERNAL, "corrupt row in the store");
	else if (rc == SQLITE_DONE)
		out = CM_ERR_NOTFOUND;
	else
		out = db_err(s, "read");
	done(st);
	return out;
}

/* Runs a bound statement and decodes every row with fn into a malloc'd array
 * of elem-sized entries, owned by the caller. */
static int list_rows(lg_store *s, sqlite3_stmt *st, size_t elem, row_fn fn, void **out, size_t *n)
{
	uint8_t *arr = NULL;
	size_t len = 0, cap = 0;
	int rc, res = CM_OK;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			uint8_t *na = realloc(arr, ncap * elem);
			if (!na) {
				res = set_err(s, CM_ERR_NOMEM, "out of memory");
				break;
			}
			arr = na;
			cap = ncap;
		}
		memset(arr + len * elem, 0, elem);
		if (!fn(st, arr + len * elem)) {
			res = set_err(s, CM_ERR_INTERNAL, "corrupt row in the store");
			break;
		}
		len++;
	}
	if (res == CM_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		res = db_err(s, "read");
	done(st);
	if (res != CM_OK) {
		free(arr);
		return res;
	}
	*out = arr;
	*n = len;
	return CM_OK;
}

/* Binds columns to a cached statement for a read; NULL on failure. */
static sqlite3_stmt *prep(lg_store *s, enum stmt_id id, const col *c, size_t n)
{
	sqlite3_stmt *st = stmt(s, id);
	if (st && bind_cols(st, c, n) != SQLITE_OK) {
		done(st);
		db_err(s, "bind");
		return NULL;
	}
	return st;
}

/* ---- open and close ---- */

int lg_store_open(lg_store **out, const char *path, unsigned flags, char *err, size_t errlen)
{
	lg_store *s = calloc(1, sizeof(*s));
	int oflags, version = 0;
	sqlite3_stmt *st;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	s->readonly = (flags & LG_STORE_READONLY) != 0;
	oflags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
		lg_store_close(s);
		return CM_ERR_IO;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (!s->readonly) {
		char *msg = NULL;
		if (sqlite3_exec(s->db,
				 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
				 " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;",
				 NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "prepare %s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
			sqlite3_free(msg);
			lg_store_close(s);
			return CM_ERR_IO;
		}
	}
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (version == 0 && !s->readonly) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", SCHEMA_VERSION);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK)
			version = SCHEMA_VERSION;
	}
	if (version != SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d, this build reads %d", path, version,
			 SCHEMA_VERSION);
		lg_store_close(s);
		return CM_ERR_INVALID;
	}
	*out = s;
	return CM_OK;
}

void lg_store_close(lg_store *s)
{
	if (!s)
		return;
	if (s->in_block)
		lg_store_rollback(s);
	for (int i = 0; i < S_HEAD_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s->wbuf);
	free(s->ents);
	free(s);
}

const char *lg_store_errmsg(const lg_store *s)
{
	return s->err;
}

void lg_store_set_fault(lg_store *s, lg_store_fault_fn fn, void *arg)
{
	s->fault = fn;
	s->fault_arg = arg;
	s->step = 0;
}

/* ---- meta and head ---- */

int lg_store_meta_get(lg_store *s, const char *key, void *buf, size_t cap, size_t *len)
{
	col k[] = {ct(key)};
	sqlite3_stmt *st = prep(s, S_META_GET, k, 1);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		const void *p = sqlite3_column_blob(st, 0);
		if (n)
			memcpy(buf, p, n < cap ? n : cap);
		*len = n;
		rc = CM_OK;
	} else {
		rc = rc == SQLITE_DONE ? CM_ERR_NOTFOUND : db_err(s, "meta");
	}
	done(st);
	return rc;
}

int lg_store_meta_put(lg_store *s, const char *key, const void *val, size_t len)
{
	col c[] = {ct(key), cb(val, len)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = prep(s, S_META_PUT, c, 2)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? CM_OK : db_err(s, "meta");
}

int lg_store_head(lg_store *s, uint64_t *height, uint8_t root[LG_ROOT_BYTES])
{
	uint8_t h[8], r[LG_ROOT_BYTES];
	size_t n;
	int rc;
	if ((rc = lg_store_meta_get(s, "height", h, sizeof(h), &n)) != CM_OK)
		return rc;
	if (n != 8)
		return set_err(s, CM_ERR_INTERNAL, "corrupt head height");
	if ((rc = lg_store_meta_get(s, "state_root", r, sizeof(r), &n)) != CM_OK)
		return rc;
	if (n != LG_ROOT_BYTES)
		return set_err(s, CM_ERR_INTERNAL, "corrupt head root");
	*height = cm_get_be64(h);
	memcpy(root, r, LG_ROOT_BYTES);
	return CM_OK;
}

/* ---- the block transaction ---- */

int lg_store_begin(lg_store *s)
{
	int rc;
	if (s->in_block)
		return set_err(s, CM_ERR_STATE, "a block transaction is open already");
	if (s->readonly)
		return set_err(s, CM_ERR_PERM, "the store is read-only");
	if ((rc = exec_stmt(s, S_BEGIN, "begin")) != CM_OK)
		return rc;
	s->in_block = 1;
	s->sp_depth = 0;
	s->nents = 0;
	s->wlen = 0;
	return CM_OK;
}

int lg_store_in_block(const lg_store *s)
{
	return s->in_block;
}

int lg_store_savepoint(lg_store *s)
{
	int rc;
	if (!s->in_block || s->sp_depth == SP_MAX)
		return set_err(s, CM_ERR_STATE, "savepoint outside a block or nested too deep");
	if ((rc = exec_stmt(s, S_SAVEPOINT, "savepoint")) != CM_OK)
		return rc;
	s->marks[s->sp_depth].nents = s->nents;
	s->marks[s->sp_depth].wlen = s->wlen;
	s->sp_depth++;
	return CM_OK;
}

int lg_store_release(lg_store *s)
{
	int rc;
	if (!s->in_block || s->sp_depth == 0)
		return set_err(s, CM_ERR_STATE, "no savepoint to release");
	if ((rc = exec_stmt(s, S_RELEASE, "release")) != CM_OK)
		return rc;
	s->sp_depth--;
	return CM_OK;
}

int lg_store_rollback_to(lg_store *s)
{
	int rc;
	if (!s->in_block || s->sp_depth == 0)
		return set_err(s, CM_ERR_STATE, "no savepoint to roll back to");
	if ((rc = exec_stmt(s, S_ROLLBACK_TO, "rollback to")) != CM_OK ||
	    (rc = exec_stmt(s, S_RELEASE, "release")) != CM_OK)
		return rc;
	s->sp_depth--;
	s->nents = s->marks[s->sp_depth].nents;
	s->wlen = s->marks[s->sp_depth].wlen;
	return CM_OK;
}

size_t lg_store_writeset_len(const lg_store *s)
{
	return s->nents;
}

static int ws_cmp(const void *a, const void *b)
{
	const ws_entry *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->p, y->p, n);
	if (c)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void lg_store_writeset_hash(lg_store *s, uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	uint8_t len[8];

	/* sort by (table, key), then write order; keep each key's last entry */
	for (size_t i = 0; i < s->nents; i++)
		s->ents[i].p = s->wbuf + s->ents[i].off;
	if (s->nents) /* qsort's array may not be NULL, even empty (an empty block) */
		qsort(s->ents, s->nents, sizeof(*s->ents), ws_cmp);
	cm_hasher_init(&h, CM_DOM_STATE);
	for (size_t i = 0; i < s->nents; i++) {
		const ws_entry *e = &s->ents[i];
		if (i + 1 < s->nents && e->klen == s->ents[i + 1].klen &&
		    memcmp(e->p, s->ents[i + 1].p, e->klen) == 0)
			continue;
		cm_put_be64(len, (uint64_t)e->klen << 32 | e->vlen);
		cm_hasher_update(&h, len, sizeof(len));
		cm_hasher_update(&h, e->p, (size_t)e->klen + e->vlen);
	}
	cm_hasher_final(&h, out);
	/* restore write order so that later entries still win after more writes */
	for (size_t i = 0; i < s->nents; i++)
		while (s->ents[i].seq != i) {
			ws_entry t = s->ents[s->ents[i].seq];
			s->ents[s->ents[i].seq] = s->ents[i];
			s->ents[i] = t;
		}
}

/* Keeps the state root of every height (outside the write set). */
static int root_put(lg_store *s, uint64_t height, const uint8_t root[LG_ROOT_BYTES])
{
	col c[] = {cu(height), cb(root, LG_ROOT_BYTES)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = prep(s, S_ROOT_PUT, c, 2)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? CM_OK : db_err(s, "store root");
}

int lg_store_commit(lg_store *s, uint64_t height, const uint8_t root[LG_ROOT_BYTES])
{
	uint8_t h[8];
	int rc;

	if (!s->in_block)
		return set_err(s, CM_ERR_STATE, "no block transaction to commit");
	cm_put_be64(h, height);
	if ((rc = lg_store_meta_put(s, "height", h, sizeof(h))) != CM_OK ||
	    (rc = lg_store_meta_put(s, "state_root", root, LG_ROOT_BYTES)) != CM_OK ||
	    (rc = root_put(s, height, root)) != CM_OK ||
	    (rc = fault_point(s)) != CM_OK || (rc = exec_stmt(s, S_COMMIT, "commit")) != CM_OK) {
		lg_store_rollback(s);
		return rc;
	}
	s->in_block = 0;
	s->sp_depth = 0;
	return CM_OK;
}

void lg_store_rollback(lg_store *s)
{
	if (!s->in_block)
		return;
	if (sqlite3_get_autocommit(s->db) == 0)
		exec_stmt(s, S_ROLLBACK, "rollback");
	s->in_block = 0;
	s->sp_depth = 0;
	s->nents = 0;
	s->wlen = 0;
}

/* ---- blocks ---- */

int lg_store_put_block(lg_store *s, const lg_block_rec *b)
{
	col c[] = {cu(b->height), cb(b->hash, CM_HASH_BYTES), cb(b->state_root, LG_ROOT_BYTES),
		   cu(b->ntxs), cb(b->header, b->header_len), cb(b->payload, b->payload_len),
		   cb(b->qc, b->qc_len)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = prep(s, S_BLOCK_PUT, c, 7)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? CM_OK : db_err(s, "store block");
}

static int block_row(sqlite3_stmt *st, void *dst)
{
	lg_block_rec *b = dst;
	memset(b, 0, sizeof(*b));
	b->height = col_u64(st, 0);
	b->ntxs = (uint32_t)col_u64(st, 3);
	if (!col_fixed(st, 1, b->hash, CM_HASH_BYTES) || !col_fixed(st, 2, b->state_root, LG_ROOT_BYTES))
		return 0;
	uint8_t *h = NULL, *p = NULL, *q = NULL;
	if (!col_dup(st, 4, &h, &b->header_len) || !col_dup(st, 5, &p, &b->payload_len) ||
	    !col_dup(st, 6, &q, &b->qc_len)) {
		free(h);
		free(p);
		free(q);
		return 0;
	}
	b->header = h;
	b->payload = p;
	b->qc = q;
	return 1;
}

int lg_store_get_block(lg_store *s, uint64_t height, lg_block_rec *out)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = prep(s, S_BLOCK_GET, k, 1);
	return st ? get_row(s, st, block_row, out) : CM_ERR_IO;
}

int lg_store_get_block_by_hash(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_block_rec *out)
{
	col k[] = {cb(hash, CM_HASH_BYTES)};
	sqlite3_stmt *st = prep(s, S_BLOCK_GET_HASH, k, 1);
	return st ? get_row(s, st, block_row, out) : CM_ERR_IO;
}

void lg_block_rec_clear(lg_block_rec *b)
{
	if (!b)
		return;
	free((void *)b->header); /* malloc'd by lg_store_get_block */
	free((void *)b->payload);
	free((void *)b->qc);
	b->header = b->payload = b->qc = NULL;
	b->header_len = b->payload_len = b->qc_len = 0;
}

/* ---- safety state ---- */

int lg_store_put_safety(lg_store *s, const void *data, size_t len)
{
	col c[] = {cb(data, len)};
	sqlite3_stmt *st;
	int rc;
	if (s->in_block)
		return set_err(s, CM_ERR_STATE, "safety state written inside a block transaction");
	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = prep(s, S_SAFETY_PUT, c, 1)))
		return CM_ERR_IO;
	rc = sqlite3_step(st); /* autocommit: one fsync'd WAL commit */
	done(st);
	return rc == SQLITE_DONE ? CM_OK : db_err(s, "store safety state");
}

typedef struct bytes_out {
	uint8_t *p;
	size_t n;
} bytes_out;

static int safety_row(sqlite3_stmt *st, void *dst)
{
	bytes_out *o = dst;
	return col_dup(st, 0, &o->p, &o->n);
}

int lg_store_get_safety(lg_store *s, uint8_t **data, size_t *len)
{
	bytes_out o;
	sqlite3_stmt *st = stmt(s, S_SAFETY_GET);
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, safety_row, &o)) != CM_OK)
		return rc;
	*data = o.p;
	*len = o.n;
	return CM_OK;
}

/* ---- tx index ---- */

int lg_store_tx_put(lg_store *s, const lg_txrec *t)
{
	col c[] = {cb(t->hash, CM_HASH_BYTES), cu(t->height), cu(t->index), cu((uint64_t)t->state),
		   ct(t->message)};
	return write_row(s, T_TXS, S_TX_PUT, c, 1, 5);
}

static int tx_row(sqlite3_stmt *st, void *dst)
{
	lg_txrec *t = dst;
	t->height = col_u64(st, 0);
	t->index = (uint32_t)col_u64(st, 1);
	t->state = (int)col_u64(st, 2);
	return col_text(st, 3, t->message, sizeof(t->message));
}

int lg_store_tx_get(lg_store *s, const uint8_t hash[CM_HASH_BYTES], lg_txrec *out)
{
	col k[] = {cb(hash, CM_HASH_BYTES)};
	sqlite3_stmt *st = prep(s, S_TX_GET, k, 1);
	lg_txrec t;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, tx_row, &t)) != CM_OK)
		return rc;
	memcpy(t.hash, hash, CM_HASH_BYTES);
	*out = t;
	return CM_OK;
}

/* ---- accounts and unbonding ---- */

static int account_row(sqlite3_stmt *st, void *dst)
{
	lg_account *a = dst;
	a->balance = col_u64(st, 0);
	a->nonce = col_u64(st, 1);
	a->staked = col_u64(st, 2);
	a->unbonding = col_u64(st, 3);
	return 1;
}

int lg_store_account_get(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_account *out)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_ACCOUNT_GET, k, 1);
	lg_account a;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, account_row, &a)) != CM_OK)
		return rc;
	memcpy(a.pk, pk, LG_KEY_BYTES);
	*out = a;
	return CM_OK;
}

int lg_store_account_put(lg_store *s, const lg_account *a)
{
	col c[] = {cb(a->pk, LG_KEY_BYTES), cu(a->balance), cu(a->nonce), cu(a->staked),
		   cu(a->unbonding)};
	return write_row(s, T_ACCOUNTS, S_ACCOUNT_PUT, c, 1, 5);
}

static int unbond_row(sqlite3_stmt *st, void *dst)
{
	lg_unbond *u = dst;
	u->release_height = col_u64(st, 0);
	u->amount = col_u64(st, 2);
	return col_fixed(st, 1, u->pk, LG_KEY_BYTES);
}

static int amount_row(sqlite3_stmt *st, void *dst)
{
	*(uint64_t *)dst = col_u64(st, 0);
	return 1;
}

int lg_store_unbond_set(lg_store *s, const lg_unbond *u)
{
	col c[] = {cu(u->release_height), cb(u->pk, LG_KEY_BYTES), cu(u->amount)};
	if (u->amount == 0)
		return delete_row(s, T_UNBONDING, S_UNBOND_DEL, c, 2);
	return write_row(s, T_UNBONDING, S_UNBOND_PUT, c, 2, 3);
}

int lg_store_unbond_add(lg_store *s, uint64_t release_height, const uint8_t pk[LG_KEY_BYTES],
			uint64_t amount)
{
	col k[] = {cu(release_height), cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_UNBOND_GET, k, 2);
	lg_unbond u = {release_height, {0}, 0};
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, amount_row, &u.amount);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	if (u.amount > UINT64_MAX - amount)
		return set_err(s, CM_ERR_RANGE, "unbonding amount overflows");
	memcpy(u.pk, pk, LG_KEY_BYTES);
	u.amount += amount;
	return lg_store_unbond_set(s, &u);
}

int lg_store_unbond_due(lg_store *s, uint64_t height, lg_unbond **out, size_t *n)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = prep(s, S_UNBOND_DUE, k, 1);
	return st ? list_rows(s, st, sizeof(lg_unbond), unbond_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_unbond_of(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_unbond **out, size_t *n)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_UNBOND_OF, k, 1);
	return st ? list_rows(s, st, sizeof(lg_unbond), unbond_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- indexers ---- */

static int indexer_row(sqlite3_stmt *st, void *dst)
{
	lg_indexer *ix = dst;
	ix->capacity = col_u64(st, 1);
	ix->failures = col_u64(st, 2);
	ix->jailed = (int)col_u64(st, 3);
	ix->active = (int)col_u64(st, 4);
	ix->registered_height = col_u64(st, 5);
	return col_text(st, 0, ix->address, sizeof(ix->address));
}

int lg_store_indexer_get(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_indexer *out)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_INDEXER_GET, k, 1);
	lg_indexer ix;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, indexer_row, &ix)) != CM_OK)
		return rc;
	memcpy(ix.pk, pk, LG_KEY_BYTES);
	*out = ix;
	return CM_OK;
}

int lg_store_indexer_put(lg_store *s, const lg_indexer *ix)
{
	col c[] = {cb(ix->pk, LG_KEY_BYTES), ct(ix->address), cu(ix->capacity), cu(ix->failures),
		   cu(ix->jailed ? 1 : 0), cu(ix->active ? 1 : 0), cu(ix->registered_height)};
	return write_row(s, T_INDEXERS, S_INDEXER_PUT, c, 1, 7);
}

static int key_row(sqlite3_stmt *st, void *dst)
{
	return col_fixed(st, 0, dst, LG_KEY_BYTES);
}

int lg_store_indexer_keys(lg_store *s, uint8_t (**out)[LG_KEY_BYTES], size_t *n)
{
	sqlite3_stmt *st = stmt(s, S_INDEXER_KEYS);
	return st ? list_rows(s, st, LG_KEY_BYTES, key_row, (void **)out, n) : CM_ERR_IO;
}

static int staked_row(sqlite3_stmt *st, void *dst)
{
	lg_staked *x = dst;
	x->stake = col_u64(st, 1);
	return col_fixed(st, 0, x->pk, LG_KEY_BYTES);
}

int lg_store_indexer_active(lg_store *s, lg_staked **out, size_t *n)
{
	sqlite3_stmt *st = stmt(s, S_INDEXER_ACTIVE);
	return st ? list_rows(s, st, sizeof(lg_staked), staked_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- Magus, slots, fragments ---- */

static int magu_row(sqlite3_stmt *st, void *dst)
{
	lg_magu *m = dst;
	size_t n = (size_t)sqlite3_column_bytes(st, 6);
	m->dimension = (uint32_t)col_u64(st, 1);
	m->metric = (uint32_t)col_u64(st, 2);
	m->fragments = (uint32_t)col_u64(st, 3);
	m->replication = (uint32_t)col_u64(st, 4);
	m->slots = (uint32_t)col_u64(st, 5);
	m->deposit = col_u64(st, 7);
	m->created_height = col_u64(st, 8);
	if (n > LG_INDEX_SPEC_MAX || !col_fixed(st, 6, m->index_spec, n))
		return 0;
	m->index_spec_len = n;
	return col_fixed(st, 0, m->owner, LG_KEY_BYTES);
}

int lg_store_magu_get(lg_store *s, const char *name, lg_magu *out)
{
	col k[] = {ct(name)};
	sqlite3_stmt *st = prep(s, S_MAGU_GET, k, 1);
	lg_magu m;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, magu_row, &m)) != CM_OK)
		return rc;
	snprintf(m.name, sizeof(m.name), "%s", name);
	*out = m;
	return CM_OK;
}

int lg_store_magu_put(lg_store *s, const lg_magu *m)
{
	col c[] = {ct(m->name), cb(m->owner, LG_KEY_BYTES), cu(m->dimension), cu(m->metric),
		   cu(m->fragments), cu(m->replication), cu(m->slots),
		   cb(m->index_spec, m->index_spec_len), cu(m->deposit), cu(m->created_height)};
	return write_row(s, T_MAGUS, S_MAGU_PUT, c, 1, 10);
}

static int name_row(sqlite3_stmt *st, void *dst)
{
	return col_text(st, 0, dst, LG_NAME_MAX + 1);
}

int lg_store_magu_names(lg_store *s, char (**out)[LG_NAME_MAX + 1], size_t *n)
{
	sqlite3_stmt *st = stmt(s, S_MAGU_NAMES);
	return st ? list_rows(s, st, LG_NAME_MAX + 1, name_row, (void **)out, n) : CM_ERR_IO;
}

static int slot_row(sqlite3_stmt *st, void *dst)
{
	lg_slot *sl = dst;
	sl->slot = (uint32_t)col_u64(st, 1);
	sl->filled = sqlite3_column_type(st, 2) != SQLITE_NULL;
	if (sl->filled && !col_fixed(st, 2, sl->holder, LG_KEY_BYTES))
		return 0;
	return col_text(st, 0, sl->magu, sizeof(sl->magu));
}

int lg_store_slot_put(lg_store *s, const lg_slot *sl)
{
	col c[] = {ct(sl->magu), cu(sl->slot), sl->filled ? cb(sl->holder, LG_KEY_BYTES) : cnull()};
	return write_row(s, T_SLOTS, S_SLOT_PUT, c, 2, 3);
}

int lg_store_slots_of_magu(lg_store *s, const char *magu, lg_slot **out, size_t *n)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = prep(s, S_SLOTS_MAGU, k, 1);
	return st ? list_rows(s, st, sizeof(lg_slot), slot_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_slots_of_holder(lg_store *s, const uint8_t pk[LG_KEY_BYTES], lg_slot **out, size_t *n)
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_SLOTS_HOLDER, k, 1);
	return st ? list_rows(s, st, sizeof(lg_slot), slot_row, (void **)out, n) : CM_ERR_IO;
}

/* Copies a blob of k 32-byte keys (k <= max) into keys; 0 if malformed. */
static int col_keys(sqlite3_stmt *st, int i, uint8_t (*keys)[LG_KEY_BYTES], uint32_t *k, size_t max)
{
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (n % LG_KEY_BYTES || n / LG_KEY_BYTES > max)
		return 0;
	*k = (uint32_t)(n / LG_KEY_BYTES);
	return col_fixed(st, i, keys, n);
}

static int fragment_row(sqlite3_stmt *st, void *dst)
{
	lg_fragment *f = dst;
	f->fragment = (uint32_t)col_u64(st, 1);
	f->epoch = col_u64(st, 2);
	f->committed_size = col_u64(st, 5);
	f->committed_height = col_u64(st, 7);
	return col_text(st, 0, f->magu, sizeof(f->magu)) && col_fixed(st, 3, f->primary, LG_KEY_BYTES) &&
	       col_keys(st, 4, f->replicas, &f->nreplicas, LG_MAX_REPLICAS) &&
	       col_fixed(st, 6, f->committed_root, LG_ROOT_BYTES) &&
	       col_keys(st, 8, f->signers, &f->nsigners, LG_MAX_REPLICAS);
}

int lg_store_fragment_get(lg_store *s, const char *magu, uint32_t fragment, lg_fragment *out)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = prep(s, S_FRAG_GET, k, 2);
	return st ? get_row(s, st, fragment_row, out) : CM_ERR_IO;
}

int lg_store_fragment_put(lg_store *s, const lg_fragment *f)
{
	col c[] = {ct(f->magu), cu(f->fragment), cu(f->epoch), cb(f->primary, LG_KEY_BYTES),
		   cb(f->replicas, (size_t)f->nreplicas * LG_KEY_BYTES), cu(f->committed_size),
		   cb(f->committed_root, LG_ROOT_BYTES), cu(f->committed_height),
		   cb(f->signers, (size_t)f->nsigners * LG_KEY_BYTES)};
	return write_row(s, T_FRAGMENTS, S_FRAG_PUT, c, 2, 9);
}

int lg_store_fragments_of(lg_store *s, const char *magu, lg_fragment **out, size_t *n)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = prep(s, S_FRAGS_OF, k, 1);
	return st ? list_rows(s, st, sizeof(lg_fragment), fragment_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_fragment_committed_count(lg_store *s, uint64_t *n)
{
	sqlite3_stmt *st = stmt(s, S_FRAG_COUNT);
	return st ? get_row(s, st, amount_row, n) : CM_ERR_IO;
}

int lg_store_fragment_committed_nth(lg_store *s, uint64_t i, lg_fragment *out)
{
	col k[] = {cu(i)};
	sqlite3_stmt *st = prep(s, S_FRAG_NTH, k, 1);
	return st ? get_row(s, st, fragment_row, out) : CM_ERR_IO;
}

/* ---- root votes and failover requests ---- */

int lg_store_root_vote_put(lg_store *s, const char *magu, uint32_t fragment, uint64_t size,
			   const uint8_t signer[LG_KEY_BYTES], const uint8_t root[LG_ROOT_BYTES])
{
	col c[] = {ct(magu), cu(fragment), cu(size), cb(signer, LG_KEY_BYTES), cb(root, LG_ROOT_BYTES)};
	return write_row(s, T_ROOT_VOTES, S_RVOTE_PUT, c, 4, 5);
}

static int rvote_row(sqlite3_stmt *st, void *dst)
{
	lg_root_vote *v = dst;
	return col_fixed(st, 0, v->signer, LG_KEY_BYTES) && col_fixed(st, 1, v->root, LG_ROOT_BYTES);
}

int lg_store_root_votes(lg_store *s, const char *magu, uint32_t fragment, uint64_t size,
			lg_root_vote **out, size_t *n)
{
	col k[] = {ct(magu), cu(fragment), cu(size)};
	sqlite3_stmt *st = prep(s, S_RVOTES, k, 3);
	return st ? list_rows(s, st, sizeof(lg_root_vote), rvote_row, (void **)out, n) : CM_ERR_IO;
}

typedef struct sized_key {
	uint64_t size;
	uint8_t key[LG_KEY_BYTES];
} sized_key;

static int sized_key_row(sqlite3_stmt *st, void *dst)
{
	sized_key *k = dst;
	k->size = col_u64(st, 0);
	return col_fixed(st, 1, k->key, LG_KEY_BYTES);
}

int lg_store_root_votes_clear(lg_store *s, const char *magu, uint32_t fragment)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = prep(s, S_RVOTE_KEYS, k, 2);
	sized_key *keys;
	size_t n;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = list_rows(s, st, sizeof(*keys), sized_key_row, (void **)&keys, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		col d[] = {ct(magu), cu(fragment), cu(keys[i].size), cb(keys[i].key, LG_KEY_BYTES)};
		rc = delete_row(s, T_ROOT_VOTES, S_RVOTE_DEL, d, 4);
	}
	free(keys);
	return rc;
}

int lg_store_failover_put(lg_store *s, const char *magu, uint32_t fragment, const lg_failover *f)
{
	col c[] = {ct(magu), cu(fragment), cb(f->requester, LG_KEY_BYTES), cu(f->epoch), cu(f->log_size)};
	return write_row(s, T_FAILOVERS, S_FAILOVER_PUT, c, 3, 5);
}

static int failover_row(sqlite3_stmt *st, void *dst)
{
	lg_failover *f = dst;
	f->epoch = col_u64(st, 1);
	f->log_size = col_u64(st, 2);
	return col_fixed(st, 0, f->requester, LG_KEY_BYTES);
}

int lg_store_failovers(lg_store *s, const char *magu, uint32_t fragment, uint64_t epoch,
		       lg_failover **out, size_t *n)
{
	col k[] = {ct(magu), cu(fragment), cu(epoch)};
	sqlite3_stmt *st = prep(s, S_FAILOVERS, k, 3);
	return st ? list_rows(s, st, sizeof(lg_failover), failover_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_failovers_clear(lg_store *s, const char *magu, uint32_t fragment)
{
	col k[] = {ct(magu), cu(fragment)};
	sqlite3_stmt *st = prep(s, S_FAILOVER_KEYS, k, 2);
	lg_failover *f;
	size_t n;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = list_rows(s, st, sizeof(*f), failover_row, (void **)&f, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		col d[] = {ct(magu), cu(fragment), cb(f[i].requester, LG_KEY_BYTES)};
		rc = delete_row(s, T_FAILOVERS, S_FAILOVER_DEL, d, 3);
	}
	free(f);
	return rc;
}

int lg_store_magu_del(lg_store *s, const char *name)
{
	lg_slot *sl = NULL;
	lg_fragment *fr = NULL;
	size_t ns = 0, nf = 0;
	col k[] = {ct(name)};
	int rc;

	if ((rc = lg_store_slots_of_magu(s, name, &sl, &ns)) != CM_OK ||
	    (rc = lg_store_fragments_of(s, name, &fr, &nf)) != CM_OK)
		goto out;
	for (size_t i = 0; i < ns && rc == CM_OK; i++) {
		col d[] = {ct(name), cu(sl[i].slot)};
		rc = delete_row(s, T_SLOTS, S_SLOT_DEL, d, 2);
	}
	for (size_t i = 0; i < nf && rc == CM_OK; i++) {
		col d[] = {ct(name), cu(fr[i].fragment)};
		if ((rc = lg_store_root_votes_clear(s, name, fr[i].fragment)) == CM_OK &&
		    (rc = lg_store_failovers_clear(s, name, fr[i].fragment)) == CM_OK)
			rc = delete_row(s, T_FRAGMENTS, S_FRAG_DEL, d, 2);
	}
	if (rc == CM_OK)
		rc = delete_row(s, T_MAGUS, S_MAGU_DEL, k, 1);
out:
	free(sl);
	free(fr);
	return rc;
}

/* ---- challenges ---- */

static int challenge_row(sqlite3_stmt *st, void *dst)
{
	lg_challenge *c = dst;
	size_t n = (size_t)sqlite3_column_bytes(st, 7);
	const uint8_t *p = sqlite3_column_blob(st, 7);
	c->id = col_u64(st, 0);
	c->fragment = (uint32_t)col_u64(st, 2);
	c->size = col_u64(st, 5);
	c->issued_height = col_u64(st, 8);
	c->deadline = col_u64(st, 9);
	c->status = (int)col_u64(st, 10);
	if (n % 8 || n / 8 > LG_LEAVES_MAX)
		return 0;
	c->nleaves = (uint32_t)(n / 8);
	for (uint32_t i = 0; i < c->nleaves; i++)
		c->leaves[i] = cm_get_be64(p + 8 * i);
	return col_text(st, 1, c->magu, sizeof(c->magu)) && col_fixed(st, 3, c->indexer, LG_KEY_BYTES) &&
	       col_fixed(st, 4, c->beacon, CM_HASH_BYTES) && col_fixed(st, 6, c->root, LG_ROOT_BYTES);
}

int lg_store_challenge_get(lg_store *s, uint64_t id, lg_challenge *out)
{
	col k[] = {cu(id)};
	sqlite3_stmt *st = prep(s, S_CH_GET, k, 1);
	return st ? get_row(s, st, challenge_row, out) : CM_ERR_IO;
}

int lg_store_challenge_put(lg_store *s, const lg_challenge *c)
{
	uint8_t leaves[LG_LEAVES_MAX * 8];
	for (uint32_t i = 0; i < c->nleaves && i < LG_LEAVES_MAX; i++)
		cm_put_be64(leaves + 8 * i, c->leaves[i]);
	col cols[] = {cu(c->id), ct(c->magu), cu(c->fragment), cb(c->indexer, LG_KEY_BYTES),
		      cb(c->beacon, CM_HASH_BYTES), cu(c->size), cb(c->root, LG_ROOT_BYTES),
		      cb(leaves, (size_t)c->nleaves * 8), cu(c->issued_height), cu(c->deadline),
		      cu((uint64_t)c->status)};
	return write_row(s, T_CHALLENGES, S_CH_PUT, cols, 1, 11);
}

int lg_store_challenges_due(lg_store *s, uint64_t height, lg_challenge **out, size_t *n)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = prep(s, S_CH_DUE, k, 1);
	return st ? list_rows(s, st, sizeof(lg_challenge), challenge_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_challenges_of_magu(lg_store *s, const char *magu, lg_challenge **out, size_t *n)
{
	col k[] = {ct(magu)};
	sqlite3_stmt *st = prep(s, S_CH_MAGU, k, 1);
	return st ? list_rows(s, st, sizeof(lg_challenge), challenge_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_challenges_of(lg_store *s, const uint8_t indexer[LG_KEY_BYTES], int open_only,
			   size_t max, lg_challenge **out, size_t *n)
{
	return lg_store_challenges_page(s, indexer, open_only, UINT64_MAX, max, out, n);
}

int lg_store_challenges_page(lg_store *s, const uint8_t indexer[LG_KEY_BYTES], int open_only,
			     uint64_t before_id, size_t max, lg_challenge **out, size_t *n)
{
	/* ids are below 2^63: clamp so that the signed comparison holds */
	col k[] = {cb(indexer, LG_KEY_BYTES), cu(max), cu(before_id > INT64_MAX ? INT64_MAX : before_id)};
	sqlite3_stmt *st = prep(s, open_only ? S_CH_OF_OPEN : S_CH_OF, k, 3);
	return st ? list_rows(s, st, sizeof(lg_challenge), challenge_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- governance ---- */

static int proposal_row(sqlite3_stmt *st, void *dst)
{
	lg_proposal *p = dst;
	p->id = col_u64(st, 0);
	p->value = sqlite3_column_int64(st, 3);
	p->apply_height = col_u64(st, 4);
	p->created_height = col_u64(st, 5);
	p->yes_stake = col_u64(st, 6);
	p->total_stake = col_u64(st, 7);
	p->status = (int)col_u64(st, 8);
	return col_fixed(st, 1, p->proposer, LG_KEY_BYTES) && col_text(st, 2, p->param, sizeof(p->param));
}

int lg_store_proposal_get(lg_store *s, uint64_t id, lg_proposal *out)
{
	col k[] = {cu(id)};
	sqlite3_stmt *st = prep(s, S_PROP_GET, k, 1);
	return st ? get_row(s, st, proposal_row, out) : CM_ERR_IO;
}

int lg_store_proposal_put(lg_store *s, const lg_proposal *p)
{
	col c[] = {cu(p->id), cb(p->proposer, LG_KEY_BYTES), ct(p->param), cu((uint64_t)p->value),
		   cu(p->apply_height), cu(p->created_height), cu(p->yes_stake), cu(p->total_stake),
		   cu((uint64_t)p->status)};
	return write_row(s, T_PROPOSALS, S_PROP_PUT, c, 1, 9);
}

int lg_store_proposals_due(lg_store *s, uint64_t height, lg_proposal **out, size_t *n)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = prep(s, S_PROP_DUE, k, 1);
	return st ? list_rows(s, st, sizeof(lg_proposal), proposal_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_vote_put(lg_store *s, uint64_t proposal, const uint8_t voter[LG_KEY_BYTES], int yes)
{
	col c[] = {cu(proposal), cb(voter, LG_KEY_BYTES), cu(yes ? 1 : 0)};
	return write_row(s, T_VOTES, S_VOTE_PUT, c, 2, 3);
}

int lg_store_yes_voters(lg_store *s, uint64_t proposal, uint8_t (**out)[LG_KEY_BYTES], size_t *n)
{
	col k[] = {cu(proposal)};
	sqlite3_stmt *st = prep(s, S_VOTE_YES, k, 1);
	return st ? list_rows(s, st, LG_KEY_BYTES, key_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- parameters, counters, replicas, gateways ---- */

int lg_store_param_put(lg_store *s, const char *name, int64_t value)
{
	col c[] = {ct(name), cu((uint64_t)value)};
	return write_row(s, T_PARAMS, S_PARAM_PUT, c, 1, 2);
}

static int named_row(sqlite3_stmt *st, void *dst)
{
	lg_named *p = dst;
	p->value = sqlite3_column_int64(st, 1);
	return col_text(st, 0, p->name, sizeof(p->name));
}

int lg_store_params(lg_store *s, lg_named **out, size_t *n)
{
	sqlite3_stmt *st = stmt(s, S_PARAMS);
	return st ? list_rows(s, st, sizeof(lg_named), named_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_counter_get(lg_store *s, const char *name, uint64_t *out)
{
	col k[] = {ct(name)};
	sqlite3_stmt *st = prep(s, S_COUNTER_GET, k, 1);
	uint64_t v = 0;
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, amount_row, &v);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	*out = v;
	return CM_OK;
}

int lg_store_counter_put(lg_store *s, const char *name, uint64_t value)
{
	col c[] = {ct(name), cu(value)};
	return write_row(s, T_COUNTERS, S_COUNTER_PUT, c, 1, 2);
}

int lg_store_replica_put(lg_store *s, const lg_replica *r)
{
	col c[] = {cu(r->position), cb(r->pk, LG_KEY_BYTES), ct(r->address)};
	return write_row(s, T_REPLICAS, S_REPLICA_PUT, c, 1, 3);
}

static int replica_row(sqlite3_stmt *st, void *dst)
{
	lg_replica *r = dst;
	r->position = (uint32_t)col_u64(st, 0);
	return col_fixed(st, 1, r->pk, LG_KEY_BYTES) && col_text(st, 2, r->address, sizeof(r->address));
}

int lg_store_replicas(lg_store *s, lg_replica **out, size_t *n)
{
	sqlite3_stmt *st = stmt(s, S_REPLICAS);
	return st ? list_rows(s, st, sizeof(lg_replica), replica_row, (void **)out, n) : CM_ERR_IO;
}

int lg_store_gateway_put(lg_store *s, const uint8_t pk[LG_KEY_BYTES])
{
	col c[] = {cb(pk, LG_KEY_BYTES)};
	return write_row(s, T_GATEWAYS, S_GATEWAY_PUT, c, 1, 1);
}

static int one_row(sqlite3_stmt *st, void *dst)
{
	(void)st;
	(void)dst;
	return 1;
}

int lg_store_is_gateway(lg_store *s, const uint8_t pk[LG_KEY_BYTES])
{
	col k[] = {cb(pk, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_GATEWAY_GET, k, 1);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

/* ---- whole-state digest ---- */

int lg_store_state_digest(lg_store *s, uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	char sql[160];
	uint8_t be[8];

	cm_hasher_init(&h, CM_DOM_STATE);
	for (size_t t = 0; t < sizeof(state_tables) / sizeof(state_tables[0]); t++) {
		sqlite3_stmt *st;
		int rc;
		snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY %s", state_tables[t].name,
			 state_tables[t].order);
		if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
			return db_err(s, "digest");
		cm_hasher_update(&h, state_tables[t].name, strlen(state_tables[t].name) + 1);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int n = sqlite3_column_count(st);
			for (int i = 0; i < n; i++) {
				uint8_t type = (uint8_t)sqlite3_column_type(st, i);
				cm_hasher_update(&h, &type, 1);
				if (type == SQLITE_INTEGER) {
					cm_put_be64(be, (uint64_t)sqlite3_column_int64(st, i));
					cm_hasher_update(&h, be, 8);
				} else if (type == SQLITE_BLOB || type == SQLITE_TEXT) {
					const void *p = type == SQLITE_BLOB ? sqlite3_column_blob(st, i)
									     : (const void *)sqlite3_column_text(st, i);
					size_t len = (size_t)sqlite3_column_bytes(st, i);
					cm_put_be64(be, len);
					cm_hasher_update(&h, be, 8);
					if (len)
						cm_hasher_update(&h, p, len);
				}
			}
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return db_err(s, "digest");
	}
	cm_hasher_final(&h, out);
	return CM_OK;
}

/* ---- read snapshots ---- */

int lg_store_read_begin(lg_store *s)
{
	int rc;
	if (s->read_depth++ > 0)
		return CM_OK;
	s->read_open = 0;
	if (s->in_block || sqlite3_get_autocommit(s->db) == 0)
		return CM_OK; /* inside a transaction already: its view is the snapshot */
	if ((rc = exec_stmt(s, S_READ_BEGIN, "begin read")) != CM_OK) {
		s->read_depth--;
		return rc;
	}
	s->read_open = 1;
	return CM_OK;
}

void lg_store_read_end(lg_store *s)
{
	if (s->read_depth == 0 || --s->read_depth > 0)
		return;
	if (s->read_open && sqlite3_get_autocommit(s->db) == 0)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL); /* a read: nothing to lose */
	s->read_open = 0;
}

/* ---- roots and effects by height ---- */

static int root_row(sqlite3_stmt *st, void *dst)
{
	return col_fixed(st, 0, dst, LG_ROOT_BYTES);
}

int lg_store_root_at(lg_store *s, uint64_t height, uint8_t root[LG_ROOT_BYTES])
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = prep(s, S_ROOT_GET, k, 1);
	uint8_t r[LG_ROOT_BYTES];
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, root_row, r);
	if (rc == CM_ERR_NOTFOUND) { /* a store written before the roots table */
		if (!(st = prep(s, S_ROOT_GET_BLOCK, k, 1)))
			return CM_ERR_IO;
		rc = get_row(s, st, root_row, r);
	}
	if (rc == CM_OK)
		memcpy(root, r, LG_ROOT_BYTES);
	return rc;
}

int lg_store_effects_put(lg_store *s, uint64_t height, const uint8_t *data, size_t len)
{
	col c[] = {cu(height), cb(data, len)};
	sqlite3_stmt *st;
	int rc;
	if ((rc = fault_point(s)) != CM_OK)
		return rc;
	if (!(st = prep(s, S_EFFECTS_PUT, c, 2)))
		return CM_ERR_IO;
	rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? CM_OK : db_err(s, "store effects");
}

int lg_store_effects_get(lg_store *s, uint64_t height, uint8_t **data, size_t *len)
{
	col k[] = {cu(height)};
	sqlite3_stmt *st = prep(s, S_EFFECTS_GET, k, 1);
	bytes_out o;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, safety_row, &o)) != CM_OK)
		return rc;
	*data = o.p;
	*len = o.n;
	return CM_OK;
}

int lg_store_magu_names_after(lg_store *s, const char *after, size_t limit,
			      char (**out)[LG_NAME_MAX + 1], size_t *n)
{
	col k[] = {ct(after ? after : ""), cu(limit)};
	sqlite3_stmt *st = prep(s, S_MAGU_NAMES_AFTER, k, 2);
	return st ? list_rows(s, st, LG_NAME_MAX + 1, name_row, (void **)out, n) : CM_ERR_IO;
}

/* ---- settlement: allowances, receipts, earnings ---- */

static int allowance_row(sqlite3_stmt *st, void *dst)
{
	lg_allowance *a = dst;
	a->amount = col_u64(st, 0);
	a->expiry = col_u64(st, 1);
	return 1;
}

int lg_store_allowance_get(lg_store *s, const uint8_t searcher[LG_KEY_BYTES],
			   const uint8_t gateway[LG_KEY_BYTES], lg_allowance *out)
{
	col k[] = {cb(searcher, LG_KEY_BYTES), cb(gateway, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_ALLOW_GET, k, 2);
	lg_allowance a;
	int rc;
	if (!st)
		return CM_ERR_IO;
	if ((rc = get_row(s, st, allowance_row, &a)) != CM_OK)
		return rc;
	memcpy(a.searcher, searcher, LG_KEY_BYTES);
	memcpy(a.gateway, gateway, LG_KEY_BYTES);
	*out = a;
	return CM_OK;
}

int lg_store_allowance_put(lg_store *s, const lg_allowance *a)
{
	col c[] = {cb(a->searcher, LG_KEY_BYTES), cb(a->gateway, LG_KEY_BYTES), cu(a->amount),
		   cu(a->expiry)};
	if (a->amount == 0)
		return delete_row(s, T_ALLOWANCES, S_ALLOW_DEL, c, 2);
	return write_row(s, T_ALLOWANCES, S_ALLOW_PUT, c, 2, 4);
}

int lg_store_receipt_seen(lg_store *s, const uint8_t *id, size_t len)
{
	col k[] = {cb(id, len)};
	sqlite3_stmt *st = prep(s, S_RCPT_HAS, k, 1);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

int lg_store_receipt_put(lg_store *s, const lg_receipt *r)
{
	uint8_t pay[LG_RANKED_MAX * (LG_KEY_BYTES + 8)];
	int rc;
	if (r->id_len > LG_RECEIPT_ID_MAX_BYTES || r->npayouts > LG_RANKED_MAX)
		return set_err(s, CM_ERR_INVALID, "receipt: id or payouts too long");
	for (uint32_t i = 0; i < r->npayouts; i++) {
		memcpy(pay + i * (LG_KEY_BYTES + 8), r->payouts[i].node, LG_KEY_BYTES);
		cm_put_be64(pay + i * (LG_KEY_BYTES + 8) + LG_KEY_BYTES, r->payouts[i].amount);
	}
	col c[] = {cb(r->id, r->id_len), cu(r->seq), ct(r->magu), cb(r->searcher, LG_KEY_BYTES),
		   cb(r->gateway, LG_KEY_BYTES), cu(r->fee),
		   cb(pay, (size_t)r->npayouts * (LG_KEY_BYTES + 8)), cu(r->height),
		   cb(r->tx_hash, CM_HASH_BYTES)};
	if ((rc = write_row(s, T_RECEIPTS, S_RCPT_PUT, c, 1, 9)) != CM_OK)
		return rc;
	for (uint32_t i = 0; i < r->npayouts && rc == CM_OK; i++) {
		col p[] = {cb(r->payouts[i].node, LG_KEY_BYTES), cu(r->seq), cu(r->payouts[i].amount)};
		rc = write_row(s, T_PAYOUTS, S_PAYOUT_PUT, p, 2, 3);
	}
	return rc;
}

static int receipt_row(sqlite3_stmt *st, void *dst)
{
	lg_receipt *r = dst;
	size_t idn = (size_t)sqlite3_column_bytes(st, 0), pn = (size_t)sqlite3_column_bytes(st, 6);
	const uint8_t *pay = sqlite3_column_blob(st, 6);
	if (idn > LG_RECEIPT_ID_MAX_BYTES || pn % (LG_KEY_BYTES + 8) || pn / (LG_KEY_BYTES + 8) > LG_RANKED_MAX)
		return 0;
	r->id_len = (uint32_t)idn;
	r->seq = col_u64(st, 1);
	r->fee = col_u64(st, 5);
	r->height = col_u64(st, 7);
	r->npayouts = (uint32_t)(pn / (LG_KEY_BYTES + 8));
	for (uint32_t i = 0; i < r->npayouts; i++) {
		memcpy(r->payouts[i].node, pay + i * (LG_KEY_BYTES + 8), LG_KEY_BYTES);
		r->payouts[i].amount = cm_get_be64(pay + i * (LG_KEY_BYTES + 8) + LG_KEY_BYTES);
	}
	return col_fixed(st, 0, r->id, idn) && col_text(st, 2, r->magu, sizeof(r->magu)) &&
	       col_fixed(st, 3, r->searcher, LG_KEY_BYTES) && col_fixed(st, 4, r->gateway, LG_KEY_BYTES) &&
	       col_fixed(st, 8, r->tx_hash, CM_HASH_BYTES);
}

int lg_store_receipts(lg_store *s, enum lg_receipts_by by, const uint8_t key[LG_KEY_BYTES],
		      uint64_t before_seq, size_t limit, lg_receipt **out, size_t *n)
{
	enum stmt_id id = by == LG_RCPT_BY_SEARCHER ? S_RCPT_BY_SEARCHER
			  : by == LG_RCPT_BY_GATEWAY ? S_RCPT_BY_GATEWAY
						     : S_RCPT_BY_NODE;
	col k[] = {cb(key, LG_KEY_BYTES), cu(before_seq > INT64_MAX ? INT64_MAX : before_seq), cu(limit)};
	sqlite3_stmt *st = prep(s, id, k, 3);
	return st ? list_rows(s, st, sizeof(lg_receipt), receipt_row, (void **)out, n) : CM_ERR_IO;
}

static int earnings_row(sqlite3_stmt *st, void *dst)
{
	lg_earnings *e = dst;
	e->total = col_u64(st, 0);
	e->receipts = col_u64(st, 1);
	return 1;
}

int lg_store_earnings_get(lg_store *s, const uint8_t node[LG_KEY_BYTES], lg_earnings *out)
{
	col k[] = {cb(node, LG_KEY_BYTES)};
	sqlite3_stmt *st = prep(s, S_EARN_GET, k, 1);
	lg_earnings e = {{0}, 0, 0};
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, earnings_row, &e);
	if (rc != CM_OK && rc != CM_ERR_NOTFOUND)
		return rc;
	memcpy(e.node, node, LG_KEY_BYTES);
	*out = e;
	return CM_OK;
}

int lg_store_earnings_put(lg_store *s, const lg_earnings *e)
{
	col c[] = {cb(e->node, LG_KEY_BYTES), cu(e->total), cu(e->receipts)};
	return write_row(s, T_EARNINGS, S_EARN_PUT, c, 1, 3);
}

/* ---- double-root evidence ---- */

int lg_store_double_root_seen(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const char *magu,
			      uint32_t fragment, uint64_t size)
{
	col k[] = {cb(signer, LG_KEY_BYTES), ct(magu), cu(fragment), cu(size)};
	sqlite3_stmt *st = prep(s, S_DROOT_HAS, k, 4);
	int rc;
	if (!st)
		return CM_ERR_IO;
	rc = get_row(s, st, one_row, NULL);
	return rc == CM_OK ? 1 : rc == CM_ERR_NOTFOUND ? 0 : rc;
}

int lg_store_double_root_put(lg_store *s, const uint8_t signer[LG_KEY_BYTES], const char *magu,
			     uint32_t fragment, uint64_t size)
{
	col c[] = {cb(signer, LG_KEY_BYTES), ct(magu), cu(fragment), cu(size)};
	return write_row(s, T_DOUBLE_ROOTS, S_DROOT_PUT, c, 4, 4);
}
