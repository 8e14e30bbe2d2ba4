/* The replication core (ix_repl) of each fragment wired into the process:
 * its io table over the fragment's store, a state file, the node key and
 * the network (one sender thread per backup, Replicate's answer fed back
 * as the ack), and its life cycle. The RPC handlers over it are in
 * ix_replica_rpc.c. ledger_submit and ledger_drop hand the failover
 * report, or the request to replace a silent backup, to the service's
 * failover sink (ix_chain submits them as FailoverRequest transactions). */
#include "ix_service_int.h"
#include "ix_split.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "cm_log.h"
#include "cm_merkle.h"
#include "cm_time.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FILE "replica"
#define OLD_CONFIG_FILE "config"      /* before the state file: the configuration alone */
#define STATE_MAGIC "IXR1"
#define STATE_MAX (64u << 10)
#define STORE_DIR "store"
#define MAX_PENDING 4096              /* writes awaiting their level per fragment */

/* ---- configuration ------------------------------------------------------------ */

const char *ixr_check_config(const Muri__V1__FragmentConfig *c)
{
	if (!ixs_valid_magu(c->magu))
		return "magu: 1..128 bytes of [A-Za-z0-9_.-]";
	if (c->epoch == 0)
		return "epoch: must be >= 1";
	if (c->n_replicas < 1 || c->n_replicas > IX_MAX_REPLICAS)
		return "replicas: 1..16 are allowed";
	if (c->primary.len != CM_PK_BYTES)
		return "primary: must be a 32-byte public key";
	int has_primary = 0;
	for (size_t i = 0; i < c->n_replicas; i++) {
		if (c->replicas[i]->pubkey.len != CM_PK_BYTES)
			return "replicas.pubkey: must be a 32-byte public key";
		if (!c->replicas[i]->address[0] || strlen(c->replicas[i]->address) >= IX_ADDR_MAX)
			return "replicas.address: host:port, at most 255 bytes";
		for (size_t j = 0; j < i; j++)
			if (memcmp(c->replicas[i]->pubkey.data, c->replicas[j]->pubkey.data, CM_PK_BYTES) == 0)
				return "replicas: a replica is listed twice";
		if (memcmp(c->replicas[i]->pubkey.data, c->primary.data, CM_PK_BYTES) == 0)
			has_primary = 1;
	}
	return has_primary ? NULL : "primary: must be one of the replicas";
}

/* A checked FragmentConfig as the core's configuration. */
void ixr_config_from_pb(const Muri__V1__FragmentConfig *c, ix_repl_config *out)
{
	memset(out, 0, sizeof(*out));
	out->epoch = c->epoch;
	out->n = (uint32_t)c->n_replicas;
	for (uint32_t i = 0; i < out->n; i++) {
		memcpy(out->replicas[i], c->replicas[i]->pubkey.data, CM_PK_BYTES);
		if (memcmp(out->replicas[i], c->primary.data, CM_PK_BYTES) == 0)
			out->primary = i;
	}
}

/* ---- the state file: magic | u64 reported_epoch | u64 floor | u32 n | FragmentConfig ---- */

static int write_file_durably(const char *dir, const char *name, const uint8_t *buf, size_t n)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = CM_OK;
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n || fsync(fd) != 0)
		rc = CM_ERR_IO;
	if (fd >= 0 && close(fd) != 0)
		rc = CM_ERR_IO;
	if (rc == CM_OK && rename(tmp, path) != 0)
		rc = CM_ERR_IO;
	if (rc == CM_OK) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) != 0)
			rc = CM_ERR_IO;
		if (dfd >= 0)
			close(dfd);
	}
	return rc;
}

static int save_state(struct frag *f, const ix_repl_persist *st, const Muri__V1__FragmentConfig *cfg)
{
	size_t n = cfg ? protobuf_c_message_get_packed_size(&cfg->base) : 0;
	size_t total = 4 + 8 + 8 + 4 + n;
	uint8_t *buf = malloc(total);
	if (!buf)
		return CM_ERR_NOMEM;
	memcpy(buf, STATE_MAGIC, 4);
	cm_put_be64(buf + 4, st->reported_epoch);
	cm_put_be64(buf + 12, st->floor);
	cm_put_be32(buf + 20, (uint32_t)n);
	if (cfg)
		protobuf_c_message_pack(&cfg->base, buf + 24);
	int rc = write_file_durably(f->dir, STATE_FILE, buf, total);
	free(buf);
	return rc;
}

static uint8_t *read_file(const char *dir, const char *name, size_t *n)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	uint8_t *buf = malloc(STATE_MAX);
	*n = buf ? fread(buf, 1, STATE_MAX, fp) : 0;
	fclose(fp);
	return buf;
}

/* The persisted state and configuration (*cfg NULL when none). */
static int load_state(struct frag *f, ix_repl_persist *st, Muri__V1__FragmentConfig **cfg, char *err,
		      size_t errlen)
{
	memset(st, 0, sizeof(*st));
	*cfg = NULL;
	size_t n = 0;
	uint8_t *buf = read_file(f->dir, STATE_FILE, &n);
	if (buf) {
		uint32_t len = n >= 24 ? cm_get_be32(buf + 20) : 0;
		if (n < 24 || memcmp(buf, STATE_MAGIC, 4) != 0 || (size_t)len + 24 != n) {
			free(buf);
			snprintf(err, errlen, "%s/%s: not a replica state file", f->dir, STATE_FILE);
			return CM_ERR_INVALID;
		}
		st->reported_epoch = cm_get_be64(buf + 4);
		st->floor = cm_get_be64(buf + 12);
		if (len)
			*cfg = muri__v1__fragment_config__unpack(NULL, len, buf + 24);
		free(buf);
		if (len && !*cfg) {
			snprintf(err, errlen, "%s/%s: the configuration does not parse", f->dir, STATE_FILE);
			return CM_ERR_INVALID;
		}
	} else if ((buf = read_file(f->dir, OLD_CONFIG_FILE, &n)) != NULL) {
		*cfg = n ? muri__v1__fragment_config__unpack(NULL, n, buf) : NULL;
		free(buf);
	}
	if (*cfg && ixr_check_config(*cfg)) {
		snprintf(err, errlen, "%s: saved configuration: %s", f->dir, ixr_check_config(*cfg));
		muri__v1__fragment_config__free_unpacked(*cfg, NULL);
		*cfg = NULL;
		return CM_ERR_INVALID;
	}
	if (*cfg)
		ixr_config_from_pb(*cfg, &st->cfg);
	return CM_OK;
}

/* ---- the store -------------------------------------------------------------------- */

/* Opens f's store with schema if it has none. Under core_mu (so two first
 * writes cannot open two stores on one file). */
int ixr_ensure_store(struct frag *f, const Muri__V1__FragmentSchema *schema, char *err, size_t errlen)
{
	if (f->store) {
		if (schema && schema->dimension && schema->dimension != f->spec.dim) {
			snprintf(err, errlen, "schema.dimension: %u, but %s/%u holds %u-d vectors", schema->dimension,
				 f->magu, f->fragment, f->spec.dim);
			return CM_ERR_INVALID;
		}
		return CM_OK;
	}
	if (!schema) {
		snprintf(err, errlen, "schema: required for the first write to %s/%u", f->magu, f->fragment);
		return CM_ERR_INVALID;
	}
	ix_spec spec;
	if (ix_spec_from_pb(schema, &spec, err, errlen) != CM_OK)
		return CM_ERR_INVALID;
	/* what shapes the index comes from the schema, not this node's settings */
	ix_options opt = f->svc->o.frag;
	if (ix_options_shape_from_pb(schema->index, &opt, err, errlen) != CM_OK)
		return CM_ERR_INVALID;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DIR);
	ix_fragment *st = NULL;
	int rc = ix_fragment_open(path, &spec, &opt, &st, err, errlen);
	if (rc != CM_OK)
		return rc;
	if (ix_repl_floor(f->core))
		ix_fragment_set_floor(st, ix_repl_floor(f->core));
	pthread_mutex_lock(&f->mu);
	f->store = st;
	f->spec = spec;
	pthread_mutex_unlock(&f->mu);
	return CM_OK;
}

/* Canonical bytes of a record in a, as a core entry without its leaf
 * (ix_repl_write hashes the entries it is given). */
int ixr_entry_bytes(const ix_record *r, cm_arena *a, ix_repl_entry *e)
{
	size_t n = ix_record_encoded_size(r);
	uint8_t *b = cm_arena_alloc(a, n);
	if (!b)
		return CM_ERR_NOMEM;
	ix_record_encode(r, b);
	e->seq = r->seq;
	e->epoch = r->epoch;
	e->data = b;
	e->len = (uint32_t)n;
	return CM_OK;
}

/* Canonical bytes of a record in a, as a core entry with its leaf. */
int ixr_entry_of(const ix_record *r, cm_arena *a, ix_repl_entry *e)
{
	int rc = ixr_entry_bytes(r, a, e);
	if (rc == CM_OK)
		ix_record_leaf_hash(e->data, e->len, e->leaf);
	return rc;
}

/* ---- the io table (ctx: the frag; every call under core_mu) -------------------------- */

static uint64_t io_log_size(void *ctx)
{
	struct frag *f = ctx;
	return f->store ? ix_fragment_size(f->store) : 0;
}

static int io_log_read(void *ctx, uint64_t from, uint32_t max, ix_repl_entry *out, uint32_t *n)
{
	struct frag *f = ctx;
	*n = 0;
	uint64_t size = f->store ? ix_fragment_size(f->store) : 0;
	if (f->recent && from >= f->recent_first && from < f->recent_end && from < size) {
		/* durable entries of the write in progress: as the core hashed them */
		uint64_t end = f->recent_end < size ? f->recent_end : size;
		uint32_t k = end - from < max ? (uint32_t)(end - from) : max;
		memcpy(out, f->recent + (from - f->recent_first), k * sizeof(*out));
		*n = k;
		return CM_OK;
	}
	if (!f->store)
		return from == 0 ? CM_OK : CM_ERR_RANGE;
	ix_record *recs = NULL;
	size_t k = 0;
	int rc = ix_fragment_read(f->store, from, max, &f->io, &recs, &k);
	for (size_t i = 0; rc == CM_OK && i < k; i++)
		rc = ixr_entry_of(&recs[i], &f->io, &out[i]);
	if (rc == CM_OK)
		*n = (uint32_t)k;
	return rc;
}

static int io_log_entry(void *ctx, uint64_t seq, ix_repl_entry *out)
{
	uint32_t n = 0;
	int rc = io_log_read(ctx, seq, 1, out, &n);
	return rc == CM_OK && n != 1 ? CM_ERR_RANGE : rc;
}

static int io_log_root(void *ctx, uint64_t size, uint8_t out[CM_HASH_BYTES])
{
	struct frag *f = ctx;
	if (!f->store) {
		if (size)
			return CM_ERR_RANGE;
		cm_merkle_blake2b.empty(out);
		return CM_OK;
	}
	return ix_fragment_root(f->store, size, out);
}

/* Set by a client write on the primary for its call into the core
 * (ixr_write_begin): the arena of that call. */
static __thread cm_arena *write_arena;

void ixr_write_begin(struct frag *f, cm_arena *a)
{
	(void)f;
	write_arena = a;
}

void ixr_write_end(struct frag *f)
{
	(void)f;
	write_arena = NULL;
}

/* A client write's entries (write_arena set, on the primary) go to disk
 * with core_mu released: the senders take acks and ship the pieces already
 * durable meanwhile, instead of waiting for every append of a large write
 * (write_mu keeps client writes in order; the core checks its epoch after).
 * Those records are decoded into the write's own arena, which no other
 * core call resets. A backup's append (from on_append) keeps the lock. */
static int io_log_leaf(void *ctx, uint64_t seq, uint8_t out[CM_HASH_BYTES])
{
	struct frag *f = ctx;
	return f->store ? ix_fragment_leaf_hash(f->store, seq, out) : CM_ERR_RANGE;
}

static int io_log_append(void *ctx, const ix_repl_entry *e, uint32_t n)
{
	struct frag *f = ctx;
	char err[IX_ERR_MAX] = "";
	cm_arena *a = write_arena ? write_arena : &f->io;
	int rc = ixr_ensure_store(f, f->schema_in, err, sizeof(err));
	ix_record *recs = rc == CM_OK ? cm_arena_alloc(a, (n ? n : 1) * sizeof(*recs)) : NULL;
	if (rc == CM_OK && !recs)
		rc = CM_ERR_NOMEM;
	for (uint32_t i = 0; rc == CM_OK && i < n; i++) {
		rc = ix_record_decode(e[i].data, e[i].len, a, &recs[i], err, sizeof(err));
		if (rc == CM_OK && (recs[i].seq != e[i].seq || recs[i].epoch != e[i].epoch)) {
			snprintf(err, sizeof(err), "records[%u]: seq or epoch differs from the entry", i);
			rc = CM_ERR_INVALID;
		}
	}
	/* the entries' bytes and leaves are the records' canonical bytes and
	 * leaf hashes (the core hashed or checked them): not computed again */
	const uint8_t **leaves = rc == CM_OK ? cm_arena_alloc(a, (n ? n : 1) * sizeof(*leaves)) : NULL;
	size_t *lens = rc == CM_OK ? cm_arena_alloc(a, (n ? n : 1) * sizeof(*lens)) : NULL;
	uint8_t(*hashes)[CM_HASH_BYTES] = rc == CM_OK ? cm_arena_alloc(a, (n ? n : 1) * sizeof(*hashes)) : NULL;
	if (rc == CM_OK && (!leaves || !lens || !hashes))
		rc = CM_ERR_NOMEM;
	for (uint32_t i = 0; rc == CM_OK && i < n; i++) {
		leaves[i] = e[i].data;
		lens[i] = e[i].len;
		memcpy(hashes[i], e[i].leaf, CM_HASH_BYTES);
	}
	uint64_t t0 = cm_now_us();
	if (rc == CM_OK) {
		ix_fragment *st = f->store; /* fixed once set */
		if (write_arena)
			pthread_mutex_unlock(&f->core_mu);
		rc = ix_fragment_append_encoded(st, recs, n, leaves, lens, (const uint8_t(*)[CM_HASH_BYTES])hashes, err,
						sizeof(err));
		if (write_arena)
			pthread_mutex_lock(&f->core_mu);
	}
	cm_debug("log_append", "magu=%s fragment=%u records=%u us=%llu", f->magu, f->fragment, n,
		 (unsigned long long)(cm_now_us() - t0));
	if (rc != CM_OK)
		cm_warn("append_failed", "magu=%s fragment=%u err=\"%s\"", f->magu, f->fragment, err);
	return rc;
}

static int io_log_truncate(void *ctx, uint64_t size)
{
	struct frag *f = ctx;
	char err[IX_ERR_MAX];
	uint64_t from = io_log_size(ctx);
	int rc = f->store ? ix_fragment_truncate(f->store, size, err, sizeof(err)) : CM_ERR_RANGE;
	if (rc == CM_OK)
		cm_info("log_truncated", "magu=%s fragment=%u from=%llu to=%llu reason=\"not in the primary's log\"",
			f->magu, f->fragment, (unsigned long long)from, (unsigned long long)size);
	return rc;
}

static int io_persist(void *ctx, const ix_repl_persist *st)
{
	struct frag *f = ctx;
	const Muri__V1__FragmentConfig *cfg = f->cfg_in ? f->cfg_in : f->cfg;
	int rc = save_state(f, st, cfg);
	if (rc == CM_OK && f->store && st->floor > ix_repl_floor(f->core))
		rc = ix_fragment_set_floor(f->store, st->floor);
	return rc;
}

static struct sender *sender_of(struct frag *f, const uint8_t pk[CM_PK_BYTES])
{
	for (int i = 0; i < IX_MAX_REPLICAS; i++)
		if (f->snd[i].running && memcmp(f->snd[i].pk, pk, CM_PK_BYTES) == 0)
			return &f->snd[i];
	return NULL;
}

/* Copies an append into the sender's slot (replacing an older one). */
static int slot_put(struct sender *sd, const ix_repl_append *a)
{
	size_t bytes = 0;
	for (uint32_t i = 0; i < a->n; i++)
		bytes += a->entries[i].len;
	if (a->n > sd->ents_cap) {
		ix_repl_entry *e = realloc(sd->ents, a->n * sizeof(*e));
		if (!e)
			return CM_ERR_NOMEM;
		sd->ents = e;
		sd->ents_cap = a->n;
	}
	if (bytes > sd->data_cap) {
		uint8_t *d = realloc(sd->data, bytes);
		if (!d)
			return CM_ERR_NOMEM;
		sd->data = d;
		sd->data_cap = bytes;
	}
	size_t off = 0;
	for (uint32_t i = 0; i < a->n; i++) {
		sd->ents[i] = a->entries[i];
		memcpy(sd->data + off, a->entries[i].data, a->entries[i].len);
		sd->ents[i].data = sd->data + off;
		off += a->entries[i].len;
	}
	sd->a = *a;
	sd->a.entries = sd->ents;
	sd->full = 1;
	return CM_OK;
}

static void io_send(void *ctx, const uint8_t to[CM_PK_BYTES], const ix_repl_msg *m)
{
	struct frag *f = ctx;
	if (m->type == IX_REPL_ACK) {
		/* only ever an answer to the Replicate being handled */
		if (f->ack_out && memcmp(m->u.ack.sender, f->svc->key.pk, CM_PK_BYTES) == 0) {
			*f->ack_out = m->u.ack;
			f->ack_set = 1;
		}
		return;
	}
	pthread_mutex_lock(&f->mu);
	struct sender *sd = sender_of(f, to);
	if (sd && slot_put(sd, &m->u.append) == CM_OK)
		pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void io_ledger_submit(void *ctx, const ix_repl_failover *r)
{
	struct frag *f = ctx;
	f->failovers++;
	char root[2 * CM_HASH_BYTES + 1];
	cm_hex(root, r->root, CM_HASH_BYTES);
	ix_failover_report rep = {.epoch = r->epoch, .size = r->size, .last_epoch = r->last_epoch};
	memcpy(rep.root, r->root, CM_HASH_BYTES);
	ixs_failover(f->svc, f->magu, f->fragment, &rep); /* to the ledger, when it follows one */
	cm_warn("failover_request", "magu=%s fragment=%u epoch=%llu size=%llu last_epoch=%llu root=%s", f->magu,
		f->fragment, (unsigned long long)r->epoch, (unsigned long long)r->size,
		(unsigned long long)r->last_epoch, root);
}

/* The primary found a backup silent: the ledger is asked to replace it,
 * through the failover sink (a FailoverRequest with drop set). */
static void io_ledger_drop(void *ctx, uint64_t epoch, const uint8_t pk[CM_PK_BYTES])
{
	struct frag *f = ctx;
	ix_failover_report rep;
	memset(&rep, 0, sizeof(rep));
	rep.epoch = epoch;
	rep.size = io_log_size(ctx);
	if (io_log_root(ctx, rep.size, rep.root) != 0)
		return;
	if (rep.size) {
		ix_repl_entry e;
		memset(&e, 0, sizeof(e));
		if (io_log_entry(ctx, rep.size - 1, &e) != 0)
			return;
		rep.last_epoch = e.epoch;
	}
	rep.has_drop = 1;
	memcpy(rep.drop, pk, CM_PK_BYTES);
	char who[2 * CM_PK_BYTES + 1];
	cm_hex(who, pk, CM_PK_BYTES);
	cm_warn("replica_drop", "magu=%s fragment=%u epoch=%llu backup=%s size=%llu", f->magu, f->fragment,
		(unsigned long long)epoch, who, (unsigned long long)rep.size);
	ixs_failover(f->svc, f->magu, f->fragment, &rep);
}

static void io_write_done(void *ctx, uint64_t token, int rc, uint64_t first, uint64_t end, int level)
{
	struct frag *f = ctx;
	for (struct waiter *w = f->waiters; w; w = w->next) {
		if (w->token != token)
			continue;
		w->done = 1;
		w->rc = rc;
		w->level = level;
		w->first = first;
		w->end = end;
		const ix_repl_config *c = ix_repl_config_get(f->core);
		for (uint32_t i = 0; i < c->n && level >= 0; i++)
			if (ix_repl_holds(f->core, i, end))
				memcpy(w->acked[w->nacked++], c->replicas[i], CM_PK_BYTES);
		pthread_cond_broadcast(&f->done_cv);
		return;
	}
}

static void io_sign(void *ctx, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	struct frag *f = ctx;
	cm_sign(&f->svc->key, sig, d, CM_HASH_BYTES);
}

static int io_verify(void *ctx, const uint8_t pk[CM_PK_BYTES], const uint8_t d[CM_HASH_BYTES],
		     const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	return cm_verify(pk, sig, d, CM_HASH_BYTES);
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return cm_now_ms();
}

static void frag_id(struct frag *f)
{
	cm_hasher h;
	uint8_t b[4];
	cm_put_be32(b, f->fragment);
	cm_hasher_init(&h, CM_DOM_REPL_APPEND);
	cm_hasher_update(&h, f->magu, strlen(f->magu) + 1);
	cm_hasher_update(&h, b, 4);
	cm_hasher_final(&h, f->id);
}

int ixr_core_new(struct frag *f, const ix_repl_persist *st)
{
	frag_id(f);
	ix_service *s = f->svc;
	ix_repl_opts o;
	memset(&o, 0, sizeof(o));
	memcpy(o.fragment, f->id, CM_HASH_BYTES);
	memcpy(o.self, s->key.pk, CM_PK_BYTES);
	o.batch = s->o.repl_batch;
	o.append_bytes = s->o.max_message / 2;
	o.max_pending = MAX_PENDING;
	o.heartbeat_ms = s->o.heartbeat_ms;
	o.retry_ms = 2 * s->o.heartbeat_ms; /* an append unanswered this long is sent again */
	o.lease_ms = s->o.lease_ms;
	o.suspect_ms = s->o.suspect_ms;
	o.start_grace_ms = s->o.start_grace_ms;
	o.drop_ms = s->o.drop_ms;
	o.root_every = s->o.root_every;
	o.root_ms = s->o.root_ms;
	o.root_hold_ms = s->o.root_hold_ms;
	ix_repl_io io = {
		.ctx = f, .log_size = io_log_size, .log_entry = io_log_entry, .log_read = io_log_read,
		.log_root = io_log_root, .log_leaf = io_log_leaf, .log_append = io_log_append, .log_truncate = io_log_truncate,
		.persist = io_persist, .send = io_send, .ledger_submit = io_ledger_submit, .ledger_drop = io_ledger_drop,
		.write_done = io_write_done, .sign = io_sign, .verify = io_verify, .now_ms = io_now,
	};
	return ix_repl_create(&o, &io, st, &f->core);
}

/* Takes core_mu and readies the io arena for one core call. */
void ixr_core_enter(struct frag *f)
{
	pthread_mutex_lock(&f->core_mu);
	cm_arena_reset(&f->io);
}

int ixr_core_try_enter(struct frag *f, uint32_t wait_ms)
{
	if (cm_mutex_lock_ms(&f->core_mu, wait_ms) != 0)
		return 0;
	cm_arena_reset(&f->io);
	return 1;
}

void ixr_core_leave(struct frag *f)
{
	pthread_mutex_unlock(&f->core_mu);
}

/* ---- senders ------------------------------------------------------------------------ */

static int send_one(struct sender *sd, cm_rpc_client *c, cm_arena *a)
{
	struct frag *f = sd->f;
	ix_service *s = f->svc;
	const ix_repl_append *ap = &sd->a;
	Muri__V1__ReplicateRequest req = MURI__V1__REPLICATE_REQUEST__INIT;
	Muri__V1__LogRecord **pbs = cm_arena_alloc(a, (ap->n ? ap->n : 1) * sizeof(*pbs));
	if (!pbs)
		return CM_ERR_NOMEM;
	char err[IX_ERR_MAX];
	for (uint32_t i = 0; i < ap->n; i++) {
		ix_record r;
		if (ix_record_decode(ap->entries[i].data, ap->entries[i].len, a, &r, err, sizeof(err)) != CM_OK ||
		    ix_record_to_pb(&r, a, &pbs[i]) != CM_OK)
			return CM_ERR_NOMEM;
	}
	req.magu = f->magu;
	req.fragment = f->fragment;
	req.epoch = ap->epoch;
	req.records = pbs;
	req.n_records = ap->n;
	pthread_mutex_lock(&f->mu);
	if (f->store && ix_spec_to_pb(&f->spec, a, &req.schema) == CM_OK)
		ix_fragment_shape_to_pb(f->store, req.schema->index);
	pthread_mutex_unlock(&f->mu);
	req.primary_size = ap->primary_size;
	req.root_size = ap->root_size;
	req.prev_size = ap->prev_size;
	req.prev_root.data = (uint8_t *)ap->prev_root;
	req.prev_root.len = CM_HASH_BYTES;
	req.ts = ap->ts;
	req.req = ap->req;
	req.closing = ap->closing != 0;
	req.sender.data = (uint8_t *)ap->sender;
	req.sender.len = CM_PK_BYTES;
	req.signature.data = (uint8_t *)ap->sig;
	req.signature.len = CM_SIG_BYTES;
	ProtobufCMessage *m = NULL;
	cm_rpc_status st;
	uint64_t t_rpc = cm_now_us();
	int rc = cm_rpc_unary(c, "/muri.v1.Indexer/Replicate", &req.base, &muri__v1__replicate_response__descriptor,
			      &m, (int)s->o.repl_timeout_ms, &st);
	if (rc != CM_OK) {
		cm_debug("replicate_failed", "magu=%s fragment=%u peer=%s code=%s msg=\"%s\"", f->magu, f->fragment,
			 sd->addr, cm_rpc_code_name(st.code), st.message);
		return rc;
	}
	cm_debug("replicate_sent", "magu=%s fragment=%u peer=%s records=%u prev=%llu rpc_us=%llu", f->magu, f->fragment,
		 sd->addr, ap->n, (unsigned long long)ap->prev_size, (unsigned long long)(cm_now_us() - t_rpc));
	const Muri__V1__ReplicateResponse *r = (const Muri__V1__ReplicateResponse *)m;
	ix_repl_msg ack;
	memset(&ack, 0, sizeof(ack));
	ack.type = IX_REPL_ACK;
	ix_repl_ack *k = &ack.u.ack;
	rc = CM_ERR_INVALID;
	if (r->sender.len == CM_PK_BYTES && r->signature.len == CM_SIG_BYTES &&
	    (!r->ok || r->root.len == CM_HASH_BYTES)) {
		k->epoch = r->epoch;
		k->ok = r->ok;
		k->refused = r->refused;
		k->match = r->root_size;
		if (r->ok)
			memcpy(k->match_root, r->root.data, CM_HASH_BYTES);
		k->log_size = r->log_size;
		k->ts = r->ts;
		k->req = r->req;
		memcpy(k->sender, r->sender.data, CM_PK_BYTES);
		memcpy(k->sig, r->signature.data, CM_SIG_BYTES);
		ixr_core_enter(f);
		rc = ix_repl_on_message(f->core, &ack);
		ixr_core_leave(f);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static void *sender_main(void *arg)
{
	struct sender *sd = arg;
	struct frag *f = sd->f;
	cm_rpc_client *c = NULL;
	char err[IX_ERR_MAX];
	/* appends go to, and acks are taken from, the backup's node key only */
	cm_rpc_client_opts o = {.target = sd->addr, .tls_ca_file = f->svc->o.tls_ca_file, .tls_expect_node = sd->pk};
	if (cm_rpc_client_new(&o, &c, err, sizeof(err)) != CM_OK) {
		cm_warn("peer_unreachable", "magu=%s fragment=%u peer=%s err=\"%s\"", f->magu, f->fragment, sd->addr, err);
		return NULL;
	}
	cm_arena a;
	cm_arena_init(&a, 0);
	/* the thread's own buffers, swapped with the slot's */
	struct sender mine;
	memset(&mine, 0, sizeof(mine));
	mine.f = f;
	memcpy(mine.addr, sd->addr, sizeof(mine.addr));
	for (;;) {
		pthread_mutex_lock(&f->mu);
		while (!sd->stop && !sd->full)
			cm_cond_wait_ms(&f->cv, &f->mu, 500);
		if (sd->stop) {
			pthread_mutex_unlock(&f->mu);
			break;
		}
		/* take the slot: swap buffers */
		ix_repl_entry *e = mine.ents;
		uint32_t ec = mine.ents_cap;
		uint8_t *d = mine.data;
		size_t dc = mine.data_cap;
		mine.a = sd->a;
		mine.ents = sd->ents;
		mine.ents_cap = sd->ents_cap;
		mine.data = sd->data;
		mine.data_cap = sd->data_cap;
		sd->ents = e;
		sd->ents_cap = ec;
		sd->data = d;
		sd->data_cap = dc;
		sd->full = 0;
		pthread_mutex_unlock(&f->mu);
		cm_arena_reset(&a);
		int rc = send_one(&mine, c, &a);
		pthread_mutex_lock(&f->mu);
		if (rc == CM_OK)
			sd->sent++;
		else
			sd->failures++;
		pthread_mutex_unlock(&f->mu);
	}
	free(mine.ents);
	free(mine.data);
	cm_arena_free(&a);
	cm_rpc_client_free(c);
	return NULL;
}

void ix_replica_stop(struct frag *f)
{
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < IX_MAX_REPLICAS; i++)
		f->snd[i].stop = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	for (int i = 0; i < IX_MAX_REPLICAS; i++) {
		struct sender *sd = &f->snd[i];
		if (sd->running)
			pthread_join(sd->thread, NULL);
		pthread_mutex_lock(&f->mu);
		free(sd->ents);
		free(sd->data);
		memset(sd, 0, sizeof(*sd));
		pthread_mutex_unlock(&f->mu);
	}
}

/* Starts a sender per backup when this node is f's primary. Under cfg_mu,
 * senders stopped. */
void ixr_start_senders(struct frag *f)
{
	ixr_core_enter(f);
	int primary = f->core && ix_repl_is_primary(f->core);
	Muri__V1__FragmentConfig *cfg = f->cfg;
	ixr_core_leave(f);
	if (!primary || !cfg || atomic_load(&f->svc->stopping))
		return;
	for (size_t i = 0; i < cfg->n_replicas && i < IX_MAX_REPLICAS; i++) {
		const Muri__V1__Replica *r = cfg->replicas[i];
		if (memcmp(r->pubkey.data, f->svc->key.pk, CM_PK_BYTES) == 0)
			continue;
		struct sender *sd = &f->snd[i];
		pthread_mutex_lock(&f->mu);
		memset(sd, 0, sizeof(*sd));
		sd->f = f;
		memcpy(sd->pk, r->pubkey.data, CM_PK_BYTES);
		snprintf(sd->addr, sizeof(sd->addr), "%s", r->address);
		sd->running = pthread_create(&sd->thread, NULL, sender_main, sd) == 0;
		pthread_mutex_unlock(&f->mu);
	}
}

/* ---- life cycle ----------------------------------------------------------------------- */

int ix_replica_load(struct frag *f, char *err, size_t errlen)
{
	ix_repl_persist st;
	Muri__V1__FragmentConfig *cfg = NULL;
	ixp_load(f);
	int rc = load_state(f, &st, &cfg, err, errlen);
	if (rc != CM_OK)
		return rc;
	if (!cfg)
		return CM_OK; /* no configuration yet: the core starts with SetConfig */
	pthread_mutex_lock(&f->cfg_mu);
	ixr_core_enter(f);
	f->cfg = cfg;
	rc = ixr_core_new(f, &st);
	if (rc == CM_OK && f->store && st.floor)
		ix_fragment_set_floor(f->store, st.floor);
	ixr_core_leave(f);
	if (rc == CM_OK)
		ixr_start_senders(f);
	else
		snprintf(err, errlen, "%s/%u: cannot start replication: %s", f->magu, f->fragment, cm_strerror(rc));
	pthread_mutex_unlock(&f->cfg_mu);
	return rc;
}

void ix_replica_free(struct frag *f)
{
	ix_repl_destroy(f->core);
	f->core = NULL;
	if (f->cfg)
		muri__v1__fragment_config__free_unpacked(f->cfg, NULL);
	f->cfg = NULL;
}

/* One tick of f's core, if its core is free within wait_ms (else the
 * next round ticks it): one thread ticks every fragment, and a fragment
 * whose core is held (a backup's append waiting on its disk) must not keep
 * the others' primaries from their heartbeats, or their backups ask for
 * failover of a primary that is fine. A primary the ledger lists as
 * leaving hands its role over first (ix_repl_handoff); the configuration
 * is read without waiting for a configuration change in progress (the
 * next tick sees it). */
void ix_replica_tick(struct frag *f, uint32_t wait_ms)
{
	uint8_t leaving[IX_MAX_REPLICAS][CM_PK_BYTES];
	uint32_t nl = 0;
	uint64_t epoch = 0;
	int me = 0;
	if (pthread_mutex_trylock(&f->cfg_mu) == 0) {
		for (size_t i = 0; f->cfg && i < f->cfg->n_leaving && nl < IX_MAX_REPLICAS; i++)
			if (f->cfg->leaving[i].len == CM_PK_BYTES) {
				memcpy(leaving[nl++], f->cfg->leaving[i].data, CM_PK_BYTES);
				me |= memcmp(f->cfg->leaving[i].data, f->svc->key.pk, CM_PK_BYTES) == 0;
			}
		epoch = f->cfg ? f->cfg->epoch : 0;
		pthread_mutex_unlock(&f->cfg_mu);
	}
	if (!ixr_core_try_enter(f, wait_ms))
		return;
	if (f->core && me && ix_repl_is_primary(f->core) && ix_repl_handoff(f->core, epoch,
		(const uint8_t(*)[CM_PK_BYTES])leaving, nl) == CM_OK && f->handoff_logged != epoch) {
		f->handoff_logged = epoch;
		cm_info("handoff", "magu=%s fragment=%u epoch=%llu message=\"leaving: no more writes here; the role "
			"goes to a replica that holds the whole log\"", f->magu, f->fragment, (unsigned long long)epoch);
	}
	if (f->core)
		ix_repl_tick(f->core);
	ixr_core_leave(f);
}

int ix_replica_is_member(struct frag *f)
{
	ixr_core_enter(f);
	int m = f->core && ix_repl_is_member(f->core, f->svc->key.pk);
	ixr_core_leave(f);
	return m;
}

int ix_replica_is_primary(struct frag *f)
{
	ixr_core_enter(f);
	int p = f->core && ix_repl_is_primary(f->core);
	ixr_core_leave(f);
	return p;
}
