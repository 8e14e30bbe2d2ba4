/* Tests of the chained HotStuff core (services/ledger/lg_hotstuff): the
 * encodings and certificates; hand-written scenarios on the simulated
 * cluster of tests/ledger/hs_sim.h (4 replicas, f = 1) -- one per rule and
 * per hole found (forged QCs, restored QCs, other chains' signatures, a tree
 * that must not wedge); then the seeded simulation (hs_sim_vopr.c).
 * MURI_SIM_SEEDS sets the number of seeds, MURI_SIM_SEED replays one with a
 * trace. */
#include "tap.h"
#include "cm_bytes.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "lg_hotstuff.h"
#include "hs_sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* BLAKE2b-256 of the genesis header: fixed for the life of the chain */
#define GENESIS_HEX "a385ede4c7fab4778bb9eccdc1d5fccf8302c864666d580a6077fd065cd2e979"

/* ---- encodings and certificates ---- */


static int qc_equal(const cm_qc *a, const cm_qc *b)
{
	if (a->view != b->view || a->signers != b->signers || memcmp(a->block_hash, b->block_hash, CM_HASH_BYTES))
		return 0;
	for (int i = 0; i < CM_CHAIN_MAX_REPLICAS; i++)
		if ((a->signers >> i & 1) && memcmp(a->sigs[i], b->sigs[i], CM_SIG_BYTES))
			return 0;
	return 1;
}

static void test_codec(void)
{
	static cm_block b, d;
	static lg_hs_msg m, m2;
	static lg_hs_safety st, st2;
	static uint8_t buf[8192];
	uint8_t payload[40], parent[CM_HASH_BYTES];
	size_t len;

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	memset(parent, 0xab, sizeof(parent));
	memset(&b, 0, sizeof(b));
	b.height = 7;
	b.view = 9;
	memcpy(b.parent, parent, CM_HASH_BYTES);
	make_qc(&b.justify, 8, parent, 0x0b);
	b.proposer = 1;
	b.payload = payload;
	b.payload_len = sizeof(payload);
	cm_block_hash(&b);

	TAP_EQ(cm_block_encode(&b, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(len, cm_block_size(&b));
	TAP_EQ(len, CM_BLOCK_HEADER_BYTES + CM_QC_HEADER_BYTES + 3 * CM_SIG_BYTES + sizeof(payload));
	TAP_EQ(cm_block_decode(buf, len, &d), CM_OK);
	TAP_EQ(d.height, 7);
	TAP_EQ(d.view, 9);
	TAP_EQ(d.proposer, 1);
	TAP_EQ(d.payload_len, sizeof(payload));
	TAP_CHECK(memcmp(d.payload, payload, sizeof(payload)) == 0);
	TAP_CHECK(qc_equal(&d.justify, &b.justify));
	TAP_CHECK(memcmp(d.hash, b.hash, CM_HASH_BYTES) == 0);
	/* every strict prefix and any trailing byte are rejected */
	int bad = 0;
	for (size_t k = 0; k < len; k++)
		bad += cm_block_decode(buf, k, &d) == CM_ERR_INVALID;
	TAP_EQ(bad, len);
	TAP_EQ(cm_block_decode(buf, len + 1, &d), CM_ERR_INVALID);
	TAP_EQ(cm_block_encode(&b, buf, len - 1, &len), CM_ERR_TOOBIG);
	/* the hash covers every header field and the payload */
	cm_block_encode(&b, buf, sizeof(buf), &len);
	buf[0] = 2; /* unknown version */
	TAP_EQ(cm_block_decode(buf, len, &d), CM_ERR_INVALID);
	int changed = 0;
	for (size_t k = 1; k < len; k++) {
		cm_block_encode(&b, buf, sizeof(buf), &len);
		buf[k] ^= 0x10;
		if (cm_block_decode(buf, len, &d) == CM_OK)
			changed += memcmp(d.hash, b.hash, CM_HASH_BYTES) != 0;
		else
			changed++;
	}
	TAP_EQ(changed, len - 1);
	/* a payload length beyond the limit */
	cm_block_encode(&b, buf, sizeof(buf), &len);
	size_t off = len - sizeof(payload) - 4;
	buf[off] = 0x7f;
	TAP_EQ(cm_block_decode(buf, len, &d), CM_ERR_INVALID);

	/* messages */
	m.type = LG_HS_MSG_PROPOSAL;
	m.u.proposal.block = b;
	memset(m.u.proposal.sig, 0x5a, CM_SIG_BYTES);
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(len, lg_hs_msg_size(&m));
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_OK);
	TAP_EQ(m2.type, LG_HS_MSG_PROPOSAL);
	TAP_CHECK(memcmp(m2.u.proposal.block.hash, b.hash, CM_HASH_BYTES) == 0);
	TAP_CHECK(memcmp(m2.u.proposal.sig, m.u.proposal.sig, CM_SIG_BYTES) == 0);
	TAP_EQ(lg_hs_msg_decode(buf, len - 1, &m2), CM_ERR_INVALID);

	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_VOTE;
	m.u.vote.view = 1234567890123ULL;
	memset(m.u.vote.block_hash, 3, CM_HASH_BYTES);
	m.u.vote.voter = 2;
	memset(m.u.vote.sig, 4, CM_SIG_BYTES);
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(len, LG_HS_VOTE_BYTES);
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_OK);
	TAP_EQ(m2.u.vote.view, 1234567890123ULL);
	TAP_EQ(m2.u.vote.voter, 2);
	TAP_EQ(lg_hs_msg_decode(buf, len + 1, &m2), CM_ERR_INVALID);

	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_NEWVIEW;
	m.u.newview.view = 77;
	make_qc(&m.u.newview.high_qc, 70, parent, 0x0e);
	m.u.newview.sender = 3;
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_OK);
	TAP_EQ(m2.u.newview.view, 77);
	TAP_EQ(m2.u.newview.sender, 3);
	TAP_CHECK(qc_equal(&m2.u.newview.high_qc, &m.u.newview.high_qc));
	bad = 0;
	for (size_t k = 0; k < len; k++)
		bad += lg_hs_msg_decode(buf, k, &m2) == CM_ERR_INVALID;
	TAP_EQ(bad, len);
	buf[0] = 9;
	TAP_EQ(lg_hs_msg_decode(buf, len, &m2), CM_ERR_INVALID);
	m.type = 0;
	TAP_EQ(lg_hs_msg_encode(&m, buf, sizeof(buf), &len), CM_ERR_INVALID);

	/* safety state */
	st.last_voted_view = 99;
	make_qc(&st.locked_qc, 97, parent, 0x07);
	make_qc(&st.high_qc, 98, payload, 0x0d);
	TAP_EQ(lg_hs_safety_encode(&st, buf, sizeof(buf), &len), CM_OK);
	TAP_EQ(lg_hs_safety_decode(buf, len, &st2), CM_OK);
	TAP_EQ(st2.last_voted_view, 99);
	TAP_CHECK(qc_equal(&st2.locked_qc, &st.locked_qc));
	TAP_CHECK(qc_equal(&st2.high_qc, &st.high_qc));
	TAP_EQ(lg_hs_safety_decode(buf, len - 1, &st2), CM_ERR_INVALID);
	TAP_EQ(lg_hs_safety_decode(buf, len + 1, &st2), CM_ERR_INVALID);
}

static void test_genesis_and_qc(void)
{
	cm_block g;
	static cm_qc gq, qc;
	char hex[2 * CM_HASH_BYTES + 1];
	cm_block_genesis(&g);
	cm_qc_genesis(&gq);
	cm_hex(hex, g.hash, CM_HASH_BYTES);
	/* the well-known genesis hash: changing it is a new chain */
	TAP_STREQ(hex, GENESIS_HEX);
	TAP_EQ(g.height, 0);
	TAP_CHECK(memcmp(gq.block_hash, g.hash, CM_HASH_BYTES) == 0);
	TAP_EQ(cm_qc_verify(&gq, CHAIN, N, F, verify_cb, NULL), CM_OK);
	qc = gq;
	qc.block_hash[0] ^= 1;
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_INVALID);

	uint8_t h[CM_HASH_BYTES];
	memset(h, 0x11, sizeof(h));
	make_qc(&qc, 5, h, 0x07);
	TAP_EQ(cm_qc_count(&qc), 3);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_OK);
	make_qc(&qc, 5, h, 0x0f); /* more than 2f+1 is fine */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_OK);
	make_qc(&qc, 5, h, 0x05); /* 2 < 2f+1 */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, 5, h, 0x13); /* replica 4 does not exist */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_INVALID);
	make_qc(&qc, 5, h, 0x07);
	qc.sigs[1][3] ^= 1;
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, 5, h, 0x07);
	qc.view = 6; /* signatures were over view 5 */
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, 5, h, 0x07);
	qc.sigs[0][0] = qc.sigs[1][0]; /* one replica's signature reused as another's */
	memcpy(qc.sigs[0], qc.sigs[1], CM_SIG_BYTES);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_VERIFY);
	make_qc(&qc, CM_CHAIN_MAX_VIEW + 1, h, 0x07);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, N, F, verify_cb, NULL), CM_ERR_INVALID);
	make_qc(&qc, 5, h, 0x07);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, 3, 1, verify_cb, NULL), CM_ERR_INVALID); /* n < 3f+1 */
	/* 7 replicas, f = 2: n-f = 5 signatures */
	make_qc(&qc, 5, h, 0x1f);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, 7, 2, verify_cb, NULL), CM_OK);
	make_qc(&qc, 5, h, 0x1e);
	TAP_EQ(cm_qc_verify(&qc, CHAIN, 7, 2, verify_cb, NULL), CM_ERR_VERIFY);

	/* vote and NEW-VIEW digests never coincide, and bind every field */
	uint8_t d1[CM_HASH_BYTES], d2[CM_HASH_BYTES];
	cm_vote_digest(d1, CHAIN, 5, h);
	lg_hs_newview_digest(d2, CHAIN, 5, &qc);
	TAP_CHECK(memcmp(d1, d2, CM_HASH_BYTES) != 0);
	cm_vote_digest(d2, CHAIN, 6, h);
	TAP_CHECK(memcmp(d1, d2, CM_HASH_BYTES) != 0);
}

/* ---- scenarios on the simulated cluster ---- */


static void test_happy_path(void)
{
	static sim s;
	sim_init(&s, 1);
	set_network(&s, 0, 0, 0, 2, 8);
	sim_start(&s);
	run(&s, 3000, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	lg_hs_stats st;
	for (uint32_t i = 0; i < N; i++) {
		/* about one view per two hops of ~5 ms; a block commits three views later */
		TAP_CHECK(committed_height(&s, i) > 150);
		TAP_CHECK(committed_height(&s, i) + 6 > lg_hs_view(s.r[i].hs));
		TAP_EQ(lg_hs_timeout_ms(s.r[i].hs), BASE_TIMEOUT);
		lg_hs_get_stats(s.r[i].hs, &st);
		TAP_EQ(st.timeouts, 0);
		TAP_EQ(st.bad_msgs + st.bad_sigs, 0);
		TAP_CHECK(st.blocks_in_memory <= 8);
		TAP_EQ(lg_hs_committed(s.r[i].hs, NULL), committed_height(&s, i));
		/* the lock is a QC the replica holds, below its highest QC */
		TAP_CHECK(lg_hs_locked_qc(s.r[i].hs)->view < lg_hs_high_qc(s.r[i].hs)->view);
		TAP_EQ(lg_hs_last_voted_view(s.r[i].hs) + 1 >= lg_hs_view(s.r[i].hs), 1);
	}
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* The same cluster with the real ed25519 signatures of production. */
static void test_ed25519(void)
{
	static sim s;
	sim_init(&s, 2);
	s.use_ed25519 = 1;
	for (uint32_t i = 0; i < N; i++) {
		uint8_t seed[CM_SEED_BYTES] = {(uint8_t)i, 42};
		cm_keypair_from_seed(&s.kp[i], seed);
	}
	set_network(&s, 20000, 0, 0, 2, 20);
	sim_start(&s);
	run(&s, 1500, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	for (uint32_t i = 0; i < N; i++)
		TAP_CHECK(committed_height(&s, i) > 10);
	TAP_CHECK(chains_agree(&s));
	for (uint32_t i = 0; i < N; i++)
		cm_keypair_wipe(&s.kp[i]);
	sim_free(&s);
}


/* kill -9 the leader: the others commit again; it restarts, fetches what
 * it missed, commits the same blocks and votes again. */
static void test_leader_crash_recovery(void)
{
	static sim s;
	sim_init(&s, 3);
	set_network(&s, 0, 0, 0, 2, 15);
	sim_start(&s);
	run(&s, 500, NULL, NULL);
	uint32_t dead = (uint32_t)current_leader(&s);
	uint64_t before = committed_height(&s, dead);
	uint64_t voted = lg_hs_last_voted_view(s.r[dead].hs);
	crash(&s, dead);
	expect_progress(&s, 10, 3000, "leader down");
	TAP_CHECK(!s.failed);
	TAP_CHECK(max_honest_height(&s) >= before + 10);
	run(&s, s.now + 2000, NULL, NULL); /* a long way ahead */
	uint64_t others = max_honest_height(&s);
	lg_hs_stats st;
	restart(&s, dead);
	expect_progress(&s, 3, 5000, "after the restart");
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(committed_height(&s, dead) >= others);
	TAP_CHECK(lg_hs_last_voted_view(s.r[dead].hs) > voted);
	lg_hs_get_stats(s.r[dead].hs, &st);
	TAP_CHECK(st.blocks_requested > 0);     /* it caught up by fetching */
	TAP_CHECK(st.votes_sent + st.proposals > 0); /* and votes again */
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

static void test_byzantine_equivocation(void)
{
	for (uint64_t seed = 10; seed < 14; seed++) {
		static sim s;
		sim_init(&s, seed);
		s.byz = (int)(seed % N);
		s.equiv_ppm = 1000000;  /* always two blocks for its views */
		s.voteall_ppm = 1000000; /* and votes for everything it sees */
		s.junk_ppm = 20000;
		set_network(&s, 0, 0, 0, 1, 20);
		sim_start(&s);
		expect_progress(&s, 40, 20000, "byzantine leader");
		report(&s);
		TAP_CHECK(!s.failed);
		TAP_CHECK(s.conflicts > 3);
		TAP_CHECK(chains_agree(&s));
		uint64_t eq = 0;
		for (uint32_t i = 0; i < N; i++) {
			lg_hs_stats st;
			lg_hs_get_stats(s.r[i].hs, &st);
			if (!s.r[i].byz)
				eq += st.equivocations + st.dup_votes;
		}
		TAP_CHECK(eq > 0); /* the honest ones saw the double votes */
		sim_free(&s);
	}
}

/* A leader whose payloads the app rejects gets no honest vote. */
static void test_rejected_payload(void)
{
	static sim s;
	sim_init(&s, 20);
	s.byz = 2;
	s.poison_ppm = 1000000;
	set_network(&s, 0, 0, 0, 1, 10);
	sim_start(&s);
	expect_progress(&s, 20, 20000, "poisoning leader");
	report(&s);
	TAP_CHECK(!s.failed); /* watch_vote fails on any honest vote for poison */
	TAP_CHECK(s.poison.n > 3);
	uint64_t rejected = 0;
	for (uint32_t i = 0; i < N; i++) {
		lg_hs_stats st;
		lg_hs_get_stats(s.r[i].hs, &st);
		rejected += st.rejected_payloads;
	}
	TAP_CHECK(rejected > 3);
	sim_free(&s);
}

static void test_persist_failure_means_no_vote(void)
{
	static sim s;
	sim_init(&s, 30);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 300, NULL, NULL);
	replica *r = &s.r[2];
	uint64_t votes = r->votes_out, h = committed_height(&s, 0);
	r->persist_fail = 1;
	run(&s, 1300, NULL, NULL);
	/* watch_vote would have failed the run had a vote left */
	TAP_EQ(r->votes_out, votes);
	lg_hs_stats st;
	lg_hs_get_stats(r->hs, &st);
	TAP_CHECK(st.persist_failures > 0);
	TAP_CHECK(strstr(lg_hs_errmsg(r->hs), "not voting") != NULL);
	/* three replicas are a quorum: the chain goes on without its votes */
	TAP_CHECK(committed_height(&s, 0) > h + 10);
	r->persist_fail = 0;
	run(&s, 1800, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(r->votes_out > votes + 10);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* A failed commit is retried on the tick, in order, exactly once. */
static void test_commit_failure_retried(void)
{
	static sim s;
	sim_init(&s, 31);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 300, NULL, NULL);
	s.r[1].commit_fail = 1;
	uint64_t h = committed_height(&s, 1);
	run(&s, 600, NULL, NULL);
	TAP_EQ(committed_height(&s, 1), h);
	TAP_CHECK(strstr(lg_hs_errmsg(s.r[1].hs), "commit of block") != NULL);
	s.r[1].commit_fail = 0;
	run(&s, 1000, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(committed_height(&s, 1) + 6 > committed_height(&s, 0));
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* During a partition no quorum exists: timeouts double up to the cap; once
 * it heals and blocks commit they are back at the base. */
static void test_pacemaker_backoff(void)
{
	static sim s;
	sim_init(&s, 40);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 300, NULL, NULL);
	uint64_t h[N];
	for (uint32_t i = 0; i < N; i++) {
		h[i] = committed_height(&s, i);
		s.group[i] = i < 2;
	}
	run(&s, 1000, NULL, NULL);
	uint32_t t1 = lg_hs_timeout_ms(s.r[0].hs);
	TAP_CHECK(t1 >= 2 * BASE_TIMEOUT);
	run(&s, 6000, NULL, NULL);
	for (uint32_t i = 0; i < N; i++) {
		TAP_EQ(lg_hs_timeout_ms(s.r[i].hs), MAX_TIMEOUT);
		TAP_CHECK(committed_height(&s, i) <= h[i] + 3); /* what was in flight, at most */
	}
	TAP_CHECK(lg_hs_timeout_ms(s.r[0].hs) > t1);
	heal(&s);
	expect_progress(&s, 5, 10000, "after the partition");
	run(&s, s.now + 500, NULL, NULL);
	report(&s);
	TAP_CHECK(!s.failed);
	for (uint32_t i = 0; i < N; i++)
		TAP_EQ(lg_hs_timeout_ms(s.r[i].hs), BASE_TIMEOUT);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* Bytes from the network are input: garbage, forgeries, out-of-range
 * fields and far-future views are counted and ignored. */
static void test_untrusted_input(void)
{
	static sim s;
	static lg_hs_msg m;
	static uint8_t buf[4096];
	sim_init(&s, 50);
	set_network(&s, 0, 0, 0, 2, 10);
	sim_start(&s);
	run(&s, 200, NULL, NULL);
	lg_hs *hs = s.r[0].hs;
	uint64_t view = lg_hs_view(hs), h = committed_height(&s, 0);
	lg_hs_stats before, after;
	lg_hs_get_stats(hs, &before);

	uint64_t rng = 99;
	for (int k = 0; k < 20000; k++) {
		size_t len = (size_t)(mix64(rng++) % 600);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)mix64(rng++);
		if (len)
			buf[0] = (uint8_t)(1 + k % 3);
		lg_hs_on_message_bytes(hs, (uint32_t)(k % 7), buf, len);
	}
	uint8_t hash[CM_HASH_BYTES], d[CM_HASH_BYTES];
	memset(hash, 7, sizeof(hash));
	/* a vote from a replica that does not exist, and a forged one */
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_VOTE;
	m.u.vote.view = view;
	memcpy(m.u.vote.block_hash, hash, CM_HASH_BYTES);
	m.u.vote.voter = 9;
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_INVALID);
	m.u.vote.voter = 1;
	m.u.vote.view = view;
	while (lg_hs_leader(hs, m.u.vote.view) != 0 && lg_hs_leader(hs, m.u.vote.view + 1) != 0)
		m.u.vote.view++; /* a view whose votes replica 0 collects */
	cm_vote_digest(d, CHAIN, m.u.vote.view, hash);
	fake_sign(3, d, m.u.vote.sig); /* somebody else's signature */
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_VERIFY);
	/* a vote far in the future */
	m.u.vote.view += 1000 * N;
	cm_vote_digest(d, CHAIN, m.u.vote.view, hash);
	fake_sign(1, d, m.u.vote.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_RANGE);
	/* a proposal by a replica that does not lead that view */
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_PROPOSAL;
	cm_block *b = &m.u.proposal.block;
	cm_qc_genesis(&b->justify);
	memcpy(b->parent, b->justify.block_hash, CM_HASH_BYTES);
	b->height = 1;
	b->view = view + 1000 * N + 1;
	b->proposer = (uint32_t)((b->view + 1) % N);
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_INVALID);
	/* properly signed by its leader, but far ahead with an old QC */
	b->proposer = (uint32_t)(b->view % N);
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_RANGE);
	/* a QC naming a replica that does not exist */
	b->view = view + 1;
	b->proposer = (uint32_t)(b->view % N);
	make_qc(&b->justify, view, hash, 0x31);
	memcpy(b->parent, hash, CM_HASH_BYTES);
	b->height = h + 5;
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_CHECK(lg_hs_on_message(hs, 1, &m) != CM_OK);
	/* parent and justify disagree */
	make_qc(&b->justify, view, hash, 0x07);
	b->parent[0] ^= 1;
	cm_block_hash(b);
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	TAP_EQ(lg_hs_on_message(hs, 1, &m), CM_ERR_INVALID);
	/* a NEW-VIEW whose QC is not older than its view, and one for a huge view */
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_NEWVIEW;
	m.u.newview.sender = 2;
	m.u.newview.view = 5;
	make_qc(&m.u.newview.high_qc, 5, hash, 0x07);
	TAP_EQ(lg_hs_on_message(hs, 2, &m), CM_ERR_INVALID);
	m.u.newview.view = CM_CHAIN_MAX_VIEW + 1;
	TAP_EQ(lg_hs_on_message(hs, 2, &m), CM_ERR_INVALID);
	/* f = 1 replica alone claiming a far view moves nobody */
	m.u.newview.view = view + 100000;
	cm_qc_genesis(&m.u.newview.high_qc);
	lg_hs_newview_digest(d, CHAIN, m.u.newview.view, &m.u.newview.high_qc);
	fake_sign(2, d, m.u.newview.sig);
	TAP_EQ(lg_hs_on_message(hs, 2, &m), CM_OK);
	TAP_CHECK(lg_hs_view(hs) < view + 1000);
	/* a fetched block that is too big */
	static cm_block big;
	static uint8_t bigp[MAX_PAYLOAD + 1];
	cm_qc_genesis(&big.justify);
	memcpy(big.parent, big.justify.block_hash, CM_HASH_BYTES);
	big.height = 1;
	big.view = 1;
	big.proposer = 1;
	big.payload = bigp;
	big.payload_len = sizeof(bigp);
	TAP_EQ(lg_hs_on_block(hs, &big), CM_ERR_INVALID);

	lg_hs_get_stats(hs, &after);
	TAP_CHECK(after.bad_msgs > before.bad_msgs + 10000);
	TAP_CHECK(after.bad_sigs > before.bad_sigs);
	TAP_CHECK(after.future_msgs > before.future_msgs);
	/* and the cluster goes on, with the same chain everywhere */
	expect_progress(&s, 10, 5000, "after garbage");
	report(&s);
	TAP_CHECK(!s.failed);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* ---- the rules, one replica at a time ----
 * Replica 0 runs alone; the test plays the other three, whose keys it has,
 * and feeds hand-made chains. Leaders are view mod 4, so the views used
 * avoid multiples of 4 (replica 0's own). */

static cm_block mk_block(const cm_block *parent, uint64_t view)
{
	cm_block b;
	memset(&b, 0, sizeof(b));
	b.height = parent->height + 1;
	b.view = view;
	b.proposer = (uint32_t)(view % N);
	memcpy(b.parent, parent->hash, CM_HASH_BYTES);
	if (parent->height == 0)
		cm_qc_genesis(&b.justify);
	else
		make_qc(&b.justify, parent->view, parent->hash, 0x0e); /* replicas 1, 2, 3 */
	/* an app payload claiming the genesis state; the pool outlives the tests' blocks */
	static uint8_t pool[64][APP_PAYLOAD_MIN + 1];
	static unsigned next;
	uint8_t *p = pool[next++ % 64];
	memset(p, 0, APP_PAYLOAD_MIN + 1);
	p[0] = APP_TAG;
	p[1] = (uint8_t)b.proposer;
	cm_put_be64(p + 2, b.height);
	cm_put_be64(p + 10, view);
	app_root0(p + 26);
	b.payload = p;
	b.payload_len = APP_PAYLOAD_MIN;
	cm_block_hash(&b);
	return b;
}

static int feed(lg_hs *hs, const cm_block *b)
{
	static lg_hs_msg m;
	uint8_t d[CM_HASH_BYTES];
	m.type = LG_HS_MSG_PROPOSAL;
	m.u.proposal.block = *b;
	cm_vote_digest(d, CHAIN, b->view, b->hash);
	fake_sign(b->proposer, d, m.u.proposal.sig);
	return lg_hs_on_message(hs, b->proposer, &m);
}

/* Replicas 1 and 2 ask for `view`: replica 0 joins, and with its own that is n-f. */
static void feed_newviews(lg_hs *hs, uint64_t view, const cm_qc *qc)
{
	static lg_hs_msg m;
	uint8_t d[CM_HASH_BYTES];
	for (uint32_t i = 1; i <= 2; i++) {
		m.type = LG_HS_MSG_NEWVIEW;
		m.u.newview.view = view;
		m.u.newview.high_qc = *qc;
		m.u.newview.sender = i;
		lg_hs_newview_digest(d, CHAIN, view, qc);
		fake_sign(i, d, m.u.newview.sig);
		lg_hs_on_message(hs, i, &m);
	}
}

static void solo_init(sim *s, uint64_t seed)
{
	sim_init(s, seed);
	start_replica(s, 0);
}

/* Three-chain commit (sec. 5): b <- b' <- b'' with QC(b'') commits b only if
 * the three views are consecutive ("direct parents" with dummy nodes). */
static void test_three_chain_rule(void)
{
	static sim s;
	cm_block g, a, b, b1, b2, w;
	cm_block_genesis(&g);

	/* a gap between b' and b'': 1, 2, 5 then QC(5) */
	solo_init(&s, 60);
	b = mk_block(&g, 1), b1 = mk_block(&b, 2), b2 = mk_block(&b1, 5), w = mk_block(&b2, 6);
	feed(s.r[0].hs, &b), feed(s.r[0].hs, &b1), feed(s.r[0].hs, &b2), feed(s.r[0].hs, &w);
	TAP_EQ(lg_hs_committed(s.r[0].hs, NULL), 0);
	TAP_EQ(lg_hs_high_qc(s.r[0].hs)->view, 5);
	TAP_EQ(lg_hs_locked_qc(s.r[0].hs)->view, 2);
	TAP_CHECK(!s.failed);
	sim_free(&s);

	/* a gap between b and b': 3, 6, 7 then QC(7) */
	solo_init(&s, 61);
	b = mk_block(&g, 3), b1 = mk_block(&b, 6), b2 = mk_block(&b1, 7), w = mk_block(&b2, 9);
	feed(s.r[0].hs, &b), feed(s.r[0].hs, &b1), feed(s.r[0].hs, &b2), feed(s.r[0].hs, &w);
	TAP_EQ(lg_hs_committed(s.r[0].hs, NULL), 0);
	TAP_EQ(lg_hs_locked_qc(s.r[0].hs)->view, 6);
	TAP_CHECK(!s.failed);
	sim_free(&s);

	/* consecutive: 5, 6, 7 over a block of view 1, then QC(7): commits
	 * both, lowest first, and nothing above */
	solo_init(&s, 62);
	a = mk_block(&g, 1), b = mk_block(&a, 5), b1 = mk_block(&b, 6), b2 = mk_block(&b1, 7);
	w = mk_block(&b2, 9);
	feed(s.r[0].hs, &a), feed(s.r[0].hs, &b), feed(s.r[0].hs, &b1), feed(s.r[0].hs, &b2);
	TAP_EQ(lg_hs_committed(s.r[0].hs, NULL), 0);
	feed(s.r[0].hs, &w);
	uint8_t h[CM_HASH_BYTES];
	TAP_EQ(lg_hs_committed(s.r[0].hs, h), 2);
	TAP_CHECK(memcmp(h, b.hash, CM_HASH_BYTES) == 0);
	TAP_EQ(s.r[0].committed.n, 3);
	TAP_CHECK(memcmp(s.r[0].committed.h[1], a.hash, CM_HASH_BYTES) == 0);
	TAP_EQ(lg_hs_view(s.r[0].hs), 8); /* QC(7) ends view 7; the view-9 block waits */
	TAP_CHECK(!s.failed);
	sim_free(&s);
}

/* safeNode (sec. 4.2): a block that neither extends the locked block nor
 * carries a newer QC than the lock gets no vote; and the lock survives a
 * restart, since it was persisted with the vote. */
static void test_lock_rule(void)
{
	static sim s;
	static cm_qc gqc;
	cm_block g, a, b, c, f, h, k;
	cm_block_genesis(&g);
	cm_qc_genesis(&gqc);
	solo_init(&s, 70);
	replica *r = &s.r[0];
	a = mk_block(&g, 1), b = mk_block(&a, 2), c = mk_block(&b, 3);
	feed(r->hs, &a), feed(r->hs, &b), feed(r->hs, &c);
	TAP_EQ(lg_hs_locked_qc(r->hs)->view, 1); /* QC(c's grandparent a) */
	TAP_EQ(lg_hs_last_voted_view(r->hs), 3);
	uint64_t votes = r->votes_out;

	/* view 5, by NEW-VIEWs; a fork from genesis: older than the lock */
	feed_newviews(r->hs, 5, &gqc);
	TAP_EQ(lg_hs_view(r->hs), 5);
	f = mk_block(&g, 5);
	feed(r->hs, &f);
	TAP_EQ(r->votes_out, votes);
	TAP_EQ(lg_hs_last_voted_view(r->hs), 3);

	/* the same fork after a restart: the lock came back from disk */
	crash(&s, 0);
	restart(&s, 0);
	TAP_EQ(lg_hs_locked_qc(r->hs)->view, 1);
	feed_newviews(r->hs, 5, &gqc);
	feed(r->hs, &f);
	TAP_EQ(r->votes_out, votes);

	/* a child of the fork carrying QC(f) of view 5 > the lock's view: vote */
	h = mk_block(&f, 6);
	feed(r->hs, &h);
	TAP_EQ(r->votes_out, votes + 1);
	TAP_EQ(lg_hs_last_voted_view(r->hs), 6);

	/* extending the locked block, with a QC no newer than the lock: vote */
	feed_newviews(r->hs, 7, lg_hs_high_qc(r->hs));
	k = mk_block(&a, 7);
	TAP_EQ(k.justify.view, lg_hs_locked_qc(r->hs)->view);
	feed(r->hs, &k);
	TAP_EQ(r->votes_out, votes + 2);
	/* a second block for view 7: never a second vote */
	k.payload_len = APP_PAYLOAD_MIN + 1; /* the same claim, one more byte */
	cm_block_hash(&k);
	feed(r->hs, &k);
	TAP_EQ(r->votes_out, votes + 2);

	/* the blocks are lost, the safety state is not: the lock alone keeps a
	 * fork from genesis unvoted */
	crash(&s, 0);
	bstore_free(&r->store);
	restart(&s, 0);
	TAP_EQ(lg_hs_locked_qc(r->hs)->view, 1);
	TAP_EQ(lg_hs_last_voted_view(r->hs), 7);
	feed_newviews(r->hs, 9, &gqc);
	TAP_EQ(lg_hs_view(r->hs), 9);
	f = mk_block(&g, 9);
	feed(r->hs, &f);
	TAP_EQ(r->votes_out, votes + 2);
	TAP_CHECK(!s.failed);
	report(&s);
	sim_free(&s);
}

/* ---- forged and replayed QCs (a QC is nothing but its signatures) ---- */


/* Replica 0 holds the valid QC(b) (view 2); every forged copy of it --
 * as a block's justify in a proposal, as a NEW-VIEW's high QC -- is refused
 * and never stored or voted for, while the real QC still works. */
static void test_forged_qcs(void)
{
	static sim s;
	static cm_qc bad;
	static lg_hs_msg m;
	cm_block g, a, b, c, d;
	cm_block_genesis(&g);
	for (int kind = 0; kind < FORGE_KINDS; kind++) {
		solo_init(&s, 80 + (uint64_t)kind);
		replica *r = &s.r[0];
		a = mk_block(&g, 1), b = mk_block(&a, 2), c = mk_block(&b, 3);
		feed(r->hs, &a), feed(r->hs, &b), feed(r->hs, &c);
		TAP_EQ(lg_hs_high_qc(r->hs)->view, 2);
		feed_newviews(r->hs, 5, lg_hs_high_qc(r->hs));
		TAP_EQ(lg_hs_view(r->hs), 5);
		uint64_t votes = r->votes_out;
		lg_hs_stats st0, st1;
		lg_hs_get_stats(r->hs, &st0);

		forge_qc(&bad, kind, b.view, b.hash);
		TAP_CHECK(cm_qc_verify(&bad, CHAIN, N, F, verify_cb, NULL) != CM_OK);
		d = mk_block(&b, 5);
		d.justify = bad;
		cm_block_hash(&d);
		int rc = feed(r->hs, &d);
		if (rc == CM_OK || bstore_find(&r->store, d.hash) >= 0 || r->votes_out != votes)
			printf("# a block whose justify QC has %s was taken\n", forge_name[kind]);
		TAP_CHECK(rc == CM_ERR_VERIFY || rc == CM_ERR_INVALID);
		TAP_CHECK(bstore_find(&r->store, d.hash) < 0);
		TAP_EQ(r->votes_out, votes);
		/* the same forged block fetched rather than proposed */
		TAP_CHECK(lg_hs_on_block(r->hs, &d) != CM_OK);
		TAP_CHECK(bstore_find(&r->store, d.hash) < 0);

		/* a NEW-VIEW carrying it, correctly signed by its sender */
		uint8_t dg[CM_HASH_BYTES];
		m.type = LG_HS_MSG_NEWVIEW;
		m.u.newview.view = 6;
		m.u.newview.high_qc = bad;
		m.u.newview.sender = 1;
		lg_hs_newview_digest(dg, CHAIN, 6, &bad);
		fake_sign(1, dg, m.u.newview.sig);
		rc = lg_hs_on_message(r->hs, 1, &m);
		if (rc == CM_OK)
			printf("# a NEW-VIEW whose high QC has %s was taken\n", forge_name[kind]);
		TAP_CHECK(rc == CM_ERR_VERIFY || rc == CM_ERR_INVALID);
		lg_hs_get_stats(r->hs, &st1);
		TAP_CHECK(st1.bad_sigs >= st0.bad_sigs + 3);
		TAP_CHECK(cm_qc_verify(lg_hs_high_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);
		TAP_CHECK(cm_qc_verify(lg_hs_locked_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);

		/* the real QC(b): stored and voted for */
		d = mk_block(&b, 5);
		TAP_EQ(feed(r->hs, &d), CM_OK);
		TAP_CHECK(bstore_find(&r->store, d.hash) >= 0);
		TAP_EQ(r->votes_out, votes + 1);
		TAP_CHECK(!s.failed);
		report(&s);
		sim_free(&s);
	}
}

/* What a restart reads back is verified in full too: a stored block whose
 * justify QC is forged (here: written to the disk behind the core's back)
 * teaches nothing, and neither does a safety state with a forged lock. */
static void test_forged_qc_on_restore(void)
{
	static sim s;
	static cm_qc bad;
	cm_block g, a, b, c;
	cm_block_genesis(&g);
	for (int kind = 0; kind < FORGE_KINDS; kind++) {
		solo_init(&s, 90 + (uint64_t)kind);
		replica *r = &s.r[0];
		a = mk_block(&g, 1), b = mk_block(&a, 2);
		feed(r->hs, &a), feed(r->hs, &b);
		TAP_EQ(lg_hs_high_qc(r->hs)->view, 1);
		forge_qc(&bad, kind, b.view, b.hash);
		c = mk_block(&b, 3);
		c.justify = bad;
		cm_block_hash(&c);
		bstore_add(&r->store, &c);
		crash(&s, 0);
		restart(&s, 0);
		TAP_CHECK(r->hs != NULL);
		if (!r->hs)
			break;
		if (lg_hs_high_qc(r->hs)->view != 1)
			printf("# a stored justify QC with %s became the high QC\n", forge_name[kind]);
		TAP_EQ(lg_hs_high_qc(r->hs)->view, 1);
		TAP_CHECK(cm_qc_verify(lg_hs_high_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);
		TAP_CHECK(cm_qc_verify(lg_hs_locked_qc(r->hs), CHAIN, N, F, verify_cb, NULL) == CM_OK);
		TAP_CHECK(!s.failed);
		sim_free(&s);
	}
	/* a persisted lock that does not verify: restore refuses the state */
	solo_init(&s, 99);
	lg_hs_config cfg;
	lg_hs_io io = sim_io;
	replica_config(&s, 0, &cfg);
	io.ctx = &s.r[0];
	static lg_hs_safety st;
	uint8_t h[CM_HASH_BYTES];
	memset(h, 0x33, sizeof(h));
	for (int kind = 0; kind < FORGE_KINDS; kind++) {
		lg_hs *hs = NULL;
		memset(&st, 0, sizeof(st));
		st.last_voted_view = 9;
		cm_qc_genesis(&st.high_qc);
		forge_qc(&st.locked_qc, kind, 7, h);
		TAP_EQ(lg_hs_restore(&cfg, &io, &st, NULL, NULL, 0, &hs), CM_ERR_INVALID);
		lg_hs_destroy(hs);
	}
	sim_free(&s);
}

/* Votes and NEW-VIEWs are bound to the chain: the same message signed for
 * another chain's tag is refused, the one for this chain is taken. */
static void test_other_chain_refused(void)
{
	static const uint8_t other_chain[CM_HASH_BYTES] = {0x0c, 0x4a};
	static sim s;
	static lg_hs_msg m;
	static cm_qc gqc;
	uint8_t h[CM_HASH_BYTES], d[CM_HASH_BYTES];
	cm_qc_genesis(&gqc);
	memset(h, 0x21, sizeof(h));
	solo_init(&s, 95);
	lg_hs *hs = s.r[0].hs;
	/* votes of view 3 go to leader(3) = 3 and leader(4) = 0 */
	for (int pass = 0; pass < 2; pass++) {
		const uint8_t *chain = pass == 0 ? other_chain : CHAIN;
		m.type = LG_HS_MSG_VOTE;
		m.u.vote.view = 3;
		memcpy(m.u.vote.block_hash, h, CM_HASH_BYTES);
		m.u.vote.voter = 1;
		cm_vote_digest(d, chain, 3, h);
		fake_sign(1, d, m.u.vote.sig);
		TAP_EQ(lg_hs_on_message(hs, 1, &m), pass == 0 ? CM_ERR_VERIFY : CM_OK);
		m.type = LG_HS_MSG_NEWVIEW;
		m.u.newview.view = 2;
		m.u.newview.high_qc = gqc;
		m.u.newview.sender = 2;
		lg_hs_newview_digest(d, chain, 2, &gqc);
		fake_sign(2, d, m.u.newview.sig);
		TAP_EQ(lg_hs_on_message(hs, 2, &m), pass == 0 ? CM_ERR_VERIFY : CM_OK);
	}
	lg_hs_stats st;
	lg_hs_get_stats(hs, &st);
	TAP_EQ(st.bad_sigs, 2);
	TAP_CHECK(!s.failed);
	sim_free(&s);
}

/* Memory: with max_blocks = 8, a locked branch of 30 blocks (pairs of
 * consecutive views, so nothing commits) is kept whole while 20 forks off
 * genesis are evicted down to the bound; then a three-chain commits the
 * whole branch, which needs every block of it. */
static void test_tree_keeps_spine_evicts_forks(void)
{
	static sim s;
	static cm_block spine[40];
	cm_block g, fork;
	cm_block_genesis(&g);
	sim_init(&s, 110);
	s.cfg.max_blocks = 8;
	start_replica(&s, 0);
	lg_hs *hs = s.r[0].hs;
	const cm_block *tip = &g;
	int n = 0;
	for (uint64_t v = 1; n < 30; v++) {
		if (v % 4 == 1 || v % 4 == 2) {
			spine[n] = mk_block(tip, v);
			feed(hs, &spine[n]);
			tip = &spine[n++];
		} else if (v % 4 == 3) {
			fork = mk_block(&g, v);
			feed(hs, &fork);
		}
	}
	for (uint64_t v = 3; v < 80; v += 4) { /* late forks, beside the branch */
		fork = mk_block(&g, v);
		feed(hs, &fork);
	}
	lg_hs_stats st;
	lg_hs_get_stats(hs, &st);
	TAP_EQ(lg_hs_committed(hs, NULL), 0);
	TAP_CHECK(st.evicted >= 10);
	TAP_CHECK(st.blocks_in_memory <= 1 + 30 + 8);
	TAP_CHECK(st.blocks_in_memory >= 1 + 29);
	/* three consecutive views on the tip, then their QC: commits all 30 + 1 */
	uint64_t v0 = tip->view + 3; /* tip is at a view = 2 mod 4: v0 = 1 mod 4 */
	spine[n] = mk_block(tip, v0), feed(hs, &spine[n]), tip = &spine[n++];
	spine[n] = mk_block(tip, v0 + 1), feed(hs, &spine[n]), tip = &spine[n++];
	spine[n] = mk_block(tip, v0 + 2), feed(hs, &spine[n]), tip = &spine[n++];
	spine[n] = mk_block(tip, v0 + 4);
	feed(hs, &spine[n]);
	TAP_EQ(lg_hs_committed(hs, NULL), 31);
	TAP_EQ(s.r[0].committed.n, 32);
	TAP_CHECK(!s.failed);
	report(&s);
	sim_free(&s);
}

/* The block tree must not wedge: before GST the votes of every third view
 * are lost, so QCs form but never three in consecutive views and nothing
 * commits, for many times max_blocks blocks; after GST the cluster commits
 * again within the usual bound. */
static void test_no_three_chain_then_gst(void)
{
	static sim s;
	sim_init(&s, 100);
	s.cfg.max_blocks = 16;
	set_network(&s, 0, 0, 0, 1, 10);
	s.drop_votes_mod3 = 1;
	sim_start(&s);
	uint64_t views = 0;
	while (!s.failed && views < 12 * 16 && s.now < 3600000) {
		run(&s, s.now + 1000, NULL, NULL);
		views = lg_hs_view(s.r[0].hs);
	}
	TAP_CHECK(views >= 12 * 16);
	TAP_EQ(max_honest_height(&s), 0);  /* the schedule did what it says */
	uint64_t highest = 0;
	for (uint32_t i = 0; i < N; i++)
		if (lg_hs_high_qc(s.r[i].hs)->view > highest)
			highest = lg_hs_high_qc(s.r[i].hs)->view;
	TAP_CHECK(highest > 8 * 16);       /* QCs kept forming */
	lg_hs_stats st;
	lg_hs_get_stats(s.r[0].hs, &st);
	TAP_CHECK(st.blocks_in_memory > 16); /* the locked branch outgrew max_blocks and was kept */
	s.drop_votes_mod3 = 0;
	expect_progress(&s, 5, LIVE_BOUND_MS, "GST after a long run without a three-chain");
	report(&s);
	TAP_CHECK(max_honest_height(&s) > 100); /* the long branch committed at once */
	lg_hs_get_stats(s.r[0].hs, &st);
	TAP_CHECK(st.blocks_in_memory <= 16);
	TAP_CHECK(!s.failed);
	TAP_CHECK(chains_agree(&s));
	sim_free(&s);
}

/* The seeded simulation (hs_sim.c): MURI_SIM_SEEDS seeds, or MURI_SIM_SEED. */
static void test_random_schedules(void)
{
	TAP_EQ(sim_run_seeds(), 0);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_codec);
	TAP_RUN(test_genesis_and_qc);
	TAP_RUN(test_three_chain_rule);
	TAP_RUN(test_lock_rule);
	TAP_RUN(test_forged_qcs);
	TAP_RUN(test_forged_qc_on_restore);
	TAP_RUN(test_other_chain_refused);
	TAP_RUN(test_tree_keeps_spine_evicts_forks);
	TAP_RUN(test_no_three_chain_then_gst);
	TAP_RUN(test_happy_path);
	TAP_RUN(test_ed25519);
	TAP_RUN(test_leader_crash_recovery);
	TAP_RUN(test_byzantine_equivocation);
	TAP_RUN(test_rejected_payload);
	TAP_RUN(test_persist_failure_means_no_vote);
	TAP_RUN(test_commit_failure_retried);
	TAP_RUN(test_pacemaker_backoff);
	TAP_RUN(test_untrusted_input);
	TAP_RUN(test_random_schedules);
	return tap_done();
}
