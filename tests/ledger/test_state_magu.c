/* Tests of the state machine's Magus (lg_st_magu.c, lg_st_roots.c): member
 * draws weighted by stake, placement of fragments on member seats and
 * minimal movement when members change, failover, fragment roots committed
 * by a majority of replicas with consistency proofs, and the challenges of
 * committed roots (answers, expiry, slashing, removal of failing members). */
#include "st_chain.h"

/* ---- Magus: membership, placement, movement ---- */

static void test_magu_create(void)
{
	tchain c1, c2;
	tblock b = {0};
	gtext g;
	uint8_t h[4][32], r1[32], r2[32], d1[32], d2[32];

	if (open_indexers(&c1, "magu1", 8, NULL, &g, NULL) != CM_OK ||
	    chain_open(&c2, "magu2", &g) != CM_OK)
		return;
	add_create(&c1, &b, K_ACC0, "docs", 16, 3, 5000, h[0]);
	add_create(&c1, &b, K_ACC0, "docs", 4, 1, 5000, h[1]);  /* exists */
	add_create(&c1, &b, K_ACC0, "big", 4, 9, 5000, h[2]);   /* 9 > 8 active */
	add_create(&c1, &b, K_ACC0, "cheap", 4, 3, 10, h[3]);   /* deposit < min_deposit */
	TAP_EQ(tb_apply(&c1, &b), CM_OK);
	TAP_EQ(tb_apply(&c2, &b), CM_OK);
	tb_clear(&b);
	TAP_COMMITTED(&c1, h[0]);
	TAP_FAILED(&c1, h[1], "create_magu.name: \"docs\" exists already");
	TAP_FAILED(&c1, h[2], "create_magu.replication: 9 replicas need as many active indexers, 8 are active");
	TAP_FAILED(&c1, h[3], "create_magu.deposit: 10 is below the minimum 100");
	TAP_EQ(balance(&c1, K_ACC0), 100000000 - 4 - 5000);

	lg_state_root(c1.st, r1);
	lg_state_root(c2.st, r2);
	TAP_CHECK(memcmp(r1, r2, 32) == 0);
	digest(&c1, d1);
	digest(&c2, d2);
	TAP_CHECK(memcmp(d1, d2, 32) == 0);

	Muri__V1__MaguInfo *m1, *m2;
	TAP_EQ(lg_query_magu(c1.s, "docs", &m1), CM_OK);
	TAP_EQ(lg_query_magu(c2.s, "docs", &m2), CM_OK);
	size_t l1 = protobuf_c_message_get_packed_size(&m1->base);
	size_t l2 = protobuf_c_message_get_packed_size(&m2->base);
	uint8_t *p1 = malloc(l1), *p2 = malloc(l2);
	protobuf_c_message_pack(&m1->base, p1);
	protobuf_c_message_pack(&m2->base, p2);
	TAP_CHECK(l1 == l2 && memcmp(p1, p2, l1) == 0); /* same memberships, bit for bit */
	free(p1);
	free(p2);
	TAP_EQ(m1->n_members, 8); /* min(8 active, 16 x 3, 64) */
	TAP_EQ(m1->n_configs, 16);
	TAP_EQ(m1->fragments, 16);
	TAP_EQ(m1->replication, 3);
	TAP_EQ(m1->metric, MURI__V1__METRIC__L2);
	TAP_EQ(m1->deposit, 5000);
	TAP_EQ(m1->created_height, 1);
	int load[8] = {0};
	for (size_t f = 0; f < m1->n_configs; f++) {
		Muri__V1__FragmentConfig *fc = m1->configs[f];
		TAP_EQ(fc->fragment, f);
		TAP_EQ(fc->epoch, 1);
		TAP_EQ(fc->n_replicas, 3);
		TAP_CHECK(memcmp(fc->primary.data, fc->replicas[0]->pubkey.data, 32) == 0);
		for (size_t i = 0; i < fc->n_replicas; i++) {
			int k = key_index(fc->replicas[i]->pubkey.data);
			TAP_CHECK(k >= 0 && k < 8);
			if (k >= 0 && k < 8)
				load[k]++;
			char want[32];
			snprintf(want, sizeof(want), "127.0.0.1:%d", 7200 + k);
			TAP_STREQ(fc->replicas[i]->address, want);
			for (size_t j = 0; j < i; j++)
				TAP_CHECK(memcmp(fc->replicas[i]->pubkey.data, fc->replicas[j]->pubkey.data, 32) != 0);
		}
	}
	int used = 0;
	for (int k = 0; k < 8; k++)
		used += load[k] > 0;
	TAP_CHECK(used >= 6); /* placement spreads over the members */
	protobuf_c_message_free_unpacked(&m1->base, NULL);
	protobuf_c_message_free_unpacked(&m2->base, NULL);
	TAP_EQ(lg_query_magu(c1.s, "nope", &m1), CM_ERR_NOTFOUND);
	Muri__V1__ListMagusResponse *lm;
	TAP_EQ(lg_query_magus(c1.s, 0, &lm), CM_OK);
	TAP_EQ(lm->n_magus, 1);
	TAP_STREQ(lm->magus[0]->name, "docs");
	protobuf_c_message_free_unpacked(&lm->base, NULL);

	/* a different beacon draws a different (but as valid) placement */
	tchain c3;
	if (chain_open(&c3, "magu3", &g) == CM_OK) {
		c3.beacon_seed = 99;
		add_create(&c3, &b, K_ACC0, "docs", 16, 3, 5000, NULL);
		TAP_EQ(commit(&c3, &b), CM_OK);
		uint8_t r3[32];
		lg_state_root(c3.st, r3);
		TAP_CHECK(memcmp(r1, r3, 32) != 0);
		chain_close(&c3);
	}
	chain_close(&c1);
	chain_close(&c2);
}

static void test_stake_weighting(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint64_t stake[10];
	int count[10] = {0};
	const int N = 240;

	for (int i = 0; i < 10; i++)
		stake[i] = i == 3 ? 20000 : 2000; /* indexer 3 has 10x the stake */
	if (open_indexers(&c, "weights", 10, stake, &g, NULL) != CM_OK)
		return;
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "m%d", i);
		add_create(&c, &b, K_ACC0, name, 1, 1, 100, NULL); /* one member each */
		if (b.n == 40)
			TAP_EQ(commit(&c, &b), CM_OK);
	}
	TAP_EQ(commit(&c, &b), CM_OK);
	for (int i = 0; i < N; i++) {
		char name[32];
		lg_slot *sl;
		size_t n;
		snprintf(name, sizeof(name), "m%d", i);
		TAP_EQ(lg_store_slots_of_magu(c.s, name, &sl, &n), CM_OK);
		TAP_EQ(n, 1);
		if (n == 1 && sl[0].filled) {
			int k = key_index(sl[0].holder);
			if (k >= 0 && k < 10)
				count[k]++;
		}
		free(sl);
	}
	/* expected share of indexer 3: 10 / 19 = 53% (uniform would give 10%) */
	printf("# indexer 3 (10x stake) drawn %d of %d times\n", count[3], N);
	TAP_CHECK(count[3] > N * 40 / 100 && count[3] < N * 66 / 100);
	for (int i = 0; i < 10; i++)
		if (i != 3)
			TAP_CHECK(count[i] < count[3] / 3);
	chain_close(&c);
}

typedef struct frag_snapshot {
	size_t n;
	lg_fragment f[64];
} frag_snapshot;

static void snapshot(tchain *c, const char *magu, frag_snapshot *s)
{
	lg_fragment *fr;
	TAP_EQ(lg_store_fragments_of(c->s, magu, &fr, &s->n), CM_OK);
	if (s->n > 64)
		s->n = 64;
	memcpy(s->f, fr, s->n * sizeof(*fr));
	free(fr);
}

static int has_replica(const lg_fragment *f, const uint8_t *pk)
{
	for (uint32_t i = 0; i < f->nreplicas; i++)
		if (memcmp(f->replicas[i], pk, 32) == 0)
			return 1;
	return 0;
}

/* Checks that only the fragments that held `gone` changed, each by one
 * replica and `bump` epochs (where `gone` was the primary, it stays until
 * its role moves: one replica joined at epoch + 1); returns how many moved,
 * and the key that came in (or -1). */
static int check_minimal_move(const frag_snapshot *a, const frag_snapshot *b, int gone, int *came, uint64_t bump)
{
	int moved = 0;
	*came = -1;
	TAP_EQ(a->n, b->n);
	for (size_t i = 0; i < a->n && i < b->n; i++) {
		const lg_fragment *x = &a->f[i], *y = &b->f[i];
		if (!has_replica(x, K[gone].pk)) {
			TAP_EQ(y->epoch, x->epoch);
			TAP_CHECK(x->nreplicas == y->nreplicas &&
				  memcmp(x->replicas, y->replicas, x->nreplicas * 32) == 0);
			continue;
		}
		moved++;
		if (memcmp(x->primary, K[gone].pk, 32) == 0) { /* handing over, still the primary */
			TAP_EQ(y->epoch, x->epoch + 1);
			TAP_EQ(y->nreplicas, x->nreplicas + 1);
			TAP_CHECK(memcmp(y->primary, K[gone].pk, 32) == 0);
			for (uint32_t j = 0; j < y->nreplicas; j++)
				if (!has_replica(x, y->replicas[j]) && came)
					*came = key_index(y->replicas[j]);
			continue;
		}
		TAP_EQ(y->epoch, x->epoch + bump);
		TAP_CHECK(!has_replica(y, K[gone].pk));
		TAP_EQ(y->nreplicas, x->nreplicas);
		int fresh = 0;
		for (uint32_t j = 0; j < y->nreplicas; j++)
			if (!has_replica(x, y->replicas[j])) {
				fresh++;
				if (came)
					*came = key_index(y->replicas[j]);
			}
		TAP_EQ(fresh, 1);
		TAP_CHECK(memcmp(x->primary, y->primary, 32) == 0);
	}
	return moved;
}

static void test_minimal_movement(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	frag_snapshot s0, s1, s2;
	uint8_t h[32];
	int came;

	/* 10 active indexers; "a" wants 3 x 2 = 6 members, "b" 64 x 3 capped at 10;
	 * a leaver's hand-over ends one block after it starts (test_handover) */
	static const char *const quick[] = {"param.handover_deadline = 1", NULL};
	if (open_indexers(&c, "movement", 10, NULL, &g, quick) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "a", 3, 2, 100, NULL);
	add_create(&c, &b, K_ACC0, "b", 64, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_slot *sl;
	size_t ns;
	TAP_EQ(lg_store_slots_of_magu(c.s, "a", &sl, &ns), CM_OK);
	TAP_EQ(ns, 6);
	for (size_t i = 0; i < ns; i++)
		TAP_CHECK(sl[i].filled);
	free(sl);

	/* a member of "a" (the primary of its fragment 0) unstakes below
	 * min_stake: a non-member takes its slot, and only its fragments move
	 * (those it is the primary of only gain the new replica: it stays until
	 * its role moves, test_handover_of_the_primary) */
	frag_snapshot a0;
	snapshot(&c, "a", &a0);
	snapshot(&c, "b", &s0);
	int member = key_index(a0.f[0].primary);
	add_stake(&c, &b, member, account(&c, member).staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(commit(&c, &b), CM_OK); /* the hand-over's deadline: the leaver is removed */
	frag_snapshot a1;
	snapshot(&c, "a", &a1);
	int moved = check_minimal_move(&a0, &a1, member, &came, 2);
	TAP_CHECK(moved >= 1);
	TAP_CHECK(came >= 0 && came < 10 && came != member);
	TAP_EQ(lg_store_slots_of_magu(c.s, "a", &sl, &ns), CM_OK);
	int holds = 0;
	for (size_t i = 0; i < ns; i++)
		holds += sl[i].filled && key_index(sl[i].holder) == came;
	TAP_EQ(holds, 1);
	free(sl);
	/* in "b" every indexer was a member: its slot is vacated, its fragments go to others */
	snapshot(&c, "b", &s1);
	moved = check_minimal_move(&s0, &s1, member, &came, 2);
	TAP_CHECK(moved >= 64 * 3 / 10 / 2); /* about 64 * 3 / 10 */
	printf("# leaving indexer moved %d of 64 fragments of \"b\"\n", moved);

	/* a newly registered and staked indexer joins: only fragments moving to it change */
	int fresh = 20;
	add_transfer(&c, &b, K_ACC0, fresh, 5000, 1, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	add_register(&c, &b, fresh, NULL);
	add_stake(&c, &b, fresh, 2000, 0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	snapshot(&c, "b", &s2);
	int gained = 0;
	for (size_t i = 0; i < s1.n; i++) {
		const lg_fragment *x = &s1.f[i], *y = &s2.f[i];
		if (!has_replica(y, K[fresh].pk)) {
			TAP_CHECK(memcmp(x->replicas, y->replicas, x->nreplicas * 32) == 0);
			TAP_EQ(y->epoch, x->epoch);
			continue;
		}
		gained++;
		TAP_EQ(y->epoch, x->epoch + 1);
		int common = 0;
		for (uint32_t j = 0; j < y->nreplicas; j++)
			common += has_replica(x, y->replicas[j]);
		TAP_EQ(common, (int)y->nreplicas - 1);
	}
	printf("# joining indexer took %d of 64 fragments of \"b\"\n", gained);
	TAP_CHECK(gained >= 5);
	chain_close(&c);
}

/* The last holder of a fragment's data is not taken away with nothing in
 * its place: one indexer holds every fragment of "solo" and unstakes; with
 * no active indexer to take its seat, the fragments keep their replica and
 * epoch (a configuration without replicas could not be served). */
static void test_last_member_keeps_its_fragments(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	frag_snapshot s0, s1;
	uint8_t h[32];

	if (open_indexers(&c, "solo", 1, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "solo", 4, 1, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	snapshot(&c, "solo", &s0);
	TAP_EQ(s0.n, 4);
	int member = key_index(s0.f[0].primary);
	add_stake(&c, &b, member, account(&c, member).staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	snapshot(&c, "solo", &s1);
	for (size_t i = 0; i < s1.n; i++) {
		TAP_EQ(s1.f[i].nreplicas, 1);
		TAP_EQ(s1.f[i].epoch, s0.f[i].epoch);
		TAP_CHECK(memcmp(s1.f[i].primary, s0.f[i].primary, 32) == 0);
	}
	chain_close(&c);
}

/* ---- hand-over (lg_st_handover.c) ---- */

static size_t handovers_of(tchain *c, const char *magu, uint32_t fragment, lg_handover *first)
{
	lg_handover *h = NULL;
	size_t n = 0;
	TAP_EQ(lg_store_handovers(c->s, magu, fragment, &h, &n), CM_OK);
	if (n && first)
		*first = h[0];
	free(h);
	return n;
}

/* A backup unstakes: it stays a replica, marked leaving, next to the spare
 * that took its seat (epoch + 1, primary kept); a root vote of an old
 * replica does not end the hand-over, the spare's first root vote of the
 * epoch does (epoch + 1 without the leaver); its stake stays bonded past
 * unbonding_delay until then, and is released after. */
static void test_handover(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[32];
	lg_fragment f0, f1, f2;
	lg_handover ho;
	cm_merkle *log = make_log(8, "ho");
	static const char *const ps[] = {"param.handover_deadline = 50", "param.unbonding_delay = 2", NULL};

	if (open_indexers(&c, "handover", 4, NULL, &g, ps) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "h", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "h", 0, &f0), CM_OK);
	TAP_EQ(f0.nreplicas, 3);
	int P = key_index(f0.primary), L = -1, spare = -1;
	for (uint32_t i = 0; i < f0.nreplicas && L < 0; i++)
		if (key_index(f0.replicas[i]) != P)
			L = key_index(f0.replicas[i]);
	for (int i = 0; i < 4; i++)
		if (!has_replica(&f0, K[i].pk))
			spare = i;
	TAP_CHECK(L >= 0 && spare >= 0);
	if (L < 0 || spare < 0)
		return;
	lg_account a0 = account(&c, L);

	add_stake(&c, &b, L, a0.staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "h", 0, &f1), CM_OK);
	TAP_EQ(f1.epoch, f0.epoch + 1);
	TAP_EQ(f1.nreplicas, 4);
	TAP_CHECK(has_replica(&f1, K[L].pk));
	TAP_CHECK(has_replica(&f1, K[spare].pk));
	TAP_CHECK(memcmp(f1.primary, f0.primary, 32) == 0);
	TAP_EQ(handovers_of(&c, "h", 0, &ho), 1);
	TAP_CHECK(memcmp(ho.leaver, K[L].pk, 32) == 0);
	TAP_EQ(ho.npending, 1);
	TAP_CHECK(memcmp(ho.pending[0], K[spare].pk, 32) == 0);
	TAP_EQ(lg_store_is_leaving(c.s, K[L].pk), 1);

	for (int i = 0; i < 3; i++) /* past unbonding_delay */
		TAP_EQ(commit(&c, &b), CM_OK);
	lg_account a1 = account(&c, L);
	TAP_EQ(a1.staked, 0);
	TAP_EQ(a1.unbonding, a0.staked);

	add_commit_root(&c, &b, P, "h", 0, log, 0, 4, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "h", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch);
	TAP_EQ(f2.nreplicas, 4);
	add_commit_root(&c, &b, L, "h", 0, log, 0, 4, h); /* the leaver's own vote neither */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "h", 0, &f2), CM_OK);
	TAP_EQ(f2.nreplicas, 4);

	add_commit_root(&c, &b, spare, "h", 0, log, 0, 4, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "h", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch + 1);
	TAP_EQ(f2.nreplicas, 3);
	TAP_CHECK(!has_replica(&f2, K[L].pk));
	TAP_CHECK(has_replica(&f2, K[spare].pk));
	TAP_CHECK(memcmp(f2.primary, f0.primary, 32) == 0);
	TAP_EQ(handovers_of(&c, "h", 0, NULL), 0);
	TAP_EQ(lg_store_is_leaving(c.s, K[L].pk), 0);
	lg_account a2 = account(&c, L);
	(void)ho;
	TAP_EQ(a2.unbonding, a0.staked); /* due since blocks ago, released only now: */
	TAP_EQ(commit(&c, &b), CM_OK);
	lg_account a3 = account(&c, L);
	TAP_EQ(a3.unbonding, 0);
	TAP_EQ(a3.balance, a2.balance + a0.staked);
	cm_merkle_free(log);
	chain_close(&c);
}

/* A leaving primary hands its role over through a failover of its epoch
 * (it stops taking writes and gives the epoch up once a backup holds its
 * whole log): a leaving replica is never chosen, even with the longest
 * log; the decision waits for a replica that stays to report that log,
 * which becomes the primary at epoch + 1 with the leaver still a replica;
 * the spare's root vote then removes the leaver and the new primary stays. */
static void test_handover_of_the_primary(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[32];
	lg_fragment f0, f1, f2;
	cm_merkle *log = make_log(8, "hp");
	static const char *const ps[] = {"param.handover_deadline = 1000", NULL};

	if (open_indexers(&c, "handover_p", 4, NULL, &g, ps) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "p", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "p", 0, &f0), CM_OK);
	int P = key_index(f0.primary), B = -1, C = -1, spare = -1;
	for (uint32_t i = 0; i < f0.nreplicas; i++) {
		int k = key_index(f0.replicas[i]);
		if (k != P && B < 0)
			B = k;
		else if (k != P)
			C = k;
	}
	for (int i = 0; i < 4; i++)
		if (!has_replica(&f0, K[i].pk))
			spare = i;
	TAP_CHECK(B >= 0 && C >= 0 && spare >= 0);
	if (B < 0 || C < 0 || spare < 0)
		return;
	add_stake(&c, &b, P, account(&c, P).staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "p", 0, &f1), CM_OK);
	TAP_EQ(f1.nreplicas, 4);
	TAP_CHECK(memcmp(f1.primary, K[P].pk, 32) == 0);

	/* P (30 records), C (20) and the spare (0) report: a majority of 4, but
	 * the longest log is the leaver's and no replica that stays has it */
	add_failover(&c, &b, P, "p", 0, f1.epoch, 30, f1.epoch, NULL);
	add_failover(&c, &b, C, "p", 0, f1.epoch, 20, f1.epoch, NULL);
	add_failover(&c, &b, spare, "p", 0, f1.epoch, 0, 0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "p", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch);
	TAP_CHECK(memcmp(f2.primary, K[P].pk, 32) == 0);
	/* B reports P's log: it becomes the primary; P stays a replica, leaving */
	add_failover(&c, &b, B, "p", 0, f1.epoch, 30, f1.epoch, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "p", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch + 1);
	TAP_CHECK(memcmp(f2.primary, K[B].pk, 32) == 0);
	TAP_EQ(f2.nreplicas, 4);
	TAP_EQ(handovers_of(&c, "p", 0, NULL), 1);
	/* the spare's root vote in the new epoch ends the hand-over */
	add_commit_root(&c, &b, spare, "p", 0, log, 0, 4, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "p", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch + 2);
	TAP_EQ(f2.nreplicas, 3);
	TAP_CHECK(!has_replica(&f2, K[P].pk));
	TAP_CHECK(memcmp(f2.primary, K[B].pk, 32) == 0);
	cm_merkle_free(log);
	chain_close(&c);
}

/* A primary that unstakes and whose role cannot move to a replica that
 * stays is not removed: past handover_deadline the ledger's failover rule
 * may pick it again (its log is the longest), and it leaves at the first
 * begin-block after a failover moved the role to a replica with its log. */
static void test_handover_deadline(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[32];
	lg_fragment f0, f1, f2;
	static const char *const ps[] = {"param.handover_deadline = 4", NULL};

	if (open_indexers(&c, "handover_dl", 4, NULL, &g, ps) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "d", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f0), CM_OK);
	int P = key_index(f0.primary), B = -1, C = -1, spare = -1;
	for (uint32_t i = 0; i < f0.nreplicas; i++) {
		int k = key_index(f0.replicas[i]);
		if (k != P && B < 0)
			B = k;
		else if (k != P)
			C = k;
	}
	for (int i = 0; i < 4; i++)
		if (!has_replica(&f0, K[i].pk))
			spare = i;
	TAP_CHECK(B >= 0 && C >= 0 && spare >= 0);
	if (B < 0 || C < 0 || spare < 0)
		return;
	add_stake(&c, &b, P, account(&c, P).staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	uint64_t started = lg_state_height(c.st);
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f1), CM_OK);
	TAP_EQ(f1.nreplicas, 4);
	while (lg_state_height(c.st) < started + 6) /* past the deadline: still there, still the primary */
		TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch);
	TAP_EQ(f2.nreplicas, 4);
	TAP_CHECK(memcmp(f2.primary, K[P].pk, 32) == 0);
	/* no replica that stays has P's log: past the deadline the rule picks P again */
	add_failover(&c, &b, P, "d", 0, f1.epoch, 30, f1.epoch, NULL);
	add_failover(&c, &b, C, "d", 0, f1.epoch, 20, f1.epoch, NULL);
	add_failover(&c, &b, spare, "d", 0, f1.epoch, 0, 0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch + 1);
	TAP_CHECK(memcmp(f2.primary, K[P].pk, 32) == 0);
	TAP_EQ(f2.nreplicas, 4);
	/* B reports P's log in the next epoch: B takes the role, and P leaves at the next block */
	add_failover(&c, &b, P, "d", 0, f2.epoch, 30, f1.epoch, NULL);
	add_failover(&c, &b, B, "d", 0, f2.epoch, 30, f1.epoch, NULL);
	add_failover(&c, &b, C, "d", 0, f2.epoch, 20, f1.epoch, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch + 2);
	TAP_CHECK(memcmp(f2.primary, K[B].pk, 32) == 0);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "d", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, f1.epoch + 3);
	TAP_EQ(f2.nreplicas, 3);
	TAP_CHECK(!has_replica(&f2, K[P].pk));
	TAP_CHECK(memcmp(f2.primary, K[B].pk, 32) == 0);
	TAP_EQ(handovers_of(&c, "d", 0, NULL), 0);
	chain_close(&c);
}

/* ---- index parameters on chain ---- */

/* What shapes a fragment's index is the Magu's, on chain: every field of
 * IndexSpec, at its largest, comes back in MaguInfo as created. */
static void test_index_params_on_chain(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[32];
	Muri__V1__Transaction t;
	Muri__V1__CreateMagu m = MURI__V1__CREATE_MAGU__INIT;
	Muri__V1__IndexSpec ix = MURI__V1__INDEX_SPEC__INIT;

	if (open_indexers(&c, "params", 3, NULL, &g, NULL) != CM_OK)
		return;
	ix.kind = MURI__V1__INDEX_KIND__IVF;
	ix.ivf_nlist = 65536;
	ix.ivf_nprobe = 65536;
	ix.quantizer = MURI__V1__QUANTIZER__PQ;
	ix.pq_m = 64;
	ix.hnsw_m = 128;
	ix.hnsw_ef_construction = 4096;
	ix.hnsw_ef_search = 4096;
	ix.index_batch = 1000000;
	ix.seed = UINT64_MAX;
	ix.tombstone_permille = 990;
	ix.train_min = 100000000;
	ix.train_max = 100000000;
	ix.exact_threshold = 100000000;
	ix.exact_permille = 1000;
	ix.rerank = 64;
	tx_base(&t, K_ACC0, nonce_of(&c, &b, K_ACC0), 1);
	m.name = (char *)"tuned";
	m.dimension = 128;
	m.metric = MURI__V1__METRIC__L2;
	m.fragments = 2;
	m.replication = 3;
	m.deposit = 100;
	m.index = &ix;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_CREATE_MAGU;
	t.create_magu = &m;
	tb_add(&b, &t, K_ACC0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	Muri__V1__MaguInfo *mi = NULL;
	TAP_EQ(lg_query_magu(c.s, "tuned", &mi), CM_OK);
	TAP_CHECK(mi && mi->index);
	if (mi && mi->index) {
		const Muri__V1__IndexSpec *got = mi->index;
		TAP_EQ(got->ivf_nlist, 65536);
		TAP_EQ(got->pq_m, 64);
		TAP_EQ(got->index_batch, 1000000);
		TAP_CHECK(got->seed == UINT64_MAX);
		TAP_EQ(got->tombstone_permille, 990);
		TAP_EQ(got->train_min, 100000000);
		TAP_EQ(got->train_max, 100000000);
		TAP_EQ(got->exact_threshold, 100000000);
		TAP_EQ(got->exact_permille, 1000);
		TAP_EQ(got->rerank, 64);
	}
	if (mi)
		protobuf_c_message_free_unpacked(&mi->base, NULL);
	chain_close(&c);
}

/* ---- failover ---- */

static void test_failover(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[6][32];
	lg_fragment f, f2;

	if (open_indexers(&c, "failover", 6, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "fo", 1, 3, 100, NULL);
	add_create(&c, &b, K_ACC0, "five", 1, 5, 100, NULL);
	add_create(&c, &b, K_ACC0, "qw", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 3);
	int p = key_index(f.primary), b1 = key_index(f.replicas[1]), b2 = key_index(f.replicas[2]);
	TAP_EQ(p, key_index(f.replicas[0]));
	int outsider = -1;
	for (int i = 0; i < 6; i++)
		if (i != p && i != b1 && i != b2)
			outsider = i;

	add_failover(&c, &b, b2, "fo", 0, 1, 10, 1, h[0]);       /* 1 of 3 replicas */
	add_failover(&c, &b, outsider, "fo", 0, 1, 10, 1, h[2]); /* not a replica */
	add_failover(&c, &b, b1, "fo", 0, 7, 10, 1, h[3]);       /* wrong epoch */
	add_failover(&c, &b, b1, "nope", 0, 1, 10, 1, h[4]);
	add_failover(&c, &b, b2, "fo", 0, 1, 11, 1, h[5]);       /* replaces its first: still 1 of 3 */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[2], "failover: the sender is not a replica of fragment 0 of \"fo\"");
	TAP_FAILED(&c, h[3], "failover.epoch: 7 is not the current epoch 1");
	TAP_FAILED(&c, h[4], "failover: no fragment 0 in Magu \"nope\"");
	TAP_COMMITTED(&c, h[5]);
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 1);
	TAP_EQ(key_index(f2.primary), p);

	/* the primary, having closed its epoch, reports like the others and
	 * makes the majority; the longer log (b2's replacing report, 11) wins */
	add_failover(&c, &b, p, "fo", 0, 1, 10, 1, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);
	TAP_EQ(key_index(f2.primary), b2);
	TAP_CHECK(memcmp(f2.replicas, f.replicas, 3 * 32) == 0); /* same replica set */
	add_failover(&c, &b, b1, "fo", 0, 1, 50, 1, h[1]); /* a report of the old epoch */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[1], "failover.epoch: 1 is not the current epoch 2");
	add_failover(&c, &b, b1, "fo", 0, 2, 50, 1, h[1]); /* the old epoch's reports were cleared */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(lg_store_fragment_get(c.s, "fo", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);

	/* five replicas: three are a majority; the longest log of the latest epoch wins */
	TAP_EQ(lg_store_fragment_get(c.s, "five", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 5);
	uint64_t logs[5] = {0, 30, 90, 60, 10};
	for (int i = 1; i <= 2; i++)
		add_failover(&c, &b, key_index(f.replicas[i]), "five", 0, 1, logs[i], 1, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "five", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 1);
	add_failover(&c, &b, key_index(f.replicas[3]), "five", 0, 1, logs[3], 1, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "five", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);
	TAP_CHECK(memcmp(f2.primary, f.replicas[2], 32) == 0); /* log 90 */

	/* A replica that missed a write a majority acknowledged never wins.
	 * "qw": r0 is primary of epoch 1 and appends 3 entries nobody gets
	 * (13); r1 and r2 (10 each) report, r1 becomes primary of epoch 2
	 * (tie: lower index) and writes 2 entries acknowledged at QUORUM by r1
	 * and r2 (12, last epoch 2), then dies. r0 (13, last epoch 1) and r2
	 * report: r2 must win. The old rule (longest log among the backups)
	 * picked r0 and lost the acknowledged writes. */
	TAP_EQ(lg_store_fragment_get(c.s, "qw", 0, &f), CM_OK);
	TAP_EQ(f.nreplicas, 3);
	int r0 = key_index(f.replicas[0]), r1 = key_index(f.replicas[1]), r2 = key_index(f.replicas[2]);
	TAP_EQ(key_index(f.primary), r0);
	add_failover(&c, &b, r2, "qw", 0, 1, 10, 1, h[0]);
	add_failover(&c, &b, r1, "qw", 0, 1, 10, 1, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(lg_store_fragment_get(c.s, "qw", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);
	TAP_EQ(key_index(f2.primary), r1);
	add_failover(&c, &b, r0, "qw", 0, 2, 13, 1, h[0]);
	add_failover(&c, &b, r2, "qw", 0, 2, 12, 2, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_COMMITTED(&c, h[1]);
	TAP_EQ(lg_store_fragment_get(c.s, "qw", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 3);
	TAP_EQ(key_index(f2.primary), r2);
	chain_close(&c);
}

/* ---- fragment roots ---- */

/* A primary's request to replace a backup (FailoverRequest.drop). */
static void add_drop(tchain *c, tblock *b, int k, const char *magu, uint64_t epoch, int drop, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__FailoverRequest f = MURI__V1__FAILOVER_REQUEST__INIT;
	static uint8_t root[CM_HASH_BYTES];
	memset(root, 0x5a, sizeof(root));
	tx_base(&t, k, nonce_of(c, b, k), 1);
	f.magu = (char *)magu;
	f.fragment = 0;
	f.epoch = epoch;
	f.log_size = 10;
	f.last_epoch = epoch;
	f.root.data = root;
	f.root.len = sizeof(root);
	f.drop.data = K[drop].pk;
	f.drop.len = 32;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_FAILOVER;
	t.failover = &f;
	tb_add(b, &t, k, hash);
}

static int in_set(const lg_fragment *f, int k)
{
	for (uint32_t i = 0; i < f->nreplicas; i++)
		if (key_index(f->replicas[i]) == k)
			return 1;
	return 0;
}

static void test_drop_replica(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[6][32];
	lg_fragment f, f2, o, o2;

	/* 8 indexers, two Magus of 1 x 3: five spares for each */
	if (open_indexers(&c, "drop", 8, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "dr", 1, 3, 100, NULL);
	add_create(&c, &b, K_ACC0, "other", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "dr", 0, &f), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "other", 0, &o), CM_OK);
	int p = key_index(f.primary), b1 = key_index(f.replicas[1]), b2 = key_index(f.replicas[2]);
	int outsider = -1;
	for (int i = 0; i < 8 && outsider < 0; i++)
		if (!in_set(&f, i))
			outsider = i;

	add_drop(&c, &b, b1, "dr", 1, b2, h[0]);       /* only the primary asks */
	add_drop(&c, &b, p, "dr", 1, p, h[1]);         /* not itself */
	add_drop(&c, &b, p, "dr", 1, outsider, h[2]);  /* only a replica */
	add_drop(&c, &b, p, "dr", 2, b2, h[3]);        /* of the current epoch */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "failover.drop: only the primary of fragment 0 of \"dr\" may ask");
	TAP_FAILED(&c, h[1], "failover.drop: the primary cannot drop itself");
	TAP_FAILED(&c, h[2], "is not a replica of fragment 0 of \"dr\"");
	TAP_FAILED(&c, h[3], "failover.epoch: 2 is not the current epoch 1");
	TAP_EQ(lg_store_fragment_get(c.s, "dr", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 1);

	/* the primary drops b2: epoch 2, the primary and b1 stay, a spare that
	 * was no member of "dr" takes b2's place; "other" does not move */
	add_drop(&c, &b, p, "dr", 1, b2, h[4]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[4]);
	TAP_EQ(lg_store_fragment_get(c.s, "dr", 0, &f2), CM_OK);
	TAP_EQ(f2.epoch, 2);
	TAP_EQ(key_index(f2.primary), p);
	TAP_EQ(f2.nreplicas, 3);
	TAP_CHECK(in_set(&f2, p) && in_set(&f2, b1) && !in_set(&f2, b2));
	int spare = -1;
	for (uint32_t i = 0; i < f2.nreplicas; i++)
		if (!in_set(&f, key_index(f2.replicas[i])))
			spare = key_index(f2.replicas[i]);
	TAP_CHECK(spare >= 0);
	lg_indexer ix;
	TAP_EQ(lg_store_indexer_get(c.s, K[b2].pk, &ix), CM_OK);
	TAP_CHECK(ix.active && !ix.jailed); /* dropped from the Magu, not punished */
	TAP_EQ(lg_store_fragment_get(c.s, "other", 0, &o2), CM_OK);
	TAP_EQ(o2.epoch, o.epoch);
	TAP_EQ(o2.nreplicas, o.nreplicas);
	TAP_CHECK(memcmp(o2.replicas, o.replicas, (size_t)o.nreplicas * 32) == 0);
	/* a second request of the old epoch fails */
	add_drop(&c, &b, p, "dr", 1, b1, h[5]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[5], "failover.epoch: 1 is not the current epoch 2");
	chain_close(&c);
}

static void test_commit_root(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[8][32];
	lg_fragment f;
	cm_merkle *log = make_log(16, "leaf"), *forged = make_log(16, "leaf");
	char leaf[] = "forged-2";

	/* a log that rewrites leaf 2 but agrees on nothing else */
	cm_merkle_truncate(forged, 2);
	cm_merkle_append(forged, leaf, strlen(leaf));
	for (int i = 3; i < 16; i++) {
		char l[32];
		int n = snprintf(l, sizeof(l), "leaf-%d", i);
		cm_merkle_append(forged, l, (size_t)n);
	}
	if (open_indexers(&c, "roots", 5, NULL, &g, NULL) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "r", 2, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	int A = key_index(f.replicas[0]), B = key_index(f.replicas[1]), C = key_index(f.replicas[2]);
	int out = -1;
	for (int i = 0; i < 5; i++)
		if (i != A && i != B && i != C)
			out = i;

	add_commit_root(&c, &b, A, "r", 1, log, 0, 4, h[0]);
	add_commit_root(&c, &b, out, "r", 1, log, 0, 4, h[1]);   /* not a replica */
	add_commit_root(&c, &b, B, "r", 9, log, 0, 4, h[2]);     /* no such fragment */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "is not a replica of fragment 1");
	TAP_FAILED(&c, h[2], "commit_root.root: no fragment 9 in Magu \"r\"");
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 0); /* one of three is no majority */

	/* a bad signature does not count; the second replica's vote commits */
	corrupt_root_sig = 1;
	add_commit_root(&c, &b, C, "r", 1, log, 0, 4, h[2]);
	corrupt_root_sig = 0;
	add_commit_root(&c, &b, B, "r", 1, log, 0, 4, h[3]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[2], "commit_root.root.signature: does not verify for the signer");
	TAP_COMMITTED(&c, h[3]);
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 4);
	uint8_t r4[32];
	cm_merkle_root(log, 4, r4);
	TAP_CHECK(memcmp(f.committed_root, r4, 32) == 0);
	TAP_EQ(f.nsigners, 2);
	Muri__V1__MaguInfo *mi;
	TAP_EQ(lg_query_magu(c.s, "r", &mi), CM_OK);
	TAP_EQ(mi->n_committed_roots, 1);
	TAP_EQ(mi->committed_roots[0]->fragment, 1);
	TAP_EQ(mi->committed_roots[0]->size, 4);
	protobuf_c_message_free_unpacked(&mi->base, NULL);

	/* growing: a majority at size 9 with proofs from 4 */
	add_commit_root(&c, &b, C, "r", 1, log, 4, 9, h[0]);
	add_commit_root(&c, &b, C, "r", 1, log, 4, 3, h[1]);     /* below the committed size */
	add_commit_root(&c, &b, A, "r", 1, forged, 0, 4, h[2]);  /* another root at size 4 */
	add_commit_root(&c, &b, B, "r", 1, log, 4, 4, h[3]);     /* committed already */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "commit_root.root.size: 3 is below the committed size 4");
	TAP_FAILED(&c, h[2], "commit_root.root.root: conflicts with the committed root at size 4");
	TAP_FAILED(&c, h[3], "commit_root: the root at size 4 is committed already");
	add_commit_root(&c, &b, A, "r", 1, log, 4, 9, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 9);

	/* a rewritten log cannot extend the committed root: its proof fails */
	add_commit_root(&c, &b, A, "r", 1, forged, 9, 12, h[0]);
	add_commit_root(&c, &b, B, "r", 1, forged, 9, 12, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[0], "commit_root.consistency_proof: does not prove that size 12 extends the committed root at size 9");
	TAP_FAILED(&c, h[1], "commit_root.consistency_proof");
	TAP_EQ(lg_store_fragment_get(c.s, "r", 1, &f), CM_OK);
	TAP_EQ(f.committed_size, 9);

	/* a signer that changes its mind at one size */
	cm_merkle *other = make_log(12, "leaf");
	cm_merkle_truncate(other, 10);
	cm_merkle_append(other, "x", 1);
	cm_merkle_append(other, "y", 1);
	add_commit_root(&c, &b, A, "r", 1, log, 9, 12, h[0]);
	add_commit_root(&c, &b, A, "r", 1, other, 9, 12, h[1]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	TAP_FAILED(&c, h[1], "signed a different root at size 12 already");
	cm_merkle_free(other);
	cm_merkle_free(log);
	cm_merkle_free(forged);
	chain_close(&c);
}

/* ---- challenges ---- */

enum answer_kind { ANS_RIGHT, ANS_WRONG_LEAF, ANS_WRONG_PROOF, ANS_WRONG_TAG, ANS_WRONG_INDEX };

static void add_answer(tchain *c, tblock *b, const lg_challenge *ch, const cm_merkle *log,
		       const char *tag, enum answer_kind kind, uint8_t *hash)
{
	Muri__V1__Transaction t;
	Muri__V1__AnswerChallenge a = MURI__V1__ANSWER_CHALLENGE__INIT;
	Muri__V1__ChallengeAnswerRef refs[LG_LEAVES_MAX], *rp[LG_LEAVES_MAX];
	static cm_merkle_path paths[LG_LEAVES_MAX];
	static ProtobufCBinaryData pb[LG_LEAVES_MAX][CM_MERKLE_MAX_PATH];
	static char leaves[LG_LEAVES_MAX][64];
	static uint8_t tags[LG_LEAVES_MAX][32];
	int k = key_index(ch->indexer);

	for (uint32_t i = 0; i < ch->nleaves; i++) {
		muri__v1__challenge_answer_ref__init(&refs[i]);
		rp[i] = &refs[i];
		int n = snprintf(leaves[i], sizeof(leaves[i]), "%s-%llu", tag, (unsigned long long)ch->leaves[i]);
		if (kind == ANS_WRONG_LEAF && i == 0)
			leaves[i][0] ^= 1;
		TAP_EQ(cm_merkle_inclusion(log, ch->leaves[i], ch->size, &paths[i]), CM_OK);
		if (kind == ANS_WRONG_PROOF && i == 0 && paths[i].len)
			paths[i].hash[5] ^= 1;
		for (size_t j = 0; j < paths[i].len; j++) {
			pb[i][j].data = paths[i].hash + 32 * j;
			pb[i][j].len = 32;
		}
		cm_hasher hs;
		cm_hasher_init(&hs, CM_DOM_CHALLENGE);
		cm_hasher_update(&hs, ch->beacon, 32);
		cm_hasher_update(&hs, ch->indexer, 32);
		cm_hasher_update(&hs, leaves[i], (size_t)n);
		cm_hasher_final(&hs, tags[i]);
		if (kind == ANS_WRONG_TAG && i == 0)
			tags[i][0] ^= 1;
		refs[i].index = ch->leaves[i] + (kind == ANS_WRONG_INDEX && i == 0);
		refs[i].leaf.data = (uint8_t *)leaves[i];
		refs[i].leaf.len = (size_t)n;
		refs[i].path = pb[i];
		refs[i].n_path = paths[i].len;
		refs[i].tag.data = tags[i];
		refs[i].tag.len = 32;
	}
	a.challenge_id = ch->id;
	a.answers = rp;
	a.n_answers = ch->nleaves;
	tx_base(&t, k, nonce_of(c, b, k), 1);
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_ANSWER_CHALLENGE;
	t.answer_challenge = &a;
	tb_add(b, &t, k, hash);
}

/* The open challenges of every indexer 0..n-1, by id. */
static size_t open_challenges(tchain *c, int n, lg_challenge *out, size_t max)
{
	size_t got = 0;
	for (int k = 0; k < n; k++) {
		lg_challenge *ch;
		size_t m;
		TAP_EQ(lg_store_challenges_of(c->s, K[k].pk, 1, 100, &ch, &m), CM_OK);
		for (size_t i = 0; i < m && got < max; i++)
			out[got++] = ch[i];
		free(ch);
	}
	return got;
}

/* A chain with 5 indexers, Magu "ch" (2 fragments x 3) whose fragments hold a
 * committed root of 40 leaves signed by their first two replicas. */
static int challenge_chain(tchain *c, const char *name, int max_failures, cm_merkle **log)
{
	gtext g;
	tblock b = {0};
	char mf[64];
	snprintf(mf, sizeof(mf), "param.max_failures = %d", max_failures);
	const char *extra[] = {"param.challenge_interval = 5", "param.challenge_deadline = 3",
			       "param.challenge_leaves = 3", "param.challenges_per_round = 1",
			       "param.slash_amount = 100", "param.min_stake = 1000", mf, NULL};
	uint64_t stake[5] = {5000, 5000, 5000, 5000, 5000};
	if (open_indexers(c, name, 5, stake, &g, extra) != CM_OK)
		return -1;
	*log = make_log(40, "rec");
	add_create(c, &b, K_ACC0, "ch", 2, 3, 100, NULL);
	TAP_EQ(commit(c, &b), CM_OK);
	for (uint32_t fr = 0; fr < 2; fr++) {
		lg_fragment f;
		TAP_EQ(lg_store_fragment_get(c->s, "ch", fr, &f), CM_OK);
		add_commit_root(c, &b, key_index(f.replicas[0]), "ch", fr, *log, 0, 40, NULL);
		add_commit_root(c, &b, key_index(f.replicas[1]), "ch", fr, *log, 0, 40, NULL);
	}
	TAP_EQ(commit(c, &b), CM_OK); /* height 2 */
	return 0;
}

static void test_challenges(void)
{
	tchain c;
	tblock b = {0};
	cm_merkle *log;
	lg_challenge ch[16];
	uint8_t h[2][32];
	size_t n;

	if (challenge_chain(&c, "challenges", 100, &log) != 0)
		return;
	advance_to(&c, 4);
	TAP_EQ(open_challenges(&c, 5, ch, 16), 0);
	advance_to(&c, 5); /* the first round */
	n = open_challenges(&c, 5, ch, 16);
	TAP_EQ(n, 1);
	if (n != 1)
		goto out;
	TAP_EQ(ch[0].nleaves, 3);
	TAP_EQ(ch[0].size, 40);
	TAP_EQ(ch[0].deadline, 8);
	for (uint32_t i = 0; i < ch[0].nleaves; i++)
		TAP_CHECK(ch[0].leaves[i] < 40);
	lg_fragment f;
	TAP_EQ(lg_store_fragment_get(c.s, ch[0].magu, ch[0].fragment, &f), CM_OK);
	int signer = 0;
	for (uint32_t i = 0; i < f.nsigners; i++)
		signer |= memcmp(f.signers[i], ch[0].indexer, 32) == 0;
	TAP_CHECK(signer); /* addressed to a replica that signed the committed root */
	Muri__V1__ChallengesResponse *cr;
	TAP_EQ(lg_query_challenges(c.s, ch[0].indexer, 1, 10, &cr), CM_OK);
	TAP_EQ(cr->n_challenges, 1);
	TAP_EQ(cr->challenges[0]->id, ch[0].id);
	TAP_EQ(cr->challenges[0]->n_leaf_indices, 3);
	TAP_EQ(cr->challenges[0]->state, MURI__V1__CHALLENGE_STATE__CHALLENGE_OPEN);
	protobuf_c_message_free_unpacked(&cr->base, NULL);

	/* a right answer passes: no slash */
	int k = key_index(ch[0].indexer);
	uint64_t stake0 = account(&c, k).staked;
	add_answer(&c, &b, &ch[0], log, "rec", ANS_RIGHT, h[0]);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h[0]);
	lg_challenge got;
	TAP_EQ(lg_store_challenge_get(c.s, ch[0].id, &got), CM_OK);
	TAP_EQ(got.status, LG_CH_PASSED);
	TAP_EQ(account(&c, k).staked, stake0);
	add_answer(&c, &b, &ch[0], log, "rec", ANS_RIGHT, h[1]); /* once only */
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h[1], "is passed");

	/* wrong leaf, wrong proof, wrong tag, wrong index: each slashes 100 */
	enum answer_kind kinds[] = {ANS_WRONG_LEAF, ANS_WRONG_PROOF, ANS_WRONG_TAG, ANS_WRONG_INDEX};
	const char *want[] = {"inclusion proof of leaf", "inclusion proof of leaf", ".tag: wrong",
			      ".index:"};
	for (int r = 0; r < 4; r++) {
		advance_to(&c, 5 * (uint64_t)(r + 2));
		n = open_challenges(&c, 5, ch, 16);
		TAP_EQ(n, 1);
		if (n != 1)
			break;
		k = key_index(ch[0].indexer);
		lg_account before = account(&c, k);
		lg_indexer ixb;
		lg_store_indexer_get(c.s, K[k].pk, &ixb);
		add_answer(&c, &b, &ch[0], log, "rec", kinds[r], h[0]);
		TAP_EQ(commit(&c, &b), CM_OK);
		char msg[LG_MSG_MAX];
		TAP_EQ(tx_state(&c, h[0], msg, sizeof(msg)), MURI__V1__TX_STATE__TX_COMMITTED);
		if (!strstr(msg, want[r]) || !strstr(msg, "slashed 100"))
			printf("# answer message: %s\n", msg);
		TAP_CHECK(strstr(msg, want[r]) && strstr(msg, "slashed 100"));
		TAP_EQ(account(&c, k).staked, before.staked - 100);
		lg_indexer ixa;
		lg_store_indexer_get(c.s, K[k].pk, &ixa);
		TAP_EQ(ixa.failures, ixb.failures + 1);
		TAP_EQ(lg_store_challenge_get(c.s, ch[0].id, &got), CM_OK);
		TAP_EQ(got.status, LG_CH_FAILED);
	}
	/* someone else cannot answer, and late is slashed at the deadline */
	advance_to(&c, 30);
	n = open_challenges(&c, 5, ch, 16);
	TAP_EQ(n, 1);
	if (n == 1) {
		k = key_index(ch[0].indexer);
		lg_challenge imp = ch[0];
		memcpy(imp.indexer, K[(k + 1) % 5].pk, 32);
		add_answer(&c, &b, &imp, log, "rec", ANS_RIGHT, h[0]);
		TAP_EQ(commit(&c, &b), CM_OK);
		TAP_FAILED(&c, h[0], "is addressed to another indexer");
		uint64_t st0 = account(&c, k).staked;
		advance_to(&c, ch[0].deadline - 1);
		TAP_EQ(account(&c, k).staked, st0);
		advance_to(&c, ch[0].deadline);
		TAP_EQ(account(&c, k).staked, st0 - 100);
		TAP_EQ(lg_store_challenge_get(c.s, ch[0].id, &got), CM_OK);
		TAP_EQ(got.status, LG_CH_FAILED);
		add_answer(&c, &b, &ch[0], log, "rec", ANS_RIGHT, h[1]);
		TAP_EQ(commit(&c, &b), CM_OK);
		TAP_FAILED(&c, h[1], "is failed");
	}
out:
	cm_merkle_free(log);
	chain_close(&c);
}

static void test_challenge_removal(void)
{
	tchain c;
	tblock b = {0};
	cm_merkle *log;
	lg_challenge ch[16];
	int victim = -1, fails = 0;

	if (challenge_chain(&c, "removal", 2, &log) != 0)
		return;
	/* the first indexer challenged never answers; everyone else answers right */
	for (uint64_t h = 5; h <= 400 && fails < 2; h += 5) {
		advance_to(&c, h);
		size_t n = open_challenges(&c, 5, ch, 16);
		for (size_t i = 0; i < n; i++) {
			int k = key_index(ch[i].indexer);
			if (victim < 0)
				victim = k;
			if (k != victim)
				add_answer(&c, &b, &ch[i], log, "rec", ANS_RIGHT, NULL);
			else if (ch[i].deadline <= h + 5)
				fails++;
		}
		TAP_EQ(commit(&c, &b), CM_OK);
	}
	advance_to(&c, lg_state_height(c.st) + 5);
	TAP_EQ(fails, 2);
	if (victim < 0)
		goto out;
	lg_indexer ix;
	TAP_EQ(lg_store_indexer_get(c.s, K[victim].pk, &ix), CM_OK);
	TAP_EQ(ix.failures, 2);
	TAP_EQ(ix.jailed, 1);
	TAP_EQ(ix.active, 0);
	TAP_EQ(account(&c, victim).staked, 5000 - 200);
	Muri__V1__IndexerInfo *ii;
	TAP_EQ(lg_query_indexer(c.s, K[victim].pk, &ii), CM_OK);
	TAP_EQ(ii->jailed, 1);
	TAP_EQ(ii->failures, 2);
	protobuf_c_message_free_unpacked(&ii->base, NULL);
	/* removed from its Magu: not a member, no fragment on it, epochs bumped */
	Muri__V1__MaguInfo *mi;
	TAP_EQ(lg_query_magu(c.s, "ch", &mi), CM_OK);
	for (size_t i = 0; i < mi->n_members; i++)
		TAP_CHECK(memcmp(mi->members[i].data, K[victim].pk, 32) != 0);
	TAP_EQ(mi->n_members, 5 - 1); /* 6 slots wanted, 5 indexers, one jailed */
	for (size_t i = 0; i < mi->n_configs; i++) {
		TAP_EQ(mi->configs[i]->n_replicas, 3);
		for (size_t j = 0; j < mi->configs[i]->n_replicas; j++)
			TAP_CHECK(memcmp(mi->configs[i]->replicas[j]->pubkey.data, K[victim].pk, 32) != 0);
	}
	protobuf_c_message_free_unpacked(&mi->base, NULL);
	/* and a jailed indexer cannot come back */
	uint8_t h[32];
	add_stake(&c, &b, victim, 100, 0, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_FAILED(&c, h, "stake: this indexer is jailed");
out:
	cm_merkle_free(log);
	chain_close(&c);
}

/* A hand-over whose new replica dies: the primary has it dropped, the
 * remaining spare takes its seat and becomes the one the hand-over waits
 * for; the leaver stays until that one's root vote. */
static void test_handover_joiner_replaced(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[32];
	lg_fragment f0, f1;
	lg_handover ho;
	cm_merkle *log = make_log(8, "hj");
	static const char *const ps[] = {"param.handover_deadline = 1000", NULL};

	if (open_indexers(&c, "handover_j", 5, NULL, &g, ps) != CM_OK)
		return;
	add_create(&c, &b, K_ACC0, "j", 1, 3, 100, NULL);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_EQ(lg_store_fragment_get(c.s, "j", 0, &f0), CM_OK);
	int P = key_index(f0.primary), L = -1;
	for (uint32_t i = 0; i < f0.nreplicas && L < 0; i++)
		if (key_index(f0.replicas[i]) != P)
			L = key_index(f0.replicas[i]);
	add_stake(&c, &b, L, account(&c, L).staked, 1, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(handovers_of(&c, "j", 0, &ho), 1);
	TAP_EQ(ho.npending, 1);
	int J = key_index(ho.pending[0]), S = -1;
	for (int i = 0; i < 5; i++)
		if (!has_replica(&f0, K[i].pk) && i != J)
			S = i;
	TAP_CHECK(J >= 0 && S >= 0);
	if (J < 0 || S < 0)
		return;
	TAP_EQ(lg_store_fragment_get(c.s, "j", 0, &f1), CM_OK);
	add_drop(&c, &b, P, "j", f1.epoch, J, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "j", 0, &f1), CM_OK);
	TAP_EQ(f1.nreplicas, 4);
	TAP_CHECK(has_replica(&f1, K[L].pk) && has_replica(&f1, K[S].pk) && !has_replica(&f1, K[J].pk));
	TAP_EQ(handovers_of(&c, "j", 0, &ho), 1);
	TAP_EQ(ho.npending, 1);
	TAP_CHECK(memcmp(ho.pending[0], K[S].pk, 32) == 0);
	add_commit_root(&c, &b, S, "j", 0, log, 0, 4, h);
	TAP_EQ(commit(&c, &b), CM_OK);
	TAP_COMMITTED(&c, h);
	TAP_EQ(lg_store_fragment_get(c.s, "j", 0, &f1), CM_OK);
	TAP_EQ(f1.nreplicas, 3);
	TAP_CHECK(!has_replica(&f1, K[L].pk));
	cm_merkle_free(log);
	chain_close(&c);
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	TAP_RUN(test_magu_create);
	TAP_RUN(test_stake_weighting);
	TAP_RUN(test_minimal_movement);
	TAP_RUN(test_last_member_keeps_its_fragments);
	TAP_RUN(test_handover);
	TAP_RUN(test_handover_of_the_primary);
	TAP_RUN(test_handover_deadline);
	TAP_RUN(test_handover_joiner_replaced);
	TAP_RUN(test_index_params_on_chain);
	TAP_RUN(test_failover);
	TAP_RUN(test_drop_replica);
	TAP_RUN(test_commit_root);
	TAP_RUN(test_challenges);
	TAP_RUN(test_challenge_removal);
	return st_finish();
}
