/* The store's SQL: the schema of a ledger store, its cached statements by
 * id, and the state tables in the order lg_store_state_digest() hashes them. */
#include "lg_store_int.h"

const char lg_store_schema_sql[] =
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
	" last_epoch INTEGER NOT NULL, root BLOB NOT NULL,"
	" PRIMARY KEY(magu, fragment, requester)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS handovers(magu TEXT NOT NULL, fragment INTEGER NOT NULL,"
	" leaver BLOB NOT NULL, start_height INTEGER NOT NULL, pending BLOB NOT NULL,"
	" PRIMARY KEY(magu, fragment, leaver)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS handovers_leaver ON handovers(leaver, magu, fragment);"
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
	"CREATE TABLE IF NOT EXISTS receipts(gateway BLOB NOT NULL, id BLOB NOT NULL, seq INTEGER NOT NULL,"
	" magu TEXT NOT NULL, searcher BLOB NOT NULL, fee INTEGER NOT NULL, payouts BLOB NOT NULL,"
	" height INTEGER NOT NULL, tx_hash BLOB NOT NULL, PRIMARY KEY(gateway, id)) WITHOUT ROWID;"
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
	"CREATE TABLE IF NOT EXISTS answer_frauds(signer BLOB NOT NULL, digest BLOB NOT NULL,"
	" PRIMARY KEY(signer, digest)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS api_keys(hash BLOB PRIMARY KEY, account BLOB NOT NULL,"
	" scope INTEGER NOT NULL, expiry INTEGER NOT NULL, collections TEXT NOT NULL,"
	" label TEXT NOT NULL, created_height INTEGER NOT NULL, revoked_height INTEGER NOT NULL)"
	" WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS api_keys_account ON api_keys(account, hash);"
	"CREATE TABLE IF NOT EXISTS access(magu TEXT PRIMARY KEY, owner BLOB NOT NULL,"
	" readers BLOB NOT NULL, writers BLOB NOT NULL, public_read INTEGER NOT NULL,"
	" changed_height INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS cells(magu TEXT NOT NULL, fragment INTEGER NOT NULL,"
	" state INTEGER NOT NULL, base INTEGER NOT NULL, depth INTEGER NOT NULL, path INTEGER NOT NULL,"
	" parent INTEGER, src_size INTEGER NOT NULL, src_root BLOB NOT NULL, children BLOB NOT NULL,"
	" derived INTEGER NOT NULL, PRIMARY KEY(magu, fragment)) WITHOUT ROWID;"
	/* derived from the chain, outside the state root */
	"CREATE TABLE IF NOT EXISTS roots(height INTEGER PRIMARY KEY, root BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS effects(height INTEGER PRIMARY KEY, data BLOB NOT NULL);";


/* The state tables in digest order, each with its key order. */
const lg_store_table lg_store_state_tables[] = {
	{"accounts", "pk"}, {"unbonding", "release_height, pk"}, {"indexers", "pk"},
	{"magus", "name"}, {"slots", "magu, slot"}, {"fragments", "magu, fragment"},
	{"root_votes", "magu, fragment, size, signer"}, {"failovers", "magu, fragment, requester"},
	{"challenges", "id"}, {"proposals", "id"}, {"votes", "proposal, voter"},
	{"params", "name"}, {"counters", "name"}, {"replicas", "position"}, {"gateways", "pk"},
	{"txs", "hash"}, {"allowances", "searcher, gateway"}, {"receipts", "gateway, id"},
	{"payouts", "node, seq"}, {"earnings", "node"}, {"double_roots", "signer, magu, fragment, size"},
	{"answer_frauds", "signer, digest"}, {"handovers", "magu, fragment, leaver"},
	{"api_keys", "hash"}, {"access", "magu"}, {"cells", "magu, fragment"},
};
const size_t lg_store_state_table_count = sizeof(lg_store_state_tables) / sizeof(lg_store_state_tables[0]);

const char *const lg_store_stmt_sql[S_HEAD_COUNT] = {
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
	[S_FRAG_COUNT] = "SELECT COUNT(*) FROM fragments f WHERE committed_size > 0 AND NOT EXISTS"
			 " (SELECT 1 FROM cells c WHERE c.magu = f.magu AND c.fragment = f.fragment"
			 " AND c.state = 3)",
	[S_FRAG_NTH] = "SELECT magu, fragment, epoch, primary_pk, replicas, committed_size,"
		       " committed_root, committed_height, signers FROM fragments"
		       " f WHERE committed_size > 0 AND NOT EXISTS (SELECT 1 FROM cells c WHERE"
		       " c.magu = f.magu AND c.fragment = f.fragment AND c.state = 3)"
		       " ORDER BY magu, fragment LIMIT 1 OFFSET ?1",
	[S_RVOTE_PUT] = "INSERT OR REPLACE INTO root_votes(magu, fragment, size, signer, root)"
			" VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_RVOTE_DEL] = "DELETE FROM root_votes WHERE magu = ?1 AND fragment = ?2 AND size = ?3"
			" AND signer = ?4",
	[S_RVOTES] = "SELECT signer, root FROM root_votes WHERE magu = ?1 AND fragment = ?2"
		     " AND size = ?3 ORDER BY signer",
	[S_RVOTE_KEYS] = "SELECT size, signer FROM root_votes WHERE magu = ?1 AND fragment = ?2"
			 " ORDER BY size, signer",
	[S_FAILOVER_PUT] = "INSERT OR REPLACE INTO failovers(magu, fragment, requester, epoch, log_size,"
			   " last_epoch, root) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_FAILOVER_DEL] = "DELETE FROM failovers WHERE magu = ?1 AND fragment = ?2 AND requester = ?3",
	[S_FAILOVERS] = "SELECT requester, epoch, log_size, last_epoch, root FROM failovers WHERE magu = ?1"
			" AND fragment = ?2 AND epoch = ?3 ORDER BY requester",
	[S_FAILOVER_KEYS] = "SELECT requester, epoch, log_size, last_epoch, root FROM failovers WHERE magu = ?1"
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
	[S_HO_PUT] = "INSERT OR REPLACE INTO handovers(magu, fragment, leaver, start_height, pending)"
		     " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_HO_DEL] = "DELETE FROM handovers WHERE magu = ?1 AND fragment = ?2 AND leaver = ?3",
	[S_HO_OF] = "SELECT magu, fragment, leaver, start_height, pending FROM handovers WHERE magu = ?1"
		    " AND fragment = ?2 ORDER BY leaver",
	[S_HO_ALL] = "SELECT magu, fragment, leaver, start_height, pending FROM handovers"
		     " ORDER BY magu, fragment, leaver",
	[S_HO_LEAVER] = "SELECT 1 FROM handovers WHERE leaver = ?1 LIMIT 1",
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
	[S_RCPT_HAS] = "SELECT 1 FROM receipts WHERE gateway = ?1 AND id = ?2",
	[S_RCPT_PUT] = "INSERT INTO receipts(gateway, id, seq, magu, searcher, fee, payouts, height,"
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
	[S_AFRAUD_HAS] = "SELECT 1 FROM answer_frauds WHERE signer = ?1 AND digest = ?2",
	[S_AFRAUD_PUT] = "INSERT OR REPLACE INTO answer_frauds(signer, digest) VALUES (?1, ?2)",
	[S_KEY_GET] = "SELECT hash, account, scope, expiry, collections, label, created_height, revoked_height"
		      " FROM api_keys WHERE hash = ?1",
	[S_KEY_PUT] = "INSERT OR REPLACE INTO api_keys(hash, account, scope, expiry, collections, label,"
		      " created_height, revoked_height) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_KEYS_OF] = "SELECT hash, account, scope, expiry, collections, label, created_height, revoked_height"
		      " FROM api_keys WHERE account = ?1 ORDER BY hash LIMIT ?2",
	[S_ACCESS_GET] = "SELECT magu, owner, readers, writers, public_read, changed_height FROM access"
			 " WHERE magu = ?1",
	[S_ACCESS_PUT] = "INSERT OR REPLACE INTO access(magu, owner, readers, writers, public_read,"
			 " changed_height) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_ACCESS_DEL] = "DELETE FROM access WHERE magu = ?1",
	[S_CELL_GET] = "SELECT state, base, depth, path, parent, src_size, src_root, children, derived"
		       " FROM cells WHERE magu = ?1 AND fragment = ?2",
	[S_CELL_PUT] = "INSERT OR REPLACE INTO cells(magu, fragment, state, base, depth, path, parent,"
		       " src_size, src_root, children, derived)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_CELL_DEL] = "DELETE FROM cells WHERE magu = ?1 AND fragment = ?2",
};

