/* Tests of the follower's verification core (common/cm_follower): a chain
 * built in-process with real ed25519 keys, the real cm_chain encoding and
 * QCs signed by 4 replicas, and a model of the ledger's state root chain
 * over each block's write set and effects content, served honestly
 * (accepted, final after a three-chain of consecutive views) and by an
 * adversary (each forgery, altered effects content included, refused with
 * its own reason, after which the honest block still goes in). */
#include "tap.h"
#include "cm_err.h"
#include "cm_follower.h"
#include "cm_rpc.h"
#include "consensus.pb-c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define N 4
#define CHAIN_ID "follow-test"
#define MAXH 16
#define NTX 3

static cm_keypair keys[N];
static uint8_t pks[N][CM_PK_BYTES];
static cm_follower_genesis gen = {.chain_id = CHAIN_ID, .n = N, .pks = (const uint8_t(*)[CM_PK_BYTES])pks};

/* The honest chain: block h (1..MAXH) with its payload and commit QC. */
static cm_block blocks[MAXH + 1];
static cm_qc cqc[MAXH + 1];
static uint8_t *payloads[MAXH + 1];
static uint8_t roots[MAXH + 1][CM_HASH_BYTES]; /* state root after h (the model's) */

/* W_h of the fake chain: any 32 bytes do, the follower takes them as served. */
static void ws_of(uint64_t h, uint8_t out[CM_HASH_BYTES])
{
	cm_hash(out, CM_DOM_TEST, &h, sizeof(h));
}

/* The model of the root chain, written from the spec (ledger.proto
 * BlockEffects) rather than with the code under test: E_h = H(CM_DOM_STATE ||
 * 'E' || the effects packed without state_root and write_set_hash), root_h =
 * H(CM_DOM_STATE || root_{h-1} || be64(h) || W_h || E_h). */
static void model_root(const Muri__V1__BlockEffects *e, const uint8_t prev[CM_HASH_BYTES],
		       uint8_t out[CM_HASH_BYTES])
{
	Muri__V1__BlockEffects t = *e;
	t.state_root.len = t.write_set_hash.len = 0;
	size_t len = protobuf_c_message_get_packed_size(&t.base);
	uint8_t *buf = malloc(len + 1), eh[CM_HASH_BYTES], ws[CM_HASH_BYTES], hb[8];
	buf[0] = 'E';
	protobuf_c_message_pack(&t.base, buf + 1);
	cm_hash(eh, CM_DOM_STATE, buf, len + 1);
	free(buf);
	ws_of(e->height, ws);
	for (int i = 0; i < 8; i++)
		hb[i] = (uint8_t)(e->height >> (56 - 8 * i));
	cm_hasher hs;
	cm_hasher_init(&hs, CM_DOM_STATE);
	cm_hasher_update(&hs, prev, CM_HASH_BYTES);
	cm_hasher_update(&hs, hb, 8);
	cm_hasher_update(&hs, ws, CM_HASH_BYTES);
	cm_hasher_update(&hs, eh, CM_HASH_BYTES);
	cm_hasher_final(&hs, out);
}

static void sign_qc(cm_qc *q, const char *chain_id, uint64_t view, const uint8_t hash[CM_HASH_BYTES],
		    uint64_t signers)
{
	uint8_t tag[CM_HASH_BYTES], d[CM_HASH_BYTES];
	cm_chain_tag(tag, chain_id);
	memset(q, 0, sizeof(*q));
	q->view = view;
	memcpy(q->block_hash, hash, CM_HASH_BYTES);
	q->signers = signers;
	cm_vote_digest(d, tag, view, hash);
	for (int i = 0; i < N; i++)
		if (signers >> i & 1)
			cm_sign(&keys[i], q->sigs[i], d, sizeof(d));
}

/* A BlockBody for height h, pinning the state root at state_height (roots[]
 * must hold it already). */
static uint8_t *make_payload(uint64_t h, uint64_t state_height, size_t *len)
{
	Muri__V1__BlockBody body = MURI__V1__BLOCK_BODY__INIT;
	uint8_t beacon[CM_HASH_BYTES], bsig[CM_SIG_BYTES], sroot[CM_HASH_BYTES], txb[NTX][24], txs[NTX][CM_SIG_BYTES];
	Muri__V1__SignedTransaction st[NTX], *stp[NTX];
	cm_hash(beacon, CM_DOM_BEACON, &h, sizeof(h));
	memset(bsig, (int)h, sizeof(bsig));
	body.timestamp_ms = 1700000000000ull + h;
	body.beacon.data = beacon;
	body.beacon.len = sizeof(beacon);
	body.beacon_signature.data = bsig;
	body.beacon_signature.len = sizeof(bsig);
	for (int i = 0; i < NTX; i++) {
		muri__v1__signed_transaction__init(&st[i]);
		snprintf((char *)txb[i], sizeof(txb[i]), "tx %d of block %llu", i, (unsigned long long)h);
		memset(txs[i], i + 1, sizeof(txs[i]));
		st[i].body.data = txb[i];
		st[i].body.len = sizeof(txb[i]);
		st[i].signature.data = txs[i];
		st[i].signature.len = sizeof(txs[i]);
		stp[i] = &st[i];
	}
	body.txs = stp;
	body.n_txs = NTX;
	body.state_height = state_height;
	memcpy(sroot, roots[state_height], CM_HASH_BYTES);
	body.state_root.data = sroot;
	body.state_root.len = sizeof(sroot);
	*len = protobuf_c_message_get_packed_size(&body.base);
	uint8_t *p = malloc(*len);
	protobuf_c_message_pack(&body.base, p);
	return p;
}

/* Block h over parent with this view, justify QC and payload; hash computed. */
static void make_block(cm_block *b, uint64_t h, uint64_t view, const cm_block *parent, const cm_qc *justify,
		       uint8_t *payload, size_t plen)
{
	memset(b, 0, sizeof(*b));
	b->height = h;
	b->view = view;
	memcpy(b->parent, parent->hash, CM_HASH_BYTES);
	b->justify = *justify;
	b->proposer = (uint32_t)(view % N);
	b->payload = payload;
	b->payload_len = (uint32_t)plen;
	cm_block_hash(b);
}

/* ---- serving a block as the ledger does, with room for lies ---- */

typedef struct served {
	Muri__V1__Block b;
	Muri__V1__BlockHeader h;
	Muri__V1__QuorumCert qc, just;
	Muri__V1__BlockEffects e;
	ProtobufCBinaryData qsig[N], qpk[N], jsig[N], jpk[N];
	uint8_t enc[8192];
	size_t enc_len;
	cm_block blk;
	cm_qc commit;
	uint8_t root[CM_HASH_BYTES];
	Muri__V1__BlockBody *body;
	Muri__V1__SignedTransaction tx[NTX], *txp[NTX];
	Muri__V1__TxOutcome out[NTX], *outp[NTX];
	uint8_t out_hash[NTX][CM_HASH_BYTES];
	int no_effects, no_header;
	/* effects content beyond the outcomes: one fragment configuration, one
	 * challenge issued; room for a penalty a liar adds */
	uint8_t ws[CM_HASH_BYTES];
	Muri__V1__FragmentConfig cfg, *cfgp[1];
	Muri__V1__Replica rep[2], *repp[2];
	char addr[2][32], magu[16];
	Muri__V1__Challenge ch, *chp[1];
	Muri__V1__IndexerPenalty pen, *penp[1];
} served;

static void qc_pb(Muri__V1__QuorumCert *q, const cm_qc *c, ProtobufCBinaryData *pk, ProtobufCBinaryData *sig)
{
	muri__v1__quorum_cert__init(q);
	q->view = c->view;
	q->block_hash.data = (uint8_t *)c->block_hash;
	q->block_hash.len = CM_HASH_BYTES;
	q->signers = pk;
	q->signatures = sig;
	for (int i = 0; i < N; i++)
		if (c->signers >> i & 1) {
			pk[q->n_signers].data = pks[i];
			pk[q->n_signers++].len = CM_PK_BYTES;
			sig[q->n_signatures].data = (uint8_t *)c->sigs[i];
			sig[q->n_signatures++].len = CM_SIG_BYTES;
		}
}

/* Fills s from (blk, commit, root); the test may then lie in s before pack_served. */
static void serve_of(served *s, const cm_block *blk, const cm_qc *commit, const uint8_t root[CM_HASH_BYTES])
{
	memset(s, 0, sizeof(*s));
	s->blk = *blk;
	s->commit = *commit;
	memcpy(s->root, root, CM_HASH_BYTES);
	muri__v1__block__init(&s->b);
	muri__v1__block_header__init(&s->h);
	muri__v1__block_effects__init(&s->e);
	TAP_EQ(cm_block_encode(&s->blk, s->enc, sizeof(s->enc), &s->enc_len), CM_OK);
	s->b.header_bytes.data = s->enc;
	s->b.header_bytes.len = s->enc_len - s->blk.payload_len;
	s->b.payload.data = s->enc + s->b.header_bytes.len;
	s->b.payload.len = s->blk.payload_len;
	s->b.hash.data = s->blk.hash;
	s->b.hash.len = CM_HASH_BYTES;
	qc_pb(&s->qc, &s->commit, s->qpk, s->qsig);
	s->b.commit_qc = &s->qc;
	s->body = muri__v1__block_body__unpack(NULL, s->blk.payload_len, s->blk.payload);
	TAP_CHECK(s->body != NULL);
	s->h.height = s->blk.height;
	s->h.view = s->blk.view;
	s->h.parent_hash.data = s->blk.parent;
	s->h.parent_hash.len = CM_HASH_BYTES;
	s->h.proposer.data = pks[s->blk.proposer];
	s->h.proposer.len = CM_PK_BYTES;
	qc_pb(&s->just, &s->blk.justify, s->jpk, s->jsig);
	s->h.justify = &s->just;
	s->h.beacon = s->body->beacon;
	s->h.beacon_signature = s->body->beacon_signature;
	s->h.timestamp_ms = s->body->timestamp_ms;
	s->h.state_height = s->body->state_height;
	s->h.state_root = s->body->state_root;
	s->b.header = &s->h;
	for (size_t i = 0; i < s->body->n_txs && i < NTX; i++) {
		s->tx[i] = *s->body->txs[i];
		s->txp[i] = &s->tx[i];
	}
	s->b.txs = s->txp;
	s->b.n_txs = s->body->n_txs;
	s->e.height = s->blk.height;
	for (size_t i = 0; i < s->body->n_txs && i < NTX; i++) {
		muri__v1__tx_outcome__init(&s->out[i]);
		cm_hash(s->out_hash[i], CM_DOM_TX, s->tx[i].body.data, s->tx[i].body.len);
		s->out[i].tx_hash.data = s->out_hash[i];
		s->out[i].tx_hash.len = CM_HASH_BYTES;
		s->out[i].index = (uint32_t)i;
		s->out[i].state = MURI__V1__TX_STATE__TX_COMMITTED;
		s->outp[i] = &s->out[i];
	}
	s->e.outcomes = s->outp;
	s->e.n_outcomes = s->body->n_txs;
	s->e.state_root.data = s->root;
	s->e.state_root.len = CM_HASH_BYTES;
	ws_of(s->blk.height, s->ws);
	s->e.write_set_hash.data = s->ws;
	s->e.write_set_hash.len = CM_HASH_BYTES;
	uint64_t h = s->blk.height;
	snprintf(s->magu, sizeof(s->magu), "magu%llu", (unsigned long long)(h % 3));
	muri__v1__fragment_config__init(&s->cfg);
	s->cfg.magu = s->magu;
	s->cfg.fragment = (uint32_t)h;
	s->cfg.epoch = h + 1;
	s->cfg.primary.data = pks[h % N];
	s->cfg.primary.len = CM_PK_BYTES;
	for (int i = 0; i < 2; i++) {
		muri__v1__replica__init(&s->rep[i]);
		s->rep[i].pubkey.data = pks[(h + (uint64_t)i) % N];
		s->rep[i].pubkey.len = CM_PK_BYTES;
		snprintf(s->addr[i], sizeof(s->addr[i]), "10.0.%d.%llu:7000", i, (unsigned long long)h);
		s->rep[i].address = s->addr[i];
		s->repp[i] = &s->rep[i];
	}
	s->cfg.replicas = s->repp;
	s->cfg.n_replicas = 2;
	s->cfgp[0] = &s->cfg;
	s->e.configs = s->cfgp;
	s->e.n_configs = 1;
	muri__v1__challenge__init(&s->ch);
	s->ch.id = h;
	s->ch.magu = s->magu;
	s->ch.fragment = (uint32_t)h;
	s->ch.indexer = s->cfg.primary;
	s->ch.issued_height = h;
	s->ch.deadline_height = h + 20;
	s->ch.state = MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN;
	s->chp[0] = &s->ch;
	s->e.challenges = s->chp;
	s->e.n_challenges = 1;
	muri__v1__indexer_penalty__init(&s->pen);
	s->penp[0] = &s->pen;
	s->b.effects = &s->e;
}

/* A liar that keeps its own root chain consistent: s's effects claim the
 * root recomputed over their (possibly altered) content from prev. */
static void reroot(served *s, const uint8_t prev[CM_HASH_BYTES])
{
	model_root(&s->e, prev, s->root);
}

/* views[h] for h = 1..MAXH; gap_at > 0 skips a view before that height */
static void build_chain(int gap_at)
{
	cm_block_genesis(&blocks[0]);
	cm_qc_genesis(&cqc[0]);
	cm_hash(roots[0], CM_DOM_TEST, "genesis", 7);
	uint64_t view = 0;
	for (uint64_t h = 1; h <= MAXH; h++) {
		view += (int)h == gap_at ? 2 : 1;
		free(payloads[h]);
		size_t plen;
		payloads[h] = make_payload(h, h >= 3 ? h - 3 : 0, &plen);
		make_block(&blocks[h], h, view, &blocks[h - 1], &cqc[h - 1], payloads[h], plen);
		sign_qc(&cqc[h], CHAIN_ID, view, blocks[h].hash, 0x7); /* replicas 0, 1, 2 */
		served s;
		serve_of(&s, &blocks[h], &cqc[h], roots[h - 1]);
		model_root(&s.e, roots[h - 1], roots[h]);
		muri__v1__block_body__free_unpacked(s.body, NULL);
	}
}

static void serve(served *s, uint64_t h)
{
	serve_of(s, &blocks[h], &cqc[h], roots[h]);
}

/* The served block as the wire gives it to a follower (heap, owned by the caller). */
static Muri__V1__Block *pack_served(served *s)
{
	if (s->no_effects)
		s->b.effects = NULL;
	if (s->no_header)
		s->b.header = NULL;
	size_t len = protobuf_c_message_get_packed_size(&s->b.base);
	uint8_t *buf = malloc(len);
	protobuf_c_message_pack(&s->b.base, buf);
	Muri__V1__Block *m = muri__v1__block__unpack(NULL, len, buf);
	free(buf);
	muri__v1__block_body__free_unpacked(s->body, NULL);
	s->body = NULL;
	return m;
}

/* Adds s; returns the reason (CM_FV_OK on acceptance, when the core owns the block). */
static int offer(cm_fcore *c, served *s, uint32_t source)
{
	Muri__V1__Block *m = pack_served(s);
	int reason = -1;
	int rc = cm_fcore_add(c, m, source, &reason);
	if (rc != CM_OK) {
		printf("# refused: %s\n", c->why);
		protobuf_c_message_free_unpacked(&m->base, NULL);
	} else {
		TAP_EQ(reason, CM_FV_OK);
	}
	return reason;
}

static int offer_h(cm_fcore *c, uint64_t h)
{
	served s;
	serve(&s, h);
	return offer(c, &s, 0);
}

static void core_new(cm_fcore *c)
{
	cm_fcore_opts o = {.genesis = &gen};
	TAP_EQ(cm_fcore_init(c, &o), CM_OK);
}

/* Pops every final block, checking they come in order; returns the last height. */
static uint64_t pop_all(cm_fcore *c, uint64_t expect_from)
{
	Muri__V1__Block *b;
	uint64_t h = expect_from - 1;
	while (cm_fcore_pop(c, &b) == 1) {
		h++;
		TAP_EQ(b->header->height, h);
		TAP_CHECK(memcmp(b->hash.data, blocks[h].hash, CM_HASH_BYTES) == 0);
		TAP_EQ(b->effects->height, h);
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}
	return h;
}

/* ---- honest chains ---- */

static void test_honest(void)
{
	build_chain(0);
	cm_fcore c;
	core_new(&c);
	TAP_EQ(cm_fcore_next_height(&c), 1);
	uint64_t got = 0;
	for (uint64_t h = 1; h <= 10; h++) {
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
		got = pop_all(&c, got + 1);
		/* a three-chain of consecutive views makes all but the top two final */
		TAP_EQ(got, h >= 3 ? h - 2 : 0);
	}
	TAP_EQ(c.final_height, 8);
	TAP_CHECK(memcmp(c.final_hash, blocks[8].hash, CM_HASH_BYTES) == 0);
	/* root_0 came from block 1's pin; every root after it was recomputed
	 * over the served content and is the model's */
	TAP_CHECK(c.final_root_known && memcmp(c.final_root, roots[8], CM_HASH_BYTES) == 0);
	/* block 10 pins height 7: the content of heights 1..7 is vouched for */
	TAP_EQ(cm_fcore_verified_through(&c), 7);
	TAP_EQ(cm_fcore_next_height(&c), 11);
	cm_fcore_clear(&c);

	/* the caller's genesis root instead of block 1's pin */
	cm_fcore_opts o = {.genesis = &gen, .root = roots[0]};
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	for (uint64_t h = 1; h <= 5; h++)
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
	TAP_EQ(cm_fcore_verified_through(&c), 2);
	cm_fcore_clear(&c);
	uint8_t bad[CM_HASH_BYTES];
	memcpy(bad, roots[0], CM_HASH_BYTES);
	bad[0] ^= 1;
	o.root = bad;
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	TAP_EQ(offer_h(&c, 1), CM_FV_STATE_ROOT); /* block 1 pins the true root_0 */
	TAP_EQ(c.blame, CM_FCORE_SOURCE_START);
	cm_fcore_clear(&c);

	/* resuming from the (height, hash, root) the caller kept */
	o = (cm_fcore_opts){.genesis = &gen, .height = 8, .hash = blocks[8].hash, .root = roots[8]};
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	TAP_EQ(offer_h(&c, 9), CM_FV_OK);
	TAP_EQ(offer_h(&c, 10), CM_FV_OK);
	TAP_EQ(offer_h(&c, 11), CM_FV_OK);
	TAP_EQ(pop_all(&c, 9), 9);
	TAP_EQ(cm_fcore_verified_through(&c), 0); /* the pins so far (7, 8) are at or below the start */
	TAP_EQ(offer_h(&c, 12), CM_FV_OK);
	TAP_EQ(cm_fcore_verified_through(&c), 9);
	cm_fcore_clear(&c);

	/* ... altered content above it is refused at once */
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	served s;
	serve(&s, 9);
	s.cfg.primary.data = pks[3 - 9 % N];
	TAP_EQ(offer(&c, &s, 0), CM_FV_EFFECTS);
	TAP_EQ(offer_h(&c, 9), CM_FV_OK);
	cm_fcore_clear(&c);

	/* resuming with a wrong root: the next block's effects do not chain */
	o.root = roots[7];
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	TAP_EQ(offer_h(&c, 9), CM_FV_EFFECTS);
	cm_fcore_clear(&c);

	/* resuming without the root is refused: the content could not be checked */
	o.root = NULL;
	TAP_EQ(cm_fcore_init(&c, &o), CM_ERR_INVALID);

	/* resuming with a wrong hash: the next block does not link */
	o.hash = blocks[7].hash;
	o.root = roots[8];
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	TAP_EQ(offer_h(&c, 9), CM_FV_PARENT);
	cm_fcore_clear(&c);
}

static void test_view_gap(void)
{
	build_chain(4); /* views 1, 2, 3, 5, 6, 7, ... */
	cm_fcore c;
	core_new(&c);
	uint64_t got = 0;
	uint64_t want[] = {0, 0, 0, 1, 1, 1, 4, 5};
	for (uint64_t h = 1; h <= 7; h++) {
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
		got = pop_all(&c, got + 1);
		TAP_EQ(got, want[h]);
	}
	cm_fcore_clear(&c);
	build_chain(0);
}

/* ---- the adversary: block 4 forged in each way, on top of honest 1..3 ---- */

typedef void (*lie_fn)(served *s);

static void lie_no_signers(served *s) { s->qc.n_signers = s->qc.n_signatures = 0; }
static void lie_too_few(served *s) { s->qc.n_signers = s->qc.n_signatures = 2; }
static void lie_other_view(served *s)
{
	sign_qc(&s->commit, CHAIN_ID, s->blk.view + 1, s->blk.hash, 0xf);
	qc_pb(&s->qc, &s->commit, s->qpk, s->qsig);
}
static void lie_other_block(served *s)
{
	sign_qc(&s->commit, CHAIN_ID, s->blk.view, blocks[3].hash, 0xf);
	qc_pb(&s->qc, &s->commit, s->qpk, s->qsig);
}
static void lie_other_chain(served *s)
{
	sign_qc(&s->commit, "another-chain", s->blk.view, s->blk.hash, 0xf);
	qc_pb(&s->qc, &s->commit, s->qpk, s->qsig);
}
static void lie_flip_bit(served *s) { s->commit.sigs[1][17] ^= 0x04; }
static void lie_unknown_signer(served *s)
{
	static uint8_t stranger[CM_PK_BYTES] = {1, 2, 3};
	s->qpk[0].data = stranger;
}
static void lie_twice(served *s) { s->qpk[1] = s->qpk[0]; }
static void lie_short_sig(served *s) { s->qsig[2].len = 63; }
static void reserve(served *s, uint64_t h)
{
	muri__v1__block_body__free_unpacked(s->body, NULL);
	serve(s, h);
}
static void lie_skip(served *s) { reserve(s, 5); }
static void lie_replay(served *s) { reserve(s, 2); }
static void lie_header_height(served *s) { s->h.height = 99; }
static void lie_header_root(served *s)
{
	static uint8_t other[CM_HASH_BYTES] = {9};
	s->h.state_root.data = other;
}
static void lie_header_proposer(served *s) { s->h.proposer.data = pks[(s->blk.proposer + 1) % N]; }
static void lie_header_justify(served *s) { s->just.view++; }
static void lie_txs(served *s) { s->b.n_txs--; }
static void lie_tx_sig(served *s)
{
	static uint8_t sig[CM_SIG_BYTES];
	s->tx[1].signature.data = sig;
}
static void lie_payload_other(served *s)
{
	s->b.payload.data = payloads[3]; /* block 3 pins height 0: a shorter body */
	s->b.payload.len = blocks[3].payload_len;
}
static void lie_payload(served *s)
{
	static uint8_t p[4096];
	memcpy(p, s->b.payload.data, s->b.payload.len);
	p[s->b.payload.len / 2] ^= 1; /* same length, one bit changed */
	s->b.payload.data = p;
}
static void lie_hash(served *s) { s->b.hash.data = blocks[3].hash; }
static void lie_hash_and_qc(served *s)
{
	/* a made-up hash with a QC that really signs it: still not the block's hash */
	static uint8_t fake[CM_HASH_BYTES] = {7, 7, 7};
	s->b.hash.data = fake;
	sign_qc(&s->commit, CHAIN_ID, s->blk.view, fake, 0xf);
	qc_pb(&s->qc, &s->commit, s->qpk, s->qsig);
}
static void lie_truncated(served *s) { s->b.header_bytes.len -= 5; }
static void lie_no_hash(served *s) { s->b.hash.len = 0; }
static void lie_no_qc(served *s) { s->b.commit_qc = NULL; }
static void lie_effects_height(served *s) { s->e.height = 3; }
static void lie_effects_missing(served *s) { s->no_effects = 1; }
static void lie_effects_root(served *s) { s->e.state_root.len = 31; }
static void lie_outcome_other_tx(served *s) { s->out_hash[1][0] ^= 1; }
static void lie_outcome_order(served *s) { s->out[0].index = 1; }
static void lie_outcome_missing(served *s) { s->e.n_outcomes--; }
/* altered content with the honest state_root */
static void lie_config_primary(served *s) { s->cfg.primary.data = pks[(s->blk.height + 1) % N]; }
static void lie_config_address(served *s) { s->addr[1][3] = '9'; }
static void lie_challenge_removed(served *s) { s->e.n_challenges = 0; }
static void lie_outcome_state(served *s) { s->out[1].state = MURI__V1__TX_STATE__TX_FAILED; }
static void lie_penalty_added(served *s)
{
	s->pen.indexer.data = pks[2];
	s->pen.indexer.len = CM_PK_BYTES;
	s->pen.slashed = 100;
	s->pen.reason = "challenge 4 failed";
	s->e.penalties = s->penp;
	s->e.n_penalties = 1;
}
static void lie_write_set(served *s) { s->ws[5] ^= 1; }
static void lie_write_set_missing(served *s) { s->e.write_set_hash.len = 0; }
/* A block with the wrong parent that is otherwise perfect: properly hashed
 * and certified by every replica. */
static void lie_parent(served *s)
{
	cm_block b;
	make_block(&b, 4, blocks[4].view, &blocks[2], &cqc[3], payloads[4], blocks[4].payload_len);
	cm_qc q;
	sign_qc(&q, CHAIN_ID, b.view, b.hash, 0xf);
	muri__v1__block_body__free_unpacked(s->body, NULL);
	serve_of(s, &b, &q, roots[4]);
}

static const struct {
	const char *name;
	lie_fn lie;
	int reason;
} lies[] = {
	{"QC without signers", lie_no_signers, CM_FV_QC_QUORUM},
	{"QC with 2 of 4 signers", lie_too_few, CM_FV_QC_QUORUM},
	{"QC of another view", lie_other_view, CM_FV_QC_VIEW},
	{"QC of another block", lie_other_block, CM_FV_QC_BLOCK},
	{"QC of another chain", lie_other_chain, CM_FV_QC_SIG},
	{"QC with one signature bit flipped", lie_flip_bit, CM_FV_QC_SIG},
	{"QC signer outside the genesis set", lie_unknown_signer, CM_FV_QC_SIGNER},
	{"QC signer twice", lie_twice, CM_FV_QC_SIGNER},
	{"QC signature of 63 bytes", lie_short_sig, CM_FV_QC_SIGNER},
	{"QC missing", lie_no_qc, CM_FV_MALFORMED},
	{"skipped height", lie_skip, CM_FV_HEIGHT},
	{"replayed old block", lie_replay, CM_FV_REPLAY},
	{"wrong parent, certified", lie_parent, CM_FV_PARENT},
	{"header.height disagrees", lie_header_height, CM_FV_FIELDS},
	{"header.state_root disagrees", lie_header_root, CM_FV_FIELDS},
	{"header.proposer disagrees", lie_header_proposer, CM_FV_FIELDS},
	{"header.justify disagrees", lie_header_justify, CM_FV_FIELDS},
	{"txs dropped", lie_txs, CM_FV_FIELDS},
	{"tx signature swapped", lie_tx_sig, CM_FV_FIELDS},
	{"payload changed", lie_payload, CM_FV_HASH},
	{"payload of another length", lie_payload_other, CM_FV_HEADER_BYTES},
	{"hash field lied about", lie_hash, CM_FV_HASH},
	{"hash and QC lied about", lie_hash_and_qc, CM_FV_HASH},
	{"hash missing", lie_no_hash, CM_FV_MALFORMED},
	{"header_bytes truncated", lie_truncated, CM_FV_HEADER_BYTES},
	{"effects for another height", lie_effects_height, CM_FV_EFFECTS},
	{"effects missing", lie_effects_missing, CM_FV_EFFECTS},
	{"effects state root of 31 bytes", lie_effects_root, CM_FV_EFFECTS},
	{"effects outcome naming another tx", lie_outcome_other_tx, CM_FV_EFFECTS},
	{"effects outcome at another position", lie_outcome_order, CM_FV_EFFECTS},
	{"effects outcome missing", lie_outcome_missing, CM_FV_EFFECTS},
	{"effects config with another primary", lie_config_primary, CM_FV_EFFECTS},
	{"effects config with another replica address", lie_config_address, CM_FV_EFFECTS},
	{"effects challenge removed", lie_challenge_removed, CM_FV_EFFECTS},
	{"effects outcome state flipped", lie_outcome_state, CM_FV_EFFECTS},
	{"effects penalty added", lie_penalty_added, CM_FV_EFFECTS},
	{"effects write_set_hash altered", lie_write_set, CM_FV_EFFECTS},
	{"effects write_set_hash missing", lie_write_set_missing, CM_FV_EFFECTS},
};

static void test_forgeries(void)
{
	build_chain(0);
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		cm_fcore c;
		core_new(&c);
		for (uint64_t h = 1; h <= 3; h++)
			TAP_EQ(offer_h(&c, h), CM_FV_OK);
		served s;
		serve(&s, 4);
		lies[i].lie(&s);
		int r = offer(&c, &s, 1);
		if (r != lies[i].reason)
			printf("# %s: reason %s, expected %s\n", lies[i].name, cm_fv_reason_name(r),
			       cm_fv_reason_name(lies[i].reason));
		TAP_EQ(r, lies[i].reason);
		TAP_CHECK(c.why[0] != 0);
		/* nothing changed: the honest block still goes in and the chain goes on */
		TAP_EQ(cm_fcore_next_height(&c), 4);
		TAP_EQ(offer_h(&c, 4), CM_FV_OK);
		TAP_EQ(offer_h(&c, 5), CM_FV_OK);
		TAP_EQ(pop_all(&c, 1), 3);
		cm_fcore_clear(&c);
	}
}

/* Without header (the decoded convenience fields are optional) the block is
 * still checked in full against header_bytes and payload. */
static void test_no_header(void)
{
	build_chain(0);
	cm_fcore c;
	core_new(&c);
	served s;
	serve(&s, 1);
	s.no_header = 1;
	TAP_EQ(offer(&c, &s, 0), CM_FV_OK);
	serve(&s, 2);
	s.no_header = 1;
	s.b.payload.data = payloads[1];
	s.b.payload.len = blocks[1].payload_len;
	TAP_EQ(offer(&c, &s, 0), CM_FV_HASH);
	cm_fcore_clear(&c);
}

/* A liar (source 2) alters block 4's effects content (a fragment's primary)
 * and keeps its own root chain consistent: block 4's claim is its
 * recomputed root, and it serves 5 and 6 with roots chained on it, so
 * nothing can be seen yet. Block 7 pins the true root at height 4 (its
 * BlockBody.state_height = 4) and is refused, naming the liar. */
static void test_state_root_contradicted(void)
{
	build_chain(0);
	for (int delivered = 0; delivered <= 1; delivered++) {
		cm_fcore c;
		core_new(&c);
		for (uint64_t h = 1; h <= 3; h++)
			TAP_EQ(offer_h(&c, h), CM_FV_OK);
		uint8_t prev[CM_HASH_BYTES];
		memcpy(prev, roots[3], CM_HASH_BYTES);
		for (uint64_t h = 4; h <= 6; h++) {
			served s;
			serve(&s, h);
			if (h == 4)
				s.cfg.primary.data = pks[1]; /* the lie (the honest primary is pks[4 % N]) */
			reroot(&s, prev);
			memcpy(prev, s.root, CM_HASH_BYTES);
			TAP_EQ(offer(&c, &s, 2), CM_FV_OK);
		}
		if (delivered)
			TAP_EQ(pop_all(&c, 1), 4);
		TAP_EQ(cm_fcore_verified_through(&c), 3);
		served s7;
		serve(&s7, 7);
		reroot(&s7, prev); /* the liar's own block 7: its pin still says the truth */
		TAP_EQ(offer(&c, &s7, 2), CM_FV_STATE_ROOT);
		TAP_CHECK(strstr(c.why, "at 4") != NULL);
		TAP_EQ(c.blame, 2);
		TAP_EQ(c.blame_delivered, delivered);
		TAP_EQ(cm_fcore_verified_through(&c), 3);
		if (!delivered) {
			/* the lie was not handed out: the core dropped block 4 and
			 * everything above it, final or not, to fetch them again */
			TAP_EQ(pop_all(&c, 1), 3);
			TAP_EQ(cm_fcore_next_height(&c), 4);
			for (uint64_t h = 4; h <= 7; h++)
				TAP_EQ(offer_h(&c, h), CM_FV_OK);
			TAP_EQ(pop_all(&c, 4), 5);
			TAP_EQ(cm_fcore_verified_through(&c), 4);
		}
		cm_fcore_clear(&c);
	}
	/* the honest effects pass the same pin */
	cm_fcore c;
	core_new(&c);
	for (uint64_t h = 1; h <= 7; h++)
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
	TAP_EQ(pop_all(&c, 1), 5);
	TAP_EQ(cm_fcore_verified_through(&c), 4);
	cm_fcore_clear(&c);
}

/* A certified block that never becomes final (a fork abandoned by the
 * replicas) is held, not handed out; the honest chain replaces it after a
 * rollback, and a certified child of the fork does not link to the honest
 * chain. */
static void test_certified_fork(void)
{
	build_chain(0);
	cm_fcore c;
	core_new(&c);
	for (uint64_t h = 1; h <= 3; h++)
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
	TAP_EQ(pop_all(&c, 1), 1);
	/* fork block 4 in a later view, certified by all four */
	cm_block fork;
	make_block(&fork, 4, blocks[3].view + 5, &blocks[3], &cqc[3], payloads[4], blocks[4].payload_len);
	cm_qc fq;
	sign_qc(&fq, CHAIN_ID, fork.view, fork.hash, 0xf);
	served s;
	serve_of(&s, &fork, &fq, roots[4]);
	TAP_EQ(offer(&c, &s, 3), CM_FV_OK);
	TAP_EQ(pop_all(&c, 2), 1); /* views 2, 3, 8: no three-chain, nothing new is final */
	TAP_EQ(offer_h(&c, 5), CM_FV_PARENT);
	cm_fcore_rollback(&c); /* everything above the last final block goes */
	TAP_EQ(cm_fcore_next_height(&c), 2);
	for (uint64_t h = 2; h <= 6; h++)
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
	TAP_EQ(pop_all(&c, 2), 4);
	cm_fcore_clear(&c);
}

static void test_pending_bound(void)
{
	build_chain(0);
	cm_fcore c;
	cm_fcore_opts o = {.genesis = &gen, .max_pending = 3};
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	for (uint64_t h = 1; h <= 3; h++)
		TAP_EQ(offer_h(&c, h), CM_FV_OK);
	TAP_EQ(offer_h(&c, 4), CM_FV_PENDING_FULL);
	TAP_EQ(pop_all(&c, 1), 1);
	TAP_EQ(offer_h(&c, 4), CM_FV_OK);
	cm_fcore_clear(&c);
	/* bad genesis */
	cm_follower_genesis g0 = gen;
	g0.n = 0;
	o.genesis = &g0;
	TAP_EQ(cm_fcore_init(&c, &o), CM_ERR_INVALID);
	o.genesis = &gen;
	o.height = 5;
	TAP_EQ(cm_fcore_init(&c, &o), CM_ERR_INVALID); /* height without its hash */
	o.hash = blocks[5].hash;
	TAP_EQ(cm_fcore_init(&c, &o), CM_ERR_INVALID); /* ... or without its root */
	o.root = roots[5];
	TAP_EQ(cm_fcore_init(&c, &o), CM_OK);
	cm_fcore_clear(&c);
}


/* ---- the driver against in-process replicas: one forges, one stalls ---- */

enum { HONEST, FORGER, STALLER, ROOT_LIAR };

typedef struct fake_replica {
	int mode;
	cm_rpc_server *srv;
	char addr[32];
	atomic_int calls;
} fake_replica;

static fake_replica fakes[N];

static int fake_follow(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg)
{
	fake_replica *r = arg;
	const Muri__V1__FollowRequest *req = (const Muri__V1__FollowRequest *)msg;
	atomic_fetch_add(&r->calls, 1);
	uint8_t prev[CM_HASH_BYTES]; /* ROOT_LIAR: its own root chain, consistent with its lie */
	memcpy(prev, roots[0], CM_HASH_BYTES);
	for (uint64_t h = 1; r->mode != STALLER && h <= MAXH; h++) {
		served s;
		serve(&s, h);
		if (r->mode == FORGER && h == 5)
			s.commit.sigs[0][3] ^= 0x80;
		if (r->mode == ROOT_LIAR) {
			if (h == 4)
				s.addr[0][0] = '6'; /* a fragment's replica address, altered */
			reroot(&s, prev);
			memcpy(prev, s.root, CM_HASH_BYTES);
		}
		if (h < req->from_height) {
			muri__v1__block_body__free_unpacked(s.body, NULL);
			continue;
		}
		int rc = cm_rpc_stream_send(call, &s.b.base);
		muri__v1__block_body__free_unpacked(s.body, NULL);
		if (rc != CM_OK)
			return GRPC_STATUS_CANCELLED;
	}
	while (!cm_rpc_cancelled(call))
		usleep(10000); /* the chain stops here, the stream stays open */
	return cm_rpc_fail(call, GRPC_STATUS_UNAVAILABLE, "stopping");
}

static pthread_mutex_t dmu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t dheight;
static int dbad;

static int on_final(void *arg, const Muri__V1__Block *b)
{
	(void)arg;
	pthread_mutex_lock(&dmu);
	if (!b->header || b->header->height != dheight + 1 || memcmp(b->hash.data, blocks[dheight + 1].hash, 32) != 0)
		dbad++;
	dheight++;
	pthread_mutex_unlock(&dmu);
	return 0;
}

static uint64_t dseen(void)
{
	pthread_mutex_lock(&dmu);
	uint64_t h = dheight;
	pthread_mutex_unlock(&dmu);
	return h;
}

static void start_fakes(const int modes[N], const char *addrs[N])
{
	for (int i = 0; i < N; i++) {
		memset(&fakes[i], 0, sizeof(fakes[i]));
		fakes[i].mode = modes[i];
		char err[256];
		cm_rpc_server_opts so = {.listen = "127.0.0.1:0", .workers = 1, .requests_per_worker = 2, .max_streams = 8};
		static const cm_rpc_handler h[] = {{"FollowBlocks", NULL, fake_follow}};
		int port = 0;
		TAP_EQ(cm_rpc_server_new(&so, &fakes[i].srv, err, sizeof(err)), CM_OK);
		TAP_EQ(cm_rpc_server_add(fakes[i].srv, &muri__v1__ledger__descriptor, h, 1, &fakes[i]), CM_OK);
		TAP_EQ(cm_rpc_server_start(fakes[i].srv, &port, err, sizeof(err)), CM_OK);
		snprintf(fakes[i].addr, sizeof(fakes[i].addr), "127.0.0.1:%d", port);
		addrs[i] = fakes[i].addr;
	}
}

static void test_driver(void)
{
	build_chain(0);
	int modes[N] = {FORGER, STALLER, HONEST, HONEST};
	const char *addrs[N];
	start_fakes(modes, addrs);
	cm_follower_opts o = {
		.genesis = {.chain_id = CHAIN_ID, .n = N, .pks = (const uint8_t(*)[CM_PK_BYTES])pks, .addrs = addrs},
		.on_block = on_final,
		.stall_ms = 300,
		.refuse_ms = 600000,
		.retry_min_ms = 10,
		.retry_max_ms = 100,
	};
	cm_follower *f = NULL;
	char err[256];
	TAP_EQ(cm_follower_start(&o, &f, err, sizeof(err)), CM_OK);
	/* the whole honest chain but its top two (not final) comes out, in order */
	for (int i = 0; i < 3000 && dseen() < MAXH - 2; i++)
		usleep(10000);
	TAP_EQ(dseen(), MAXH - 2);
	TAP_EQ(dbad, 0);
	cm_follower_stats st;
	cm_follower_get_stats(f, &st);
	TAP_EQ(st.height, MAXH - 2);
	TAP_EQ(st.refusals, 1);
	TAP_CHECK(strstr(st.last_refusal, "qc_sig") != NULL);
	TAP_CHECK(strstr(st.last_refusal, fakes[0].addr) != NULL);
	TAP_CHECK(st.switches >= 2); /* forger -> staller -> an honest one */
	TAP_CHECK(st.replica == 2 || st.replica == 3);
	TAP_CHECK(atomic_load(&fakes[1].calls) >= 1);
	/* a stall at the top of the chain moves it between honest replicas,
	 * never back to the refused forger */
	int forger_calls = atomic_load(&fakes[0].calls);
	usleep(800000);
	TAP_EQ(atomic_load(&fakes[0].calls), forger_calls);
	/* stop from this thread while it waits on a stream */
	cm_follower_stop(f);
	TAP_EQ(cm_follower_wait(f, 5000), 1);
	cm_follower_get_stats(f, &st);
	TAP_EQ(st.running, 0);
	TAP_EQ(st.error, CM_OK);
	cm_follower_free(f);
	for (int i = 0; i < N; i++)
		cm_rpc_server_free(fakes[i].srv);
}

/* Effects handed out (block 4's, whose content a liar altered while keeping
 * its root chain consistent) are contradicted by a certified block (7 pins
 * height 4): the follower stops with CM_ERR_VERIFY and says why, naming the
 * height and the replica. */
static void test_driver_false_effects(void)
{
	build_chain(0);
	int modes[N] = {ROOT_LIAR, HONEST, HONEST, HONEST};
	const char *addrs[N];
	start_fakes(modes, addrs);
	pthread_mutex_lock(&dmu);
	dheight = 0;
	dbad = 0;
	pthread_mutex_unlock(&dmu);
	cm_follower_opts o = {
		.genesis = {.chain_id = CHAIN_ID, .n = N, .pks = (const uint8_t(*)[CM_PK_BYTES])pks, .addrs = addrs},
		.on_block = on_final,
	};
	cm_follower *f = NULL;
	char err[256];
	TAP_EQ(cm_follower_start(&o, &f, err, sizeof(err)), CM_OK);
	TAP_EQ(cm_follower_wait(f, 20000), 1);
	cm_follower_stats st;
	cm_follower_get_stats(f, &st);
	TAP_EQ(st.error, CM_ERR_VERIFY);
	TAP_EQ(st.height, 4);
	TAP_EQ(dseen(), 4);
	TAP_EQ(dbad, 0);
	TAP_CHECK(strstr(st.last_refusal, "state_root") != NULL);
	TAP_CHECK(strstr(st.last_refusal, "at 4") != NULL);
	TAP_CHECK(strstr(st.last_refusal, fakes[0].addr) != NULL);
	TAP_EQ(st.verified_through, 3);
	cm_follower_free(f);
	for (int i = 0; i < N; i++)
		cm_rpc_server_free(fakes[i].srv);
}

int main(void)
{
	cm_crypto_init();
	for (int i = 0; i < N; i++) {
		uint8_t seed[CM_SEED_BYTES] = {(uint8_t)(i + 1)};
		cm_keypair_from_seed(&keys[i], seed);
		memcpy(pks[i], keys[i].pk, CM_PK_BYTES);
	}
	TAP_RUN(test_honest);
	TAP_RUN(test_view_gap);
	TAP_RUN(test_forgeries);
	TAP_RUN(test_no_header);
	TAP_RUN(test_state_root_contradicted);
	TAP_RUN(test_certified_fork);
	TAP_RUN(test_pending_bound);
	TAP_RUN(test_driver);
	TAP_RUN(test_driver_false_effects);
	for (int i = 0; i <= MAXH; i++)
		free(payloads[i]);
	for (int i = 0; i < N; i++)
		cm_keypair_wipe(&keys[i]);
	return tap_done();
}
