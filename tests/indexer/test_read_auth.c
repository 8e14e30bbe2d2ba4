/* Tests of the signed reads' bookkeeping (services/indexer/ix_read_auth.c)
 * and digest (common/cm_read_auth.c): a signature is answered once; when
 * more signatures arrive within the window than are remembered, the oldest
 * is forgotten and no request as old as it is answered any more (so a
 * forgotten one cannot be replayed); expired ones are forgotten without
 * that; readers are replaced as a set; the digest binds the method, the
 * chain and every field of the request but the signature. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_read_auth.h"
#include "ix_read_auth.h"

#include <string.h>

static void sig_of(uint8_t sig[CM_SIG_BYTES], int i)
{
	memset(sig, 0, CM_SIG_BYTES);
	memcpy(sig, &i, sizeof(i));
}

static void test_replays(void)
{
	ix_read_auth *a;
	uint8_t s[8][CM_SIG_BYTES];
	for (int i = 0; i < 8; i++)
		sig_of(s[i], i);
	TAP_EQ(ix_read_auth_new(1000, 4, &a), CM_OK);
	uint64_t now = 100000;
	for (int i = 0; i < 4; i++)
		TAP_EQ(ix_read_auth_once(a, s[i], now - 400 + (uint64_t)i * 100, now), CM_OK);
	TAP_EQ(ix_read_auth_once(a, s[2], now - 200, now), CM_ERR_EXISTS); /* a replay */
	/* a fifth within the window: the oldest (now - 400) is forgotten */
	TAP_EQ(ix_read_auth_once(a, s[4], now, now), CM_OK);
	TAP_EQ(ix_read_auth_once(a, s[0], now - 400, now), CM_ERR_RANGE); /* its replay: refused by age */
	TAP_EQ(ix_read_auth_once(a, s[5], now - 450, now), CM_ERR_RANGE); /* as old: refused too */
	TAP_EQ(ix_read_auth_once(a, s[1], now - 300, now), CM_ERR_EXISTS);
	TAP_EQ(ix_read_auth_once(a, s[5], now - 350, now), CM_OK); /* newer than the forgotten one */
	/* later, everything remembered has expired: forgetting it raises nothing */
	now += 5000;
	TAP_EQ(ix_read_auth_once(a, s[6], now - 10, now), CM_OK);
	TAP_EQ(ix_read_auth_once(a, s[7], now - 10, now), CM_OK);
	TAP_EQ(ix_read_auth_once(a, s[0], now - 900, now), CM_OK); /* older than those, within the window */
	TAP_EQ(ix_read_auth_once(a, s[0], now - 900, now), CM_ERR_EXISTS);
	ix_read_auth_free(a);
}

static void test_readers(void)
{
	ix_read_auth *a;
	uint8_t k[3][CM_PK_BYTES];
	memset(k, 0, sizeof(k));
	k[0][0] = 1, k[1][0] = 2, k[2][0] = 3;
	TAP_EQ(ix_read_auth_new(1000, 16, &a), CM_OK);
	TAP_EQ(ix_read_auth_is_reader(a, k[0]), 0);
	TAP_EQ(ix_read_auth_set_readers(a, (const uint8_t(*)[CM_PK_BYTES])k, 2), CM_OK);
	TAP_EQ(ix_read_auth_is_reader(a, k[1]), 1);
	TAP_EQ(ix_read_auth_is_reader(a, k[2]), 0);
	TAP_EQ(ix_read_auth_set_readers(a, (const uint8_t(*)[CM_PK_BYTES])(k + 2), 1), CM_OK);
	TAP_EQ(ix_read_auth_is_reader(a, k[0]), 0);
	TAP_EQ(ix_read_auth_is_reader(a, k[2]), 1);
	ix_read_auth_free(a);
}

static void test_digest(void)
{
	cm_keypair kp;
	cm_keypair_generate(&kp);
	Muri__V1__InclusionProofRequest r = MURI__V1__INCLUSION_PROOF_REQUEST__INIT;
	Muri__V1__ReadAuth auth;
	uint8_t sig[CM_SIG_BYTES], d1[CM_HASH_BYTES], d2[CM_HASH_BYTES];
	r.magu = "m";
	r.fragment = 1;
	r.index = 3;
	r.size = 9;
	TAP_EQ(cm_read_auth_digest(d1, "InclusionProof", "c", &r.base), CM_ERR_INVALID); /* unsigned */
	TAP_EQ(cm_read_auth_sign(&r.base, &auth, sig, &kp, "InclusionProof", "c", 12345), CM_OK);
	TAP_CHECK(r.auth == &auth && auth.wall_ms == 12345 && auth.signature.len == CM_SIG_BYTES);
	TAP_EQ(cm_read_auth_digest(d1, "InclusionProof", "c", &r.base), CM_OK);
	TAP_EQ(cm_verify(kp.pk, sig, d1, sizeof(d1)), CM_OK);
	TAP_EQ(cm_read_auth_digest(d2, "ConsistencyProof", "c", &r.base), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) != 0);
	TAP_EQ(cm_read_auth_digest(d2, "InclusionProof", "other", &r.base), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) != 0);
	r.index = 4;
	TAP_EQ(cm_read_auth_digest(d2, "InclusionProof", "c", &r.base), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) != 0);
	r.index = 3;
	auth.wall_ms++;
	TAP_EQ(cm_read_auth_digest(d2, "InclusionProof", "c", &r.base), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) != 0);
	auth.wall_ms--;
	sig[0] ^= 1; /* the signature is not part of what is signed */
	TAP_EQ(cm_read_auth_digest(d2, "InclusionProof", "c", &r.base), CM_OK);
	TAP_CHECK(memcmp(d1, d2, sizeof(d1)) == 0);
	Muri__V1__RootRequest no_auth = MURI__V1__ROOT_REQUEST__INIT;
	TAP_EQ(cm_read_auth_digest(d2, "GetRoot", "c", &no_auth.base), CM_ERR_INVALID);
	cm_keypair_wipe(&kp);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_replays);
	TAP_RUN(test_readers);
	TAP_RUN(test_digest);
	return tap_done();
}
