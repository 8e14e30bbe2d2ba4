/* Tests of the ledger's store under the state machine (lg_store): crash
 * atomicity of a block commit (a child killed at every write step), the
 * block limits, store details (read-only connections, reopen, digests),
 * and the apply rate (printed, never asserted; MURI_BENCH=1 runs it alone
 * on more blocks). */
#include "st_chain.h"

#include <signal.h>
#include <sys/wait.h>

/* ---- crash atomicity ---- */

typedef struct fault_ctl {
	uint64_t fail_at; /* 0: never */
	int kill;         /* SIGKILL instead of failing */
	uint64_t steps;
} fault_ctl;

static int fault_hook(void *arg, uint64_t step)
{
	fault_ctl *f = arg;
	f->steps = step;
	if (f->fail_at && step == f->fail_at) {
		if (f->kill)
			raise(SIGKILL);
		return 1;
	}
	return 0;
}

/* A deterministic block of transfers and stakes for height h. */
static void crash_block(tchain *c, tblock *b, uint64_t h)
{
	uint64_t rs = 0x1234 + h;
	for (int i = 0; i < 40; i++) {
		int from = (int)(xs_next(&rs) % 8), to = (int)(xs_next(&rs) % 8);
		add_transfer(c, b, from, to, xs_next(&rs) % 100 + 1, 1, NULL);
	}
	add_stake(c, b, (int)(h % 8), 10, 0, NULL);
	add_create(c, b, (int)(h % 8), h % 2 ? "odd" : "even", 4, 2, 100, NULL);
}

static void test_crash_atomicity(void)
{
	tchain ref, c;
	gtext g;
	tblock b = {0};
	enum { H = 12 };
	uint8_t ref_digest[H + 1][32], ref_root[H + 1][32];
	fault_ctl fc = {0};

	/* the reference: digests and roots at every height */
	if (open_indexers(&ref, "crash_ref", 8, NULL, &g, NULL) != CM_OK)
		return;
	digest(&ref, ref_digest[0]);
	lg_state_root(ref.st, ref_root[0]);
	for (uint64_t h = 1; h <= H; h++) {
		crash_block(&ref, &b, h);
		TAP_EQ(commit(&ref, &b), CM_OK);
		digest(&ref, ref_digest[h]);
		lg_state_root(ref.st, ref_root[h]);
	}

	/* 1. every write of block 6 failing in turn: the block rolls back whole,
	 * then the same block commits with the reference root */
	if (chain_open(&c, "crash_fail", &g) != CM_OK)
		return;
	for (uint64_t h = 1; h <= 5; h++) {
		crash_block(&c, &b, h);
		TAP_EQ(commit(&c, &b), CM_OK);
	}
	crash_block(&c, &b, 6);
	lg_store_set_fault(c.s, fault_hook, &fc);
	fc.fail_at = 0;
	/* count the steps of one commit on a scratch copy of the chain */
	{
		tchain scratch;
		char cmd[1400];
		snprintf(cmd, sizeof(cmd), "cp %s %s/crash_scratch.db && cp %s-wal %s/crash_scratch.db-wal 2>/dev/null; true",
			 c.path, tmpdir, c.path, tmpdir);
		TAP_EQ(system(cmd), 0);
		if (chain_open(&scratch, "crash_scratch", NULL) == CM_OK) {
			lg_store_set_fault(scratch.s, fault_hook, &fc);
			TAP_EQ(tb_apply(&scratch, &b), CM_OK);
			chain_close(&scratch);
		}
	}
	uint64_t steps = fc.steps;
	printf("# block 6 takes %llu write steps\n", (unsigned long long)steps);
	TAP_CHECK(steps > 100);
	int bad = 0;
	quiet_apply = 1;
	for (uint64_t k = 1; k <= steps; k += (k < 40 || k + 40 > steps) ? 1 : 7) {
		uint8_t d[32];
		fc.fail_at = k;
		lg_store_set_fault(c.s, fault_hook, &fc);
		fc.fail_at = k;
		if (tb_apply(&c, &b) != CM_ERR_IO)
			bad++;
		if (lg_state_height(c.st) != 5)
			bad++;
		digest(&c, d);
		if (memcmp(d, ref_digest[5], 32) != 0)
			bad++;
		if (bad) {
			printf("# fault at step %llu left the state changed\n", (unsigned long long)k);
			break;
		}
	}
	quiet_apply = 0;
	TAP_EQ(bad, 0);
	lg_store_set_fault(c.s, NULL, NULL);
	uint8_t root[32], d[32];
	TAP_EQ(tb_apply(&c, &b), CM_OK);
	lg_state_root(c.st, root);
	TAP_CHECK(memcmp(root, ref_root[6], 32) == 0);
	digest(&c, d);
	TAP_CHECK(memcmp(d, ref_digest[6], 32) == 0);
	tb_clear(&b);
	chain_close(&c);

	/* 2. a child commits blocks 1..H and is SIGKILLed at a chosen write step
	 * (or by the parent at a random time); the reopened store is exactly at
	 * some height with that height's reference state */
	uint64_t rs = 77;
	int runs = 0, mismatches = 0, seen_mid = 0;
	for (int trial = 0; trial < 24; trial++) {
		char name[64], cmd[600];
		snprintf(name, sizeof(name), "crash_kill%d", trial);
		snprintf(cmd, sizeof(cmd), "rm -f %s/%s.db*", tmpdir, name);
		TAP_EQ(system(cmd), 0);
		if (chain_open(&c, name, &g) != CM_OK)
			break;
		chain_close(&c);
		int by_timer = trial % 3 == 2;
		uint64_t kill_at = 1 + xs_next(&rs) % (steps * 7);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			tchain cc;
			fault_ctl f = {by_timer ? 0 : kill_at, 1, 0};
			if (chain_open(&cc, name, NULL) != CM_OK)
				_exit(2);
			lg_store_set_fault(cc.s, fault_hook, &f);
			for (uint64_t h = 1; h <= H; h++) {
				tblock bb = {0};
				crash_block(&cc, &bb, h);
				if (commit(&cc, &bb) != CM_OK)
					_exit(3);
			}
			_exit(0);
		}
		if (by_timer) {
			struct timespec ts = {0, (long)(xs_next(&rs) % 40000000)};
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		}
		int status;
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			printf("# child exited %d\n", WEXITSTATUS(status));
			mismatches++;
			continue;
		}
		if (chain_open(&c, name, NULL) != CM_OK) {
			mismatches++;
			continue;
		}
		uint64_t hh = lg_state_height(c.st);
		digest(&c, d);
		lg_state_root(c.st, root);
		if (hh > H || memcmp(d, ref_digest[hh], 32) != 0 || memcmp(root, ref_root[hh], 32) != 0) {
			printf("# trial %d: state at height %llu differs from the reference\n", trial,
			       (unsigned long long)hh);
			mismatches++;
		}
		seen_mid += hh > 0 && hh < H;
		/* and the store goes on from there */
		if (hh < H) {
			crash_block(&c, &b, hh + 1);
			TAP_EQ(commit(&c, &b), CM_OK);
			lg_state_root(c.st, root);
			TAP_CHECK(memcmp(root, ref_root[hh + 1], 32) == 0);
		}
		chain_close(&c);
		runs++;
	}
	printf("# %d killed children, %d stopped mid-chain\n", runs, seen_mid);
	TAP_EQ(mismatches, 0);
	TAP_CHECK(seen_mid >= 5);
	chain_close(&ref);
}

/* ---- block limits ---- */

static void test_block_limits(void)
{
	tchain c;
	tblock b = {0};
	gtext g;
	uint8_t h[5][32];

	g_base(&g);
	g_account(&g, K_ACC0, 1000);
	g_param(&g, "block_max_txs", 3);
	if (chain_open(&c, "limits", &g) != CM_OK)
		return;
	for (int i = 0; i < 5; i++)
		add_transfer(&c, &b, K_ACC0, K_ACC0 + 1, 10, 0, h[i]);
	TAP_EQ(commit(&c, &b), CM_OK);
	for (int i = 0; i < 3; i++)
		TAP_COMMITTED(&c, h[i]);
	TAP_FAILED(&c, h[3], "block: beyond block_max_txs = 3");
	TAP_FAILED(&c, h[4], "block: beyond block_max_txs = 3");
	TAP_EQ(balance(&c, K_ACC0 + 1), 30);
	TAP_EQ(account(&c, K_ACC0).nonce, 3);
	chain_close(&c);
}

/* ---- store details ---- */

static void test_store_misc(void)
{
	tchain c;
	gtext g;
	uint8_t *data;
	size_t len;
	char err[256];

	g_base(&g);
	if (chain_open(&c, "misc", &g) != CM_OK)
		return;
	TAP_EQ(lg_store_get_safety(c.s, &data, &len), CM_ERR_NOTFOUND);
	TAP_EQ(lg_store_put_safety(c.s, "view=7", 6), CM_OK);
	TAP_EQ(lg_store_put_safety(c.s, "view=8;locked", 13), CM_OK);
	TAP_EQ(lg_store_get_safety(c.s, &data, &len), CM_OK);
	TAP_EQ(len, 13);
	TAP_CHECK(memcmp(data, "view=8;locked", 13) == 0);
	free(data);
	TAP_EQ(lg_store_begin(c.s), CM_OK);
	TAP_EQ(lg_store_put_safety(c.s, "ax", 1), CM_ERR_STATE);
	TAP_EQ(lg_store_begin(c.s), CM_ERR_STATE);
	lg_store_rollback(c.s);

	/* a savepoint undoes the rows and the write-set entries after it */
	lg_account ax = {{1}, 10, 0, 0, 0}, ay = {{2}, 20, 0, 0, 0}, got;
	uint8_t ws1[32], ws2[32];
	TAP_EQ(lg_store_begin(c.s), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	lg_store_writeset_hash(c.s, ws1);
	TAP_EQ(lg_store_savepoint(c.s), CM_OK);
	ax.balance = 11;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ay), CM_OK);
	TAP_EQ(lg_store_writeset_len(c.s), 3);
	TAP_EQ(lg_store_rollback_to(c.s), CM_OK);
	TAP_EQ(lg_store_writeset_len(c.s), 1);
	TAP_EQ(lg_store_account_get(c.s, ax.pk, &got), CM_OK);
	TAP_EQ(got.balance, 10);
	TAP_EQ(lg_store_account_get(c.s, ay.pk, &got), CM_ERR_NOTFOUND);
	lg_store_writeset_hash(c.s, ws2);
	TAP_CHECK(memcmp(ws1, ws2, 32) == 0);
	TAP_EQ(lg_store_savepoint(c.s), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ay), CM_OK);
	TAP_EQ(lg_store_release(c.s), CM_OK);
	TAP_EQ(lg_store_writeset_len(c.s), 2);
	TAP_EQ(lg_store_account_get(c.s, ay.pk, &got), CM_OK);
	/* the last write of a key wins; the write order of different keys does not matter */
	ax.balance = 12;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	lg_store_writeset_hash(c.s, ws1);
	lg_store_rollback(c.s);
	TAP_EQ(lg_store_account_get(c.s, ay.pk, &got), CM_ERR_NOTFOUND);
	TAP_EQ(lg_store_begin(c.s), CM_OK);
	TAP_EQ(lg_store_account_put(c.s, &ay), CM_OK);
	ax.balance = 99;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	ax.balance = 12;
	TAP_EQ(lg_store_account_put(c.s, &ax), CM_OK);
	lg_store_writeset_hash(c.s, ws2);
	TAP_CHECK(memcmp(ws1, ws2, 32) == 0);
	lg_store_rollback(c.s);

	uint8_t root[32];
	lg_state_root(c.st, root);
	chain_close(&c);

	/* reopening resumes; another genesis is refused; a new store needs one */
	TAP_EQ(chain_open(&c, "misc", &g), CM_OK);
	uint8_t root2[32];
	lg_state_root(c.st, root2);
	TAP_CHECK(memcmp(root, root2, 32) == 0);
	TAP_STREQ(lg_state_chain_id(c.st), CHAIN);
	TAP_EQ(lg_store_get_safety(c.s, &data, &len), CM_OK); /* survived */
	free(data);
	chain_close(&c);
	g_param(&g, "slash_amount", 1);
	lg_genesis *other = parse_gen(&g);
	lg_state *st;
	snprintf(err, sizeof(err), "%s/misc.db", tmpdir);
	char path[300];
	snprintf(path, sizeof(path), "%s", err);
	TAP_EQ(lg_state_open(&st, path, other, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "genesis file differs") != NULL);
	snprintf(path, sizeof(path), "%s/fresh.db", tmpdir);
	TAP_EQ(lg_state_open(&st, path, NULL, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "needs a genesis") != NULL);
	lg_genesis_free(other);

	/* the same genesis written differently gives the same root */
	tchain x, y;
	gtext g2;
	char hk[65];
	g_base(&g2);
	g_account(&g2, 3, 10);
	g_account(&g2, 4, 20);
	if (chain_open(&x, "order1", &g2) == CM_OK) {
		g2.n = 0;
		gl(&g2, "account = %s 20   # reordered", hexkey(4, hk));
		gl(&g2, "gateway=%s", hexkey(K_GATEWAY, hk));
		gl(&g2, "chain_id = " CHAIN);
		gl(&g2, "account = %s 10", hexkey(3, hk));
		gl(&g2, "replica = %s 127.0.0.1:7100", hexkey(K_REPLICA, hk));
		gl(&g2, "account = %s 1000", hexkey(K_GATEWAY, hk));
		gl(&g2, "genesis_time_ms = 1700000000000");
		if (chain_open(&y, "order2", &g2) == CM_OK) {
			uint8_t r1[32], r2[32];
			lg_state_root(x.st, r1);
			lg_state_root(y.st, r2);
			TAP_CHECK(memcmp(r1, r2, 32) == 0);
			chain_close(&y);
		}
		chain_close(&x);
	}
}

/* ---- apply rate ---- */

static void bench_transfers(int nblocks, int per_block)
{
	tchain c;
	gtext g;
	const int nacc = 64;
	tblock *blocks = calloc((size_t)nblocks, sizeof(*blocks));
	uint64_t rs = 5, nonce[NKEYS] = {0};

	g_base(&g);
	for (int i = 0; i < nacc; i++)
		g_account(&g, i, 1ull << 40);
	for (int flags = 0; flags < 2; flags++) {
		char name[32];
		snprintf(name, sizeof(name), "bench%d", flags);
		if (chain_open(&c, name, &g) != CM_OK)
			break;
		memset(nonce, 0, sizeof(nonce));
		rs = 5;
		for (int i = 0; i < nblocks; i++) {
			for (int j = 0; j < per_block; j++) {
				Muri__V1__Transaction t;
				Muri__V1__Transfer tr = MURI__V1__TRANSFER__INIT;
				int from = (int)(xs_next(&rs) % nacc), to = (int)(xs_next(&rs) % 100000);
				uint8_t dst[32];
				cm_hash(dst, CM_DOM_TEST, &to, sizeof(to)); /* mostly new accounts */
				tx_base(&t, from, nonce[from]++, 1);
				tr.to.data = dst;
				tr.to.len = 32;
				tr.amount = 1;
				t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_TRANSFER;
				t.transfer = &tr;
				tb_add(&blocks[i], &t, from, NULL);
			}
		}
		double t0 = now_s();
		int ok = 1;
		for (int i = 0; i < nblocks; i++)
			ok &= tb_apply_flags(&c, &blocks[i], flags ? LG_APPLY_SIGS_VERIFIED : 0) == CM_OK;
		double dt = now_s() - t0;
		TAP_CHECK(ok);
		uint8_t hh[32];
		lg_tx_hash(blocks[nblocks - 1].tx[per_block - 1]->body.data,
			   blocks[nblocks - 1].tx[per_block - 1]->body.len, hh);
		TAP_EQ(tx_state(&c, hh, NULL, 0), MURI__V1__TX_STATE__TX_COMMITTED);
		printf("# apply rate, blocks of %d signed transfers, signatures %s: %.0f tx/s (%.1f ms/block)\n",
		       per_block, flags ? "pre-verified" : "checked", nblocks * per_block / dt,
		       dt * 1000 / nblocks);
		for (int i = 0; i < nblocks; i++)
			tb_clear(&blocks[i]);
		chain_close(&c);
	}
	free(blocks);
}

static void test_apply_rate(void)
{
	const char *env = getenv("MURI_BENCH");
	bench_transfers(env && *env == '1' ? 30 : 4, 1000);
}

int main(void)
{
	if (st_setup() != 0)
		return 1;
	const char *bench = getenv("MURI_BENCH");
	if (bench && strcmp(bench, "1") == 0) { /* the apply rate only, on more blocks */
		TAP_RUN(test_apply_rate);
		return tap_done();
	}
	TAP_RUN(test_crash_atomicity);
	TAP_RUN(test_block_limits);
	TAP_RUN(test_store_misc);
	TAP_RUN(test_apply_rate);
	return st_finish();
}
