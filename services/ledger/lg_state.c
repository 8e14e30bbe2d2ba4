/* The deterministic state machine of the ledger (DESIGN.md, "The ledger").
 *
 * Execution of a block (lg_state_apply), all in one SQLite transaction:
 *   1. begin-block: release unbonded stake due at this height; decide the
 *      proposals whose apply height is this one (parameters change here).
 *   2. each transaction in order (exec_tx); those beyond block_max_txs or
 *      block_max_bytes fail unexecuted.
 *   3. end-block: challenges past their deadline fail (slash); every
 *      challenge_interval blocks, new challenges are drawn from the beacon;
 *      the block's fees go to its proposer.
 *   4. the block row, the tx outcomes, the block's effects (lg_st_effects.c:
 *      what followers need to know changed) and the new state root over the
 *      write set and the effects (kept per height); COMMIT.
 *
 * Transaction rule. A tx that cannot be decoded, is for another chain, has a
 * bad signature, comes from an unknown account, has the wrong nonce, a fee
 * below min_fee or a balance below its fee is FAILED and changes nothing.
 * Otherwise the fee is charged and the nonce consumed, and the payload runs
 * inside a savepoint: if it fails (insufficient balance, unknown target, ...)
 * the payload's changes are undone and the tx is FAILED, having paid its fee.
 * Charging failed payloads keeps spam costly, and consuming the nonce makes
 * a failed tx final: it can never execute later. Noop (benchmarks, only with
 * allow_noop) touches no account; with unsigned_noops (fixed at genesis, so
 * every replica decides alike) a Noop whose signature does not verify
 * executes too, and nothing else does.
 *
 * State root. For a block h >= 1,
 *   root_h = H(CM_DOM_STATE || root_{h-1} || cm_put_be64(h) || W_h || E_h),
 * where W_h is lg_store_writeset_hash(): the hash of the sorted list of
 * (table, key, final value or deletion) that block h wrote, tx outcomes
 * included; and E_h = H(CM_DOM_STATE || 'E' || enc) binds the block's
 * BlockEffects (lg_st_effects.c), enc being protobuf-c's packing of the
 * message as the state machine built it, with state_root and write_set_hash
 * unset: fields in number order, zero scalars and empty lists omitted, no
 * maps and no unknown fields, so every replica packs the same content to the
 * same bytes. The stored and served effects are that message with
 * state_root = root_h and write_set_hash = W_h added, so a follower re-packs
 * them without the two and recomputes root_h (cm_follower.h). root_0 =
 * H(CM_DOM_STATE || genesis digest || cm_put_be64(0) || W_0), genesis having
 * no effects. A Merkle tree over the whole state would also prove single
 * rows, but it costs a tree update per written row and a second copy of the
 * state; the chained write-set hash costs one sort and one hash pass per
 * block, and replicas still agree on the root iff they applied the same
 * changes and recorded the same effects from the same genesis; a certified
 * root at height H vouches for every effects content at heights <= H.
 * lg_store_state_digest() hashes the full state for audits and tests.
 *
 * The handlers live by concept in lg_st_accounts.c, lg_st_staking.c,
 * lg_st_magu.c, lg_st_roots.c, lg_st_evidence.c, lg_st_settle.c and lg_st_gov.c; the queries in
 * lg_query.c; what they share in lg_state_int.h.
 *
 * Determinism: integers only, every list read in key order (ORDER BY), no
 * clock, and randomness only from the block's beacon. */
#include "lg_state_int.h"
#include "lg_genesis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by enum param_id. */
static const lg_param_def params[P_COUNT] = {
	[P_BLOCK_MAX_BYTES] = {"block_max_bytes", 16 << 20, 64 << 10, 256 << 20, 1,
			       "bytes of transactions a block may carry"},
	[P_BLOCK_MAX_TXS] = {"block_max_txs", 10000, 1, 100000, 1, "transactions a block may carry"},
	[P_CHALLENGE_DEADLINE] = {"challenge_deadline", 20000, 1, 1000000, 1,
				  "blocks an indexer has to answer a challenge"},
	[P_CHALLENGE_INTERVAL] = {"challenge_interval", 1000, 1, 1000000, 1,
				  "challenges are drawn every this many blocks"},
	[P_CHALLENGE_LEAVES] = {"challenge_leaves", 4, 1, LG_LEAVES_MAX, 1, "leaves asked per challenge"},
	[P_CHALLENGES_PER_ROUND] = {"challenges_per_round", 4, 0, 1024, 1,
				    "fragments challenged per round (0 disables challenges)"},
	[P_FRAGMENTS_DEFAULT] = {"fragments_default", 16, 1, LG_FRAGMENTS_MAX, 1,
				 "fragments of a Magu created with fragments = 0"},
	[P_MAGU_MAX_MEMBERS] = {"magu_max_members", 64, 1, MAGU_MEMBERS_MAX, 1,
				"most indexers one Magu is spread over"},
	[P_MAX_FAILURES] = {"max_failures", 3, 1, 1000, 1,
			    "failed challenges after which an indexer is jailed and leaves its Magus"},
	[P_MIN_DEPOSIT] = {"min_deposit", 100, 0, INT64_MAX, 1, "smallest CreateMagu deposit"},
	[P_MIN_FEE] = {"min_fee", 0, 0, INT64_MAX, 1, "smallest transaction fee"},
	[P_MIN_STAKE] = {"min_stake", 1000, 1, INT64_MAX, 1, "stake an indexer needs to be active"},
	[P_PROPOSAL_MAX_DELAY] = {"proposal_max_delay", 100000, 1, 10000000, 1,
				  "furthest apply height of a proposal, in blocks from now"},
	[P_REPLICATION_DEFAULT] = {"replication_default", 3, 1, LG_REPLICATION_MAX, 1,
				   "replicas of a fragment of a Magu created with replication = 0"},
	[P_SEARCH_FEE] = {"search_fee", 1, 1, INT64_MAX, 1, "smallest fee of one search receipt"},
	[P_SLASH_AMOUNT] = {"slash_amount", 100, 0, INT64_MAX, 1, "stake taken per failed challenge"},
	[P_UNBONDING_DELAY] = {"unbonding_delay", 100, 1, 10000000, 1,
			       "blocks between Unstake and the stake's return to the balance"},
	[P_ALLOW_NOOP] = {"allow_noop", 0, 0, 1, 0, "accept Noop payloads (benchmarks only)"},
	[P_UNSIGNED_NOOPS] = {"unsigned_noops", 0, 0, 1, 0,
			      "accept Noop transactions without a signature (benchmarks only)"},
	[P_DOUBLE_ROOT_SLASH] = {"double_root_slash", 1000, 0, INT64_MAX, 1,
				 "stake taken from a signer of two roots for one (magu, fragment, size)"},
	[P_DOUBLE_ROOT_REWARD_PCT] = {"double_root_reward_pct", 10, 0, 100, 1,
				      "percent of a double-root slash paid to its reporter (the rest is burnt)"},
	[P_ANSWER_FRAUD_SLASH] = {"answer_fraud_slash", 1000, 0, INT64_MAX, 1,
				  "stake taken from a signer of a search answer its committed log contradicts"},
	[P_ANSWER_FRAUD_REWARD_PCT] = {"answer_fraud_reward_pct", 10, 0, 100, 1,
				       "percent of an answer-fraud slash paid to its reporter (the rest is burnt)"},
	[P_HANDOVER_DEADLINE] = {"handover_deadline", 2000, 1, 10000000, 1,
				 "blocks an unstaking replica stays while its replacements catch up; then it is removed anyway"},
	[P_SPLIT_SIZE] = {"split_size", 10000000, 0, INT64_MAX, 1,
			  "log entries at which a fragment's committed root makes it split in two (0: only by its owner)"},
	[P_MAX_FILL] = {"max_fill", 800, 1, 1000, 1,
			"per mille of its registered capacity an indexer is filled to, at most, by new placements"},
	[P_RECORD_OVERHEAD] = {"record_overhead", 768, 0, 1 << 20, 1,
			       "bytes per record beside the vector itself in the fill estimate (index and metadata)"},
};

const lg_param_def *lg_param_find(const char *name)
{
	for (size_t i = 0; name && i < P_COUNT; i++)
		if (strcmp(params[i].name, name) == 0)
			return &params[i];
	return NULL;
}

size_t lg_param_count(void)
{
	return P_COUNT;
}

const lg_param_def *lg_param_at(size_t i)
{
	return i < P_COUNT ? &params[i] : NULL;
}

int lg_st_err(lg_state *st, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* Records why the current tx fails; returns TX_FAIL. */
int lg_st_fail(lg_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	return TX_FAIL;
}

/* Records what the current tx did; returns TX_OK. */
int lg_st_note(lg_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	return TX_OK;
}

static int load_params(lg_state *st)
{
	lg_named *p;
	size_t n;
	int rc;
	for (size_t i = 0; i < P_COUNT; i++)
		st->param[i] = params[i].def;
	if ((rc = lg_store_params(st->store, &p, &n)) != CM_OK)
		return lg_st_err(st, rc, "read parameters: %s", lg_store_errmsg(st->store));
	for (size_t i = 0; i < n; i++) {
		const lg_param_def *d = lg_param_find(p[i].name);
		if (d)
			st->param[d - params] = p[i].value;
	}
	free(p);
	return CM_OK;
}

/* Reads an account; a missing one reads as empty with the key set. */
int lg_st_account(lg_state *st, const uint8_t pk[LG_KEY_BYTES], lg_account *a)
{
	int rc = lg_store_account_get(st->store, pk, a);
	if (rc == CM_ERR_NOTFOUND) {
		memset(a, 0, sizeof(*a));
		memcpy(a->pk, pk, LG_KEY_BYTES);
		return CM_OK;
	}
	return rc;
}

/* counter += add, then counter -= sub, floored at 0. */
int lg_st_add_counter(lg_state *st, const char *name, uint64_t add, uint64_t sub)
{
	uint64_t v;
	int rc = lg_store_counter_get(st->store, name, &v);
	if (rc != CM_OK)
		return rc;
	v += add;
	v = sub > v ? 0 : v - sub;
	return lg_store_counter_put(st->store, name, v);
}

/* A Magu created or dropped by t (outcome rc) takes or loses its access lists. */
static int with_access(lg_state *st, const Muri__V1__Transaction *t, int rc)
{
	if (rc != TX_OK)
		return rc;
	int r = t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU
			? lg_st_access_created(st, t)
			: lg_st_access_dropped(st, t->drop_magu->name);
	return r == CM_OK ? TX_OK : r;
}

static int run_payload(lg_state *st, const Muri__V1__Transaction *t)
{
	switch (t->payload_case) {
	case MURI__V1__TRANSACTION__PAYLOAD_REGISTER_INDEXER: return lg_st_register(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_STAKE: return lg_st_stake(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_UNSTAKE: return lg_st_unstake(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU: return with_access(st, t, lg_st_create_magu(st, t));
	case MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU: return with_access(st, t, lg_st_drop_magu(st, t));
	case MURI__V1__TRANSACTION__PAYLOAD_COMMIT_ROOT: return lg_st_commit_root(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_ANSWER_CHALLENGE: return lg_st_answer(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_SETTLE: return lg_st_settle(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_FAILOVER: return lg_st_failover(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_PROPOSE: return lg_st_propose(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_VOTE: return lg_st_vote(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_APPROVE: return lg_st_approve(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_REPORT_DOUBLE_ROOT: return lg_st_double_root(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_REPORT_ANSWER: return lg_st_report_answer(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY: return lg_st_create_api_key(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY: return lg_st_revoke_api_key(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS: return lg_st_set_access(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_SPLIT_FRAGMENT: return lg_st_split_fragment(st, t);
	default: return lg_st_fail(st, "payload: not executable here");
	}
}

/* Runs a decoded tx: TX_OK, TX_FAIL or a negative store error. */
static int execute(lg_state *st, const Muri__V1__Transaction *t)
{
	lg_account sender;
	lg_fx_mark fx;
	int rc, out;

	if (t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_NOOP)
		return st->param[P_ALLOW_NOOP] ? TX_OK
					       : lg_st_fail(st, "noop: not enabled on this chain (allow_noop)");
	rc = lg_store_account_get(st->store, t->sender.data, &sender);
	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "sender: unknown account %s", lg_st_kh(t->sender.data).s);
	if (rc != CM_OK)
		return rc;
	if (t->nonce != sender.nonce)
		return lg_st_fail(st, t->nonce < sender.nonce ? "nonce: %llu was used already (next is %llu)"
							  : "nonce: %llu is ahead of the next nonce %llu",
			       (unsigned long long)t->nonce, (unsigned long long)sender.nonce);
	if (t->fee < lg_st_pu(st, P_MIN_FEE))
		return lg_st_fail(st, "fee: %llu is below min_fee %llu", (unsigned long long)t->fee,
			       (unsigned long long)lg_st_pu(st, P_MIN_FEE));
	if (sender.balance < t->fee)
		return lg_st_fail(st, "fee: insufficient balance %llu for the fee %llu",
			       (unsigned long long)sender.balance, (unsigned long long)t->fee);
	sender.balance -= t->fee;
	sender.nonce++;
	st->fees += t->fee;
	if (t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_TRANSFER)
		return lg_st_transfer(st, t, &sender); /* writes the sender once */
	if ((rc = lg_store_account_put(st->store, &sender)) != CM_OK ||
	    (rc = lg_store_savepoint(st->store)) != CM_OK)
		return rc;
	lg_st_fx_mark(st, &fx);
	out = run_payload(st, t);
	if (out == TX_FAIL) {
		lg_st_fx_rewind(st, &fx); /* the payload's effects go with its changes */
		rc = lg_store_rollback_to(st->store);
	}
	else if (out == TX_OK)
		rc = lg_store_release(st->store);
	else
		rc = out;
	return rc != CM_OK ? rc : out;
}

enum outcome_kind {
	O_COMMITTED,
	O_FAILED,       /* executed, or refused for nonce, fee or balance */
	O_UNAUTH,       /* refused before the signature was checked or because it failed */
};

/* Records a tx outcome in the tx index. A COMMITTED entry is final (a
 * replayed copy fails without hiding it); an authenticated outcome replaces
 * a FAILED entry; an unauthenticated failure (undecodable, another chain, a
 * bad signature, over the block limits) is written only where the hash has
 * no entry, since anyone can pair a victim's body (the hash) with a garbage
 * signature. */
static int record(lg_state *st, const uint8_t hash[CM_HASH_BYTES], uint32_t index,
		  enum outcome_kind kind)
{
	lg_txrec r, old;
	int rc;

	memcpy(r.hash, hash, CM_HASH_BYTES);
	r.height = lg_st_height(st);
	r.index = index;
	r.state = kind == O_COMMITTED ? MURI__V1__TX_STATE__TX_COMMITTED : MURI__V1__TX_STATE__TX_FAILED;
	snprintf(r.message, sizeof(r.message), "%s", st->msg);
	if (kind != O_COMMITTED && (rc = lg_store_tx_get(st->store, hash, &old)) != CM_ERR_NOTFOUND) {
		if (rc != CM_OK)
			return rc;
		if (old.state == MURI__V1__TX_STATE__TX_COMMITTED || kind == O_UNAUTH)
			goto observe;
	}
	if ((rc = lg_store_tx_put(st->store, &r)) != CM_OK)
		return rc;
observe:
	{
		if (st->nouts == st->outs_cap) {
			size_t cap = st->outs_cap ? 2 * st->outs_cap : 256;
			outcome *no = realloc(st->outs, cap * sizeof(*no));
			if (!no)
				return CM_ERR_NOMEM;
			st->outs = no;
			st->outs_cap = cap;
		}
		outcome *o = &st->outs[st->nouts++];
		memcpy(o->hash, hash, CM_HASH_BYTES);
		o->index = index;
		o->state = (Muri__V1__TxState)r.state;
		memcpy(o->msg, r.message, sizeof(o->msg));
	}
	return CM_OK;
}

static int exec_tx(lg_state *st, const Muri__V1__SignedTransaction *stx, uint32_t index,
		   unsigned flags)
{
	lg_tx tx = {0};
	uint8_t hash[CM_HASH_BYTES];
	int rc, out;

	st->msg[0] = '\0';
	rc = lg_tx_open(stx, st->chain_id, (flags & LG_APPLY_SIGS_VERIFIED) ? LG_TX_SKIP_SIG : 0, &tx,
			st->msg, sizeof(st->msg));
	if (rc == CM_ERR_VERIFY && st->param[P_UNSIGNED_NOOPS]) {
		/* a chain whose genesis accepts unsigned Noops: only a Noop passes */
		char why[LG_MSG_MAX];
		if (lg_tx_open(stx, st->chain_id, LG_TX_SKIP_SIG, &tx, why, sizeof(why)) == CM_OK) {
			if (tx.body->payload_case == MURI__V1__TRANSACTION__PAYLOAD_NOOP)
				rc = CM_OK;
			else
				lg_tx_close(&tx);
		}
	}
	if (rc != CM_OK) {
		if (stx)
			lg_tx_hash(stx->body.data, stx->body.len, hash);
		else
			lg_tx_hash(NULL, 0, hash);
		return record(st, hash, index, O_UNAUTH);
	}
	memcpy(st->tx_hash, tx.hash, CM_HASH_BYTES);
	out = execute(st, tx.body);
	rc = out < 0 ? out : record(st, tx.hash, index, out == TX_FAIL ? O_FAILED : O_COMMITTED);
	lg_tx_close(&tx);
	return rc;
}

/* A tx beyond block_max_txs or block_max_bytes: proposers must not build
 * such blocks, and if one commits anyway its excess fails, the same on every
 * replica, without being executed. */
static int over_limit(lg_state *st, const Muri__V1__SignedTransaction *stx, uint32_t index)
{
	uint8_t hash[CM_HASH_BYTES];
	lg_tx_hash(stx ? stx->body.data : NULL, stx ? stx->body.len : 0, hash);
	snprintf(st->msg, sizeof(st->msg), "block: beyond block_max_txs = %llu or block_max_bytes = %llu",
		 (unsigned long long)lg_st_pu(st, P_BLOCK_MAX_TXS), (unsigned long long)lg_st_pu(st, P_BLOCK_MAX_BYTES));
	return record(st, hash, index, O_UNAUTH);
}

int lg_state_apply(lg_state *st, const lg_block_in *b, unsigned flags, uint8_t root[CM_HASH_BYTES])
{
	uint8_t ws[CM_HASH_BYTES], new_root[CM_HASH_BYTES];
	lg_block_rec rec;
	size_t bytes = 0;
	int rc;

	if (!b || (b->ntxs && !b->txs))
		return lg_st_err(st, CM_ERR_INVALID, "apply: no block");
	if (b->height != st->height + 1)
		return lg_st_err(st, CM_ERR_RANGE, "apply: block %llu does not follow height %llu",
			       (unsigned long long)b->height, (unsigned long long)st->height);
	if ((rc = lg_store_begin(st->store)) != CM_OK)
		return lg_st_err(st, rc, "apply: %s", lg_store_errmsg(st->store));
	st->blk = b;
	st->fees = 0;
	st->nouts = 0;
	lg_st_fx_reset(st);
	st->err[0] = '\0';
	if ((rc = lg_st_handover_expire(st)) != CM_OK || (rc = lg_st_release_unbonded(st)) != CM_OK ||
	    (rc = lg_st_decide_proposals(st)) != CM_OK)
		goto fail;
	for (size_t i = 0; i < b->ntxs; i++) {
		size_t len = b->txs[i] ? b->txs[i]->body.len : 0;
		bytes = bytes + len < bytes ? SIZE_MAX : bytes + len;
		if (i >= lg_st_pu(st, P_BLOCK_MAX_TXS) || bytes > lg_st_pu(st, P_BLOCK_MAX_BYTES))
			rc = over_limit(st, b->txs[i], (uint32_t)i);
		else
			rc = exec_tx(st, b->txs[i], (uint32_t)i, flags);
		if (rc != CM_OK)
			goto fail;
	}
	if ((rc = lg_st_expire_challenges(st)) != CM_OK || (rc = lg_st_issue_challenges(st)) != CM_OK ||
	    (rc = lg_st_pay_fees(st)) != CM_OK)
		goto fail;
	lg_store_writeset_hash(st->store, ws);
	if ((rc = lg_st_fx_write(st, b->height, st->root, ws, new_root)) != CM_OK)
		goto fail;
	memset(&rec, 0, sizeof(rec));
	rec.height = b->height;
	memcpy(rec.hash, b->hash, CM_HASH_BYTES);
	memcpy(rec.state_root, new_root, CM_HASH_BYTES);
	rec.ntxs = (uint32_t)b->ntxs;
	rec.header = b->header;
	rec.header_len = b->header_len;
	rec.payload = b->payload;
	rec.payload_len = b->payload_len;
	rec.qc = b->qc;
	rec.qc_len = b->qc_len;
	if ((rc = lg_store_put_block(st->store, &rec)) != CM_OK ||
	    (rc = lg_store_commit(st->store, b->height, new_root)) != CM_OK)
		goto fail;
	st->height = b->height;
	memcpy(st->root, new_root, CM_HASH_BYTES);
	st->blk = NULL;
	if (root)
		memcpy(root, new_root, CM_HASH_BYTES);
	for (size_t i = 0; st->obs && i < st->nouts; i++)
		st->obs(st->obs_arg, b->height, (uint32_t)i, st->outs[i].hash, st->outs[i].state,
			st->outs[i].msg);
	return CM_OK;
fail:
	if (!st->err[0]) /* else the state machine said why */
		lg_st_err(st, rc, "%s", rc == CM_ERR_NOMEM ? "out of memory" : lg_store_errmsg(st->store));
	{
		char why[sizeof(st->err)];
		memcpy(why, st->err, sizeof(why));
		lg_st_err(st, rc, "apply block %llu: %.400s", (unsigned long long)b->height, why);
	}
	lg_store_rollback(st->store);
	st->blk = NULL;
	load_params(st); /* governance may have changed the cache */
	return rc;
}

/* ---- genesis, open, close ---- */

static int apply_genesis(lg_state *st, const lg_genesis *g)
{
	static const lg_block_in zero_block;
	uint8_t digest[CM_HASH_BYTES], ws[CM_HASH_BYTES], tb[8];
	uint64_t staked = 0;
	int rc;

	if ((rc = lg_genesis_digest(g, digest)) != CM_OK)
		return lg_st_err(st, rc, "genesis: out of memory");
	if ((rc = lg_store_begin(st->store)) != CM_OK)
		return lg_st_err(st, rc, "genesis: %s", lg_store_errmsg(st->store));
	st->blk = &zero_block;
	for (size_t i = 0; i < P_COUNT; i++)
		st->param[i] = params[i].def;
	for (size_t i = 0; i < g->nparams; i++)
		st->param[lg_param_find(g->params[i].name) - params] = g->params[i].value;
	/* Parameters added after the first chains (P_MAX_FILL on) are stored
	 * only when the genesis sets them to other than their default, so the
	 * genesis state, and every state root after it, of a chain that predates
	 * them stays the same; a missing row reads as the default. */
	for (size_t i = 0; i < P_COUNT && rc == CM_OK; i++)
		if (i < P_MAX_FILL || st->param[i] != params[i].def)
			rc = lg_store_param_put(st->store, params[i].name, st->param[i]);
	for (size_t i = 0; i < g->nreplicas && rc == CM_OK; i++) {
		lg_replica r = {(uint32_t)i, {0}, {0}};
		memcpy(r.pk, g->replicas[i].pk, LG_KEY_BYTES);
		snprintf(r.address, sizeof(r.address), "%s", g->replicas[i].address);
		rc = lg_store_replica_put(st->store, &r);
	}
	for (size_t i = 0; i < g->ngateways && rc == CM_OK; i++)
		rc = lg_store_gateway_put(st->store, g->gateways[i]);
	for (size_t i = 0; i < g->naccounts && rc == CM_OK; i++) {
		lg_account a = {{0}, g->accounts[i].balance, 0, 0, 0};
		memcpy(a.pk, g->accounts[i].pk, LG_KEY_BYTES);
		rc = lg_store_account_put(st->store, &a);
	}
	for (size_t i = 0; i < g->nindexers && rc == CM_OK; i++) {
		const lg_genesis_indexer *x = &g->indexers[i];
		lg_account a;
		lg_indexer ix;
		if ((rc = lg_st_account(st, x->pk, &a)) != CM_OK)
			break;
		a.staked = x->stake;
		staked += x->stake;
		memset(&ix, 0, sizeof(ix));
		memcpy(ix.pk, x->pk, LG_KEY_BYTES);
		snprintf(ix.address, sizeof(ix.address), "%s", x->address);
		ix.capacity = x->capacity;
		ix.active = x->stake >= lg_st_pu(st, P_MIN_STAKE);
		if ((rc = lg_store_account_put(st->store, &a)) == CM_OK)
			rc = lg_store_indexer_put(st->store, &ix);
	}
	if (rc == CM_OK)
		rc = lg_store_counter_put(st->store, C_TOTAL_STAKED, staked);
	if (rc == CM_OK)
		rc = lg_store_counter_put(st->store, C_GENESIS_TIME, g->genesis_time_ms);
	if (rc == CM_OK)
		rc = lg_store_meta_put(st->store, "chain_id", g->chain_id, strlen(g->chain_id));
	if (rc == CM_OK)
		rc = lg_store_meta_put(st->store, "genesis_digest", digest, sizeof(digest));
	cm_put_be64(tb, g->genesis_time_ms);
	if (rc == CM_OK)
		rc = lg_store_meta_put(st->store, "genesis_time_ms", tb, sizeof(tb));
	st->blk = NULL;
	if (rc != CM_OK) {
		lg_st_err(st, rc, "genesis: %s", lg_store_errmsg(st->store));
		lg_store_rollback(st->store);
		return rc;
	}
	lg_store_writeset_hash(st->store, ws);
	cm_state_root_next(st->root, digest, 0, ws, NULL);
	if ((rc = lg_store_commit(st->store, 0, st->root)) != CM_OK)
		return lg_st_err(st, rc, "genesis: %s", lg_store_errmsg(st->store));
	st->height = 0;
	snprintf(st->chain_id, sizeof(st->chain_id), "%s", g->chain_id);
	return CM_OK;
}

int lg_state_open(lg_state **out, const char *path, const lg_genesis *genesis, char *err,
		  size_t errlen)
{
	lg_state *st = calloc(1, sizeof(*st));
	uint8_t digest[CM_HASH_BYTES], stored[CM_HASH_BYTES];
	size_t n;
	int rc;

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	if ((rc = lg_store_open(&st->store, path, 0, err, errlen)) != CM_OK) {
		free(st);
		return rc;
	}
	rc = lg_store_head(st->store, &st->height, st->root);
	if (rc == CM_ERR_NOTFOUND) {
		if (!genesis) {
			snprintf(err, errlen, "%s: a new store needs a genesis file", path);
			lg_state_close(st);
			return CM_ERR_INVALID;
		}
		if ((rc = apply_genesis(st, genesis)) != CM_OK) {
			snprintf(err, errlen, "%s", st->err);
			lg_state_close(st);
			return rc;
		}
	} else if (rc != CM_OK) {
		snprintf(err, errlen, "%s: %s", path, lg_store_errmsg(st->store));
		lg_state_close(st);
		return rc;
	} else {
		if ((rc = lg_store_meta_get(st->store, "chain_id", st->chain_id, LG_CHAIN_ID_MAX, &n)) != CM_OK ||
		    n > LG_CHAIN_ID_MAX) {
			snprintf(err, errlen, "%s: no chain id in the store", path);
			lg_state_close(st);
			return CM_ERR_INVALID;
		}
		st->chain_id[n] = '\0';
		if (genesis) {
			if ((rc = lg_genesis_digest(genesis, digest)) != CM_OK ||
			    (rc = lg_store_meta_get(st->store, "genesis_digest", stored, sizeof(stored), &n)) != CM_OK ||
			    n != sizeof(stored) || memcmp(digest, stored, sizeof(stored)) != 0) {
				snprintf(err, errlen, "%s: the genesis file differs from the one this store was created with",
					 path);
				lg_state_close(st);
				return CM_ERR_INVALID;
			}
		}
	}
	if ((rc = load_params(st)) != CM_OK) {
		snprintf(err, errlen, "%s", st->err);
		lg_state_close(st);
		return rc;
	}
	*out = st;
	return CM_OK;
}

void lg_state_close(lg_state *st)
{
	if (!st)
		return;
	lg_store_close(st->store);
	free(st->outs);
	lg_st_fx_free(st);
	free(st);
}

const char *lg_state_errmsg(const lg_state *st)
{
	return st->err;
}

void lg_state_set_observer(lg_state *st, lg_tx_observer fn, void *arg)
{
	st->obs = fn;
	st->obs_arg = arg;
}

uint64_t lg_state_height(const lg_state *st)
{
	return st->height;
}

void lg_state_root(const lg_state *st, uint8_t out[CM_HASH_BYTES])
{
	memcpy(out, st->root, CM_HASH_BYTES);
}

const char *lg_state_chain_id(const lg_state *st)
{
	return st->chain_id;
}

void lg_state_block_limits(const lg_state *st, uint64_t *max_txs, uint64_t *max_bytes)
{
	*max_txs = lg_st_pu(st, P_BLOCK_MAX_TXS);
	*max_bytes = lg_st_pu(st, P_BLOCK_MAX_BYTES);
}

int64_t lg_state_param(const lg_state *st, const char *name)
{
	const lg_param_def *d = lg_param_find(name);
	return d ? st->param[d - params] : 0;
}

lg_store *lg_state_store(lg_state *st)
{
	return st->store;
}

