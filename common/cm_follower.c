/* The follower's verification core (see cm_follower.h): checks each served
 * block against the genesis replica set and the last verified block, holds
 * certified blocks until a three-chain makes them final, recomputes the
 * state root chain over each block's effects and compares it with the roots
 * certified blocks pin. No I/O: the driver (cm_follower_driver.c) and tests
 * feed it. */
#include "cm_follower.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "consensus.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cm_fv_reason_name(int reason)
{
	static const char *names[] = {
		"ok", "malformed", "header_bytes", "hash", "height", "replay", "parent", "qc_block",
		"qc_view", "qc_signer", "qc_quorum", "qc_sig", "payload", "fields", "effects",
		"state_root", "pending_full",
	};
	if (reason < 0 || (size_t)reason >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[reason];
}

/* ---- the state root chain ---- */

typedef struct hash_sink {
	ProtobufCBuffer base;
	cm_hasher *hs;
} hash_sink;

static void hash_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
	cm_hasher_update(((hash_sink *)b)->hs, data, len);
}

void cm_effects_hash(const Muri__V1__BlockEffects *e, uint8_t out[CM_HASH_BYTES])
{
	Muri__V1__BlockEffects t = *e; /* shallow: only the two top-level fields differ */
	const uint8_t tag = 'E';
	cm_hasher hs;
	hash_sink sink = {{hash_append}, &hs};
	t.state_root.len = 0;
	t.state_root.data = NULL;
	t.write_set_hash.len = 0;
	t.write_set_hash.data = NULL;
	cm_hasher_init(&hs, CM_DOM_STATE);
	cm_hasher_update(&hs, &tag, 1);
	muri__v1__block_effects__pack_to_buffer(&t, &sink.base);
	cm_hasher_final(&hs, out);
}

void cm_state_root_next(uint8_t out[CM_HASH_BYTES], const uint8_t prev[CM_HASH_BYTES], uint64_t h,
			const uint8_t ws[CM_HASH_BYTES], const uint8_t *eh)
{
	cm_hasher hs;
	uint8_t hb[8];
	cm_put_be64(hb, h);
	cm_hasher_init(&hs, CM_DOM_STATE);
	cm_hasher_update(&hs, prev, CM_HASH_BYTES);
	cm_hasher_update(&hs, hb, sizeof(hb));
	cm_hasher_update(&hs, ws, CM_HASH_BYTES);
	if (eh)
		cm_hasher_update(&hs, eh, CM_HASH_BYTES);
	cm_hasher_final(&hs, out);
}

static void claim_push(cm_fcore *c, uint64_t height, const uint8_t root[CM_HASH_BYTES], uint32_t source,
		       int computed);

int cm_fcore_init(cm_fcore *c, const cm_fcore_opts *o)
{
	const cm_follower_genesis *g = o->genesis;
	memset(c, 0, sizeof(*c));
	if (!g || !g->chain_id || !*g->chain_id || !g->pks || g->n == 0 || g->n > CM_CHAIN_MAX_REPLICAS)
		return CM_ERR_INVALID;
	if (o->height > 0 && (!o->hash || (!o->root && !o->effects_optional)))
		return CM_ERR_INVALID;
	c->n = g->n;
	c->f = (g->n - 1) / 3;
	memcpy(c->pks, g->pks, (size_t)g->n * CM_PK_BYTES);
	cm_chain_tag(c->chain, g->chain_id);
	c->effects_optional = o->effects_optional;
	c->final_height = o->height;
	if (o->hash) {
		memcpy(c->final_hash, o->hash, CM_HASH_BYTES);
	} else {
		cm_block gb;
		cm_block_genesis(&gb);
		memcpy(c->final_hash, gb.hash, CM_HASH_BYTES);
	}
	c->max_pending = o->max_pending ? o->max_pending : CM_FCORE_PENDING_DEFAULT;
	c->max_claims = o->max_claims ? o->max_claims : CM_FCORE_CLAIMS_DEFAULT;
	if (c->max_pending < 3)
		c->max_pending = 3; /* a three-chain must fit */
	c->pending = calloc(c->max_pending, sizeof(*c->pending));
	c->claims = calloc(c->max_claims, sizeof(*c->claims));
	if (!c->pending || !c->claims) {
		cm_fcore_clear(c);
		return CM_ERR_NOMEM;
	}
	if (o->root) { /* the caller's root: a pin at its height checks it too */
		memcpy(c->final_root, o->root, CM_HASH_BYTES);
		c->final_root_known = 1;
		claim_push(c, o->height, o->root, CM_FCORE_SOURCE_START, 0);
		c->claims[c->claim0].delivered = 1; /* it is the caller's own */
	}
	return CM_OK;
}

uint64_t cm_fcore_verified_through(const cm_fcore *c)
{
	return c->verified_through;
}

void cm_fcore_clear(cm_fcore *c)
{
	for (size_t i = 0; c->pending && i < c->npending; i++)
		protobuf_c_message_free_unpacked(&c->pending[i].block->base, NULL);
	free(c->pending);
	free(c->claims);
	c->pending = NULL;
	c->claims = NULL;
	c->npending = c->nready = c->nclaims = 0;
}

static const cm_fcore_entry *top(const cm_fcore *c)
{
	return c->npending ? &c->pending[c->npending - 1] : NULL;
}

uint64_t cm_fcore_next_height(const cm_fcore *c)
{
	const cm_fcore_entry *t = top(c);
	return (t ? t->height : c->final_height) + 1;
}

static int refuse(cm_fcore *c, int *reason, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int refuse(cm_fcore *c, int *reason, int r, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->why, sizeof(c->why), "%s: ", cm_fv_reason_name(r));
	va_start(ap, fmt);
	vsnprintf(c->why + n, sizeof(c->why) - (size_t)n, fmt, ap);
	va_end(ap);
	if (reason)
		*reason = r;
	if (r == CM_FV_MALFORMED || r == CM_FV_HEADER_BYTES)
		return CM_ERR_INVALID;
	return r == CM_FV_PENDING_FULL ? CM_ERR_TOOBIG : CM_ERR_VERIFY;
}

/* ---- claims: the state root each verified block's effects claimed ---- */

static cm_fcore_claim *claim_at(cm_fcore *c, size_t i)
{
	return &c->claims[(c->claim0 + i) % c->max_claims];
}

static cm_fcore_claim *claim_find(cm_fcore *c, uint64_t height)
{
	for (size_t i = 0; i < c->nclaims; i++)
		if (claim_at(c, i)->height == height)
			return claim_at(c, i);
	return NULL;
}

static void claim_push(cm_fcore *c, uint64_t height, const uint8_t root[CM_HASH_BYTES], uint32_t source,
		       int computed)
{
	if (c->nclaims == c->max_claims) { /* the oldest can no longer be checked */
		c->claim0 = (c->claim0 + 1) % c->max_claims;
		c->nclaims--;
	}
	cm_fcore_claim *k = claim_at(c, c->nclaims++);
	k->height = height;
	memcpy(k->root, root, CM_HASH_BYTES);
	k->source = source;
	k->delivered = 0;
	k->computed = computed;
}

/* ---- the checks ---- */

static int bin_eq(const ProtobufCBinaryData *v, const void *p, size_t len)
{
	return v->len == len && (len == 0 || memcmp(v->data, p, len) == 0);
}

static int signer_index(const cm_fcore *c, const ProtobufCBinaryData *pk)
{
	if (pk->len != CM_PK_BYTES)
		return -1;
	for (uint32_t i = 0; i < c->n; i++)
		if (memcmp(c->pks[i], pk->data, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

/* The served QuorumCert as a cm_qc: signers by public key, each once. */
static int qc_from_pb(const cm_fcore *c, const Muri__V1__QuorumCert *q, cm_qc *out, char *why, size_t wlen)
{
	memset(out, 0, sizeof(*out));
	if (q->block_hash.len != CM_HASH_BYTES) {
		snprintf(why, wlen, "block_hash is %zu bytes", q->block_hash.len);
		return -1;
	}
	if (q->n_signers != q->n_signatures || q->n_signers > c->n) {
		snprintf(why, wlen, "%zu signers with %zu signatures", q->n_signers, q->n_signatures);
		return -1;
	}
	out->view = q->view;
	memcpy(out->block_hash, q->block_hash.data, CM_HASH_BYTES);
	for (size_t i = 0; i < q->n_signers; i++) {
		int r = signer_index(c, &q->signers[i]);
		if (r < 0) {
			snprintf(why, wlen, "signer %zu is not a genesis replica", i);
			return -1;
		}
		if (out->signers >> r & 1) {
			snprintf(why, wlen, "replica %d signed twice", r);
			return -1;
		}
		if (q->signatures[i].len != CM_SIG_BYTES) {
			snprintf(why, wlen, "signature %zu is %zu bytes", i, q->signatures[i].len);
			return -1;
		}
		out->signers |= 1ull << r;
		memcpy(out->sigs[r], q->signatures[i].data, CM_SIG_BYTES);
	}
	return 0;
}

static int verify_sig(void *ctx, uint32_t replica, const uint8_t digest[CM_HASH_BYTES],
		      const uint8_t sig[CM_SIG_BYTES])
{
	const cm_fcore *c = ctx;
	return replica < c->n ? cm_verify(c->pks[replica], sig, digest, CM_HASH_BYTES) : CM_ERR_VERIFY;
}

/* The served justify agrees with the decoded one (signers in replica order). */
static int justify_same(const cm_fcore *c, const Muri__V1__QuorumCert *q, const cm_qc *qc)
{
	if (!q)
		return 0;
	if (q->view != qc->view || !bin_eq(&q->block_hash, qc->block_hash, CM_HASH_BYTES) ||
	    q->n_signers != cm_qc_count(qc) || q->n_signatures != q->n_signers)
		return 0;
	size_t k = 0;
	for (uint32_t i = 0; i < CM_CHAIN_MAX_REPLICAS; i++) {
		if (!(qc->signers >> i & 1))
			continue;
		if (i >= c->n || !bin_eq(&q->signers[k], c->pks[i], CM_PK_BYTES) ||
		    !bin_eq(&q->signatures[k], qc->sigs[i], CM_SIG_BYTES))
			return 0;
		k++;
	}
	return 1;
}

static int txs_root(const Muri__V1__BlockBody *body, uint8_t out[CM_HASH_BYTES])
{
	cm_merkle *m = NULL;
	int rc = cm_merkle_new(&m, &cm_merkle_blake2b);
	for (size_t i = 0; rc == CM_OK && i < body->n_txs; i++) {
		uint8_t th[CM_HASH_BYTES];
		cm_hash(th, CM_DOM_TX, body->txs[i]->body.data, body->txs[i]->body.len);
		rc = cm_merkle_append(m, th, CM_HASH_BYTES);
	}
	if (rc == CM_OK)
		rc = cm_merkle_root(m, cm_merkle_size(m), out);
	cm_merkle_free(m);
	return rc;
}

/* The convenience fields (header, txs) agree with the decoded block and
 * body; returns the name of the first that does not, NULL if all agree. */
static const char *fields_differ(const cm_fcore *c, const Muri__V1__Block *b, const cm_block *d,
				 const Muri__V1__BlockBody *body)
{
	if (b->n_txs != body->n_txs)
		return "txs (count)";
	for (size_t i = 0; i < b->n_txs; i++)
		if (!b->txs[i] || !bin_eq(&b->txs[i]->body, body->txs[i]->body.data, body->txs[i]->body.len) ||
		    !bin_eq(&b->txs[i]->signature, body->txs[i]->signature.data, body->txs[i]->signature.len))
			return "txs";
	const Muri__V1__BlockHeader *h = b->header;
	if (!h)
		return NULL; /* optional: header_bytes and payload are what count */
	if (h->height != d->height)
		return "header.height";
	if (h->view != d->view)
		return "header.view";
	if (!bin_eq(&h->parent_hash, d->parent, CM_HASH_BYTES))
		return "header.parent_hash";
	if (d->proposer < c->n ? !bin_eq(&h->proposer, c->pks[d->proposer], CM_PK_BYTES) : h->proposer.len != 0)
		return "header.proposer";
	if (!justify_same(c, h->justify, &d->justify))
		return "header.justify";
	if (!bin_eq(&h->beacon, body->beacon.data, body->beacon.len))
		return "header.beacon";
	if (!bin_eq(&h->beacon_signature, body->beacon_signature.data, body->beacon_signature.len))
		return "header.beacon_signature";
	if (h->timestamp_ms != body->timestamp_ms)
		return "header.timestamp_ms";
	if (h->state_height != body->state_height)
		return "header.state_height";
	if (!bin_eq(&h->state_root, body->state_root.data, body->state_root.len))
		return "header.state_root";
	if (h->txs_root.len) {
		uint8_t r[CM_HASH_BYTES];
		if (txs_root(body, r) != CM_OK || !bin_eq(&h->txs_root, r, CM_HASH_BYTES))
			return "header.txs_root";
	}
	return NULL;
}

/* Drops held blocks at heights >= h, final or not, with their claims. */
static void truncate_from(cm_fcore *c, uint64_t h)
{
	while (c->npending && c->pending[c->npending - 1].height >= h) {
		cm_fcore_entry *e = &c->pending[--c->npending];
		if (c->nclaims && claim_at(c, c->nclaims - 1)->height == e->height)
			c->nclaims--;
		protobuf_c_message_free_unpacked(&e->block->base, NULL);
		e->block = NULL;
	}
	if (c->nready > c->npending)
		c->nready = c->npending;
}

/* The effects' outcomes are one per transaction of the payload, in block
 * order, each naming its transaction; an empty list is accepted only from
 * ledgers that recorded no effects (effects_optional). */
static const char *outcomes_differ(const cm_fcore *c, const Muri__V1__BlockEffects *e,
				   const Muri__V1__BlockBody *body)
{
	if (e->n_outcomes == 0 && c->effects_optional)
		return NULL;
	if (e->n_outcomes != body->n_txs)
		return "effects.outcomes: not one per transaction";
	for (size_t i = 0; i < e->n_outcomes; i++) {
		uint8_t th[CM_HASH_BYTES];
		cm_hash(th, CM_DOM_TX, body->txs[i]->body.data, body->txs[i]->body.len);
		if (!e->outcomes[i] || e->outcomes[i]->index != i || !bin_eq(&e->outcomes[i]->tx_hash, th, CM_HASH_BYTES))
			return "effects.outcomes: an outcome names another transaction or position";
	}
	return NULL;
}

int cm_fcore_add(cm_fcore *c, Muri__V1__Block *b, uint32_t source, int *reason)
{
	char why[200];
	if (reason)
		*reason = CM_FV_OK;
	c->why[0] = 0;
	if (!b || b->header_bytes.len == 0)
		return refuse(c, reason, CM_FV_MALFORMED, "header_bytes missing");
	if (b->hash.len != CM_HASH_BYTES)
		return refuse(c, reason, CM_FV_MALFORMED, "hash is %zu bytes, not 32", b->hash.len);
	if (!b->commit_qc)
		return refuse(c, reason, CM_FV_MALFORMED, "commit_qc missing");
	if (c->npending >= c->max_pending)
		return refuse(c, reason, CM_FV_PENDING_FULL, "%zu certified blocks without a three-chain",
			      c->npending);
	/* header_bytes || payload is the block's canonical encoding */
	size_t hlen = b->header_bytes.len, plen = b->payload.len;
	if (hlen > CM_BLOCK_HEADER_BYTES + CM_QC_MAX_BYTES || plen > CM_CHAIN_PAYLOAD_LIMIT)
		return refuse(c, reason, CM_FV_HEADER_BYTES, "header_bytes %zu / payload %zu bytes too large",
			      hlen, plen);
	uint8_t *enc = malloc(hlen + plen);
	if (!enc)
		return refuse(c, reason, CM_FV_MALFORMED, "out of memory for %zu bytes", hlen + plen);
	memcpy(enc, b->header_bytes.data, hlen);
	if (plen)
		memcpy(enc + hlen, b->payload.data, plen);
	cm_block d;
	int dec = cm_block_decode(enc, hlen + plen, &d);
	/* what is needed of d after enc is gone: no payload pointer */
	d.payload = NULL;
	free(enc);
	if (dec != CM_OK || d.payload_len != plen)
		return refuse(c, reason, CM_FV_HEADER_BYTES, "header_bytes || payload is not a canonical block");
	if (!bin_eq(&b->hash, d.hash, CM_HASH_BYTES))
		return refuse(c, reason, CM_FV_HASH, "hash is not the hash of header_bytes and payload");
	/* linkage */
	const cm_fcore_entry *t = top(c);
	uint64_t last = t ? t->height : c->final_height;
	const uint8_t *last_hash = t ? t->hash : c->final_hash;
	if (d.height <= last)
		return refuse(c, reason, CM_FV_REPLAY, "height %llu was verified already (at %llu)",
			      (unsigned long long)d.height, (unsigned long long)last);
	if (d.height != last + 1)
		return refuse(c, reason, CM_FV_HEIGHT, "height %llu, expected %llu", (unsigned long long)d.height,
			      (unsigned long long)last + 1);
	if (memcmp(d.parent, last_hash, CM_HASH_BYTES) != 0)
		return refuse(c, reason, CM_FV_PARENT, "parent of %llu is not the verified block %llu",
			      (unsigned long long)d.height, (unsigned long long)last);
	/* the commit QC, cheap parts first */
	cm_qc qc;
	if (qc_from_pb(c, b->commit_qc, &qc, why, sizeof(why)) != 0)
		return refuse(c, reason, CM_FV_QC_SIGNER, "commit_qc: %s", why);
	if (memcmp(qc.block_hash, d.hash, CM_HASH_BYTES) != 0)
		return refuse(c, reason, CM_FV_QC_BLOCK, "commit_qc.block_hash is not the block's hash");
	if (d.view == 0 || qc.view != d.view)
		return refuse(c, reason, CM_FV_QC_VIEW, "commit_qc.view %llu, block view %llu",
			      (unsigned long long)qc.view, (unsigned long long)d.view);
	if (cm_qc_count(&qc) < c->n - c->f)
		return refuse(c, reason, CM_FV_QC_QUORUM, "commit_qc has %u signers, needs %u", cm_qc_count(&qc),
			      c->n - c->f);
	/* the payload and the fields decoded from it */
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, plen, b->payload.data);
	if (!body)
		return refuse(c, reason, CM_FV_PAYLOAD, "payload is not a BlockBody");
	int rc = CM_OK;
	const char *bad = fields_differ(c, b, &d, body);
	if (bad)
		rc = refuse(c, reason, CM_FV_FIELDS, "%s disagrees with header_bytes/payload", bad);
	const Muri__V1__BlockEffects *e = b->effects;
	if (rc == CM_OK && !e && !c->effects_optional)
		rc = refuse(c, reason, CM_FV_EFFECTS, "effects missing");
	if (rc == CM_OK && e && e->height != d.height)
		rc = refuse(c, reason, CM_FV_EFFECTS, "effects.height %llu for block %llu",
			    (unsigned long long)e->height, (unsigned long long)d.height);
	if (rc == CM_OK && e && e->state_root.len != CM_HASH_BYTES)
		rc = refuse(c, reason, CM_FV_EFFECTS, "effects.state_root is %zu bytes", e->state_root.len);
	if (rc == CM_OK && e && (bad = outcomes_differ(c, e, body)) != NULL)
		rc = refuse(c, reason, CM_FV_EFFECTS, "%s", bad);
	/* the state root this block pins against what effects claimed */
	uint64_t pin_height = body->state_height;
	uint8_t pin_root[CM_HASH_BYTES];
	int pinned = body->state_root.len == CM_HASH_BYTES;
	if (rc == CM_OK && body->state_root.len != 0 && !pinned)
		rc = refuse(c, reason, CM_FV_PAYLOAD, "payload state_root is %zu bytes", body->state_root.len);
	if (pinned)
		memcpy(pin_root, body->state_root.data, CM_HASH_BYTES);
	muri__v1__block_body__free_unpacked(body, NULL);
	if (rc != CM_OK)
		return rc;
	if (pinned && pin_height >= d.height)
		return refuse(c, reason, CM_FV_PAYLOAD, "state_height %llu not below height %llu",
			      (unsigned long long)pin_height, (unsigned long long)d.height);
	/* signatures last: the expensive check */
	int q = cm_qc_verify(&qc, c->chain, c->n, c->f, verify_sig, c);
	if (q != CM_OK)
		return refuse(c, reason, q == CM_ERR_INVALID ? CM_FV_QC_SIGNER : CM_FV_QC_SIG,
			      "commit_qc does not verify for block %llu on this chain",
			      (unsigned long long)d.height);
	/* certified: only now may its pin accuse an earlier claim */
	cm_fcore_claim *k = pinned ? claim_find(c, pin_height) : NULL;
	if (k && memcmp(k->root, pin_root, CM_HASH_BYTES) != 0) {
		c->blame = k->source;
		c->blame_delivered = k->delivered;
		if (!k->delivered)
			truncate_from(c, k->height); /* never hand out the false effects */
		return refuse(c, reason, CM_FV_STATE_ROOT,
			      "block %llu certifies the state root at %llu, which differs from that height's effects",
			      (unsigned long long)d.height, (unsigned long long)pin_height);
	}
	/* the root chain: root_h from root_{h-1}, the write set and the content;
	 * after the pin check, so that a certified block contradicting an
	 * earlier (another replica's) claim blames that claim, not this block */
	const uint8_t *base = t ? (t->root_known ? t->root : NULL) : (c->final_root_known ? c->final_root : NULL);
	int learned = 0; /* root_{h-1} taken from this block's pin (accepted only if certified) */
	if (!base && pinned && pin_height == last) {
		base = pin_root;
		learned = 1;
	}
	uint8_t root[CM_HASH_BYTES];
	int root_known = 0;
	if (e && e->write_set_hash.len != CM_HASH_BYTES && !c->effects_optional)
		return refuse(c, reason, CM_FV_EFFECTS, "effects.write_set_hash of block %llu is %zu bytes, not 32",
			      (unsigned long long)d.height, e->write_set_hash.len);
	if (e && e->write_set_hash.len == CM_HASH_BYTES) {
		if (!base && !c->effects_optional) {
			c->blame = source;
			c->blame_delivered = 0;
			return refuse(c, reason, CM_FV_STATE_ROOT,
				      "no state root known at height %llu to check block %llu's effects "
				      "(start from a persisted root, or a block that pins it)",
				      (unsigned long long)last, (unsigned long long)d.height);
		}
		if (base) {
			uint8_t eh[CM_HASH_BYTES];
			cm_effects_hash(e, eh);
			cm_state_root_next(root, base, d.height, e->write_set_hash.data, eh);
			if (!bin_eq(&e->state_root, root, CM_HASH_BYTES))
				return refuse(c, reason, CM_FV_EFFECTS,
					      "effects.state_root of block %llu is not the root recomputed over "
					      "its write_set_hash and content",
					      (unsigned long long)d.height);
			root_known = 1;
		}
	}
	if (k && k->computed && k->height > c->verified_through)
		c->verified_through = k->height; /* and, hash-linked, every computed height below */
	if (learned) {
		cm_fcore_entry *below = c->npending ? &c->pending[c->npending - 1] : NULL;
		memcpy(below ? below->root : c->final_root, pin_root, CM_HASH_BYTES);
		if (below)
			below->root_known = 1;
		else
			c->final_root_known = 1;
	}
	cm_fcore_entry *ent = &c->pending[c->npending++];
	ent->block = b;
	ent->height = d.height;
	ent->view = d.view;
	memcpy(ent->hash, d.hash, CM_HASH_BYTES);
	ent->source = source;
	ent->root_known = root_known;
	if (root_known)
		memcpy(ent->root, root, CM_HASH_BYTES);
	if (e)
		claim_push(c, d.height, root_known ? root : e->state_root.data, source, root_known);
	/* decide: b0 <- b1 <- b2 (this block) in consecutive views make b0 and
	 * everything below it final */
	if (c->npending >= 3) {
		const cm_fcore_entry *b0 = &c->pending[c->npending - 3], *b1 = b0 + 1, *b2 = b0 + 2;
		if (b0->view + 1 == b1->view && b1->view + 1 == b2->view && c->nready < c->npending - 2)
			c->nready = c->npending - 2;
	}
	return CM_OK;
}

int cm_fcore_pop(cm_fcore *c, Muri__V1__Block **out)
{
	if (c->nready == 0)
		return 0;
	cm_fcore_entry e = c->pending[0];
	memmove(c->pending, c->pending + 1, (c->npending - 1) * sizeof(*c->pending));
	c->npending--;
	c->nready--;
	c->final_height = e.height;
	c->final_view = e.view;
	memcpy(c->final_hash, e.hash, CM_HASH_BYTES);
	memcpy(c->final_root, e.root, CM_HASH_BYTES);
	c->final_root_known = e.root_known;
	cm_fcore_claim *k = claim_find(c, e.height);
	if (k)
		k->delivered = 1;
	*out = e.block;
	return 1;
}

void cm_fcore_rollback(cm_fcore *c)
{
	if (c->npending > c->nready)
		truncate_from(c, c->pending[c->nready].height);
}
