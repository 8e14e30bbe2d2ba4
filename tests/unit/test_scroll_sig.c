/* The signed digest of an indexer's page of records (cm_scroll.h): a page
 * verifies under its signer's key and no other; changing any field the
 * digest binds (a hit's id, version, metadata or vector, the log size, the
 * root, done, last_id, and the request's after_id, limit, filter, vectors
 * flag or scan bound) makes it fail; malformed ids are refused. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_scroll.h"

#include <string.h>

static cm_keypair kp, other;
static uint8_t root[CM_HASH_BYTES];
static uint8_t sig[CM_SIG_BYTES];
static float vals[2][3] = {{1, 2, 3}, {4, 5, 6}};
static Muri__V1__Vector vec[2];
static Muri__V1__Value val[2];
static Muri__V1__Metadata__FieldsEntry ent[2], *entp[2][1];
static Muri__V1__Metadata md[2];
static Muri__V1__Hit hit[2], *hitp[2];
static Muri__V1__LocalScrollRequest q;
static Muri__V1__LocalScrollResponse r;
static Muri__V1__Value fval;
static Muri__V1__Condition cond;
static Muri__V1__Filter__ConditionsEntry fent, *fentp[1];
static Muri__V1__Filter flt;

static const char *ID0 = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
static const char *ID1 = "6fa459ea-ee8a-4ca4-894e-db77e160355e";
static const char *AFTER = "0e0e28ba-2fa1-41d2-883f-0016d3cca427";

static void setup(void)
{
	cm_keypair_generate(&kp);
	cm_keypair_generate(&other);
	memset(root, 7, sizeof(root));
	for (int i = 0; i < 2; i++) {
		muri__v1__vector__init(&vec[i]);
		vec[i].values = vals[i];
		vec[i].n_values = 3;
		muri__v1__value__init(&val[i]);
		val[i].kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
		val[i].string_value = i ? "rock" : "jazz";
		muri__v1__metadata__fields_entry__init(&ent[i]);
		ent[i].key = "genre";
		ent[i].value = &val[i];
		entp[i][0] = &ent[i];
		muri__v1__metadata__init(&md[i]);
		md[i].fields = entp[i];
		md[i].n_fields = 1;
		muri__v1__hit__init(&hit[i]);
		hit[i].id = (char *)(i ? ID1 : ID0);
		hit[i].version = 10 + i;
		hit[i].seq = 3 + i;
		hit[i].vector = &vec[i];
		hit[i].metadata = &md[i];
		hitp[i] = &hit[i];
	}
	muri__v1__value__init(&fval);
	fval.kind_case = MURI__V1__VALUE__KIND_STRING_VALUE;
	fval.string_value = "jazz";
	muri__v1__condition__init(&cond);
	cond.eq__case = MURI__V1__CONDITION__EQ__EQ;
	cond.eq = &fval;
	muri__v1__filter__conditions_entry__init(&fent);
	fent.key = "genre";
	fent.value = &cond;
	fentp[0] = &fent;
	muri__v1__filter__init(&flt);
	muri__v1__local_scroll_request__init(&q);
	q.magu = "songs";
	q.fragment = 1;
	q.after_id = (char *)AFTER;
	q.limit = 2;
	q.include_vectors = 1;
	muri__v1__local_scroll_response__init(&r);
	r.hits = hitp;
	r.n_hits = 2;
	r.log_size = 9;
	r.root.data = root;
	r.root.len = sizeof(root);
	r.last_id = (char *)ID1;
}

static void test_sign_verify(void)
{
	setup();
	TAP_EQ(cm_scroll_sign(&kp, &q, &r, sig), CM_OK);
	TAP_EQ(cm_scroll_verify(kp.pk, &q, &r), CM_OK);
	TAP_EQ(cm_scroll_verify(other.pk, &q, &r), CM_ERR_PERM);
	/* every bound field, changed and restored */
#define FLIPS(field, bad)                                                                            \
	do {                                                                                         \
		__typeof__(field) keep = field;                                                      \
		field = bad;                                                                         \
		TAP_CHECK(cm_scroll_verify(kp.pk, &q, &r) != CM_OK);                                 \
		field = keep;                                                                        \
		TAP_EQ(cm_scroll_verify(kp.pk, &q, &r), CM_OK);                                      \
	} while (0)
	FLIPS(hit[0].id, (char *)AFTER);
	FLIPS(hit[1].version, 12);
	FLIPS(hit[0].seq, 4);
	FLIPS(val[1].string_value, "folk");
	FLIPS(vals[0][2], 3.5f);
	FLIPS(r.n_hits, 1);
	FLIPS(r.log_size, 10);
	FLIPS(root[5], 8);
	FLIPS(r.done, 1);
	FLIPS(r.last_id, (char *)"");
	FLIPS(q.after_id, (char *)"");
	FLIPS(q.limit, 3);
	FLIPS(q.include_vectors, 0);
	FLIPS(q.scan_max, 5);
	FLIPS(q.fragment, 0);
	FLIPS(q.magu, "other");
	flt.conditions = fentp;
	flt.n_conditions = 1;
	FLIPS(q.filter, &flt);
}

static void test_malformed(void)
{
	setup();
	uint8_t d[CM_HASH_BYTES];
	TAP_EQ(cm_scroll_digest(d, &q, &r), CM_OK);
	q.after_id = "not-a-uuid";
	TAP_EQ(cm_scroll_digest(d, &q, &r), CM_ERR_INVALID);
	q.after_id = (char *)AFTER;
	r.last_id = "xyz";
	TAP_EQ(cm_scroll_digest(d, &q, &r), CM_ERR_INVALID);
	r.last_id = (char *)ID1;
	r.root.len = 31;
	TAP_EQ(cm_scroll_digest(d, &q, &r), CM_ERR_INVALID);
	r.root.len = 32;
	TAP_EQ(cm_scroll_verify(kp.pk, &q, &r), CM_ERR_INVALID); /* not signed yet */
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_sign_verify);
	TAP_RUN(test_malformed);
	cm_keypair_wipe(&kp);
	cm_keypair_wipe(&other);
	return tap_done();
}
