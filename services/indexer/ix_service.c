/* The MurIndexer service: the registry of fragments this node holds (each
 * an ix_fragment store plus its replication, ix_replica.c), the proof and
 * challenge handlers, Status, and the life cycle (loading fragments, the
 * ticker that drives every replication core). Search and Get are in
 * ix_read_rpc.c.
 *
 * Signed roots and challenge responses are signed over H(domain || the
 * message packed with its signature field empty); search answers over the
 * canonical answer digest (common/cm_answer.h). */
#include "ix_service_int.h"
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
#define CHALLENGE_LEAVES_MAX 64
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
void ixs_set_hash(cm_rpc_call *call, ProtobufCBinaryData *field, const uint8_t *h)
{
	field->data = copy_hash(call, h);
	field->len = field->data ? CM_HASH_BYTES : 0;
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

static int data_of(ix_service *s, cm_rpc_call *call, const char *magu, uint32_t fragment, struct frag **fo,
		   ix_fragment **st)
{
	struct frag *f = ixs_find_frag(s, magu, fragment);
	*st = f ? ixs_store_of(f) : NULL;
	*fo = f;
	if (!*st)
		return cm_rpc_fail(call, GRPC_STATUS_NOT_FOUND, "%s/%u holds no data on this indexer", magu, fragment);
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
	ixs_set_hash(call, &r->root, root);
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
		ixs_set_hash(call, &v[i], p->hash + i * CM_HASH_BYTES);
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
	ixs_set_hash(call, &r->root, root);
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
	ixs_set_hash(call, &r->old_root, o);
	ixs_set_hash(call, &r->new_root, n);
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
		ixs_set_hash(call, &x->tag, tag);
		ans[i] = x;
	}
	if (ix_fragment_root(st, req->size, root) != CM_OK)
		return cm_rpc_fail(call, GRPC_STATUS_INTERNAL, "cannot compute the root");
	r->answers = ans;
	r->n_answers = req->n_leaf_indices;
	ixs_set_hash(call, &r->root, root);
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
		ix_fragment *st = ixs_store_of(f);
		frags++;
		primaries += ix_replica_is_primary(f);
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
		{"Write", ix_h_write, NULL},
		{"Replicate", ix_h_replicate, NULL},
		{"FetchLog", ix_h_fetch_log, NULL},
		{"Search", ix_h_search, NULL},
		{"Get", ix_h_get, NULL},
		{"GetRoot", h_get_root, NULL},
		{"InclusionProof", h_inclusion, NULL},
		{"ConsistencyProof", h_consistency, NULL},
		{"Challenge", h_challenge, NULL},
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
 * write deadlines, failover requests. */
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
			ix_replica_tick(f);
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
	if (!s->o.heartbeat_ms)
		s->o.heartbeat_ms = 100;
	if (!s->o.lease_ms)
		s->o.lease_ms = 2000;
	if (!s->o.suspect_ms)
		s->o.suspect_ms = 5000;
	if (s->o.suspect_ms <= s->o.lease_ms) {
		snprintf(err, errlen, "suspect_ms: %u must exceed lease_ms %u", s->o.suspect_ms, s->o.lease_ms);
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
	pthread_rwlock_init(&s->lk, NULL);
	int rc = CM_OK;
#ifdef MURI_TEST_FAULTS
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
		ix_replica_free(f);
		cm_arena_free(&f->io);
		pthread_mutex_destroy(&f->cfg_mu);
		pthread_mutex_destroy(&f->core_mu);
		pthread_cond_destroy(&f->done_cv);
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f);
	}
	free(s->frags);
	pthread_rwlock_destroy(&s->lk);
	pthread_mutex_destroy(&s->sink_mu);
#ifdef MURI_TEST_FAULTS
	ix_lie_free(s->lie);
#endif
	cm_keypair_wipe(&s->key);
	free(s->data_dir);
	free(s);
}

void ix_service_set_failover_sink(ix_service *s, ix_failover_fn fn, void *arg)
{
	pthread_mutex_lock(&s->sink_mu);
	s->sink = fn;
	s->sink_arg = arg;
	pthread_mutex_unlock(&s->sink_mu);
}

void ixs_failover(ix_service *s, const char *magu, uint32_t fragment, const ix_failover_report *r)
{
	pthread_mutex_lock(&s->sink_mu);
	if (s->sink)
		s->sink(s->sink_arg, magu, fragment, r);
	pthread_mutex_unlock(&s->sink_mu);
}
