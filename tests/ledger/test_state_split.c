/* Tests of the state machine's fragment splits (lg_st_split.c): the owner's
 * SplitFragment and the automatic split at the governed split_size, the
 * sealing epoch frozen by its primary's root, the children placed with
 * their cells and the parent's frozen log as their source, a child's first
 * root (the empty one included), the parent's retirement, failover while
 * sealing, the refusals (naming the field), what queries and block effects
 * show, and the same state on two chains that apply the same blocks. */
#include "st_chain.h"

static void add_split(tchain *c, tblock *b, int k, const char *magu, uint32_t fragment, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__SplitFragment s = MURI__V1__SPLIT_FRAGMENT__INIT;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	s.magu = (char *)magu;
	s.fragment = fragment;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SPLIT_FRAGMENT;
	t.split_fragment = &s;
	tb_add(b, &t, k, hash);
}

/* A CommitRoot of the empty log at size 0 (root: the empty tree's, or a
 * wrong one). */
static void add_empty_root(tchain *c, tblock *b, int signer, const char *magu, uint32_t frag, int wrong,
			   uint8_t *hash)
{
	cm_merkle *log = make_log(wrong ? 1 : 0, "x");
	if (!wrong) {
		add_commit_root(c, b, signer, magu, frag, log, 0, 0, hash);
	} else {
		/* size 1's root presented as size 0's: sign by hand */
		Muri__V1__Transaction t;
		Muri__V1__CommitRoot cr = MURI__V1__COMMIT_ROOT__INIT;
		Muri__V1__SignedRoot r = MURI__V1__SIGNED_ROOT__INIT;
		uint8_t root[32], d[32], sig[64];
		lg_fragment fr;
		cm_merkle_root(log, 1, root);
		r.magu = (char *)magu;
		r.fragment = frag;
		r.root.data = root;
		r.root.len = 32;
		r.signer.data = K[signer].pk;
		r.signer.len = 32;
		r.chain_id = (char *)CHAIN;
		r.epoch = lg_store_fragment_get(c->s, magu, frag, &fr) == CM_OK ? fr.epoch : 1;
		TAP_EQ(lg_root_digest(&r, d), CM_OK);
		cm_sign(&K[signer], sig, d, 32);
		r.signature.data = sig;
		r.signature.len = 64;
		cr.root = &r;
		tx_base(&t, signer, nonce_of(c, b, signer), 1);
		t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_COMMIT_ROOT;
		t.commit_root = &cr;
		tb_add(b, &t, signer, hash);
	}
	cm_merkle_free(log);
}

/* Applies b to both chains (the second may be NULL), then empties it. */
static int commit2(tchain *a, tchain *z, tblock *b)
{
	int rc = tb_apply(a, b);
	if (rc == CM_OK && z)
		rc = tb_apply(z, b);
	tb_clear(b);
	return rc;
}

static lg_cell cell_of(tchain *c, const char *magu, uint32_t f)
{
	lg_cell cl;
	memset(&cl, 0, sizeof(cl));
	int rc = lg_store_cell_get(c->s, magu, f, &cl);
	TAP_CHECK(rc == CM_OK || rc == CM_ERR_NOTFOUND);
	return cl;
}

static const Muri__V1__FragmentConfig *config_in(const Muri__V1__BlockEffects *e, uint32_t f)
{
	for (size_t i = 0; e && i < e->n_configs; i++)
		if (e->configs[i]->fragment == f)
			return e->configs[i];
	return NULL;
}

static void test_owner_split(void)
{
	tchain c, z;
	tblock b = {0};
	gtext g;
	uint8_t h[6][32], r4[32], d1[32], d2[32];
	lg_fragment f, k2, k3;
	cm_merkle *log = make_log(8, "p"), *klog = make_log(3, "k");

	if (open_indexers(&c, "split1", 6, NULL, &g, NULL) != CM_OK || chain_open(&z, "split1z", &g) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "s", 2, 3, 100, NULL);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "s", 1, &f), CM_OK);
	int P = key_index(f.primary), B = key_index(f.replicas[1]), C = key_index(f.replicas[2]);
	TAP_CHECK(P == key_index(f.replicas[0]));
	add_commit_root(&c, &b, P, "s", 1, log, 0, 4, NULL);
	add_commit_root(&c, &b, B, "s", 1, log, 0, 4, NULL);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);

	/* refusals, then the owner's split */
	add_split(&c, &b, 5, "s", 1, h[0]); /* an indexer's account, not the owner */
	add_split(&c, &b, K_ACC0, "s", 7, h[1]);
	add_split(&c, &b, K_ACC0, "nope", 1, h[2]);
	add_split(&c, &b, K_ACC0, "s", 1, h[3]);
	add_split(&c, &b, K_ACC0, "s", 1, h[4]);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_FAILED(&c, h[0], "split_fragment: only the owner of \"s\" may split its fragments");
	TAP_FAILED(&c, h[1], "split_fragment.fragment: no fragment 7 in Magu \"s\"");
	TAP_FAILED(&c, h[2], "split_fragment.magu: no Magu \"nope\"");
	TAP_COMMITTED(&c, h[3]);
	TAP_FAILED(&c, h[4], "split_fragment.fragment: fragment 1 of \"s\" is sealing already");
	TAP_EQ(lg_store_fragment_get(c.s, "s", 1, &f), CM_OK);
	TAP_EQ(f.epoch, 2);
	TAP_EQ(f.committed_size, 4);
	lg_cell cl = cell_of(&c, "s", 1);
	TAP_EQ(cl.state, LG_CELL_SEALING);
	TAP_EQ(cl.nchildren, 2);
	TAP_EQ(cl.children[0], 2);
	TAP_EQ(cl.children[1], 3);
	TAP_EQ(lg_store_fragment_get(c.s, "s", 2, &k2), CM_ERR_NOTFOUND); /* reserved, not created */
	Muri__V1__BlockEffects *e = NULL;
	TAP_EQ(lg_query_effects(c.s, lg_state_height(c.st), &e), CM_OK);
	const Muri__V1__FragmentConfig *fc = config_in(e, 1);
	TAP_CHECK(fc && fc->phase == MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SEALING && fc->epoch == 2 &&
		  fc->n_children == 2 && !fc->source);
	protobuf_c_message_free_unpacked(&e->base, NULL);

	/* a backup's vote of the sealing epoch, then the primary's: frozen at 8 */
	add_commit_root(&c, &b, B, "s", 1, log, 4, 8, h[0]);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_EQ(cell_of(&c, "s", 1).state, LG_CELL_SEALING);
	add_commit_root(&c, &b, P, "s", 1, log, 4, 8, h[1]);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(cell_of(&c, "s", 1).state, LG_CELL_SPLIT);
	TAP_EQ(lg_store_fragment_get(c.s, "s", 2, &k2), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "s", 3, &k3), CM_OK);
	TAP_EQ(k2.epoch, 1);
	TAP_EQ(k2.nreplicas, 3);
	TAP_EQ(k3.nreplicas, 3);
	TAP_CHECK(memcmp(k2.primary, k2.replicas[0], 32) == 0);
	lg_cell c2 = cell_of(&c, "s", 2), c3 = cell_of(&c, "s", 3);
	cm_merkle_root(log, 8, r4);
	TAP_CHECK(c2.has_parent && c2.parent == 1 && c2.src_size == 8 && memcmp(c2.src_root, r4, 32) == 0);
	TAP_EQ(c2.base, 1);
	TAP_EQ(c2.depth, 1);
	TAP_EQ(c2.path, 0);
	TAP_EQ(c3.base, 1);
	TAP_EQ(c3.depth, 1);
	TAP_EQ(c3.path, 1);
	TAP_EQ(lg_query_effects(c.s, lg_state_height(c.st), &e), CM_OK);
	fc = config_in(e, 3);
	TAP_CHECK(fc && fc->cell_base == 1 && fc->cell_depth == 1 && fc->cell_path == 1 && fc->source &&
		  fc->source->fragment == 1 && fc->source->size == 8 && fc->n_replicas == 3);
	fc = config_in(e, 1);
	TAP_CHECK(fc && fc->phase == MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SPLIT);
	TAP_EQ(e->n_roots, 1);
	protobuf_c_message_free_unpacked(&e->base, NULL);

	/* the frozen parent takes no root */
	add_commit_root(&c, &b, C, "s", 1, log, 8, 8, h[0]);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_FAILED(&c, h[0], "fragment 1 of \"s\" is split into 2 and 3; its log is frozen at size 8");

	/* child 2: an empty half commits the empty root (a wrong one fails) */
	int A2 = key_index(k2.replicas[0]), B2 = key_index(k2.replicas[1]);
	add_empty_root(&c, &b, A2, "s", 2, 1, h[0]);
	add_empty_root(&c, &b, A2, "s", 2, 0, h[1]);
	lg_fragment f0;
	TAP_EQ(lg_store_fragment_get(c.s, "s", 0, &f0), CM_OK);
	add_empty_root(&c, &b, key_index(f0.primary), "s", 0, 0, h[3]); /* size 0 elsewhere: refused */
	add_empty_root(&c, &b, B2, "s", 2, 0, h[2]);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root.root.root: not the empty tree's root at size 0");
	TAP_COMMITTED(&c, h[1]);
	TAP_COMMITTED(&c, h[2]);
	TAP_CHECK(cell_of(&c, "s", 2).derived);
	TAP_EQ(lg_query_effects(c.s, lg_state_height(c.st), &e), CM_OK);
	fc = config_in(e, 2); /* followers learn that the half takes writes */
	TAP_CHECK(fc && fc->live && fc->source && fc->source->size == 8);
	TAP_CHECK(!config_in(e, 3));
	protobuf_c_message_free_unpacked(&e->base, NULL);
	TAP_FAILED(&c, h[3], "commit_root.root.size: 0 is accepted only as the first root of a split's child");
	TAP_EQ(cell_of(&c, "s", 1).state, LG_CELL_SPLIT); /* its sibling is not yet */

	/* child 3 commits its first records: the parent retires */
	int A3 = key_index(k3.replicas[0]), B3 = key_index(k3.replicas[1]);
	add_commit_root(&c, &b, A3, "s", 3, klog, 0, 3, h[0]);
	add_commit_root(&c, &b, B3, "s", 3, klog, 0, 3, h[1]);
	TAP_EQ(commit2(&c, &z, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(cell_of(&c, "s", 1).state, LG_CELL_RETIRED);
	uint64_t n = 0;
	TAP_EQ(lg_store_fragment_committed_count(c.s, &n), CM_OK);
	TAP_EQ(n, 1); /* fragment 3; the retired parent is no longer challenged, 2 is empty, 0 uncommitted */

	Muri__V1__MaguInfo *mi;
	TAP_EQ(lg_query_magu(c.s, "s", &mi), CM_OK);
	TAP_EQ(mi->fragments, 2);   /* the base count stays */
	TAP_EQ(mi->n_configs, 4);
	TAP_EQ(mi->configs[0]->phase, MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SERVING);
	TAP_EQ(mi->configs[0]->cell_depth, 0);
	TAP_EQ(mi->configs[1]->phase, MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_RETIRED);
	TAP_EQ(mi->configs[2]->cell_path, 0);
	TAP_EQ(mi->configs[3]->cell_path, 1);
	protobuf_c_message_free_unpacked(&mi->base, NULL);

	lg_state_root(c.st, d1);
	lg_state_root(z.st, d2);
	TAP_CHECK(memcmp(d1, d2, 32) == 0);
	digest(&c, d1);
	digest(&z, d2);
	TAP_CHECK(memcmp(d1, d2, 32) == 0);
	TAP_EQ(chain_reopen(&c), CM_OK);
	TAP_EQ(cell_of(&c, "s", 1).state, LG_CELL_RETIRED);
	TAP_EQ(cell_of(&c, "s", 3).path, 1);
	cm_merkle_free(log);
	cm_merkle_free(klog);
	chain_close(&c);
	chain_close(&z);
}

/* split_size reached by a committed root seals the fragment; a failover
 * of the sealing epoch keeps the seal, and its new primary's vote for the
 * committed root freezes it. A child that has not committed a root cannot
 * split yet; with split_size 0 nothing splits by itself. */
static void test_auto_split(void)
{
	tchain c, off;
	tblock b = {0};
	gtext g, g0;
	uint8_t h[4][32];
	lg_fragment f;
	cm_merkle *log = make_log(12, "a");
	const char *ps[] = {"param.split_size = 8", NULL}, *ps0[] = {"param.split_size = 0", NULL};

	if (open_indexers(&c, "auto", 5, NULL, &g, ps) != CM_OK ||
	    open_indexers(&off, "auto0", 5, NULL, &g0, ps0) != CM_OK)
		return;
	Muri__V1__Params *pr;
	TAP_EQ(lg_query_params(c.s, &pr), CM_OK);
	int found = 0;
	for (size_t i = 0; i < pr->n_values; i++)
		if (!strcmp(pr->values[i]->key, "split_size"))
			found = pr->values[i]->value == 8;
	TAP_CHECK(found);
	protobuf_c_message_free_unpacked(&pr->base, NULL);

	add_create(&c, &b, K_ACC0, "a", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	add_create(&off, &b, K_ACC0, "a", 1, 3, 100, NULL);
	TAP_EQ(commit(&off, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "a", 0, &f), CM_OK);
	int P = key_index(f.replicas[0]), B = key_index(f.replicas[1]), C = key_index(f.replicas[2]);
	add_commit_root(&c, &b, P, "a", 0, log, 0, 5, NULL);
	add_commit_root(&c, &b, B, "a", 0, log, 0, 5, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(cell_of(&c, "a", 0).state, LG_CELL_SERVING);
	add_commit_root(&c, &b, P, "a", 0, log, 5, 9, NULL);
	add_commit_root(&c, &b, B, "a", 0, log, 5, 9, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	char msg[LG_MSG_MAX];
	TAP_EQ(tx_state(&c, h[0], msg, sizeof(msg)), MURI__V1__TX_STATE__TX_COMMITTED);
	TAP_CHECK(strstr(msg, "size reached split_size 8: sealing in epoch 2 to split into 1 and 2"));
	TAP_EQ(cell_of(&c, "a", 0).state, LG_CELL_SEALING);

	/* the other chain: split_size 0 never splits by itself */
	TAP_EQ(lg_store_fragment_get(off.s, "a", 0, &f), CM_OK);
	int P0 = key_index(f.replicas[0]), B0 = key_index(f.replicas[1]);
	add_commit_root(&off, &b, P0, "a", 0, log, 0, 12, NULL);
	add_commit_root(&off, &b, B0, "a", 0, log, 0, 12, NULL);
	TAP_EQ(commit(&off, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(off.s, "a", 0, &f), CM_OK);
	TAP_EQ(f.committed_size, 12);
	TAP_EQ(cell_of(&off, "a", 0).state, LG_CELL_SERVING);

	/* the primary fails in the sealing epoch: a majority's reports move
	 * epoch 2 to 3 with another primary, still sealing */
	add_commit_root(&c, &b, C, "a", 0, log, 9, 9, h[0]); /* a backup's re-vote is no confirmation */
	add_failover(&c, &b, B, "a", 0, 2, 9, 1, NULL);
	add_failover(&c, &b, C, "a", 0, 2, 9, 1, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root: the root at size 9 is committed already");
	TAP_EQ(lg_store_fragment_get(c.s, "a", 0, &f), CM_OK);
	TAP_EQ(f.epoch, 3);
	TAP_CHECK(key_index(f.primary) != P);
	TAP_EQ(cell_of(&c, "a", 0).state, LG_CELL_SEALING);
	int NP = key_index(f.primary);
	add_commit_root(&c, &b, P, "a", 0, log, 9, 9, h[0]);  /* the old primary is a backup now */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root: the root at size 9 is committed already");
	TAP_EQ(cell_of(&c, "a", 0).state, LG_CELL_SEALING);
	add_commit_root(&c, &b, NP, "a", 0, log, 9, 9, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(tx_state(&c, h[1], msg, sizeof(msg)), MURI__V1__TX_STATE__TX_COMMITTED);
	TAP_CHECK(strstr(msg, "the primary's log is the committed root; split at size 9 into 1 and 2"));
	TAP_EQ(cell_of(&c, "a", 0).state, LG_CELL_SPLIT);
	lg_cell k1 = cell_of(&c, "a", 1);
	TAP_CHECK(k1.has_parent && k1.src_size == 9 && k1.depth == 1 && k1.base == 0);

	/* a child splits only after its first root */
	add_split(&c, &b, K_ACC0, "a", 1, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "fragment 1 of \"a\" has not committed its first root since its parent 0 split");
	/* a child whose first root passes split_size seals at once */
	TAP_EQ(lg_store_fragment_get(c.s, "a", 1, &f), CM_OK);
	int A1 = key_index(f.replicas[0]), B1 = key_index(f.replicas[1]);
	add_commit_root(&c, &b, A1, "a", 1, log, 0, 10, NULL);
	add_commit_root(&c, &b, B1, "a", 1, log, 0, 10, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(tx_state(&c, h[0], msg, sizeof(msg)), MURI__V1__TX_STATE__TX_COMMITTED);
	TAP_CHECK(strstr(msg, "derived from 0; size reached split_size 8: sealing in epoch 2 to split into 3 and 4"));
	lg_cell s1 = cell_of(&c, "a", 1);
	TAP_CHECK(s1.derived && s1.state == LG_CELL_SEALING && s1.children[0] == 3 && s1.children[1] == 4);
	cm_merkle_free(log);
	chain_close(&c);
	chain_close(&off);
}

/* An empty fragment split by its owner freezes at size 0 on its sealing
 * primary's empty root (a backup's does not count), and its halves derive
 * from the empty log. */
static void test_empty_split(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[3][32], empty[32];
	lg_fragment f;
	if (open_indexers(&c, "emptysplit", 4, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "e", 1, 3, 100, NULL);
	add_split(&c, &b, K_ACC0, "e", 0, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "e", 0, &f), CM_OK);
	add_empty_root(&c, &b, key_index(f.replicas[1]), "e", 0, 0, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root.root.size: 0 is accepted only as the first root of a split's child");
	TAP_EQ(cell_of(&c, "e", 0).state, LG_CELL_SEALING);
	add_empty_root(&c, &b, key_index(f.primary), "e", 0, 0, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(cell_of(&c, "e", 0).state, LG_CELL_SPLIT);
	lg_cell k = cell_of(&c, "e", 2);
	cm_merkle_blake2b.empty(empty);
	TAP_CHECK(k.has_parent && k.src_size == 0 && memcmp(k.src_root, empty, 32) == 0 && k.path == 1);
	chain_close(&c);
}

/* A Magu dropped after a split leaves no cell behind. */
static void test_drop_after_split(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[32];
	if (open_indexers(&c, "dropsplit", 4, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "d", 1, 3, 100, NULL);
	add_split(&c, &b, K_ACC0, "d", 0, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(cell_of(&c, "d", 0).state, LG_CELL_SEALING);
	Muri__V1__Transaction t;
	Muri__V1__DropMagu d = MURI__V1__DROP_MAGU__INIT;
	tx_base(&t, K_ACC0, nonce_of(&c, &b, K_ACC0), 1);
	d.name = (char *)"d";
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_DROP_MAGU;
	t.drop_magu = &d;
	tb_add(&b, &t, K_ACC0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	lg_cell cl;
	TAP_EQ(lg_store_cell_get(c.s, "d", 0, &cl), CM_ERR_NOTFOUND);
	chain_close(&c);
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_owner_split);
	TAP_RUN(test_auto_split);
	TAP_RUN(test_empty_split);
	TAP_RUN(test_drop_after_split);
	return st_finish();
}
