/* Tests of services/gateway/gw_spot: a spot check of a signed answer against
 * an inclusion proof under the committed root finds a genuine record
 * genuine and a fabricated one false; a broken proof says nothing about the
 * accused; a hit beyond the committed size waits; the ReportAnswer evidence
 * built survives protobuf and proves the lie by the ledger's rule; the
 * share of answers checked follows permille. The records are the indexer's
 * canonical bytes (services/indexer/ix_record). */
#include "tap.h"
#include "cm_answer.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "gw_spot.h"
#include "ix_record.h"

#include <string.h>

#define DIM 3
#define NREC 20
#define COMMITTED 16

static float vecs[NREC][DIM];
static uint8_t leaves[NREC][IX_RECORD_HEADER_BYTES + 4 * DIM + 2];
static size_t leaf_len[NREC];
static char ids[NREC][IX_UUID_CHARS + 1];
static cm_merkle *log_;
static cm_keypair node;
static uint8_t root[32], qd[32];

static void setup(void)
{
	cm_merkle_new(&log_, &cm_merkle_blake2b);
	for (int i = 0; i < NREC; i++) {
		ix_record r = {.seq = (uint64_t)i, .epoch = 1, .op = IX_OP_INSERT, .version = 2, .dim = DIM,
			       .vec = vecs[i]};
		for (int j = 0; j < DIM; j++)
			vecs[i][j] = (float)(i * 3 + j) / 7.0f;
		memset(r.id, 0x21 + i, IX_ID_BYTES);
		r.id[6] = 0x40 | (r.id[6] & 0x0f);
		r.id[8] = 0x80 | (r.id[8] & 0x3f);
		ix_uuid_format(r.id, ids[i]);
		leaf_len[i] = ix_record_encode(&r, leaves[i]);
		cm_merkle_append(log_, leaves[i], leaf_len[i]);
	}
	cm_merkle_root(log_, COMMITTED, root);
	cm_keypair_generate(&node);
	float q[DIM] = {1, 1, 1};
	cm_answer_query_digest(qd, q, DIM, 5, NULL);
}

typedef struct ans {
	Muri__V1__LocalSearchResponse r;
	Muri__V1__Hit h[3], *hp[3];
	Muri__V1__Vector v[3];
	float vec[3][DIM];
	uint8_t root[32], sig[64];
} ans;

/* An answer of three hits at seqs s0, s1, s2 (log size 20), hit fake_at's vector changed. */
static void make(ans *a, const uint64_t *seqs, int fake_at)
{
	memset(a, 0, sizeof(*a));
	muri__v1__local_search_response__init(&a->r);
	for (int i = 0; i < 3; i++) {
		muri__v1__hit__init(&a->h[i]);
		muri__v1__vector__init(&a->v[i]);
		memcpy(a->vec[i], vecs[seqs[i]], sizeof(a->vec[i]));
		if (i == fake_at)
			a->vec[i][1] = 42;
		a->v[i].values = a->vec[i];
		a->v[i].n_values = DIM;
		a->h[i].id = ids[seqs[i]];
		a->h[i].seq = seqs[i];
		a->h[i].version = 2;
		a->h[i].vector = &a->v[i];
		a->hp[i] = &a->h[i];
	}
	a->r.hits = a->hp;
	a->r.n_hits = 3;
	a->r.log_size = NREC;
	cm_merkle_root(log_, NREC, a->root);
	a->r.root.data = a->root;
	a->r.root.len = 32;
	cm_answer_sign(&node, qd, "m", 2, &a->r, a->sig);
}

typedef struct proof {
	Muri__V1__InclusionProofResponse p;
	ProtobufCBinaryData path[64];
	cm_merkle_path mp;
} proof;

static void prove(proof *p, uint64_t seq)
{
	muri__v1__inclusion_proof_response__init(&p->p);
	TAP_EQ(cm_merkle_inclusion(log_, seq, COMMITTED, &p->mp), CM_OK);
	for (size_t i = 0; i < p->mp.len; i++) {
		p->path[i].data = p->mp.hash + 32 * i;
		p->path[i].len = 32;
	}
	p->p.path = p->path;
	p->p.n_path = p->mp.len;
	p->p.leaf.data = leaves[seq];
	p->p.leaf.len = leaf_len[seq];
	p->p.root.data = root;
	p->p.root.len = 32;
}

static void test_verdicts(void)
{
	ans a;
	proof p;
	const char *why;
	make(&a, (uint64_t[]){3, 9, 17}, 1);
	prove(&p, 3);
	TAP_EQ(gw_spot_judge(node.pk, qd, "m", 2, &a.r, 0, &p.p, COMMITTED, root, &why), GW_SPOT_GENUINE);
	prove(&p, 9);
	TAP_EQ(gw_spot_judge(node.pk, qd, "m", 2, &a.r, 1, &p.p, COMMITTED, root, &why), GW_SPOT_FALSE);
	TAP_STREQ(why, "vector differs");
	/* the leaf of another seq does not prove anything about hit 1 */
	prove(&p, 8);
	TAP_EQ(gw_spot_judge(node.pk, qd, "m", 2, &a.r, 1, &p.p, COMMITTED, root, &why), GW_SPOT_NO_PROOF);
	prove(&p, 9);
	p.mp.hash[40] ^= 1;
	TAP_EQ(gw_spot_judge(node.pk, qd, "m", 2, &a.r, 1, &p.p, COMMITTED, root, &why), GW_SPOT_NO_PROOF);
	/* seq 17 is beyond the committed 16: later */
	TAP_EQ(gw_spot_judge(node.pk, qd, "m", 2, &a.r, 2, NULL, COMMITTED, root, &why), GW_SPOT_UNCOVERED);
	/* another node's key: the answer is not its */
	cm_keypair other;
	cm_keypair_generate(&other);
	prove(&p, 9);
	TAP_EQ(gw_spot_judge(other.pk, qd, "m", 2, &a.r, 1, &p.p, COMMITTED, root, &why), GW_SPOT_NO_PROOF);
	cm_keypair_wipe(&other);
}

static void test_evidence_round_trip(void)
{
	ans a;
	proof p;
	cm_arena ar;
	Muri__V1__ReportAnswer *ra;
	cm_arena_init(&ar, 0);
	make(&a, (uint64_t[]){5, 6, 7}, 2);
	prove(&p, 7);
	TAP_EQ(gw_spot_evidence("m", 2, qd, &a.r, 0, 2, &p.p, &ar, &ra), CM_OK);
	size_t n = muri__v1__report_answer__get_packed_size(ra);
	uint8_t *buf = cm_arena_alloc(&ar, n);
	muri__v1__report_answer__pack(ra, buf);
	Muri__V1__ReportAnswer *back = muri__v1__report_answer__unpack(NULL, n, buf);
	TAP_CHECK(back != NULL);
	if (back) {
		cm_answer_evidence e = {.node = back->answer->signer.data, .query = back->query.data, .magu = back->magu,
					.fragment = back->fragment, .answer = back->answer, .hit = back->hit,
					.leaf = back->leaf.data, .leaf_len = back->leaf.len, .path = back->leaf_path.data,
					.path_len = back->leaf_path.len / 32, .committed_size = COMMITTED,
					.committed_root = root};
		const char *why;
		TAP_EQ(cm_answer_fraud(&e, &why), CM_OK);
		TAP_STREQ(why, "vector differs");
		/* the honest version of the same answer is no evidence */
		e.hit = 0;
		TAP_EQ(cm_answer_fraud(&e, &why), CM_ERR_INVALID); /* leaf 7 proves nothing about seq 5 */
		protobuf_c_message_free_unpacked(&back->base, NULL);
	}
	cm_arena_free(&ar);
}

static void test_pick_rate(void)
{
	ans a;
	size_t hit, picked = 0, at[3] = {0};
	make(&a, (uint64_t[]){1, 2, 18}, -1);
	for (uint64_t s = 0; s < 10000; s++)
		if (gw_spot_pick(s, 50, &a.r, COMMITTED, &hit)) {
			picked++;
			TAP_CHECK(hit < 2); /* seq 18 is beyond the committed size */
			at[hit]++;
		}
	TAP_CHECK(picked > 400 && picked < 600); /* 5% of 10000 */
	TAP_CHECK(at[0] > 150 && at[1] > 150);
	TAP_EQ(gw_spot_pick(7, 0, &a.r, COMMITTED, &hit), 0);
	TAP_EQ(gw_spot_pick(7, 1000, &a.r, 0, &hit), 0); /* nothing committed */
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	setup();
	TAP_RUN(test_verdicts);
	TAP_RUN(test_evidence_round_trip);
	TAP_RUN(test_pick_rate);
	cm_merkle_free(log_);
	cm_keypair_wipe(&node);
	return tap_done();
}
