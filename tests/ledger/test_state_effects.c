/* Tests of what the state machine tells followers and clients: the block
 * effects stored with every block (configurations with replica addresses,
 * membership, roots, challenges, penalties, tx outcomes), double-root
 * evidence, the state root kept for every height, queries that read one
 * snapshot and say where (ReadAt), paged lists, and Noops without a
 * signature decided by genesis. */
#include "st_chain.h"
#include "cm_bytes.h"

static Muri__V1__BlockEffects *effects_at(tchain *c, uint64_t h)
{
	Muri__V1__BlockEffects *e = NULL;
	TAP_EQ(lg_query_effects(c->s, h, &e), CM_OK);
	if (e)
		TAP_EQ(e->height, h);
	return e;
}

static void effects_free(Muri__V1__BlockEffects *e)
{
	if (e)
		protobuf_c_message_free_unpacked(&e->base, NULL);
}

/* Every height's effects are bound into its state root, checked from the
 * spec (ledger.proto) rather than with the ledger's code: the stored bytes
 * are the canonical packing (a decoded copy packs to the same bytes), with
 * write_set_hash W_h of 32 bytes, and root_h = H(CM_DOM_STATE || root_{h-1}
 * || be64(h) || W_h || H(CM_DOM_STATE || 'E' || the packing without
 * state_root and write_set_hash)) is the root kept for h. */
static void check_root_chain(tchain *c)
{
	uint64_t top = lg_state_height(c->st);
	TAP_CHECK(top >= 1);
	for (uint64_t h = 1; h <= top; h++) {
		uint8_t prev[32], want[32], eh[32], got[32], hb[8], *raw = NULL;
		size_t rawlen = 0;
		TAP_EQ(lg_store_root_at(c->s, h - 1, prev), CM_OK);
		TAP_EQ(lg_store_root_at(c->s, h, want), CM_OK);
		TAP_EQ(lg_store_effects_get(c->s, h, &raw, &rawlen), CM_OK);
		Muri__V1__BlockEffects *e = raw ? muri__v1__block_effects__unpack(NULL, rawlen, raw) : NULL;
		TAP_CHECK(e != NULL);
		if (!e) {
			free(raw);
			return;
		}
		size_t n = muri__v1__block_effects__get_packed_size(e);
		uint8_t *re = malloc(n + 1);
		muri__v1__block_effects__pack(e, re);
		TAP_CHECK(n == rawlen && memcmp(re, raw, n) == 0);
		TAP_EQ(e->write_set_hash.len, 32);
		TAP_CHECK(e->state_root.len == 32 && memcmp(e->state_root.data, want, 32) == 0);
		Muri__V1__BlockEffects t = *e;
		t.state_root.len = t.write_set_hash.len = 0;
		n = muri__v1__block_effects__get_packed_size(&t);
		re[0] = 'E';
		muri__v1__block_effects__pack(&t, re + 1);
		cm_hash(eh, CM_DOM_STATE, re, n + 1);
		cm_put_be64(hb, h);
		cm_hasher hs;
		cm_hasher_init(&hs, CM_DOM_STATE);
		cm_hasher_update(&hs, prev, 32);
		cm_hasher_update(&hs, hb, 8);
		if (e->write_set_hash.len == 32)
			cm_hasher_update(&hs, e->write_set_hash.data, 32);
		cm_hasher_update(&hs, eh, 32);
		cm_hasher_final(&hs, got);
		if (memcmp(got, want, 32) != 0)
			printf("# height %llu: root is not bound to its effects\n", (unsigned long long)h);
		TAP_CHECK(memcmp(got, want, 32) == 0);
		free(re);
		free(raw);
		effects_free(e);
	}
}

/* The config of (magu, fragment) in e, or NULL. */
static const Muri__V1__FragmentConfig *config_in(const Muri__V1__BlockEffects *e, const char *magu,
						 uint32_t fragment)
{
	for (size_t i = 0; e && i < e->n_configs; i++)
		if (strcmp(e->configs[i]->magu, magu) == 0 && e->configs[i]->fragment == fragment)
			return e->configs[i];
	return NULL;
}

/* Checks that cfg is exactly the stored fragment, addresses included. */
static void expect_config(tchain *c, const Muri__V1__FragmentConfig *cfg, const lg_fragment *f)
{
	TAP_CHECK(cfg != NULL);
	if (!cfg)
		return;
	TAP_EQ(cfg->epoch, f->epoch);
	TAP_CHECK(cfg->primary.len == 32 && memcmp(cfg->primary.data, f->primary, 32) == 0);
	TAP_EQ(cfg->n_replicas, f->nreplicas);
	for (size_t i = 0; i < cfg->n_replicas && i < f->nreplicas; i++) {
		char want[32];
		lg_indexer ix;
		TAP_CHECK(memcmp(cfg->replicas[i]->pubkey.data, f->replicas[i], 32) == 0);
		TAP_EQ(lg_store_indexer_get(c->s, f->replicas[i], &ix), CM_OK);
		snprintf(want, sizeof(want), "127.0.0.1:%d", 7200 + key_index(f->replicas[i]));
		TAP_STREQ(cfg->replicas[i]->address, want);
	}
}

static void test_effects_membership(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[4][32];
	const char *extra[] = {"param.min_stake = 1000", "param.unbonding_delay = 5", NULL};
	uint64_t stake[6] = {3000, 3000, 3000, 3000, 3000, 3000};
	lg_fragment before[8], after[8];

	if (open_indexers(&c, "fxm", 6, stake, &g, extra) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "m", 8, 2, 100, h[0]);
	add_create(&c, &b, K_ACC0, "m", 8, 2, 100, h[1]); /* exists: fails */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "exists already");

	/* the creating block announces the Magu, its members and all 8 configs */
	Muri__V1__BlockEffects *e = effects_at(&c, 1);
	TAP_EQ(e ? e->n_magus_created : 0, 1);
	if (e && e->n_magus_created)
		TAP_STREQ(e->magus_created[0], "m");
	TAP_EQ(e ? e->n_configs : 0, 8);
	TAP_EQ(e ? e->n_members : 0, 1);
	TAP_EQ(e ? e->n_outcomes : 0, 2);
	if (e && e->n_outcomes == 2) {
		TAP_EQ(e->outcomes[0]->state, MURI__V1__TX_STATE__TX_COMMITTED);
		TAP_EQ(e->outcomes[1]->state, MURI__V1__TX_STATE__TX_FAILED);
		TAP_EQ(e->outcomes[1]->index, 1);
		TAP_CHECK(memcmp(e->outcomes[1]->tx_hash.data, h[1], 32) == 0);
		TAP_CHECK(strstr(e->outcomes[1]->message, "exists already") != NULL);
	}
	for (uint32_t f = 0; f < 8; f++) {
		TAP_EQ(lg_store_fragment_get(c.s, "m", f, &before[f]), CM_OK);
		expect_config(&c, config_in(e, "m", f), &before[f]);
	}
	uint8_t root[32];
	lg_state_root(c.st, root);
	TAP_CHECK(e && e->state_root.len == 32 && memcmp(e->state_root.data, root, 32) == 0);
	effects_free(e);

	/* a replica of fragment 0 unstakes below min_stake: it leaves, exactly the
	 * fragments that moved are in the block's effects, with raised epochs */
	int leaving = key_index(before[0].replicas[0]);
	add_stake(&c, &b, leaving, 2500, 1, h[2]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[2]);
	e = effects_at(&c, 2);
	size_t moved = 0;
	for (uint32_t f = 0; f < 8; f++) {
		TAP_EQ(lg_store_fragment_get(c.s, "m", f, &after[f]), CM_OK);
		const Muri__V1__FragmentConfig *cfg = config_in(e, "m", f);
		if (after[f].epoch != before[f].epoch) {
			moved++;
			TAP_EQ(after[f].epoch, before[f].epoch + 1);
			expect_config(&c, cfg, &after[f]);
		} else {
			TAP_CHECK(cfg == NULL);
		}
	}
	TAP_CHECK(moved >= 1);
	TAP_EQ(e ? e->n_configs : 0, moved);
	TAP_EQ(e ? e->n_members : 0, 1);
	if (e && e->n_members) {
		TAP_STREQ(e->members[0]->magu, "m");
		for (size_t i = 0; i < e->members[0]->n_members; i++)
			TAP_CHECK(memcmp(e->members[0]->members[i].data, K[leaving].pk, 32) != 0);
	}
	effects_free(e);

	/* a failover raises the epoch: its block says so */
	lg_fragment f0 = after[0];
	for (uint32_t i = 0; i < f0.nreplicas / 2 + 1; i++) /* reports of a majority */
		add_failover(&c, &b, key_index(f0.replicas[i]), "m", 0, f0.epoch, 10, 1, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[3]);
	e = effects_at(&c, 3);
	TAP_EQ(lg_store_fragment_get(c.s, "m", 0, &after[0]), CM_OK);
	TAP_EQ(after[0].epoch, f0.epoch + 1);
	expect_config(&c, config_in(e, "m", 0), &after[0]);
	TAP_EQ(e ? e->n_configs : 0, 1);
	effects_free(e);

	/* an empty block has empty effects, and no effects exist above the head */
	advance_to(&c, 4);
	e = effects_at(&c, 4);
	TAP_EQ(e ? e->n_configs + e->n_outcomes + e->n_members : 1, 0);
	effects_free(e);
	Muri__V1__BlockEffects *none = NULL;
	TAP_EQ(lg_query_effects(c.s, 5, &none), CM_ERR_NOTFOUND);
	check_root_chain(&c);
	chain_close(&c);
}

/* A root of fragment `frag` of magu at size, root bytes all `fill`, signed by
 * key k (wrongly with bad_sig); buffers live in the caller's slot. */
typedef struct sroot {
	Muri__V1__SignedRoot r;
	uint8_t root[32], sig[64];
} sroot;

static void sign_root_in(sroot *s, int k, const char *magu, uint32_t frag, uint64_t size, uint8_t fill,
			 int bad_sig, const char *chain, uint64_t epoch)
{
	uint8_t d[32];
	muri__v1__signed_root__init(&s->r);
	s->r.chain_id = (char *)chain;
	s->r.epoch = epoch;
	memset(s->root, fill, 32);
	s->r.magu = (char *)magu;
	s->r.fragment = frag;
	s->r.size = size;
	s->r.root.data = s->root;
	s->r.root.len = 32;
	s->r.signer.data = K[k].pk;
	s->r.signer.len = 32;
	TAP_EQ(lg_root_digest(&s->r, d), CM_OK);
	cm_sign(&K[k], s->sig, d, 32);
	if (bad_sig)
		s->sig[3] ^= 1;
	s->r.signature.data = s->sig;
	s->r.signature.len = 64;
}

static void sign_root(sroot *s, int k, const char *magu, uint32_t frag, uint64_t size, uint8_t fill,
		      int bad_sig)
{
	sign_root_in(s, k, magu, frag, size, fill, bad_sig, CHAIN, 1);
}

static void add_double_root(tchain *c, tblock *b, int reporter, sroot *x, sroot *y, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__ReportDoubleRoot d = MURI__V1__REPORT_DOUBLE_ROOT__INIT;
	d.a = &x->r;
	d.b = &y->r;
	tx_base(&t, reporter, nonce_of(c, b, reporter), 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REPORT_DOUBLE_ROOT;
	t.report_double_root = &d;
	tb_add(b, &t, reporter, hash);
}

static void test_double_root(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[8][32];
	sroot a, bb, same, other_size, bad, other_signer, other_epoch, other_chain;
	const char *extra[] = {"param.double_root_slash = 2000", "param.double_root_reward_pct = 25",
			       "param.min_stake = 1000", NULL};
	uint64_t stake[4] = {3000, 3000, 3000, 3000};
	int reporter = K_ACC0;

	if (open_indexers(&c, "dr", 4, stake, &g, extra) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "d", 2, 2, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_fragment f;
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f), CM_OK);
	int liar = key_index(f.replicas[0]);

	sign_root(&a, liar, "d", 0, 40, 0xaa, 0);
	sign_root(&bb, liar, "d", 0, 40, 0xbb, 0);
	sign_root(&same, liar, "d", 0, 40, 0xaa, 0);
	sign_root(&other_size, liar, "d", 0, 41, 0xbb, 0);
	sign_root(&bad, liar, "d", 0, 40, 0xbb, 1);
	sign_root(&other_signer, liar == 0 ? 1 : 0, "d", 0, 40, 0xbb, 0);
	/* an honest replica truncated after a failover: another root at 40 in epoch 2 */
	sign_root_in(&other_epoch, liar, "d", 0, 40, 0xbb, 0, CHAIN, 2);
	sign_root_in(&other_chain, liar, "d", 0, 40, 0xbb, 0, "another-chain", 1);

	/* bad evidence fails, naming what is wrong, and slashes nobody */
	lg_account l0 = account(&c, liar);
	add_double_root(&c, &b, reporter, &a, &same, h[0]);
	add_double_root(&c, &b, reporter, &a, &other_size, h[1]);
	add_double_root(&c, &b, reporter, &a, &bad, h[2]);
	add_double_root(&c, &b, reporter, &a, &other_signer, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "report_double_root.b.root: equals a.root, no conflict");
	TAP_FAILED(&c, h[1], "report_double_root.b: not the same (magu, fragment, size) as a");
	TAP_FAILED(&c, h[2], "report_double_root.b.signature: does not verify for the signer");
	TAP_FAILED(&c, h[3], "report_double_root.b.signer: differs from a.signer");
	add_double_root(&c, &b, reporter, &a, &other_epoch, h[5]);
	add_double_root(&c, &b, reporter, &a, &other_chain, h[6]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[5], "report_double_root.b.epoch: 2 differs from a.epoch 1 (roots of different epochs may differ)");
	TAP_FAILED(&c, h[6], "report_double_root.b.chain_id: \"another-chain\" is not this chain");
	TAP_EQ(account(&c, liar).staked, l0.staked);

	/* good evidence: slashed 2000 and jailed, the reporter paid 25% */
	uint64_t rb = balance(&c, reporter);
	add_double_root(&c, &b, reporter, &a, &bb, h[4]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[4]);
	TAP_EQ(account(&c, liar).staked, l0.staked - 2000);
	TAP_EQ(balance(&c, reporter), rb - 1 + 500);
	lg_indexer ix;
	TAP_EQ(lg_store_indexer_get(c.s, K[liar].pk, &ix), CM_OK);
	TAP_CHECK(ix.jailed && !ix.active);
	Muri__V1__BlockEffects *e = effects_at(&c, lg_state_height(c.st));
	TAP_EQ(e ? e->n_penalties : 0, 1);
	if (e && e->n_penalties) {
		TAP_CHECK(memcmp(e->penalties[0]->indexer.data, K[liar].pk, 32) == 0);
		TAP_EQ(e->penalties[0]->slashed, 2000);
		TAP_CHECK(e->penalties[0]->jailed);
		TAP_CHECK(strstr(e->penalties[0]->reason, "double root") != NULL);
	}
	TAP_CHECK(e && e->n_configs >= 1); /* the jailed replica's fragments moved */
	effects_free(e);

	/* once per (signer, magu, fragment, size): the same or swapped pair fails */
	add_double_root(&c, &b, reporter, &bb, &a, h[5]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[5], "was punished already for fragment 0 of \"d\" at size 40");
	TAP_EQ(account(&c, liar).staked, l0.staked - 2000);
	check_root_chain(&c);
	chain_close(&c);
}

/* The roots a block commits, as its effects say (indexers raise their
 * truncation floor from them). */
static size_t roots_at(tchain *c, const char *magu, uint64_t *size, uint8_t root[32])
{
	Muri__V1__BlockEffects *e = effects_at(c, lg_state_height(c->st));
	size_t n = 0;
	for (size_t i = 0; e && i < e->n_roots; i++)
		if (strcmp(e->roots[i]->magu, magu) == 0) {
			n++;
			*size = e->roots[i]->size;
			memcpy(root, e->roots[i]->root.data, 32);
		}
	effects_free(e);
	return n;
}

/* Two different roots signed at one size by different replicas never both
 * commit: with four replicas two against two commit neither; with three the
 * first to reach a majority commits and the other is refused from then on,
 * at that size and above (no consistency proof from the committed root), as
 * is any root below the committed size. */
static void test_conflicting_roots(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[6][32], rx[32], ry[32], got[32];
	uint64_t size = 0;
	lg_fragment f;
	cm_merkle *x = make_log(10, "x"), *y = make_log(10, "y");

	if (open_indexers(&c, "conflict", 5, NULL, &g, NULL) != CM_OK)
		return;
	cm_merkle_root(x, 8, rx);
	cm_merkle_root(y, 8, ry);
	add_create(&c, &b, K_ACC0, "q4", 1, 4, 100, NULL);
	add_create(&c, &b, K_ACC0, "q3", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);

	TAP_EQ(lg_store_fragment_get(c.s, "q4", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 4);
	int r4[4];
	for (int i = 0; i < 4; i++)
		r4[i] = key_index(f.replicas[i]);
	add_commit_root(&c, &b, r4[0], "q4", 0, x, 0, 8, h[0]);
	add_commit_root(&c, &b, r4[1], "q4", 0, x, 0, 8, h[1]);
	add_commit_root(&c, &b, r4[2], "q4", 0, y, 0, 8, h[2]);
	add_commit_root(&c, &b, r4[3], "q4", 0, y, 0, 8, h[3]);
	add_commit_root(&c, &b, r4[2], "q4", 0, x, 0, 8, h[4]); /* changes its mind: refused */
	TAP_EQ(commit(&c, &b), CM_OK);
	for (int i = 0; i < 4; i++)
		TAP_COMMITTED(&c, h[i]);
	TAP_FAILED(&c, h[4], "signed a different root at size 8 already");
	TAP_EQ(lg_store_fragment_get(c.s, "q4", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, 0); /* two of four is no majority, for either root */
	TAP_EQ(roots_at(&c, "q4", &size, got), 0);

	TAP_EQ(lg_store_fragment_get(c.s, "q3", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 3);
	int A = key_index(f.replicas[0]), B = key_index(f.replicas[1]), C = key_index(f.replicas[2]);
	add_commit_root(&c, &b, A, "q3", 0, x, 0, 8, h[0]);
	add_commit_root(&c, &b, B, "q3", 0, y, 0, 8, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(lg_store_fragment_get(c.s, "q3", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, 0);
	TAP_EQ(roots_at(&c, "q3", &size, got), 0);
	add_commit_root(&c, &b, C, "q3", 0, y, 0, 8, h[0]); /* y reaches two of three */
	add_commit_root(&c, &b, C, "q3", 0, x, 0, 8, h[1]); /* x cannot follow */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "commit_root.root.root: conflicts with the committed root at size 8");
	TAP_EQ(lg_store_fragment_get(c.s, "q3", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, 8);
	TAP_CHECK(memcmp(f.committed_root, ry, 32) == 0);
	TAP_EQ(f.nsigners, 2);
	TAP_EQ(roots_at(&c, "q3", &size, got), 1);
	TAP_EQ(size, 8);
	TAP_CHECK(memcmp(got, ry, 32) == 0);

	/* x's signers never get it committed: not at 8, not extended past 8,
	 * and nothing below the committed size */
	add_commit_root(&c, &b, B, "q3", 0, x, 0, 8, h[0]);
	add_commit_root(&c, &b, A, "q3", 0, x, 8, 10, h[1]);
	add_commit_root(&c, &b, B, "q3", 0, x, 8, 10, h[2]);
	add_commit_root(&c, &b, A, "q3", 0, y, 0, 5, h[3]);
	add_commit_root(&c, &b, C, "q3", 0, y, 0, 7, h[4]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root.root.root: conflicts with the committed root at size 8");
	TAP_FAILED(&c, h[1], "commit_root.consistency_proof: does not prove that size 10 extends the committed root at size 8");
	TAP_FAILED(&c, h[2], "commit_root.consistency_proof");
	TAP_FAILED(&c, h[3], "commit_root.root.size: 5 is below the committed size 8");
	TAP_FAILED(&c, h[4], "commit_root.root.size: 7 is below the committed size 8");
	TAP_EQ(lg_store_fragment_get(c.s, "q3", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, 8);
	TAP_CHECK(memcmp(f.committed_root, ry, 32) == 0);
	TAP_EQ(roots_at(&c, "q3", &size, got), 0);

	/* y grows: a majority at 10 with proofs from 8 commits, and says so once */
	add_commit_root(&c, &b, A, "q3", 0, y, 8, 10, h[0]);
	add_commit_root(&c, &b, C, "q3", 0, y, 8, 10, h[1]);
	add_commit_root(&c, &b, B, "q3", 0, y, 8, 10, h[2]); /* after the commit: committed already */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_FAILED(&c, h[2], "commit_root: the root at size 10 is committed already");
	TAP_EQ(lg_store_fragment_get(c.s, "q3", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, 10);
	TAP_EQ(roots_at(&c, "q3", &size, got), 1);
	TAP_EQ(size, 10);
	cm_merkle_root(y, 10, ry);
	TAP_CHECK(memcmp(got, ry, 32) == 0);
	check_root_chain(&c);
	cm_merkle_free(x);
	cm_merkle_free(y);
	chain_close(&c);
}

static void test_roots_and_challenges_in_effects(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	const char *extra[] = {"param.challenge_interval = 1", "param.challenges_per_round = 1",
			       "param.challenge_deadline = 2", "param.slash_amount = 100", NULL};
	uint64_t stake[2] = {5000, 5000};
	cm_merkle *log = make_log(16, "fx");

	if (open_indexers(&c, "fxr", 2, stake, &g, extra) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "r", 1, 1, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_fragment f;
	TAP_EQ(lg_store_fragment_get(c.s, "r", 0, &f), CM_OK);
	int rep = key_index(f.replicas[0]);
	add_commit_root(&c, &b, rep, "r", 0, log, 0, 16, NULL);
	TAP_EQ(commit(&c, &b), CM_OK); /* height 2: committed, and challenged at end-block */
	Muri__V1__BlockEffects *e = effects_at(&c, 2);
	TAP_EQ(e ? e->n_roots : 0, 1);
	if (e && e->n_roots) {
		TAP_STREQ(e->roots[0]->magu, "r");
		TAP_EQ(e->roots[0]->size, 16);
		TAP_CHECK(memcmp(e->roots[0]->signer.data, K[rep].pk, 32) == 0);
		TAP_EQ(lg_root_verify(e->roots[0]), CM_OK);
	}
	TAP_EQ(e ? e->n_challenges : 0, 1);
	uint64_t id = e && e->n_challenges ? e->challenges[0]->id : 0;
	if (e && e->n_challenges) {
		TAP_EQ(e->challenges[0]->state, MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN);
		TAP_CHECK(memcmp(e->challenges[0]->indexer.data, K[rep].pk, 32) == 0);
	}
	effects_free(e);
	/* unanswered past its deadline (height 4): closed, the indexer slashed */
	advance_to(&c, 4);
	e = effects_at(&c, 4);
	int closed = 0;
	for (size_t i = 0; e && i < e->n_challenges_closed; i++)
		if (e->challenges_closed[i]->id == id) {
			closed = 1;
			TAP_EQ(e->challenges_closed[i]->state, MURI__V1__CHALLENGE_STATE__CHALLENGE_FAILED);
		}
	TAP_CHECK(closed);
	TAP_CHECK(e && e->n_penalties >= 1);
	if (e && e->n_penalties) {
		TAP_EQ(e->penalties[0]->slashed, 100);
		TAP_CHECK(strstr(e->penalties[0]->reason, "unanswered") != NULL);
	}
	effects_free(e);

	/* the challenges query pages newest first */
	Muri__V1__ChallengesResponse *cr = NULL;
	uint64_t last = UINT64_MAX;
	size_t total = 0, pages = 0;
	uint8_t tok[8];
	size_t tlen = 0;
	do {
		TAP_EQ(lg_query_challenges_page(c.s, K[rep].pk, 0, 1, tok, tlen, &cr), CM_OK);
		if (!cr)
			break;
		TAP_CHECK(cr->at && cr->at->height == lg_state_height(c.st));
		for (size_t i = 0; i < cr->n_challenges; i++) {
			TAP_CHECK(cr->challenges[i]->id < last);
			last = cr->challenges[i]->id;
		}
		total += cr->n_challenges;
		pages++;
		tlen = cr->next_page_token.len;
		if (tlen == 8)
			memcpy(tok, cr->next_page_token.data, 8);
		protobuf_c_message_free_unpacked(&cr->base, NULL);
		cr = NULL;
	} while (tlen && pages < 10);
	TAP_EQ(total, 3); /* issued at heights 2, 3 and 4 */
	TAP_EQ(pages, 3);
	TAP_EQ(lg_query_challenges_page(c.s, K[rep].pk, 0, 1001, NULL, 0, &cr), CM_ERR_RANGE);
	TAP_EQ(lg_query_challenges_page(c.s, K[rep].pk, 0, 1, tok, 5, &cr), CM_ERR_INVALID);
	cm_merkle_free(log);
	check_root_chain(&c);
	chain_close(&c);
}

static void test_roots_by_height(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t roots[12][32], r[32];

	if (open_indexers(&c, "rah", 2, NULL, &g, NULL) != CM_OK)
		return;
	lg_state_root(c.st, roots[0]);
	for (uint64_t h = 1; h < 12; h++) {
		add_transfer(&c, &b, K_ACC0, K_ACC0 + 1, h, 1, NULL);
		TAP_EQ(commit(&c, &b), CM_OK);
		lg_state_root(c.st, roots[h]);
	}
	for (uint64_t h = 0; h < 12; h++) {
		TAP_EQ(lg_store_root_at(c.s, h, r), CM_OK);
		TAP_CHECK(memcmp(r, roots[h], 32) == 0);
	}
	TAP_EQ(lg_store_root_at(c.s, 12, r), CM_ERR_NOTFOUND);
	/* survives a reopen, and reads the same through a read-only connection */
	TAP_EQ(chain_reopen(&c), CM_OK);
	lg_store *ro = NULL;
	char err[200];
	TAP_EQ(lg_store_open(&ro, c.path, LG_STORE_READONLY, err, sizeof(err)), CM_OK);
	for (uint64_t h = 0; ro && h < 12; h++) {
		TAP_EQ(lg_store_root_at(ro, h, r), CM_OK);
		TAP_CHECK(memcmp(r, roots[h], 32) == 0);
	}
	lg_store_close(ro);
	check_root_chain(&c);
	chain_close(&c);
}

static void test_snapshot_reads(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	lg_store *ro = NULL;
	char err[200];
	uint8_t root[32], r0[32];
	uint64_t h0;

	if (open_indexers(&c, "snap", 2, NULL, &g, NULL) != CM_OK)
		return;
	uint8_t th[32];
	add_transfer(&c, &b, K_ACC0, K_ACC0 + 1, 10, 1, th);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_open(&ro, c.path, LG_STORE_READONLY, err, sizeof(err)), CM_OK);
	if (!ro)
		return;

	/* every query says the height and root it read at */
	Muri__V1__Account *acc = NULL;
	TAP_EQ(lg_query_account(ro, K[K_ACC0 + 1].pk, &acc), CM_OK);
	lg_state_root(c.st, root);
	TAP_CHECK(acc && acc->at && acc->at->height == 1 && acc->at->state_root.len == 32 &&
		  memcmp(acc->at->state_root.data, root, 32) == 0);
	TAP_EQ(acc ? acc->balance : 0, 10);
	if (acc)
		protobuf_c_message_free_unpacked(&acc->base, NULL);
	Muri__V1__Params *pm = NULL;
	TAP_EQ(lg_query_params(ro, &pm), CM_OK);
	TAP_CHECK(pm && pm->at && pm->at->height == 1);
	if (pm)
		protobuf_c_message_free_unpacked(&pm->base, NULL);
	Muri__V1__IndexerInfo *ii = NULL;
	TAP_EQ(lg_query_indexer(ro, K[0].pk, &ii), CM_OK);
	TAP_CHECK(ii && ii->at && ii->at->height == 1);
	if (ii)
		protobuf_c_message_free_unpacked(&ii->base, NULL);
	Muri__V1__TxStatus *ts = NULL;
	TAP_EQ(lg_query_tx(ro, th, &ts), CM_OK);
	TAP_CHECK(ts && ts->at && ts->at->height == 1 && ts->height == 1);
	if (ts)
		protobuf_c_message_free_unpacked(&ts->base, NULL);
	Muri__V1__ReadAt *ra = NULL;
	TAP_EQ(lg_query_read_at(ro, &ra), CM_OK);
	TAP_CHECK(ra && ra->height == 1 && memcmp(ra->state_root.data, root, 32) == 0);
	if (ra)
		protobuf_c_message_free_unpacked(&ra->base, NULL);

	/* inside a snapshot, a block committed meanwhile is not seen */
	TAP_EQ(lg_store_read_begin(ro), CM_OK);
	TAP_EQ(lg_store_head(ro, &h0, r0), CM_OK);
	lg_account before;
	TAP_EQ(lg_store_account_get(ro, K[K_ACC0 + 1].pk, &before), CM_OK);
	add_transfer(&c, &b, K_ACC0, K_ACC0 + 1, 5, 1, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	uint64_t h1;
	uint8_t r1[32];
	lg_account mid;
	TAP_EQ(lg_store_head(ro, &h1, r1), CM_OK);
	TAP_EQ(lg_store_account_get(ro, K[K_ACC0 + 1].pk, &mid), CM_OK);
	TAP_EQ(h1, h0);
	TAP_CHECK(memcmp(r1, r0, 32) == 0);
	TAP_EQ(mid.balance, before.balance);
	/* a query nested in the snapshot reads the same snapshot */
	TAP_EQ(lg_query_account(ro, K[K_ACC0 + 1].pk, &acc), CM_OK);
	TAP_CHECK(acc && acc->at && acc->at->height == h0 && acc->balance == before.balance);
	if (acc)
		protobuf_c_message_free_unpacked(&acc->base, NULL);
	lg_store_read_end(ro);
	TAP_EQ(lg_store_head(ro, &h1, r1), CM_OK);
	TAP_EQ(h1, h0 + 1);
	TAP_EQ(lg_store_account_get(ro, K[K_ACC0 + 1].pk, &mid), CM_OK);
	TAP_EQ(mid.balance, before.balance + 5);
	lg_store_close(ro);
	chain_close(&c);
}

static void test_magu_pages(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	const char *names[5] = {"e", "a", "d", "b", "c"};

	if (open_indexers(&c, "pages", 3, NULL, &g, NULL) != CM_OK)
		return;
	for (int i = 0; i < 5; i++)
		add_create(&c, &b, K_ACC0, names[i], 2, 1, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	char got[8] = "";
	size_t n = 0, pages = 0;
	uint8_t tok[LG_NAME_MAX];
	size_t tlen = 0;
	Muri__V1__ListMagusResponse *r = NULL;
	do {
		TAP_EQ(lg_query_magus_page(c.s, 2, tok, tlen, &r), CM_OK);
		if (!r)
			break;
		TAP_CHECK(r->n_magus <= 2);
		TAP_CHECK(r->at && r->at->height == 1);
		for (size_t i = 0; i < r->n_magus && n < 7; i++)
			got[n++] = r->magus[i]->name[0];
		tlen = r->next_page_token.len;
		if (tlen && tlen <= sizeof(tok))
			memcpy(tok, r->next_page_token.data, tlen);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
		pages++;
	} while (tlen && pages < 10);
	got[n] = '\0';
	TAP_STREQ(got, "abcde");
	TAP_EQ(pages, 3);
	TAP_EQ(lg_query_magus_page(c.s, 101, NULL, 0, &r), CM_ERR_RANGE);
	TAP_EQ(lg_query_magus_page(c.s, 2, (const uint8_t *)"a b", 3, &r), CM_ERR_INVALID);
	/* the unpaged call is bounded too: the default page */
	TAP_EQ(lg_query_magus(c.s, 0, &r), CM_OK);
	TAP_EQ(r ? r->n_magus : 0, 5);
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
	Muri__V1__MaguInfo *mi = NULL;
	TAP_EQ(lg_query_magu(c.s, "b", &mi), CM_OK);
	TAP_CHECK(mi && mi->at && mi->at->height == 1 && mi->n_configs == 2);
	if (mi)
		protobuf_c_message_free_unpacked(&mi->base, NULL);
	/* a fragment on its own */
	Muri__V1__FragmentInfo *fi = NULL;
	lg_fragment f;
	TAP_EQ(lg_query_fragment(c.s, "c", 1, &fi), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "c", 1, &f), CM_OK);
	if (fi) {
		expect_config(&c, fi->config, &f);
		TAP_EQ(fi->committed_size, 0);
		TAP_EQ(fi->committed_root.len, 0);
		TAP_CHECK(fi->at && fi->at->height == 1);
		protobuf_c_message_free_unpacked(&fi->base, NULL);
	}
	TAP_EQ(lg_query_fragment(c.s, "c", 2, &fi), CM_ERR_NOTFOUND);
	chain_close(&c);
}

/* Pages stop at LG_QUERY_MAGUS_CONFIGS_MAX fragment configurations. */
static void test_magu_page_budget(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	char name[8];
	size_t counts[4] = {0}, pages = 0, tlen = 0;
	uint8_t tok[LG_NAME_MAX];
	Muri__V1__ListMagusResponse *r = NULL;

	if (open_indexers(&c, "budget", 2, NULL, &g, NULL) != CM_OK)
		return;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		add_create(&c, &b, K_ACC0, name, LG_FRAGMENTS_MAX, 1, 100, NULL);
	}
	TAP_EQ(commit(&c, &b), CM_OK);
	do {
		TAP_EQ(lg_query_magus_page(c.s, 100, tok, tlen, &r), CM_OK);
		if (!r)
			break;
		size_t configs = 0;
		for (size_t i = 0; i < r->n_magus; i++)
			configs += r->magus[i]->n_configs;
		TAP_CHECK(configs <= LG_QUERY_MAGUS_CONFIGS_MAX);
		counts[pages] = r->n_magus;
		tlen = r->next_page_token.len;
		if (tlen && tlen <= sizeof(tok))
			memcpy(tok, r->next_page_token.data, tlen);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
		pages++;
	} while (tlen && pages < 4);
	TAP_EQ(pages, 2);
	TAP_EQ(counts[0], 4);
	TAP_EQ(counts[1], 1);
	chain_close(&c);
}

/* A Noop from k signed with a zeroed signature. */
static Muri__V1__SignedTransaction *unsigned_noop(int k, uint64_t nonce)
{
	Muri__V1__Transaction t;
	Muri__V1__Noop n = MURI__V1__NOOP__INIT;
	Muri__V1__SignedTransaction s = MURI__V1__SIGNED_TRANSACTION__INIT, *f;
	tx_base(&t, k, nonce, 0);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_NOOP;
	t.noop = &n;
	TAP_EQ(lg_tx_sign(&t, &K[k], &s, NULL), CM_OK);
	f = forged_copy(&s);
	lg_tx_signed_clear(&s);
	return f;
}

static void test_unsigned_noops(void)
{
	for (int allow = 0; allow < 2; allow++) {
		tchain c;
		tblock b = {0};
		gtext g;
		char p[48];
		uint8_t h[2][32];
		snprintf(p, sizeof(p), "param.unsigned_noops = %d", allow);
		const char *extra[] = {"param.allow_noop = 1", p, NULL};
		if (open_indexers(&c, allow ? "noop1" : "noop0", 1, NULL, &g, extra) != CM_OK)
			return;
		Muri__V1__SignedTransaction *n = unsigned_noop(K_ACC0, 0);
		lg_tx_hash(n->body.data, n->body.len, h[0]);
		tb_push(&b, n, K_ACC0);
		/* a forged transfer never passes, whatever the chain allows */
		uint8_t th[32];
		add_transfer(&c, &b, K_ACC0, K_ACC0 + 1, 5, 1, th);
		Muri__V1__SignedTransaction *ft = forged_copy(b.tx[b.n - 1]);
		lg_tx_signed_clear(b.tx[b.n - 1]);
		free(b.tx[b.n - 1]);
		b.tx[b.n - 1] = ft;
		memcpy(h[1], th, 32);
		TAP_EQ(commit(&c, &b), CM_OK);
		if (allow)
			TAP_COMMITTED(&c, h[0]);
		else
			TAP_FAILED(&c, h[0], "signature: does not verify");
		TAP_FAILED(&c, h[1], "signature: does not verify");
		TAP_EQ(lg_state_param(c.st, "unsigned_noops"), allow);
		chain_close(&c);
	}
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_effects_membership);
	TAP_RUN(test_double_root);
	TAP_RUN(test_roots_and_challenges_in_effects);
	TAP_RUN(test_conflicting_roots);
	TAP_RUN(test_roots_by_height);
	TAP_RUN(test_snapshot_reads);
	TAP_RUN(test_magu_pages);
	TAP_RUN(test_magu_page_budget);
	TAP_RUN(test_unsigned_noops);
	return st_finish();
}
