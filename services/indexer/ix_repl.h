/* The replication core of one fragment on one replica, without I/O: the
 * configuration (epoch, replica set, primary) as the ledger committed it,
 * the primary's sequencing, shipping, prefix reconciliation and lease, the
 * backups' checks, truncation of an older epoch's suffix, failover
 * requests, and the floor raised by committed roots (DESIGN.md
 * "Fragments"; PacificA, Lin et al. 2008). The log, persistence, the
 * network, the clock, signatures and the ledger are behind ix_repl_io, so
 * one process can run a whole cluster (tests/indexer/test_repl_sim.c). */
#ifndef IX_REPL_H
#define IX_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_fragment.h"

#define IX_REPL_MAX CM_FRAGMENT_MAX_REPLICAS /* replicas of one fragment */

enum ix_repl_level { IX_REPL_ONE = 0, IX_REPL_QUORUM = 1, IX_REPL_ALL = 2 };

/* One log entry. leaf is the Merkle leaf hash of data (the record's
 * canonical bytes); data is borrowed (see each use). */
typedef struct ix_repl_entry {
	uint64_t seq;
	uint64_t epoch;               /* of the primary that assigned seq */
	uint8_t leaf[CM_HASH_BYTES];
	const uint8_t *data;
	uint32_t len;
} ix_repl_entry;

/* A configuration as the ledger commits it. */
typedef struct ix_repl_config {
	uint64_t epoch;               /* >= 1 */
	uint32_t n;                   /* 1..IX_REPL_MAX */
	uint32_t primary;             /* index into replicas */
	uint8_t replicas[IX_REPL_MAX][CM_PK_BYTES];
} ix_repl_config;

/* What a replica keeps durably besides its log. */
typedef struct ix_repl_persist {
	ix_repl_config cfg;           /* cfg.epoch 0: none yet */
	uint64_t reported_epoch;      /* a failover request was sent for this epoch: refuse it */
	uint64_t floor;               /* committed size: never truncated below */
} ix_repl_persist;

enum ix_repl_msg_type { IX_REPL_APPEND = 1, IX_REPL_ACK = 2 };

/* Primary -> backup: "my log agrees with root prev_root at prev_size; here
 * are the entries from prev_size on". No entries: a probe or heartbeat.
 * sig: the epoch's primary over ix_repl_append_digest. */
typedef struct ix_repl_append {
	uint64_t epoch;
	uint64_t prev_size;
	uint8_t prev_root[CM_HASH_BYTES];
	uint32_t n;
	const ix_repl_entry *entries; /* seqs prev_size.., epochs as assigned */
	uint64_t primary_size;        /* the sender's log size */
	uint64_t root_size;           /* the latest size the primary named for roots (<= primary_size) */
	uint64_t ts;                  /* the sender's clock, echoed (lease) */
	uint64_t req;                 /* request id, echoed */
	int closing;                  /* the primary gave up on this epoch: ask for failover now */
	uint8_t sender[CM_PK_BYTES];
	uint8_t sig[CM_SIG_BYTES];
} ix_repl_append;

/* Backup -> primary. ok: the backup's log equals the primary's up to match
 * (whose root is match_root); !ok: it does not agree at prev_size, and its
 * log has log_size entries; refused: it asked for failover of this epoch
 * and takes nothing more in it (the primary then closes the epoch too).
 * sig: the sender over ix_repl_ack_digest. */
typedef struct ix_repl_ack {
	uint64_t epoch;
	int ok;
	int refused;
	uint64_t match;
	uint8_t match_root[CM_HASH_BYTES];
	uint64_t log_size;
	uint64_t ts, req;             /* echoed from the append */
	uint8_t sender[CM_PK_BYTES];
	uint8_t sig[CM_SIG_BYTES];
} ix_repl_ack;

typedef struct ix_repl_msg {
	uint8_t type;                 /* enum ix_repl_msg_type */
	union {
		ix_repl_append append;
		ix_repl_ack ack;
	} u;
} ix_repl_msg;

/* Replica -> ledger: "I gave up on the primary of epoch; my log is size
 * entries with this root, its last entry of last_epoch". The report and its
 * digest are the fragment's shared rules (common/cm_fragment.h); sig over
 * ix_repl_failover_digest (= cm_fragment_report_digest). */
typedef cm_fragment_report ix_repl_failover;

typedef struct ix_repl_opts {
	uint8_t fragment[CM_HASH_BYTES]; /* identifies the fragment in every digest */
	uint8_t self[CM_PK_BYTES];
	uint32_t batch;               /* entries per append; 0: 256 */
	uint64_t append_bytes;        /* ... and their bytes at most (always one entry); 0: no bound */
	uint32_t max_pending;         /* client writes awaiting their level; 0: 1024 */
	uint32_t heartbeat_ms;        /* primary: an append to every backup at least this often; 0: 100 */
	uint32_t retry_ms;            /* primary: resend an unanswered append; 0: heartbeat_ms */
	uint32_t lease_ms;            /* primary acknowledges only within this of a quorum's acks; 0: 1000 */
	uint32_t suspect_ms;          /* backup: silence before a failover request; 0: 2 * lease_ms.
				       * Must exceed lease_ms plus the clocks' drift. */
	uint32_t start_grace_ms;      /* backup: and this much longer while nothing valid came from the
				       * primary of this epoch yet (the replicas learn a configuration
				       * each at its own pace); 0: none */
	uint32_t drop_ms;             /* primary: a backup silent this long is reported to the ledger
				       * for replacement (io.ledger_drop); 0: never */
	uint32_t root_every;          /* primary: names each multiple of this many records for roots; 0: none */
	uint32_t root_ms;             /* primary: and its log size this long after the last named size,
				       * if the log grew; 0: never */
	uint32_t root_hold_ms;        /* primary: names no new size for this long while the last named
				       * one is above the committed floor, so that replicas sampling the
				       * named size at different moments sign the same one; 0: no hold */
} ix_repl_opts;

/* Callbacks run synchronously inside ix_repl_* calls and must not call back
 * into the same instance except for the read-only getters below. Pointers
 * they receive are borrowed for the call. */
typedef struct ix_repl_io {
	void *ctx;
	uint64_t (*log_size)(void *ctx);
	/* The entry at seq < size (data may be left NULL); 0 on success. */
	int (*log_entry)(void *ctx, uint64_t seq, ix_repl_entry *out);
	/* Up to max entries from seq on into out, data borrowed until the core
	 * returns to its caller; *n set. 0 on success. */
	int (*log_read)(void *ctx, uint64_t from, uint32_t max, ix_repl_entry *out, uint32_t *n);
	int (*log_root)(void *ctx, uint64_t size, uint8_t out[CM_HASH_BYTES]);
	/* The leaf hash of the entry at seq < size; may be NULL (log_entry is
	 * read instead). 0 on success. */
	int (*log_leaf)(void *ctx, uint64_t seq, uint8_t out[CM_HASH_BYTES]);
	/* Appends durably (seqs from size on); 0 once on disk. Called by
	 * ix_repl_write, it may let other calls into the instance while the
	 * entries go to disk (acks, ticks, a new configuration: not another
	 * ix_repl_write, which the caller keeps in order); ix_repl_write then
	 * checks that its epoch still holds. From on_append it must not. */
	int (*log_append)(void *ctx, const ix_repl_entry *e, uint32_t n);
	/* Drops entries from size on, durably. */
	int (*log_truncate)(void *ctx, uint64_t size);
	/* Writes st durably; 0 on success. */
	int (*persist)(void *ctx, const ix_repl_persist *st);
	/* Best effort to the replica with this key. */
	void (*send)(void *ctx, const uint8_t to[CM_PK_BYTES], const ix_repl_msg *m);
	/* Best effort to the ledger (a failover transaction). */
	void (*ledger_submit)(void *ctx, const ix_repl_failover *f);
	/* Primary -> ledger, best effort: the backup pk stopped answering in
	 * epoch; replace it (a staked spare takes its place in epoch + 1). Sent
	 * only while the others hold every write acknowledged at QUORUM, so a
	 * majority of the next replica set does. May be NULL. */
	void (*ledger_drop)(void *ctx, uint64_t epoch, const uint8_t pk[CM_PK_BYTES]);
	/* A client write (by token) is done: rc 0 and the level it reached
	 * (enum ix_repl_level); or CM_ERR_TIMEOUT with the level it reached
	 * anyway, -1 if none can be promised (no lease, no majority); or
	 * CM_ERR_STATE (the epoch ended) with -1. */
	void (*write_done)(void *ctx, uint64_t token, int rc, uint64_t first_seq, uint64_t end, int level);
	void (*sign)(void *ctx, const uint8_t digest[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES]);
	int (*verify)(void *ctx, const uint8_t pk[CM_PK_BYTES], const uint8_t digest[CM_HASH_BYTES],
		      const uint8_t sig[CM_SIG_BYTES]);
	uint64_t (*now_ms)(void *ctx);
} ix_repl_io;

typedef struct ix_repl_stats {
	uint64_t appends_in, acks_in;
	uint64_t bad_sigs;            /* a signature did not verify */
	uint64_t not_primary;         /* an append from anyone but the epoch's primary */
	uint64_t stale_epoch;         /* a message of another epoch */
	uint64_t refused_reported;    /* an append of an epoch this replica gave up on */
	uint64_t mismatches;          /* appends whose prev_root did not agree */
	uint64_t truncations, truncated_entries;
	uint64_t failovers_sent, lease_lapses;
	uint64_t drops_sent;          /* backups reported for replacement */
	uint64_t floor_refusals;      /* a truncation below the floor refused */
	uint64_t pauses;              /* ticks over suspect_ms / 2 after the last: this replica did not run */
} ix_repl_stats;

typedef struct ix_repl ix_repl;

/* A replica with the state last persisted (NULL: none) over the log behind
 * io. *out is owned by the caller (ix_repl_destroy). */
int ix_repl_create(const ix_repl_opts *o, const ix_repl_io *io, const ix_repl_persist *st, ix_repl **out);
void ix_repl_destroy(ix_repl *r);

/* Checks a configuration: epoch >= 1, 1..IX_REPL_MAX distinct replicas,
 * primary among them. NULL if good, else a message naming the field. */
const char *ix_repl_config_check(const ix_repl_config *c);
/* A configuration from the ledger. Epochs strictly increase: an older one
 * is refused (CM_ERR_STATE), the same epoch is accepted only if identical
 * (CM_OK, no change) and refused otherwise (CM_ERR_STATE). Pending writes
 * of an ended epoch complete with CM_ERR_STATE. err names the reason. */
int ix_repl_on_config(ix_repl *r, const ix_repl_config *c, char *err, size_t errlen);
/* A message from the network. Returns 0 if it was acted on, a negative
 * code saying why it was dropped (CM_ERR_VERIFY, CM_ERR_PERM: not from the
 * epoch's primary or not a member, CM_ERR_STATE: another epoch). */
int ix_repl_on_message(ix_repl *r, const ix_repl_msg *m);
/* The ledger committed the fragment's root at size: the floor rises to
 * size once the log holds that root (CM_ERR_VERIFY if it holds another). */
int ix_repl_on_commit_root(ix_repl *r, uint64_t size, const uint8_t root[CM_HASH_BYTES]);
/* Time passes: heartbeats, resends, lease and write deadlines, suspicion. */
void ix_repl_tick(ix_repl *r);
/* Primary only: appends n entries durably and ships them. The caller sets
 * each entry's seq (log size + i; CM_ERR_RANGE otherwise), epoch (the
 * current one; CM_ERR_STATE otherwise) and data (encoding both); the core
 * sets the leaf. write_done reports token once the level is met while the
 * lease holds, or at deadline_ms (absolute, on now_ms). CM_ERR_PERM if not
 * the primary, CM_ERR_TOOBIG if max_pending writes wait, else the log's
 * error. *first gets the first seq. */
int ix_repl_write(ix_repl *r, ix_repl_entry *e, uint32_t n, int level, uint64_t deadline_ms,
		  uint64_t token, uint64_t *first);

/* Primary of epoch only: hands the primary role over (a leaving replica).
 * It takes no more writes in this epoch (ix_repl_write: CM_ERR_STATE) and
 * goes on shipping; once a backup not in skip (replicas leaving too) holds
 * its whole log and no write waits, it gives the epoch up as a failover
 * does (a failover report, closing appends), so the ledger can commit
 * epoch + 1 with a replica of the longest log that is not leaving.
 * CM_ERR_PERM if not the primary, CM_ERR_STATE if epoch is not current. */
int ix_repl_handoff(ix_repl *r, uint64_t epoch, const uint8_t (*skip)[CM_PK_BYTES], uint32_t nskip);

/* Reading the state. */
uint64_t ix_repl_epoch(const ix_repl *r);
int ix_repl_is_primary(const ix_repl *r);
int ix_repl_is_member(const ix_repl *r, const uint8_t pk[CM_PK_BYTES]);
const ix_repl_config *ix_repl_config_get(const ix_repl *r);
uint64_t ix_repl_floor(const ix_repl *r);
/* The largest size this replica may sign a root at in the current epoch: a
 * prefix no truncation can touch before the epoch ends (the committed
 * floor; the primary's whole log, which only grows in its epoch; a backup's
 * log up to what it took from the epoch's primary). Two roots it signs at
 * one size in one epoch are then equal. */
uint64_t ix_repl_signable(ix_repl *r);
/* The size this replica signs its root at: the latest size the epoch's
 * primary named (root_every, root_ms) that it holds within
 * ix_repl_signable, so the replicas' roots meet at the same sizes; 0: none
 * yet in this epoch. */
uint64_t ix_repl_root_size(ix_repl *r);
/* Primary: whether the lease is valid now. */
int ix_repl_has_lease(ix_repl *r);
/* Primary: replicas (itself included) known to hold size entries equal to its own. */
uint32_t ix_repl_holders(const ix_repl *r, uint64_t size);
/* Primary: whether replica idx (itself included) is known to hold size entries. */
int ix_repl_holds(const ix_repl *r, uint32_t idx, uint64_t size);
void ix_repl_stats_get(const ix_repl *r, ix_repl_stats *out);

/* Replicas a level needs out of n. */
uint32_t ix_repl_need(int level, uint32_t n);
/* The digests the signatures are over. The append's binds the fragment,
 * epoch, range [prev_size, prev_size + n), prev_root, the Merkle root of
 * the entries' leaves, primary_size, ts and req. */
void ix_repl_append_digest(const uint8_t fragment[CM_HASH_BYTES], const ix_repl_append *a,
			   uint8_t out[CM_HASH_BYTES]);
void ix_repl_ack_digest(const uint8_t fragment[CM_HASH_BYTES], const ix_repl_ack *a, uint8_t out[CM_HASH_BYTES]);
void ix_repl_failover_digest(const uint8_t fragment[CM_HASH_BYTES], const ix_repl_failover *f,
			     uint8_t out[CM_HASH_BYTES]);
/* The Merkle root (RFC 9162) of n leaf hashes. */
void ix_repl_leaves_root(const ix_repl_entry *e, uint32_t n, uint8_t out[CM_HASH_BYTES]);

/* The ledger's choice of a new primary from failover requests of one
 * epoch: cm_fragment_choose_primary over cfg's epoch and replicas (the
 * highest last_epoch, then the longest log, then the lowest replica index,
 * among reports from a majority). Returns the replica index, or -1 if the
 * requests are not a majority. */
int ix_repl_choose_primary(const ix_repl_config *cfg, const ix_repl_failover *reqs, size_t n);

#endif
