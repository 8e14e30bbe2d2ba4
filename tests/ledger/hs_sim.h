/* The simulated HotStuff cluster the consensus core's tests run on, in the
 * style of a VOPR: N replicas of services/ledger/lg_hotstuff in one process,
 * one seed driving everything (each seed picks its own fault rates), a fake
 * clock (each replica's own, offset and drifting), a network with per-path
 * delay, loss, duplication, reordering, replay, symmetric and asymmetric
 * partitions, disks that keep only what was
 * persisted (kills and restarts), a Byzantine replica that lies in every way
 * the protocol must survive, a toy app with a state root, and invariants
 * checked after every step. */
#ifndef HS_SIM_H
#define HS_SIM_H

#include "cm_chain.h"
#include "cm_crypto.h"
#include "lg_hotstuff.h"

#include <stddef.h>
#include <stdint.h>

#define N 4
#define F 1
#define TICK_MS 10
#define BASE_TIMEOUT 100
#define MAX_TIMEOUT 1600
#define MAX_PAYLOAD 256
#define POISON 0xee           /* first payload byte the app rejects */
#define LIVE_BOUND_MS 20000   /* after healing commits resume within this: a dozen maximal timeouts */

/* the chain tag every digest in these tests carries */
extern const uint8_t CHAIN[CM_HASH_BYTES];
extern const uint8_t zero_hash[CM_HASH_BYTES];
extern const lg_hs_io sim_io;
extern const char *const forge_name[];

typedef struct sblock {
	uint8_t hash[CM_HASH_BYTES];
	uint64_t height;
	uint8_t *bytes;
	size_t len;
} sblock;

typedef struct bstore {
	sblock *v;
	size_t n, cap;
	int32_t *idx;
	size_t icap;
} bstore;

typedef struct hashlist {
	uint8_t (*h)[CM_HASH_BYTES];
	size_t n, cap;
} hashlist;

enum { EV_MSG, EV_FETCH_REQ, EV_FETCH_RESP };

typedef struct event {
	uint64_t t, seq, arg;
	uint8_t kind, from, to;
	uint8_t *data;
	size_t len;
} event;

struct sim;

typedef struct replica {
	struct sim *sim;
	uint32_t id;
	lg_hs *hs;                  /* NULL while crashed */
	int byz, persist_fail, commit_fail;
	uint8_t *safety;            /* disk: last persisted safety state */
	size_t safety_len;
	uint64_t persisted_view;
	bstore store;               /* disk: blocks */
	hashlist committed;         /* disk: the app's committed chain; [0] genesis */
	hashlist voted;             /* observer: what this replica voted for, by view */
	uint64_t votes_out;         /* distinct votes (proposals included) that left */
	uint64_t restarts;
	hashlist roots;             /* disk: the app's state root after each committed height */
	uint64_t persisted_lock;    /* view of the last persisted lock */
	uint64_t checked_high, checked_lock; /* views of the core's QCs last verified by the observer */
	uint64_t clock_offset_ms;   /* its clock: the simulation's + offset + drift */
	int32_t drift_ppm;          /* within +-10%, so the clock never runs backwards */
} replica;

/* One directed network path. */
typedef struct net_path {
	uint32_t drop_ppm, dup_ppm, dmin, dmax;
	uint8_t cut;                /* asymmetric partition: nothing passes from -> to */
} net_path;

#define REPLAY_RING 64          /* past messages the network may deliver again */

typedef struct sim {
	uint64_t seed, rng, now, seq;
	replica r[N];
	event *heap;
	size_t nheap, capheap;
	uint32_t drop_ppm, dup_ppm, corrupt_ppm, dmin, dmax;
	net_path path[N][N];        /* per-path faults on top of the global ones */
	uint32_t replay_ppm;        /* chance that a send also delivers an old message again */
	struct replay { uint8_t *data; size_t len; uint8_t from; } replay[REPLAY_RING];
	uint32_t replay_next;
	int group[N];               /* symmetric partition: only equal groups talk */
	hashlist chain;             /* the one committed block per height, first seen */
	hashlist roots;             /* the one state root per height, first seen */
	int failed;
	char why[400];
	int byz;                    /* index of the Byzantine replica, or -1 */
	int drop_votes_mod3;        /* lose every vote of a view divisible by 3 */
	uint32_t equiv_ppm, silent_ppm, poison_ppm, voteall_ppm, junk_ppm, fork_ppm, lie_ppm;
	uint32_t forge_ppm;         /* its proposals and NEW-VIEWs carry forged QCs */
	uint32_t oddview_ppm;       /* votes and NEW-VIEWs of stale or far-future views */
	uint32_t rootlie_ppm;       /* proposals claiming a wrong state root, or pinning the parent */
	uint64_t forged_sent, rootlies_sent;
	struct seen_qc {            /* QCs the Byzantine replica saw, and their block heights */
		cm_qc qc;
		uint64_t height;
	} seen[16];
	size_t nseen;
	uint64_t conflicts;         /* conflicting proposals the Byzantine replica sent */
	hashlist poison;            /* blocks with rejected payloads (unordered) */
	int use_ed25519;
	cm_keypair kp[N];
	lg_hs_config cfg;
	uint64_t msgs, events;
	int trace;
} sim;

typedef int (*stop_fn)(sim *s, void *arg);

typedef struct live_goal {
	uint64_t target;
} live_goal;

enum { FORGE_NONE, FORGE_FEW, FORGE_VIEW, FORGE_BLOCK, FORGE_CHAIN, FORGE_FLIP, FORGE_EXTRA_BIT,
       FORGE_EXTRA_SIGNER, FORGE_KINDS };

typedef struct schedule_info {
	uint64_t msgs, commits, crashes, partitions, byz, rounds, forged, no3, replays, evicted, grown, rootlies;
	uint64_t worst_recovery_ms, worst_seed;
} schedule_info;

uint64_t mix64(uint64_t z);
void fake_sign(uint32_t who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES]);
int fake_verify(uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES]);
int32_t bstore_find(const bstore *s, const uint8_t *hash);
void bstore_add(bstore *s, const cm_block *b);
void bstore_free(bstore *s);
void hl_set(hashlist *l, size_t i, const uint8_t *hash);
void sim_fail(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t rnd(sim *s);
uint64_t below(sim *s, uint64_t n);
int chance(sim *s, uint32_t ppm);
void net_msg(sim *s, uint32_t from, int to, const lg_hs_msg *m);
void net_bytes(sim *s, uint32_t from, int to, const uint8_t *b, size_t len);
void sim_sign(sim *s, uint32_t who, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES]);
void link_send(sim *s, int kind, uint32_t from, uint32_t to, const uint8_t *b, size_t len, uint64_t arg);
/* hs_sim_io.c: the io table, the toy app, event delivery */
void deliver(sim *s, event *e);
int qc_ok(replica *r, const cm_qc *qc);   /* 0 if qc verifies in full */
/* hs_sim_byz.c: the Byzantine replica */
void byz_send(replica *r, int to, const lg_hs_msg *m);
void byz_vote(sim *s, uint64_t view, const uint8_t *hash, int to_all);
void remember_qc(sim *s, const cm_block *b);
int is_poison(const sim *s, const uint8_t *hash);
void replica_config(sim *s, uint32_t i, lg_hs_config *cfg);
void start_replica(sim *s, uint32_t i);
void crash(sim *s, uint32_t i);
void restart(sim *s, uint32_t i);
void sim_init(sim *s, uint64_t seed);
void sim_start(sim *s);
void sim_free(sim *s);
uint64_t replica_clock(const replica *r);
uint64_t committed_height(const sim *s, uint32_t i);
void run(sim *s, uint64_t until, stop_fn stop, void *arg);
void set_network(sim *s, uint32_t drop, uint32_t dup, uint32_t corrupt, uint32_t dmin, uint32_t dmax);
void heal(sim *s);
void dump(sim *s);
uint64_t max_honest_height(const sim *s);
void expect_progress(sim *s, uint64_t more, uint64_t bound_ms, const char *when);
void make_qc(cm_qc *qc, uint64_t view, const uint8_t *hash, uint64_t signers);
int verify_cb(void *ctx, uint32_t who, const uint8_t d[CM_HASH_BYTES], const uint8_t sig[CM_SIG_BYTES]);
void make_qc_on(cm_qc *qc, const uint8_t *chain, uint64_t view, const uint8_t *hash, uint64_t signers);
void forge_qc(cm_qc *qc, int kind, uint64_t view, const uint8_t *hash);
void report(sim *s);
int chains_agree(sim *s);
int current_leader(sim *s);
int run_schedule(uint64_t seed, schedule_info *info);
uint64_t schedule_seed(uint64_t k);
/* Runs MURI_SIM_SEEDS seeded schedules (default 2,000; 1,000 under
 * AddressSanitizer) from the MURI_SIM_FIRST-th (default 0), or only
 * MURI_SIM_SEED with a trace (MURI_SIM_TRACE=0: without); prints what was
 * covered and how to replay a failing seed. Returns the number that failed. */
int sim_run_seeds(void);
/* The toy app's payload: tag 0x50, proposer, height, view, then the
 * proposer's committed state (height, root) as in BlockBody.state_height /
 * state_root, then padding. */
#define APP_TAG 0x50
#define APP_PAYLOAD_MIN (2 + 8 + 8 + 8 + CM_HASH_BYTES)
void app_root0(uint8_t out[CM_HASH_BYTES]);

#endif
