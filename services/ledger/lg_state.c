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
 *   4. the block row, the tx outcomes and the new state root; COMMIT.
 *
 * Transaction rule. A tx that cannot be decoded, is for another chain, has a
 * bad signature, comes from an unknown account, has the wrong nonce, a fee
 * below min_fee or a balance below its fee is FAILED and changes nothing.
 * Otherwise the fee is charged and the nonce consumed, and the payload runs
 * inside a savepoint: if it fails (insufficient balance, unknown target, ...)
 * the payload's changes are undone and the tx is FAILED, having paid its fee.
 * Charging failed payloads keeps spam costly, and consuming the nonce makes
 * a failed tx final: it can never execute later. Noop (benchmarks, only with
 * allow_noop) touches no account.
 *
 * Membership. A Magu has `slots` member seats, min(fragments x replication,
 * magu_max_members) but at least replication, filled at creation by a
 * stake-weighted draw without replacement among the active indexers, seeded
 * by the beacon. Fragments are placed by weighted rendezvous hashing
 * (cm_ring) on the seats, not on the indexers: when a member leaves (unstaked
 * below min_stake, or jailed after max_failures failed challenges), a
 * stake-weighted draw among active non-members takes its seat over and
 * exactly its fragments move; with no candidate the seat is vacated and only
 * its fragments move, to the next-ranked seats. An indexer that becomes
 * active fills the first vacant seat of every Magu and takes only the
 * fragments that rank that seat among their top replication. A changed
 * replica set bumps the fragment's epoch; the primary stays if it is still a
 * replica, else the first replica that was one before takes over.
 *
 * Trust. Settle is accepted from the gateways named in the genesis only: a
 * receipt does not carry the searcher's signature, so the gateway is trusted
 * to bill searchers for searches they made.
 *
 * State root. root_h = H(CM_DOM_STATE || root_{h-1} || cm_put_be64(h) || W_h), where
 * W_h is lg_store_writeset_hash(): the hash of the sorted list of (table,
 * key, final value or deletion) that block h wrote, tx outcomes included;
 * root_{-1} is the genesis digest. A Merkle tree over the whole state would
 * also prove single rows, but it costs a tree update per written row and a
 * second copy of the state; the chained write-set hash costs one sort and
 * one hash pass per block, and replicas still agree on the root iff they
 * applied the same changes from the same genesis. lg_store_state_digest()
 * hashes the full state for audits and tests.
 *
 * Determinism: integers only, every list read in key order (ORDER BY), no
 * clock, and randomness only from the block's beacon. */
#include "lg_state.h"
#include "cm_bytes.h"
#include "lg_genesis.h"
#include "lg_tx.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "cm_ring.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TX_OK 0
#define TX_FAIL 1                 /* the tx is recorded FAILED; st->msg says why */
#define KEY_MAX 256               /* bytes of a placement key */
#define SPLIT_SCALE 720720u       /* lcm(1..16): rank weights 1/(rank+1) exact to rank 15 */
#define MAGU_MEMBERS_MAX 256      /* hard bound of magu_max_members */

/* ---- parameters ---- */

enum param_id {
	P_BLOCK_MAX_BYTES,
	P_BLOCK_MAX_TXS,
	P_CHALLENGE_DEADLINE,
	P_CHALLENGE_INTERVAL,
	P_CHALLENGE_LEAVES,
	P_CHALLENGES_PER_ROUND,
	P_FRAGMENTS_DEFAULT,
	P_MAGU_MAX_MEMBERS,
	P_MAX_FAILURES,
	P_MIN_DEPOSIT,
	P_MIN_FEE,
	P_MIN_STAKE,
	P_PROPOSAL_MAX_DELAY,
	P_REPLICATION_DEFAULT,
	P_SEARCH_FEE,
	P_SLASH_AMOUNT,
	P_UNBONDING_DELAY,
	P_ALLOW_NOOP,
	P_UNSIGNED_NOOPS,
	P_DOUBLE_ROOT_SLASH,
	P_DOUBLE_ROOT_REWARD_PCT,
	P_COUNT
};

/* Indexed by enum param_id. */
static const lg_param_def params[P_COUNT] = {
	[P_BLOCK_MAX_BYTES] = {"block_max_bytes", 16 << 20, 64 << 10, 256 << 20, 1,
			       "bytes of transactions a block may carry"},
	[P_BLOCK_MAX_TXS] = {"block_max_txs", 10000, 1, 100000, 1, "transactions a block may carry"},
	[P_CHALLENGE_DEADLINE] = {"challenge_deadline", 20, 1, 1000000, 1,
				  "blocks an indexer has to answer a challenge"},
	[P_CHALLENGE_INTERVAL] = {"challenge_interval", 10, 1, 1000000, 1,
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

/* Counters of the state (table counters). */
#define C_TOTAL_STAKED "total_staked"
#define C_NEXT_CHALLENGE "last_challenge_id"
#define C_NEXT_PROPOSAL "last_proposal_id"
#define C_GENESIS_TIME "genesis_time_ms"

/* ---- the state ---- */

typedef struct outcome {
	uint8_t hash[CM_HASH_BYTES];
	Muri__V1__TxState state;
	char msg[LG_MSG_MAX];
} outcome;

struct lg_state {
	lg_store *store;
	char chain_id[LG_CHAIN_ID_MAX + 1];
	uint64_t height;
	uint8_t root[CM_HASH_BYTES];
	int64_t param[P_COUNT];   /* cache of the params table */
	lg_tx_observer obs;
	void *obs_arg;
	outcome *outs;            /* the block's outcomes, for the observer */
	size_t nouts, outs_cap;
	/* the block being executed */
	const lg_block_in *blk;
	uint64_t fees;
	char msg[LG_MSG_MAX];     /* outcome message of the tx being executed */
	char err[512];
};

static int set_err(lg_state *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(lg_state *st, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* Records why the current tx fails; returns TX_FAIL. */
static int fail_tx(lg_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_tx(lg_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	return TX_FAIL;
}

/* Records what the current tx did; returns TX_OK. */
static int note(lg_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int note(lg_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	return TX_OK;
}

/* The first 8 bytes of a key in hex, for messages. */
typedef struct keyhex {
	char s[17];
} keyhex;

static keyhex kh(const uint8_t *pk)
{
	keyhex k;
	cm_hex(k.s, pk, 8);
	return k;
}

static uint64_t height(const lg_state *st)
{
	return st->blk->height;
}

static uint64_t pu(const lg_state *st, enum param_id p)
{
	return (uint64_t)st->param[p];
}

static int key_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, LG_KEY_BYTES) == 0;
}

static int load_params(lg_state *st)
{
	lg_named *p;
	size_t n;
	int rc;
	for (size_t i = 0; i < P_COUNT; i++)
		st->param[i] = params[i].def;
	if ((rc = lg_store_params(st->store, &p, &n)) != CM_OK)
		return set_err(st, rc, "read parameters: %s", lg_store_errmsg(st->store));
	for (size_t i = 0; i < n; i++) {
		const lg_param_def *d = lg_param_find(p[i].name);
		if (d)
			st->param[d - params] = p[i].value;
	}
	free(p);
	return CM_OK;
}

/* Reads an account; a missing one reads as empty with the key set. */
static int account_or_new(lg_state *st, const uint8_t pk[LG_KEY_BYTES], lg_account *a)
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
static int add_counter(lg_state *st, const char *name, uint64_t add, uint64_t sub)
{
	uint64_t v;
	int rc = lg_store_counter_get(st->store, name, &v);
	if (rc != CM_OK)
		return rc;
	v += add;
	v = sub > v ? 0 : v - sub;
	return lg_store_counter_put(st->store, name, v);
}

/* ---- deterministic randomness from the beacon ---- */

typedef struct rng {
	uint8_t seed[CM_HASH_BYTES];
	uint64_t ctr;
} rng;

static void rng_init(rng *r, const char *label, const uint8_t beacon[CM_HASH_BYTES], uint64_t h)
{
	cm_hasher hs;
	uint8_t hb[8];
	cm_put_be64(hb, h);
	cm_hasher_init(&hs, CM_DOM_BEACON);
	cm_hasher_update(&hs, label, strlen(label) + 1);
	cm_hasher_update(&hs, beacon, CM_HASH_BYTES);
	cm_hasher_update(&hs, hb, sizeof(hb));
	cm_hasher_final(&hs, r->seed);
	r->ctr = 0;
}

static uint64_t rng_next(rng *r)
{
	uint8_t in[CM_HASH_BYTES + 8], out[CM_HASH_BYTES];
	uint64_t v = 0;
	memcpy(in, r->seed, CM_HASH_BYTES);
	cm_put_be64(in + CM_HASH_BYTES, r->ctr++);
	cm_hash(out, CM_DOM_BEACON, in, sizeof(in));
	for (int i = 0; i < 8; i++)
		v = v << 8 | out[i];
	return v;
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static uint64_t rng_below(rng *r, uint64_t n)
{
	uint64_t min = (0 - n) % n, x;
	do
		x = rng_next(r);
	while (x < min);
	return x % n;
}

/* ---- placement: members by stake, fragments on member slots ---- */

/* A placement key: label, NUL, name, NUL, then extra bytes. */
typedef struct pkey {
	uint8_t b[KEY_MAX];
	size_t n;
} pkey;

static void pkey_init(pkey *k, const char *label, const char *name)
{
	size_t a = strlen(label) + 1, b = strlen(name) + 1;
	memcpy(k->b, label, a);
	memcpy(k->b + a, name, b);
	k->n = a + b;
}

static void pkey_add(pkey *k, const void *p, size_t n)
{
	if (k->n + n <= KEY_MAX) {
		memcpy(k->b + k->n, p, n);
		k->n += n;
	}
}

/* Picks up to count distinct entries of cands, weighted by stake
 * (Efraimidis-Spirakis sampling via cm_ring's weighted rendezvous scores,
 * top-r taken 64 at a time), writing indices into out in draw order.
 * *got <= count; CM_ERR_NOMEM. */
static int draw_by_stake(const lg_staked *cands, size_t n, const pkey *key, size_t count,
			 size_t *out, size_t *got)
{
	cm_ring_node *nodes;
	size_t have = 0, idx[CM_RING_MAX_R], c;
	int rc = CM_OK;

	*got = 0;
	if (n == 0 || count == 0)
		return CM_OK;
	if (!(nodes = malloc(n * sizeof(*nodes))))
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(nodes[i].id, cands[i].pk, CM_RING_ID_BYTES);
		nodes[i].weight = cands[i].stake;
	}
	while (have < count) {
		size_t r = count - have < CM_RING_MAX_R ? count - have : CM_RING_MAX_R;
		if ((rc = cm_ring_place(nodes, n, key->b, key->n, r, idx, &c)) != CM_OK || c == 0)
			break;
		for (size_t j = 0; j < c; j++) {
			out[have++] = idx[j];
			nodes[idx[j]].weight = 0; /* without replacement */
		}
		if (c < r)
			break;
	}
	free(nodes);
	*got = have;
	return rc;
}

/* A slot's identity on the ring: fixed for the life of the Magu, whoever
 * holds it, so that replacing a member moves exactly its fragments. */
static void slot_id(uint8_t out[CM_RING_ID_BYTES], const char *magu, uint32_t slot)
{
	cm_hasher h;
	uint8_t sb[4];
	cm_put_be32(sb, slot);
	cm_hasher_init(&h, CM_DOM_STATE);
	cm_hasher_update(&h, "muri.slot", 10);
	cm_hasher_update(&h, magu, strlen(magu) + 1);
	cm_hasher_update(&h, sb, sizeof(sb));
	cm_hasher_final(&h, out);
}

/* The filled slots of a Magu as ring nodes (weight 1) with their holders. */
typedef struct slot_ring {
	cm_ring_node *nodes;
	uint8_t (*holders)[LG_KEY_BYTES];
	size_t n;
} slot_ring;

static void slot_ring_free(slot_ring *sr)
{
	free(sr->nodes);
	free(sr->holders);
	memset(sr, 0, sizeof(*sr));
}

static int slot_ring_build(slot_ring *sr, const char *magu, const lg_slot *slots, size_t n)
{
	memset(sr, 0, sizeof(*sr));
	sr->nodes = malloc((n ? n : 1) * sizeof(*sr->nodes));
	sr->holders = malloc((n ? n : 1) * LG_KEY_BYTES);
	if (!sr->nodes || !sr->holders) {
		slot_ring_free(sr);
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (!slots[i].filled)
			continue;
		slot_id(sr->nodes[sr->n].id, magu, slots[i].slot);
		sr->nodes[sr->n].weight = 1;
		memcpy(sr->holders[sr->n], slots[i].holder, LG_KEY_BYTES);
		sr->n++;
	}
	return CM_OK;
}

/* The replicas of a fragment, in ring order: the holders of the r best slots. */
static int place_fragment(const slot_ring *sr, const char *magu, uint32_t fragment, uint32_t r,
			  uint8_t out[][LG_KEY_BYTES], uint32_t *n)
{
	pkey k;
	uint8_t fb[4];
	size_t idx[CM_RING_MAX_R], c = 0;
	int rc;

	*n = 0;
	if (sr->n == 0)
		return CM_OK;
	pkey_init(&k, "muri.fragment", magu);
	cm_put_be32(fb, fragment);
	pkey_add(&k, fb, sizeof(fb));
	if ((rc = cm_ring_place(sr->nodes, sr->n, k.b, k.n, r, idx, &c)) != CM_OK)
		return rc;
	for (size_t i = 0; i < c; i++)
		memcpy(out[i], sr->holders[idx[i]], LG_KEY_BYTES);
	*n = (uint32_t)c;
	return CM_OK;
}

static int in_list(const uint8_t (*list)[LG_KEY_BYTES], uint32_t n, const uint8_t *pk)
{
	for (uint32_t i = 0; i < n; i++)
		if (key_eq(list[i], pk))
			return 1;
	return 0;
}

/* Gives fragment f the replica set repl (ring order). If it differs, the
 * epoch goes up by one, pending failover requests are dropped, and the
 * primary stays if it is still a replica, else becomes the first replica
 * that was one before (it has the data), else the first. */
static int reconfigure(lg_state *st, lg_fragment *f, const uint8_t (*repl)[LG_KEY_BYTES], uint32_t n)
{
	const uint8_t *primary = NULL;
	int rc;

	if (n == f->nreplicas && memcmp(repl, f->replicas, (size_t)n * LG_KEY_BYTES) == 0)
		return CM_OK;
	if (in_list(repl, n, f->primary))
		primary = f->primary;
	for (uint32_t i = 0; !primary && i < n; i++)
		if (in_list((const uint8_t(*)[LG_KEY_BYTES])f->replicas, f->nreplicas, repl[i]))
			primary = repl[i];
	if (!primary && n)
		primary = repl[0];
	if (primary)
		memmove(f->primary, primary, LG_KEY_BYTES);
	else
		memset(f->primary, 0, LG_KEY_BYTES);
	memcpy(f->replicas, repl, (size_t)n * LG_KEY_BYTES);
	f->nreplicas = n;
	f->epoch++;
	if ((rc = lg_store_failovers_clear(st->store, f->magu, f->fragment)) != CM_OK)
		return rc;
	return lg_store_fragment_put(st->store, f);
}

/* Re-places the fragments of a Magu over its current slots: every fragment
 * when only_with is NULL (a slot was filled), else only the fragments that
 * have only_with as a replica (its slot was vacated or handed over); by the
 * rendezvous property no other fragment can change. */
static int replace_fragments(lg_state *st, const lg_magu *m, const uint8_t *only_with)
{
	lg_slot *slots = NULL;
	lg_fragment *fr = NULL;
	size_t ns, nf;
	slot_ring sr = {0};
	uint8_t repl[LG_MAX_REPLICAS][LG_KEY_BYTES];
	uint32_t n;
	int rc;

	if ((rc = lg_store_slots_of_magu(st->store, m->name, &slots, &ns)) != CM_OK ||
	    (rc = lg_store_fragments_of(st->store, m->name, &fr, &nf)) != CM_OK ||
	    (rc = slot_ring_build(&sr, m->name, slots, ns)) != CM_OK)
		goto out;
	for (size_t i = 0; i < nf && rc == CM_OK; i++) {
		if (only_with && !in_list((const uint8_t(*)[LG_KEY_BYTES])fr[i].replicas, fr[i].nreplicas,
					  only_with))
			continue;
		if ((rc = place_fragment(&sr, m->name, fr[i].fragment, m->replication, repl, &n)) == CM_OK)
			rc = reconfigure(st, &fr[i], (const uint8_t(*)[LG_KEY_BYTES])repl, n);
	}
out:
	slot_ring_free(&sr);
	free(slots);
	free(fr);
	return rc;
}

/* pk (now inactive) leaves the Magu where it holds slot sl: a stake-weighted
 * draw among active indexers that are not members takes the slot over, or
 * the slot is left vacant; only pk's fragments move. */
static int leave_magu(lg_state *st, const lg_slot *held, const uint8_t *pk)
{
	lg_magu m;
	lg_slot *slots = NULL, sl = *held;
	lg_staked *act = NULL, *cand = NULL;
	size_t ns, na, nc = 0, pick[1], got = 0;
	pkey k;
	uint8_t sb[4], hb[8];
	int rc;

	if ((rc = lg_store_magu_get(st->store, held->magu, &m)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? set_err(st, CM_ERR_INTERNAL, "slot of a missing Magu") : rc;
	if ((rc = lg_store_slots_of_magu(st->store, m.name, &slots, &ns)) != CM_OK ||
	    (rc = lg_store_indexer_active(st->store, &act, &na)) != CM_OK)
		goto out;
	if (!(cand = malloc((na ? na : 1) * sizeof(*cand)))) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < na; i++) {
		int member = 0;
		for (size_t j = 0; j < ns && !member; j++)
			member = slots[j].filled && key_eq(slots[j].holder, act[i].pk);
		if (!member && !key_eq(act[i].pk, pk))
			cand[nc++] = act[i];
	}
	pkey_init(&k, "muri.replace", m.name);
	cm_put_be32(sb, sl.slot);
	cm_put_be64(hb, height(st));
	pkey_add(&k, sb, sizeof(sb));
	pkey_add(&k, st->blk->beacon, CM_HASH_BYTES);
	pkey_add(&k, hb, sizeof(hb));
	if ((rc = draw_by_stake(cand, nc, &k, 1, pick, &got)) != CM_OK)
		goto out;
	if (got) {
		memcpy(sl.holder, cand[pick[0]].pk, LG_KEY_BYTES);
		sl.filled = 1;
	} else {
		sl.filled = 0;
		memset(sl.holder, 0, LG_KEY_BYTES);
	}
	if ((rc = lg_store_slot_put(st->store, &sl)) == CM_OK)
		rc = replace_fragments(st, &m, pk);
out:
	free(slots);
	free(act);
	free(cand);
	return rc;
}

/* pk (now active) fills the first vacant slot of every Magu, by name, where
 * it is not a member yet. */
static int join_magus(lg_state *st, const uint8_t *pk)
{
	char(*names)[LG_NAME_MAX + 1] = NULL;
	size_t nn;
	int rc;

	if ((rc = lg_store_magu_names(st->store, &names, &nn)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nn && rc == CM_OK; i++) {
		lg_slot *slots = NULL;
		size_t ns, vacant = SIZE_MAX;
		int member = 0;
		lg_magu m;
		if ((rc = lg_store_slots_of_magu(st->store, names[i], &slots, &ns)) != CM_OK)
			break;
		for (size_t j = 0; j < ns; j++) {
			if (!slots[j].filled && vacant == SIZE_MAX)
				vacant = j;
			if (slots[j].filled && key_eq(slots[j].holder, pk))
				member = 1;
		}
		if (!member && vacant != SIZE_MAX) {
			slots[vacant].filled = 1;
			memcpy(slots[vacant].holder, pk, LG_KEY_BYTES);
			if ((rc = lg_store_slot_put(st->store, &slots[vacant])) == CM_OK &&
			    (rc = lg_store_magu_get(st->store, names[i], &m)) == CM_OK)
				rc = replace_fragments(st, &m, NULL);
		}
		free(slots);
	}
	free(names);
	return rc;
}

/* Brings an indexer's active flag in line with its stake and record, and
 * moves it out of or into Magus when the flag changes. */
static int refresh_indexer(lg_state *st, const uint8_t *pk)
{
	lg_indexer ix;
	lg_account a;
	lg_slot *held = NULL;
	size_t nh;
	int rc, want;

	if ((rc = lg_store_indexer_get(st->store, pk, &ix)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? CM_OK : rc;
	if ((rc = account_or_new(st, pk, &a)) != CM_OK)
		return rc;
	want = !ix.jailed && a.staked >= pu(st, P_MIN_STAKE);
	if (want == ix.active)
		return CM_OK;
	ix.active = want;
	if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK)
		return rc;
	if (want)
		return join_magus(st, pk);
	if ((rc = lg_store_slots_of_holder(st->store, pk, &held, &nh)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nh && rc == CM_OK; i++)
		rc = leave_magu(st, &held[i], pk);
	free(held);
	return rc;
}

/* ---- slashing ---- */

/* Takes up to slash_amount from pk's stake, then from its unbonding stake
 * (latest release first, so unstaking does not escape a pending challenge),
 * counts a failure and jails the indexer at max_failures. The slashed amount
 * is burned. *slashed receives the amount taken. */
static int penalize(lg_state *st, const uint8_t *pk, uint64_t *slashed)
{
	lg_account a;
	lg_indexer ix;
	lg_unbond *ub = NULL;
	size_t nub;
	uint64_t want = pu(st, P_SLASH_AMOUNT), take;
	int rc;

	*slashed = 0;
	if ((rc = account_or_new(st, pk, &a)) != CM_OK)
		return rc;
	take = want < a.staked ? want : a.staked;
	a.staked -= take;
	*slashed = take;
	if (take && (rc = add_counter(st, C_TOTAL_STAKED, 0, take)) != CM_OK)
		return rc;
	if (*slashed < want) {
		if ((rc = lg_store_unbond_of(st->store, pk, &ub, &nub)) != CM_OK)
			return rc;
		for (size_t i = 0; i < nub && *slashed < want && rc == CM_OK; i++) {
			uint64_t t = want - *slashed < ub[i].amount ? want - *slashed : ub[i].amount;
			ub[i].amount -= t;
			a.unbonding -= t;
			*slashed += t;
			rc = lg_store_unbond_set(st->store, &ub[i]);
		}
		free(ub);
		if (rc != CM_OK)
			return rc;
	}
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
		return rc;
	if ((rc = lg_store_indexer_get(st->store, pk, &ix)) != CM_OK)
		return rc == CM_ERR_NOTFOUND ? CM_OK : rc;
	ix.failures++;
	if (ix.failures >= pu(st, P_MAX_FAILURES))
		ix.jailed = 1;
	if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK)
		return rc;
	return refresh_indexer(st, pk);
}

/* ---- transaction handlers: TX_OK, TX_FAIL or a negative store error ---- */

static int h_transfer(lg_state *st, const Muri__V1__Transaction *t, lg_account *sender)
{
	uint64_t amount = t->transfer->amount;
	lg_account to;
	int rc;

	if (sender->balance < amount) {
		if ((rc = lg_store_account_put(st->store, sender)) != CM_OK)
			return rc;
		return fail_tx(st, "transfer.amount: insufficient balance: %llu available after the fee, %llu asked",
			       (unsigned long long)sender->balance, (unsigned long long)amount);
	}
	if (key_eq(t->transfer->to.data, sender->pk))
		return lg_store_account_put(st->store, sender);
	if ((rc = account_or_new(st, t->transfer->to.data, &to)) != CM_OK)
		return rc;
	if (to.balance > UINT64_MAX - amount) {
		if ((rc = lg_store_account_put(st->store, sender)) != CM_OK)
			return rc;
		return fail_tx(st, "transfer.amount: the recipient's balance would overflow");
	}
	sender->balance -= amount;
	to.balance += amount;
	if ((rc = lg_store_account_put(st->store, sender)) != CM_OK)
		return rc;
	return lg_store_account_put(st->store, &to);
}

static int h_register(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__RegisterIndexer *r = t->register_indexer;
	lg_indexer ix;
	int rc = lg_store_indexer_get(st->store, t->sender.data, &ix);

	if (rc == CM_OK) {
		if (ix.jailed)
			return fail_tx(st, "register_indexer: this indexer was jailed after %llu failed challenges",
				       (unsigned long long)ix.failures);
		snprintf(ix.address, sizeof(ix.address), "%s", r->address);
		ix.capacity = r->capacity_bytes;
		if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK)
			return rc;
		return note(st, "indexer updated: %s", ix.address);
	}
	if (rc != CM_ERR_NOTFOUND)
		return rc;
	memset(&ix, 0, sizeof(ix));
	memcpy(ix.pk, t->sender.data, LG_KEY_BYTES);
	snprintf(ix.address, sizeof(ix.address), "%s", r->address);
	ix.capacity = r->capacity_bytes;
	ix.registered_height = height(st);
	if ((rc = lg_store_indexer_put(st->store, &ix)) != CM_OK ||
	    (rc = refresh_indexer(st, ix.pk)) != CM_OK)
		return rc;
	return note(st, "indexer registered: %s", ix.address);
}

static int h_stake(lg_state *st, const Muri__V1__Transaction *t)
{
	uint64_t amount = t->stake->amount;
	lg_indexer ix;
	lg_account a;
	int rc = lg_store_indexer_get(st->store, t->sender.data, &ix);

	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "stake: register as an indexer first (RegisterIndexer)");
	if (rc != CM_OK)
		return rc;
	if (ix.jailed)
		return fail_tx(st, "stake: this indexer is jailed");
	if ((rc = account_or_new(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.balance < amount)
		return fail_tx(st, "stake.amount: insufficient balance: %llu available after the fee, %llu asked",
			       (unsigned long long)a.balance, (unsigned long long)amount);
	a.balance -= amount;
	a.staked += amount;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = add_counter(st, C_TOTAL_STAKED, amount, 0)) != CM_OK ||
	    (rc = refresh_indexer(st, a.pk)) != CM_OK)
		return rc;
	return note(st, "staked %llu, %llu in total", (unsigned long long)amount,
		    (unsigned long long)a.staked);
}

static int h_unstake(lg_state *st, const Muri__V1__Transaction *t)
{
	uint64_t amount = t->unstake->amount, release = height(st) + pu(st, P_UNBONDING_DELAY);
	lg_account a;
	int rc;

	if ((rc = account_or_new(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.staked < amount)
		return fail_tx(st, "unstake.amount: %llu exceeds the stake %llu", (unsigned long long)amount,
			       (unsigned long long)a.staked);
	a.staked -= amount;
	a.unbonding += amount;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK ||
	    (rc = lg_store_unbond_add(st->store, release, a.pk, amount)) != CM_OK ||
	    (rc = add_counter(st, C_TOTAL_STAKED, 0, amount)) != CM_OK ||
	    (rc = refresh_indexer(st, a.pk)) != CM_OK)
		return rc;
	return note(st, "unbonding %llu until height %llu", (unsigned long long)amount,
		    (unsigned long long)release);
}

static int h_create_magu(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__CreateMagu *c = t->create_magu;
	uint32_t F = c->fragments ? c->fragments : (uint32_t)pu(st, P_FRAGMENTS_DEFAULT);
	uint32_t R = c->replication ? c->replication : (uint32_t)pu(st, P_REPLICATION_DEFAULT);
	uint64_t target;
	lg_magu m;
	lg_account a;
	lg_staked *act = NULL;
	size_t na, *pick = NULL, got = 0;
	lg_slot *slots = NULL;
	slot_ring sr = {0};
	pkey k;
	int rc = lg_store_magu_get(st->store, c->name, &m);

	if (rc == CM_OK)
		return fail_tx(st, "create_magu.name: \"%s\" exists already", c->name);
	if (rc != CM_ERR_NOTFOUND)
		return rc;
	if (c->deposit < pu(st, P_MIN_DEPOSIT))
		return fail_tx(st, "create_magu.deposit: %llu is below the minimum %llu",
			       (unsigned long long)c->deposit, (unsigned long long)pu(st, P_MIN_DEPOSIT));
	if ((rc = account_or_new(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.balance < c->deposit)
		return fail_tx(st, "create_magu.deposit: insufficient balance: %llu available after the fee, %llu asked",
			       (unsigned long long)a.balance, (unsigned long long)c->deposit);
	if ((rc = lg_store_indexer_active(st->store, &act, &na)) != CM_OK)
		return rc;
	if (na < R) {
		free(act);
		return fail_tx(st, "create_magu.replication: %u replicas need as many active indexers, %zu are active",
			       R, na);
	}
	target = (uint64_t)F * R;
	if (target > pu(st, P_MAGU_MAX_MEMBERS))
		target = pu(st, P_MAGU_MAX_MEMBERS);
	if (target < R)
		target = R;

	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", c->name);
	memcpy(m.owner, t->sender.data, LG_KEY_BYTES);
	m.dimension = c->dimension;
	m.metric = c->metric ? (uint32_t)c->metric : MURI__V1__METRIC__COSINE;
	m.fragments = F;
	m.replication = R;
	m.slots = (uint32_t)target;
	m.deposit = c->deposit;
	m.created_height = height(st);
	if (c->index) {
		size_t len = muri__v1__index_spec__get_packed_size(c->index);
		if (len > LG_INDEX_SPEC_MAX) {
			free(act);
			return fail_tx(st, "create_magu.index: encoding too large");
		}
		m.index_spec_len = muri__v1__index_spec__pack(c->index, m.index_spec);
	}

	pick = malloc(target * sizeof(*pick));
	slots = calloc(target, sizeof(*slots));
	if (!pick || !slots) {
		rc = CM_ERR_NOMEM;
		goto out;
	}
	pkey_init(&k, "muri.members", m.name);
	pkey_add(&k, st->blk->beacon, CM_HASH_BYTES);
	if ((rc = draw_by_stake(act, na, &k, target, pick, &got)) != CM_OK)
		goto out;
	for (uint32_t i = 0; i < target; i++) {
		snprintf(slots[i].magu, sizeof(slots[i].magu), "%s", m.name);
		slots[i].slot = i;
		slots[i].filled = i < got;
		if (i < got)
			memcpy(slots[i].holder, act[pick[i]].pk, LG_KEY_BYTES);
		if ((rc = lg_store_slot_put(st->store, &slots[i])) != CM_OK)
			goto out;
	}
	if ((rc = slot_ring_build(&sr, m.name, slots, target)) != CM_OK)
		goto out;
	for (uint32_t f = 0; f < F; f++) {
		lg_fragment fr;
		memset(&fr, 0, sizeof(fr));
		snprintf(fr.magu, sizeof(fr.magu), "%s", m.name);
		fr.fragment = f;
		fr.epoch = 1;
		if ((rc = place_fragment(&sr, m.name, f, R, fr.replicas, &fr.nreplicas)) != CM_OK)
			goto out;
		memcpy(fr.primary, fr.replicas[0], LG_KEY_BYTES);
		if ((rc = lg_store_fragment_put(st->store, &fr)) != CM_OK)
			goto out;
	}
	a.balance -= c->deposit;
	if ((rc = lg_store_magu_put(st->store, &m)) != CM_OK ||
	    (rc = lg_store_account_put(st->store, &a)) != CM_OK)
		goto out;
	rc = note(st, "Magu \"%s\" created: %u fragments x %u replicas over %zu members", m.name, F, R, got);
out:
	slot_ring_free(&sr);
	free(act);
	free(pick);
	free(slots);
	return rc;
}

static int h_drop_magu(lg_state *st, const Muri__V1__Transaction *t)
{
	const char *name = t->drop_magu->name;
	lg_magu m;
	lg_account a;
	lg_challenge *ch = NULL;
	size_t nch;
	int rc = lg_store_magu_get(st->store, name, &m);

	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "drop_magu.name: no Magu \"%s\"", name);
	if (rc != CM_OK)
		return rc;
	if (!key_eq(m.owner, t->sender.data))
		return fail_tx(st, "drop_magu: only the owner of \"%s\" can drop it", name);
	if ((rc = lg_store_challenges_of_magu(st->store, name, &ch, &nch)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nch && rc == CM_OK; i++) {
		ch[i].status = LG_CH_CANCELLED;
		rc = lg_store_challenge_put(st->store, &ch[i]);
	}
	free(ch);
	if (rc != CM_OK || (rc = lg_store_magu_del(st->store, name)) != CM_OK ||
	    (rc = account_or_new(st, m.owner, &a)) != CM_OK)
		return rc;
	a.balance += m.deposit;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
		return rc;
	return note(st, "Magu \"%s\" dropped, deposit %llu returned", name, (unsigned long long)m.deposit);
}

static int replica_index(const lg_fragment *f, const uint8_t *pk)
{
	for (uint32_t i = 0; i < f->nreplicas; i++)
		if (key_eq(f->replicas[i], pk))
			return (int)i;
	return -1;
}

static int h_commit_root(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__SignedRoot *r = t->commit_root->root;
	const ProtobufCBinaryData *proof = &t->commit_root->consistency_proof;
	uint8_t old_root[CM_MERKLE_HASH_BYTES];
	lg_fragment f;
	lg_root_vote *votes = NULL;
	size_t nv, agree = 0;
	int rc = lg_store_fragment_get(st->store, r->magu, r->fragment, &f);

	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "commit_root.root: no fragment %u in Magu \"%s\"", r->fragment, r->magu);
	if (rc != CM_OK)
		return rc;
	if (lg_root_verify(r) != CM_OK)
		return fail_tx(st, "commit_root.root.signature: does not verify for the signer");
	if (replica_index(&f, r->signer.data) < 0)
		return fail_tx(st, "commit_root.root.signer: %s is not a replica of fragment %u (epoch %llu)",
			       kh(r->signer.data).s, r->fragment, (unsigned long long)f.epoch);
	if (r->size <= f.committed_size) {
		if (r->size == f.committed_size && memcmp(r->root.data, f.committed_root, LG_ROOT_BYTES) == 0)
			return fail_tx(st, "commit_root: the root at size %llu is committed already",
				       (unsigned long long)r->size);
		if (r->size == f.committed_size)
			return fail_tx(st, "commit_root.root.root: conflicts with the committed root at size %llu",
				       (unsigned long long)r->size);
		return fail_tx(st, "commit_root.root.size: %llu is below the committed size %llu",
			       (unsigned long long)r->size, (unsigned long long)f.committed_size);
	}
	if (f.committed_size)
		memcpy(old_root, f.committed_root, sizeof(old_root));
	else
		cm_merkle_blake2b.empty(old_root);
	if (cm_merkle_verify_consistency(&cm_merkle_blake2b, f.committed_size, r->size, old_root,
					 r->root.data, proof->data,
					 proof->len / CM_MERKLE_HASH_BYTES) != CM_OK)
		return fail_tx(st, "commit_root.consistency_proof: does not prove that size %llu extends the committed root at size %llu",
			       (unsigned long long)r->size, (unsigned long long)f.committed_size);
	if ((rc = lg_store_root_votes(st->store, r->magu, r->fragment, r->size, &votes, &nv)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nv; i++)
		if (key_eq(votes[i].signer, r->signer.data) &&
		    memcmp(votes[i].root, r->root.data, LG_ROOT_BYTES) != 0) {
			free(votes);
			return fail_tx(st, "commit_root: %s signed a different root at size %llu already",
				       kh(r->signer.data).s, (unsigned long long)r->size);
		}
	free(votes);
	if ((rc = lg_store_root_vote_put(st->store, r->magu, r->fragment, r->size, r->signer.data,
					 r->root.data)) != CM_OK ||
	    (rc = lg_store_root_votes(st->store, r->magu, r->fragment, r->size, &votes, &nv)) != CM_OK)
		return rc;
	f.nsigners = 0;
	for (size_t i = 0; i < nv; i++)
		if (replica_index(&f, votes[i].signer) >= 0 &&
		    memcmp(votes[i].root, r->root.data, LG_ROOT_BYTES) == 0) {
			memcpy(f.signers[f.nsigners++], votes[i].signer, LG_KEY_BYTES);
			agree++;
		}
	free(votes);
	if (2 * agree <= f.nreplicas)
		return note(st, "root vote recorded: %zu of %u replicas agree on size %llu", agree,
			    f.nreplicas, (unsigned long long)r->size);
	f.committed_size = r->size;
	memcpy(f.committed_root, r->root.data, LG_ROOT_BYTES);
	f.committed_height = height(st);
	if ((rc = lg_store_fragment_put(st->store, &f)) != CM_OK ||
	    (rc = lg_store_root_votes_clear(st->store, f.magu, f.fragment)) != CM_OK)
		return rc;
	return note(st, "root committed: fragment %u of \"%s\" at size %llu", f.fragment, f.magu,
		    (unsigned long long)f.committed_size);
}

static int h_failover(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__FailoverRequest *q = t->failover;
	lg_fragment f;
	lg_failover req, *reqs = NULL;
	size_t nr, count = 0, best = SIZE_MAX;
	uint32_t backups;
	int rc = lg_store_fragment_get(st->store, q->magu, q->fragment, &f);

	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "failover: no fragment %u in Magu \"%s\"", q->fragment, q->magu);
	if (rc != CM_OK)
		return rc;
	if (q->epoch != f.epoch)
		return fail_tx(st, "failover.epoch: %llu is not the current epoch %llu",
			       (unsigned long long)q->epoch, (unsigned long long)f.epoch);
	if (replica_index(&f, t->sender.data) < 0 || key_eq(f.primary, t->sender.data))
		return fail_tx(st, "failover: the sender is not a backup of fragment %u", q->fragment);
	backups = f.nreplicas - 1;
	memcpy(req.requester, t->sender.data, LG_KEY_BYTES);
	req.epoch = q->epoch;
	req.log_size = q->log_size;
	if ((rc = lg_store_failover_put(st->store, f.magu, f.fragment, &req)) != CM_OK ||
	    (rc = lg_store_failovers(st->store, f.magu, f.fragment, f.epoch, &reqs, &nr)) != CM_OK)
		return rc;
	/* requests are by requester key: the first longest log wins ties */
	for (size_t i = 0; i < nr; i++) {
		if (replica_index(&f, reqs[i].requester) < 0 || key_eq(reqs[i].requester, f.primary))
			continue;
		count++;
		if (best == SIZE_MAX || reqs[i].log_size > reqs[best].log_size)
			best = i;
	}
	if (2 * count <= backups) {
		free(reqs);
		return note(st, "failover request recorded: %zu of %u backups", count, backups);
	}
	memcpy(f.primary, reqs[best].requester, LG_KEY_BYTES);
	free(reqs);
	f.epoch++;
	if ((rc = lg_store_failovers_clear(st->store, f.magu, f.fragment)) != CM_OK ||
	    (rc = lg_store_fragment_put(st->store, &f)) != CM_OK)
		return rc;
	return note(st, "fragment %u of \"%s\": epoch %llu, primary %s", f.fragment, f.magu,
		    (unsigned long long)f.epoch, kh(f.primary).s);
}

/* Checks an answer against its challenge; 1 if right, else 0 with why. */
static int answer_right(const lg_challenge *c, const Muri__V1__AnswerChallenge *a, char *why,
			size_t whylen)
{
	uint8_t leaf_hash[CM_MERKLE_HASH_BYTES], tag[CM_HASH_BYTES];
	uint8_t path[CM_MERKLE_MAX_PATH * CM_MERKLE_HASH_BYTES];

	if (a->n_answers != c->nleaves) {
		snprintf(why, whylen, "%zu answers for %u challenged leaves", a->n_answers, c->nleaves);
		return 0;
	}
	for (size_t i = 0; i < a->n_answers; i++) {
		const Muri__V1__ChallengeAnswerRef *r = a->answers[i];
		cm_hasher h;
		if (r->index != c->leaves[i]) {
			snprintf(why, whylen, "answers[%zu].index: %llu, the challenged leaf is %llu", i,
				 (unsigned long long)r->index, (unsigned long long)c->leaves[i]);
			return 0;
		}
		for (size_t j = 0; j < r->n_path; j++)
			memcpy(path + j * CM_MERKLE_HASH_BYTES, r->path[j].data, CM_MERKLE_HASH_BYTES);
		cm_merkle_blake2b.leaf(leaf_hash, r->leaf.data, r->leaf.len);
		if (cm_merkle_verify_inclusion(&cm_merkle_blake2b, leaf_hash, r->index, c->size, path,
					       r->n_path, c->root) != CM_OK) {
			snprintf(why, whylen, "answers[%zu]: the inclusion proof of leaf %llu does not verify",
				 i, (unsigned long long)r->index);
			return 0;
		}
		cm_hasher_init(&h, CM_DOM_CHALLENGE);
		cm_hasher_update(&h, c->beacon, CM_HASH_BYTES);
		cm_hasher_update(&h, c->indexer, LG_KEY_BYTES);
		cm_hasher_update(&h, r->leaf.data, r->leaf.len);
		cm_hasher_final(&h, tag);
		if (!cm_ct_equal(tag, r->tag.data, CM_HASH_BYTES)) {
			snprintf(why, whylen, "answers[%zu].tag: wrong", i);
			return 0;
		}
	}
	return 1;
}

static const char *challenge_status_name(int s)
{
	return s == LG_CH_OPEN ? "open" : s == LG_CH_PASSED ? "passed" : s == LG_CH_FAILED ? "failed"
									       : "cancelled";
}

static int h_answer(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__AnswerChallenge *a = t->answer_challenge;
	lg_challenge c;
	char why[160];
	uint64_t slashed;
	int rc = lg_store_challenge_get(st->store, a->challenge_id, &c);

	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "answer_challenge.challenge_id: no challenge %llu",
			       (unsigned long long)a->challenge_id);
	if (rc != CM_OK)
		return rc;
	if (!key_eq(c.indexer, t->sender.data))
		return fail_tx(st, "answer_challenge: challenge %llu is addressed to another indexer",
			       (unsigned long long)c.id);
	if (c.status != LG_CH_OPEN)
		return fail_tx(st, "answer_challenge: challenge %llu is %s", (unsigned long long)c.id,
			       challenge_status_name(c.status));
	if (answer_right(&c, a, why, sizeof(why))) {
		c.status = LG_CH_PASSED;
		if ((rc = lg_store_challenge_put(st->store, &c)) != CM_OK)
			return rc;
		return note(st, "challenge %llu passed", (unsigned long long)c.id);
	}
	/* a wrong answer is final: the tx commits and the indexer is slashed */
	c.status = LG_CH_FAILED;
	if ((rc = lg_store_challenge_put(st->store, &c)) != CM_OK ||
	    (rc = penalize(st, c.indexer, &slashed)) != CM_OK)
		return rc;
	return note(st, "challenge %llu failed: %s; slashed %llu", (unsigned long long)c.id, why,
		    (unsigned long long)slashed);
}

/* a * w / total without overflow, for w <= total < 2^32. */
static uint64_t share_of(uint64_t a, uint64_t w, uint64_t total)
{
	return (a / total) * w + (a % total) * w / total;
}

/* Settles one receipt; 1 if paid, 0 with why if skipped, negative on error. */
static int settle_one(lg_state *st, const Muri__V1__SearchReceipt *r, char *why, size_t whylen)
{
	uint64_t w[LG_RANKED_MAX], total = 0, paid = 0;
	lg_magu m;
	lg_account a;
	lg_indexer ix;
	int rc = lg_store_magu_get(st->store, r->magu, &m);

	if (rc == CM_ERR_NOTFOUND) {
		snprintf(why, whylen, "no Magu \"%s\"", r->magu);
		return 0;
	}
	if (rc != CM_OK)
		return rc;
	if (r->fee < pu(st, P_SEARCH_FEE)) {
		snprintf(why, whylen, "fee %llu is below search_fee %llu", (unsigned long long)r->fee,
			 (unsigned long long)pu(st, P_SEARCH_FEE));
		return 0;
	}
	for (size_t j = 0; j < r->n_ranked_nodes; j++) {
		if ((rc = lg_store_indexer_get(st->store, r->ranked_nodes[j].data, &ix)) == CM_ERR_NOTFOUND) {
			snprintf(why, whylen, "ranked_nodes[%zu] is not an indexer", j);
			return 0;
		}
		if (rc != CM_OK)
			return rc;
	}
	if ((rc = account_or_new(st, r->searcher.data, &a)) != CM_OK)
		return rc;
	if (a.balance < r->fee) {
		snprintf(why, whylen, "searcher %s has %llu, fee %llu", kh(a.pk).s,
			 (unsigned long long)a.balance, (unsigned long long)r->fee);
		return 0;
	}
	a.balance -= r->fee;
	if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
		return rc;
	/* rank j earns fee * (S / (j+1)) / sum; what rounding leaves goes to rank 0 */
	for (size_t j = 0; j < r->n_ranked_nodes; j++)
		total += w[j] = SPLIT_SCALE / (j + 1);
	for (size_t j = r->n_ranked_nodes; j-- > 0;) {
		uint64_t s = j ? share_of(r->fee, w[j], total) : r->fee - paid;
		paid += s;
		if (!s)
			continue;
		if ((rc = account_or_new(st, r->ranked_nodes[j].data, &a)) != CM_OK)
			return rc;
		a.balance += s;
		if ((rc = lg_store_account_put(st->store, &a)) != CM_OK)
			return rc;
	}
	return 1;
}

static int h_settle(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__Settle *s = t->settle;
	char why[160] = "", first[200] = "";
	size_t paid = 0;
	int rc = lg_store_is_gateway(st->store, t->sender.data);

	if (rc < 0)
		return rc;
	if (rc == 0)
		return fail_tx(st, "settle: the sender is not a gateway of this chain");
	for (size_t i = 0; i < s->n_receipts; i++) {
		if ((rc = settle_one(st, s->receipts[i], why, sizeof(why))) < 0)
			return rc;
		if (rc)
			paid++;
		else if (!first[0])
			snprintf(first, sizeof(first), "receipts[%zu]: %s", i, why);
	}
	if (!paid)
		return fail_tx(st, "settle: no receipt could be settled; %s", first);
	if (first[0])
		return note(st, "settled %zu of %zu receipts; %s", paid, s->n_receipts, first);
	return note(st, "settled %zu receipts", paid);
}

static int h_propose(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__Propose *p = t->propose;
	const lg_param_def *d = lg_param_find(p->param);
	lg_account a;
	lg_proposal pr;
	uint64_t id;
	int rc;

	if ((rc = account_or_new(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.staked == 0)
		return fail_tx(st, "propose: only accounts with stake can propose");
	if (p->apply_height <= height(st))
		return fail_tx(st, "propose.apply_height: %llu is not after the current height %llu",
			       (unsigned long long)p->apply_height, (unsigned long long)height(st));
	if (p->apply_height - height(st) > pu(st, P_PROPOSAL_MAX_DELAY))
		return fail_tx(st, "propose.apply_height: more than proposal_max_delay = %llu blocks ahead",
			       (unsigned long long)pu(st, P_PROPOSAL_MAX_DELAY));
	if ((rc = lg_store_counter_get(st->store, C_NEXT_PROPOSAL, &id)) != CM_OK ||
	    (rc = lg_store_counter_put(st->store, C_NEXT_PROPOSAL, ++id)) != CM_OK)
		return rc;
	memset(&pr, 0, sizeof(pr));
	pr.id = id;
	memcpy(pr.proposer, a.pk, LG_KEY_BYTES);
	snprintf(pr.param, sizeof(pr.param), "%s", d->name);
	pr.value = p->value;
	pr.apply_height = p->apply_height;
	pr.created_height = height(st);
	pr.status = LG_PROP_OPEN;
	if ((rc = lg_store_proposal_put(st->store, &pr)) != CM_OK)
		return rc;
	return note(st, "proposal %llu: %s = %lld at height %llu", (unsigned long long)id, pr.param,
		    (long long)pr.value, (unsigned long long)pr.apply_height);
}

static int h_vote(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__VoteProposal *v = t->vote;
	lg_proposal p;
	lg_account a;
	int rc = lg_store_proposal_get(st->store, v->proposal_id, &p);

	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "vote.proposal_id: no proposal %llu", (unsigned long long)v->proposal_id);
	if (rc != CM_OK)
		return rc;
	if (p.status != LG_PROP_OPEN || p.apply_height <= height(st))
		return fail_tx(st, "vote: proposal %llu is decided already", (unsigned long long)p.id);
	if ((rc = account_or_new(st, t->sender.data, &a)) != CM_OK)
		return rc;
	if (a.staked == 0)
		return fail_tx(st, "vote: only accounts with stake can vote");
	if ((rc = lg_store_vote_put(st->store, p.id, a.pk, v->yes)) != CM_OK)
		return rc;
	return note(st, "voted %s on proposal %llu", v->yes ? "yes" : "no", (unsigned long long)p.id);
}

static int run_payload(lg_state *st, const Muri__V1__Transaction *t)
{
	switch (t->payload_case) {
	case MURI__V1__TRANSACTION__PAYLOAD_REGISTER_INDEXER: return h_register(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_STAKE: return h_stake(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_UNSTAKE: return h_unstake(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU: return h_create_magu(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU: return h_drop_magu(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_COMMIT_ROOT: return h_commit_root(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_ANSWER_CHALLENGE: return h_answer(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_SETTLE: return h_settle(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_FAILOVER: return h_failover(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_PROPOSE: return h_propose(st, t);
	case MURI__V1__TRANSACTION__PAYLOAD_VOTE: return h_vote(st, t);
	default: return fail_tx(st, "payload: not executable here");
	}
}

/* Runs a decoded tx: TX_OK, TX_FAIL or a negative store error. */
static int execute(lg_state *st, const Muri__V1__Transaction *t)
{
	lg_account sender;
	int rc, out;

	if (t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_NOOP)
		return st->param[P_ALLOW_NOOP] ? TX_OK
					       : fail_tx(st, "noop: not enabled on this chain (allow_noop)");
	rc = lg_store_account_get(st->store, t->sender.data, &sender);
	if (rc == CM_ERR_NOTFOUND)
		return fail_tx(st, "sender: unknown account %s", kh(t->sender.data).s);
	if (rc != CM_OK)
		return rc;
	if (t->nonce != sender.nonce)
		return fail_tx(st, t->nonce < sender.nonce ? "nonce: %llu was used already (next is %llu)"
							  : "nonce: %llu is ahead of the next nonce %llu",
			       (unsigned long long)t->nonce, (unsigned long long)sender.nonce);
	if (t->fee < pu(st, P_MIN_FEE))
		return fail_tx(st, "fee: %llu is below min_fee %llu", (unsigned long long)t->fee,
			       (unsigned long long)pu(st, P_MIN_FEE));
	if (sender.balance < t->fee)
		return fail_tx(st, "fee: insufficient balance %llu for the fee %llu",
			       (unsigned long long)sender.balance, (unsigned long long)t->fee);
	sender.balance -= t->fee;
	sender.nonce++;
	st->fees += t->fee;
	if (t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_TRANSFER)
		return h_transfer(st, t, &sender); /* writes the sender once */
	if ((rc = lg_store_account_put(st->store, &sender)) != CM_OK ||
	    (rc = lg_store_savepoint(st->store)) != CM_OK)
		return rc;
	out = run_payload(st, t);
	if (out == TX_FAIL)
		rc = lg_store_rollback_to(st->store);
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
	r.height = height(st);
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
	if (st->obs) {
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
	if (rc != CM_OK) {
		if (stx)
			lg_tx_hash(stx->body.data, stx->body.len, hash);
		else
			lg_tx_hash(NULL, 0, hash);
		return record(st, hash, index, O_UNAUTH);
	}
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
		 (unsigned long long)pu(st, P_BLOCK_MAX_TXS), (unsigned long long)pu(st, P_BLOCK_MAX_BYTES));
	return record(st, hash, index, O_UNAUTH);
}

/* ---- begin-block and end-block ---- */

static int release_unbonded(lg_state *st)
{
	lg_unbond *due = NULL;
	size_t n;
	int rc;

	if ((rc = lg_store_unbond_due(st->store, height(st), &due, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		lg_account a;
		if ((rc = account_or_new(st, due[i].pk, &a)) != CM_OK)
			break;
		a.unbonding -= due[i].amount < a.unbonding ? due[i].amount : a.unbonding;
		a.balance += due[i].amount;
		due[i].amount = 0;
		if ((rc = lg_store_account_put(st->store, &a)) == CM_OK)
			rc = lg_store_unbond_set(st->store, &due[i]);
	}
	free(due);
	return rc;
}

/* 1 if yes > 2/3 of total, exactly, without overflow (yes <= total < 2^63). */
static int two_thirds(uint64_t yes, uint64_t total)
{
	uint64_t q = total / 3, r = total % 3;
	return total > 0 && yes > 2 * q && 3 * (yes - 2 * q) > 2 * r;
}

/* A proposal passes when the stake that voted yes, counted at its apply
 * height, is more than 2/3 of all stake then; the parameter changes before
 * that block's transactions. Proposals for one height apply in id order. */
static int decide_proposals(lg_state *st)
{
	lg_proposal *due = NULL;
	size_t n;
	int rc;

	if ((rc = lg_store_proposals_due(st->store, height(st), &due, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		lg_proposal *p = &due[i];
		uint8_t(*yes)[LG_KEY_BYTES] = NULL;
		size_t ny;
		uint64_t ys = 0, total;
		const lg_param_def *d = lg_param_find(p->param);
		if ((rc = lg_store_yes_voters(st->store, p->id, &yes, &ny)) != CM_OK ||
		    (rc = lg_store_counter_get(st->store, C_TOTAL_STAKED, &total)) != CM_OK) {
			free(yes);
			break;
		}
		for (size_t j = 0; j < ny && rc == CM_OK; j++) {
			lg_account a;
			if ((rc = account_or_new(st, yes[j], &a)) == CM_OK)
				ys += a.staked;
		}
		free(yes);
		if (rc != CM_OK)
			break;
		p->yes_stake = ys;
		p->total_stake = total;
		p->status = d && two_thirds(ys, total) ? LG_PROP_PASSED : LG_PROP_REJECTED;
		if ((rc = lg_store_proposal_put(st->store, p)) != CM_OK || p->status != LG_PROP_PASSED)
			continue;
		if ((rc = lg_store_param_put(st->store, d->name, p->value)) != CM_OK)
			break;
		st->param[d - params] = p->value;
		if (d - params == P_MIN_STAKE) {
			uint8_t(*keys)[LG_KEY_BYTES] = NULL;
			size_t nk;
			if ((rc = lg_store_indexer_keys(st->store, &keys, &nk)) != CM_OK)
				break;
			for (size_t j = 0; j < nk && rc == CM_OK; j++)
				rc = refresh_indexer(st, keys[j]);
			free(keys);
		}
	}
	free(due);
	return rc;
}

static int expire_challenges(lg_state *st)
{
	lg_challenge *due = NULL;
	size_t n;
	uint64_t slashed;
	int rc;

	if ((rc = lg_store_challenges_due(st->store, height(st), &due, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		due[i].status = LG_CH_FAILED;
		if ((rc = lg_store_challenge_put(st->store, &due[i])) == CM_OK)
			rc = penalize(st, due[i].indexer, &slashed);
	}
	free(due);
	return rc;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Every challenge_interval blocks: challenges_per_round distinct fragments
 * with a committed root (Floyd's sampling over their (magu, fragment)
 * order), each addressed to one of the replicas that signed the committed
 * root and still hold the fragment, asking challenge_leaves leaf indices
 * below the committed size, all drawn from the beacon. */
static int issue_challenges(lg_state *st)
{
	uint64_t count, k, picks[1024], id;
	size_t np = 0;
	rng r;
	int rc;

	if (pu(st, P_CHALLENGES_PER_ROUND) == 0 || height(st) % pu(st, P_CHALLENGE_INTERVAL) != 0)
		return CM_OK;
	if ((rc = lg_store_fragment_committed_count(st->store, &count)) != CM_OK)
		return rc;
	if (count == 0)
		return CM_OK;
	k = pu(st, P_CHALLENGES_PER_ROUND) < count ? pu(st, P_CHALLENGES_PER_ROUND) : count;
	rng_init(&r, "muri.challenge", st->blk->beacon, height(st));
	for (uint64_t j = count - k; j < count; j++) {
		uint64_t t = rng_below(&r, j + 1);
		int dup = 0;
		for (size_t i = 0; i < np && !dup; i++)
			dup = picks[i] == t;
		picks[np++] = dup ? j : t;
	}
	qsort(picks, np, sizeof(picks[0]), u64_cmp);
	if ((rc = lg_store_counter_get(st->store, C_NEXT_CHALLENGE, &id)) != CM_OK)
		return rc;
	for (size_t i = 0; i < np && rc == CM_OK; i++) {
		lg_fragment f;
		lg_challenge c;
		uint8_t cand[LG_MAX_REPLICAS][LG_KEY_BYTES];
		uint32_t nc = 0;
		if ((rc = lg_store_fragment_committed_nth(st->store, picks[i], &f)) != CM_OK)
			break;
		for (uint32_t j = 0; j < f.nsigners; j++)
			if (replica_index(&f, f.signers[j]) >= 0)
				memcpy(cand[nc++], f.signers[j], LG_KEY_BYTES);
		if (nc == 0)
			continue; /* none of the signers holds it any more */
		memset(&c, 0, sizeof(c));
		c.id = ++id;
		snprintf(c.magu, sizeof(c.magu), "%s", f.magu);
		c.fragment = f.fragment;
		memcpy(c.indexer, cand[rng_below(&r, nc)], LG_KEY_BYTES);
		memcpy(c.beacon, st->blk->beacon, CM_HASH_BYTES);
		c.size = f.committed_size;
		memcpy(c.root, f.committed_root, LG_ROOT_BYTES);
		c.nleaves = (uint32_t)pu(st, P_CHALLENGE_LEAVES);
		for (uint32_t j = 0; j < c.nleaves; j++)
			c.leaves[j] = rng_below(&r, f.committed_size);
		c.issued_height = height(st);
		c.deadline = height(st) + pu(st, P_CHALLENGE_DEADLINE);
		c.status = LG_CH_OPEN;
		rc = lg_store_challenge_put(st->store, &c);
	}
	if (rc == CM_OK)
		rc = lg_store_counter_put(st->store, C_NEXT_CHALLENGE, id);
	return rc;
}

static int pay_fees(lg_state *st)
{
	static const uint8_t zero[CM_PK_BYTES];
	lg_account a;
	int rc;
	if (st->fees == 0 || memcmp(st->blk->proposer, zero, CM_PK_BYTES) == 0)
		return CM_OK; /* burned */
	if ((rc = account_or_new(st, st->blk->proposer, &a)) != CM_OK)
		return rc;
	a.balance += st->fees;
	return lg_store_account_put(st->store, &a);
}

/* root = H(CM_DOM_STATE || prev || cm_put_be64(height) || write-set hash). */
static void chain_root(uint8_t out[CM_HASH_BYTES], const uint8_t prev[CM_HASH_BYTES], uint64_t h,
		       const uint8_t ws[CM_HASH_BYTES])
{
	cm_hasher hs;
	uint8_t hb[8];
	cm_put_be64(hb, h);
	cm_hasher_init(&hs, CM_DOM_STATE);
	cm_hasher_update(&hs, prev, CM_HASH_BYTES);
	cm_hasher_update(&hs, hb, sizeof(hb));
	cm_hasher_update(&hs, ws, CM_HASH_BYTES);
	cm_hasher_final(&hs, out);
}

int lg_state_apply(lg_state *st, const lg_block_in *b, unsigned flags, uint8_t root[CM_HASH_BYTES])
{
	uint8_t ws[CM_HASH_BYTES], new_root[CM_HASH_BYTES];
	lg_block_rec rec;
	size_t bytes = 0;
	int rc;

	if (!b || (b->ntxs && !b->txs))
		return set_err(st, CM_ERR_INVALID, "apply: no block");
	if (b->height != st->height + 1)
		return set_err(st, CM_ERR_RANGE, "apply: block %llu does not follow height %llu",
			       (unsigned long long)b->height, (unsigned long long)st->height);
	if ((rc = lg_store_begin(st->store)) != CM_OK)
		return set_err(st, rc, "apply: %s", lg_store_errmsg(st->store));
	st->blk = b;
	st->fees = 0;
	st->nouts = 0;
	st->err[0] = '\0';
	if ((rc = release_unbonded(st)) != CM_OK || (rc = decide_proposals(st)) != CM_OK)
		goto fail;
	for (size_t i = 0; i < b->ntxs; i++) {
		size_t len = b->txs[i] ? b->txs[i]->body.len : 0;
		bytes = bytes + len < bytes ? SIZE_MAX : bytes + len;
		if (i >= pu(st, P_BLOCK_MAX_TXS) || bytes > pu(st, P_BLOCK_MAX_BYTES))
			rc = over_limit(st, b->txs[i], (uint32_t)i);
		else
			rc = exec_tx(st, b->txs[i], (uint32_t)i, flags);
		if (rc != CM_OK)
			goto fail;
	}
	if ((rc = expire_challenges(st)) != CM_OK || (rc = issue_challenges(st)) != CM_OK ||
	    (rc = pay_fees(st)) != CM_OK)
		goto fail;
	lg_store_writeset_hash(st->store, ws);
	chain_root(new_root, st->root, b->height, ws);
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
		set_err(st, rc, "%s", rc == CM_ERR_NOMEM ? "out of memory" : lg_store_errmsg(st->store));
	{
		char why[sizeof(st->err)];
		memcpy(why, st->err, sizeof(why));
		set_err(st, rc, "apply block %llu: %.400s", (unsigned long long)b->height, why);
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
		return set_err(st, rc, "genesis: out of memory");
	if ((rc = lg_store_begin(st->store)) != CM_OK)
		return set_err(st, rc, "genesis: %s", lg_store_errmsg(st->store));
	st->blk = &zero_block;
	for (size_t i = 0; i < P_COUNT; i++)
		st->param[i] = params[i].def;
	for (size_t i = 0; i < g->nparams; i++)
		st->param[lg_param_find(g->params[i].name) - params] = g->params[i].value;
	for (size_t i = 0; i < P_COUNT && rc == CM_OK; i++)
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
		if ((rc = account_or_new(st, x->pk, &a)) != CM_OK)
			break;
		a.staked = x->stake;
		staked += x->stake;
		memset(&ix, 0, sizeof(ix));
		memcpy(ix.pk, x->pk, LG_KEY_BYTES);
		snprintf(ix.address, sizeof(ix.address), "%s", x->address);
		ix.capacity = x->capacity;
		ix.active = x->stake >= pu(st, P_MIN_STAKE);
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
		set_err(st, rc, "genesis: %s", lg_store_errmsg(st->store));
		lg_store_rollback(st->store);
		return rc;
	}
	lg_store_writeset_hash(st->store, ws);
	chain_root(st->root, digest, 0, ws);
	if ((rc = lg_store_commit(st->store, 0, st->root)) != CM_OK)
		return set_err(st, rc, "genesis: %s", lg_store_errmsg(st->store));
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

int64_t lg_state_param(const lg_state *st, const char *name)
{
	const lg_param_def *d = lg_param_find(name);
	return d ? st->param[d - params] : 0;
}

lg_store *lg_state_store(lg_state *st)
{
	return st->store;
}

/* ---- queries ---- */

static int pb_bytes(ProtobufCBinaryData *b, const void *p, size_t n)
{
	if (!(b->data = malloc(n ? n : 1)))
		return CM_ERR_NOMEM;
	if (n)
		memcpy(b->data, p, n);
	b->len = n;
	return CM_OK;
}

static int pb_str(char **dst, const char *s)
{
	size_t n = strlen(s) + 1;
	char *c = malloc(n);
	if (!c)
		return CM_ERR_NOMEM;
	memcpy(c, s, n);
	*dst = c;
	return CM_OK;
}

/* Allocates a zeroed array of n pointers (at least one slot). */
static void *pb_array(size_t n, size_t elem)
{
	return calloc(n ? n : 1, elem);
}

static void pb_free(void *msg)
{
	protobuf_c_message_free_unpacked(msg, NULL);
}

int lg_query_account(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__Account **out)
{
	lg_account a;
	Muri__V1__Account *m;
	int rc = lg_store_account_get(s, pk, &a);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__account__init(m);
	m->balance = a.balance;
	m->nonce = a.nonce;
	m->staked = a.staked;
	m->unbonding = a.unbonding;
	if (pb_bytes(&m->address, pk, CM_PK_BYTES) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

int lg_query_indexer(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__IndexerInfo **out)
{
	lg_indexer ix;
	lg_account a;
	Muri__V1__IndexerInfo *m;
	int rc = lg_store_indexer_get(s, pk, &ix);
	if (rc != CM_OK)
		return rc;
	rc = lg_store_account_get(s, pk, &a);
	if (rc == CM_ERR_NOTFOUND)
		a.staked = 0;
	else if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__indexer_info__init(m);
	m->capacity_bytes = ix.capacity;
	m->stake = a.staked;
	m->failures = ix.failures > UINT32_MAX ? UINT32_MAX : (uint32_t)ix.failures;
	m->active = ix.active;
	m->jailed = ix.jailed;
	if (pb_bytes(&m->pubkey, pk, CM_PK_BYTES) != CM_OK || pb_str(&m->address, ix.address) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

/* Fills one FragmentConfig, with each replica's address. */
static int fill_config(lg_store *s, const lg_fragment *f, Muri__V1__FragmentConfig **out)
{
	Muri__V1__FragmentConfig *c = malloc(sizeof(*c));
	int rc = CM_ERR_NOMEM;
	if (!c)
		return CM_ERR_NOMEM;
	muri__v1__fragment_config__init(c);
	*out = c;
	c->fragment = f->fragment;
	c->epoch = f->epoch;
	if (pb_str(&c->magu, f->magu) != CM_OK || pb_bytes(&c->primary, f->primary, LG_KEY_BYTES) != CM_OK ||
	    !(c->replicas = pb_array(f->nreplicas, sizeof(*c->replicas))))
		return CM_ERR_NOMEM;
	c->n_replicas = f->nreplicas;
	for (uint32_t i = 0; i < f->nreplicas; i++) {
		Muri__V1__Replica *r = malloc(sizeof(*r));
		lg_indexer ix;
		if (!r)
			return CM_ERR_NOMEM;
		muri__v1__replica__init(r);
		c->replicas[i] = r;
		if ((rc = lg_store_indexer_get(s, f->replicas[i], &ix)) != CM_OK)
			return rc == CM_ERR_NOTFOUND ? CM_ERR_INTERNAL : rc;
		if (pb_bytes(&r->pubkey, f->replicas[i], LG_KEY_BYTES) != CM_OK ||
		    pb_str(&r->address, ix.address) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
}

static int fill_magu(lg_store *s, const lg_magu *g, Muri__V1__MaguInfo *m)
{
	lg_slot *slots = NULL;
	lg_fragment *fr = NULL;
	size_t ns, nf, nmem = 0, ncommitted = 0;
	int rc;

	m->dimension = g->dimension;
	m->metric = (Muri__V1__Metric)g->metric;
	m->fragments = g->fragments;
	m->replication = g->replication;
	m->deposit = g->deposit;
	m->created_height = g->created_height;
	if (pb_str(&m->name, g->name) != CM_OK || pb_bytes(&m->owner, g->owner, LG_KEY_BYTES) != CM_OK)
		return CM_ERR_NOMEM;
	if (g->index_spec_len &&
	    !(m->index = muri__v1__index_spec__unpack(NULL, g->index_spec_len, g->index_spec)))
		return CM_ERR_INTERNAL;
	if ((rc = lg_store_slots_of_magu(s, g->name, &slots, &ns)) != CM_OK ||
	    (rc = lg_store_fragments_of(s, g->name, &fr, &nf)) != CM_OK)
		goto out;
	rc = CM_ERR_NOMEM;
	if (!(m->members = pb_array(ns, sizeof(*m->members))) ||
	    !(m->configs = pb_array(nf, sizeof(*m->configs))) ||
	    !(m->committed_roots = pb_array(nf, sizeof(*m->committed_roots))))
		goto out;
	for (size_t i = 0; i < ns; i++) {
		if (!slots[i].filled)
			continue;
		if (pb_bytes(&m->members[nmem], slots[i].holder, LG_KEY_BYTES) != CM_OK)
			goto out;
		m->n_members = ++nmem;
	}
	for (size_t i = 0; i < nf; i++) {
		m->n_configs = i + 1;
		if ((rc = fill_config(s, &fr[i], &m->configs[i])) != CM_OK)
			goto out;
		if (!fr[i].committed_size)
			continue;
		Muri__V1__SignedRoot *r = malloc(sizeof(*r));
		rc = CM_ERR_NOMEM;
		if (!r)
			goto out;
		muri__v1__signed_root__init(r);
		m->committed_roots[ncommitted] = r;
		m->n_committed_roots = ++ncommitted;
		r->fragment = fr[i].fragment;
		r->size = fr[i].committed_size;
		if (pb_str(&r->magu, g->name) != CM_OK ||
		    pb_bytes(&r->root, fr[i].committed_root, LG_ROOT_BYTES) != CM_OK)
			goto out;
	}
	rc = CM_OK;
out:
	free(slots);
	free(fr);
	return rc;
}

int lg_query_magu(lg_store *s, const char *name, Muri__V1__MaguInfo **out)
{
	lg_magu g;
	Muri__V1__MaguInfo *m;
	int rc = lg_store_magu_get(s, name, &g);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__magu_info__init(m);
	if ((rc = fill_magu(s, &g, m)) != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_magus(lg_store *s, size_t max, Muri__V1__ListMagusResponse **out)
{
	char(*names)[LG_NAME_MAX + 1] = NULL;
	size_t nn;
	Muri__V1__ListMagusResponse *m;
	int rc;

	if ((rc = lg_store_magu_names(s, &names, &nn)) != CM_OK)
		return rc;
	if (max && nn > max)
		nn = max;
	if (!(m = malloc(sizeof(*m)))) {
		free(names);
		return CM_ERR_NOMEM;
	}
	muri__v1__list_magus_response__init(m);
	if (!(m->magus = pb_array(nn, sizeof(*m->magus))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < nn && rc == CM_OK; i++) {
		Muri__V1__MaguInfo *mi;
		m->n_magus = i + 1;
		if ((rc = lg_query_magu(s, names[i], &mi)) == CM_OK)
			m->magus[i] = mi;
	}
	free(names);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_tx(lg_store *s, const uint8_t hash[CM_HASH_BYTES], Muri__V1__TxStatus **out)
{
	lg_txrec t;
	Muri__V1__TxStatus *m;
	int rc = lg_store_tx_get(s, hash, &t);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__tx_status__init(m);
	m->state = (Muri__V1__TxState)t.state;
	m->height = t.height;
	if (pb_bytes(&m->tx_hash, hash, CM_HASH_BYTES) != CM_OK || pb_str(&m->message, t.message) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

int lg_query_params(lg_store *s, Muri__V1__Params **out)
{
	lg_named *p = NULL;
	size_t n;
	Muri__V1__Params *m;
	int rc;

	if ((rc = lg_store_params(s, &p, &n)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m)))) {
		free(p);
		return CM_ERR_NOMEM;
	}
	muri__v1__params__init(m);
	if (!(m->values = pb_array(n, sizeof(*m->values))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		Muri__V1__Params__ValuesEntry *e = malloc(sizeof(*e));
		if (!e) {
			rc = CM_ERR_NOMEM;
			break;
		}
		muri__v1__params__values_entry__init(e);
		m->values[i] = e;
		m->n_values = i + 1;
		e->value = p[i].value;
		rc = pb_str(&e->key, p[i].name);
	}
	free(p);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_challenges(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only, size_t max,
			Muri__V1__ChallengesResponse **out)
{
	lg_challenge *ch = NULL;
	size_t n;
	Muri__V1__ChallengesResponse *m;
	int rc;

	if (max < 1 || max > 1000)
		return CM_ERR_RANGE;
	if ((rc = lg_store_challenges_of(s, indexer, open_only, max, &ch, &n)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m)))) {
		free(ch);
		return CM_ERR_NOMEM;
	}
	muri__v1__challenges_response__init(m);
	if (!(m->challenges = pb_array(n, sizeof(*m->challenges))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		Muri__V1__Challenge *c = malloc(sizeof(*c));
		rc = CM_ERR_NOMEM;
		if (!c)
			break;
		muri__v1__challenge__init(c);
		m->challenges[i] = c;
		m->n_challenges = i + 1;
		c->id = ch[i].id;
		c->fragment = ch[i].fragment;
		c->size = ch[i].size;
		c->issued_height = ch[i].issued_height;
		c->deadline_height = ch[i].deadline;
		c->state = (Muri__V1__ChallengeState)ch[i].status;
		if (pb_str(&c->magu, ch[i].magu) != CM_OK ||
		    pb_bytes(&c->indexer, ch[i].indexer, LG_KEY_BYTES) != CM_OK ||
		    pb_bytes(&c->beacon, ch[i].beacon, CM_HASH_BYTES) != CM_OK ||
		    pb_bytes(&c->root, ch[i].root, LG_ROOT_BYTES) != CM_OK ||
		    !(c->leaf_indices = pb_array(ch[i].nleaves, sizeof(uint64_t))))
			break;
		memcpy(c->leaf_indices, ch[i].leaves, ch[i].nleaves * sizeof(uint64_t));
		c->n_leaf_indices = ch[i].nleaves;
		rc = CM_OK;
	}
	free(ch);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_proposal(lg_store *s, uint64_t id, Muri__V1__ProposalInfo **out)
{
	lg_proposal p;
	Muri__V1__ProposalInfo *m;
	int rc = lg_store_proposal_get(s, id, &p);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__proposal_info__init(m);
	m->id = p.id;
	m->value = p.value;
	m->apply_height = p.apply_height;
	m->created_height = p.created_height;
	m->state = (Muri__V1__ProposalState)p.status;
	m->yes_stake = p.yes_stake;
	m->total_stake = p.total_stake;
	if (pb_bytes(&m->proposer, p.proposer, LG_KEY_BYTES) != CM_OK || pb_str(&m->param, p.param) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}
