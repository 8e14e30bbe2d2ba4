/* The MurIndexer service: the registry of fragments this node holds (each
 * an ix_fragment store plus its replication, ix_replica.c), Status, the
 * handler table, and the life cycle (loading fragments, the ticker that
 * drives every replication core). The handlers live by concept: writes and
 * replication in ix_replica_rpc.c, Search and Get in ix_read_rpc.c, roots,
 * proofs and challenges (and the signing of them) in ix_proof_rpc.c. */
#include "ix_service_int.h"
#include "ix_read_auth.h"
#include "ix_sign.h"
#include "ix_split.h"
#include "cm_time.h"
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
#ifdef MURI_TEST_FAULTS
#include "ix_lie.h"
#endif

#define CONFIG_FILE "config"
#define STORE_DIR "store"
#define CONFIG_MAX (64u << 10)   /* bytes of a saved FragmentConfig */
#define PROBE_MAX 128            /* probes to find a common prefix */
#define BACKOFF_MAX_MS 1000
#define ERR_MAX 256

/* ---- helpers ------------------------------------------------------------ */

int ixs_valid_magu(const char *m)
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

/* ---- registry ------------------------------------------------------------ */

struct frag *ixs_find_frag(ix_service *s, const char *magu, uint32_t fragment)
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
	snprintf(f->dir, sizeof(f->dir), "%s/fragments/%s~%u", s->data_dir, magu, fragment);
	pthread_mutex_init(&f->cfg_mu, NULL);
	pthread_mutex_init(&f->core_mu, NULL);
	pthread_mutex_init(&f->write_mu, NULL);
	pthread_mutex_init(&f->mu, NULL);
	cm_cond_init(&f->cv);
	cm_cond_init(&f->done_cv);
	cm_arena_init(&f->io, 0);
	return f;
}

/* Finds or creates the registry entry (and its folder). */
int ixs_get_or_add_frag(ix_service *s, const char *magu, uint32_t fragment, struct frag **out)
{
	struct frag *f = ixs_find_frag(s, magu, fragment);
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

ix_fragment *ixs_store_of(struct frag *f)
{
	pthread_mutex_lock(&f->mu);
	ix_fragment *st = f->store;
	pthread_mutex_unlock(&f->mu);
	return st;
}

/* ---- handlers: reads ------------------------------------------------------ */

int ixs_fail_from(cm_rpc_call *call, int rc, const char *msg)
{
	int code = rc == CM_ERR_INVALID || rc == CM_ERR_RANGE ? GRPC_STATUS_INVALID_ARGUMENT
		   : rc == CM_ERR_STATE			     ? GRPC_STATUS_FAILED_PRECONDITION
		   : rc == CM_ERR_NOTFOUND		     ? GRPC_STATUS_NOT_FOUND
		   : rc == CM_ERR_PERM || rc == CM_ERR_VERIFY  ? GRPC_STATUS_PERMISSION_DENIED
		   : rc == CM_ERR_TOOBIG || rc == CM_ERR_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED
		   : rc == CM_ERR_TIMEOUT		     ? GRPC_STATUS_DEADLINE_EXCEEDED
							     : GRPC_STATUS_INTERNAL;
	return cm_rpc_fail(call, code, "%s", msg);
}

static int h_status(void *arg, cm_rpc_call *call, const ProtobufCMessage *msg, ProtobufCMessage **resp)
{
	ix_service *s = arg;
	(void)msg;
	return s->status(s->status_arg, call, (Muri__V1__StatusResponse **)resp);
}

void ix_service_status_details(ix_service *s, cm_rpc_call *call, Muri__V1__StatusResponse *r)
{
	uint64_t frags = 0, primaries = 0, records = 0, live = 0, backlog = 0, pbytes = 0, poff = 0, leases = 0;
	pthread_rwlock_rdlock(&s->lk);
	for (size_t i = 0; i < s->nfrags; i++) {
		struct frag *f = s->frags[i];
		ix_fragment *st = ixs_store_of(f);
		frags++;
		/* a primary holds its lease while a majority answered within lease_ms */
		ixr_core_enter(f);
		int primary = f->core && ix_repl_is_primary(f->core);
		leases += primary && ix_repl_has_lease(f->core);
		ixr_core_leave(f);
		primaries += primary;
		if (st) {
			ix_fragment_info info;
			ix_fragment_info_get(st, &info);
			records += info.size;
			live += info.live;
			/* complete batches the index does not cover yet */
			uint64_t whole = info.batch ? info.size / info.batch * info.batch : info.size;
			backlog += whole > info.indexed ? whole - info.indexed : 0;
			pbytes += info.postings_bytes;
			poff += !info.postings_on;
		}
	}
	pthread_rwlock_unlock(&s->lk);
	const char *keys[] = {"fragments",     "primary_of",	    "log_records",
			      "live_vectors",  "index_backlog",	    "filter_postings_bytes",
			      "filter_postings_off", "leases_held",	    "lease_ms"};
	uint64_t vals[] = {frags, primaries, records, live, backlog, pbytes, poff, leases, s->o.lease_ms};
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
		{"Write", ix_h_write, NULL},
		{"Replicate", ix_h_replicate, NULL},
		{"FetchLog", ix_h_fetch_log, NULL},
		{"Search", ix_h_search, NULL},
		{"Get", ix_h_get, NULL},
		{"Scroll", ix_h_scroll, NULL},
		{"GetRoot", ix_h_get_root, NULL},
		{"InclusionProof", ix_h_inclusion, NULL},
		{"ConsistencyProof", ix_h_consistency, NULL},
		{"Challenge", ix_h_challenge, NULL},
		{"SetConfig", ix_h_set_config, NULL},
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
		if (!ixs_valid_magu(magu) || ixs_get_or_add_frag(s, magu, fragment, &f) != CM_OK)
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
		rc = ix_replica_load(f, err, errlen);
	}
	closedir(d);
	return rc;
}

/* Drives every fragment's replication core: heartbeats, resends, leases,
 * write deadlines, failover requests. A fragment whose core stays busy
 * longer than a period is skipped for the round, so it delays the others'
 * ticks by at most that. */
static void *ticker_main(void *arg)
{
	ix_service *s = arg;
	uint32_t period = s->o.heartbeat_ms / 4 ? s->o.heartbeat_ms / 4 : 1;
	while (!atomic_load(&s->stopping)) {
		pthread_rwlock_rdlock(&s->lk);
		size_t n = s->nfrags;
		pthread_rwlock_unlock(&s->lk);
		for (size_t i = 0; i < n && !atomic_load(&s->stopping); i++) {
			pthread_rwlock_rdlock(&s->lk);
			struct frag *f = s->frags[i];
			pthread_rwlock_unlock(&s->lk);
			ix_replica_tick(f, period);
		}
		struct timespec t = {.tv_sec = 0, .tv_nsec = (long)period * 1000000L};
		nanosleep(&t, NULL);
	}
	return NULL;
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
	pthread_mutex_init(&s->sink_mu, NULL);
	s->o = *o;
	ixs_read_metrics(s);
	s->o.data_dir = s->data_dir;
	s->key = *o->key;
	s->o.key = &s->key;
	if (ix_signer_new(&s->key, s->o.answer_group_max ? s->o.answer_group_max : 64, s->o.answer_group_wait_us,
			  &s->signer) != CM_OK) {
		pthread_mutex_destroy(&s->sink_mu);
		free(s->data_dir);
		free(s);
		return CM_ERR_NOMEM;
	}
	if (!s->o.max_fragments)
		s->o.max_fragments = 1024;
	if (!s->o.repl_batch)
		s->o.repl_batch = 1000;
	if (!s->o.repl_timeout_ms)
		s->o.repl_timeout_ms = 5000;
	if (!s->o.write_timeout_ms)
		s->o.write_timeout_ms = 5000;
	if (!s->o.heartbeat_ms)
		s->o.heartbeat_ms = 100;
	if (!s->o.lease_ms)
		s->o.lease_ms = 2000;
	if (!s->o.suspect_ms)
		s->o.suspect_ms = 5000;
	if (s->o.suspect_ms <= s->o.lease_ms) {
		snprintf(err, errlen, "suspect_ms: %u must exceed lease_ms %u", s->o.suspect_ms, s->o.lease_ms);
		ix_signer_free(s->signer);
		free(s->data_dir);
		free(s);
		return CM_ERR_INVALID;
	}
	ix_options defaults;
	ix_options_default(&defaults);
	if (!s->o.frag.max_append)
		s->o.frag.max_append = defaults.max_append;
	if (!s->o.frag.max_get)
		s->o.frag.max_get = defaults.max_get;
	if (!s->o.read_wait_ms)
		s->o.read_wait_ms = 1000;
	if (!s->o.split_fetch_page)
		s->o.split_fetch_page = 256;
	if (!s->o.split_fetch_timeout_ms)
		s->o.split_fetch_timeout_ms = 5000;
	if (!s->o.split_fetch_pass_ms)
		s->o.split_fetch_pass_ms = 2000;
	if (!s->o.read_auth_window_ms)
		s->o.read_auth_window_ms = 60000;
	if (!s->o.read_replay_max)
		s->o.read_replay_max = 65536;
	pthread_rwlock_init(&s->lk, NULL);
	int rc = ix_read_auth_new(s->o.read_auth_window_ms, s->o.read_replay_max, &s->reads);
#ifdef MURI_TEST_FAULTS
	if (rc == CM_OK)
		rc = ix_lie_new(s->o.test_lie, &s->lie);
#endif
	if (rc == CM_OK)
		rc = load_fragments(s, err, errlen);
	if (rc == CM_OK) {
		s->ticker_running = pthread_create(&s->ticker, NULL, ticker_main, s) == 0;
		if (!s->ticker_running) {
			snprintf(err, errlen, "cannot start the replication ticker");
			rc = CM_ERR_INTERNAL;
		}
	}
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
	if (s->ticker_running)
		pthread_join(s->ticker, NULL);
	s->ticker_running = 0;
	for (size_t i = 0; i < s->nfrags; i++) {
		pthread_mutex_lock(&s->frags[i]->cfg_mu);
		ix_replica_stop(s->frags[i]);
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
		ixp_free(f);
		ix_replica_free(f);
		cm_arena_free(&f->io);
		pthread_mutex_destroy(&f->cfg_mu);
		pthread_mutex_destroy(&f->core_mu);
		pthread_mutex_destroy(&f->write_mu);
		pthread_cond_destroy(&f->done_cv);
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f);
	}
	free(s->frags);
	pthread_rwlock_destroy(&s->lk);
	pthread_mutex_destroy(&s->sink_mu);
	ix_read_auth_free(s->reads);
	ix_signer_free(s->signer);
#ifdef MURI_TEST_FAULTS
	ix_lie_free(s->lie);
#endif
	cm_keypair_wipe(&s->key);
	free(s->data_dir);
	free(s);
}

int ix_service_set_readers(ix_service *s, const uint8_t (*pks)[CM_PK_BYTES], size_t n)
{
	return ix_read_auth_set_readers(s->reads, pks, n);
}

void ix_service_set_failover_sink(ix_service *s, ix_failover_fn fn, void *arg)
{
	pthread_mutex_lock(&s->sink_mu);
	s->sink = fn;
	s->sink_arg = arg;
	pthread_mutex_unlock(&s->sink_mu);
}

void ixs_set_chain_id(ix_service *s, const char *id)
{
	pthread_mutex_lock(&s->sink_mu);
	snprintf(s->chain_id, sizeof(s->chain_id), "%s", id ? id : "");
	pthread_mutex_unlock(&s->sink_mu);
}

void ixs_chain_id(ix_service *s, char out[IX_CHAIN_ID_MAX + 1])
{
	pthread_mutex_lock(&s->sink_mu);
	memcpy(out, s->chain_id, IX_CHAIN_ID_MAX + 1);
	pthread_mutex_unlock(&s->sink_mu);
}

void ixs_failover(ix_service *s, const char *magu, uint32_t fragment, const ix_failover_report *r)
{
	pthread_mutex_lock(&s->sink_mu);
	if (s->sink)
		s->sink(s->sink_arg, magu, fragment, r);
	pthread_mutex_unlock(&s->sink_mu);
}
