/* Transactions: signing, decoding with verification, and the stateless
 * checks of each payload (lengths, ranges, names), so that the state machine
 * only ever executes well-formed bodies. Checks that need state (nonce,
 * balance, existence of a target) are lg_state's. */
#include "lg_tx.h"

#include "cm_pb.h"
#include "cm_answer.h"
#include "lg_state.h"
#include "cm_err.h"
#include "cm_merkle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Formats a message into err and returns rc. */
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void lg_tx_hash(const uint8_t *body, size_t len, uint8_t hash[CM_HASH_BYTES])
{
	cm_hash(hash, CM_DOM_TX, body, len);
}

int lg_tx_sign(const Muri__V1__Transaction *tx, const cm_keypair *kp,
	       Muri__V1__SignedTransaction *out, uint8_t hash[CM_HASH_BYTES])
{
	uint8_t h[CM_HASH_BYTES];
	size_t len;
	uint8_t *body, *sig;

	if (!tx || !kp || !out)
		return CM_ERR_INVALID;
	if (tx->sender.len != CM_PK_BYTES || memcmp(tx->sender.data, kp->pk, CM_PK_BYTES) != 0)
		return CM_ERR_INVALID;
	len = protobuf_c_message_get_packed_size(&tx->base);
	if (len > LG_TX_MAX_BYTES)
		return CM_ERR_TOOBIG;
	body = malloc(len ? len : 1);
	sig = malloc(CM_SIG_BYTES);
	if (!body || !sig) {
		free(body);
		free(sig);
		return CM_ERR_NOMEM;
	}
	protobuf_c_message_pack(&tx->base, body);
	lg_tx_hash(body, len, h);
	cm_sign(kp, sig, h, sizeof(h));
	muri__v1__signed_transaction__init(out);
	out->body.data = body;
	out->body.len = len;
	out->signature.data = sig;
	out->signature.len = CM_SIG_BYTES;
	if (hash)
		memcpy(hash, h, CM_HASH_BYTES);
	return CM_OK;
}

void lg_tx_signed_clear(Muri__V1__SignedTransaction *stx)
{
	if (!stx)
		return;
	free(stx->body.data);
	free(stx->signature.data);
	muri__v1__signed_transaction__init(stx);
}

int lg_tx_open(const Muri__V1__SignedTransaction *stx, const char *chain_id, unsigned flags,
	       lg_tx *out, char *err, size_t errlen)
{
	Muri__V1__Transaction *body;
	uint8_t hash[CM_HASH_BYTES];
	int rc;

	if (!stx || !chain_id || !out)
		return fail(err, errlen, CM_ERR_INVALID, "transaction: missing");
	if (stx->body.len == 0)
		return fail(err, errlen, CM_ERR_INVALID, "body: empty");
	if (stx->body.len > LG_TX_MAX_BYTES)
		return fail(err, errlen, CM_ERR_TOOBIG, "body: %zu bytes, at most %u", stx->body.len,
			    LG_TX_MAX_BYTES);
	if (stx->signature.len != CM_SIG_BYTES)
		return fail(err, errlen, CM_ERR_INVALID, "signature: %zu bytes, expected %d",
			    stx->signature.len, CM_SIG_BYTES);
	body = muri__v1__transaction__unpack(NULL, stx->body.len, stx->body.data);
	if (!body)
		return fail(err, errlen, CM_ERR_INVALID, "body: not a valid Transaction encoding");
	if (!cm_pb_well_formed(&body->base)) {
		rc = fail(err, errlen, CM_ERR_INVALID, "body: a field numbered 0 (not a valid Transaction encoding)");
		goto out_free;
	}
	if (strcmp(body->chain_id, chain_id) != 0) {
		rc = fail(err, errlen, CM_ERR_INVALID, "chain_id: \"%.64s\" is not this chain (\"%s\")",
			  body->chain_id, chain_id);
		goto out_free;
	}
	rc = lg_tx_check(body, err, errlen);
	if (rc != CM_OK)
		goto out_free;
	lg_tx_hash(stx->body.data, stx->body.len, hash);
	if (!(flags & LG_TX_SKIP_SIG) &&
	    cm_verify(body->sender.data, stx->signature.data, hash, sizeof(hash)) != CM_OK) {
		rc = fail(err, errlen, CM_ERR_VERIFY, "signature: does not verify for the sender");
		goto out_free;
	}
	memcpy(out->hash, hash, sizeof(hash));
	out->size = stx->body.len;
	out->body = body;
	return CM_OK;
out_free:
	muri__v1__transaction__free_unpacked(body, NULL);
	return rc;
}

void lg_tx_close(lg_tx *tx)
{
	if (!tx)
		return;
	if (tx->body)
		muri__v1__transaction__free_unpacked(tx->body, NULL);
	tx->body = NULL;
}

int lg_name_valid(const char *name)
{
	size_t n = 0;
	if (!name)
		return 0;
	for (; name[n]; n++) {
		char c = name[n];
		if (n >= LG_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return n > 0;
}

int lg_address_valid(const char *addr)
{
	const char *colon;
	size_t n;
	unsigned long port = 0;

	if (!addr)
		return 0;
	n = strlen(addr);
	if (n < 3 || n > LG_ADDRESS_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (addr[i] <= ' ' || addr[i] > '~')
			return 0;
	colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1] || strlen(colon + 1) > 5)
		return 0;
	for (const char *p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	return port >= 1 && port <= 65535;
}

/* ---- payload checks ---- */

static int key_len_ok(const ProtobufCBinaryData *b)
{
	return b->len == CM_PK_BYTES;
}

/* CM_OK if v is 0 (meaning the default) or in [lo, hi]. */
static int opt_range(uint64_t v, uint64_t lo, uint64_t hi, const char *field, char *err,
		     size_t errlen)
{
	if (v != 0 && (v < lo || v > hi))
		return fail(err, errlen, CM_ERR_INVALID, "%s: %llu is out of range %llu..%llu (0 = default)",
			    field, (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
	return CM_OK;
}

static int check_index_spec(const Muri__V1__IndexSpec *ix, uint32_t dimension, char *err,
			    size_t errlen)
{
	int rc;
	if (!ix)
		return CM_OK;
	if ((unsigned)ix->kind > MURI__V1__INDEX_KIND__IVF)
		return fail(err, errlen, CM_ERR_INVALID, "create_magu.index.kind: unknown value %d",
			    (int)ix->kind);
	if ((unsigned)ix->quantizer > MURI__V1__QUANTIZER__PQ)
		return fail(err, errlen, CM_ERR_INVALID, "create_magu.index.quantizer: unknown value %d",
			    (int)ix->quantizer);
	if ((rc = opt_range(ix->hnsw_m, 4, 128, "create_magu.index.hnsw_m", err, errlen)) ||
	    (rc = opt_range(ix->hnsw_ef_construction, 8, 4096, "create_magu.index.hnsw_ef_construction",
			    err, errlen)) ||
	    (rc = opt_range(ix->hnsw_ef_search, 1, 4096, "create_magu.index.hnsw_ef_search", err,
			    errlen)) ||
	    (rc = opt_range(ix->ivf_nlist, 1, 65536, "create_magu.index.ivf_nlist", err, errlen)) ||
	    (rc = opt_range(ix->ivf_nprobe, 1, ix->ivf_nlist ? ix->ivf_nlist : 65536,
			    "create_magu.index.ivf_nprobe", err, errlen)) ||
	    (rc = opt_range(ix->index_batch, 1, 1000000, "create_magu.index.index_batch", err, errlen)) ||
	    (rc = opt_range(ix->tombstone_permille, 10, 990, "create_magu.index.tombstone_permille", err,
			    errlen)) ||
	    (rc = opt_range(ix->train_min, 1, 100000000, "create_magu.index.train_min", err, errlen)) ||
	    (rc = opt_range(ix->train_max, 1, 100000000, "create_magu.index.train_max", err, errlen)) ||
	    (rc = opt_range(ix->exact_threshold, 1, 100000000, "create_magu.index.exact_threshold", err,
			    errlen)) ||
	    (rc = opt_range(ix->exact_permille, 1, 1000, "create_magu.index.exact_permille", err, errlen)) ||
	    (rc = opt_range(ix->rerank, 1, 64, "create_magu.index.rerank", err, errlen)))
		return rc;
	if (ix->train_min && ix->train_max && ix->train_max < ix->train_min)
		return fail(err, errlen, CM_ERR_INVALID, "create_magu.index.train_max: %u is below train_min %u",
			    ix->train_max, ix->train_min);
	if (ix->pq_m && (ix->quantizer != MURI__V1__QUANTIZER__PQ || dimension % ix->pq_m != 0))
		return fail(err, errlen, CM_ERR_INVALID,
			    "create_magu.index.pq_m: %u must divide the dimension %u and needs quantizer PQ",
			    ix->pq_m, dimension);
	return CM_OK;
}

static int check_create_magu(const Muri__V1__CreateMagu *m, char *err, size_t errlen)
{
	int rc;
	if (!lg_name_valid(m->name))
		return fail(err, errlen, CM_ERR_INVALID,
			    "create_magu.name: must be 1..%d bytes of [A-Za-z0-9_.-]", LG_NAME_MAX);
	if (m->access_owner.len && !key_len_ok(&m->access_owner))
		return fail(err, errlen, CM_ERR_INVALID, "create_magu.access_owner: %zu bytes, expected %d",
			    m->access_owner.len, CM_PK_BYTES);
	if ((unsigned)m->metric > MURI__V1__METRIC__HAMMING)
		return fail(err, errlen, CM_ERR_INVALID, "create_magu.metric: unknown value %d",
			    (int)m->metric);
	if (m->metric == MURI__V1__METRIC__HAMMING) {
		/* Binary vectors: the dimension counts bits, packed into bytes. */
		if (m->dimension < 8 || m->dimension > LG_BITS_MAX || m->dimension % 8)
			return fail(err, errlen, CM_ERR_INVALID,
				    "create_magu.dimension: %u bits under HAMMING, expected a multiple of 8 in 8..%d",
				    m->dimension, LG_BITS_MAX);
		if (m->index && m->index->kind == MURI__V1__INDEX_KIND__IVF)
			return fail(err, errlen, CM_ERR_INVALID,
				    "create_magu.index.kind: HAMMING takes FLAT or HNSW");
		if (m->index && (m->index->quantizer || m->index->pq_m))
			return fail(err, errlen, CM_ERR_INVALID,
				    "create_magu.index.quantizer: HAMMING vectors are not quantized");
	} else if (m->dimension < 1 || m->dimension > LG_DIM_MAX) {
		return fail(err, errlen, CM_ERR_INVALID, "create_magu.dimension: %u is out of range 1..%d",
			    m->dimension, LG_DIM_MAX);
	}
	if ((rc = opt_range(m->fragments, 1, LG_FRAGMENTS_MAX, "create_magu.fragments", err, errlen)) ||
	    (rc = opt_range(m->replication, 1, LG_REPLICATION_MAX, "create_magu.replication", err,
			    errlen)))
		return rc;
	return check_index_spec(m->index, m->dimension, err, errlen);
}

/* The stateless checks of a SignedRoot; what names the field in messages.
 * min_size: 0 where a root of the empty log may be signed (a split's child
 * commits one when it got no records, services/ledger/lg_st_split.c). */
static int check_signed_root(const Muri__V1__SignedRoot *r, const char *what, uint64_t min_size, char *err,
			     size_t errlen)
{
	if (!r)
		return fail(err, errlen, CM_ERR_INVALID, "%s: missing", what);
	if (!lg_name_valid(r->magu))
		return fail(err, errlen, CM_ERR_INVALID, "%s.magu: not a valid Magu name", what);
	if (r->fragment >= LG_FRAGMENTS_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "%s.fragment: %u is out of range 0..%d", what,
			    r->fragment, LG_FRAGMENTS_MAX - 1);
	if (r->size < min_size || r->size > CM_MERKLE_MAX_SIZE)
		return fail(err, errlen, CM_ERR_INVALID, "%s.size: must be %llu..2^63", what,
			    (unsigned long long)min_size);
	if (r->root.len != CM_MERKLE_HASH_BYTES)
		return fail(err, errlen, CM_ERR_INVALID, "%s.root: %zu bytes, expected %d", what,
			    r->root.len, CM_MERKLE_HASH_BYTES);
	if (!key_len_ok(&r->signer))
		return fail(err, errlen, CM_ERR_INVALID, "%s.signer: %zu bytes, expected %d", what,
			    r->signer.len, CM_PK_BYTES);
	if (r->signature.len != CM_SIG_BYTES)
		return fail(err, errlen, CM_ERR_INVALID, "%s.signature: %zu bytes, expected %d", what,
			    r->signature.len, CM_SIG_BYTES);
	return CM_OK;
}

static int check_commit_root(const Muri__V1__CommitRoot *c, char *err, size_t errlen)
{
	int rc = check_signed_root(c->root, "commit_root.root", 0, err, errlen);
	if (rc != CM_OK)
		return rc;
	if (c->consistency_proof.len % CM_MERKLE_HASH_BYTES != 0 ||
	    c->consistency_proof.len > CM_MERKLE_MAX_PATH * CM_MERKLE_HASH_BYTES)
		return fail(err, errlen, CM_ERR_INVALID,
			    "commit_root.consistency_proof: %zu bytes, must be a multiple of %d up to %d hashes",
			    c->consistency_proof.len, CM_MERKLE_HASH_BYTES, CM_MERKLE_MAX_PATH);
	return CM_OK;
}

/* Field sizes only: whether a and b are evidence is the state's call. */
static int check_double_root(const Muri__V1__ReportDoubleRoot *d, char *err, size_t errlen)
{
	int rc = check_signed_root(d->a, "report_double_root.a", 1, err, errlen);
	return rc != CM_OK ? rc : check_signed_root(d->b, "report_double_root.b", 1, err, errlen);
}

/* Field sizes only: whether it is evidence is the state's call (lg_st_evidence.c). */
static int check_report_answer(const Muri__V1__ReportAnswer *r, char *err, size_t errlen)
{
	const Muri__V1__LocalSearchResponse *a = r->answer;
	if (!lg_name_valid(r->magu))
		return fail(err, errlen, CM_ERR_INVALID, "report_answer.magu: not a valid Magu name");
	if (r->fragment >= LG_FRAGMENTS_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "report_answer.fragment: %u is out of range 0..%d",
			    r->fragment, LG_FRAGMENTS_MAX - 1);
	if (r->query.len != CM_HASH_BYTES)
		return fail(err, errlen, CM_ERR_INVALID, "report_answer.query: %zu bytes, expected %d", r->query.len,
			    CM_HASH_BYTES);
	if (!a)
		return fail(err, errlen, CM_ERR_INVALID, "report_answer.answer: missing");
	if (!key_len_ok(&a->signer) || a->signature.len != CM_SIG_BYTES || a->root.len != CM_HASH_BYTES)
		return fail(err, errlen, CM_ERR_INVALID,
			    "report_answer.answer: signer (32 bytes), signature (64) and root (32) are required");
	if (a->n_hits > CM_ANSWER_HITS_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "report_answer.answer.hits: %zu, at most %d", a->n_hits,
			    CM_ANSWER_HITS_MAX);
	if (!r->by_root && r->hit >= a->n_hits)
		return fail(err, errlen, CM_ERR_INVALID, "report_answer.hit: %u, the answer has %zu hits", r->hit,
			    a->n_hits);
	if (r->leaf_path.len % CM_MERKLE_HASH_BYTES != 0 ||
	    r->leaf_path.len > CM_MERKLE_MAX_PATH * CM_MERKLE_HASH_BYTES)
		return fail(err, errlen, CM_ERR_INVALID,
			    "report_answer.leaf_path: %zu bytes, must be a multiple of %d up to %d hashes",
			    r->leaf_path.len, CM_MERKLE_HASH_BYTES, CM_MERKLE_MAX_PATH);
	return CM_OK;
}

static int check_answer(const Muri__V1__AnswerChallenge *a, char *err, size_t errlen)
{
	if (a->n_answers < 1 || a->n_answers > LG_LEAVES_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "answer_challenge.answers: %zu answers, expected 1..%d",
			    a->n_answers, LG_LEAVES_MAX);
	for (size_t i = 0; i < a->n_answers; i++) {
		const Muri__V1__ChallengeAnswerRef *r = a->answers[i];
		if (r->n_path > CM_MERKLE_MAX_PATH)
			return fail(err, errlen, CM_ERR_INVALID,
				    "answer_challenge.answers[%zu].path: %zu hashes, at most %d", i,
				    r->n_path, CM_MERKLE_MAX_PATH);
		for (size_t j = 0; j < r->n_path; j++)
			if (r->path[j].len != CM_MERKLE_HASH_BYTES)
				return fail(err, errlen, CM_ERR_INVALID,
					    "answer_challenge.answers[%zu].path[%zu]: %zu bytes, expected %d",
					    i, j, r->path[j].len, CM_MERKLE_HASH_BYTES);
		if (r->tag.len != CM_HASH_BYTES)
			return fail(err, errlen, CM_ERR_INVALID,
				    "answer_challenge.answers[%zu].tag: %zu bytes, expected %d", i,
				    r->tag.len, CM_HASH_BYTES);
	}
	return CM_OK;
}

static int check_settle(const Muri__V1__Settle *s, char *err, size_t errlen)
{
	if (s->n_receipts < 1 || s->n_receipts > LG_RECEIPTS_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "settle.receipts: %zu receipts, expected 1..%d",
			    s->n_receipts, LG_RECEIPTS_MAX);
	for (size_t i = 0; i < s->n_receipts; i++) {
		const Muri__V1__SearchReceipt *r = s->receipts[i];
		if (!lg_name_valid(r->magu))
			return fail(err, errlen, CM_ERR_INVALID, "settle.receipts[%zu].magu: not a valid Magu name", i);
		if (!key_len_ok(&r->searcher))
			return fail(err, errlen, CM_ERR_INVALID, "settle.receipts[%zu].searcher: %zu bytes, expected %d",
				    i, r->searcher.len, CM_PK_BYTES);
		if (r->n_ranked_nodes < 1 || r->n_ranked_nodes > LG_RANKED_MAX)
			return fail(err, errlen, CM_ERR_INVALID,
				    "settle.receipts[%zu].ranked_nodes: %zu nodes, expected 1..%d", i,
				    r->n_ranked_nodes, LG_RANKED_MAX);
		for (size_t j = 0; j < r->n_ranked_nodes; j++) {
			if (!key_len_ok(&r->ranked_nodes[j]))
				return fail(err, errlen, CM_ERR_INVALID,
					    "settle.receipts[%zu].ranked_nodes[%zu]: %zu bytes, expected %d",
					    i, j, r->ranked_nodes[j].len, CM_PK_BYTES);
			for (size_t k = 0; k < j; k++)
				if (memcmp(r->ranked_nodes[k].data, r->ranked_nodes[j].data, CM_PK_BYTES) == 0)
					return fail(err, errlen, CM_ERR_INVALID,
						    "settle.receipts[%zu].ranked_nodes[%zu]: repeats node %zu",
						    i, j, k);
		}
		if (r->fee == 0)
			return fail(err, errlen, CM_ERR_INVALID, "settle.receipts[%zu].fee: must be positive", i);
		if (r->id.len < LG_RECEIPT_ID_MIN_BYTES || r->id.len > LG_RECEIPT_ID_MAX_BYTES)
			return fail(err, errlen, CM_ERR_INVALID, "settle.receipts[%zu].id: %zu bytes, expected %d..%d",
				    i, r->id.len, LG_RECEIPT_ID_MIN_BYTES, LG_RECEIPT_ID_MAX_BYTES);
		for (size_t k = 0; k < i; k++)
			if (s->receipts[k]->id.len == r->id.len &&
			    memcmp(s->receipts[k]->id.data, r->id.data, r->id.len) == 0)
				return fail(err, errlen, CM_ERR_INVALID, "settle.receipts[%zu].id: repeats receipts[%zu]",
					    i, k);
	}
	return CM_OK;
}

static int check_propose(const Muri__V1__Propose *p, char *err, size_t errlen)
{
	const lg_param_def *d = lg_param_find(p->param);
	if (!d)
		return fail(err, errlen, CM_ERR_INVALID, "propose.param: unknown parameter \"%.48s\"", p->param);
	if (!d->governable)
		return fail(err, errlen, CM_ERR_INVALID, "propose.param: %s is fixed at genesis", d->name);
	if (p->value < d->min || p->value > d->max)
		return fail(err, errlen, CM_ERR_INVALID, "propose.value: %lld is out of range %lld..%lld for %s",
			    (long long)p->value, (long long)d->min, (long long)d->max, d->name);
	if (p->apply_height == 0)
		return fail(err, errlen, CM_ERR_INVALID, "propose.apply_height: must be positive");
	return CM_OK;
}

static int check_create_api_key(const Muri__V1__CreateApiKey *c, char *err, size_t errlen)
{
	if (c->key_hash.len != CM_HASH_BYTES)
		return fail(err, errlen, CM_ERR_INVALID, "create_api_key.key_hash: %zu bytes, expected %d",
			    c->key_hash.len, CM_HASH_BYTES);
	if (c->scope != MURI__V1__KEY_SCOPE__SCOPE_READ && c->scope != MURI__V1__KEY_SCOPE__SCOPE_WRITE &&
	    c->scope != MURI__V1__KEY_SCOPE__SCOPE_ADMIN)
		return fail(err, errlen, CM_ERR_INVALID, "create_api_key.scope: %d is not READ, WRITE or ADMIN",
			    (int)c->scope);
	if (c->n_collections > LG_KEY_COLLECTIONS_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "create_api_key.collections: %zu names, at most %d",
			    c->n_collections, LG_KEY_COLLECTIONS_MAX);
	for (size_t i = 0; i < c->n_collections; i++)
		if (!lg_name_valid(c->collections[i]))
			return fail(err, errlen, CM_ERR_INVALID, "create_api_key.collections[%zu]: not a valid Magu name",
				    i);
	if (c->label && strlen(c->label) > LG_KEY_LABEL_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "create_api_key.label: %zu bytes, at most %d",
			    strlen(c->label), LG_KEY_LABEL_MAX);
	return CM_OK;
}

static int check_keys(const ProtobufCBinaryData *v, size_t n, const char *field, char *err, size_t errlen)
{
	if (n > LG_ACCESS_LIST_MAX)
		return fail(err, errlen, CM_ERR_INVALID, "set_access.%s: %zu accounts, at most %d", field, n,
			    LG_ACCESS_LIST_MAX);
	for (size_t i = 0; i < n; i++)
		if (!key_len_ok(&v[i]))
			return fail(err, errlen, CM_ERR_INVALID, "set_access.%s[%zu]: %zu bytes, expected %d", field, i,
				    v[i].len, CM_PK_BYTES);
	return CM_OK;
}

static int check_set_access(const Muri__V1__SetAccess *s, char *err, size_t errlen)
{
	int rc;
	if (!lg_name_valid(s->magu))
		return fail(err, errlen, CM_ERR_INVALID, "set_access.magu: not a valid Magu name");
	if ((rc = check_keys(s->readers, s->n_readers, "readers", err, errlen)) != CM_OK ||
	    (rc = check_keys(s->writers, s->n_writers, "writers", err, errlen)) != CM_OK)
		return rc;
	if (s->new_owner.len && !key_len_ok(&s->new_owner))
		return fail(err, errlen, CM_ERR_INVALID, "set_access.new_owner: %zu bytes, expected %d",
			    s->new_owner.len, CM_PK_BYTES);
	return CM_OK;
}

int lg_tx_check(const Muri__V1__Transaction *tx, char *err, size_t errlen)
{
	if (!tx)
		return fail(err, errlen, CM_ERR_INVALID, "transaction: missing");
	if (!key_len_ok(&tx->sender))
		return fail(err, errlen, CM_ERR_INVALID, "sender: %zu bytes, expected %d", tx->sender.len,
			    CM_PK_BYTES);
	switch (tx->payload_case) {
	case MURI__V1__TRANSACTION__PAYLOAD_TRANSFER:
		if (!key_len_ok(&tx->transfer->to))
			return fail(err, errlen, CM_ERR_INVALID, "transfer.to: %zu bytes, expected %d",
				    tx->transfer->to.len, CM_PK_BYTES);
		if (tx->transfer->amount == 0)
			return fail(err, errlen, CM_ERR_INVALID, "transfer.amount: must be positive");
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_REGISTER_INDEXER:
		if (!lg_address_valid(tx->register_indexer->address))
			return fail(err, errlen, CM_ERR_INVALID,
				    "register_indexer.address: \"%.64s\" is not host:port (at most %d bytes)",
				    tx->register_indexer->address, LG_ADDRESS_MAX);
		if (tx->register_indexer->capacity_bytes == 0)
			return fail(err, errlen, CM_ERR_INVALID, "register_indexer.capacity_bytes: must be positive");
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_STAKE:
		if (tx->stake->amount == 0)
			return fail(err, errlen, CM_ERR_INVALID, "stake.amount: must be positive");
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_UNSTAKE:
		if (tx->unstake->amount == 0)
			return fail(err, errlen, CM_ERR_INVALID, "unstake.amount: must be positive");
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU:
		return check_create_magu(tx->create_magu, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU:
		if (!lg_name_valid(tx->drop_magu->name))
			return fail(err, errlen, CM_ERR_INVALID, "drop_magu.name: not a valid Magu name");
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_COMMIT_ROOT:
		return check_commit_root(tx->commit_root, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_ANSWER_CHALLENGE:
		return check_answer(tx->answer_challenge, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_SETTLE:
		return check_settle(tx->settle, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_FAILOVER:
		if (!lg_name_valid(tx->failover->magu))
			return fail(err, errlen, CM_ERR_INVALID, "failover.magu: not a valid Magu name");
		if (tx->failover->fragment >= LG_FRAGMENTS_MAX)
			return fail(err, errlen, CM_ERR_INVALID, "failover.fragment: %u is out of range 0..%d",
				    tx->failover->fragment, LG_FRAGMENTS_MAX - 1);
		if (tx->failover->epoch == 0)
			return fail(err, errlen, CM_ERR_INVALID, "failover.epoch: must be positive");
		if (tx->failover->root.len != CM_HASH_BYTES)
			return fail(err, errlen, CM_ERR_INVALID, "failover.root: %zu bytes, must be %d",
				    tx->failover->root.len, CM_HASH_BYTES);
		if (tx->failover->last_epoch > tx->failover->epoch)
			return fail(err, errlen, CM_ERR_INVALID,
				    "failover.last_epoch: %llu is above failover.epoch %llu",
				    (unsigned long long)tx->failover->last_epoch,
				    (unsigned long long)tx->failover->epoch);
		if ((tx->failover->log_size == 0) != (tx->failover->last_epoch == 0))
			return fail(err, errlen, CM_ERR_INVALID,
				    "failover.last_epoch: must be 0 exactly when failover.log_size is 0");
		if (tx->failover->drop.len && !key_len_ok(&tx->failover->drop))
			return fail(err, errlen, CM_ERR_INVALID, "failover.drop: %zu bytes, expected %d",
				    tx->failover->drop.len, CM_PK_BYTES);
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_PROPOSE:
		return check_propose(tx->propose, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_VOTE:
		if (tx->vote->proposal_id == 0)
			return fail(err, errlen, CM_ERR_INVALID, "vote.proposal_id: must be positive");
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_APPROVE:
		if (!key_len_ok(&tx->approve->gateway))
			return fail(err, errlen, CM_ERR_INVALID, "approve.gateway: %zu bytes, expected %d",
				    tx->approve->gateway.len, CM_PK_BYTES);
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_CREATE_API_KEY:
		return check_create_api_key(tx->create_api_key, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_REVOKE_API_KEY:
		if (tx->revoke_api_key->key_hash.len != CM_HASH_BYTES)
			return fail(err, errlen, CM_ERR_INVALID, "revoke_api_key.key_hash: %zu bytes, expected %d",
				    tx->revoke_api_key->key_hash.len, CM_HASH_BYTES);
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_SET_ACCESS:
		return check_set_access(tx->set_access, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_SPLIT_FRAGMENT:
		if (!lg_name_valid(tx->split_fragment->magu))
			return fail(err, errlen, CM_ERR_INVALID, "split_fragment.magu: not a valid Magu name");
		if (tx->split_fragment->fragment >= LG_FRAGMENTS_MAX)
			return fail(err, errlen, CM_ERR_INVALID, "split_fragment.fragment: %u, at most %d",
				    tx->split_fragment->fragment, LG_FRAGMENTS_MAX - 1);
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD_REPORT_DOUBLE_ROOT:
		return check_double_root(tx->report_double_root, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_REPORT_ANSWER:
		return check_report_answer(tx->report_answer, err, errlen);
	case MURI__V1__TRANSACTION__PAYLOAD_NOOP:
		if (tx->noop->data.len > LG_NOOP_MAX)
			return fail(err, errlen, CM_ERR_INVALID, "noop.data: %zu bytes, at most %d",
				    tx->noop->data.len, LG_NOOP_MAX);
		return CM_OK;
	case MURI__V1__TRANSACTION__PAYLOAD__NOT_SET:
	default:
		return fail(err, errlen, CM_ERR_INVALID, "payload: missing or unknown");
	}
}

int lg_root_digest(const Muri__V1__SignedRoot *root, uint8_t out[CM_HASH_BYTES])
{
	Muri__V1__SignedRoot copy = *root;
	uint8_t stackbuf[512], *buf = stackbuf;
	size_t len;

	copy.signature.data = NULL;
	copy.signature.len = 0;
	len = muri__v1__signed_root__get_packed_size(&copy);
	if (len > sizeof(stackbuf) && !(buf = malloc(len)))
		return CM_ERR_NOMEM;
	muri__v1__signed_root__pack(&copy, buf);
	cm_hash(out, CM_DOM_ROOT, buf, len);
	if (buf != stackbuf)
		free(buf);
	return CM_OK;
}

int lg_root_verify(const Muri__V1__SignedRoot *root)
{
	uint8_t d[CM_HASH_BYTES];
	int rc;
	if (!root || root->signer.len != CM_PK_BYTES || root->signature.len != CM_SIG_BYTES)
		return CM_ERR_INVALID;
	if ((rc = lg_root_digest(root, d)) != CM_OK)
		return rc;
	return cm_verify(root->signer.data, root->signature.data, d, sizeof(d));
}
