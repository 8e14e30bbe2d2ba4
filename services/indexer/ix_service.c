/* The MurIndexer service: fragment registry, RPC handlers, and log shipping.
 *
 * Replication (DESIGN.md "Fragments"; PacificA, Lin et al. 2008, sections
 * 3.1-3.3): for each fragment the configuration (replica set, primary,
 * epoch) comes from outside (SetConfig; the ledger drives the same path).
 * The primary assigns the next sequence numbers under the fragment's write
 * lock, appends durably, and then waits until enough replicas hold the new
 * size: ONE = the primary, QUORUM = a majority of the replica set, ALL =
 * every replica. One shipper thread per backup pushes records from what the
 * backup acknowledged, in order, one Replicate call at a time. A backup
 * refuses any epoch but its own, appends in sequence order, answers a gap
 * with its size (the shipper resends from there), and where its log differs
 * from records it is sent (an older epoch's unacknowledged suffix) truncates
 * it there. A new primary first finds each backup's longest common prefix
 * by probing roots (binary search over sizes), so a rejoining old primary
 * drops exactly its unacknowledged suffix.
 *
 * Signed messages (search answers, roots, challenge responses) are signed
 * over H(domain || the message packed with its signature field empty). */
#include "ix_service.h"
#include "cm_err.h"
#include "cm_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "indexer.pb-c.h"

#define CONFIG_FILE "config"
#define STORE_DIR "store"
#define CONFIG_MAX (64u << 10)   /* bytes of a saved FragmentConfig */
#define PROBE_MAX 128            /* probes to find a common prefix */
#define BACKOFF_MAX_MS 1000
#define CHALLENGE_LEAVES_MAX 64
#define ERR_MAX 256

struct replica {
	uint8_t pk[CM_PK_BYTES];
	char addr[IX_ADDR_MAX];
};

struct frag;

struct shipper {
	struct frag *f;
	uint32_t idx;        /* in f->rep */
	pthread_t thread;
	int running;
	uint64_t gen;        /* the configuration it ships for */
	uint64_t acked;      /* under f->mu: the backup's durable size, once known */
	int known;           /* under f->mu */
	uint64_t sent, failures;
};

struct frag {
	ix_service *svc;
	char magu[IX_MAGU_MAX + 1];
	uint32_t fragment;
	char dir[PATH_MAX / 2];
	pthread_mutex_t cfg_mu;   /* serializes SetConfig (joins shippers) */
	pthread_mutex_t write_mu; /* serializes appends: Write and Replicate */
	pthread_mutex_t mu;       /* everything below */
	pthread_cond_t cv;        /* shippers' acks and new records */
	ix_fragment *store;       /* set once (first write with a schema), then fixed */
	ix_spec spec;
	int has_config;
	uint64_t epoch;
	uint8_t primary[CM_PK_BYTES];
	uint32_t nrep;
	struct replica rep[IX_MAX_REPLICAS];
	int self;                 /* index in rep, -1 if not a member */
	uint64_t gen;             /* bumped on every configuration change */
	struct shipper ship[IX_MAX_REPLICAS];
	uint64_t max_primary_size; /* backup: highest primary_size seen this epoch */
};

struct ix_service {
	ix_service_opts o;
	char *data_dir;
	cm_keypair key;
	pthread_rwlock_t lk;     /* the registry */
	struct frag **frags;
	size_t nfrags;
	atomic_int stopping;
	void *status_arg;
	int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out);
};

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void sleep_ms(uint64_t ms)
{
	struct timespec t = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

static int valid_magu(const char *m)
{
	size_t n = strlen(m);
	if (n < 1 || n > IX_MAGU_MAX || strcmp(m, ".") == 0 || strcmp(m, "..") == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = m[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

void ix_signed_digest(uint8_t out[CM_HASH_BYTES], uint8_t domain, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);
	cm_hasher h;
	cm_hasher_init(&h, domain);
	if (buf) {
		protobuf_c_message_pack(msg, buf);
		cm_hasher_update(&h, buf, n);
		free(buf);
	}
	cm_hasher_final(&h, out);
}

/* Signs msg whose bytes-field `sig` is empty now; points sig at a signature
 * allocated in the call. */
static int sign_into(ix_service *s, cm_rpc_call *call, uint8_t domain, ProtobufCMessage *msg,
		     ProtobufCBinaryData *signer, ProtobufCBinaryData *sig)
{
	signer->data = (uint8_t *)s->key.pk;
	signer->len = CM_PK_BYTES;
	sig->data = NULL;
	sig->len = 0;
	uint8_t d[CM_HASH_BYTES];
	ix_signed_digest(d, domain, msg);
	uint8_t *out = cm_rpc_alloc(call, CM_SIG_BYTES);
	if (!out)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	cm_sign(&s->key, out, d, sizeof(d));
	sig->data = out;
	sig->len = CM_SIG_BYTES;
	return GRPC_STATUS_OK;
}

static uint8_t *copy_hash(cm_rpc_call *call, const uint8_t *h)
{
	uint8_t *p = cm_rpc_alloc(call, CM_HASH_BYTES);
	if (p)
		memcpy(p, h, CM_HASH_BYTES);
	return p;
}

/* Points a bytes field at a copy of a 32-byte hash in the call's memory
 * (left empty when out of memory). */
static void set_hash(cm_rpc_call *call, ProtobufCBinaryData *field, const uint8_t *h)
{
	field->data = copy_hash(call, h);
	field->len = field->data ? CM_HASH_BYTES : 0;
}

/* ---- configuration files ------------------------------------------------ */

static int save_config(struct frag *f, const Muri__V1__FragmentConfig *cfg)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", f->dir, CONFIG_FILE);
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", f->dir, CONFIG_FILE);
	size_t n = protobuf_c_message_get_packed_size(&cfg->base);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return CM_ERR_NOMEM;
	protobuf_c_message_pack(&cfg->base, buf);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = CM_OK;
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n || fsync(fd) != 0)
		rc = CM_ERR_IO;
	if (fd >= 0 && close(fd) != 0)
		rc = CM_ERR_IO;
	free(buf);
	if (rc == CM_OK && rename(tmp, path) != 0)
		rc = CM_ERR_IO;
	if (rc == CM_OK) {
		int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return rc;
}

static Muri__V1__FragmentConfig *load_config(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, CONFIG_FILE);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	uint8_t *buf = malloc(CONFIG_MAX);
	size_t n = buf ? fread(buf, 1, CONFIG_MAX, fp) : 0;
	fclose(fp);
	Muri__V1__FragmentConfig *c = n ? muri__v1__fragment_config__unpack(NULL, n, buf) : NULL;
	free(buf);
	return c;
}

/* ---- registry ------------------------------------------------------------ */

static struct frag *find_frag(ix_service *s, const char *magu, uint32_t fragment)
{
	struct frag *f = NULL;
	pthread_rwlock_rdlock(&s->lk);
	for (size_t i = 0; i < s->nfrags; i++)
		if (s->frags[i]->fragment == fragment && strcmp(s->frags[i]->magu, magu) == 0) {
			f = s->frags[i];
			break;
		}
	pthread_rwlock_unlock(&s->lk);
	return f;
}

static struct frag *frag_new(ix_service *s, const char *magu, uint32_t fragment)
{
	struct frag *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->svc = s;
	snprintf(f->magu, sizeof(f->magu), "%s", magu);
	f->fragment = fragment;
	f->self = -1;
	snprintf(f->dir, sizeof(f->dir), "%s/fragments/%s~%u", s->data_dir, magu, fragment);
	pthread_mutex_init(&f->cfg_mu, NULL);
	pthread_mutex_init(&f->write_mu, NULL);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	return f;
}

/* Finds or creates the registry entry (and its folder). */
static int get_or_add_frag(ix_service *s, const char *magu, uint32_t fragment, struct frag **out)
{
	struct frag *f = find_frag(s, magu, fragment);
	if (f) {
		*out = f;
		return CM_OK;
	}
	pthread_rwlock_wrlock(&s->lk);
	for (size_t i = 0; i < s->nfrags; i++)
		if (s->frags[i]->fragment == fragment && strcmp(s->frags[i]->magu, magu) == 0)
			f = s->frags[i];
	int rc = CM_OK;
	if (!f) {
		if (s->nfrags >= s->o.max_fragments) {
			rc = CM_ERR_TOOBIG;
		} else {
			struct frag **fs = realloc(s->frags, (s->nfrags + 1) * sizeof(*fs));
			f = fs ? frag_new(s, magu, fragment) : NULL;
			if (fs)
				s->frags = fs;
			if (!f)
				rc = CM_ERR_NOMEM;
			else if (mkdir(f->dir, 0700) != 0 && errno != EEXIST)
				rc = CM_ERR_IO;
			if (rc == CM_OK)
				s->frags[s->nfrags++] = f;
			else
				free(f);
		}
	}
	pthread_rwlock_unlock(&s->lk);
	if (rc == CM_OK)
		*out = f;
	return rc;
}

/* The fragment's store, opening it with spec when it has none yet. */
static int ensure_store(struct frag *f, const Muri__V1__FragmentSchema *schema, ix_fragment **out,
			char *err, size_t errlen)
{
	pthread_mutex_lock(&f->mu);
	ix_fragment *st = f->store;
	pthread_mutex_unlock(&f->mu);
	if (st) {
		if (schema && schema->dimension && schema->dimension != f->spec.dim) {
			snprintf(err, errlen, "schema.dimension: %u, but %s/%u holds %u-d vectors",
				 schema->dimension, f->magu, f->fragment, f->spec.dim);
			return CM_ERR_INVALID;
		}
		*out = st;
		return CM_OK;
	}
	if (!schema) {
		snprintf(err, errlen, "schema: required for the first write to %s/%u", f->magu, f->fragment);
		return CM_ERR_INVALID;
	}
	ix_spec spec;
	char e[ERR_MAX];
	if (ix_spec_from_pb(schema, &spec, e, sizeof(e)) != CM_OK) {
		snprintf(err, errlen, "%s", e);
		return CM_ERR_INVALID;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", f->dir, STORE_DIR);
	int rc = ix_fragment_open(path, &spec, &f->svc->o.frag, &st, e, sizeof(e));
	if (rc != CM_OK) {
		snprintf(err, errlen, "%s", e);
		return rc;
	}
	pthread_mutex_lock(&f->mu);
	f->store = st;
	f->spec = spec;
	pthread_mutex_unlock(&f->mu);
	*out = st;
	return CM_OK;
}

static ix_fragment *store_of(struct frag *f)
{
	pthread_mutex_lock(&f->mu);
	ix_fragment *st = f->store;
	pthread_mutex_unlock(&f->mu);
	return st;
}

/* ---- shipping ----------------------------------------------------------- */

static cm_rpc_client *connect_to(ix_service *s, const char *addr)
{
	cm_rpc_client *c = NULL;
	char err[ERR_MAX];
	cm_rpc_client_opts o = {.target = addr, .tls_ca_file = s->o.tls_ca_file};
	if (cm_rpc_client_new(&o, &c, err, sizeof(err)) != CM_OK)
		return NULL;
	return c;
}

static int shipper_current(struct shipper *sh)
{
	return !atomic_load(&sh->f->svc->stopping) && sh->f->gen == sh->gen;
}

/* One Replicate call. records NULL: a probe at probe_size. */
static int replicate_call(struct frag *f, cm_rpc_client *c, uint64_t epoch, Muri__V1__LogRecord **records,
			  size_t n, uint64_t primary_size, uint64_t probe_size,
			  Muri__V1__FragmentSchema *schema, Muri__V1__ReplicateResponse **resp,
			  cm_rpc_status *st)
{
	Muri__V1__ReplicateRequest req = MURI__V1__REPLICATE_REQUEST__INIT;
	req.magu = f->magu;
	req.fragment = f->fragment;
	req.epoch = epoch;
	req.records = records;
	req.n_records = n;
	req.schema = schema;
	req.primary_size = primary_size;
	req.probe_size = probe_size;
	ProtobufCMessage *m = NULL;
	int rc = cm_rpc_unary(c, "/muri.v1.Indexer/Replicate", &req.base, &muri__v1__replicate_response__descriptor,
			      &m, (int)f->svc->o.repl_timeout_ms, st);
	if (rc == CM_OK)
		*resp = (Muri__V1__ReplicateResponse *)m;
	return rc;
}

/* Finds the longest common prefix with the backup: probe at our size, then
 * binary search over root equality. Returns the size, or -1 on failure. */
static int64_t find_common_prefix(struct frag *f, cm_rpc_client *c, uint64_t epoch, ix_fragment *st,
				  Muri__V1__FragmentSchema *schema)
{
	uint64_t P = ix_fragment_size(st);
	Muri__V1__ReplicateResponse *r = NULL;
	cm_rpc_status rs;
	if (replicate_call(f, c, epoch, NULL, 0, P, P, schema, &r, &rs) != CM_OK)
		return -1;
	uint64_t L = r->log_size, m = L < P ? L : P;
	uint8_t mine[CM_HASH_BYTES];
	int equal = r->root_size == m && r->root.len == CM_HASH_BYTES &&
		    ix_fragment_root(st, m, mine) == CM_OK && memcmp(mine, r->root.data, CM_HASH_BYTES) == 0;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (equal)
		return (int64_t)m;
	uint64_t lo = 0, hi = m; /* root(lo) agrees (empty), root(hi) does not */
	for (int i = 0; i < PROBE_MAX && hi - lo > 1; i++) {
		uint64_t mid = lo + (hi - lo) / 2;
		r = NULL;
		if (replicate_call(f, c, epoch, NULL, 0, P, mid, schema, &r, &rs) != CM_OK)
			return -1;
		int same = r->root_size == mid && r->root.len == CM_HASH_BYTES &&
			   ix_fragment_root(st, mid, mine) == CM_OK &&
			   memcmp(mine, r->root.data, CM_HASH_BYTES) == 0;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (same)
			lo = mid;
		else
			hi = mid;
	}
	return (int64_t)lo;
}

static void *ship_main(void *arg)
{
	struct shipper *sh = arg;
	struct frag *f = sh->f;
	ix_service *s = f->svc;
	pthread_mutex_lock(&f->mu);
	char addr[IX_ADDR_MAX];
	memcpy(addr, f->rep[sh->idx].addr, sizeof(addr));
	uint64_t epoch = f->epoch;
	pthread_mutex_unlock(&f->mu);
	cm_rpc_client *c = connect_to(s, addr);
	uint64_t backoff = 20;
	cm_arena a;
	cm_arena_init(&a, 0);
	while (c) {
		pthread_mutex_lock(&f->mu);
		ix_fragment *st = f->store;
		while (shipper_current(sh) && (!st || (sh->known && sh->acked >= ix_fragment_size(st)))) {
			struct timespec ts;
			deadline_in(&ts, 500);
			pthread_cond_timedwait(&f->cv, &f->mu, &ts);
			st = f->store;
		}
		int go = shipper_current(sh), known = sh->known;
		uint64_t from = sh->acked;
		pthread_mutex_unlock(&f->mu);
		if (!go)
			break;
		cm_arena_reset(&a);
		Muri__V1__FragmentSchema *schema = NULL;
		ix_spec_to_pb(&f->spec, &a, &schema);
		int ok = 0;
		if (!known) {
			int64_t common = find_common_prefix(f, c, epoch, st, schema);
			if (common >= 0) {
				pthread_mutex_lock(&f->mu);
				sh->acked = (uint64_t)common;
				sh->known = 1;
				pthread_cond_broadcast(&f->cv);
				pthread_mutex_unlock(&f->mu);
				ok = 1;
			}
		} else {
			ix_record *recs = NULL;
			size_t n = 0;
			uint64_t P = ix_fragment_size(st);
			if (ix_fragment_read(st, from, s->o.repl_batch, &a, &recs, &n) == CM_OK) {
				Muri__V1__LogRecord **pbs = cm_arena_alloc(&a, (n ? n : 1) * sizeof(*pbs));
				int conv = pbs != NULL;
				for (size_t i = 0; conv && i < n; i++)
					conv = ix_record_to_pb(&recs[i], &a, &pbs[i]) == CM_OK;
				Muri__V1__ReplicateResponse *r = NULL;
				cm_rpc_status rs;
				if (conv && replicate_call(f, c, epoch, pbs, n, P, 0, schema, &r, &rs) == CM_OK) {
					pthread_mutex_lock(&f->mu);
					sh->acked = r->log_size;
					sh->sent += n;
					pthread_cond_broadcast(&f->cv);
					pthread_mutex_unlock(&f->mu);
					protobuf_c_message_free_unpacked(&r->base, NULL);
					ok = 1;
				} else if (conv) {
					cm_debug("replicate_failed", "magu=%s fragment=%u peer=%s code=%s msg=\"%s\"",
						 f->magu, f->fragment, addr, cm_rpc_code_name(rs.code), rs.message);
				}
			}
		}
		if (ok) {
			backoff = 20;
			continue;
		}
		pthread_mutex_lock(&f->mu);
		sh->failures++;
		sh->known = 0; /* after a failure, agree on the prefix again */
		pthread_mutex_unlock(&f->mu);
		for (uint64_t slept = 0; slept < backoff && shipper_current(sh); slept += 20)
			sleep_ms(20);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	cm_arena_free(&a);
	cm_rpc_client_free(c);
	return NULL;
}

/* Stops the shippers of f (joins them); call with cfg_mu held, not mu. */
static void stop_shippers(struct frag *f)
{
	pthread_mutex_lock(&f->mu);
	f->gen++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	for (uint32_t i = 0; i < IX_MAX_REPLICAS; i++)
		if (f->ship[i].running) {
			pthread_join(f->ship[i].thread, NULL);
			f->ship[i].running = 0;
		}
}

/* Starts shippers if this node is f's primary; call with cfg_mu held. */
static void start_shippers(struct frag *f)
{
	pthread_mutex_lock(&f->mu);
	int primary = f->has_config && f->self >= 0 && memcmp(f->primary, f->svc->key.pk, CM_PK_BYTES) == 0;
	uint64_t gen = f->gen;
	uint32_t n = f->nrep;
	pthread_mutex_unlock(&f->mu);
	if (!primary || atomic_load(&f->svc->stopping))
		return;
	for (uint32_t i = 0; i < n; i++) {
		if ((int)i == f->self)
			continue;
		struct shipper *sh = &f->ship[i];
		memset(sh, 0, sizeof(*sh));
		sh->f = f;
		sh->idx = i;
		sh->gen = gen;
		if (pthread_create(&sh->thread, NULL, ship_main, sh) == 0)
			sh->running = 1;
	}
}

/* Applies a configuration (validated) to f, persisting it first. */
static int apply_config(struct frag *f, const Muri__V1__FragmentConfig *cfg, int persist, char *err,
			size_t errlen)
{
	pthread_mutex_lock(&f->cfg_mu);
	pthread_mutex_lock(&f->mu);
	uint64_t cur = f->has_config ? f->epoch : 0;
	pthread_mutex_unlock(&f->mu);
	if (f->has_config && cfg->epoch < cur) {
		pthread_mutex_unlock(&f->cfg_mu);
		snprintf(err, errlen, "epoch: %llu is older than the current %llu", (unsigned long long)cfg->epoch,
			 (unsigned long long)cur);
		return CM_ERR_STATE;
	}
	if (persist && save_config(f, cfg) != CM_OK) {
		pthread_mutex_unlock(&f->cfg_mu);
		snprintf(err, errlen, "cannot save the configuration of %s/%u", f->magu, f->fragment);
		return CM_ERR_IO;
	}
	stop_shippers(f);
	pthread_mutex_lock(&f->mu);
	if (!f->has_config || cfg->epoch != f->epoch)
		f->max_primary_size = 0;
	f->has_config = 1;
	f->epoch = cfg->epoch;
	memcpy(f->primary, cfg->primary.data, CM_PK_BYTES);
	f->nrep = (uint32_t)cfg->n_replicas;
	f->self = -1;
	for (uint32_t i = 0; i < f->nrep; i++) {
		memcpy(f->rep[i].pk, cfg->replicas[i]->pubkey.data, CM_PK_BYTES);
		snprintf(f->rep[i].addr, sizeof(f->rep[i].addr), "%s", cfg->replicas[i]->address);
		if (memcmp(f->rep[i].pk, f->svc->key.pk, CM_PK_BYTES) == 0)
			f->self = (int)i;
	}
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	start_shippers(f);
	pthread_mutex_unlock(&f->cfg_mu);
	return CM_OK;
}

static const char *check_config(const Muri__V1__FragmentConfig *c)
{
	if (!valid_magu(c->magu))
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

/* ---- handlers: writes ---------------------------------------------------- */

static int need_for(int level, uint32_t n)
{
	switch (level) {
	case MURI__V1__CONSISTENCY_LEVEL__ONE: return 1;
	case MURI__V1__CONSISTENCY_LEVEL__ALL: return (int)n;
	default: return (int)(n / 2 + 1);
	}
}

/* How many replicas (the primary included) hold at least size. Under f->mu. */
static int holders(struct frag *f, uint64_t size)
{
	int n = 1;
	for (uint32_t i = 0; i < f->nrep; i++)
		if ((int)i != f->self && f->ship[i].running && f->ship[i].known && f->ship[i].acked >= size)
			n++;
	return n;
}

static int fail_from(cm_rpc_call *call, int rc, const char *msg)
{
	int code = rc == CM_ERR_INVALID || rc == CM_ERR_RANGE ? GRPC_STATUS_INVALID_ARGUMENT
		   : rc == CM_ERR_STATE			     ? GRPC_STATUS_FAILED_PRECONDITION
		   : rc == CM_ERR_NOTFOUND		     ? GRPC_STATUS_NOT_FOUND
		   : rc == CM_ERR_TOOBIG || rc == CM_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED
		   : rc == CM_ERR_TIMEOUT		     ? GRPC_STATUS_DEADLINE_EXCEEDED
							     : GRPC_STATUS_INTERNAL;
	return cm_rpc_fail(call, code, "%s", msg);
}

static int h_write(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__FragmentWriteRequest *req = (const Muri__V1__FragmentWriteRequest *)msg;
	char err[ERR_MAX] = "";
	struct frag *f = find_frag(s, req->magu, req->fragment);
	if (!f)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u is not assigned to this indexer",
				   req->magu, req->fragment);
	pthread_mutex_lock(&f->mu);
	int primary = f->has_config && f->self >= 0 && memcmp(f->primary, s->key.pk, CM_PK_BYTES) == 0;
	uint64_t epoch = f->epoch;
	uint32_t nrep = f->nrep;
	pthread_mutex_unlock(&f->mu);
	if (!primary)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "this indexer is not the primary of %s/%u in epoch %llu", req->magu, req->fragment,
				   (unsigned long long)epoch);
	if (req->epoch != epoch)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "epoch: the request has %llu, %s/%u is at %llu", (unsigned long long)req->epoch,
				   req->magu, req->fragment, (unsigned long long)epoch);
	if (req->n_records < 1 || req->n_records > s->o.frag.max_append)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "records: %zu, expected 1..%u",
				   req->n_records, s->o.frag.max_append);
	ix_fragment *st = NULL;
	int rc = ensure_store(f, req->schema, &st, err, sizeof(err));
	if (rc != CM_OK)
		return fail_from(call, rc, err);
	cm_arena *a = cm_rpc_arena(call);
	ix_record *recs = cm_arena_alloc(a, req->n_records * sizeof(*recs));
	if (!recs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < req->n_records; i++) {
		char e[ERR_MAX];
		if (ix_record_from_pb(req->records[i], f->spec.dim, a, &recs[i], e, sizeof(e)) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "records[%zu]: %s", i, e);
	}
	pthread_mutex_lock(&f->write_mu);
	uint64_t first = ix_fragment_size(st);
	for (size_t i = 0; i < req->n_records; i++) {
		recs[i].seq = first + i;
		recs[i].epoch = epoch;
	}
	rc = ix_fragment_append(st, recs, req->n_records, err, sizeof(err));
	uint64_t size = ix_fragment_size(st);
	pthread_mutex_unlock(&f->write_mu);
	if (rc != CM_OK)
		return fail_from(call, rc, err);

	/* wait for the consistency level, up to the request's timeout */
	uint64_t timeout = req->timeout_ms ? req->timeout_ms : s->o.write_timeout_ms;
	int64_t left = cm_rpc_deadline_left_ms(call);
	if (left >= 0 && (uint64_t)left < timeout)
		timeout = (uint64_t)left;
	int need = need_for(req->consistency_level, nrep);
	uint64_t until = now_ms() + timeout;
	pthread_mutex_lock(&f->mu);
	pthread_cond_broadcast(&f->cv); /* wake the shippers */
	while (holders(f, size) < need && now_ms() < until && f->epoch == epoch) {
		struct timespec ts;
		deadline_in(&ts, 20);
		pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	}
	int have = holders(f, size);
	Muri__V1__FragmentWriteResponse *r = cm_rpc_alloc(call, sizeof(*r));
	ProtobufCBinaryData *acked = cm_rpc_alloc(call, sizeof(*acked) * f->nrep);
	if (!r || !acked) {
		pthread_mutex_unlock(&f->mu);
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	muri__v1__fragment_write_response__init(r);
	r->acked_by = acked;
	r->acked_by[r->n_acked_by].data = (uint8_t *)s->key.pk;
	r->acked_by[r->n_acked_by++].len = CM_PK_BYTES;
	for (uint32_t i = 0; i < f->nrep; i++)
		if ((int)i != f->self && f->ship[i].running && f->ship[i].known && f->ship[i].acked >= size) {
			r->acked_by[r->n_acked_by].data = cm_rpc_alloc(call, CM_PK_BYTES);
			if (r->acked_by[r->n_acked_by].data)
				memcpy(r->acked_by[r->n_acked_by].data, f->rep[i].pk, CM_PK_BYTES);
			r->acked_by[r->n_acked_by++].len = CM_PK_BYTES;
		}
	pthread_mutex_unlock(&f->mu);
	r->first_seq = first;
	r->log_size = size;
	uint8_t root[CM_HASH_BYTES];
	if (ix_fragment_root(st, size, root) == CM_OK) {
		set_hash(call, &r->root, root);
	}
	r->level_achieved = have >= (int)nrep		   ? MURI__V1__CONSISTENCY_LEVEL__ALL
			    : have >= (int)(nrep / 2 + 1) ? MURI__V1__CONSISTENCY_LEVEL__QUORUM
							  : MURI__V1__CONSISTENCY_LEVEL__ONE;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int reply_replicate(cm_rpc_call *call, ix_fragment *st, uint64_t root_size, ProtobufCMessage **resp)
{
	Muri__V1__ReplicateResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__replicate_response__init(r);
	r->log_size = st ? ix_fragment_size(st) : 0;
	if (root_size > r->log_size)
		root_size = r->log_size;
	uint8_t root[CM_HASH_BYTES];
	if (st && ix_fragment_root(st, root_size, root) == CM_OK) {
		set_hash(call, &r->root, root);
		r->root_size = root_size;
	}
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int h_replicate(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__ReplicateRequest *req = (const Muri__V1__ReplicateRequest *)msg;
	char err[ERR_MAX] = "";
	struct frag *f = find_frag(s, req->magu, req->fragment);
	if (!f)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "%s/%u has no configuration on this indexer", req->magu, req->fragment);
	pthread_mutex_lock(&f->mu);
	uint64_t epoch = f->has_config ? f->epoch : 0;
	int backup = f->has_config && f->self >= 0 && memcmp(f->primary, s->key.pk, CM_PK_BYTES) != 0;
	pthread_mutex_unlock(&f->mu);
	if (req->epoch != epoch)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION,
				   "epoch: the request has %llu, %s/%u is at %llu here", (unsigned long long)req->epoch,
				   req->magu, req->fragment, (unsigned long long)epoch);
	if (!backup)
		return cm_rpc_fail(call, GRPC_STATUS_FAILED_PRECONDITION, "this indexer is not a backup of %s/%u",
				   req->magu, req->fragment);
	if (req->n_records > s->o.frag.max_append)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "records: at most %u", s->o.frag.max_append);
	ix_fragment *st = NULL;
	int rc = ensure_store(f, req->schema, &st, err, sizeof(err));
	if (rc != CM_OK)
		return fail_from(call, rc, err);
	cm_arena *a = cm_rpc_arena(call);

	pthread_mutex_lock(&f->write_mu);
	pthread_mutex_lock(&f->mu);
	int fresh = req->primary_size >= f->max_primary_size; /* not a late, older request */
	if (fresh)
		f->max_primary_size = req->primary_size;
	pthread_mutex_unlock(&f->mu);
	uint64_t L = ix_fragment_size(st);
	if (req->n_records == 0) {
		if (req->probe_size == 0 && fresh && L > req->primary_size)
			rc = ix_fragment_truncate(st, req->primary_size, err, sizeof(err));
		pthread_mutex_unlock(&f->write_mu);
		if (rc != CM_OK)
			return fail_from(call, rc, err);
		return reply_replicate(call, st, req->probe_size ? req->probe_size : ix_fragment_size(st), resp);
	}
	uint64_t s0 = req->records[0]->seq;
	if (s0 > L) { /* a gap: the primary resends from our size */
		pthread_mutex_unlock(&f->write_mu);
		return reply_replicate(call, st, L, resp);
	}
	ix_record *recs = cm_arena_alloc(a, req->n_records * sizeof(*recs));
	if (!recs) {
		pthread_mutex_unlock(&f->write_mu);
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	}
	for (size_t i = 0; i < req->n_records; i++) {
		char e[ERR_MAX];
		if (ix_record_from_pb(req->records[i], f->spec.dim, a, &recs[i], e, sizeof(e)) != CM_OK ||
		    recs[i].seq != s0 + i) {
			pthread_mutex_unlock(&f->write_mu);
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "records[%zu]: %s", i,
					   recs[i].seq != s0 + i ? "seq: not consecutive" : e);
		}
	}
	/* records we already hold must be the same; the first that differs
	 * truncates our log there */
	size_t skip = 0;
	for (uint64_t seq = s0; seq < L && skip < req->n_records; seq++, skip++) {
		uint8_t *leaf = NULL;
		size_t len = 0;
		size_t want = ix_record_encoded_size(&recs[skip]);
		uint8_t *mine = cm_arena_alloc(a, want);
		if (!mine || ix_fragment_leaf(st, seq, a, &leaf, &len) != CM_OK) {
			rc = CM_ERR_IO;
			break;
		}
		ix_record_encode(&recs[skip], mine);
		if (len != want || memcmp(leaf, mine, len) != 0) {
			rc = ix_fragment_truncate(st, seq, err, sizeof(err));
			if (rc == CM_OK)
				cm_info("log_truncated", "magu=%s fragment=%u from=%llu to=%llu reason=\"differs from the primary\"",
					f->magu, f->fragment, (unsigned long long)L, (unsigned long long)seq);
			break;
		}
	}
	if (rc == CM_OK && skip < req->n_records)
		rc = ix_fragment_append(st, recs + skip, req->n_records - skip, err, sizeof(err));
	if (rc == CM_OK && fresh && ix_fragment_size(st) > req->primary_size)
		rc = ix_fragment_truncate(st, req->primary_size, err, sizeof(err));
	pthread_mutex_unlock(&f->write_mu);
	if (rc != CM_OK)
		return fail_from(call, rc, err[0] ? err : "cannot read the log");
	return reply_replicate(call, st, ix_fragment_size(st), resp);
}

static int h_fetch_log(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__FetchLogRequest *req = (const Muri__V1__FetchLogRequest *)msg;
	if (req->max_records < 1 || req->max_records > 10000)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "max_records: %u, expected 1..10000",
				   req->max_records);
	struct frag *f = find_frag(s, req->magu, req->fragment);
	ix_fragment *st = f ? store_of(f) : NULL;
	if (!st)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u holds no data here", req->magu, req->fragment);
	cm_arena *a = cm_rpc_arena(call);
	ix_record *recs = NULL;
	size_t n = 0;
	int rc = ix_fragment_read(st, req->from_seq, req->max_records, a, &recs, &n);
	if (rc != CM_OK)
		return fail_from(call, rc, "from_seq: beyond the log");
	Muri__V1__FetchLogResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__LogRecord **pbs = cm_rpc_alloc(call, (n ? n : 1) * sizeof(*pbs));
	if (!r || !pbs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__fetch_log_response__init(r);
	for (size_t i = 0; i < n; i++)
		if (ix_record_to_pb(&recs[i], a, &pbs[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	r->records = pbs;
	r->n_records = n;
	r->log_size = ix_fragment_size(st);
	pthread_mutex_lock(&f->mu);
	r->epoch = f->epoch;
	pthread_mutex_unlock(&f->mu);
	ix_spec_to_pb(&f->spec, a, &r->schema);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int h_set_config(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__FragmentConfig *cfg = (const Muri__V1__FragmentConfig *)msg;
	const char *why = check_config(cfg);
	if (why)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", why);
	struct frag *f = NULL;
	int rc = get_or_add_frag(s, cfg->magu, cfg->fragment, &f);
	if (rc != CM_OK)
		return fail_from(call, rc, rc == CM_ERR_TOOBIG ? "this indexer holds max_fragments already"
							       : "cannot create the fragment folder");
	char err[ERR_MAX];
	rc = apply_config(f, cfg, 1, err, sizeof(err));
	if (rc != CM_OK)
		return fail_from(call, rc, err);
	cm_info("config", "magu=%s fragment=%u epoch=%llu replicas=%zu role=%s", cfg->magu, cfg->fragment,
		(unsigned long long)cfg->epoch, cfg->n_replicas,
		f->self < 0 ? "none" : memcmp(cfg->primary.data, s->key.pk, CM_PK_BYTES) == 0 ? "primary" : "backup");
	Muri__V1__SetConfigResponse *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__set_config_response__init(r);
	r->epoch = cfg->epoch;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

/* ---- handlers: reads ------------------------------------------------------ */

static int data_of(ix_service *s, cm_rpc_call *call, const char *magu, uint32_t fragment, struct frag **fo,
		   ix_fragment **st)
{
	struct frag *f = find_frag(s, magu, fragment);
	*st = f ? store_of(f) : NULL;
	*fo = f;
	if (!*st)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u holds no data on this indexer", magu, fragment);
	return GRPC_STATUS_OK;
}

static int h_search(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__LocalSearchRequest *req = (const Muri__V1__LocalSearchRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	if (!req->query)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "query: required");
	cm_arena *a = cm_rpc_arena(call);
	char err[ERR_MAX];
	ix_filter filter = {0};
	if (req->filter && ix_filter_from_pb(req->filter, a, &filter, err, sizeof(err)) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", err);
	ix_query q = {.vec = req->query->values, .dim = (uint32_t)req->query->n_values, .k = req->top_k,
		      .filter = &filter, .include_vectors = req->include_vectors};
	ix_result res;
	int rc = ix_fragment_search(st, &q, a, &res, err, sizeof(err));
	if (rc != CM_OK)
		return fail_from(call, rc, err);
	Muri__V1__LocalSearchResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__Hit **hits = cm_rpc_alloc(call, (res.n ? res.n : 1) * sizeof(*hits));
	if (!r || !hits)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__local_search_response__init(r);
	for (size_t i = 0; i < res.n; i++)
		if (ix_hit_to_pb(&res.hits[i], a, &hits[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	r->hits = hits;
	r->n_hits = res.n;
	r->log_size = res.log_size;
	code = sign_into(s, call, CM_DOM_ANSWER, &r->base, &r->signer, &r->signature);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}

static int h_get(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__LocalGetRequest *req = (const Muri__V1__LocalGetRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	if (req->n_ids < 1 || req->n_ids > s->o.frag.max_get)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids: %zu, expected 1..%u", req->n_ids,
				   s->o.frag.max_get);
	cm_arena *a = cm_rpc_arena(call);
	uint8_t(*ids)[IX_ID_BYTES] = cm_arena_alloc(a, req->n_ids * IX_ID_BYTES);
	if (!ids)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < req->n_ids; i++)
		if (ix_uuid_parse(req->ids[i], ids[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "ids[%zu]: \"%.40s\" is not a UUIDv4", i,
					   req->ids[i]);
	ix_hit *hits = NULL;
	size_t n = 0;
	char err[ERR_MAX];
	int rc = ix_fragment_get(st, (const uint8_t(*)[IX_ID_BYTES])ids, req->n_ids, req->include_vectors, a,
				 &hits, &n, err, sizeof(err));
	if (rc != CM_OK)
		return fail_from(call, rc, err);
	Muri__V1__LocalGetResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__Hit **pbs = cm_rpc_alloc(call, (n ? n : 1) * sizeof(*pbs));
	if (!r || !pbs)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__local_get_response__init(r);
	for (size_t i = 0; i < n; i++)
		if (ix_hit_to_pb(&hits[i], a, &pbs[i]) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	r->hits = pbs;
	r->n_hits = n;
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int h_get_root(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__RootRequest *req = (const Muri__V1__RootRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	uint64_t size = req->size ? req->size : ix_fragment_size(st);
	uint8_t root[CM_HASH_BYTES];
	if (ix_fragment_root(st, size, root) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE, "size: %llu is beyond the log size %llu",
				   (unsigned long long)size, (unsigned long long)ix_fragment_size(st));
	Muri__V1__SignedRoot *r = cm_rpc_alloc(call, sizeof(*r));
	if (!r)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__signed_root__init(r);
	r->magu = f->magu;
	r->fragment = f->fragment;
	r->size = size;
	set_hash(call, &r->root, root);
	code = sign_into(s, call, CM_DOM_ROOT, &r->base, &r->signer, &r->signature);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}

/* Copies a path into an array of bytes fields in the call's memory. */
static int path_to_pb(cm_rpc_call *call, const cm_merkle_path *p, ProtobufCBinaryData **out, size_t *n)
{
	ProtobufCBinaryData *v = cm_rpc_alloc(call, (p->len ? p->len : 1) * sizeof(*v));
	if (!v)
		return CM_ERR_NOMEM;
	for (size_t i = 0; i < p->len; i++) {
		set_hash(call, &v[i], p->hash + i * CM_HASH_BYTES);
		if (!v[i].data)
			return CM_ERR_NOMEM;
	}
	*out = v;
	*n = p->len;
	return CM_OK;
}

static int h_inclusion(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__InclusionProofRequest *req = (const Muri__V1__InclusionProofRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	uint64_t L = ix_fragment_size(st);
	if (req->size > L || req->index >= req->size)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE,
				   "index %llu and size %llu: need index < size <= log size %llu",
				   (unsigned long long)req->index, (unsigned long long)req->size, (unsigned long long)L);
	Muri__V1__InclusionProofResponse *r = cm_rpc_alloc(call, sizeof(*r));
	cm_merkle_path *path = cm_rpc_alloc(call, sizeof(*path));
	uint8_t root[CM_HASH_BYTES];
	if (!r || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__inclusion_proof_response__init(r);
	if (ix_fragment_inclusion(st, req->index, req->size, path) != CM_OK ||
	    ix_fragment_root(st, req->size, root) != CM_OK ||
	    ix_fragment_leaf(st, req->index, cm_rpc_arena(call), &r->leaf.data, &r->leaf.len) != CM_OK ||
	    path_to_pb(call, path, &r->path, &r->n_path) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot build the proof");
	set_hash(call, &r->root, root);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int h_consistency(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__ConsistencyProofRequest *req = (const Muri__V1__ConsistencyProofRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	uint64_t L = ix_fragment_size(st);
	if (req->old_size > req->new_size || req->new_size > L)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE,
				   "old_size %llu and new_size %llu: need old_size <= new_size <= log size %llu",
				   (unsigned long long)req->old_size, (unsigned long long)req->new_size,
				   (unsigned long long)L);
	Muri__V1__ConsistencyProofResponse *r = cm_rpc_alloc(call, sizeof(*r));
	cm_merkle_path *path = cm_rpc_alloc(call, sizeof(*path));
	uint8_t o[CM_HASH_BYTES], n[CM_HASH_BYTES];
	if (!r || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__consistency_proof_response__init(r);
	if (ix_fragment_consistency(st, req->old_size, req->new_size, path) != CM_OK ||
	    ix_fragment_root(st, req->old_size, o) != CM_OK || ix_fragment_root(st, req->new_size, n) != CM_OK ||
	    path_to_pb(call, path, &r->path, &r->n_path) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot build the proof");
	set_hash(call, &r->old_root, o);
	set_hash(call, &r->new_root, n);
	*resp = &r->base;
	return GRPC_STATUS_OK;
}

static int h_challenge(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	const Muri__V1__ChallengeRequest *req = (const Muri__V1__ChallengeRequest *)msg;
	struct frag *f;
	ix_fragment *st;
	int code = data_of(s, call, req->magu, req->fragment, &f, &st);
	if (code != GRPC_STATUS_OK)
		return code;
	if (req->beacon.len != CM_HASH_BYTES)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "beacon: must be 32 bytes");
	if (req->n_leaf_indices < 1 || req->n_leaf_indices > CHALLENGE_LEAVES_MAX)
		return cm_rpc_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "leaf_indices: %zu, expected 1..%d",
				   req->n_leaf_indices, CHALLENGE_LEAVES_MAX);
	uint64_t L = ix_fragment_size(st);
	if (req->size < 1 || req->size > L)
		return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE, "size: %llu, this indexer's log has %llu",
				   (unsigned long long)req->size, (unsigned long long)L);
	for (size_t i = 0; i < req->n_leaf_indices; i++)
		if (req->leaf_indices[i] >= req->size)
			return cm_rpc_fail(call, GRPC_STATUS_OUT_OF_RANGE, "leaf_indices[%zu]: %llu is not below size %llu",
					   i, (unsigned long long)req->leaf_indices[i], (unsigned long long)req->size);
	cm_arena *a = cm_rpc_arena(call);
	Muri__V1__ChallengeResponse *r = cm_rpc_alloc(call, sizeof(*r));
	Muri__V1__ChallengeAnswer **ans = cm_rpc_alloc(call, req->n_leaf_indices * sizeof(*ans));
	cm_merkle_path *path = cm_rpc_alloc(call, sizeof(*path));
	uint8_t root[CM_HASH_BYTES];
	if (!r || !ans || !path)
		return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	muri__v1__challenge_response__init(r);
	for (size_t i = 0; i < req->n_leaf_indices; i++) {
		Muri__V1__ChallengeAnswer *x = cm_rpc_alloc(call, sizeof(*x));
		if (!x)
			return cm_rpc_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		muri__v1__challenge_answer__init(x);
		x->index = req->leaf_indices[i];
		if (ix_fragment_leaf(st, x->index, a, &x->leaf.data, &x->leaf.len) != CM_OK ||
		    ix_fragment_inclusion(st, x->index, req->size, path) != CM_OK ||
		    path_to_pb(call, path, &x->path, &x->n_path) != CM_OK)
			return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot read leaf %llu",
					   (unsigned long long)x->index);
		uint8_t tag[CM_HASH_BYTES];
		cm_hasher h;
		cm_hasher_init(&h, CM_DOM_CHALLENGE);
		cm_hasher_update(&h, req->beacon.data, CM_HASH_BYTES);
		cm_hasher_update(&h, s->key.pk, CM_PK_BYTES);
		cm_hasher_update(&h, x->leaf.data, x->leaf.len);
		cm_hasher_final(&h, tag);
		set_hash(call, &x->tag, tag);
		ans[i] = x;
	}
	if (ix_fragment_root(st, req->size, root) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot compute the root");
	r->answers = ans;
	r->n_answers = req->n_leaf_indices;
	set_hash(call, &r->root, root);
	code = sign_into(s, call, CM_DOM_CHALLENGE, &r->base, &r->signer, &r->signature);
	if (code == GRPC_STATUS_OK)
		*resp = &r->base;
	return code;
}

static int h_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	(void)msg;
	return s->status(s->status_arg, call, (Muri__V1__StatusResponse **)resp);
}

void ix_service_status_details(ix_service *s, cm_rpc_call *call, Muri__V1__StatusResponse *r)
{
	uint64_t frags = 0, primaries = 0, records = 0, live = 0, backlog = 0;
	pthread_rwlock_rdlock(&s->lk);
	for (size_t i = 0; i < s->nfrags; i++) {
		struct frag *f = s->frags[i];
		ix_fragment *st = store_of(f);
		frags++;
		pthread_mutex_lock(&f->mu);
		primaries += f->self >= 0 && memcmp(f->primary, s->key.pk, CM_PK_BYTES) == 0;
		pthread_mutex_unlock(&f->mu);
		if (st) {
			ix_fragment_info info;
			ix_fragment_info_get(st, &info);
			records += info.size;
			live += info.live;
			/* complete batches the index does not cover yet */
			uint64_t whole = info.batch ? info.size / info.batch * info.batch : info.size;
			backlog += whole > info.indexed ? whole - info.indexed : 0;
		}
	}
	pthread_rwlock_unlock(&s->lk);
	const char *keys[] = {"fragments", "primary_of", "log_records", "live_vectors", "index_backlog"};
	uint64_t vals[] = {frags, primaries, records, live, backlog};
	enum { NDETAILS = sizeof(vals) / sizeof(vals[0]) };
	Muri__V1__StatusResponse__DetailsEntry **d = cm_rpc_alloc(call, NDETAILS * sizeof(*d));
	if (!d)
		return;
	for (int i = 0; i < NDETAILS; i++) {
		d[i] = cm_rpc_alloc(call, sizeof(**d));
		char *v = cm_rpc_alloc(call, 24);
		if (!d[i] || !v)
			return;
		muri__v1__status_response__details_entry__init(d[i]);
		d[i]->key = (char *)keys[i];
		snprintf(v, 24, "%llu", (unsigned long long)vals[i]);
		d[i]->value = v;
	}
	r->details = d;
	r->n_details = NDETAILS;
}

int ix_service_register(ix_service *s, cm_rpc_server *srv, void *status_arg,
			int (*status)(void *arg, cm_rpc_call *call, Muri__V1__StatusResponse **out))
{
	s->status_arg = status_arg;
	s->status = status;
	static const cm_rpc_handler h[] = {
		{"Write", h_write, NULL},
		{"Replicate", h_replicate, NULL},
		{"FetchLog", h_fetch_log, NULL},
		{"Search", h_search, NULL},
		{"Get", h_get, NULL},
		{"GetRoot", h_get_root, NULL},
		{"InclusionProof", h_inclusion, NULL},
		{"ConsistencyProof", h_consistency, NULL},
		{"Challenge", h_challenge, NULL},
		{"SetConfig", h_set_config, NULL},
		{"Status", h_status, NULL},
	};
	return cm_rpc_server_add(srv, &muri__v1__indexer__descriptor, h, sizeof(h) / sizeof(h[0]), s);
}

/* ---- life cycle ------------------------------------------------------------ */

static int load_fragments(ix_service *s, char *err, size_t errlen)
{
	char root[PATH_MAX];
	snprintf(root, sizeof(root), "%s/fragments", s->data_dir);
	if (mkdir(root, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "data_dir: cannot create %s: %s", root, strerror(errno));
		return CM_ERR_IO;
	}
	DIR *d = opendir(root);
	if (!d) {
		snprintf(err, errlen, "data_dir: cannot read %s", root);
		return CM_ERR_IO;
	}
	struct dirent *e;
	int rc = CM_OK;
	while (rc == CM_OK && (e = readdir(d))) {
		char *tilde = strrchr(e->d_name, '~');
		if (e->d_name[0] == '.' || !tilde)
			continue;
		char magu[IX_MAGU_MAX + 1];
		size_t n = (size_t)(tilde - e->d_name);
		if (n > IX_MAGU_MAX)
			continue;
		memcpy(magu, e->d_name, n);
		magu[n] = '\0';
		uint32_t fragment = (uint32_t)strtoul(tilde + 1, NULL, 10);
		struct frag *f = NULL;
		if (!valid_magu(magu) || get_or_add_frag(s, magu, fragment, &f) != CM_OK)
			continue;
		char store[PATH_MAX];
		struct stat sb;
		snprintf(store, sizeof(store), "%s/%s", f->dir, STORE_DIR);
		if (stat(store, &sb) == 0) {
			char e2[ERR_MAX];
			rc = ix_fragment_open(store, NULL, &s->o.frag, &f->store, e2, sizeof(e2));
			if (rc != CM_OK) {
				snprintf(err, errlen, "%s/%u: %s", magu, fragment, e2);
				break;
			}
			ix_fragment_info info;
			ix_fragment_info_get(f->store, &info);
			f->spec = info.spec;
			/* loaded: the index saved at the last stop fits the log; otherwise
			 * it is rebuilt from the log in the background */
			uint64_t whole = info.batch ? info.size / info.batch * info.batch : info.size;
			cm_info("fragment_opened", "magu=%s fragment=%u log_records=%llu saved_index_covers=%llu index=%s",
				magu, fragment, (unsigned long long)info.size, (unsigned long long)info.saved,
				info.saved ? "loaded" : whole ? "rebuilding" : "empty");
		}
		Muri__V1__FragmentConfig *cfg = load_config(f->dir);
		if (cfg) {
			char e3[ERR_MAX];
			if (!check_config(cfg))
				apply_config(f, cfg, 0, e3, sizeof(e3));
			muri__v1__fragment_config__free_unpacked(cfg, NULL);
		}
	}
	closedir(d);
	return rc;
}

int ix_service_open(const ix_service_opts *o, ix_service **out, char *err, size_t errlen)
{
	if (!o->data_dir || !*o->data_dir || !o->key) {
		snprintf(err, errlen, "data_dir and a node key are required");
		return CM_ERR_INVALID;
	}
	ix_service *s = calloc(1, sizeof(*s));
	if (!s || !(s->data_dir = strdup(o->data_dir))) {
		free(s);
		return CM_ERR_NOMEM;
	}
	s->o = *o;
	s->o.data_dir = s->data_dir;
	s->key = *o->key;
	s->o.key = &s->key;
	if (!s->o.max_fragments)
		s->o.max_fragments = 1024;
	if (!s->o.repl_batch)
		s->o.repl_batch = 1000;
	if (!s->o.repl_timeout_ms)
		s->o.repl_timeout_ms = 5000;
	if (!s->o.write_timeout_ms)
		s->o.write_timeout_ms = 5000;
	ix_options defaults;
	ix_options_default(&defaults);
	if (!s->o.frag.max_append)
		s->o.frag.max_append = defaults.max_append;
	if (!s->o.frag.max_get)
		s->o.frag.max_get = defaults.max_get;
	pthread_rwlock_init(&s->lk, NULL);
	int rc = load_fragments(s, err, errlen);
	if (rc != CM_OK) {
		ix_service_close(s);
		return rc;
	}
	*out = s;
	return CM_OK;
}

void ix_service_stop(ix_service *s)
{
	if (!s || atomic_exchange(&s->stopping, 1))
		return;
	for (size_t i = 0; i < s->nfrags; i++) {
		pthread_mutex_lock(&s->frags[i]->cfg_mu);
		stop_shippers(s->frags[i]);
		pthread_mutex_unlock(&s->frags[i]->cfg_mu);
	}
}

void ix_service_close(ix_service *s)
{
	if (!s)
		return;
	ix_service_stop(s);
	for (size_t i = 0; i < s->nfrags; i++) {
		struct frag *f = s->frags[i];
		ix_fragment_close(f->store);
		pthread_mutex_destroy(&f->cfg_mu);
		pthread_mutex_destroy(&f->write_mu);
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f);
	}
	free(s->frags);
	pthread_rwlock_destroy(&s->lk);
	cm_keypair_wipe(&s->key);
	free(s->data_dir);
	free(s);
}
