/* Tests of common/cm_answer: the digest does not depend on the order of map
 * entries, binds every part of the query, the fragment, the size, the root
 * and each hit; signatures verify only for the same digest and signer; a
 * record's canonical bytes (services/indexer/ix_record) give the vector and
 * metadata digests of the hit that claims to be it; distances recomputed by
 * gw_distance match the indexer's FAISS arithmetic. */
#include "tap.h"
#include "cm_answer.h"
#include "cm_arena.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "gw_merge.h"
#include "ix_index.h"
#include "ix_record.h"

#include <math.h>
#include <string.h>

#define ID1 "1b4e28ba-2fa1-4d3b-a3f5-ef19a2b3c4d5"

static Muri__V1__Value vals[4];
static Muri__V1__Metadata__FieldsEntry ents[4], *ep[4];
static Muri__V1__Metadata meta;

static void build_meta(const int *order)
{
	static const char *keys[] = {"word", "n", "score", "ok"};
	for (int i = 0; i < 4; i++) {
		muri__v1__value__init(&vals[i]);
		muri__v1__metadata__fields_entry__init(&ents[i]);
		ents[i].key = (char *)keys[i];
		ents[i].value = &vals[i];
	}
	vals[0].kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
	vals[0].string_value = "hello";
	vals[1].kind_case = MURI__V1__VALUE__KIND_INT_VALUE;
	vals[1].int_value = -42;
	vals[2].kind_case = MURI__V1__VALUE__KIND_NUMBER_VALUE;
	vals[2].number_value = 0.25;
	vals[3].kind_case = MURI__V1__VALUE__KIND_BOOL_VALUE;
	vals[3].bool_value = 1;
	for (int i = 0; i < 4; i++)
		ep[i] = &ents[order[i]];
	muri__v1__metadata__init(&meta);
	meta.fields = ep;
	meta.n_fields = 4;
}

static void test_metadata_order_and_leaf(void)
{
	uint8_t a[CM_HASH_BYTES], b[CM_HASH_BYTES];
	build_meta((int[]){0, 1, 2, 3});
	TAP_EQ(cm_answer_metadata_digest(a, &meta), CM_OK);
	build_meta((int[]){3, 1, 0, 2});
	TAP_EQ(cm_answer_metadata_digest(b, &meta), CM_OK);
	TAP_CHECK(memcmp(a, b, sizeof(a)) == 0);
	vals[1].int_value = -41;
	TAP_EQ(cm_answer_metadata_digest(b, &meta), CM_OK);
	TAP_CHECK(memcmp(a, b, sizeof(a)) != 0);
	vals[1].int_value = -42;
	ents[0].key = "n"; /* a duplicate key */
	TAP_EQ(cm_answer_metadata_digest(b, &meta), CM_ERR_INVALID);
	ents[0].key = "word";

	/* the record the indexer writes: its leaf gives the same digests */
	float vec[5] = {0.5f, -1.25f, 3.0f, 1e-8f, -0.0f};
	cm_arena ar;
	cm_arena_init(&ar, 0);
	ix_record r = {.seq = 77, .epoch = 3, .op = IX_OP_UPDATE, .version = 9, .dim = 5, .vec = vec};
	TAP_EQ(ix_uuid_parse(ID1, r.id), CM_OK);
	char err[128];
	ix_field *fields;
	uint32_t nf;
	TAP_EQ(ix_meta_from_pb(&meta, &ar, "metadata", &fields, &nf, err, sizeof(err)), CM_OK);
	r.fields = fields;
	r.nfields = nf;
	TAP_EQ(ix_record_validate(&r, 5, err, sizeof(err)), CM_OK);
	uint8_t *buf = cm_arena_alloc(&ar, ix_record_encoded_size(&r));
	size_t len = ix_record_encode(&r, buf);
	cm_answer_leaf l;
	TAP_EQ(cm_answer_leaf_parse(buf, len, &l), CM_OK);
	TAP_EQ(l.seq, 77);
	TAP_EQ(l.version, 9);
	TAP_EQ(l.op, IX_OP_UPDATE);
	TAP_CHECK(memcmp(l.metadata, a, CM_HASH_BYTES) == 0);
	uint8_t vd[CM_HASH_BYTES];
	cm_answer_vector_digest(vd, vec, 5);
	TAP_CHECK(memcmp(l.vector, vd, CM_HASH_BYTES) == 0);

	/* a hit against the leaf */
	Muri__V1__Vector pv = MURI__V1__VECTOR__INIT;
	pv.values = vec;
	pv.n_values = 5;
	Muri__V1__Hit h = MURI__V1__HIT__INIT;
	h.id = ID1;
	h.version = 9;
	h.seq = 77;
	h.vector = &pv;
	h.metadata = &meta;
	const char *why = "unset";
	TAP_EQ(cm_answer_hit_matches_leaf(&h, &l, &why), CM_OK);
	TAP_CHECK(why == NULL);
	vec[2] = 3.0000002f;
	TAP_EQ(cm_answer_hit_matches_leaf(&h, &l, &why), CM_ERR_VERIFY);
	TAP_STREQ(why, "vector differs");
	vec[2] = 3.0f;
	h.version = 8;
	TAP_EQ(cm_answer_hit_matches_leaf(&h, &l, &why), CM_ERR_VERIFY);
	TAP_STREQ(why, "version differs");
	h.version = 9;
	vals[0].string_value = "hellO";
	TAP_EQ(cm_answer_hit_matches_leaf(&h, &l, &why), CM_ERR_VERIFY);
	TAP_STREQ(why, "metadata differs");
	vals[0].string_value = "hello";
	/* every truncation and a trailing byte are malformed */
	for (size_t n = 0; n < len; n++)
		TAP_EQ(cm_answer_leaf_parse(buf, n, &l), CM_ERR_INVALID);
	uint8_t *longer = cm_arena_alloc(&ar, len + 1);
	memcpy(longer, buf, len);
	TAP_EQ(cm_answer_leaf_parse(longer, len + 1, &l), CM_ERR_INVALID);
	cm_arena_free(&ar);
}

static void test_filter_order(void)
{
	Muri__V1__Condition c[2];
	Muri__V1__Filter__ConditionsEntry e[2], *p[2];
	Muri__V1__Value v = MURI__V1__VALUE__INIT;
	v.kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
	v.string_value = "x";
	for (int i = 0; i < 2; i++) {
		muri__v1__condition__init(&c[i]);
		muri__v1__filter__conditions_entry__init(&e[i]);
		e[i].value = &c[i];
	}
	e[0].key = "a";
	c[0].eq__case = MURI__V1__CONDITION__EQ__EQ;
	c[0].eq = &v;
	e[1].key = "b";
	c[1].lt__case = MURI__V1__CONDITION__LT__LT;
	c[1].lt = 3.5;
	Muri__V1__Filter f = MURI__V1__FILTER__INIT;
	f.conditions = p;
	f.n_conditions = 2;
	uint8_t d1[CM_HASH_BYTES], d2[CM_HASH_BYTES], d0[CM_HASH_BYTES];
	p[0] = &e[0], p[1] = &e[1];
	TAP_EQ(cm_answer_filter_digest(d1, &f), CM_OK);
	p[0] = &e[1], p[1] = &e[0];
	TAP_EQ(cm_answer_filter_digest(d2, &f), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) == 0);
	c[1].lt__case = MURI__V1__CONDITION__LT___NOT_SET;
	c[1].lte__case = MURI__V1__CONDITION__LTE__LTE;
	c[1].lte = 3.5;
	TAP_EQ(cm_answer_filter_digest(d2, &f), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) != 0); /* lt and lte differ */
	TAP_EQ(cm_answer_filter_digest(d0, NULL), CM_OK);
	f.n_conditions = 0;
	TAP_EQ(cm_answer_filter_digest(d2, &f), CM_OK);
	TAP_CHECK(memcmp(d0, d2, sizeof(d0)) == 0); /* none and empty are the same query */
	e[0].key = "b";
	f.n_conditions = 2;
	TAP_EQ(cm_answer_filter_digest(d2, &f), CM_ERR_INVALID);
}

static void test_digest_binds_everything(void)
{
	cm_keypair kp, other;
	cm_keypair_generate(&kp);
	cm_keypair_generate(&other);
	float q[3] = {1, 2, 3}, x[3] = {0.5f, 0.25f, -1};
	uint8_t qd[CM_HASH_BYTES], qd2[CM_HASH_BYTES], root[CM_HASH_BYTES] = {7}, sig[CM_SIG_BYTES];
	TAP_EQ(cm_answer_query_digest(qd, q, 3, 10, NULL), CM_OK);
	TAP_EQ(cm_answer_query_digest(qd2, q, 3, 11, NULL), CM_OK);
	TAP_CHECK(memcmp(qd, qd2, sizeof(qd)) != 0);
	q[1] = 2.0000002f;
	TAP_EQ(cm_answer_query_digest(qd2, q, 3, 10, NULL), CM_OK);
	TAP_CHECK(memcmp(qd, qd2, sizeof(qd)) != 0);
	build_meta((int[]){0, 1, 2, 3});
	Muri__V1__Vector pv = MURI__V1__VECTOR__INIT;
	pv.values = x;
	pv.n_values = 3;
	Muri__V1__Hit h = MURI__V1__HIT__INIT, *hp = &h;
	h.id = ID1;
	h.distance = 0.5f;
	h.vector = &pv;
	h.metadata = &meta;
	h.version = 2;
	h.seq = 5;
	Muri__V1__LocalSearchResponse r = MURI__V1__LOCAL_SEARCH_RESPONSE__INIT;
	r.hits = &hp;
	r.n_hits = 1;
	r.log_size = 9;
	r.root.data = root;
	r.root.len = CM_HASH_BYTES;
	TAP_EQ(cm_answer_sign(&kp, qd, "m", 3, &r, sig), CM_OK);
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_OK);
	TAP_EQ(cm_answer_verify(kp.pk, qd2, "m", 3, &r), CM_ERR_VERIFY);
	TAP_EQ(cm_answer_verify(kp.pk, qd, "n", 3, &r), CM_ERR_VERIFY);
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 4, &r), CM_ERR_VERIFY);
	TAP_EQ(cm_answer_verify(other.pk, qd, "m", 3, &r), CM_ERR_PERM);
	/* each bound field, changed alone, breaks the signature */
	r.log_size = 10;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	r.log_size = 9;
	root[5] ^= 1;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	root[5] ^= 1;
	h.distance = 0.50000006f;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	h.distance = 0.5f;
	h.seq = 6;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	h.seq = 5;
	h.version = 3;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	h.version = 2;
	x[0] = 0.75f;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	x[0] = 0.5f;
	vals[3].bool_value = 0;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_VERIFY);
	vals[3].bool_value = 1;
	/* map order of the hit's metadata does not matter */
	build_meta((int[]){2, 3, 0, 1});
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_OK);
	h.id = "not-a-uuid";
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_INVALID);
	h.id = ID1;
	r.root.len = 31;
	TAP_EQ(cm_answer_verify(kp.pk, qd, "m", 3, &r), CM_ERR_INVALID);
	cm_keypair_wipe(&kp);
	cm_keypair_wipe(&other);
}

/* gw_distance agrees with the indexer's FAISS arithmetic within its bound,
 * for every metric. */
static void test_distance_matches_indexer(void)
{
	enum { DIM = 1536, N = 50 };
	static float q[DIM], x[N][DIM], qp[DIM], xp[N][DIM];
	uint64_t s = 12345;
	for (int i = 0; i < DIM; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		q[i] = (float)((int64_t)(s >> 33) % 2000 - 1000) / 997.0f;
	}
	for (int n = 0; n < N; n++)
		for (int i = 0; i < DIM; i++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			x[n][i] = (float)((int64_t)(s >> 33) % 2000 - 1000) / (13.0f + (float)n);
		}
	double worst = 0;
	int metrics[] = {MURI__V1__METRIC__COSINE, MURI__V1__METRIC__L2, MURI__V1__METRIC__DOT_PRODUCT};
	int ixm[] = {IX_COSINE, IX_L2, IX_DOT};
	for (int m = 0; m < 3; m++) {
		ix_spec spec = {.dim = DIM, .metric = ixm[m]};
		float d[N];
		memcpy(qp, q, sizeof(q));
		memcpy(xp, x, sizeof(x));
		ix_vec_prepare(&spec, qp, 1);
		ix_vec_prepare(&spec, &xp[0][0], N);
		ix_distances(&spec, qp, &xp[0][0], N, d);
		for (int n = 0; n < N; n++) {
			double gd, tol;
			TAP_EQ(gw_distance(metrics[m], q, x[n], DIM, 1e-6, &gd, &tol), CM_OK);
			TAP_CHECK(fabs((double)d[n] - gd) <= tol);
			if (fabs((double)d[n] - gd) / tol > worst)
				worst = fabs((double)d[n] - gd) / tol;
		}
	}
	printf("# dimension %d: the largest difference from FAISS is %.3f of the tolerance\n", DIM, worst);
	float z[3] = {0, 0, 0}, o[3] = {1, 0, 0};
	double gd, tol;
	TAP_EQ(gw_distance(MURI__V1__METRIC__COSINE, o, z, 3, 0, &gd, &tol), CM_ERR_INVALID);
	TAP_EQ(gw_distance(9, o, o, 3, 0, &gd, &tol), CM_ERR_INVALID);
}

/* A memory of verified batch signatures for the tests: up to 16 keys. */
struct memo {
	uint8_t key[16][CM_HASH_BYTES];
	int n, lookups, hits;
};

static int memo_known(void *arg, const uint8_t key[CM_HASH_BYTES])
{
	struct memo *m = arg;
	m->lookups++;
	for (int i = 0; i < m->n; i++)
		if (memcmp(m->key[i], key, CM_HASH_BYTES) == 0) {
			m->hits++;
			return 1;
		}
	return 0;
}

static void memo_add(void *arg, const uint8_t key[CM_HASH_BYTES])
{
	struct memo *m = arg;
	if (m->n < 16)
		memcpy(m->key[m->n++], key, CM_HASH_BYTES);
}

/* Answers signed under one batch root: each verifies alone with its path,
 * and every forgery fails: another query's digest (a root signed for
 * another query), a path or index or size changed, a path taken from
 * another answer of the batch, a hit changed, another signer, a batch
 * signature presented with the batch fields cleared; a verified root is
 * remembered and a forged answer under it is still refused. */
static void test_batch_root(void)
{
	enum { N = 5 };
	cm_keypair kp, other;
	cm_keypair_generate(&kp);
	cm_keypair_generate(&other);
	float q[N][3], x[3] = {0.5f, 0.25f, -1};
	uint8_t qd[N][CM_HASH_BYTES], root[CM_HASH_BYTES] = {9}, sig[CM_SIG_BYTES], sig1[CM_SIG_BYTES];
	uint8_t paths[N * CM_ANSWER_PATH_MAX(N) * CM_HASH_BYTES];
	Muri__V1__Vector pv = MURI__V1__VECTOR__INIT;
	pv.values = x;
	pv.n_values = 3;
	Muri__V1__Hit h[N], *hp[N];
	Muri__V1__LocalSearchResponse r[N], *rp[N];
	for (int i = 0; i < N; i++) {
		q[i][0] = (float)i;
		q[i][1] = 1;
		q[i][2] = 2;
		TAP_EQ(cm_answer_query_digest(qd[i], q[i], 3, 10, NULL), CM_OK);
		muri__v1__hit__init(&h[i]);
		h[i].id = ID1;
		h[i].distance = 0.25f * (float)i;
		h[i].vector = &pv;
		h[i].version = 1;
		h[i].seq = (uint64_t)i;
		hp[i] = &h[i];
		muri__v1__local_search_response__init(&r[i]);
		r[i].hits = &hp[i];
		r[i].n_hits = 1;
		r[i].log_size = 9;
		r[i].root.data = root;
		r[i].root.len = CM_HASH_BYTES;
		rp[i] = &r[i];
	}
	TAP_EQ(cm_answer_sign_batch(&kp, (const uint8_t(*)[CM_HASH_BYTES])qd, "m", 3, rp, N, sig, paths), CM_OK);
	for (int i = 0; i < N; i++) {
		TAP_EQ(r[i].batch_size, (uint64_t)N);
		TAP_EQ(r[i].batch_index, (uint64_t)i);
		TAP_EQ(cm_answer_verify(kp.pk, qd[i], "m", 3, &r[i]), CM_OK);
		/* the root signed for the batch does not vouch for another query */
		TAP_EQ(cm_answer_verify(kp.pk, qd[(i + 1) % N], "m", 3, &r[i]), CM_ERR_VERIFY);
		TAP_EQ(cm_answer_verify(kp.pk, qd[i], "m", 4, &r[i]), CM_ERR_VERIFY);
		TAP_EQ(cm_answer_verify(other.pk, qd[i], "m", 3, &r[i]), CM_ERR_PERM);
	}
	/* a forged path: one bit of one hash */
	r[2].batch_path.data[3] ^= 1;
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_path.data[3] ^= 1;
	/* another answer's path, index or size */
	ProtobufCBinaryData keep = r[2].batch_path;
	r[2].batch_path = r[3].batch_path;
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_path = keep;
	r[2].batch_index = 3;
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_index = 2;
	r[2].batch_size = 6;
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_size = 4; /* the path no longer fits the tree */
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_size = N;
	r[2].batch_path.len -= CM_HASH_BYTES; /* a path cut short */
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_path.len += CM_HASH_BYTES;
	r[2].batch_path.len -= 1; /* not whole hashes */
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_INVALID);
	r[2].batch_path.len += 1;
	r[2].batch_index = N; /* beyond the batch */
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_INVALID);
	r[2].batch_index = 2;
	/* the batch signature presented as a lone answer's */
	r[2].batch_size = 0;
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_INVALID);
	r[2].batch_index = 0;
	r[2].batch_path.len = 0;
	TAP_EQ(cm_answer_verify(kp.pk, qd[2], "m", 3, &r[2]), CM_ERR_VERIFY);
	r[2].batch_size = N;
	r[2].batch_index = 2;
	r[2].batch_path = keep;
	/* a hit changed under a valid path */
	h[1].distance = 0.3f;
	TAP_EQ(cm_answer_verify(kp.pk, qd[1], "m", 3, &r[1]), CM_ERR_VERIFY);
	h[1].distance = 0.25f;
	/* the memory: one signature check for the whole batch, forgeries still caught */
	struct memo m = {.n = 0};
	cm_answer_seen seen = {.known = memo_known, .add = memo_add, .arg = &m};
	for (int i = 0; i < N; i++)
		TAP_EQ(cm_answer_verify_seen(kp.pk, qd[i], "m", 3, &r[i], &seen), CM_OK);
	TAP_EQ(m.n, 1);
	TAP_EQ(m.hits, N - 1);
	TAP_EQ(cm_answer_verify_seen(kp.pk, qd[0], "m", 3, &r[1], &seen), CM_ERR_VERIFY);
	h[4].seq = 7;
	TAP_EQ(cm_answer_verify_seen(kp.pk, qd[4], "m", 3, &r[4], &seen), CM_ERR_VERIFY);
	h[4].seq = 4;
	/* remembered under its signature bytes: the same root with a bad signature is checked, and fails */
	uint8_t bad[CM_SIG_BYTES];
	memcpy(bad, sig, sizeof(bad));
	bad[10] ^= 1;
	r[3].signature.data = bad;
	TAP_EQ(cm_answer_verify_seen(kp.pk, qd[3], "m", 3, &r[3], &seen), CM_ERR_VERIFY);
	r[3].signature.data = sig;
	/* evidence to the ledger judges a batch answer by its path and root's
	 * signature: an answer at the committed size with another root is a
	 * proven lie; the same with a forged path is no evidence */
	uint8_t committed[CM_HASH_BYTES] = {1};
	const char *why = NULL;
	cm_answer_evidence ev = {.node = kp.pk, .query = qd[2], .magu = "m", .fragment = 3, .answer = &r[2],
				 .by_root = 1, .committed_size = 9, .committed_root = committed};
	TAP_EQ(cm_answer_fraud(&ev, &why), CM_OK);
	r[2].batch_path.data[0] ^= 1;
	TAP_EQ(cm_answer_fraud(&ev, &why), CM_ERR_INVALID);
	r[2].batch_path.data[0] ^= 1;
	ev.query = qd[3]; /* the root signed, but for another query */
	TAP_EQ(cm_answer_fraud(&ev, &why), CM_ERR_INVALID);
	/* a batch of one is a lone answer's signature */
	TAP_EQ(cm_answer_sign_batch(&kp, (const uint8_t(*)[CM_HASH_BYTES])qd, "m", 3, rp, 1, sig1, paths), CM_OK);
	TAP_EQ(r[0].batch_size, 0);
	TAP_EQ(cm_answer_verify(kp.pk, qd[0], "m", 3, &r[0]), CM_OK);
	TAP_EQ(cm_answer_sign_batch(&kp, (const uint8_t(*)[CM_HASH_BYTES])qd, "m", 3, rp, 0, sig1, paths), CM_ERR_INVALID);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_metadata_order_and_leaf);
	TAP_RUN(test_filter_order);
	TAP_RUN(test_digest_binds_everything);
	TAP_RUN(test_distance_matches_indexer);
	TAP_RUN(test_batch_root);
	return tap_done();
}
