/* What an indexer proves to the ledger about the fragments it holds: it
 * signs its log's root at the latest size the fragment's primary named
 * (ix_repl_root_size: each multiple of root_every records, or the log size
 * root_ms after the last named size) above the committed size, within the
 * prefix its epoch cannot truncate, bound to the chain and the epoch, and submits CommitRoot (with the consistency proof from
 * the committed root), and it answers the challenges addressed to it
 * (AnswerChallenge: each challenged leaf, its inclusion proof against the
 * committed root, tag = H(CM_DOM_CHALLENGE || beacon || indexer || leaf)). */
#include "ix_chain.h"
#include "ix_split.h"
#include "ix_service_int.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_LIMIT (64u << 20)

/* The ledger's committed size of a fragment (0 before the first root). */
static int committed_size(cm_ledger_client *lc, const char *magu, uint32_t fragment, uint64_t *size)
{
	Muri__V1__FragmentRequest req = MURI__V1__FRAGMENT_REQUEST__INIT;
	req.magu = (char *)magu;
	req.fragment = fragment;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetFragment", &req.base,
				       &muri__v1__fragment_info__descriptor, &resp, &st);
	if (rc != CM_OK)
		return rc;
	*size = ((Muri__V1__FragmentInfo *)resp)->committed_size;
	protobuf_c_message_free_unpacked(resp, NULL);
	return CM_OK;
}

/* Signs f's root at size in epoch (for chain_id) and submits CommitRoot;
 * 0 once a replica took it. The root is read under the core lock while the
 * core is still in epoch and may sign size (ix_repl_signable), so what is
 * signed is a prefix that epoch cannot truncate. */
static int commit_root(ix_service *s, cm_ledger_client *lc, struct frag *f, ix_fragment *st, uint64_t from,
		       uint64_t size, uint64_t epoch, const char *chain_id, int derived)
{
	uint8_t root[CM_HASH_BYTES], sig[CM_SIG_BYTES], d[CM_HASH_BYTES];
	cm_merkle_path *path = malloc(sizeof(*path));
	if (!path)
		return CM_ERR_NOMEM;
	ixr_core_enter(f);
	/* derived: a half's derived records, a function of a committed root */
	int rc = f->core && ix_repl_epoch(f->core) == epoch && (derived || ix_repl_signable(f->core) >= size)
			 ? CM_OK : CM_ERR_STATE;
	if (rc == CM_OK)
		rc = ix_fragment_root(st, size, root);
	if (rc == CM_OK)
		rc = ix_fragment_consistency(st, from, size, path);
	ixr_core_leave(f);
	if (rc != CM_OK) {
		free(path);
		return rc;
	}
	Muri__V1__SignedRoot r = MURI__V1__SIGNED_ROOT__INIT;
	r.chain_id = (char *)chain_id;
	r.epoch = epoch;
	r.magu = f->magu;
	r.fragment = f->fragment;
	r.size = size;
	r.root.data = root;
	r.root.len = CM_HASH_BYTES;
	r.signer.data = s->key.pk;
	r.signer.len = CM_PK_BYTES;
	ix_signed_digest(d, CM_DOM_ROOT, &r.base);
	cm_sign(&s->key, sig, d, CM_HASH_BYTES);
	r.signature.data = sig;
	r.signature.len = CM_SIG_BYTES;
	Muri__V1__CommitRoot cr = MURI__V1__COMMIT_ROOT__INIT;
	cr.root = &r;
	cr.consistency_proof.data = path->hash;
	cr.consistency_proof.len = path->len * CM_MERKLE_HASH_BYTES;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_COMMIT_ROOT;
	t.commit_root = &cr;
	char err[CM_LC_MSG_MAX + 128] = "";
	rc = cm_ledger_client_submit(lc, &t, 0, NULL, err, sizeof(err));
	free(path);
	if (rc == CM_OK)
		cm_info("root_submitted", "magu=%s fragment=%u epoch=%llu size=%llu from=%llu", f->magu, f->fragment,
			(unsigned long long)epoch, (unsigned long long)size, (unsigned long long)from);
	else
		cm_warn("root_refused", "magu=%s fragment=%u size=%llu error=\"%s\"", f->magu, f->fragment,
			(unsigned long long)size, err);
	return rc;
}

void ixc_derive(ix_service *s, struct frag *f, cm_ledger_client *lc)
{
	char err[IX_ERR_MAX] = "";
	if (!f)
		return;
	pthread_mutex_lock(&f->cfg_mu);
	int rc = f->cfg && f->cfg->source && !f->derived && f->core && ix_repl_is_member(f->core, s->key.pk)
			 ? ixp_derive(s, f, err, sizeof(err)) : CM_OK;
	pthread_mutex_unlock(&f->cfg_mu);
	if (rc == CM_ERR_UNAVAILABLE && lc) { /* the parent is not held here: fetch it */
		err[0] = 0;
		rc = ixp_fetch(s, f, lc, err, sizeof(err));
	}
	if (rc != CM_OK)
		cm_warn("split_derive", "magu=%s fragment=%u error=\"%s\"", f->magu, f->fragment, err);
}

void ixc_commit_roots(ix_service *s, cm_ledger_client *lc, const char *chain_id)
{
	pthread_rwlock_rdlock(&s->lk);
	size_t n = s->nfrags;
	struct frag **fs = n ? malloc(n * sizeof(*fs)) : NULL;
	if (fs)
		memcpy(fs, s->frags, n * sizeof(*fs));
	pthread_rwlock_unlock(&s->lk);
	if (!fs)
		return;
	for (size_t i = 0; i < n && !atomic_load(&s->stopping); i++) {
		struct frag *f = fs[i];
		if (f->cfg && f->cfg->source && !f->derived)
			ixc_derive(s, f, lc); /* the parent's frozen log may have arrived, or be fetched */
		ix_fragment *st = ixs_store_of(f);
		if (!st)
			continue;
		ixr_core_enter(f);
		int member = f->core && ix_repl_is_member(f->core, s->key.pk);
		uint64_t epoch = f->core ? ix_repl_epoch(f->core) : 0;
		uint64_t size = f->core ? ix_repl_root_size(f->core) : 0, done = 0;
		/* a sealing epoch (a split) signs only what is whole: the primary its
		 * whole log, which the ledger freezes once committed (its vote
		 * confirms a root committed at that size already); a backup what it
		 * holds of it */
		int sealing = f->cfg && f->cfg->epoch == epoch &&
			      f->cfg->phase == MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SEALING;
		int sealing_primary = sealing && f->core && ix_repl_is_primary(f->core);
		if (sealing)
			size = f->core ? ix_repl_signable(f->core) : 0;
		/* a half not live yet signs its whole derived log (size 0 too) */
		int first = f->cfg && f->cfg->source && !f->cfg->live && f->derived;
		if (first)
			size = f->derived_size;
		ixr_core_leave(f);
		/* a new epoch drops the ledger's votes of the last: sign again */
		if (!member || (size == 0 && !sealing_primary && !first) ||
		    (size <= f->root_signed && epoch == f->root_epoch && (size || f->root_epoch)))
			continue;
		if (committed_size(lc, f->magu, f->fragment, &done) != CM_OK || size < done ||
		    (size == done && !sealing_primary && !(first && size == 0)))
			continue;
		if (commit_root(s, lc, f, st, done, size, epoch, chain_id, first) == CM_OK) {
			f->root_signed = size;
			f->root_epoch = epoch;
		}
	}
	free(fs);
}

void ixc_answer_challenge(ix_service *s, cm_ledger_client *lc, const Muri__V1__Challenge *ch)
{
	if (!ch || ch->indexer.len != CM_PK_BYTES || memcmp(ch->indexer.data, s->key.pk, CM_PK_BYTES) != 0 ||
	    ch->beacon.len != CM_HASH_BYTES || !ch->magu || ch->n_leaf_indices == 0)
		return;
	struct frag *f = ixs_find_frag(s, ch->magu, ch->fragment);
	ix_fragment *st = f ? ixs_store_of(f) : NULL;
	if (!st || ix_fragment_size(st) < ch->size) {
		cm_warn("challenge_unanswerable", "id=%llu magu=%s fragment=%u size=%llu held=%llu",
			(unsigned long long)ch->id, ch->magu, ch->fragment, (unsigned long long)ch->size,
			(unsigned long long)(st ? ix_fragment_size(st) : 0));
		return;
	}
	cm_arena a;
	cm_arena_init(&a, ARENA_LIMIT);
	Muri__V1__ChallengeAnswerRef **ans = cm_arena_alloc(&a, ch->n_leaf_indices * sizeof(*ans));
	cm_merkle_path *path = cm_arena_alloc(&a, sizeof(*path));
	int rc = ans && path ? CM_OK : CM_ERR_NOMEM;
	for (size_t i = 0; rc == CM_OK && i < ch->n_leaf_indices; i++) {
		Muri__V1__ChallengeAnswerRef *x = cm_arena_alloc(&a, sizeof(*x));
		uint8_t *tag = cm_arena_alloc(&a, CM_HASH_BYTES);
		if (!x || !tag) {
			rc = CM_ERR_NOMEM;
			break;
		}
		muri__v1__challenge_answer_ref__init(x);
		x->index = ch->leaf_indices[i];
		rc = ix_fragment_leaf(st, x->index, &a, &x->leaf.data, &x->leaf.len);
		if (rc == CM_OK)
			rc = ix_fragment_inclusion(st, x->index, ch->size, path);
		if (rc != CM_OK)
			break;
		x->path = cm_arena_alloc(&a, (path->len ? path->len : 1) * sizeof(*x->path));
		uint8_t *hashes = cm_arena_alloc(&a, path->len * CM_MERKLE_HASH_BYTES + 1);
		if (!x->path || !hashes) {
			rc = CM_ERR_NOMEM;
			break;
		}
		memcpy(hashes, path->hash, path->len * CM_MERKLE_HASH_BYTES);
		for (size_t k = 0; k < path->len; k++) {
			x->path[k].data = hashes + k * CM_MERKLE_HASH_BYTES;
			x->path[k].len = CM_MERKLE_HASH_BYTES;
		}
		x->n_path = path->len;
		cm_hasher h;
		cm_hasher_init(&h, CM_DOM_CHALLENGE);
		cm_hasher_update(&h, ch->beacon.data, CM_HASH_BYTES);
		cm_hasher_update(&h, s->key.pk, CM_PK_BYTES);
		cm_hasher_update(&h, x->leaf.data, x->leaf.len);
		cm_hasher_final(&h, tag);
		x->tag.data = tag;
		x->tag.len = CM_HASH_BYTES;
		ans[i] = x;
	}
	if (rc == CM_OK) {
		Muri__V1__AnswerChallenge ac = MURI__V1__ANSWER_CHALLENGE__INIT;
		ac.challenge_id = ch->id;
		ac.answers = ans;
		ac.n_answers = ch->n_leaf_indices;
		Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_ANSWER_CHALLENGE;
		t.answer_challenge = &ac;
		char err[CM_LC_MSG_MAX + 128] = "";
		rc = cm_ledger_client_submit(lc, &t, 0, NULL, err, sizeof(err));
		if (rc == CM_OK)
			cm_info("challenge_answered", "id=%llu magu=%s fragment=%u size=%llu leaves=%zu",
				(unsigned long long)ch->id, ch->magu, ch->fragment, (unsigned long long)ch->size,
				ch->n_leaf_indices);
		else
			cm_warn("challenge_refused", "id=%llu error=\"%s\"", (unsigned long long)ch->id, err);
	} else {
		cm_warn("challenge_unanswerable", "id=%llu magu=%s fragment=%u error=\"%s\"", (unsigned long long)ch->id,
			ch->magu, ch->fragment, cm_strerror(rc));
	}
	cm_arena_free(&a);
}
