/* A ledger replica's services: the Ledger service (queries, blocks for
 * clients, the committed-block feed; admission is in lg_node_admit.c) and the
 * FetchBlocks calls its peers make. */
#include "lg_node_int.h"
#include "lg_query.h"

/* ---- FetchBlocks (served) ------------------------------------------------------ */

/* Bytes of blocks in one FetchBlocks answer: past this the answer ends early
 * (it always holds at least one block), well below the RPC message limit. */
#define FETCH_ANSWER_BYTES (48u << 20)

static int add_bytes(cm_rpc_call *call, ProtobufCBinaryData *v, const uint8_t *p, size_t len)
{
	v->data = cm_rpc_alloc(call, len ? len : 1);
	if (!v->data)
		return CM_ERR_NOMEM;
	memcpy(v->data, p, len);
	v->len = len;
	return CM_OK;
}

int lg_node_serve_fetch(void *arg, cm_rpc_call *call, const Muri__V1__FetchBlocksRequest *req,
		       Muri__V1__FetchBlocksResponse *resp)
{
	lg_node *n = arg;
	uint32_t max = req->max_blocks;
	resp->blocks = cm_rpc_alloc(call, max * sizeof(*resp->blocks));
	resp->commit_qcs = cm_rpc_alloc(call, max * sizeof(*resp->commit_qcs));
	if (!resp->blocks || !resp->commit_qcs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	lg_store *rd = lg_node_reader_get(n);
	int code = GRPC_STATUS_OK;
	if (req->block_hash.len == CM_HASH_BYTES) {
		uint8_t cur[CM_HASH_BYTES];
		memcpy(cur, req->block_hash.data, CM_HASH_BYTES);
		size_t total = 0;
		while (resp->n_blocks < max && total < FETCH_ANSWER_BYTES) {
			uint8_t *bytes = NULL;
			size_t len = 0;
			lg_block_rec rec;
			memset(&rec, 0, sizeof(rec));
			if (lg_blocks_get(n->blocks, cur, &bytes, &len) != CM_OK) {
				if (lg_store_get_block_by_hash(rd, cur, &rec) != CM_OK)
					break;
				bytes = (uint8_t *)rec.header;
				len = rec.header_len;
				rec.header = NULL;
			}
			cm_block b;
			int ok = cm_block_decode(bytes, len, &b) == CM_OK &&
				 add_bytes(call, &resp->blocks[resp->n_blocks], bytes, len) == CM_OK;
			if (ok) {
				resp->commit_qcs[resp->n_blocks].len = 0;
				resp->n_blocks++;
				total += len;
				memcpy(cur, b.parent, CM_HASH_BYTES);
			}
			free(bytes);
			lg_block_rec_clear(&rec);
			if (!ok || b.height <= 1)
				break;
		}
	} else if (req->block_hash.len == 0) {
		size_t total = 0;
		for (uint64_t h = req->from_height ? req->from_height : 1; resp->n_blocks < max && total < FETCH_ANSWER_BYTES;
		     h++) {
			lg_block_rec rec;
			if (lg_store_get_block(rd, h, &rec) != CM_OK)
				break;
			total += rec.header_len + rec.qc_len;
			int ok = add_bytes(call, &resp->blocks[resp->n_blocks], rec.header, rec.header_len) == CM_OK &&
				 add_bytes(call, &resp->commit_qcs[resp->n_blocks], rec.qc, rec.qc_len) == CM_OK;
			lg_block_rec_clear(&rec);
			if (!ok)
				break;
			resp->n_blocks++;
		}
	} else {
		code = cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "block_hash: must be 32 bytes or empty");
	}
	resp->n_commit_qcs = resp->n_blocks;
	lg_node_reader_put(n, rd);
	return code;
}

/* ---- blocks for clients ---------------------------------------------------------- */

static int qc_to_pb(lg_node *n, const cm_qc *qc, cm_arena *a, Muri__V1__QuorumCert **out)
{
	Muri__V1__QuorumCert *q = cm_arena_alloc(a, sizeof(*q));
	uint32_t k = cm_qc_count(qc);
	ProtobufCBinaryData *signers = cm_arena_alloc(a, (k ? k : 1) * sizeof(*signers));
	ProtobufCBinaryData *sigs = cm_arena_alloc(a, (k ? k : 1) * sizeof(*sigs));
	uint8_t *hash = cm_arena_alloc(a, CM_HASH_BYTES);
	if (!q || !signers || !sigs || !hash)
		return CM_ERR_NOMEM;
	muri__v1__quorum_cert__init(q);
	q->view = qc->view;
	memcpy(hash, qc->block_hash, CM_HASH_BYTES);
	q->block_hash.data = hash;
	q->block_hash.len = CM_HASH_BYTES;
	for (uint32_t i = 0; i < n->n && i < CM_CHAIN_MAX_REPLICAS; i++)
		if (qc->signers & (1ull << i)) {
			signers[q->n_signers].data = n->pks[i];
			signers[q->n_signers++].len = CM_PK_BYTES;
			sigs[q->n_signatures].data = (uint8_t *)qc->sigs[i];
			sigs[q->n_signatures++].len = CM_SIG_BYTES;
		}
	q->signers = signers;
	q->signatures = sigs;
	*out = q;
	return CM_OK;
}

/* The client form of the committed block at height, built in a (which must
 * outlive *out; rec's bytes are copied into it). Its effects are a heap
 * message the caller frees (*effects, set even on failure; may be NULL). */
static int block_to_pb(lg_node *n, lg_store *rd, uint64_t height, cm_arena *a, Muri__V1__Block **out,
		       Muri__V1__BlockEffects **effects)
{
	*effects = NULL;
	lg_block_rec rec;
	int rc = lg_store_get_block(rd, height, &rec);
	if (rc != CM_OK)
		return rc;
	uint8_t *bytes = cm_arena_alloc(a, rec.header_len ? rec.header_len : 1);
	cm_qc *cqc = cm_arena_alloc(a, sizeof(*cqc));
	cm_block *b = cm_arena_alloc(a, sizeof(*b));
	rc = bytes && cqc && b ? CM_OK : CM_ERR_NOMEM;
	if (rc == CM_OK) {
		memcpy(bytes, rec.header, rec.header_len);
		rc = cm_block_decode(bytes, rec.header_len, b);
	}
	if (rc == CM_OK && rec.qc_len)
		rc = cm_qc_decode(rec.qc, rec.qc_len, cqc);
	uint8_t state_root[CM_HASH_BYTES];
	memcpy(state_root, rec.state_root, CM_HASH_BYTES);
	size_t qc_len = rec.qc_len, enc_len = rec.header_len;
	lg_block_rec_clear(&rec);
	if (rc != CM_OK)
		return rc;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(&a->pb, b->payload_len, b->payload);
	Muri__V1__Block *blk = cm_arena_alloc(a, sizeof(*blk));
	Muri__V1__BlockHeader *h = cm_arena_alloc(a, sizeof(*h));
	uint8_t *root = cm_arena_alloc(a, CM_HASH_BYTES), *txs_root = cm_arena_alloc(a, CM_HASH_BYTES);
	if (!body || !blk || !h || !root || !txs_root)
		return CM_ERR_NOMEM;
	muri__v1__block__init(blk);
	muri__v1__block_header__init(h);
	h->height = b->height;
	h->view = b->view;
	h->parent_hash.data = b->parent;
	h->parent_hash.len = CM_HASH_BYTES;
	if (qc_to_pb(n, &b->justify, a, &h->justify) != CM_OK)
		return CM_ERR_NOMEM;
	if (b->proposer < n->n) {
		h->proposer.data = n->pks[b->proposer];
		h->proposer.len = CM_PK_BYTES;
	}
	h->beacon = body->beacon;
	h->beacon_signature = body->beacon_signature;
	h->timestamp_ms = body->timestamp_ms;
	h->state_height = body->state_height;
	h->state_root = body->state_root;
	/* txs_root: RFC 6962 root over the transaction hashes */
	cm_merkle *m = NULL;
	if (cm_merkle_new(&m, &cm_merkle_blake2b) == CM_OK) {
		for (size_t i = 0; i < body->n_txs; i++) {
			uint8_t th[CM_HASH_BYTES];
			lg_tx_hash(body->txs[i]->body.data, body->txs[i]->body.len, th);
			cm_merkle_append(m, th, CM_HASH_BYTES);
		}
		if (cm_merkle_root(m, cm_merkle_size(m), txs_root) == CM_OK) {
			h->txs_root.data = txs_root;
			h->txs_root.len = CM_HASH_BYTES;
		}
		cm_merkle_free(m);
	}
	blk->header = h;
	blk->txs = body->txs;
	blk->n_txs = body->n_txs;
	blk->hash.data = b->hash;
	blk->hash.len = CM_HASH_BYTES;
	/* header_bytes || payload is the block's canonical encoding exactly
	 * (cm_block_encode), split before the payload */
	blk->header_bytes.data = bytes;
	blk->header_bytes.len = enc_len - b->payload_len;
	blk->payload.data = (uint8_t *)b->payload;
	blk->payload.len = b->payload_len;
	/* the QC stored with a committed block certifies that block (lg_hs_io.commit) */
	if (!qc_len || memcmp(cqc->block_hash, b->hash, CM_HASH_BYTES) != 0 || cqc->view != b->view)
		return CM_ERR_INTERNAL;
	if (qc_to_pb(n, cqc, a, &blk->commit_qc) != CM_OK)
		return CM_ERR_NOMEM;
	/* the effects the state machine recorded with the block */
	rc = lg_query_effects(rd, b->height, effects);
	if (rc == CM_OK) {
		blk->effects = *effects;
	} else if (rc == CM_ERR_NOTFOUND) {
		/* committed by a build that recorded no effects: what the block
		 * record knows, the height and the state root after it */
		blk->effects = cm_arena_alloc(a, sizeof(*blk->effects));
		if (!blk->effects)
			return CM_ERR_NOMEM;
		muri__v1__block_effects__init(blk->effects);
		blk->effects->height = b->height;
		memcpy(root, state_root, CM_HASH_BYTES);
		blk->effects->state_root.data = root;
		blk->effects->state_root.len = CM_HASH_BYTES;
	} else {
		return rc;
	}
	*out = blk;
	return CM_OK;
}

/* ---- the Ledger service ------------------------------------------------------------ */

static void free_message(void *m)
{
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Hands a heap message from an lg_query_* to the call as its response. */
static int give(cm_rpc_call *call, int rc, void *msg, ProtobufCMessage **resp, const char *what)
{
	if (rc == CM_ERR_NOTFOUND)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s not found", what);
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read %s: %s", what, cm_strerror(rc));
	cm_rpc_on_done(call, free_message, msg);
	*resp = msg;
	return GRPC_STATUS_OK;
}

static int key_arg(cm_rpc_call *call, const ProtobufCBinaryData *k, const char *field)
{
	if (k->len != CM_PK_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s: must be a 32-byte public key", field);
	return GRPC_STATUS_OK;
}

static int h_account(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__AccountRequest *req = (const Muri__V1__AccountRequest *)msg;
	int code = key_arg(call, &req->address, "address");
	if (code)
		return code;
	Muri__V1__Account *a = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_account(rd, req->address.data, &a);
	lg_node_reader_put(n, rd);
	return give(call, rc, a, resp, "account");
}

static int h_indexer(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__IndexerRequest *req = (const Muri__V1__IndexerRequest *)msg;
	int code = key_arg(call, &req->pubkey, "pubkey");
	if (code)
		return code;
	Muri__V1__IndexerInfo *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_indexer(rd, req->pubkey.data, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "indexer");
}

static int h_magu(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__MaguRequest *req = (const Muri__V1__MaguRequest *)msg;
	if (!lg_name_valid(req->name))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "name: 1..128 bytes of [A-Za-z0-9_.-]");
	Muri__V1__MaguInfo *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_magu(rd, req->name, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "Magu");
}

/* The paging errors of the lg_query_*_page functions, naming the field. */
static int page_error(cm_rpc_call *call, int rc, const char *limit_field, unsigned max)
{
	if (rc == CM_ERR_RANGE)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s: at most %u", limit_field, max);
	if (rc == CM_ERR_INVALID)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
				   "page_token: not a token of this query (pass next_page_token back unchanged)");
	return GRPC_STATUS_OK;
}

static int h_magus(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ListMagusRequest *req = (const Muri__V1__ListMagusRequest *)msg;
	if (req->limit > LG_QUERY_MAGUS_MAX)
		return page_error(call, CM_ERR_RANGE, "limit", LG_QUERY_MAGUS_MAX);
	Muri__V1__ListMagusResponse *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_magus_page(rd, req->limit, req->page_token.data, req->page_token.len, &x);
	lg_node_reader_put(n, rd);
	int code = page_error(call, rc, "limit", LG_QUERY_MAGUS_MAX);
	return code ? code : give(call, rc, x, resp, "Magus");
}

static int h_tx(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__TxRequest *req = (const Muri__V1__TxRequest *)msg;
	if (req->tx_hash.len != CM_HASH_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "tx_hash: must be 32 bytes");
	Muri__V1__TxStatus *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_tx(rd, req->tx_hash.data, &x);
	lg_node_reader_put(n, rd);
	if (rc == CM_ERR_NOTFOUND && lg_mempool_contains(n->mp, req->tx_hash.data)) {
		Muri__V1__TxStatus *p = cm_rpc_alloc(call, sizeof(*p));
		if (!p)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__tx_status__init(p);
		p->tx_hash = req->tx_hash;
		p->state = MURI__V1__TX_STATE__TX_PENDING;
		*resp = &p->base;
		return GRPC_STATUS_OK;
	}
	return give(call, rc, x, resp, "transaction");
}

static int h_params(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	(void)msg;
	Muri__V1__Params *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_params(rd, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "parameters");
}

static int h_challenges(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ChallengesRequest *req = (const Muri__V1__ChallengesRequest *)msg;
	int code = key_arg(call, &req->indexer, "indexer");
	if (code)
		return code;
	if (req->max > LG_QUERY_CHALLENGES_MAX)
		return page_error(call, CM_ERR_RANGE, "max", LG_QUERY_CHALLENGES_MAX);
	Muri__V1__ChallengesResponse *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_challenges_page(rd, req->indexer.data, req->open_only, req->max, req->page_token.data,
					  req->page_token.len, &x);
	lg_node_reader_put(n, rd);
	code = page_error(call, rc, "max", LG_QUERY_CHALLENGES_MAX);
	return code ? code : give(call, rc, x, resp, "challenges");
}

static int h_fragment(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__FragmentRequest *req = (const Muri__V1__FragmentRequest *)msg;
	if (!lg_name_valid(req->magu))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "magu: 1..128 bytes of [A-Za-z0-9_.-]");
	Muri__V1__FragmentInfo *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_fragment(rd, req->magu, req->fragment, &x);
	lg_node_reader_put(n, rd);
	if (rc == CM_ERR_NOTFOUND)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "magu/fragment: no fragment %u of Magu %s", req->fragment,
				   req->magu);
	return give(call, rc, x, resp, "fragment");
}

static int h_receipts(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ReceiptsRequest *req = (const Muri__V1__ReceiptsRequest *)msg;
	Muri__V1__ReceiptsResponse *x = NULL;
	char err[200] = "";
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_receipts(rd, req, &x, err, sizeof(err));
	lg_node_reader_put(n, rd);
	if (rc == CM_ERR_INVALID || rc == CM_ERR_RANGE)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err[0] ? err : "page_token: not a token of this query");
	return give(call, rc, x, resp, "receipts");
}

static int h_earnings(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__EarningsRequest *req = (const Muri__V1__EarningsRequest *)msg;
	int code = key_arg(call, &req->node, "node");
	if (code)
		return code;
	Muri__V1__Earnings *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_earnings(rd, req->node.data, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "earnings");
}

static int h_api_keys(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ApiKeysRequest *req = (const Muri__V1__ApiKeysRequest *)msg;
	int code = key_arg(call, &req->account, "account");
	if (code)
		return code;
	Muri__V1__ApiKeysResponse *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_api_keys(rd, req->account.data, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "API keys");
}

static int h_access(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__AccessRequest *req = (const Muri__V1__AccessRequest *)msg;
	if (!lg_name_valid(req->magu))
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "magu: not a valid Magu name");
	Muri__V1__AccessInfo *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_access(rd, req->magu, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "Magu");
}

static int h_proposal(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__ProposalRequest *req = (const Muri__V1__ProposalRequest *)msg;
	Muri__V1__ProposalInfo *x = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = lg_query_proposal(rd, req->id, &x);
	lg_node_reader_put(n, rd);
	return give(call, rc, x, resp, "proposal");
}

static int h_block(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	const Muri__V1__BlockRequest *req = (const Muri__V1__BlockRequest *)msg;
	Muri__V1__Block *b = NULL;
	Muri__V1__BlockEffects *e = NULL;
	lg_store *rd = lg_node_reader_get(n);
	int rc = block_to_pb(n, rd, req->height, cm_rpc_arena(call), &b, &e);
	lg_node_reader_put(n, rd);
	if (e)
		cm_rpc_on_done(call, free_message, e);
	if (rc == CM_ERR_NOTFOUND)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "height: no committed block at %llu",
				   (unsigned long long)req->height);
	if (rc != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read block %llu", (unsigned long long)req->height);
	*resp = &b->base;
	return GRPC_STATUS_OK;
}

static int h_follow(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg)
{
	lg_node *n = arg;
	const Muri__V1__FollowRequest *req = (const Muri__V1__FollowRequest *)msg;
	uint64_t h = req->from_height ? req->from_height : 1;
	cm_arena a;
	cm_arena_init(&a, 0);
	int code = GRPC_STATUS_OK;
	while (!cm_rpc_cancelled(call) && !atomic_load(&n->stopping)) {
		pthread_mutex_lock(&n->cmu);
		uint64_t top = n->height;
		if (h > top) {
			cm_cond_wait_ms(&n->ccv, &n->cmu, FOLLOW_POLL_MS);
			pthread_mutex_unlock(&n->cmu);
			continue;
		}
		pthread_mutex_unlock(&n->cmu);
		cm_arena_reset(&a);
		Muri__V1__Block *b = NULL;
		Muri__V1__BlockEffects *e = NULL;
		lg_store *rd = lg_node_reader_get(n);
		int rc = block_to_pb(n, rd, h, &a, &b, &e);
		lg_node_reader_put(n, rd);
		if (rc != CM_OK) {
			if (e)
				protobuf_c_message_free_unpacked(&e->base, NULL);
			code = cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read block %llu", (unsigned long long)h);
			break;
		}
		/* one block in flight: the send returns once gRPC took it */
		rc = cm_rpc_stream_send(call, &b->base);
		if (e)
			protobuf_c_message_free_unpacked(&e->base, NULL);
		if (rc != CM_OK)
			break;
		h++;
	}
	cm_arena_free(&a);
	if (code == GRPC_STATUS_OK && (cm_rpc_cancelled(call) || atomic_load(&n->stopping)))
		code = cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE, "the ledger replica is stopping");
	return code;
}

static int h_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	lg_node *n = arg;
	(void)msg;
	return n->status_fn(n->status_arg, call, (Muri__V1__StatusResponse **)resp);
}

void lg_node_status_details(lg_node *n, cm_rpc_call *call, Muri__V1__StatusResponse *r)
{
	char root[65];
	pthread_mutex_lock(&n->cmu);
	uint64_t height = n->height, view = n->view, ok = n->txs_committed, failed = n->txs_failed;
	cm_hex(root, n->root, 32);
	pthread_mutex_unlock(&n->cmu);
	char vals[8][72];
	snprintf(vals[0], sizeof(vals[0]), "%llu", (unsigned long long)height);
	snprintf(vals[1], sizeof(vals[1]), "%s", root);
	snprintf(vals[2], sizeof(vals[2]), "%llu", (unsigned long long)view);
	snprintf(vals[3], sizeof(vals[3]), "%u", n->self);
	snprintf(vals[4], sizeof(vals[4]), "%zu", lg_mempool_count(n->mp));
	snprintf(vals[5], sizeof(vals[5]), "%llu", (unsigned long long)ok);
	snprintf(vals[6], sizeof(vals[6]), "%llu", (unsigned long long)failed);
	snprintf(vals[7], sizeof(vals[7]), "%s", n->genesis->chain_id);
	static const char *keys[8] = {"height", "state_root", "view", "replica", "mempool", "txs_committed",
				      "txs_failed", "chain_id"};
	Muri__V1__StatusResponse__DetailsEntry **d = cm_rpc_alloc(call, 8 * sizeof(*d));
	if (!d)
		return;
	for (int i = 0; i < 8; i++) {
		d[i] = cm_rpc_alloc(call, sizeof(**d));
		if (!d[i])
			return;
		muri__v1__status_response__details_entry__init(d[i]);
		d[i]->key = (char *)keys[i];
		d[i]->value = cm_rpc_strdup(call, vals[i]);
	}
	r->details = d;
	r->n_details = 8;
}

int lg_node_register(lg_node *n, cm_rpc_server *srv, void *sarg,
		     int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out))
{
	n->status_fn = status;
	n->status_arg = sarg;
	static const cm_rpc_handler h[] = {
		{"SubmitTransaction", lg_node_h_submit, NULL},
		{"SubmitTransactions", lg_node_h_submit_batch, NULL},
		{"GetAccount", h_account, NULL},
		{"GetIndexer", h_indexer, NULL},
		{"GetMagu", h_magu, NULL},
		{"ListMagus", h_magus, NULL},
		{"GetBlock", h_block, NULL},
		{"GetTransaction", h_tx, NULL},
		{"GetParams", h_params, NULL},
		{"GetChallenges", h_challenges, NULL},
		{"GetProposal", h_proposal, NULL},
		{"FollowBlocks", NULL, h_follow},
		{"GetFragment", h_fragment, NULL},
		{"GetReceipts", h_receipts, NULL},
		{"GetEarnings", h_earnings, NULL},
		{"ListApiKeys", h_api_keys, NULL},
		{"GetAccess", h_access, NULL},
		{"Status", h_status, NULL},
	};
	int rc = cm_rpc_server_add(srv, &muri__v1__ledger__descriptor, h, sizeof(h) / sizeof(h[0]), n);
	return rc == CM_OK ? lg_net_register(n->net, srv) : rc;
}

