/* The replication core of one fragment (see ix_repl.h). Everything here is
 * single-threaded and I/O-free; each entry point runs to completion, so an
 * epoch check and the write it guards can never be separated by a
 * configuration change (the glue serializes calls per fragment).
 *
 * Primary: per backup a search for the longest agreeing prefix (appends
 * carry prev_size and the primary's root there; a backup that agrees says
 * so, one that does not answers with its size, and the primary bisects),
 * then shipping from the agreed size, one append in flight per backup.
 * Lease: the primary acknowledges only while a majority (itself included)
 * answered appends it sent within lease_ms; a backup asks the ledger for
 * failover only after suspect_ms > lease_ms without a valid append, and
 * from then on refuses that epoch, so by the time the ledger can commit
 * epoch + 1 the old primary's lease has run out. Hand-off: a primary the
 * ledger lists as leaving takes no more writes, and gives its epoch up as
 * above once a backup that stays holds its whole log (ix_repl_handoff). */
#include "ix_repl.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "cm_merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct peer {
	int known;               /* acked agrees with our log */
	uint64_t acked;          /* agreed size */
	uint64_t lo, hi, probe;  /* bisection: agreement at lo is known, hi bounds it */
	int inflight;
	uint64_t req, sent_ms, sent_prev;
	uint64_t retry_ms;       /* doubles while answers come too late, back to o.retry_ms on one */
	uint64_t lease_ts;       /* latest ts this backup answered */
	int has_ts;
	uint64_t drop_sent_ms;   /* when it was last reported for replacement (0: not in this epoch) */
};

struct pending {
	uint64_t token, first, end, deadline;
	int level;
};

struct ix_repl {
	ix_repl_opts o;
	ix_repl_io io;
	ix_repl_persist st;
	int self;                /* index in st.cfg, -1 when not a member */
	struct peer peer[IX_REPL_MAX];
	struct pending *pend;    /* ring of o.max_pending */
	uint32_t pend_head, npend;
	uint64_t next_req;
	uint64_t last_heard_ms;  /* backup: the last valid append of this epoch */
	int heard;               /* backup: a valid append of this epoch came (since the core started) */
	uint64_t last_tick_ms;   /* when ix_repl_tick last ran (0: not yet) */
	uint64_t last_report_ms;
	uint64_t cfg_ms;         /* when the current configuration arrived (or the core started) */
	uint64_t acked_size;     /* primary: every write acknowledged at QUORUM or more ends at or below it */
	uint64_t agreed;         /* backup: its log equals the epoch's primary's up to here */
	uint64_t named, named_ms; /* the latest size named for roots in this epoch (primary: when) */
	uint64_t named_held;     /* backup: the latest named size it held */
	int had_lease;
	uint64_t commit_size;    /* a committed root the log has not reached yet */
	uint8_t commit_root[CM_HASH_BYTES];
	ix_repl_entry *buf;      /* o.batch entries for shipping */
	ix_repl_stats stats;
	uint64_t handoff_epoch;  /* primary: hands its role over in this epoch (ix_repl_handoff) */
	uint32_t handoff_skip;   /* replicas (by index) that cannot take it: leaving too */
};

/* ---- configuration ---------------------------------------------------------- */

static int index_of(const ix_repl_config *c, const uint8_t pk[CM_PK_BYTES])
{
	for (uint32_t i = 0; i < c->n; i++)
		if (memcmp(c->replicas[i], pk, CM_PK_BYTES) == 0)
			return (int)i;
	return -1;
}

static int configs_equal(const ix_repl_config *a, const ix_repl_config *b)
{
	if (a->epoch != b->epoch || a->n != b->n || a->primary != b->primary)
		return 0;
	return memcmp(a->replicas, b->replicas, (size_t)a->n * CM_PK_BYTES) == 0;
}

/* ---- state ----------------------------------------------------------------- */

static uint64_t now(ix_repl *r)
{
	return r->io.now_ms(r->io.ctx);
}

static int is_primary(const ix_repl *r)
{
	return r->st.cfg.epoch && r->self >= 0 && (uint32_t)r->self == r->st.cfg.primary;
}

/* This replica asked for failover of the current epoch and takes no more
 * writes or records in it. */
static int closed(const ix_repl *r)
{
	return r->st.cfg.epoch && r->st.reported_epoch == r->st.cfg.epoch;
}

static void reset_peers(ix_repl *r)
{
	uint64_t size = r->io.log_size(r->io.ctx);
	memset(r->peer, 0, sizeof(r->peer));
	for (uint32_t i = 0; i < IX_REPL_MAX; i++) {
		r->peer[i].hi = size;
		r->peer[i].probe = size;
	}
	r->had_lease = 0;
	r->cfg_ms = now(r);
	r->acked_size = size; /* whatever the log holds may have been acknowledged */
	r->agreed = 0;
	r->named = r->named_held = 0;
	r->named_ms = r->cfg_ms;
}

static void finish_pending(ix_repl *r, int rc_all)
{
	while (r->npend) {
		struct pending *p = &r->pend[r->pend_head];
		r->pend_head = (r->pend_head + 1) % r->o.max_pending;
		r->npend--;
		r->io.write_done(r->io.ctx, p->token, rc_all, p->first, p->end, -1);
	}
}

static void set_self(ix_repl *r)
{
	r->self = r->st.cfg.epoch ? index_of(&r->st.cfg, r->o.self) : -1;
}

int ix_repl_create(const ix_repl_opts *o, const ix_repl_io *io, const ix_repl_persist *st, ix_repl **out)
{
	ix_repl *r = calloc(1, sizeof(*r));
	if (!r)
		return CM_ERR_NOMEM;
	r->o = *o;
	r->io = *io;
	if (!r->o.batch)
		r->o.batch = 256;
	if (!r->o.max_pending)
		r->o.max_pending = 1024;
	if (!r->o.heartbeat_ms)
		r->o.heartbeat_ms = 100;
	if (!r->o.retry_ms)
		r->o.retry_ms = r->o.heartbeat_ms;
	if (!r->o.lease_ms)
		r->o.lease_ms = 1000;
	if (!r->o.suspect_ms)
		r->o.suspect_ms = 2 * r->o.lease_ms;
	if (r->o.suspect_ms <= r->o.lease_ms) {
		free(r);
		return CM_ERR_INVALID;
	}
	r->pend = calloc(r->o.max_pending, sizeof(*r->pend));
	r->buf = calloc(r->o.batch, sizeof(*r->buf));
	if (!r->pend || !r->buf) {
		ix_repl_destroy(r);
		return CM_ERR_NOMEM;
	}
	if (st) {
		if (st->cfg.epoch && ix_repl_config_check(&st->cfg)) {
			ix_repl_destroy(r);
			return CM_ERR_INVALID;
		}
		r->st = *st;
	}
	set_self(r);
	r->last_heard_ms = now(r);
	reset_peers(r);
	*out = r;
	return CM_OK;
}

void ix_repl_destroy(ix_repl *r)
{
	if (!r)
		return;
	free(r->pend);
	free(r->buf);
	free(r);
}

static void ship_all(ix_repl *r, int heartbeat);
static void check_pending(ix_repl *r);
static void check_drops(ix_repl *r);
static void report(ix_repl *r);

int ix_repl_on_config(ix_repl *r, const ix_repl_config *c, char *err, size_t errlen)
{
	const char *why = ix_repl_config_check(c);
	if (why) {
		snprintf(err, errlen, "%s", why);
		return CM_ERR_INVALID;
	}
	if (r->st.cfg.epoch && c->epoch < r->st.cfg.epoch) {
		snprintf(err, errlen, "epoch: %llu is older than the current %llu", (unsigned long long)c->epoch,
			 (unsigned long long)r->st.cfg.epoch);
		return CM_ERR_STATE;
	}
	if (r->st.cfg.epoch && c->epoch == r->st.cfg.epoch) {
		if (configs_equal(c, &r->st.cfg))
			return CM_OK;
		snprintf(err, errlen, "epoch: %llu is the current epoch with another configuration",
			 (unsigned long long)c->epoch);
		return CM_ERR_STATE;
	}
	ix_repl_persist next = r->st;
	next.cfg = *c;
	if (r->io.persist(r->io.ctx, &next) != 0) {
		snprintf(err, errlen, "cannot persist the configuration");
		return CM_ERR_IO;
	}
	finish_pending(r, CM_ERR_STATE);
	r->st = next;
	set_self(r);
	r->last_heard_ms = now(r);
	r->heard = 0;
	r->last_report_ms = 0;
	reset_peers(r);
	if (is_primary(r))
		ship_all(r, 1);
	return CM_OK;
}

/* ---- primary ------------------------------------------------------------- */

int ix_repl_has_lease(ix_repl *r)
{
	if (!is_primary(r))
		return 0;
	uint32_t need = r->st.cfg.n / 2; /* backups besides ourselves */
	if (need == 0)
		return 1;
	uint64_t ts[IX_REPL_MAX];
	uint32_t k = 0;
	for (uint32_t i = 0; i < r->st.cfg.n; i++)
		if ((int)i != r->self && r->peer[i].has_ts)
			ts[k++] = r->peer[i].lease_ts;
	if (k < need)
		return 0;
	/* the need-th largest */
	for (uint32_t i = 0; i < need; i++)
		for (uint32_t j = i + 1; j < k; j++)
			if (ts[j] > ts[i]) {
				uint64_t t = ts[i];
				ts[i] = ts[j];
				ts[j] = t;
			}
	int valid = now(r) < ts[need - 1] + r->o.lease_ms;
	if (r->had_lease && !valid)
		r->stats.lease_lapses++;
	r->had_lease = valid;
	return valid;
}

uint32_t ix_repl_holders(const ix_repl *r, uint64_t size)
{
	if (!is_primary(r))
		return 0;
	uint32_t n = 1;
	for (uint32_t i = 0; i < r->st.cfg.n; i++)
		if ((int)i != r->self && !r->peer[i].drop_sent_ms && r->peer[i].known && r->peer[i].acked >= size)
			n++;
	return n;
}

int ix_repl_holds(const ix_repl *r, uint32_t idx, uint64_t size)
{
	if (!is_primary(r) || idx >= r->st.cfg.n)
		return 0;
	if ((int)idx == r->self)
		return r->io.log_size(r->io.ctx) >= size;
	return !r->peer[idx].drop_sent_ms && r->peer[idx].known && r->peer[idx].acked >= size;
}

static int level_of(const ix_repl *r, uint32_t holders)
{
	uint32_t n = r->st.cfg.n;
	return holders >= n ? IX_REPL_ALL : holders >= n / 2 + 1 ? IX_REPL_QUORUM : IX_REPL_ONE;
}

static void check_pending(ix_repl *r)
{
	if (!r->npend)
		return;
	int lease = !closed(r) && ix_repl_has_lease(r);
	uint64_t t = now(r);
	while (r->npend) {
		struct pending *p = &r->pend[r->pend_head];
		uint32_t h = ix_repl_holders(r, p->end);
		int done = lease && h >= ix_repl_need(p->level, r->st.cfg.n);
		if (!done && t < p->deadline)
			break; /* in order: a later write cannot be done before an earlier one */
		r->pend_head = (r->pend_head + 1) % r->o.max_pending;
		r->npend--;
		/* at the deadline: a majority holding it is a promise with or
		 * without the lease; less is one only under the lease */
		int level = lease || h >= r->st.cfg.n / 2 + 1 ? level_of(r, h) : -1;
		if (level >= IX_REPL_QUORUM && p->end > r->acked_size)
			r->acked_size = p->end;
		r->io.write_done(r->io.ctx, p->token, done ? CM_OK : CM_ERR_TIMEOUT, p->first, p->end, level);
	}
}

/* Primary: names the sizes replicas sign their roots at: each multiple of
 * root_every, and the log size root_ms after the last named size if the
 * log grew since. While the last named size is not committed (above the
 * floor) it stays named for root_hold_ms: the replicas look at the named
 * size each on its own clock, and under steady writes a size renamed at
 * every multiple would leave each with a different one and the ledger
 * without a majority on any (no root committed while writes go on). */
static void name_root(ix_repl *r)
{
	uint64_t size = r->io.log_size(r->io.ctx), t = now(r);
	if (r->o.root_hold_ms && r->named > r->st.floor && t < r->named_ms + r->o.root_hold_ms)
		return;
	if (r->o.root_every && size / r->o.root_every * r->o.root_every > r->named) {
		r->named = size / r->o.root_every * r->o.root_every;
		r->named_ms = t;
	}
	if (r->o.root_ms && size > r->named && t >= r->named_ms + r->o.root_ms) {
		r->named = size;
		r->named_ms = t;
	}
}

static void send_append(ix_repl *r, uint32_t b)
{
	struct peer *p = &r->peer[b];
	uint64_t size = r->io.log_size(r->io.ctx);
	uint64_t prev = p->known ? p->acked : p->probe;
	if (prev > size)
		prev = size;
	uint32_t n = 0;
	if (p->known && prev < size && r->io.log_read(r->io.ctx, prev, r->o.batch, r->buf, &n) != 0)
		return;
	/* an append must fit in one message: wide records (high dimensions,
	 * large metadata) go in fewer per append */
	uint64_t bytes = 0;
	for (uint32_t i = 0; r->o.append_bytes && i < n; i++) {
		bytes += r->buf[i].len;
		if (i && bytes > r->o.append_bytes) {
			n = i;
			break;
		}
	}
	ix_repl_msg m;
	memset(&m, 0, sizeof(m));
	m.type = IX_REPL_APPEND;
	ix_repl_append *a = &m.u.append;
	a->epoch = r->st.cfg.epoch;
	a->prev_size = prev;
	if (r->io.log_root(r->io.ctx, prev, a->prev_root) != 0)
		return;
	a->n = n;
	a->entries = r->buf;
	a->primary_size = size;
	name_root(r);
	a->root_size = r->named;
	a->ts = now(r);
	a->req = ++r->next_req;
	a->closing = closed(r);
	memcpy(a->sender, r->o.self, CM_PK_BYTES);
	uint8_t d[CM_HASH_BYTES];
	ix_repl_append_digest(r->o.fragment, a, d);
	r->io.sign(r->io.ctx, d, a->sig);
	p->inflight = 1;
	p->sent_prev = prev;
	p->req = a->req;
	p->sent_ms = a->ts;
	r->io.send(r->io.ctx, r->st.cfg.replicas[b], &m);
}

/* Sends to every backup that has nothing in flight and something to get
 * (or, with heartbeat, is due one); resends what went unanswered. */
static void ship_all(ix_repl *r, int heartbeat)
{
	if (!is_primary(r))
		return;
	uint64_t size = r->io.log_size(r->io.ctx), t = now(r);
	for (uint32_t i = 0; i < r->st.cfg.n; i++) {
		if ((int)i == r->self)
			continue;
		struct peer *p = &r->peer[i];
		if (!p->retry_ms)
			p->retry_ms = r->o.retry_ms;
		int late = p->inflight && t >= p->sent_ms + p->retry_ms;
		int due = p->inflight ? late
				      : !p->known || p->acked < size || heartbeat ||
						t >= p->sent_ms + r->o.heartbeat_ms;
		/* back off, but keep the backup hearing from us well within its
		 * suspicion time */
		if (late && p->retry_ms < 16 * (uint64_t)r->o.retry_ms && p->retry_ms * 2 <= r->o.lease_ms / 2)
			p->retry_ms *= 2;
		if (due)
			send_append(r, i);
	}
}

int ix_repl_write(ix_repl *r, ix_repl_entry *e, uint32_t n, int level, uint64_t deadline_ms, uint64_t token,
		  uint64_t *first)
{
	if (!is_primary(r))
		return CM_ERR_PERM;
	if (closed(r) || r->handoff_epoch == r->st.cfg.epoch)
		return CM_ERR_STATE;
	if (n == 0)
		return CM_ERR_INVALID;
	if (r->npend >= r->o.max_pending)
		return CM_ERR_TOOBIG;
	uint64_t size = r->io.log_size(r->io.ctx);
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].seq != size + i)
			return CM_ERR_RANGE;
		if (e[i].epoch != r->st.cfg.epoch)
			return CM_ERR_STATE;
		if (!e[i].data)
			return CM_ERR_INVALID;
		cm_merkle_blake2b.leaf(e[i].leaf, e[i].data, e[i].len);
	}
	uint64_t epoch = r->st.cfg.epoch;
	int rc = r->io.log_append(r->io.ctx, e, n);
	if (rc != 0)
		return rc;
	/* the io may take other calls while the entries go to disk (ix_repl_io):
	 * acks and ticks meanwhile are harmless, but the epoch may have ended;
	 * then the entries stay in the log unacknowledged, as after any append
	 * whose epoch ends before its level */
	if (!is_primary(r) || r->st.cfg.epoch != epoch || closed(r) || r->handoff_epoch == epoch)
		return CM_ERR_STATE;
	struct pending *p = &r->pend[(r->pend_head + r->npend) % r->o.max_pending];
	p->token = token;
	p->first = size;
	p->end = size + n;
	p->deadline = deadline_ms;
	p->level = level;
	r->npend++;
	*first = size;
	ship_all(r, 0);
	check_pending(r);
	return CM_OK;
}

static int on_ack(ix_repl *r, const ix_repl_ack *a)
{
	r->stats.acks_in++;
	if (a->epoch != r->st.cfg.epoch) {
		r->stats.stale_epoch++;
		return CM_ERR_STATE;
	}
	int b = index_of(&r->st.cfg, a->sender);
	if (!is_primary(r) || b < 0 || b == r->self)
		return CM_ERR_PERM;
	uint8_t d[CM_HASH_BYTES];
	ix_repl_ack_digest(r->o.fragment, a, d);
	if (r->io.verify(r->io.ctx, a->sender, d, a->sig) != 0) {
		r->stats.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	struct peer *p = &r->peer[b];
	uint64_t size = r->io.log_size(r->io.ctx);
	if (a->ts > now(r))
		return CM_ERR_INVALID;
	/* an answer to an earlier append that the backup was slow to give (we
	 * sent it again meanwhile) still counts as the answer if it moves the
	 * backup on: waiting for the copy's answer too would cost a round trip
	 * and the backup's check of entries it already holds */
	int progress = a->ok && (!p->known || a->match > p->acked);
	if (a->ok) {
		uint8_t mine[CM_HASH_BYTES];
		if (a->match > size || r->io.log_root(r->io.ctx, a->match, mine) != 0 ||
		    memcmp(mine, a->match_root, CM_HASH_BYTES) != 0)
			return CM_ERR_VERIFY; /* cannot be: our log only grows in our epoch */
		if (!p->known || a->match > p->acked)
			p->acked = a->match;
		p->known = 1;
	}
	if (a->refused) { /* a backup gave up on us: close the epoch, ask for the next */
		if (!closed(r))
			report(r);
		p->inflight = 0;
		return CM_OK;
	}
	if (!p->has_ts || a->ts > p->lease_ts)
		p->lease_ts = a->ts;
	p->has_ts = 1;
	if (p->inflight && (a->req == p->req || (progress && a->req < p->req))) {
		p->inflight = 0;
		p->retry_ms = r->o.retry_ms;
		if (!a->ok) {
			/* no agreement at probe: bisect between lo (agreed) and below it */
			p->known = 0;
			uint64_t hi = p->sent_prev ? p->sent_prev - 1 : 0;
			if (a->log_size < hi)
				hi = a->log_size;
			if (hi < p->lo)
				p->lo = 0;
			p->hi = hi;
			p->probe = p->lo + (p->hi - p->lo + 1) / 2;
			r->stats.mismatches++;
		} else {
			p->lo = p->acked;
		}
		/* the next append follows at once only when there is something to
		 * ship or a probe to continue; otherwise at the next heartbeat
		 * (an unconditional resend kept every backup in a busy ping-pong
		 * of empty appends, a signature and a verification each way) */
		if (!p->known || p->acked < size)
			send_append(r, (uint32_t)b);
	}
	check_pending(r);
	return CM_OK;
}

/* ---- backup ---------------------------------------------------------------- */

static int truncate_to(ix_repl *r, uint64_t size)
{
	if (size < r->st.floor) {
		r->stats.floor_refusals++;
		return CM_ERR_STATE;
	}
	uint64_t L = r->io.log_size(r->io.ctx);
	int rc = r->io.log_truncate(r->io.ctx, size);
	if (size < r->agreed)
		r->agreed = size;
	if (rc == 0) {
		r->stats.truncations++;
		r->stats.truncated_entries += L - size;
	}
	return rc;
}

static void try_commit_root(ix_repl *r)
{
	if (!r->commit_size || r->commit_size > r->io.log_size(r->io.ctx))
		return;
	uint64_t size = r->commit_size;
	uint8_t root[CM_HASH_BYTES];
	memcpy(root, r->commit_root, CM_HASH_BYTES);
	r->commit_size = 0;
	ix_repl_on_commit_root(r, size, root);
}

static void reply(ix_repl *r, const ix_repl_append *a, int ok, uint64_t match)
{
	ix_repl_msg m;
	memset(&m, 0, sizeof(m));
	m.type = IX_REPL_ACK;
	ix_repl_ack *k = &m.u.ack;
	k->epoch = a->epoch;
	k->ok = ok > 0;
	k->refused = ok < 0;
	k->log_size = r->io.log_size(r->io.ctx);
	if (ok > 0) {
		k->match = match;
		if (r->io.log_root(r->io.ctx, match, k->match_root) != 0)
			return;
	}
	k->ts = a->ts;
	k->req = a->req;
	memcpy(k->sender, r->o.self, CM_PK_BYTES);
	uint8_t d[CM_HASH_BYTES];
	ix_repl_ack_digest(r->o.fragment, k, d);
	r->io.sign(r->io.ctx, d, k->sig);
	r->io.send(r->io.ctx, a->sender, &m);
}

static int on_append(ix_repl *r, const ix_repl_append *a)
{
	r->stats.appends_in++;
	/* cheap checks first, the signature last */
	if (!r->st.cfg.epoch || a->epoch != r->st.cfg.epoch) {
		r->stats.stale_epoch++;
		return CM_ERR_STATE;
	}
	if (r->self < 0 || is_primary(r) ||
	    memcmp(a->sender, r->st.cfg.replicas[r->st.cfg.primary], CM_PK_BYTES) != 0) {
		r->stats.not_primary++;
		return CM_ERR_PERM;
	}
	if (a->n > r->o.batch)
		return CM_ERR_INVALID;
	for (uint32_t i = 0; i < a->n; i++) {
		const ix_repl_entry *e = &a->entries[i];
		if (e->seq != a->prev_size + i || e->epoch > a->epoch || (i && e->epoch < a->entries[i - 1].epoch))
			return CM_ERR_INVALID;
		uint8_t leaf[CM_HASH_BYTES];
		if (!e->data)
			return CM_ERR_INVALID;
		cm_merkle_blake2b.leaf(leaf, e->data, e->len);
		if (memcmp(leaf, e->leaf, CM_HASH_BYTES) != 0)
			return CM_ERR_INVALID;
	}
	uint8_t d[CM_HASH_BYTES];
	ix_repl_append_digest(r->o.fragment, a, d);
	if (r->io.verify(r->io.ctx, a->sender, d, a->sig) != 0) {
		r->stats.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	if (a->closing && !closed(r))
		report(r);
	if (closed(r)) {
		r->stats.refused_reported++;
		reply(r, a, -1, 0);
		return CM_ERR_STATE;
	}
	r->last_heard_ms = now(r);
	r->heard = 1;
	uint64_t L = r->io.log_size(r->io.ctx);
	uint8_t mine[CM_HASH_BYTES];
	if (a->prev_size > L || r->io.log_root(r->io.ctx, a->prev_size, mine) != 0 ||
	    memcmp(mine, a->prev_root, CM_HASH_BYTES) != 0) {
		r->stats.mismatches++;
		reply(r, a, 0, 0);
		return CM_OK;
	}
	/* entries we hold must be the same; the first that differs truncates */
	uint32_t skip = 0;
	int rc = 0;
	for (; skip < a->n && a->prev_size + skip < L; skip++) {
		ix_repl_entry have;
		memset(&have, 0, sizeof(have));
		/* the leaf alone when the io has it at hand: equal leaves are
		 * equal data, whose encoding holds the epoch */
		if (r->io.log_leaf) {
			if ((rc = r->io.log_leaf(r->io.ctx, a->prev_size + skip, have.leaf)) != 0)
				return rc;
			have.epoch = a->entries[skip].epoch;
		} else if ((rc = r->io.log_entry(r->io.ctx, a->prev_size + skip, &have)) != 0) {
			return rc;
		}
		if (memcmp(have.leaf, a->entries[skip].leaf, CM_HASH_BYTES) != 0 ||
		    have.epoch != a->entries[skip].epoch) {
			if ((rc = truncate_to(r, a->prev_size + skip)) != 0)
				return rc;
			break;
		}
	}
	if (skip < a->n && (rc = r->io.log_append(r->io.ctx, a->entries + skip, a->n - skip)) != 0)
		return rc;
	uint64_t end = a->prev_size + a->n;
	/* what lies beyond both this batch and the primary's log, from an
	 * older epoch, is not the primary's (its log only grows with entries
	 * of this epoch): drop it. Entries of this epoch are the primary's. */
	uint64_t cut = end > a->primary_size ? end : a->primary_size;
	if (r->io.log_size(r->io.ctx) > cut) {
		ix_repl_entry e;
		memset(&e, 0, sizeof(e));
		if ((rc = r->io.log_entry(r->io.ctx, cut, &e)) != 0)
			return rc;
		if (e.epoch < a->epoch && (rc = truncate_to(r, cut)) != 0)
			return rc;
	}
	if (end > r->agreed)
		r->agreed = end;
	if (a->root_size <= a->primary_size && a->root_size > r->named)
		r->named = a->root_size;
	if (r->named <= r->agreed && r->named > r->named_held)
		r->named_held = r->named;
	try_commit_root(r);
	reply(r, a, 1, end);
	return CM_OK;
}

int ix_repl_on_message(ix_repl *r, const ix_repl_msg *m)
{
	switch (m->type) {
	case IX_REPL_APPEND: return on_append(r, &m->u.append);
	case IX_REPL_ACK: return on_ack(r, &m->u.ack);
	default: return CM_ERR_INVALID;
	}
}

int ix_repl_on_commit_root(ix_repl *r, uint64_t size, const uint8_t root[CM_HASH_BYTES])
{
	if (size <= r->st.floor)
		return CM_OK;
	if (size > r->io.log_size(r->io.ctx)) {
		if (size > r->commit_size) {
			r->commit_size = size;
			memcpy(r->commit_root, root, CM_HASH_BYTES);
		}
		return CM_OK;
	}
	uint8_t mine[CM_HASH_BYTES];
	if (r->io.log_root(r->io.ctx, size, mine) != 0)
		return CM_ERR_IO;
	if (memcmp(mine, root, CM_HASH_BYTES) != 0)
		return CM_ERR_VERIFY;
	ix_repl_persist next = r->st;
	next.floor = size;
	if (r->io.persist(r->io.ctx, &next) != 0)
		return CM_ERR_IO;
	r->st = next;
	return CM_OK;
}

/* Primary: a backup that answered nothing for drop_ms (since its last
 * answer or since this configuration began) is reported to the ledger for
 * replacement, at most once per drop_ms, and only while the primary and
 * the other backups, a majority of the replica set, hold every write
 * acknowledged at QUORUM: the next replica set (the spare joins empty) then
 * still has them on a majority, which failover relies on. From then on the
 * reported backup counts towards no write of this epoch (it may come back
 * and answer, but the next replica set will not have it), so what is
 * acknowledged later is on a majority of the next set as well. */
static void check_drops(ix_repl *r)
{
	if (!r->o.drop_ms || !r->io.ledger_drop || closed(r))
		return;
	uint64_t t = now(r);
	for (uint32_t i = 0; i < r->st.cfg.n; i++) {
		if ((int)i == r->self)
			continue;
		struct peer *p = &r->peer[i];
		uint64_t last = p->has_ts && p->lease_ts > r->cfg_ms ? p->lease_ts : r->cfg_ms;
		if (t < last + r->o.drop_ms || (p->drop_sent_ms && t < p->drop_sent_ms + r->o.drop_ms))
			continue;
		uint32_t h = 1;
		for (uint32_t j = 0; j < r->st.cfg.n; j++)
			if (j != i && (int)j != r->self && !r->peer[j].drop_sent_ms && r->peer[j].known &&
			    r->peer[j].acked >= r->acked_size)
				h++;
		if (h < cm_fragment_majority(r->st.cfg.n))
			continue;
		p->drop_sent_ms = t;
		r->stats.drops_sent++;
		r->io.ledger_drop(r->io.ctx, r->st.cfg.epoch, r->st.cfg.replicas[i]);
	}
}

/* Gives up on the current epoch (durably, before saying so) and sends the
 * ledger a failover request with this log's signed (size, root). */
static void report(ix_repl *r)
{
	if (!closed(r)) {
		ix_repl_persist next = r->st;
		next.reported_epoch = r->st.cfg.epoch;
		if (r->io.persist(r->io.ctx, &next) != 0)
			return;
		r->st = next;
		finish_pending(r, CM_ERR_STATE);
	}
	ix_repl_failover f;
	memset(&f, 0, sizeof(f));
	f.epoch = r->st.cfg.epoch;
	f.size = r->io.log_size(r->io.ctx);
	if (r->io.log_root(r->io.ctx, f.size, f.root) != 0)
		return;
	if (f.size) {
		ix_repl_entry e;
		memset(&e, 0, sizeof(e));
		if (r->io.log_entry(r->io.ctx, f.size - 1, &e) != 0)
			return;
		f.last_epoch = e.epoch;
	}
	memcpy(f.sender, r->o.self, CM_PK_BYTES);
	uint8_t d[CM_HASH_BYTES];
	ix_repl_failover_digest(r->o.fragment, &f, d);
	r->io.sign(r->io.ctx, d, f.sig);
	r->last_report_ms = now(r);
	r->stats.failovers_sent++;
	r->io.ledger_submit(r->io.ctx, &f);
}

void ix_repl_tick(ix_repl *r)
{
	if (!r->st.cfg.epoch || r->self < 0)
		return;
	uint64_t t = now(r);
	/* A tick more than suspect_ms / 2 after the last one means this replica
	 * did not run meanwhile (stopped, or starved of CPU): appends that came
	 * then are still unread, so the primary's silence over that time says
	 * nothing of the primary, and suspicion starts again from now. This
	 * only delays a failover request; it never hastens one. */
	if (r->last_tick_ms && t > r->last_tick_ms + r->o.suspect_ms / 2) {
		r->last_heard_ms = t;
		r->stats.pauses++;
	}
	r->last_tick_ms = t;
	if (closed(r)) { /* until the ledger's next configuration arrives */
		if (t >= r->last_report_ms + r->o.suspect_ms)
			report(r);
		if (is_primary(r))
			ship_all(r, 0);
		return;
	}
	if (is_primary(r)) {
		ship_all(r, 0);
		check_pending(r);
		check_drops(r);
		if (r->handoff_epoch == r->st.cfg.epoch && r->npend == 0) {
			uint64_t size = r->io.log_size(r->io.ctx);
			for (uint32_t i = 0; i < r->st.cfg.n; i++)
				if ((int)i != r->self && !(r->handoff_skip & (1u << i)) && r->peer[i].known &&
				    r->peer[i].acked >= size) {
					report(r); /* a replica that may take over holds the whole log */
					break;
				}
		}
		return;
	}
	/* A primary that has sent nothing yet in this epoch may not have
	 * learned of it: each replica applies the ledger's configuration when
	 * its own follower gets there, seconds apart on a busy machine */
	if (t >= r->last_heard_ms + r->o.suspect_ms + (r->heard ? 0 : r->o.start_grace_ms))
		report(r); /* the primary is gone */
}

int ix_repl_handoff(ix_repl *r, uint64_t epoch, const uint8_t (*skip)[CM_PK_BYTES], uint32_t nskip)
{
	if (!is_primary(r))
		return CM_ERR_PERM;
	if (epoch != r->st.cfg.epoch)
		return CM_ERR_STATE;
	uint32_t mask = 0;
	for (uint32_t i = 0; i < nskip; i++) {
		int k = index_of(&r->st.cfg, skip[i]);
		if (k >= 0)
			mask |= 1u << k;
	}
	r->handoff_epoch = epoch;
	r->handoff_skip = mask;
	return CM_OK;
}

/* ---- reading ---------------------------------------------------------------- */

uint64_t ix_repl_epoch(const ix_repl *r)
{
	return r->st.cfg.epoch;
}

int ix_repl_is_primary(const ix_repl *r)
{
	return is_primary(r);
}

int ix_repl_is_member(const ix_repl *r, const uint8_t pk[CM_PK_BYTES])
{
	return r->st.cfg.epoch && index_of(&r->st.cfg, pk) >= 0;
}

const ix_repl_config *ix_repl_config_get(const ix_repl *r)
{
	return &r->st.cfg;
}

uint64_t ix_repl_floor(const ix_repl *r)
{
	return r->st.floor;
}

uint64_t ix_repl_root_size(ix_repl *r)
{
	if (r->self < 0)
		return 0;
	if (is_primary(r)) {
		name_root(r);
		return r->named;
	}
	uint64_t s = ix_repl_signable(r);
	return r->named_held <= s ? r->named_held : 0;
}

uint64_t ix_repl_signable(ix_repl *r)
{
	uint64_t size = r->io.log_size(r->io.ctx), s = r->st.floor;
	if (is_primary(r))
		s = size;
	else if (r->self >= 0 && r->agreed > s)
		s = r->agreed < size ? r->agreed : size;
	return s;
}

void ix_repl_stats_get(const ix_repl *r, ix_repl_stats *out)
{
	*out = r->stats;
}
