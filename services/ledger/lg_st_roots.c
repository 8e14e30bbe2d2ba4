/* The state machine's fragment roots and proofs of replication: CommitRoot
 * (a majority of replicas signing one root, consistent with the last), the
 * challenges drawn from the beacon every challenge_interval blocks, their
 * answers, and the expiry of unanswered ones (slash). */
#include "lg_state_int.h"
#include "cm_fragment.h"
#include "cm_merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int commit_root_vote(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__SignedRoot *r = t->commit_root->root;
	const ProtobufCBinaryData *proof = &t->commit_root->consistency_proof;
	uint8_t old_root[CM_MERKLE_HASH_BYTES];
	lg_fragment f;
	lg_root_vote *votes = NULL;
	size_t nv, agree = 0;
	char split[160];
	int same = 0, rc = lg_store_fragment_get(st->store, r->magu, r->fragment, &f);

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "commit_root.root: no fragment %u in Magu \"%s\"", r->fragment, r->magu);
	if (rc != CM_OK)
		return rc;
	if (strcmp(r->chain_id, st->chain_id) != 0)
		return lg_st_fail(st, "commit_root.root.chain_id: \"%.64s\" is not this chain", r->chain_id);
	if (r->epoch != f.epoch)
		return lg_st_fail(st, "commit_root.root.epoch: %llu is not the fragment's epoch %llu",
				  (unsigned long long)r->epoch, (unsigned long long)f.epoch);
	if (lg_root_verify(r) != CM_OK)
		return lg_st_fail(st, "commit_root.root.signature: does not verify for the signer");
	if (lg_st_replica_index(&f, r->signer.data) < 0)
		return lg_st_fail(st, "commit_root.root.signer: %s is not a replica of fragment %u (epoch %llu)",
			       lg_st_kh(r->signer.data).s, r->fragment, (unsigned long long)f.epoch);
	if ((rc = lg_st_split_vote_check(st, &f, r, &same)) != TX_OK)
		return rc;
	if (same == 1) { /* the sealing primary's whole log is the committed root */
		if ((rc = lg_st_split_committed(st, &f, 1, split, sizeof(split))) != CM_OK)
			return rc;
		return lg_st_note(st, "fragment %u of \"%s\": the primary's log is the committed root%s", f.fragment,
				  f.magu, split);
	}
	if (r->size == 0 && same != 2)
		return lg_st_fail(st, "commit_root.root.size: 0 is accepted only as the first root of a split's child");
	if (r->size <= f.committed_size && same != 2) {
		if (r->size == f.committed_size && memcmp(r->root.data, f.committed_root, LG_ROOT_BYTES) == 0)
			return lg_st_fail(st, "commit_root: the root at size %llu is committed already",
				       (unsigned long long)r->size);
		if (r->size == f.committed_size)
			return lg_st_fail(st, "commit_root.root.root: conflicts with the committed root at size %llu",
				       (unsigned long long)r->size);
		return lg_st_fail(st, "commit_root.root.size: %llu is below the committed size %llu",
			       (unsigned long long)r->size, (unsigned long long)f.committed_size);
	}
	if (f.committed_size)
		memcpy(old_root, f.committed_root, sizeof(old_root));
	else
		cm_merkle_blake2b.empty(old_root);
	if (cm_merkle_verify_consistency(&cm_merkle_blake2b, f.committed_size, r->size, old_root,
					 r->root.data, proof->data,
					 proof->len / CM_MERKLE_HASH_BYTES) != CM_OK)
		return lg_st_fail(st, "commit_root.consistency_proof: does not prove that size %llu extends the committed root at size %llu",
			       (unsigned long long)r->size, (unsigned long long)f.committed_size);
	if ((rc = lg_store_root_votes(st->store, r->magu, r->fragment, r->size, &votes, &nv)) != CM_OK)
		return rc;
	for (size_t i = 0; i < nv; i++)
		if (lg_st_key_eq(votes[i].signer, r->signer.data) &&
		    memcmp(votes[i].root, r->root.data, LG_ROOT_BYTES) != 0) {
			free(votes);
			return lg_st_fail(st, "commit_root: %s signed a different root at size %llu already",
				       lg_st_kh(r->signer.data).s, (unsigned long long)r->size);
		}
	free(votes);
	if ((rc = lg_store_root_vote_put(st->store, r->magu, r->fragment, r->size, r->signer.data,
					 r->root.data)) != CM_OK ||
	    (rc = lg_store_root_votes(st->store, r->magu, r->fragment, r->size, &votes, &nv)) != CM_OK)
		return rc;
	f.nsigners = 0;
	for (size_t i = 0; i < nv; i++)
		if (lg_st_replica_index(&f, votes[i].signer) >= 0 &&
		    memcmp(votes[i].root, r->root.data, LG_ROOT_BYTES) == 0) {
			memcpy(f.signers[f.nsigners++], votes[i].signer, LG_KEY_BYTES);
			agree++;
		}
	free(votes);
	if (agree < cm_fragment_majority(f.nreplicas))
		return lg_st_note(st, "root vote recorded: %zu of %u replicas agree on size %llu", agree,
			    f.nreplicas, (unsigned long long)r->size);
	f.committed_size = r->size;
	memcpy(f.committed_root, r->root.data, LG_ROOT_BYTES);
	f.committed_height = lg_st_height(st);
	if ((rc = lg_store_fragment_put(st->store, &f)) != CM_OK ||
	    (rc = lg_store_root_votes_clear(st->store, f.magu, f.fragment)) != CM_OK ||
	    (rc = lg_st_fx_root(st, r)) != CM_OK ||
	    (rc = lg_st_split_committed(st, &f, 0, split, sizeof(split))) != CM_OK)
		return rc;
	return lg_st_note(st, "root committed: fragment %u of \"%s\" at size %llu%s", f.fragment, f.magu,
		    (unsigned long long)f.committed_size, split);
}

/* A vote recorded (with or without a commit) also tells a hand-over that
 * its signer holds the epoch's log (lg_st_handover.c). */
int lg_st_commit_root(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__SignedRoot *r = t->commit_root->root;
	int rc = commit_root_vote(st, t);
	if (rc != TX_OK)
		return rc;
	return lg_st_handover_signed(st, r->magu, r->fragment, r->signer.data);
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

int lg_st_answer(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__AnswerChallenge *a = t->answer_challenge;
	lg_challenge c;
	char why[160], reason[64];
	uint64_t slashed;
	int rc = lg_store_challenge_get(st->store, a->challenge_id, &c);

	if (rc == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "answer_challenge.challenge_id: no challenge %llu",
			       (unsigned long long)a->challenge_id);
	if (rc != CM_OK)
		return rc;
	if (!lg_st_key_eq(c.indexer, t->sender.data))
		return lg_st_fail(st, "answer_challenge: challenge %llu is addressed to another indexer",
			       (unsigned long long)c.id);
	if (c.status != LG_CH_OPEN)
		return lg_st_fail(st, "answer_challenge: challenge %llu is %s", (unsigned long long)c.id,
			       challenge_status_name(c.status));
	if (answer_right(&c, a, why, sizeof(why))) {
		c.status = LG_CH_PASSED;
		if ((rc = lg_store_challenge_put(st->store, &c)) != CM_OK ||
		    (rc = lg_st_fx_challenge(st, c.id, 1)) != CM_OK)
			return rc;
		return lg_st_note(st, "challenge %llu passed", (unsigned long long)c.id);
	}
	/* a wrong answer is final: the tx commits and the indexer is slashed */
	c.status = LG_CH_FAILED;
	snprintf(reason, sizeof(reason), "challenge %llu failed", (unsigned long long)c.id);
	if ((rc = lg_store_challenge_put(st->store, &c)) != CM_OK ||
	    (rc = lg_st_fx_challenge(st, c.id, 1)) != CM_OK ||
	    (rc = lg_st_penalize(st, c.indexer, lg_st_pu(st, P_SLASH_AMOUNT), 0, reason, &slashed)) != CM_OK)
		return rc;
	return lg_st_note(st, "challenge %llu failed: %s; slashed %llu", (unsigned long long)c.id, why,
		    (unsigned long long)slashed);
}

int lg_st_expire_challenges(lg_state *st)
{
	lg_challenge *due = NULL;
	size_t n;
	uint64_t slashed;
	int rc;

	if ((rc = lg_store_challenges_due(st->store, lg_st_height(st), &due, &n)) != CM_OK)
		return rc;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		char reason[64];
		due[i].status = LG_CH_FAILED;
		snprintf(reason, sizeof(reason), "challenge %llu unanswered", (unsigned long long)due[i].id);
		if ((rc = lg_store_challenge_put(st->store, &due[i])) == CM_OK &&
		    (rc = lg_st_fx_challenge(st, due[i].id, 1)) == CM_OK)
			rc = lg_st_penalize(st, due[i].indexer, lg_st_pu(st, P_SLASH_AMOUNT), 0, reason,
					    &slashed);
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
int lg_st_issue_challenges(lg_state *st)
{
	uint64_t count, k, picks[1024], id;
	size_t np = 0;
	rng r;
	int rc;

	if (lg_st_pu(st, P_CHALLENGES_PER_ROUND) == 0 || lg_st_height(st) % lg_st_pu(st, P_CHALLENGE_INTERVAL) != 0)
		return CM_OK;
	if ((rc = lg_store_fragment_committed_count(st->store, &count)) != CM_OK)
		return rc;
	if (count == 0)
		return CM_OK;
	k = lg_st_pu(st, P_CHALLENGES_PER_ROUND) < count ? lg_st_pu(st, P_CHALLENGES_PER_ROUND) : count;
	rng_init(&r, "muri.challenge", st->blk->beacon, lg_st_height(st));
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
			if (lg_st_replica_index(&f, f.signers[j]) >= 0)
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
		c.nleaves = (uint32_t)lg_st_pu(st, P_CHALLENGE_LEAVES);
		for (uint32_t j = 0; j < c.nleaves; j++)
			c.leaves[j] = rng_below(&r, f.committed_size);
		c.issued_height = lg_st_height(st);
		c.deadline = lg_st_height(st) + lg_st_pu(st, P_CHALLENGE_DEADLINE);
		c.status = LG_CH_OPEN;
		if ((rc = lg_store_challenge_put(st->store, &c)) == CM_OK)
			rc = lg_st_fx_challenge(st, c.id, 0);
	}
	if (rc == CM_OK)
		rc = lg_store_counter_put(st->store, C_NEXT_CHALLENGE, id);
	return rc;
}


/* ---- double-root evidence ---- */

/* Two roots signed by one signer for one (magu, fragment, size) in one
 * epoch of this chain that differ prove the signer lied at least once (an
 * honest replica signs only what its epoch cannot truncate): it is slashed double_root_slash and
 * jailed, once per (signer, magu, fragment, size); the reporter receives
 * double_root_reward_pct percent of what was slashed, the rest is burnt. */
int lg_st_double_root(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__SignedRoot *a = t->report_double_root->a, *b = t->report_double_root->b;
	char reason[96];
	uint64_t slashed, reward;
	lg_account rep;
	lg_indexer ix;
	int rc;

	if (!lg_st_key_eq(a->signer.data, b->signer.data))
		return lg_st_fail(st, "report_double_root.b.signer: differs from a.signer");
	if (strcmp(a->magu, b->magu) != 0 || a->fragment != b->fragment || a->size != b->size)
		return lg_st_fail(st, "report_double_root.b: not the same (magu, fragment, size) as a");
	if (strcmp(a->chain_id, st->chain_id) != 0)
		return lg_st_fail(st, "report_double_root.a.chain_id: \"%.64s\" is not this chain", a->chain_id);
	if (strcmp(b->chain_id, st->chain_id) != 0)
		return lg_st_fail(st, "report_double_root.b.chain_id: \"%.64s\" is not this chain", b->chain_id);
	if (a->epoch != b->epoch)
		return lg_st_fail(st, "report_double_root.b.epoch: %llu differs from a.epoch %llu (roots of different epochs may differ)",
				  (unsigned long long)b->epoch, (unsigned long long)a->epoch);
	if (memcmp(a->root.data, b->root.data, LG_ROOT_BYTES) == 0)
		return lg_st_fail(st, "report_double_root.b.root: equals a.root, no conflict");
	if (lg_root_verify(a) != CM_OK)
		return lg_st_fail(st, "report_double_root.a.signature: does not verify for the signer");
	if (lg_root_verify(b) != CM_OK)
		return lg_st_fail(st, "report_double_root.b.signature: does not verify for the signer");
	if ((rc = lg_store_indexer_get(st->store, a->signer.data, &ix)) == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "report_double_root.a.signer: %s is not an indexer",
				  lg_st_kh(a->signer.data).s);
	if (rc != CM_OK)
		return rc;
	if ((rc = lg_store_double_root_seen(st->store, a->signer.data, a->magu, a->fragment, a->size)) < 0)
		return rc;
	if (rc)
		return lg_st_fail(st, "report_double_root: %s was punished already for fragment %u of \"%s\" at size %llu",
				  lg_st_kh(a->signer.data).s, a->fragment, a->magu, (unsigned long long)a->size);
	snprintf(reason, sizeof(reason), "double root: fragment %u of \"%.40s\" at size %llu", a->fragment,
		 a->magu, (unsigned long long)a->size);
	if ((rc = lg_store_double_root_put(st->store, a->signer.data, a->magu, a->fragment, a->size)) != CM_OK ||
	    (rc = lg_st_penalize(st, a->signer.data, lg_st_pu(st, P_DOUBLE_ROOT_SLASH), 1, reason, &slashed)) != CM_OK)
		return rc;
	reward = slashed / 100 * lg_st_pu(st, P_DOUBLE_ROOT_REWARD_PCT) +
		 slashed % 100 * lg_st_pu(st, P_DOUBLE_ROOT_REWARD_PCT) / 100;
	if (reward) {
		if ((rc = lg_st_account(st, t->sender.data, &rep)) != CM_OK)
			return rc;
		rep.balance += reward;
		if ((rc = lg_store_account_put(st->store, &rep)) != CM_OK)
			return rc;
	}
	return lg_st_note(st, "%s slashed %llu and jailed for two roots of fragment %u of \"%s\" at size %llu; reporter paid %llu",
			  lg_st_kh(a->signer.data).s, (unsigned long long)slashed, a->fragment, a->magu,
			  (unsigned long long)a->size, (unsigned long long)reward);
}
