/* The console's chain endpoints: recent blocks with their transactions and
 * what they did (challenges issued and decided, roots, penalties, fragments
 * moved), the receipts this gateway settled, and one node's record. Read
 * through the gateway's ledger client (its replica failover). */
#include <stdlib.h>
#include <string.h>

#include "cm_err.h"
#include "gw_console.h"

static const char *tx_kind(const Muri__V1__Transaction *tx)
{
	const ProtobufCFieldDescriptor *fd =
		protobuf_c_message_descriptor_get_field(&muri__v1__transaction__descriptor, (unsigned)tx->payload_case);
	return fd ? fd->name : "unknown";
}

static const char *state_name(int s)
{
	switch (s) {
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN: return "open";
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_PASSED: return "passed";
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_FAILED: return "failed";
	case MURI__V1__CHALLENGE_STATE__CHALLENGE_CANCELLED: return "cancelled";
	default: return "unknown";
	}
}

static void bytes_hex(FILE *f, ProtobufCBinaryData b)
{
	if (b.len)
		gw_json_hex(f, b.data, b.len);
	else
		fputs("null", f);
}

static void challenge_json(FILE *f, const Muri__V1__Challenge *c)
{
	fprintf(f, "{\"id\":%llu,\"collection\":", (unsigned long long)c->id);
	gw_json_str(f, c->magu);
	fprintf(f, ",\"fragment\":%u,\"indexer\":", c->fragment);
	bytes_hex(f, c->indexer);
	fprintf(f, ",\"issued_height\":%llu,\"deadline_height\":%llu,\"state\":\"%s\"}",
		(unsigned long long)c->issued_height, (unsigned long long)c->deadline_height, state_name(c->state));
}

static void block_json(FILE *f, const Muri__V1__Block *b)
{
	const Muri__V1__BlockHeader *h = b->header;
	const Muri__V1__BlockEffects *e = b->effects;
	fprintf(f, "{\"height\":%llu,\"view\":%llu,\"time_ms\":%llu,\"hash\":", h ? (unsigned long long)h->height : 0ULL,
		h ? (unsigned long long)h->view : 0ULL, h ? (unsigned long long)h->timestamp_ms : 0ULL);
	bytes_hex(f, b->hash);
	fputs(",\"proposer\":", f);
	if (h)
		bytes_hex(f, h->proposer);
	else
		fputs("null", f);
	fputs(",\"txs\":[", f);
	for (size_t i = 0; i < b->n_txs; i++) {
		Muri__V1__Transaction *tx = muri__v1__transaction__unpack(NULL, b->txs[i]->body.len, b->txs[i]->body.data);
		fprintf(f, "%s{\"index\":%zu", i ? "," : "", i);
		if (tx) {
			fprintf(f, ",\"kind\":\"%s\",\"nonce\":%llu,\"fee\":%llu,\"sender\":", tx_kind(tx),
				(unsigned long long)tx->nonce, (unsigned long long)tx->fee);
			bytes_hex(f, tx->sender);
			if (tx->payload_case == MURI__V1__TRANSACTION__PAYLOAD_SETTLE && tx->settle)
				fprintf(f, ",\"receipts\":%zu", tx->settle->n_receipts);
			protobuf_c_message_free_unpacked(&tx->base, NULL);
		}
		for (size_t k = 0; e && k < e->n_outcomes; k++)
			if (e->outcomes[k]->index == i) {
				fprintf(f, ",\"state\":\"%s\",\"hash\":",
					e->outcomes[k]->state == MURI__V1__TX_STATE__TX_COMMITTED ? "committed" : "failed");
				bytes_hex(f, e->outcomes[k]->tx_hash);
				fputs(",\"message\":", f);
				gw_json_str(f, e->outcomes[k]->message);
			}
		fputc('}', f);
	}
	fputs("],\"challenges_issued\":[", f);
	for (size_t i = 0; e && i < e->n_challenges; i++) {
		if (i)
			fputc(',', f);
		challenge_json(f, e->challenges[i]);
	}
	fputs("],\"challenges_decided\":[", f);
	for (size_t i = 0; e && i < e->n_challenges_closed; i++) {
		if (i)
			fputc(',', f);
		challenge_json(f, e->challenges_closed[i]);
	}
	fputs("],\"penalties\":[", f);
	for (size_t i = 0; e && i < e->n_penalties; i++) {
		const Muri__V1__IndexerPenalty *p = e->penalties[i];
		fputs(i ? ",{\"indexer\":" : "{\"indexer\":", f);
		bytes_hex(f, p->indexer);
		fprintf(f, ",\"slashed\":%llu,\"jailed\":%s,\"reason\":", (unsigned long long)p->slashed,
			p->jailed ? "true" : "false");
		gw_json_str(f, p->reason);
		fputc('}', f);
	}
	fputs("],\"fragments_moved\":[", f);
	for (size_t i = 0; e && i < e->n_configs; i++) {
		const Muri__V1__FragmentConfig *c = e->configs[i];
		fputs(i ? ",{\"collection\":" : "{\"collection\":", f);
		gw_json_str(f, c->magu);
		fprintf(f, ",\"fragment\":%u,\"epoch\":%llu,\"primary\":", c->fragment, (unsigned long long)c->epoch);
		bytes_hex(f, c->primary);
		fputc('}', f);
	}
	fprintf(f, "],\"roots\":%zu}", e ? e->n_roots : 0);
}

static void receipts_json(gw_console_api *a, FILE *f, const char *who, const uint8_t *pk, uint32_t limit)
{
	cm_ledger_client *lc = gw_chain_client(a->g->chain);
	Muri__V1__ReceiptsRequest rq = MURI__V1__RECEIPTS_REQUEST__INIT;
	ProtobufCBinaryData b = {CM_PK_BYTES, (uint8_t *)pk};
	if (strcmp(who, "gateway") == 0)
		rq.gateway = b;
	else
		rq.node = b;
	rq.limit = limit;
	Muri__V1__ReceiptsResponse *r = NULL;
	cm_rpc_status st;
	fputc('[', f);
	if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetReceipts", &rq.base, &muri__v1__receipts_response__descriptor,
				  (ProtobufCMessage **)&r, &st) == CM_OK && r) {
		for (size_t i = 0; i < r->n_receipts; i++) {
			const Muri__V1__SettledReceipt *s = r->receipts[i];
			fputs(i ? ",{\"id\":" : "{\"id\":", f);
			bytes_hex(f, s->id);
			fputs(",\"collection\":", f);
			gw_json_str(f, s->magu);
			fprintf(f, ",\"fee\":%llu,\"height\":%llu,\"payouts\":[", (unsigned long long)s->fee,
				(unsigned long long)s->height);
			for (size_t k = 0; k < s->n_payouts; k++) {
				fputs(k ? ",{\"node\":" : "{\"node\":", f);
				bytes_hex(f, s->payouts[k]->node);
				fprintf(f, ",\"amount\":%llu}", (unsigned long long)s->payouts[k]->amount);
			}
			fputs("]}", f);
		}
	}
	fputc(']', f);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s)
		return 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || s[0] == '-')
		return -1;
	*out = v;
	return 1;
}

unsigned gw_api_blocks(gw_console_api *a, const char *from, const char *limit, FILE *f)
{
	uint64_t top = gw_chain_height(a->g->chain), lim = 10;
	int r1 = parse_u64(from, &top), r2 = parse_u64(limit, &lim);
	if (r1 < 0) {
		gw_api_error(f, "from: expected a height");
		return 400;
	}
	if (r2 < 0 || lim < 1 || lim > GW_CONSOLE_BLOCKS_MAX) {
		gw_api_error(f, "limit: expected 1..50");
		return 400;
	}
	cm_ledger_client *lc = gw_chain_client(a->g->chain);
	fprintf(f, "{\"tip\":%llu,\"blocks\":[", (unsigned long long)gw_chain_height(a->g->chain));
	int first = 1;
	for (uint64_t h = top; h >= 1 && lim > 0; h--, lim--) {
		Muri__V1__BlockRequest rq = MURI__V1__BLOCK_REQUEST__INIT;
		rq.height = h;
		Muri__V1__Block *b = NULL;
		cm_rpc_status st;
		if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetBlock", &rq.base, &muri__v1__block__descriptor,
					  (ProtobufCMessage **)&b, &st) != CM_OK || !b)
			continue;
		if (!first)
			fputc(',', f);
		first = 0;
		block_json(f, b);
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}
	fputs("],\"receipts\":", f);
	if (a->has_self_pk)
		receipts_json(a, f, "gateway", a->self_pk, 20);
	else
		fputs("[]", f);
	fputc('}', f);
	return 200;
}

unsigned gw_api_node(gw_console_api *a, const char *hex, FILE *f)
{
	uint8_t pk[CM_PK_BYTES];
	if (!hex || strlen(hex) != 2 * CM_PK_BYTES || cm_unhex(pk, CM_PK_BYTES, hex) != CM_OK) {
		gw_api_error(f, "node: expected 64 hex digits (a public key)");
		return 400;
	}
	gw_console_node *nodes = NULL;
	size_t n = 0;
	if (gw_console_poll_nodes(a->poll, &nodes, &n) != CM_OK) {
		gw_api_error(f, "out of memory");
		return 500;
	}
	cm_ledger_client *lc = gw_chain_client(a->g->chain);
	cm_rpc_status st;
	fputs("{\"node\":", f);
	gw_json_hex(f, pk, CM_PK_BYTES);
	const gw_console_node *x = NULL;
	for (size_t i = 0; i < n; i++)
		if (memcmp(nodes[i].pk, pk, CM_PK_BYTES) == 0)
			x = &nodes[i];
	int self = a->has_self_pk && !memcmp(pk, a->self_pk, CM_PK_BYTES);
	const char *role = x ? (x->ledger ? "ledger" : "indexer") : self ? "gateway" : "account";
	fprintf(f, ",\"role\":\"%s\"", role);
	if (x) {
		fputs(",\"addr\":", f);
		gw_json_str(f, x->addr);
		fprintf(f, ",\"up\":%s", x->up ? "true" : "false");
	}
	Muri__V1__AccountRequest ar = MURI__V1__ACCOUNT_REQUEST__INIT;
	ar.address = (ProtobufCBinaryData){CM_PK_BYTES, pk};
	Muri__V1__Account *acc = NULL;
	if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetAccount", &ar.base, &muri__v1__account__descriptor,
				  (ProtobufCMessage **)&acc, &st) == CM_OK && acc) {
		fprintf(f, ",\"account\":{\"balance\":%llu,\"nonce\":%llu,\"staked\":%llu,\"unbonding\":%llu}",
			(unsigned long long)acc->balance, (unsigned long long)acc->nonce, (unsigned long long)acc->staked,
			(unsigned long long)acc->unbonding);
		protobuf_c_message_free_unpacked(&acc->base, NULL);
	}
	Muri__V1__IndexerRequest ir = MURI__V1__INDEXER_REQUEST__INIT;
	ir.pubkey = (ProtobufCBinaryData){CM_PK_BYTES, pk};
	Muri__V1__IndexerInfo *info = NULL;
	if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetIndexer", &ir.base, &muri__v1__indexer_info__descriptor,
				  (ProtobufCMessage **)&info, &st) == CM_OK && info) {
		fputs(",\"indexer\":{\"addr\":", f);
		gw_json_str(f, info->address);
		fprintf(f, ",\"capacity_bytes\":%llu,\"used_bytes\":%llu,\"fill_permille\":%u,\"stake\":%llu,"
			"\"failures\":%u,\"active\":%s,\"jailed\":%s}",
			(unsigned long long)info->capacity_bytes, (unsigned long long)info->used_bytes,
			info->fill_permille, (unsigned long long)info->stake, info->failures,
			info->active ? "true" : "false", info->jailed ? "true" : "false");
		protobuf_c_message_free_unpacked(&info->base, NULL);
		Muri__V1__ChallengesRequest cr = MURI__V1__CHALLENGES_REQUEST__INIT;
		cr.indexer = (ProtobufCBinaryData){CM_PK_BYTES, pk};
		cr.max = 100;
		Muri__V1__ChallengesResponse *ch = NULL;
		fputs(",\"challenges\":[", f);
		if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetChallenges", &cr.base,
					  &muri__v1__challenges_response__descriptor, (ProtobufCMessage **)&ch, &st) == CM_OK &&
		    ch) {
			for (size_t i = 0; i < ch->n_challenges; i++) {
				if (i)
					fputc(',', f);
				challenge_json(f, ch->challenges[i]);
			}
			protobuf_c_message_free_unpacked(&ch->base, NULL);
		}
		fputs("],\"receipts\":", f);
		receipts_json(a, f, "node", pk, 20);
		Muri__V1__EarningsRequest er = MURI__V1__EARNINGS_REQUEST__INIT;
		er.node = (ProtobufCBinaryData){CM_PK_BYTES, pk};
		Muri__V1__Earnings *earn = NULL;
		if (cm_ledger_client_call(lc, "/muri.v1.Ledger/GetEarnings", &er.base, &muri__v1__earnings__descriptor,
					  (ProtobufCMessage **)&earn, &st) == CM_OK && earn) {
			fprintf(f, ",\"earned\":%llu,\"receipts_paid\":%llu", (unsigned long long)earn->total_earned,
				(unsigned long long)earn->receipts);
			protobuf_c_message_free_unpacked(&earn->base, NULL);
		}
	}
	fputc('}', f);
	free(nodes);
	return 200;
}
