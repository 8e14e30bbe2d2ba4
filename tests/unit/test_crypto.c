/* Tests of common/cm_crypto: key files and their permission check, signing,
 * domain-separated hashing, hex and constant-time comparison. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/muri-test-crypto-XXXXXX";

static void path_in_tmp(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void test_key_file_roundtrip(void)
{
	cm_keypair a, b;
	char path[256];
	path_in_tmp(path, sizeof(path), "k1");
	cm_keypair_generate(&a);
	TAP_EQ(cm_key_save(&a, path), CM_OK);
	struct stat st;
	TAP_EQ(stat(path, &st), 0);
	TAP_EQ(st.st_mode & 0777, 0600);
	TAP_EQ(cm_key_load(&b, path), CM_OK);
	TAP_CHECK(memcmp(a.pk, b.pk, CM_PK_BYTES) == 0);
	TAP_CHECK(memcmp(a.sk, b.sk, CM_SK_BYTES) == 0);
	/* never overwrites an existing key */
	TAP_EQ(cm_key_save(&a, path), CM_ERR_EXISTS);
	cm_keypair_wipe(&b);
	uint8_t zero[sizeof(b)] = {0};
	TAP_CHECK(memcmp(&b, zero, sizeof(b)) == 0);
	cm_keypair_wipe(&a);
	cm_keypair_wipe(NULL);
}

static void test_key_file_permissions(void)
{
	cm_keypair a, b;
	char path[256];
	path_in_tmp(path, sizeof(path), "k2");
	cm_keypair_generate(&a);
	TAP_EQ(cm_key_save(&a, path), CM_OK);
	TAP_EQ(chmod(path, 0640), 0);
	TAP_EQ(cm_key_load(&b, path), CM_ERR_PERM);
	TAP_EQ(chmod(path, 0604), 0);
	TAP_EQ(cm_key_load(&b, path), CM_ERR_PERM);
	TAP_EQ(chmod(path, 0400), 0);
	TAP_EQ(cm_key_load(&b, path), CM_OK);
	path_in_tmp(path, sizeof(path), "missing");
	TAP_EQ(cm_key_load(&b, path), CM_ERR_NOTFOUND);
	cm_keypair_wipe(&a);
	cm_keypair_wipe(&b);
}

static void test_key_file_malformed(void)
{
	cm_keypair b;
	char path[256];
	const char *bad[] = {
		"", "muri-ed25519-seed \n", "muri-ed25519-seed zz\n",
		"muri-ed25519-seed 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00\n",
		"other-magic 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(path, sizeof(path), "%s/bad%zu", tmpdir, i);
		FILE *f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		chmod(path, 0600);
		TAP_EQ(cm_key_load(&b, path), CM_ERR_INVALID);
	}
	snprintf(path, sizeof(path), "%s/good", tmpdir);
	FILE *f = fopen(path, "w");
	fputs("muri-ed25519-seed 00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\n", f);
	fclose(f);
	chmod(path, 0600);
	TAP_EQ(cm_key_load(&b, path), CM_OK);
	cm_keypair_wipe(&b);
}

static void test_sign_verify(void)
{
	cm_keypair a, other;
	uint8_t sig[CM_SIG_BYTES];
	const char msg[] = "transfer 10 MURI";
	cm_keypair_generate(&a);
	cm_keypair_generate(&other);
	cm_sign(&a, sig, msg, sizeof(msg));
	TAP_EQ(cm_verify(a.pk, sig, msg, sizeof(msg)), CM_OK);
	TAP_EQ(cm_verify(other.pk, sig, msg, sizeof(msg)), CM_ERR_VERIFY);
	TAP_EQ(cm_verify(a.pk, sig, msg, sizeof(msg) - 1), CM_ERR_VERIFY);
	for (size_t i = 0; i < CM_SIG_BYTES; i++) {
		sig[i] ^= 0x01;
		TAP_EQ(cm_verify(a.pk, sig, msg, sizeof(msg)), CM_ERR_VERIFY);
		sig[i] ^= 0x01;
	}
	/* ed25519 is deterministic: the same key and message sign alike */
	uint8_t sig2[CM_SIG_BYTES];
	cm_sign(&a, sig2, msg, sizeof(msg));
	TAP_CHECK(memcmp(sig, sig2, sizeof(sig)) == 0);
	cm_keypair_wipe(&a);
	cm_keypair_wipe(&other);
}

static void test_seed_is_deterministic(void)
{
	uint8_t seed[CM_SEED_BYTES] = {1, 2, 3};
	cm_keypair a, b;
	cm_keypair_from_seed(&a, seed);
	cm_keypair_from_seed(&b, seed);
	TAP_CHECK(memcmp(a.pk, b.pk, CM_PK_BYTES) == 0);
	seed[0] = 9;
	cm_keypair_from_seed(&b, seed);
	TAP_CHECK(memcmp(a.pk, b.pk, CM_PK_BYTES) != 0);
}

static void test_hash_domains(void)
{
	uint8_t h1[CM_HASH_BYTES], h2[CM_HASH_BYTES], h3[CM_HASH_BYTES];
	char hex[2 * CM_HASH_BYTES + 1];
	cm_hash(h1, CM_DOM_LEAF, "abc", 3);
	cm_hash(h2, CM_DOM_NODE, "abc", 3);
	TAP_CHECK(memcmp(h1, h2, sizeof(h1)) != 0);
	/* equals BLAKE2b-256 of the prefixed bytes */
	const uint8_t prefixed[] = {0x00, 'a', 'b', 'c'};
	crypto_generichash(h3, sizeof(h3), prefixed, sizeof(prefixed), NULL, 0);
	TAP_CHECK(memcmp(h1, h3, sizeof(h1)) == 0);
	/* incremental equals one-shot */
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_LEAF);
	cm_hasher_update(&h, "a", 1);
	cm_hasher_update(&h, "bc", 2);
	cm_hasher_final(&h, h2);
	TAP_CHECK(memcmp(h1, h2, sizeof(h1)) == 0);
	/* known answer: BLAKE2b-256 of the empty input with domain 0x00 is fixed */
	cm_hash(h1, CM_DOM_LEAF, "", 0);
	cm_hex(hex, h1, sizeof(h1));
	TAP_EQ(strlen(hex), 64);
	const uint8_t zero_byte = 0;
	crypto_generichash(h3, sizeof(h3), &zero_byte, 1, NULL, 0);
	TAP_CHECK(memcmp(h1, h3, sizeof(h1)) == 0);
}

static void test_hex(void)
{
	const uint8_t in[] = {0x00, 0x7f, 0x80, 0xff, 0x12};
	char hex[11];
	uint8_t out[5] = {0};
	cm_hex(hex, in, sizeof(in));
	TAP_STREQ(hex, "007f80ff12");
	TAP_EQ(cm_unhex(out, sizeof(out), "007F80ff12"), CM_OK);
	TAP_CHECK(memcmp(in, out, sizeof(in)) == 0);
	uint8_t keep[5] = {9, 9, 9, 9, 9};
	TAP_EQ(cm_unhex(keep, sizeof(keep), "007f80ff1"), CM_ERR_INVALID);
	TAP_EQ(cm_unhex(keep, sizeof(keep), "007f80ff123"), CM_ERR_INVALID);
	TAP_EQ(cm_unhex(keep, sizeof(keep), "007f80ff1g"), CM_ERR_INVALID);
	TAP_EQ(keep[0], 9); /* untouched on failure */
}

static void test_ct_equal_and_wipe(void)
{
	uint8_t a[32], b[32];
	memset(a, 0xab, sizeof(a));
	memcpy(b, a, sizeof(a));
	TAP_EQ(cm_ct_equal(a, b, sizeof(a)), 1);
	b[31] ^= 1;
	TAP_EQ(cm_ct_equal(a, b, sizeof(a)), 0);
	cm_wipe(a, sizeof(a));
	for (size_t i = 0; i < sizeof(a); i++)
		TAP_EQ(a[i], 0);
	TAP_STREQ(cm_strerror(CM_ERR_VERIFY), "verification failed");
}

int main(void)
{
	if (cm_crypto_init() != CM_OK || !mkdtemp(tmpdir))
		return 1;
	TAP_RUN(test_key_file_roundtrip);
	TAP_RUN(test_key_file_permissions);
	TAP_RUN(test_key_file_malformed);
	TAP_RUN(test_sign_verify);
	TAP_RUN(test_seed_is_deterministic);
	TAP_RUN(test_hash_domains);
	TAP_RUN(test_hex);
	TAP_RUN(test_ct_equal_and_wipe);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
