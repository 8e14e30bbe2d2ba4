/* A fragment's replication rules shared by the ledger and its indexers (see
 * cm_fragment.h): the digests are byte for byte those the replication core
 * signs, and the primary choice is the one rule both the ledger and the
 * indexers' simulation apply. */
#include "cm_fragment.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <string.h>

void cm_fragment_id(const char *magu, uint32_t fragment, uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	uint8_t b[4];
	cm_put_be32(b, fragment);
	cm_hasher_init(&h, CM_DOM_REPL_APPEND);
	cm_hasher_update(&h, magu, strlen(magu) + 1);
	cm_hasher_update(&h, b, 4);
	cm_hasher_final(&h, out);
}

static void put64(cm_hasher *h, uint64_t v)
{
	uint8_t b[8];
	cm_put_be64(b, v);
	cm_hasher_update(h, b, 8);
}

void cm_fragment_report_digest(const uint8_t fragment[CM_HASH_BYTES], const cm_fragment_report *r,
			       uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_REPL_FAILOVER);
	cm_hasher_update(&h, fragment, CM_HASH_BYTES);
	put64(&h, r->epoch);
	put64(&h, r->size);
	cm_hasher_update(&h, r->root, CM_HASH_BYTES);
	put64(&h, r->last_epoch);
	cm_hasher_update(&h, r->sender, CM_PK_BYTES);
	cm_hasher_final(&h, out);
}

uint32_t cm_fragment_majority(uint32_t n)
{
	return n / 2 + 1;
}

static int member(const uint8_t (*replicas)[CM_PK_BYTES], uint32_t n, const uint8_t pk[CM_PK_BYTES])
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(replicas[i], pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

int cm_fragment_choose_primary(uint64_t epoch, const uint8_t (*replicas)[CM_PK_BYTES], uint32_t n,
			       const cm_fragment_report *reports, size_t nreports)
{
	if (n < 1 || n > CM_FRAGMENT_MAX_REPLICAS)
		return CM_ERR_INVALID;
	int best = -1;
	uint64_t be = 0, bs = 0;
	uint32_t seen = 0;
	uint8_t counted[CM_FRAGMENT_MAX_REPLICAS] = {0};
	for (size_t i = 0; i < nreports; i++) {
		int k = member(replicas, n, reports[i].sender);
		if (k < 0 || reports[i].epoch != epoch || counted[k])
			continue;
		counted[k] = 1;
		seen++;
		uint64_t e = reports[i].last_epoch, s = reports[i].size;
		if (best < 0 || e > be || (e == be && s > bs) || (e == be && s == bs && k < best)) {
			best = k;
			be = e;
			bs = s;
		}
	}
	return seen >= cm_fragment_majority(n) ? best : CM_ERR_STATE;
}
