/* Search receipts to the ledger. Every successful Search or SearchBatch
 * leaves a receipt (gw_receipt_note): the searcher is the payer account
 * (until clients authenticate, the account the gateway is configured with),
 * the fee is search_fee per query vector, and the nodes paid are those that
 * answered without a proven lie and are replicas of the collection, best
 * first by gw_rank_receipt. Receipts wait in a bounded queue (a full queue
 * refuses the newest, logged and counted; a search never waits for it). One
 * thread settles them: every receipt_batch receipts or receipt_flush_ms ms
 * it sends a Settle signed by the gateway's own node key, against the
 * allowance the payer granted that key (an Approve at start, again when the
 * allowance runs low or nears its expiry); the payer tops the gateway's
 * account up for transaction fees (receipt_fee_float) when it runs dry.
 *
 * A Settle is all or nothing: the ledger fails it at the first bad receipt
 * and names it. The gateway reads the message (gw_fault_parse) and sends
 * the others again without the fault: a node that left the Magu is dropped
 * from that receipt, a receipt whose Magu is gone or whose searcher cannot
 * pay is given up (logged, counted unsettled), a missing or spent allowance
 * is approved again, a raised search_fee is read again. Before sending, the
 * receipts are checked against what the gateway knows (its routing table,
 * the allowance it approved), so a failed Settle, whose fee is paid, is the
 * exception. A node that left the Magu is dropped from every receipt of
 * that Magu in the batch, not one receipt at a time. A Settle that cannot
 * reach the ledger is kept and sent again every receipt_flush_ms for as
 * long as it takes (new receipts queue meanwhile, up to receipt_queue_max);
 * one whose commit did not come in time is waited for once more, and a
 * receipt it settled after all fails with "settled already" next time: the
 * gateway's newest settled receipts (GetReceipts) then say which of the
 * batch to drop as settled. After SETTLE_TRIES failures in a row that the
 * ledger judged and that took nothing out of the batch, the batch is given
 * up (reason "retries"). A stopping gateway sends one last Settle of what
 * waits and does not wait for it. */
#include "gw.h"
#include "cm_err.h"
#include "cm_genesis.h"
#include "cm_log.h"
#include "cm_time.h"
#include "gw_receipt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETTLE_TRIES 8                      /* failed Settles of one batch in a row before it is given up */
#define SETTLE_BYTES (CM_LC_TX_MAX_BYTES - 4096) /* a Settle's receipts, encoded, at most */

struct gw_receipts {
	gw_ctx *g;
	cm_ledger_client *lc;                   /* signs as the gateway's node key */
	uint8_t pk[CM_PK_BYTES];
	size_t batch_max;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	gw_rqueue q;
	atomic_int stop;                        /* set under mu; read without it between Settles */
	int started;
	pthread_t th;
	/* the settling thread's own */
	gw_receipt **batch;
	size_t nbatch;
	int failures;                           /* failed attempts of this batch in a row */
	uint64_t search_fee;                    /* read by GetParams before every Settle */
	atomic_uint_least64_t fee_seen;         /* search_fee for the handlers' threads */
	uint64_t height;                        /* the ledger's height at that read (the follower may lag) */
	int approved, fresh;                    /* fresh: approved since the last committed Settle */
	uint64_t allowance_left, allowance_expiry;
	atomic_uint_least64_t refused;          /* receipts the full queue refused */
	cm_counter *queued, *settled, *fees, *settles, *settles_failed, *approves, *topups;
	cm_gauge *waiting, *allowance;
};

static void count_unsettled(gw_receipts *r, const char *reason, uint64_t n)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	cm_counter *c = r->g->metrics ? cm_metrics_counter(r->g->metrics, "muri_gateway_receipts_unsettled_total", labels,
							   "receipts given up, by reason")
				      : NULL;
	if (c && n)
		cm_counter_add(c, n);
}

/* A message from elsewhere, fit for a quoted log value: " becomes '. */
typedef struct quoted {
	char s[CM_LC_MSG_MAX];
} quoted;

static quoted q(const char *m)
{
	quoted o;
	snprintf(o.s, sizeof(o.s), "%s", m ? m : "");
	for (char *c = o.s; *c; c++)
		if (*c == '"' || *c == '\n')
			*c = *c == '"' ? '\'' : ' ';
	return o;
}

static void add(cm_counter *c, uint64_t n)
{
	if (c && n)
		cm_counter_add(c, n);
}

static uint64_t fee_of(const gw_receipts *r, const gw_receipt *x)
{
	return x->queries && r->search_fee > UINT64_MAX / x->queries ? UINT64_MAX : x->queries * r->search_fee;
}

/* Removes batch[i] (freed); counted by the caller. */
static void batch_remove(gw_receipts *r, size_t i)
{
	free(r->batch[i]);
	memmove(r->batch + i, r->batch + i + 1, (r->nbatch - i - 1) * sizeof(*r->batch));
	r->nbatch--;
}

/* Receipts and nodes in the batch: a fault that lowers it made progress. */
static size_t batch_weight(const gw_receipts *r)
{
	size_t w = r->nbatch;
	for (size_t i = 0; i < r->nbatch; i++)
		w += r->batch[i]->nnodes;
	return w;
}

static void give_up(gw_receipts *r, size_t from, size_t to, const char *reason, const char *why)
{
	if (to <= from)
		return;
	char id[2 * GW_RECEIPT_ID_BYTES + 1];
	cm_hex(id, r->batch[from]->id, GW_RECEIPT_ID_BYTES);
	cm_warn("gw_receipt_unsettled", "receipts=%zu first=%s magu=%s reason=%s message=\"%s\"", to - from, id,
		r->batch[from]->magu, reason, q(why).s);
	count_unsettled(r, reason, to - from);
	for (size_t i = to; i-- > from;)
		batch_remove(r, i);
}

static int read_search_fee(gw_receipts *r)
{
	Muri__V1__ParamsRequest req = MURI__V1__PARAMS_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(r->lc, "/muri.v1.Ledger/GetParams", &req.base, &muri__v1__params__descriptor,
				       &resp, &st);
	if (rc != CM_OK) {
		cm_warn("gw_receipt_params", "code=%s message=\"%s\"", cm_rpc_code_name(st.code), q(st.message).s);
		return rc;
	}
	const Muri__V1__Params *p = (const Muri__V1__Params *)resp;
	if (p->at && p->at->height > r->height)
		r->height = p->at->height;
	rc = CM_ERR_NOTFOUND;
	for (size_t i = 0; i < p->n_values; i++)
		if (p->values[i]->key && strcmp(p->values[i]->key, "search_fee") == 0 && p->values[i]->value > 0) {
			r->search_fee = (uint64_t)p->values[i]->value;
			atomic_store(&r->fee_seen, r->search_fee);
			rc = CM_OK;
		}
	protobuf_c_message_free_unpacked(resp, NULL);
	if (rc != CM_OK)
		cm_warn("gw_receipt_params", "message=\"the ledger's parameters have no search_fee\"");
	return rc;
}

/* The payer grants the gateway key receipt_allowance until
 * receipt_allowance_blocks from now (replacing what is left). CM_ERR_STATE
 * when the ledger refused it for good (the payer cannot pay its fee);
 * another code when it may go through later. */
static int approve(gw_receipts *r)
{
	const gw_config *cfg = r->g->cfg;
	uint64_t h = gw_chain_height(r->g->chain);
	uint64_t expiry = (h > r->height ? h : r->height) + (uint64_t)cfg->receipt_allowance_blocks;
	Muri__V1__Approve ap = MURI__V1__APPROVE__INIT;
	ap.gateway.data = r->pk;
	ap.gateway.len = CM_PK_BYTES;
	ap.amount = (uint64_t)cfg->receipt_allowance;
	ap.expiry_height = expiry;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_APPROVE;
	t.approve = &ap;
	cm_ledger_result res;
	char err[GW_ERR_MAX] = "";
	int rc = cm_ledger_client_submit(gw_chain_client(r->g->chain), &t, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc != CM_OK) {
		cm_warn("gw_receipt_approve", "amount=%lld error=\"%s\"", (long long)cfg->receipt_allowance,
			q(rc == CM_ERR_STATE ? res.message : err).s);
		return rc == CM_ERR_STATE || res.code == GRPC_STATUS_FAILED_PRECONDITION ? CM_ERR_STATE : rc;
	}
	r->approved = r->fresh = 1;
	r->allowance_left = ap.amount;
	r->allowance_expiry = expiry;
	add(r->approves, 1);
	if (r->allowance)
		cm_gauge_set(r->allowance, (double)r->allowance_left);
	cm_info("gw_receipt_approve", "amount=%llu expiry_height=%llu height=%llu", (unsigned long long)ap.amount,
		(unsigned long long)expiry, (unsigned long long)res.height);
	return CM_OK;
}

/* Approves when there is no allowance, it cannot pay the first receipt or
 * a quarter of its blocks is left. */
static int ensure_allowance(gw_receipts *r, uint64_t first_fee)
{
	const gw_config *cfg = r->g->cfg;
	uint64_t h = gw_chain_height(r->g->chain), margin = (uint64_t)cfg->receipt_allowance_blocks / 4;
	if (r->height > h)
		h = r->height;
	if (r->approved && r->allowance_left >= first_fee && h + margin < r->allowance_expiry)
		return CM_OK;
	return approve(r);
}

/* The gateway's balance, 0 for an account the chain does not know yet. */
static int gateway_balance(gw_receipts *r, uint64_t *out)
{
	Muri__V1__AccountRequest req = MURI__V1__ACCOUNT_REQUEST__INIT;
	req.address.data = r->pk;
	req.address.len = CM_PK_BYTES;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(r->lc, "/muri.v1.Ledger/GetAccount", &req.base, &muri__v1__account__descriptor,
				       &resp, &st);
	if (rc == CM_OK) {
		*out = ((Muri__V1__Account *)resp)->balance;
		protobuf_c_message_free_unpacked(resp, NULL);
		return CM_OK;
	}
	if (st.code == GRPC_STATUS_NOT_FOUND) {
		*out = 0;
		return CM_OK;
	}
	cm_warn("gw_receipt_balance", "code=%s message=\"%s\"", cm_rpc_code_name(st.code), q(st.message).s);
	return rc;
}

/* The gateway's account can pay a Settle's fee: CM_OK; CM_ERR_STATE when it
 * cannot and no top-up is possible (none configured, or the payer's
 * Transfer failed); another code when the ledger did not answer. */
static int ensure_gas(gw_receipts *r)
{
	const gw_config *cfg = r->g->cfg;
	uint64_t bal;
	int rc = gateway_balance(r, &bal);
	if (rc != CM_OK)
		return rc;
	if (bal >= (uint64_t)cfg->chain_fee)
		return CM_OK;
	if (cfg->receipt_fee_float <= 0) {
		cm_warn("gw_receipt_gas", "balance=%llu fee=%lld message=\"the gateway's account cannot pay a Settle and "
					 "receipt_fee_float is 0\"",
			(unsigned long long)bal, (long long)cfg->chain_fee);
		return CM_ERR_STATE;
	}
	Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
	tr.to.data = r->pk;
	tr.to.len = CM_PK_BYTES;
	tr.amount = (uint64_t)cfg->receipt_fee_float;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
	t.transfer = &tr;
	cm_ledger_result res;
	char err[GW_ERR_MAX] = "";
	rc = cm_ledger_client_submit(gw_chain_client(r->g->chain), &t, CM_LC_WAIT, &res, err, sizeof(err));
	if (rc != CM_OK) {
		cm_warn("gw_receipt_topup", "amount=%llu error=\"%s\"", (unsigned long long)tr.amount,
			q(rc == CM_ERR_STATE ? res.message : err).s);
		return rc == CM_ERR_STATE || res.code == GRPC_STATUS_FAILED_PRECONDITION ? CM_ERR_STATE : rc;
	}
	add(r->topups, 1);
	cm_info("gw_receipt_topup", "amount=%llu balance_before=%llu", (unsigned long long)tr.amount,
		(unsigned long long)bal);
	return CM_OK;
}

/* Drops, from every receipt of the batch, the nodes that are not replicas of
 * its collection in the routing table now (they left the Magu), and gives up
 * receipts whose collection is gone or that have no node left. */
static void prune(gw_receipts *r)
{
	size_t dropped = 0;
	for (size_t i = r->nbatch; i-- > 0;) {
		gw_receipt *x = r->batch[i];
		gw_coll *m = NULL;
		if (gw_chain_get(r->g->chain, x->magu, &m) == CM_ERR_NOTFOUND) {
			give_up(r, i, i + 1, "magu_gone", "the collection was dropped");
			continue;
		}
		if (!m)
			continue; /* out of memory: the ledger judges */
		for (size_t j = x->nnodes; j-- > 0;) {
			int member = 0;
			for (uint32_t f = 0; f < m->nfrag && !member; f++)
				member = gw_frag_addr(&m->frags[f], x->nodes[j]) != NULL;
			if (!member) {
				gw_receipt_drop_node(x, j);
				dropped++;
			}
		}
		gw_coll_free(m);
		if (!x->nnodes)
			give_up(r, i, i + 1, "no_members", "none of its nodes is a replica of the collection now");
	}
	if (dropped)
		cm_info("gw_receipt_nodes_left", "dropped=%zu message=\"nodes no longer replicas of the receipt's "
						 "collection are left out of the receipts\"",
			dropped);
}

/* Receipt i settled already: a Settle whose commit the gateway did not see
 * (it timed out) committed after all, and likely the others it carried.
 * The gateway's newest settled receipts say which of the batch to drop. */
static void drop_settled(gw_receipts *r, size_t i)
{
	Muri__V1__ReceiptsRequest req = MURI__V1__RECEIPTS_REQUEST__INIT;
	req.gateway.data = r->pk;
	req.gateway.len = CM_PK_BYTES;
	req.limit = 1000;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	size_t dropped = 1;
	add(r->settled, 1);
	batch_remove(r, i);
	if (cm_ledger_client_call(r->lc, "/muri.v1.Ledger/GetReceipts", &req.base,
				  &muri__v1__receipts_response__descriptor, &resp, &st) == CM_OK) {
		const Muri__V1__ReceiptsResponse *rr = (const Muri__V1__ReceiptsResponse *)resp;
		for (size_t k = 0; k < rr->n_receipts; k++)
			for (size_t j = r->nbatch; j-- > 0;)
				if (rr->receipts[k]->id.len == GW_RECEIPT_ID_BYTES &&
				    memcmp(rr->receipts[k]->id.data, r->batch[j]->id, GW_RECEIPT_ID_BYTES) == 0) {
					add(r->settled, 1);
					batch_remove(r, j);
					dropped++;
				}
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	cm_info("gw_receipt_settled_before", "receipts=%zu", dropped);
}

/* Acts on a Settle of the first n receipts of the batch that failed with
 * msg. Returns 1 when something changed (send again now), 0 to wait. */
static int on_fault(gw_receipts *r, size_t n, const char *msg)
{
	gw_fault f;
	gw_fault_parse(msg, n, &f);
	cm_warn("gw_receipt_settle_failed", "receipts=%zu fault=%s receipt=%zu message=\"%s\"", n,
		gw_fault_name(f.kind), f.receipt, q(msg).s);
	switch (f.kind) {
	case GW_FAULT_DROP_NODE: {
		/* not a member (any more): of no receipt of that Magu in the batch */
		uint8_t node[CM_PK_BYTES];
		char magu[GW_RECEIPT_MAGU_MAX + 1];
		if (f.node >= r->batch[f.receipt]->nnodes)
			return 0;
		memcpy(node, r->batch[f.receipt]->nodes[f.node], CM_PK_BYTES);
		snprintf(magu, sizeof(magu), "%s", r->batch[f.receipt]->magu);
		gw_receipts_drop_node(r->batch, r->nbatch, magu, node);
		for (size_t i = r->nbatch; i-- > 0;)
			if (!r->batch[i]->nnodes)
				give_up(r, i, i + 1, "no_members", msg);
		return 1;
	}
	case GW_FAULT_DROP_RECEIPT:
		give_up(r, f.receipt, f.receipt + 1, "rejected", msg);
		return 1;
	case GW_FAULT_SETTLED:
		drop_settled(r, f.receipt);
		return 1;
	case GW_FAULT_FEE: /* read again before the next Settle */
		return 1;
	case GW_FAULT_ALLOWANCE:
		if (f.receipt < n && r->batch[f.receipt]->has_searcher) {
			/* a caller's own allowance ran out (or expired) on chain: the payer
			 * cannot approve for it; that receipt goes, balance too */
			give_up(r, f.receipt, f.receipt + 1, "caller_allowance", msg);
			return 1;
		}
		if (r->fresh) { /* approved for this batch and still refused */
			give_up(r, f.receipt, n, "allowance", msg);
			return 1;
		}
		r->approved = 0;
		return 1;
	case GW_FAULT_BALANCE:
		if (f.receipt < n && r->batch[f.receipt]->has_searcher) { /* a caller who cannot pay: only its receipt */
			give_up(r, f.receipt, f.receipt + 1, "caller_balance", msg);
			return 1;
		}
		give_up(r, f.receipt, n, "balance", msg);
		return 1;
	case GW_FAULT_GAS:
	case GW_FAULT_RETRY:
		break;
	}
	return 0;
}

/* One Settle of a prefix of the batch. Returns 1 to go on at once, 0 to
 * wait for the next flush. */
static int settle_once(gw_receipts *r, int final)
{
	const gw_config *cfg = r->g->cfg;
	if (!final)
		prune(r);
	if (!r->nbatch)
		return 0;
	if (!final && read_search_fee(r) != CM_OK) /* a raised search_fee, and the height for the allowance */
		return 0;
	if (!r->search_fee)
		return 0;
	uint64_t first = fee_of(r, r->batch[0]);
	if (first > (uint64_t)cfg->receipt_allowance) {
		give_up(r, 0, 1, "allowance", "its fee exceeds receipt_allowance");
		return 1;
	}
	if (!final) {
		int rc = ensure_allowance(r, first);
		if (rc == CM_ERR_STATE) {
			give_up(r, 0, r->nbatch, "allowance", "the payer's Approve failed");
			return 0;
		}
		if (rc != CM_OK)
			return 0;
		rc = ensure_gas(r);
		if (rc == CM_ERR_STATE) {
			give_up(r, 0, r->nbatch, "gas", "the gateway's account cannot pay a Settle's fee");
			return 0;
		}
		if (rc != CM_OK)
			return 0;
	}
	/* the prefix: at most GW_SETTLE_MAX receipts, SETTLE_BYTES encoded, the allowance left in fees */
	Muri__V1__SearchReceipt *sr = calloc(r->nbatch, sizeof(*sr));
	Muri__V1__SearchReceipt **srp = calloc(r->nbatch, sizeof(*srp));
	ProtobufCBinaryData *nodes = calloc(r->nbatch * GW_RECEIPT_NODES_MAX, sizeof(*nodes));
	if (!sr || !srp || !nodes) {
		free(sr);
		free(srp);
		free(nodes);
		return 0;
	}
	size_t n = 0, bytes = 0;
	uint64_t fees = 0;
	const uint8_t *payer = r->g->payer.pk;
	for (; n < r->nbatch && n < GW_SETTLE_MAX; n++) {
		gw_receipt *x = r->batch[n];
		Muri__V1__SearchReceipt *s = &sr[n];
		muri__v1__search_receipt__init(s);
		s->magu = x->magu;
		s->searcher.data = x->has_searcher ? x->searcher : (uint8_t *)payer;
		s->searcher.len = CM_PK_BYTES;
		s->ranked_nodes = &nodes[n * GW_RECEIPT_NODES_MAX];
		s->n_ranked_nodes = x->nnodes;
		for (size_t j = 0; j < x->nnodes; j++)
			s->ranked_nodes[j] = (ProtobufCBinaryData){.len = CM_PK_BYTES, .data = x->nodes[j]};
		s->fee = fee_of(r, x);
		s->id.data = x->id;
		s->id.len = GW_RECEIPT_ID_BYTES;
		size_t b = muri__v1__search_receipt__get_packed_size(s) + 8;
		/* a caller's receipt spends the caller's allowance (checked per search, gw_auth_spend) */
		uint64_t pf = x->has_searcher ? 0 : s->fee;
		if (n && (bytes + b > SETTLE_BYTES || fees > r->allowance_left || pf > r->allowance_left - fees))
			break;
		bytes += b;
		fees += pf;
		srp[n] = s;
	}
	Muri__V1__Settle st = MURI__V1__SETTLE__INIT;
	st.receipts = srp;
	st.n_receipts = n;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SETTLE;
	t.settle = &st;
	cm_ledger_result res;
	memset(&res, 0, sizeof(res));
	char err[GW_ERR_MAX] = "";
	int rc = cm_ledger_client_submit(r->lc, &t, final ? 0 : CM_LC_WAIT, &res, err, sizeof(err));
	static const uint8_t zero[CM_HASH_BYTES];
	if (rc == CM_ERR_TIMEOUT && memcmp(res.tx_hash, zero, CM_HASH_BYTES) != 0)
		/* it may still commit: once more before it is sent again */
		rc = cm_ledger_client_wait(r->lc, res.tx_hash, 0, &res, err, sizeof(err));
	free(sr);
	free(srp);
	free(nodes);
	int again = 0;
	if (rc == CM_OK) {
		add(r->settles, 1);
		if (!final) {
			add(r->settled, n);
			add(r->fees, fees);
			r->allowance_left -= fees < r->allowance_left ? fees : r->allowance_left;
			if (r->allowance)
				cm_gauge_set(r->allowance, (double)r->allowance_left);
		}
		cm_info("gw_receipt_settle", "receipts=%zu fees=%llu height=%llu%s", n, (unsigned long long)fees,
			(unsigned long long)res.height, final ? " (at shutdown, not waited for)" : "");
		for (size_t i = n; i-- > 0;)
			batch_remove(r, i);
		r->failures = r->fresh = 0;
		return 1;
	}
	add(r->settles_failed, 1);
	size_t before = batch_weight(r);
	int judged = rc == CM_ERR_STATE || res.code == GRPC_STATUS_INVALID_ARGUMENT ||
		     res.code == GRPC_STATUS_FAILED_PRECONDITION;
	if (judged) {
		again = on_fault(r, n, res.message[0] ? res.message : err);
	} else {
		/* unreachable, or the commit did not come: the batch waits (new
		 * receipts queue up to receipt_queue_max meanwhile) */
		cm_warn("gw_receipt_settle_failed", "receipts=%zu error=\"%s\" (sent again later)", n, q(err).s);
		return 0;
	}
	/* a fault that took receipts or nodes out made progress; the others count */
	int progress = batch_weight(r) < before;
	if (!progress && ++r->failures >= SETTLE_TRIES && r->nbatch) {
		give_up(r, 0, r->nbatch, "retries", "Settle failed too often in a row");
		r->failures = 0;
		return 0;
	}
	return again && !final;
}

static void rank_gauges(gw_ctx *g);

static void *run(void *arg)
{
	gw_receipts *r = arg;
	const gw_config *cfg = r->g->cfg;
	/* at start: the allowance and the gateway's fee money, so that the first
	 * receipts do not wait for them (failures are logged; tried again at the
	 * first Settle) */
	if (read_search_fee(r) == CM_OK && ensure_allowance(r, 0) == CM_OK)
		ensure_gas(r);
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		/* a batch left over (the ledger did not take it) waits a whole flush_ms */
		int backoff = r->nbatch > 0;
		uint64_t until = cm_now_ms() + (uint64_t)cfg->receipt_flush_ms;
		for (uint64_t now = cm_now_ms(); !r->stop && (backoff || r->q.n < r->batch_max) && now < until;
		     now = cm_now_ms())
			cm_cond_wait_ms(&r->cv, &r->mu, until - now);
		if (r->stop)
			break;
		r->nbatch += gw_rqueue_take(&r->q, r->batch + r->nbatch, r->batch_max - r->nbatch);
		if (r->waiting)
			cm_gauge_set(r->waiting, (double)r->q.n);
		pthread_mutex_unlock(&r->mu);
		rank_gauges(r->g); /* current without a search to set them */
		while (r->nbatch && !atomic_load(&r->stop) && settle_once(r, 0)) {
		}
		pthread_mutex_lock(&r->mu);
	}
	/* at shutdown: one last Settle of what waits, sent and not waited for */
	r->nbatch += gw_rqueue_take(&r->q, r->batch + r->nbatch, r->batch_max - r->nbatch);
	size_t left = r->q.n;
	pthread_mutex_unlock(&r->mu);
	if (r->nbatch)
		settle_once(r, 1);
	if (r->nbatch + left) {
		cm_warn("gw_receipt_unsettled", "receipts=%zu reason=shutdown", r->nbatch + left);
		count_unsettled(r, "shutdown", r->nbatch + left);
	}
	return NULL;
}

int gw_receipts_start(gw_ctx *g, const cm_keypair *gateway_key, gw_receipts **out, char *err, size_t errlen)
{
	*out = NULL;
	const gw_config *cfg = g->cfg;
	gw_receipts *r = calloc(1, sizeof(*r));
	cm_genesis_replicas *gen = calloc(1, sizeof(*gen));
	if (!r || !gen) {
		free(r);
		free(gen);
		snprintf(err, errlen, "out of memory");
		return CM_ERR_NOMEM;
	}
	r->g = g;
	r->batch_max = (size_t)cfg->receipt_batch;
	memcpy(r->pk, gateway_key->pk, CM_PK_BYTES);
	pthread_mutex_init(&r->mu, NULL);
	cm_cond_init(&r->cv);
	int rc = cm_genesis_read_replicas(cfg->genesis, gen, err, errlen);
	if (rc == CM_OK) {
		cm_ledger_client_opts lo = {.chain_id = gen->chain_id, .n = gen->n, .addrs = gen->addrp,
					    .key = gateway_key, .fee = (uint64_t)cfg->chain_fee,
					    .tls_ca_file = cfg->tls_ca[0] ? cfg->tls_ca : NULL,
					    .pks = (const uint8_t(*)[CM_PK_BYTES])gen->pks};
		rc = cm_ledger_client_new(&lo, &r->lc, err, errlen);
	}
	free(gen);
	if (rc == CM_OK && (gw_rqueue_init(&r->q, (size_t)cfg->receipt_queue_max) != CM_OK ||
			    !(r->batch = calloc(r->batch_max, sizeof(*r->batch))))) {
		snprintf(err, errlen, "out of memory");
		rc = CM_ERR_NOMEM;
	}
	if (rc != CM_OK) {
		gw_receipts_free(r);
		return rc;
	}
	cm_metrics *mx = g->metrics;
	if (mx) {
		r->queued = cm_metrics_counter(mx, "muri_gateway_receipts_queued_total", NULL, "search receipts queued");
		r->settled = cm_metrics_counter(mx, "muri_gateway_receipts_settled_total", NULL,
						"search receipts settled on the ledger");
		r->fees = cm_metrics_counter(mx, "muri_gateway_receipt_fees_total", NULL, "fees of the receipts settled");
		r->settles = cm_metrics_counter(mx, "muri_gateway_settles_total", NULL, "Settle transactions committed");
		r->settles_failed = cm_metrics_counter(mx, "muri_gateway_settles_failed_total", NULL,
						       "Settle transactions that failed or were refused");
		r->approves = cm_metrics_counter(mx, "muri_gateway_receipt_approves_total", NULL,
						 "Approve transactions of the payer to the gateway committed");
		r->topups = cm_metrics_counter(mx, "muri_gateway_receipt_topups_total", NULL,
					       "transfers of the payer to the gateway's account for Settle fees");
		r->waiting = cm_metrics_gauge(mx, "muri_gateway_receipts_waiting", NULL, "receipts queued, not yet sent");
		r->allowance = cm_metrics_gauge(mx, "muri_gateway_receipt_allowance_left", NULL,
						"the allowance the gateway has left to settle (as it counts it)");
		count_unsettled(r, "queue_full", 0); /* the series exist from the start */
	}
	if (pthread_create(&r->th, NULL, run, r) != 0) {
		gw_receipts_free(r);
		snprintf(err, errlen, "cannot start the receipts thread");
		return CM_ERR_INTERNAL;
	}
	r->started = 1;
	char hex[2 * CM_PK_BYTES + 1];
	cm_hex(hex, r->pk, CM_PK_BYTES);
	cm_info("gw_receipts", "gateway=%s batch=%lld flush_ms=%lld queue_max=%lld allowance=%lld", hex,
		(long long)cfg->receipt_batch, (long long)cfg->receipt_flush_ms, (long long)cfg->receipt_queue_max,
		(long long)cfg->receipt_allowance);
	*out = r;
	return CM_OK;
}

void gw_receipts_free(gw_receipts *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->th, NULL);
	}
	for (size_t i = 0; i < r->nbatch; i++)
		free(r->batch[i]);
	free(r->batch);
	gw_rqueue_free(&r->q);
	cm_ledger_client_free(r->lc);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

/* Per node: its standing in the rank table (gw_rank.h) as gauges, for every
 * node in the table, at most once every GW_RANK_GAUGES_MS: the search path
 * pays one atomic load, and one request a second copies the table. */
static void rank_gauges(gw_ctx *g)
{
	uint64_t now = cm_now_ms(), last = atomic_load(&g->rank_gauges_ms);
	if (!g->metrics || now < last + GW_RANK_GAUGES_MS ||
	    !atomic_compare_exchange_strong(&g->rank_gauges_ms, &last, now))
		return;
	pthread_mutex_lock(&g->rank_mu);
	size_t n = g->ranks.n;
	gw_rank_entry *e = malloc((n ? n : 1) * sizeof(*e));
	double *score = malloc((n ? n : 1) * sizeof(*score));
	for (size_t i = 0; e && score && i < n; i++) {
		e[i] = g->ranks.e[i];
		score[i] = gw_ranks_score(&g->ranks, e[i].node);
	}
	pthread_mutex_unlock(&g->rank_mu);
	for (size_t i = 0; e && score && i < n; i++) {
		char hex[2 * CM_PK_BYTES + 1], labels[2 * CM_PK_BYTES + 16];
		cm_hex(hex, e[i].node, CM_PK_BYTES);
		snprintf(labels, sizeof(labels), "node=\"%s\"", hex);
		static const char *names[] = {"muri_gateway_node_rank_share", "muri_gateway_node_rank_latency_ms",
					      "muri_gateway_node_rank_fail", "muri_gateway_node_rank_score"};
		static const char *helps[] = {
			"the node's moving average share of final top-k hits (gw_rank.h; 0 for a merge it lied in)",
			"the node's moving average answer latency", "the node's moving average of merges it did not answer",
			"the score replicas are chosen by: share x (1 - fail) - latency / 100 ms"};
		double v[] = {e[i].share, e[i].latency_ms, e[i].fail, score[i]};
		for (int k = 0; k < 4; k++) {
			cm_gauge *x = cm_metrics_gauge(g->metrics, names[k], labels, helps[k]);
			if (x)
				cm_gauge_set(x, v[k]);
		}
	}
	free(e);
	free(score);
}

static void node_receipt_counters(gw_ctx *g, const gw_receipt *x)
{
	for (size_t j = 0; g->metrics && j < x->nnodes; j++) {
		char hex[2 * CM_PK_BYTES + 1], labels[2 * CM_PK_BYTES + 16];
		cm_hex(hex, x->nodes[j], CM_PK_BYTES);
		snprintf(labels, sizeof(labels), "node=\"%s\"", hex);
		add(cm_metrics_counter(g->metrics, "muri_gateway_node_receipts_total", labels,
				       "receipts queued that pay the node"),
		    1);
		if (j == 0)
			add(cm_metrics_counter(g->metrics, "muri_gateway_node_receipts_first_total", labels,
					       "receipts queued that rank the node first"),
			    1);
	}
}

uint64_t gw_receipts_fee(gw_receipts *r)
{
	return r ? atomic_load(&r->fee_seen) : 0;
}

void gw_receipt_note(gw_ctx *g, const gw_coll *m, const gw_tally *t, size_t queries, const uint8_t *searcher)
{
	rank_gauges(g);
	gw_receipts *r = g->receipts;
	if (!r || !queries)
		return;
	gw_rank_input in[GW_TALLY_MAX];
	size_t order[GW_RECEIPT_NODES_MAX], n = 0;
	for (size_t i = 0; i < t->n; i++) {
		int member = 0;
		for (uint32_t f = 0; f < m->nfrag && !member; f++)
			member = gw_frag_addr(&m->frags[f], t->nodes[i].pk) != NULL;
		if (member)
			in[n++] = (gw_rank_input){.node = t->nodes[i].pk, .contributed = t->nodes[i].contributed,
						  .expected = t->nodes[i].expected, .answered = t->nodes[i].answered,
						  .lies = t->nodes[i].lies};
	}
	pthread_mutex_lock(&g->rank_mu);
	size_t k = gw_rank_receipt(&g->ranks, in, n, order, GW_RECEIPT_NODES_MAX);
	pthread_mutex_unlock(&g->rank_mu);
	if (!k) {
		count_unsettled(r, "no_nodes", 1);
		return;
	}
	gw_receipt *x = gw_receipt_new(k);
	if (!x) {
		count_unsettled(r, "no_memory", 1);
		return;
	}
	snprintf(x->magu, sizeof(x->magu), "%s", m->name);
	randombytes_buf(x->id, sizeof(x->id));
	x->queries = queries;
	if (searcher) {
		x->has_searcher = 1;
		memcpy(x->searcher, searcher, CM_PK_BYTES);
	}
	for (size_t i = 0; i < k; i++)
		memcpy(x->nodes[i], in[order[i]].node, CM_PK_BYTES);
	node_receipt_counters(g, x);
	pthread_mutex_lock(&r->mu);
	int rc = gw_rqueue_push(&r->q, x);
	size_t waiting = r->q.n;
	if (rc == CM_OK && waiting >= r->batch_max)
		pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (rc != CM_OK) {
		uint64_t nref = atomic_fetch_add(&r->refused, 1) + 1;
		if ((nref & (nref - 1)) == 0) /* the 1st, 2nd, 4th, ... refusal: a full queue does not flood the log */
			cm_warn("gw_receipt_queue_full",
				"magu=%s queue_max=%zu refused=%llu message=\"receipt not queued: the queue is full "
				"(the ledger settles slower than searches come, or cannot be reached)\"",
				m->name, waiting, (unsigned long long)nref);
		count_unsettled(r, "queue_full", 1);
		free(x);
		return;
	}
	add(r->queued, 1);
	if (r->waiting)
		cm_gauge_set(r->waiting, (double)waiting);
}
