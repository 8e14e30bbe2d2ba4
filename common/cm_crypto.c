/* ed25519 keys and key files, domain-separated BLAKE2b-256, hex and
 * constant-time helpers, all over libsodium. */
#include "cm_crypto.h"
#include "cm_err.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAGIC "muri-ed25519-seed "
#define KEY_FILE_MAX 256

int cm_crypto_init(void)
{
	return sodium_init() < 0 ? CM_ERR_INTERNAL : CM_OK;
}

void cm_hasher_init(cm_hasher *h, uint8_t domain)
{
	crypto_generichash_init(&h->st, NULL, 0, CM_HASH_BYTES);
	crypto_generichash_update(&h->st, &domain, 1);
}

void cm_hasher_update(cm_hasher *h, const void *data, size_t len)
{
	crypto_generichash_update(&h->st, data, len);
}

void cm_hasher_final(cm_hasher *h, uint8_t out[CM_HASH_BYTES])
{
	crypto_generichash_final(&h->st, out, CM_HASH_BYTES);
}

void cm_hash(uint8_t out[CM_HASH_BYTES], uint8_t domain, const void *data, size_t len)
{
	cm_hasher h;
	cm_hasher_init(&h, domain);
	cm_hasher_update(&h, data, len);
	cm_hasher_final(&h, out);
}

void cm_keypair_generate(cm_keypair *kp)
{
	crypto_sign_keypair(kp->pk, kp->sk);
}

void cm_keypair_from_seed(cm_keypair *kp, const uint8_t seed[CM_SEED_BYTES])
{
	crypto_sign_seed_keypair(kp->pk, kp->sk, seed);
}

void cm_keypair_wipe(cm_keypair *kp)
{
	if (kp)
		sodium_memzero(kp, sizeof(*kp));
}

int cm_key_save(const cm_keypair *kp, const char *path)
{
	uint8_t seed[CM_SEED_BYTES];
	char line[sizeof(KEY_MAGIC) + 2 * CM_SEED_BYTES + 2];
	int fd, rc = CM_OK;
	size_t len;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? CM_ERR_EXISTS : CM_ERR_IO;
	crypto_sign_ed25519_sk_to_seed(seed, kp->sk);
	memcpy(line, KEY_MAGIC, strlen(KEY_MAGIC));
	cm_hex(line + strlen(KEY_MAGIC), seed, sizeof(seed));
	len = strlen(KEY_MAGIC) + 2 * CM_SEED_BYTES;
	line[len++] = '\n';
	if (write(fd, line, len) != (ssize_t)len || fsync(fd) != 0)
		rc = CM_ERR_IO;
	if (close(fd) != 0)
		rc = CM_ERR_IO;
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(line, sizeof(line));
	if (rc != CM_OK)
		unlink(path);
	return rc;
}

int cm_key_load(cm_keypair *kp, const char *path)
{
	char buf[KEY_FILE_MAX];
	uint8_t seed[CM_SEED_BYTES];
	struct stat st;
	ssize_t n;
	size_t m = strlen(KEY_MAGIC);
	int fd, rc = CM_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? CM_ERR_NOTFOUND : CM_ERR_IO;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return CM_ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return CM_ERR_INVALID;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return CM_ERR_PERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return CM_ERR_IO;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if ((size_t)n != m + 2 * CM_SEED_BYTES || memcmp(buf, KEY_MAGIC, m) != 0 ||
	    cm_unhex(seed, sizeof(seed), buf + m) != CM_OK)
		rc = CM_ERR_INVALID;
	else
		cm_keypair_from_seed(kp, seed);
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

void cm_sign(const cm_keypair *kp, uint8_t sig[CM_SIG_BYTES], const void *msg, size_t len)
{
	crypto_sign_detached(sig, NULL, msg, len, kp->sk);
}

int cm_verify(const uint8_t pk[CM_PK_BYTES], const uint8_t sig[CM_SIG_BYTES],
	      const void *msg, size_t len)
{
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? CM_OK : CM_ERR_VERIFY;
}

void cm_hex(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cm_unhex(uint8_t *out, size_t n, const char *hex)
{
	if (strlen(hex) != 2 * n)
		return CM_ERR_INVALID;
	for (size_t i = 0; i < 2 * n; i++)
		if (hexval(hex[i]) < 0)
			return CM_ERR_INVALID;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	return CM_OK;
}

int cm_ct_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

void cm_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}
