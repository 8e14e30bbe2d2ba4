/* The seeded simulation runs (see hs_sim.h), VOPR style: one seed picks the
 * fault rates, the network, partitions, crashes, clock offsets and drift,
 * the Byzantine replica's lies and the adversarial stretches of a schedule;
 * a safety phase, then GST and a liveness bound; many seeds per run, or one
 * replayed with a trace. */
#include "hs_sim.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- seeded schedules (VOPR style) ---- */

/* A random network for one stretch of the safety phase, from nearly fine to
 * very lossy, with some paths worse than others. */
static void random_network(sim *s, schedule_info *info)
{
	switch (below(s, 4)) {
	case 0: /* good, as after GST */
		set_network(s, 0, 0, 0, 1, 20);
		break;
	case 1: /* slow: delays around the base timeout */
		set_network(s, (uint32_t)below(s, 50000), (uint32_t)below(s, 50000), 0, 1,
			    50 + (uint32_t)below(s, 2 * BASE_TIMEOUT));
		break;
	default: /* lossy, duplicating, corrupting */
		set_network(s, (uint32_t)below(s, 400000), (uint32_t)below(s, 150000),
			    (uint32_t)below(s, 20000), 1, 5 + (uint32_t)below(s, 300));
	}
	memset(s->path, 0, sizeof(s->path));
	uint64_t bad = below(s, 4); /* a few paths lossier or slower (clogged) than the rest */
	for (uint64_t k = 0; k < bad; k++) {
		net_path *p = &s->path[below(s, N)][below(s, N)];
		p->drop_ppm = (uint32_t)below(s, 900000);
		p->dup_ppm = (uint32_t)below(s, 300000);
		p->dmin = (uint32_t)below(s, 200);
		p->dmax = p->dmin + (uint32_t)below(s, 2000);
	}
	s->replay_ppm = below(s, 2) ? 0 : (uint32_t)below(s, 100000);
	if (s->replay_ppm)
		info->replays++;
}

static void random_partition(sim *s, schedule_info *info)
{
	uint64_t kind = below(s, 4);
	for (int i = 0; i < N; i++)
		s->group[i] = 0;
	if (kind == 0) {                /* one replica cut off */
		s->group[below(s, N)] = 1;
	} else if (kind == 1) {         /* two and two */
		uint32_t a = (uint32_t)below(s, N), b = (a + 1 + (uint32_t)below(s, N - 1)) % N;
		s->group[a] = s->group[b] = 1;
	} else if (kind == 2) {         /* any split */
		for (int i = 0; i < N; i++)
			s->group[i] = (int)below(s, 2);
	} else {                        /* asymmetric: some directed paths cut */
		uint64_t cuts = 1 + below(s, 4);
		for (uint64_t k = 0; k < cuts; k++)
			s->path[below(s, N)][below(s, N)].cut = 1;
	}
	info->partitions++;
}

/* The Byzantine replica's lies, each at a rate of the seed's choosing. */
static void random_byzantine(sim *s)
{
	s->byz = (int)below(s, N);
	s->equiv_ppm = (uint32_t)below(s, 1000000);
	s->silent_ppm = (uint32_t)below(s, 300000);
	s->poison_ppm = (uint32_t)below(s, 200000);
	s->voteall_ppm = (uint32_t)below(s, 1000000);
	s->junk_ppm = (uint32_t)below(s, 30000);
	s->fork_ppm = (uint32_t)below(s, 1000000);
	s->lie_ppm = (uint32_t)below(s, 1000000);
	s->forge_ppm = (uint32_t)below(s, 1000000);
	s->oddview_ppm = (uint32_t)below(s, 300000);
	s->rootlie_ppm = (uint32_t)below(s, 200000);
}

/* One seeded schedule: rounds of a safety phase -- changing networks, paths,
 * partitions, crashes and restarts (of the leader too), sometimes a long
 * stretch in which the adversary lets QCs form but never three in
 * consecutive views -- each followed by a liveness phase (GST: a healed
 * network, the crashed back up) in which every honest running replica must
 * commit again within LIVE_BOUND_MS. The invariants are checked after every
 * step throughout. 0 if every check held. */
int run_schedule(uint64_t seed, schedule_info *info)
{
	static sim s;
	sim_init(&s, seed);
	const char *tr = getenv("MURI_SIM_TRACE");
	s.trace = tr ? atoi(tr) != 0 : getenv("MURI_SIM_SEED") != NULL;
	static const uint32_t max_blocks[] = {8, 16, 32, 64, 256};
	s.cfg.max_blocks = max_blocks[below(&s, 5)];
	if (below(&s, 2)) {
		for (uint32_t i = 0; i < N; i++) { /* clocks apart and drifting */
			s.r[i].clock_offset_ms = below(&s, 10000);
			s.r[i].drift_ppm = (int32_t)below(&s, 200001) - 100000;
		}
	}
	if (below(&s, 2)) {
		random_byzantine(&s);
		info->byz++;
	}
	sim_start(&s);
	int rounds = 1 + (int)below(&s, 4);
	for (int round = 0; round < rounds && !s.failed; round++) {
		uint64_t end = s.now + 500 + below(&s, 6000);
		if (below(&s, 6) == 0) {
			/* long enough for well over max_blocks blocks without a commit */
			s.drop_votes_mod3 = 1;
			end = s.now + 30000 + below(&s, 60000);
			info->no3++;
		}
		/* faults: every 50-800 ms something changes */
		while (s.now < end && !s.failed) {
			uint64_t k = below(&s, 10);
			if (k < 3) {
				random_network(&s, info);
			} else if (k < 5) {
				random_partition(&s, info);
			} else if (k < 6) {
				for (int i = 0; i < N; i++)
					s.group[i] = 0;
				memset(s.path, 0, sizeof(s.path));
			} else if (k < 8) {
				/* crash an honest replica (often the leader), unless it is the
				 * only one of its kind left */
				int v = below(&s, 2) ? current_leader(&s) : (int)below(&s, N);
				int up = 0;
				for (int i = 0; i < N; i++)
					up += s.r[i].hs != NULL;
				if (v != s.byz && s.r[v].hs && up > 1) {
					crash(&s, (uint32_t)v);
					info->crashes++;
				}
			} else {
				int v = (int)below(&s, N);
				if (!s.r[v].hs)
					restart(&s, (uint32_t)v);
			}
			uint64_t next = s.now + 50 + below(&s, 750);
			run(&s, next < end ? next : end, NULL, NULL);
		}
		/* GST: no loss, short delays; restart the crashed, except that with
		 * no Byzantine replica one may stay down (f = 1 faulty) */
		heal(&s);
		int keep_down = s.byz < 0 && below(&s, 3) == 0 ? (int)below(&s, N) : -1;
		for (int i = 0; i < N; i++) {
			if (!s.r[i].hs && i != keep_down)
				restart(&s, (uint32_t)i);
		}
		if (keep_down >= 0 && s.r[keep_down].hs)
			crash(&s, (uint32_t)keep_down);
		uint64_t healed = s.now;
		if (s.trace)
			printf("# %6" PRIu64 " GST; byzantine %d; up:%s%s%s%s\n", s.now, s.byz, s.r[0].hs ? " 0" : "",
			       s.r[1].hs ? " 1" : "", s.r[2].hs ? " 2" : "", s.r[3].hs ? " 3" : "");
		expect_progress(&s, 3 + below(&s, 10), LIVE_BOUND_MS, "after GST");
		if (s.now - healed > info->worst_recovery_ms) {
			info->worst_recovery_ms = s.now - healed;
			info->worst_seed = seed;
		}
		info->rounds++;
	}
	if (!s.failed && !chains_agree(&s))
		sim_fail(&s, "committed chains differ");
	info->msgs += s.msgs;
	info->commits += max_honest_height(&s);
	info->forged += s.forged_sent;
	info->rootlies += s.rootlies_sent;
	for (uint32_t i = 0; i < N; i++) {
		if (s.r[i].hs) {
			lg_hs_stats st;
			lg_hs_get_stats(s.r[i].hs, &st);
			info->evicted += st.evicted;
			info->grown += st.tree_grown;
		}
	}
	int failed = s.failed;
	if (failed) {
		printf("# seed 0x%016" PRIx64 ": %s\n", s.seed, s.why);
		printf("# replay it alone, with a trace: MURI_SIM_SEED=0x%016" PRIx64 " %s\n", s.seed,
		       "build/tests/ledger/test_hotstuff");
	}
	sim_free(&s);
	return failed;
}

uint64_t schedule_seed(uint64_t k)
{
	return mix64(0x686f7473747566ULL + k); /* "hotstuf" */
}

#if defined(__SANITIZE_ADDRESS__)
#define DEFAULT_SEEDS 1000    /* the sanitizers make each seed ~3x slower */
#else
#define DEFAULT_SEEDS 2000
#endif

int sim_run_seeds(void)
{
	const char *env = getenv("MURI_SIM_SEEDS"), *one = getenv("MURI_SIM_SEED");
	const char *from = getenv("MURI_SIM_FIRST"); /* index of the first seed (0) */
	long first = from ? atol(from) : 0;
	long count = env ? atol(env) : DEFAULT_SEEDS;
	schedule_info info = {0};
	int failures = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (one) {
		failures += run_schedule(strtoull(one, NULL, 0), &info);
		count = 1;
	} else {
		for (long k = first; k < first + count && failures < 5; k++)
			failures += run_schedule(schedule_seed((uint64_t)k), &info);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# %ld seeds (%" PRIu64 " GST rounds, %" PRIu64 " with a Byzantine replica sending %" PRIu64
	       " forged QCs and %" PRIu64 " false state pins, %" PRIu64 " stretches without a three-chain, %" PRIu64 " crashes, %" PRIu64
	       " partitions, %" PRIu64 " replaying networks): %" PRIu64 " messages, %" PRIu64
	       " blocks committed, %" PRIu64 " blocks evicted, %" PRIu64 " tree growths, %d failed, %.1f s\n",
	       count, info.rounds, info.byz, info.forged, info.rootlies, info.no3, info.crashes, info.partitions, info.replays,
	       info.msgs, info.commits, info.evicted, info.grown, failures, secs);
	printf("# slowest recovery after GST: %" PRIu64 " simulated ms (seed 0x%016" PRIx64 ")\n",
	       info.worst_recovery_ms, info.worst_seed);
	return failures;
}
