/* The pure functions of the replication protocol (ix_repl.h), shared by the
 * core, its glue and the simulation: the digests the signed messages are
 * over, the replicas a level needs, the check of a configuration and the
 * ledger's choice of a new primary. */
#include "ix_repl.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "cm_merkle.h"

#include <string.h>

/* ---- digests ---------------------------------------------------------------- */

static void leaves_root(const ix_repl_entry *e, uint32_t n, uint8_t out[CM_HASH_BYTES])
{
	if (n == 0) {
		cm_merkle_blake2b.empty(out);
		return;
	}
	if (n == 1) {
		memcpy(out, e[0].leaf, CM_HASH_BYTES);
		return;
	}
	uint32_t k = 1;
	while (k * 2 < n)
		k *= 2;
	uint8_t l[CM_HASH_BYTES], r[CM_HASH_BYTES];
	leaves_root(e, k, l);
	leaves_root(e + k, n - k, r);
	cm_merkle_blake2b.node(out, l, r);
}

void ix_repl_leaves_root(const ix_repl_entry *e, uint32_t n, uint8_t out[CM_HASH_BYTES])
{
	leaves_root(e, n, out);
}

static void put64(cm_hasher *h, uint64_t v)
{
	uint8_t b[8];
	cm_put_be64(b, v);
	cm_hasher_update(h, b, 8);
}

void ix_repl_append_digest(const uint8_t fragment[CM_HASH_BYTES], const ix_repl_append *a,
			   uint8_t out[CM_HASH_BYTES])
{
	uint8_t lr[CM_HASH_BYTES];
	leaves_root(a->entries, a->n, lr);
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_REPL_APPEND);
	cm_hasher_update(&h, fragment, CM_HASH_BYTES);
	put64(&h, a->epoch);
	put64(&h, a->prev_size);
	put64(&h, a->prev_size + a->n);
	cm_hasher_update(&h, a->prev_root, CM_HASH_BYTES);
	cm_hasher_update(&h, lr, CM_HASH_BYTES);
	for (uint32_t i = 0; i < a->n; i++) /* the epochs are not in the leaves' root */
		put64(&h, a->entries[i].epoch);
	put64(&h, a->primary_size);
	put64(&h, a->root_size);
	put64(&h, a->ts);
	put64(&h, a->req);
	put64(&h, (uint64_t)(a->closing != 0));
	cm_hasher_update(&h, a->sender, CM_PK_BYTES);
	cm_hasher_final(&h, out);
}

void ix_repl_ack_digest(const uint8_t fragment[CM_HASH_BYTES], const ix_repl_ack *a, uint8_t out[CM_HASH_BYTES])
{
	cm_hasher h;
	cm_hasher_init(&h, CM_DOM_REPL_ACK);
	cm_hasher_update(&h, fragment, CM_HASH_BYTES);
	put64(&h, a->epoch);
	put64(&h, (uint64_t)(a->ok != 0));
	put64(&h, (uint64_t)(a->refused != 0));
	put64(&h, a->match);
	cm_hasher_update(&h, a->match_root, CM_HASH_BYTES);
	put64(&h, a->log_size);
	put64(&h, a->ts);
	put64(&h, a->req);
	cm_hasher_update(&h, a->sender, CM_PK_BYTES);
	cm_hasher_final(&h, out);
}

void ix_repl_failover_digest(const uint8_t fragment[CM_HASH_BYTES], const ix_repl_failover *f,
			     uint8_t out[CM_HASH_BYTES])
{
	cm_fragment_report_digest(fragment, f, out);
}

/* ---- configurations -------------------------------------------------------- */

uint32_t ix_repl_need(int level, uint32_t n)
{
	switch (level) {
	case IX_REPL_ONE: return 1;
	case IX_REPL_ALL: return n;
	default: return cm_fragment_majority(n);
	}
}

const char *ix_repl_config_check(const ix_repl_config *c)
{
	if (c->epoch == 0)
		return "epoch: must be >= 1";
	if (c->n < 1 || c->n > IX_REPL_MAX)
		return "replicas: 1..16 are allowed";
	if (c->primary >= c->n)
		return "primary: must be one of the replicas";
	for (uint32_t i = 0; i < c->n; i++)
		for (uint32_t j = 0; j < i; j++)
			if (memcmp(c->replicas[i], c->replicas[j], CM_PK_BYTES) == 0)
				return "replicas: a replica is listed twice";
	return NULL;
}

int ix_repl_choose_primary(const ix_repl_config *cfg, const ix_repl_failover *reqs, size_t n)
{
	int k = cm_fragment_choose_primary(cfg->epoch, (const uint8_t(*)[CM_PK_BYTES])cfg->replicas, cfg->n, reqs, n);
	return k >= 0 ? k : -1;
}
