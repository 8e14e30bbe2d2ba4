/* Tests of settlement with the searcher's consent (lg_st_settle.c): a
 * receipt settles only against the searcher's allowance to the gateway that
 * sends it, within the allowance's amount and expiry, paying only members of
 * the receipt's Magu, once per receipt id; a Settle is all or nothing; the
 * receipts and earnings queries page over what settled. */
#include "st_chain.h"

#define SEARCHER (K_ACC0 + 5)
#define SEARCHER2 (K_ACC0 + 6)
#define GW K_GATEWAY
#define GW2 (K_ACC0 + 7)

typedef struct rcpt {
	int searcher;
	const int *nodes; /* key indices */
	size_t nnodes;
	uint64_t fee;
	uint8_t id;       /* the id is 16 bytes of this value */
} rcpt;

static void add_approve(tchain *c, tblock *b, int searcher, int gateway, uint64_t amount,
			uint64_t expiry, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__Approve a = MURI__V1__APPROVE__INIT;
	tx_base(&t, searcher, nonce_of(c, b, searcher), 1);
	a.gateway.data = K[gateway].pk;
	a.gateway.len = CM_PK_BYTES;
	a.amount = amount;
	a.expiry_height = expiry;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_APPROVE;
	t.approve = &a;
	tb_add(b, &t, searcher, hash);
}

static void add_receipts(tchain *c, tblock *b, int gateway, const char *magu, const rcpt *r,
			 size_t n, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__Settle s = MURI__V1__SETTLE__INIT;
	Muri__V1__SearchReceipt sr[4], *rp[4];
	ProtobufCBinaryData nb[4][8];
	uint8_t ids[4][16];
	for (size_t i = 0; i < n; i++) {
		muri__v1__search_receipt__init(&sr[i]);
		rp[i] = &sr[i];
		sr[i].magu = (char *)magu;
		sr[i].searcher.data = K[r[i].searcher].pk;
		sr[i].searcher.len = CM_PK_BYTES;
		for (size_t j = 0; j < r[i].nnodes; j++) {
			nb[i][j].data = K[r[i].nodes[j]].pk;
			nb[i][j].len = CM_PK_BYTES;
		}
		sr[i].ranked_nodes = nb[i];
		sr[i].n_ranked_nodes = r[i].nnodes;
		sr[i].fee = r[i].fee;
		memset(ids[i], r[i].id, sizeof(ids[i]));
		sr[i].id.data = ids[i];
		sr[i].id.len = sizeof(ids[i]);
	}
	s.receipts = rp;
	s.n_receipts = n;
	tx_base(&t, gateway, nonce_of(c, b, gateway), 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SETTLE;
	t.settle = &s;
	tb_add(b, &t, gateway, hash);
}

static uint64_t allowance_left(tchain *c, int searcher, int gateway)
{
	lg_allowance a;
	return lg_store_allowance_get(c->s, K[searcher].pk, K[gateway].pk, &a) == CM_OK ? a.amount : 0;
}

/* The members of Magu name (key indices, in seat order) and one indexer
 * of 0..n-1 that is not a member (-1 if none). */
static size_t members_of(tchain *c, const char *name, int n, int *out, int *outsider)
{
	lg_slot *sl = NULL;
	size_t ns = 0, k = 0;
	TAP_EQ(lg_store_slots_of_magu(c->s, name, &sl, &ns), CM_OK);
	for (size_t i = 0; i < ns; i++)
		if (sl[i].filled)
			out[k++] = key_index(sl[i].holder);
	*outsider = -1;
	for (int i = 0; i < n && *outsider < 0; i++) {
		int member = 0;
		for (size_t j = 0; j < k; j++)
			member |= out[j] == i;
		if (!member)
			*outsider = i;
	}
	free(sl);
	return k;
}

/* Balances of the searcher and of nodes 0..3: what settling must not move. */
typedef struct purse {
	uint64_t searcher, node[4];
} purse;

static purse purse_of(tchain *c)
{
	purse p = {balance(c, SEARCHER), {balance(c, 0), balance(c, 1), balance(c, 2), balance(c, 3)}};
	return p;
}

static void expect_unmoved(tchain *c, const purse *p)
{
	purse q = purse_of(c);
	TAP_EQ(q.searcher, p->searcher);
	for (int i = 0; i < 4; i++)
		TAP_EQ(q.node[i], p->node[i]);
}

static int open_settle_chain(tchain *c, const char *name, int *m, int *outsider)
{
	tblock b = {0};
	gtext g;
	const char *extra[] = {"param.search_fee = 10", NULL};
	if (open_indexers(c, name, 4, NULL, &g, extra) != CM_OK)
		return -1;
	add_create(c, &b, K_ACC0, "s", 3, 1, 100, NULL);
	add_transfer(c, &b, K_ACC0, SEARCHER, 5000, 1, NULL);
	add_transfer(c, &b, K_ACC0, SEARCHER2, 5000, 1, NULL);
	add_transfer(c, &b, K_ACC0, GW2, 100, 1, NULL);
	TAP_EQ(commit(c, &b), CM_OK);
	TAP_EQ(members_of(c, "s", 4, m, outsider), 3);
	TAP_CHECK(*outsider >= 0);
	return 0;
}

static void test_consent(void)
{
	tchain c;
	tblock b = {0};
	uint8_t h[8][32];
	int m[4], out;

	if (open_settle_chain(&c, "consent", m, &out) != 0)
		return;
	purse p0 = purse_of(&c);
	rcpt r = {SEARCHER, m, 3, 1000, 1};

	/* no allowance: the receipt fails and moves nothing */
	add_receipts(&c, &b, GW, "s", &r, 1, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "settle.receipts[0].searcher:");
	TAP_FAILED(&c, h[0], "gave this gateway no allowance (Approve)");
	expect_unmoved(&c, &p0);

	/* an allowance to another gateway does not let this one settle */
	add_approve(&c, &b, SEARCHER, GW2, 2500, 100, h[1]);
	add_receipts(&c, &b, GW, "s", &r, 1, h[2]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_FAILED(&c, h[2], "gave this gateway no allowance");
	p0 = purse_of(&c); /* the Approve's fee */

	/* with the allowance: exactly the fee moves, split 1 : 1/2 : 1/3 */
	add_approve(&c, &b, SEARCHER, GW, 2500, 100, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[3]);
	p0 = purse_of(&c);
	add_receipts(&c, &b, GW, "s", &r, 1, h[4]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[4]);
	/* 1000 split by 1 : 1/2 : 1/3 -> 272 and 181 rounded down, the rest 547 to rank 0 */
	TAP_EQ(balance(&c, m[0]), p0.node[m[0]] + 547);
	TAP_EQ(balance(&c, m[1]), p0.node[m[1]] + 272);
	TAP_EQ(balance(&c, m[2]), p0.node[m[2]] + 181);
	TAP_EQ(balance(&c, out), p0.node[out]);
	TAP_EQ(balance(&c, SEARCHER), p0.searcher - 1000);
	TAP_EQ(allowance_left(&c, SEARCHER, GW), 1500);
	TAP_EQ(allowance_left(&c, SEARCHER, GW2), 2500);

	/* a replayed receipt fails, naming its id */
	p0 = purse_of(&c);
	add_receipts(&c, &b, GW, "s", &r, 1, h[5]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[5], "settle.receipts[0].id: receipt 01010101010101010101010101010101 of this gateway was settled already");
	expect_unmoved(&c, &p0);

	/* over the allowance left */
	rcpt big = {SEARCHER, m, 3, 1600, 2};
	add_receipts(&c, &b, GW, "s", &big, 1, h[6]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[6], "settle.receipts[0].fee: 1600 exceeds the allowance left, 1500");
	expect_unmoved(&c, &p0);
	TAP_EQ(allowance_left(&c, SEARCHER, GW), 1500);

	/* paying a node that is not a member of the Magu */
	int bad_nodes[2] = {m[0], out};
	rcpt nonmember = {SEARCHER, bad_nodes, 2, 100, 3};
	add_receipts(&c, &b, GW, "s", &nonmember, 1, h[7]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[7], "settle.receipts[0].ranked_nodes[1]:");
	TAP_FAILED(&c, h[7], "is not a member of Magu \"s\"");
	expect_unmoved(&c, &p0);

	/* ids are unique per gateway: GW's settled id 1 does not stop GW2's
	 * receipt with the same id (nor could GW2 squat GW's ids) */
	add_receipts(&c, &b, GW2, "s", &r, 1, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_EQ(allowance_left(&c, SEARCHER, GW2), 2500 - 1000);
	chain_close(&c);
}

static void test_expiry_and_atomicity(void)
{
	tchain c;
	tblock b = {0};
	uint8_t h[8][32];
	int m[4], out;

	if (open_settle_chain(&c, "expiry", m, &out) != 0)
		return;
	uint64_t now = lg_state_height(c.st);
	/* an expiry below the current height is refused */
	add_approve(&c, &b, SEARCHER, GW, 1000, now, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "approve.expiry_height:");
	add_approve(&c, &b, SEARCHER, GW, 1000, now + 6, h[1]);
	add_approve(&c, &b, SEARCHER2, GW, 1000, now + 100, h[2]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_COMMITTED(&c, h[2]);

	/* all or nothing: the second receipt is bad, the first does not settle */
	purse p0 = purse_of(&c);
	uint64_t s2 = balance(&c, SEARCHER2);
	rcpt two[2] = {{SEARCHER2, m, 3, 100, 10}, {SEARCHER, m, 1, 5, 11}};
	add_receipts(&c, &b, GW, "s", two, 2, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[3], "settle.receipts[1].fee: 5 is below search_fee 10");
	expect_unmoved(&c, &p0);
	TAP_EQ(balance(&c, SEARCHER2), s2);
	TAP_EQ(allowance_left(&c, SEARCHER2, GW), 1000);
	/* ... and its ids stay unused: the good receipt settles later */
	add_receipts(&c, &b, GW, "s", two, 1, h[4]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[4]);
	TAP_EQ(balance(&c, SEARCHER2), s2 - 100);

	/* at the expiry height the allowance still holds; after it, not */
	advance_to(&c, now + 5);
	rcpt r1 = {SEARCHER, m, 3, 50, 12}, r2 = {SEARCHER, m, 3, 50, 13};
	add_receipts(&c, &b, GW, "s", &r1, 1, h[5]); /* executes at the expiry height */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[5]);
	p0 = purse_of(&c);
	add_receipts(&c, &b, GW, "s", &r2, 1, h[6]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[6], "expired at height");
	expect_unmoved(&c, &p0);

	/* a revoked allowance (amount 0) is gone */
	add_approve(&c, &b, SEARCHER2, GW, 0, 0, h[7]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[7]);
	TAP_EQ(allowance_left(&c, SEARCHER2, GW), 0);
	chain_close(&c);
}

static void test_receipt_queries(void)
{
	tchain c;
	tblock b = {0};
	uint8_t h[32];
	int m[4], out;
	char err[160];

	if (open_settle_chain(&c, "rq", m, &out) != 0)
		return;
	add_approve(&c, &b, SEARCHER, GW, 100000, 1000, NULL);
	add_approve(&c, &b, SEARCHER, GW2, 100000, 1000, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	/* five receipts through GW, two through GW2, all paying m[0] first */
	for (int i = 0; i < 5; i++) {
		rcpt r = {SEARCHER, m, 3, 100 + (uint64_t)i, (uint8_t)(20 + i)};
		add_receipts(&c, &b, GW, "s", &r, 1, h);
		TAP_EQ(commit(&c, &b), CM_OK);
		TAP_COMMITTED(&c, h);
	}
	for (int i = 0; i < 2; i++) {
		rcpt r = {SEARCHER, m, 1, 10, (uint8_t)(40 + i)};
		add_receipts(&c, &b, GW2, "s", &r, 1, h);
		TAP_EQ(commit(&c, &b), CM_OK);
		TAP_COMMITTED(&c, h);
	}

	/* by gateway, pages of two, newest first */
	Muri__V1__ReceiptsRequest req = MURI__V1__RECEIPTS_REQUEST__INIT;
	Muri__V1__ReceiptsResponse *resp = NULL;
	uint8_t token[16];
	size_t tlen = 0, seen = 0;
	uint64_t last_fee = UINT64_MAX;
	req.gateway.data = K[GW].pk;
	req.gateway.len = 32;
	req.limit = 2;
	for (int page = 0; page < 4; page++) {
		req.page_token.data = token;
		req.page_token.len = tlen;
		TAP_EQ(lg_query_receipts(c.s, &req, &resp, err, sizeof(err)), CM_OK);
		if (!resp)
			break;
		TAP_CHECK(resp->at != NULL && resp->at->height == lg_state_height(c.st));
		for (size_t i = 0; i < resp->n_receipts; i++) {
			TAP_CHECK(resp->receipts[i]->fee < last_fee); /* newest first: fees fell */
			last_fee = resp->receipts[i]->fee;
			TAP_CHECK(memcmp(resp->receipts[i]->gateway.data, K[GW].pk, 32) == 0);
			uint64_t sum = 0;
			for (size_t j = 0; j < resp->receipts[i]->n_payouts; j++)
				sum += resp->receipts[i]->payouts[j]->amount;
			TAP_EQ(sum, resp->receipts[i]->fee);
		}
		seen += resp->n_receipts;
		tlen = resp->next_page_token.len;
		if (tlen)
			memcpy(token, resp->next_page_token.data, tlen < sizeof(token) ? tlen : sizeof(token));
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
		if (!tlen)
			break;
	}
	TAP_EQ(seen, 5);
	TAP_EQ(last_fee, 100);

	/* by node: m[0] was paid by all seven */
	memset(&req, 0, sizeof(req));
	muri__v1__receipts_request__init(&req);
	req.node.data = K[m[0]].pk;
	req.node.len = 32;
	TAP_EQ(lg_query_receipts(c.s, &req, &resp, err, sizeof(err)), CM_OK);
	TAP_EQ(resp ? resp->n_receipts : 0, 7);
	TAP_EQ(resp ? resp->next_page_token.len : 1, 0);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);

	/* earnings of m[0]: 547-style rank-0 shares of 100..104, plus 10 twice alone */
	Muri__V1__Earnings *e = NULL;
	uint64_t want = 0;
	for (uint64_t fee = 100; fee <= 104; fee++) {
		uint64_t t = 720720u + 360360u + 240240u;
		want += fee - (fee / t * 360360u + fee % t * 360360u / t) - (fee / t * 240240u + fee % t * 240240u / t);
	}
	want += 20;
	TAP_EQ(lg_query_earnings(c.s, K[m[0]].pk, &e), CM_OK);
	TAP_EQ(e ? e->total_earned : 0, want);
	TAP_EQ(e ? e->receipts : 0, 7);
	TAP_CHECK(e && e->at && e->at->state_root.len == 32);
	if (e)
		protobuf_c_message_free_unpacked(&e->base, NULL);

	/* a bad request names the field */
	muri__v1__receipts_request__init(&req);
	err[0] = '\0';
	TAP_EQ(lg_query_receipts(c.s, &req, &resp, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "one must be set") != NULL);
	req.searcher.data = K[SEARCHER].pk;
	req.searcher.len = 32;
	req.node.data = K[0].pk;
	req.node.len = 32;
	TAP_EQ(lg_query_receipts(c.s, &req, &resp, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "node: only one of") != NULL);
	req.node.len = 0;
	req.limit = 1001;
	TAP_EQ(lg_query_receipts(c.s, &req, &resp, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "limit:") != NULL);
	req.limit = 0;
	req.page_token.data = token;
	req.page_token.len = 3;
	TAP_EQ(lg_query_receipts(c.s, &req, &resp, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "page_token:") != NULL);
	chain_close(&c);
}

/* The stateless checks of the new payloads name the field. */
static void test_payload_checks(void)
{
	Muri__V1__Transaction t;
	Muri__V1__Settle st = MURI__V1__SETTLE__INIT;
	Muri__V1__SearchReceipt r[2], *rp[2] = {&r[0], &r[1]};
	ProtobufCBinaryData node = {32, K[0].pk};
	uint8_t id[40] = {0};
	char err[LG_MSG_MAX];

	tx_base(&t, SEARCHER, 0, 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SETTLE;
	t.settle = &st;
	for (int i = 0; i < 2; i++) {
		muri__v1__search_receipt__init(&r[i]);
		r[i].magu = (char *)"s";
		r[i].searcher.data = K[SEARCHER].pk;
		r[i].searcher.len = 32;
		r[i].ranked_nodes = &node;
		r[i].n_ranked_nodes = 1;
		r[i].fee = 10;
		r[i].id.data = id;
		r[i].id.len = 16;
	}
	st.receipts = rp;
	st.n_receipts = 2;
	r[0].id.len = 8;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "settle.receipts[0].id: 8 bytes, expected 16..32");
	r[0].id.len = 33;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "settle.receipts[0].id: 33 bytes, expected 16..32");
	r[0].id.len = 16;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "settle.receipts[1].id: repeats receipts[0]");
	r[1].id.len = 17;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_OK);

	Muri__V1__Approve ap = MURI__V1__APPROVE__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_APPROVE;
	t.approve = &ap;
	ap.gateway.data = K[GW].pk;
	ap.gateway.len = 31;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "approve.gateway: 31 bytes, expected 32");

	Muri__V1__ReportDoubleRoot d = MURI__V1__REPORT_DOUBLE_ROOT__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REPORT_DOUBLE_ROOT;
	t.report_double_root = &d;
	TAP_EQ(lg_tx_check(&t, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "report_double_root.a: missing");
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_consent);
	TAP_RUN(test_expiry_and_atomicity);
	TAP_RUN(test_receipt_queries);
	TAP_RUN(test_payload_checks);
	return st_finish();
}
