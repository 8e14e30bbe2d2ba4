/* Tests of ReportAnswer (services/ledger/lg_st_evidence.c): a search answer
 * signed by an indexer, judged against its fragment's committed root. A
 * fabricated record (proven by the real leaf and its inclusion path), a hit
 * beyond the answer's own log size and a root other than the committed one
 * at the committed size slash and jail the signer and pay the reporter,
 * once per answer; a genuine answer, a proof that does not verify, another
 * key's signature, another query, a fragment without a committed root and
 * a repeated report fail, naming why, and slash no one. The record leaves
 * are the indexer's own canonical bytes (services/indexer/ix_record). */
#include "st_chain.h"
#include "cm_answer.h"
#include "ix_record.h"

#define DIM 4
#define NREC 10

static float vecs[NREC][DIM];
static uint8_t leaves[NREC][IX_RECORD_HEADER_BYTES + 4 * DIM + 2];
static size_t leaf_len[NREC];
static char ids[NREC][IX_UUID_CHARS + 1];

/* The log of NREC inserts, record i with vector (i, i+1, i+2, i+3). */
static cm_merkle *record_log(void)
{
	cm_merkle *log;
	if (cm_merkle_new(&log, &cm_merkle_blake2b) != CM_OK)
		return NULL;
	for (int i = 0; i < NREC; i++) {
		ix_record r = {.seq = (uint64_t)i, .epoch = 1, .op = IX_OP_INSERT, .version = 1, .dim = DIM,
			       .vec = vecs[i]};
		for (int j = 0; j < DIM; j++)
			vecs[i][j] = (float)(i + j);
		memset(r.id, 0x11 * (i + 1), IX_ID_BYTES);
		r.id[6] = 0x40 | (r.id[6] & 0x0f);
		r.id[8] = 0x80 | (r.id[8] & 0x3f);
		ix_uuid_format(r.id, ids[i]);
		char err[128];
		TAP_EQ(ix_record_validate(&r, DIM, err, sizeof(err)), CM_OK);
		leaf_len[i] = ix_record_encode(&r, leaves[i]);
		cm_merkle_append(log, leaves[i], leaf_len[i]);
	}
	return log;
}

/* A signed answer of key k with one hit claiming record seq; the vector is
 * the record's unless fake. Buffers live in the caller's slot. */
typedef struct sanswer {
	Muri__V1__LocalSearchResponse r;
	Muri__V1__Hit hit, *hp;
	Muri__V1__Vector v;
	float vec[DIM];
	uint8_t root[32], sig[64], query[32];
} sanswer;

static void make_answer(sanswer *s, int k, const char *magu, uint64_t seq, uint64_t log_size, const uint8_t *root,
			int fake)
{
	float q[DIM] = {1, 0, 0, 0};
	memset(s, 0, sizeof(*s));
	muri__v1__local_search_response__init(&s->r);
	muri__v1__hit__init(&s->hit);
	muri__v1__vector__init(&s->v);
	memcpy(s->vec, vecs[seq % NREC], sizeof(s->vec));
	if (fake)
		s->vec[0] += 0.5f;
	s->v.values = s->vec;
	s->v.n_values = DIM;
	s->hit.id = ids[seq % NREC];
	s->hit.version = 1;
	s->hit.seq = seq;
	s->hit.vector = &s->v;
	s->hit.distance = 0.25f;
	s->hp = &s->hit;
	s->r.hits = &s->hp;
	s->r.n_hits = 1;
	s->r.log_size = log_size;
	memcpy(s->root, root, 32);
	s->r.root.data = s->root;
	s->r.root.len = 32;
	TAP_EQ(cm_answer_query_digest(s->query, q, DIM, 10, NULL), CM_OK);
	TAP_EQ(cm_answer_sign(&K[k], s->query, magu, 0, &s->r, s->sig), CM_OK);
}

static void add_report(tchain *c, tblock *b, int reporter, const char *magu, sanswer *s, int by_root,
		       const cm_merkle *log, uint64_t committed, int break_path, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__ReportAnswer ra = MURI__V1__REPORT_ANSWER__INIT;
	static cm_merkle_path path;
	uint64_t seq = s->hit.seq;
	ra.magu = (char *)magu;
	ra.fragment = 0;
	ra.query.data = s->query;
	ra.query.len = 32;
	ra.answer = &s->r;
	ra.by_root = by_root;
	if (!by_root && seq < committed) {
		TAP_EQ(cm_merkle_inclusion(log, seq, committed, &path), CM_OK);
		if (break_path)
			path.hash[5] ^= 1;
		ra.leaf.data = leaves[seq];
		ra.leaf.len = leaf_len[seq];
		ra.leaf_path.data = path.hash;
		ra.leaf_path.len = path.len * 32;
	}
	tx_base(&t, reporter, nonce_of(c, b, reporter), 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REPORT_ANSWER;
	t.report_answer = &ra;
	tb_add(b, &t, reporter, hash);
}

static void test_report_answer(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[12][32], root[32], other[32];
	const char *extra[] = {"param.answer_fraud_slash = 1500", "param.answer_fraud_reward_pct = 20",
			       "param.min_stake = 1000", NULL};
	uint64_t stake[4] = {4000, 4000, 4000, 4000};
	int reporter = K_ACC0;
	sanswer genuine, fake, fake2, stale_root, beyond, foreign, early;
	cm_merkle *log = record_log();

	if (!log || open_indexers(&c, "ev", 4, stake, &g, extra) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "e", 1, 3, 100, NULL);
	add_create(&c, &b, K_ACC0, "n", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_fragment f;
	TAP_EQ(lg_store_fragment_get(c.s, "e", 0, &f), CM_OK);
	int A = key_index(f.replicas[0]), B = key_index(f.replicas[1]), L = key_index(f.replicas[2]);
	cm_merkle_root(log, NREC, root);
	memset(other, 0x5a, 32);

	/* no committed root yet: nothing to judge by */
	make_answer(&early, L, "n", 3, NREC, root, 1);
	add_report(&c, &b, reporter, "n", &early, 0, log, NREC, 0, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "has no committed root to judge by");

	add_commit_root(&c, &b, A, "e", 0, log, 0, NREC, NULL);
	add_commit_root(&c, &b, B, "e", 0, log, 0, NREC, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "e", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, NREC);

	make_answer(&genuine, L, "e", 3, NREC, root, 0);
	make_answer(&fake, L, "e", 3, NREC, root, 1);
	make_answer(&foreign, A, "e", 3, NREC, root, 1);
	foreign.r.signer.data = K[L].pk; /* A's signature claimed as L's */

	/* what is no evidence fails, naming why, and slashes nobody */
	lg_account l0 = account(&c, L);
	add_report(&c, &b, reporter, "e", &genuine, 0, log, NREC, 0, h[1]);
	add_report(&c, &b, reporter, "e", &fake, 0, log, NREC, 1, h[2]);
	add_report(&c, &b, reporter, "e", &foreign, 0, log, NREC, 0, h[3]);
	make_answer(&fake2, L, "e", 4, NREC, root, 1);
	fake2.query[0] ^= 1; /* reported for another query than the one signed */
	add_report(&c, &b, reporter, "e", &fake2, 0, log, NREC, 0, h[4]);
	add_report(&c, &b, reporter, "e", &genuine, 1, log, NREC, 0, h[5]); /* its root is the committed one */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[1], "no lie shown (leaf: the hit is the committed record)");
	TAP_FAILED(&c, h[2], "not evidence (leaf_path: does not prove the leaf");
	TAP_FAILED(&c, h[3], "not evidence (answer.signature:");
	TAP_FAILED(&c, h[4], "not evidence (answer.signature:");
	TAP_FAILED(&c, h[5], "no lie shown (answer.root: equals the committed root)");
	TAP_EQ(account(&c, L).staked, l0.staked);

	/* a fabricated vector: slashed 1500 and jailed, the reporter paid 20% */
	uint64_t rb = balance(&c, reporter);
	add_report(&c, &b, reporter, "e", &fake, 0, log, NREC, 0, h[6]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[6]);
	TAP_EQ(account(&c, L).staked, l0.staked - 1500);
	TAP_EQ(balance(&c, reporter), rb - 1 + 300);
	lg_indexer ix;
	TAP_EQ(lg_store_indexer_get(c.s, K[L].pk, &ix), CM_OK);
	TAP_CHECK(ix.jailed && !ix.active);
	Muri__V1__BlockEffects *e = NULL;
	TAP_EQ(lg_query_effects(c.s, lg_state_height(c.st), &e), CM_OK);
	TAP_EQ(e ? e->n_penalties : 0, 1);
	if (e && e->n_penalties) {
		TAP_CHECK(memcmp(e->penalties[0]->indexer.data, K[L].pk, 32) == 0);
		TAP_EQ(e->penalties[0]->slashed, 1500);
		TAP_CHECK(strstr(e->penalties[0]->reason, "false answer") != NULL);
		TAP_CHECK(strstr(e->penalties[0]->reason, "vector differs") != NULL);
	}
	if (e)
		protobuf_c_message_free_unpacked(&e->base, NULL);

	/* the same answer again fails; another false answer of L is punished again */
	add_report(&c, &b, reporter, "e", &fake, 0, log, NREC, 0, h[7]);
	make_answer(&stale_root, L, "e", 2, NREC, other, 0); /* computed at the committed size, another root */
	make_answer(&beyond, L, "e", 12, NREC, root, 0);     /* a hit at seq 12 of an answer at size 10 */
	add_report(&c, &b, reporter, "e", &stale_root, 1, log, NREC, 0, h[8]);
	add_report(&c, &b, reporter, "e", &beyond, 0, log, NREC, 0, h[9]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[7], "was punished already for this answer");
	TAP_COMMITTED(&c, h[8]);
	TAP_COMMITTED(&c, h[9]);
	TAP_EQ(l0.staked, 4000);
	TAP_EQ(account(&c, L).staked, 0); /* 1500, 1500, then the 1000 left */
	cm_merkle_free(log);
	chain_close(&c);
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_report_answer);
	return st_finish();
}
