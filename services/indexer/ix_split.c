/* A split's half on this indexer (services/ledger/lg_st_split.c, DESIGN.md
 * "Fragments"): its first records are derived from the parent's frozen log
 * (FragmentConfig.source), verified against the frozen root: the records
 * whose ids fall in the half's cell, in log order, renumbered from 0 in
 * epoch 1, so every replica of the half derives the same log and signs the
 * same root. The parent's log is this node's own copy when it holds the
 * parent at the frozen root; otherwise the half's replica fetches it from
 * the parent's replicas (FetchLog, the core in ix_split_fetch.c): pages
 * signed by this node's key, the cell's records staged in a file of the
 * half's folder, and derived only once the whole fetched prefix has the
 * frozen root. A parent's replicas answer that FetchLog from its halves'
 * replicas (ixp_child_reader), which they learn from the chain. A marker
 * file in the half's folder records that it derived (and how many
 * records), and that the ledger declared it live; only then does it take
 * writes. */
#include "ix_service_int.h"
#include "ix_split.h"
#include "ix_split_fetch.h"
#include "cm_cell.h"
#include "cm_err.h"
#include "cm_ledger_client.h"
#include "cm_log.h"
#include "cm_read_auth.h"
#include "cm_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DERIVED_FILE "derived"
#define CHILDREN_FILE "children"
#define STAGE_FILE "fetched.tmp"
#define DERIVE_BATCH 256

static void marker_path(const struct frag *f, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", f->dir, DERIVED_FILE);
}

static void children_load(struct frag *f);

void ixp_load(struct frag *f)
{
	char path[PATH_MAX];
	unsigned long long size = 0;
	int live = 0;
	marker_path(f, path, sizeof(path));
	children_load(f);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return;
	if (fscanf(fp, "%llu %d", &size, &live) >= 1) {
		f->derived = 1;
		f->derived_size = size;
		f->split_live = live == 1;
	}
	fclose(fp);
}

static int marker_save(struct frag *f)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	marker_path(f, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *fp = fopen(tmp, "w");
	if (!fp)
		return CM_ERR_IO;
	int ok = fprintf(fp, "%llu %d\n", (unsigned long long)f->derived_size, f->split_live) > 0;
	ok &= fflush(fp) == 0;
	ok &= fclose(fp) == 0;
	if (!ok || rename(tmp, path) != 0)
		return CM_ERR_IO;
	return CM_OK;
}

/* Where a derivation reads the parent's records: this node's copy of the
 * parent (st), or the staged file of a verified fetch (fp). */
struct source {
	ix_fragment *st;
	FILE *fp;
};

/* Up to want records from seq from on (the staged file: the next ones). */
static int source_read(struct source *src, uint64_t from, uint64_t want, cm_arena *a, ix_record **recs, size_t *n,
		       char *err, size_t errlen)
{
	if (src->st)
		return ix_fragment_read(src->st, from, (uint32_t)want, a, recs, n);
	ix_record *out = cm_arena_alloc(a, want * sizeof(*out));
	if (!out)
		return CM_ERR_NOMEM;
	size_t k = 0;
	for (; k < want; k++) {
		uint32_t len;
		if (fread(&len, sizeof(len), 1, src->fp) != 1)
			break;
		uint8_t *b = cm_arena_alloc(a, len ? len : 1);
		if (!b || fread(b, 1, len, src->fp) != len)
			return b ? CM_ERR_IO : CM_ERR_NOMEM;
		int rc = ix_record_decode(b, len, a, &out[k], err, errlen);
		if (rc != CM_OK)
			return rc;
	}
	*recs = out;
	*n = k;
	return CM_OK;
}

/* Appends the source's records of f's cell among the first size (staged:
 * all of them), renumbered from 0 in epoch 1, and writes the marker. */
static int derive_from(struct frag *f, struct source *src, uint64_t size, char *err, size_t errlen)
{
	const Muri__V1__FragmentConfig *c = f->cfg;
	cm_cell cell = {c->cell_base, c->cell_depth, c->cell_path};
	cm_arena a;
	cm_arena_init(&a, 0);
	ix_record *out = malloc(DERIVE_BATCH * sizeof(*out));
	int rc = out ? CM_OK : CM_ERR_NOMEM;
	uint64_t next = 0;
	for (uint64_t from = 0; rc == CM_OK && from < size;) {
		ix_record *recs = NULL;
		size_t n = 0, k = 0;
		uint64_t want = size - from < DERIVE_BATCH ? size - from : DERIVE_BATCH;
		cm_arena_reset(&a);
		if ((rc = source_read(src, from, want, &a, &recs, &n, err, errlen)) != CM_OK)
			break;
		if (n == 0) {
			if (src->fp)
				break; /* the staged records end */
			rc = CM_ERR_IO;
			break;
		}
		for (size_t i = 0; i < n && from + i < size; i++) {
			if (!cm_cell_contains_h(&cell, cell.base, cm_cell_hash(recs[i].id)))
				continue;
			out[k] = recs[i];
			out[k].seq = next + k;
			out[k].epoch = 1;
			k++;
		}
		from += n;
		if (k) {
			ixr_core_enter(f);
			rc = ix_fragment_append(f->store, out, k, err, errlen);
			ixr_core_leave(f);
			next += k;
		}
	}
	free(out);
	cm_arena_free(&a);
	if (rc != CM_OK) {
		if (!err[0])
			snprintf(err, errlen, "%s", cm_strerror(rc));
		return rc;
	}
	f->derived = 1;
	f->derived_size = next;
	f->split_live = c->live; /* a replica derives late when it lagged: the ledger may have said so already */
	if ((rc = marker_save(f)) != CM_OK) {
		snprintf(err, errlen, "cannot write %s/%s", f->dir, DERIVED_FILE);
		return rc;
	}
	cm_info("split_derived", "magu=%s fragment=%u parent=%u records=%llu of=%llu from=%s", f->magu, f->fragment,
		c->source->fragment, (unsigned long long)next, (unsigned long long)size,
		src->st ? "local" : "fetched");
	return CM_OK;
}

static int derivable(struct frag *f, char *err, size_t errlen)
{
	if (!f->store || ix_fragment_size(f->store) != 0) {
		snprintf(err, errlen, "%s/%u: %s", f->magu, f->fragment,
			 f->store ? "its log is not empty" : "its store is not open yet");
		return CM_ERR_STATE;
	}
	return CM_OK;
}

int ixp_derive(ix_service *s, struct frag *f, char *err, size_t errlen)
{
	const Muri__V1__FragmentConfig *c = f->cfg;
	if (!c || !c->source || f->derived)
		return CM_OK;
	const Muri__V1__FragmentSource *src = c->source;
	struct frag *p = ixs_find_frag(s, f->magu, src->fragment);
	ix_fragment *pst = p ? ixs_store_of(p) : NULL;
	uint8_t root[CM_HASH_BYTES];
	if (!pst || ix_fragment_size(pst) < src->size || ix_fragment_root(pst, src->size, root) != CM_OK ||
	    src->root.len != CM_HASH_BYTES || memcmp(root, src->root.data, CM_HASH_BYTES) != 0) {
		snprintf(err, errlen, "this indexer does not hold fragment %u's log at its frozen root (size %llu)",
			 src->fragment, (unsigned long long)src->size);
		return CM_ERR_UNAVAILABLE;
	}
	int rc = derivable(f, err, errlen);
	if (rc != CM_OK)
		return rc;
	struct source in = {pst, NULL};
	return derive_from(f, &in, src->size, err, errlen);
}

/* ---- fetching the parent's frozen log from its replicas ---------------------------------- */

struct peer {
	uint8_t pk[CM_PK_BYTES];
	char addr[IX_ADDR_MAX];
	cm_rpc_client *c;
};

struct ixp_fetch {
	uint32_t parent;             /* the source this fetch is for */
	uint64_t size;
	uint8_t root[CM_HASH_BYTES];
	ixf core;
	struct peer peers[IXF_MAX_PEERS];
	uint32_t npeers;
	FILE *stage;
	char stage_path[PATH_MAX];
	uint64_t started_ms;
	uint64_t wall_ms;            /* the last request's: each is signed anew, never twice alike (a replay) */
	char why[160];               /* the last failed call's status */
};

static int stage_reset(void *arg)
{
	struct ixp_fetch *x = arg;
	if (!x->stage)
		return CM_ERR_IO;
	rewind(x->stage);
	return ftruncate(fileno(x->stage), 0) == 0 ? CM_OK : CM_ERR_IO;
}

static int stage_append(void *arg, const ixf_entry *e)
{
	struct ixp_fetch *x = arg;
	uint32_t len = (uint32_t)e->len;
	if (!x->stage || fwrite(&len, sizeof(len), 1, x->stage) != 1 || fwrite(e->data, 1, e->len, x->stage) != e->len)
		return CM_ERR_IO;
	return CM_OK;
}

static void fetch_free(struct ixp_fetch *x)
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->npeers; i++)
		cm_rpc_client_free(x->peers[i].c);
	if (x->stage) {
		fclose(x->stage);
		unlink(x->stage_path);
	}
	free(x);
}

void ixp_free(struct frag *f)
{
	fetch_free(f->fetch);
	f->fetch = NULL;
}

/* A new fetch of src for f: the parent's replicas (but this node) from the
 * ledger, the staged file in f's folder. */
static int fetch_new(ix_service *s, struct frag *f, cm_ledger_client *lc, const Muri__V1__FragmentSource *src,
		     const cm_cell *cell, struct ixp_fetch **out, char *err, size_t errlen)
{
	Muri__V1__FragmentRequest req = MURI__V1__FRAGMENT_REQUEST__INIT;
	req.magu = f->magu;
	req.fragment = src->fragment;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	int rc = cm_ledger_client_call(lc, "/muri.v1.Ledger/GetFragment", &req.base, &muri__v1__fragment_info__descriptor,
				       &resp, &st);
	if (rc != CM_OK) {
		snprintf(err, errlen, "GetFragment %s/%u: %s", f->magu, src->fragment, st.message);
		return rc;
	}
	const Muri__V1__FragmentConfig *pc = ((Muri__V1__FragmentInfo *)resp)->config;
	struct ixp_fetch *x = calloc(1, sizeof(*x));
	rc = x ? CM_OK : CM_ERR_NOMEM;
	for (size_t i = 0; rc == CM_OK && pc && i < pc->n_replicas && x->npeers < IXF_MAX_PEERS; i++) {
		const Muri__V1__Replica *r = pc->replicas[i];
		if (!r || r->pubkey.len != CM_PK_BYTES || !r->address || !*r->address ||
		    memcmp(r->pubkey.data, s->key.pk, CM_PK_BYTES) == 0)
			continue;
		memcpy(x->peers[x->npeers].pk, r->pubkey.data, CM_PK_BYTES);
		snprintf(x->peers[x->npeers].addr, sizeof(x->peers[x->npeers].addr), "%s", r->address);
		x->npeers++;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	if (rc != CM_OK)
		return rc;
	if (!x->npeers) {
		snprintf(err, errlen, "fragment %u has no other replica to fetch its frozen log from", src->fragment);
		free(x);
		return CM_ERR_UNAVAILABLE;
	}
	x->parent = src->fragment;
	x->size = src->size;
	memcpy(x->root, src->root.data, CM_HASH_BYTES);
	snprintf(x->stage_path, sizeof(x->stage_path), "%s/%s", f->dir, STAGE_FILE);
	if (!(x->stage = fopen(x->stage_path, "w+b"))) {
		snprintf(err, errlen, "cannot create %s", x->stage_path);
		free(x);
		return CM_ERR_IO;
	}
	ixf_opts o;
	memset(&o, 0, sizeof(o));
	o.size = src->size;
	memcpy(o.root, src->root.data, CM_HASH_BYTES);
	o.cell = *cell;
	o.npeers = x->npeers;
	o.page = s->o.split_fetch_page;
	o.retries = s->o.split_fetch_retries;
	ixf_io io = {x, stage_reset, stage_append};
	if ((rc = ixf_init(&x->core, &o, &io)) != CM_OK) {
		snprintf(err, errlen, "split_fetch_page: %u, expected 1..10000", o.page);
		fetch_free(x);
		return rc;
	}
	/* start at a replica chosen by this node's key, so halves' replicas spread */
	x->core.cur = (uint32_t)(s->key.pk[0] + f->fragment) % x->npeers;
	x->started_ms = cm_now_ms();
	*out = x;
	return CM_OK;
}

/* One FetchLog call for req; feeds the answer (or the failure) to the core. */
static void fetch_page(ix_service *s, struct frag *f, struct ixp_fetch *x, const ixf_req *q, cm_arena *a)
{
	struct peer *p = &x->peers[q->peer];
	char err[IX_ERR_MAX] = "";
	if (!p->c) {
		cm_rpc_client_opts co = {.target = p->addr, .max_message = s->o.max_message, .tls_ca_file = s->o.tls_ca_file,
					 .tls_expect_node = p->pk};
		if (cm_rpc_client_new(&co, &p->c, err, sizeof(err)) != CM_OK) {
			cm_warn("split_fetch", "magu=%s fragment=%u peer=%s error=\"%s\"", f->magu, f->fragment, p->addr, err);
			ixf_on_error(&x->core, q->peer);
			return;
		}
	}
	Muri__V1__FetchLogRequest req = MURI__V1__FETCH_LOG_REQUEST__INIT;
	Muri__V1__ReadAuth auth;
	uint8_t sig[CM_SIG_BYTES];
	char chain[IX_CHAIN_ID_MAX + 1];
	ixs_chain_id(s, chain);
	req.magu = f->magu;
	req.fragment = x->parent;
	req.from_seq = q->from;
	req.max_records = q->max;
	ProtobufCMessage *m = NULL;
	cm_rpc_status st;
	uint64_t wall = cm_wall_ms();
	x->wall_ms = wall > x->wall_ms ? wall : x->wall_ms + 1;
	st.code = 0;
	snprintf(st.message, sizeof(st.message), "cannot sign");
	if (cm_read_auth_sign(&req.base, &auth, sig, &s->key, "FetchLog", chain, x->wall_ms) != CM_OK ||
	    cm_rpc_unary(p->c, "/muri.v1.Indexer/FetchLog", &req.base, &muri__v1__fetch_log_response__descriptor, &m,
			 (int)s->o.split_fetch_timeout_ms, &st) != CM_OK) {
		snprintf(x->why, sizeof(x->why), "%s: %.120s", cm_rpc_code_name(st.code), st.message);
		cm_debug("split_fetch", "magu=%s fragment=%u peer=%s from=%llu code=%s msg=\"%s\"", f->magu, f->fragment,
			 p->addr, (unsigned long long)q->from, cm_rpc_code_name(st.code), st.message);
		ixf_on_error(&x->core, q->peer);
		return;
	}
	const Muri__V1__FetchLogResponse *r = (const Muri__V1__FetchLogResponse *)m;
	ixf_entry *e = cm_arena_alloc(a, (r->n_records ? r->n_records : 1) * sizeof(*e));
	int fault = e ? IXF_OK : IXF_STAGE;
	for (size_t i = 0; fault == IXF_OK && i < r->n_records; i++) {
		ix_record rec;
		uint8_t *b;
		/* the bytes the leaf covers are re-encoded from the record: its seq
		 * and id are those it is hashed with */
		if (ix_record_from_pb(r->records[i], 0, a, &rec, err, sizeof(err)) != CM_OK) {
			fault = IXF_BAD;
			break;
		}
		size_t len = ix_record_encoded_size(&rec);
		if (!(b = cm_arena_alloc(a, len))) {
			fault = IXF_STAGE;
			break;
		}
		ix_record_encode(&rec, b);
		e[i].seq = rec.seq;
		e[i].id = b + 18; /* u8 format | u64 seq | u64 epoch | u8 op | id */
		e[i].data = b;
		e[i].len = len;
	}
	if (fault == IXF_OK)
		fault = ixf_on_page(&x->core, q->peer, e, r->n_records, r->log_size);
	else
		ixf_on_bad(&x->core, q->peer, fault);
	snprintf(x->why, sizeof(x->why), "%s%s%.120s", ixf_fault_name(fault), err[0] ? ": " : "", err);
	if (fault != IXF_OK)
		cm_warn("split_fetch_refused", "magu=%s fragment=%u parent=%u peer=%s from=%llu fault=%s%s%s", f->magu,
			f->fragment, x->parent, p->addr, (unsigned long long)q->from, ixf_fault_name(fault),
			err[0] ? " error=" : "", err);
	protobuf_c_message_free_unpacked(m, NULL);
}

int ixp_fetch(ix_service *s, struct frag *f, cm_ledger_client *lc, char *err, size_t errlen)
{
	/* what to fetch, read under cfg_mu; the calls are made without it */
	pthread_mutex_lock(&f->cfg_mu);
	const Muri__V1__FragmentConfig *c = f->cfg;
	int want = c && c->source && !f->derived && c->source->root.len == CM_HASH_BYTES;
	Muri__V1__FragmentSource src = MURI__V1__FRAGMENT_SOURCE__INIT;
	uint8_t root[CM_HASH_BYTES];
	cm_cell cell = {0, 0, 0};
	if (want) {
		src = *c->source;
		memcpy(root, c->source->root.data, CM_HASH_BYTES);
		src.root.data = root;
		cell = (cm_cell){c->cell_base, c->cell_depth, c->cell_path};
	}
	pthread_mutex_unlock(&f->cfg_mu);
	if (!want) {
		ixp_free(f);
		return CM_OK;
	}
	struct ixp_fetch *x = f->fetch;
	if (x && (x->parent != src.fragment || x->size != src.size || memcmp(x->root, root, CM_HASH_BYTES) != 0)) {
		ixp_free(f);
		x = NULL;
	}
	int rc;
	if (!x) {
		if ((rc = fetch_new(s, f, lc, &src, &cell, &x, err, errlen)) != CM_OK)
			return rc;
		f->fetch = x;
		cm_info("split_fetch", "magu=%s fragment=%u parent=%u size=%llu replicas=%u first=%s", f->magu,
			f->fragment, src.fragment, (unsigned long long)src.size, x->npeers, x->peers[x->core.cur].addr);
	}
	cm_arena a;
	cm_arena_init(&a, 0);
	uint64_t until = cm_now_ms() + s->o.split_fetch_pass_ms;
	int step = IXF_FETCH;
	ixf_req q;
	while (!atomic_load(&s->stopping) && cm_now_ms() < until &&
	       (step = ixf_next(&x->core, &q)) == IXF_FETCH) {
		cm_arena_reset(&a);
		uint64_t faults = 0;
		for (int i = 0; i < IXF_NFAULTS; i++)
			faults += x->core.faults[i];
		fetch_page(s, f, x, &q, &a);
		for (int i = 0; i < IXF_NFAULTS; i++)
			faults -= x->core.faults[i];
		if (faults) /* q.peer failed: its records were dropped, the next replica starts over */
			cm_warn("split_fetch_failed", "magu=%s fragment=%u parent=%u peer=%s at=%llu next=%s why=\"%s\"",
				f->magu, f->fragment, src.fragment, x->peers[q.peer].addr, (unsigned long long)q.from,
				x->core.failed[x->core.cur] ? "none this round" : x->peers[x->core.cur].addr, x->why);
	}
	cm_arena_free(&a);
	if (step == IXF_WAIT) {
		/* every replica failed: the next pass asks the ledger for them again */
		snprintf(err, errlen, "no replica of fragment %u served its frozen log (size %llu) at its root: "
			 "%llu unreachable, %llu short, %llu bad, %llu root; trying again", src.fragment,
			 (unsigned long long)src.size, (unsigned long long)x->core.faults[IXF_UNREACHABLE],
			 (unsigned long long)x->core.faults[IXF_SHORT], (unsigned long long)x->core.faults[IXF_BAD],
			 (unsigned long long)x->core.faults[IXF_ROOT]);
		ixp_free(f);
		return CM_ERR_UNAVAILABLE;
	}
	if (step != IXF_DONE) {
		snprintf(err, errlen, "fetching fragment %u's frozen log: %llu of %llu records so far", src.fragment,
			 (unsigned long long)x->core.next, (unsigned long long)src.size);
		return CM_ERR_UNAVAILABLE;
	}
	/* verified: derive from the staged records, if f still wants them */
	pthread_mutex_lock(&f->cfg_mu);
	c = f->cfg;
	rc = CM_OK;
	if (c && c->source && !f->derived && c->source->fragment == src.fragment && c->source->size == src.size &&
	    (rc = derivable(f, err, errlen)) == CM_OK && fflush(x->stage) == 0) {
		rewind(x->stage);
		struct source in = {NULL, x->stage};
		rc = derive_from(f, &in, src.size, err, errlen);
	}
	pthread_mutex_unlock(&f->cfg_mu);
	if (rc == CM_OK)
		cm_info("split_fetched", "magu=%s fragment=%u parent=%u size=%llu pages=%llu ms=%llu", f->magu,
			f->fragment, src.fragment, (unsigned long long)src.size, (unsigned long long)x->core.pages,
			(unsigned long long)(cm_now_ms() - x->started_ms));
	ixp_free(f);
	return rc;
}

/* ---- who may fetch a parent: its halves' replicas ---------------------------------------- */

static void children_path(const struct frag *f, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", f->dir, CHILDREN_FILE);
}

static void children_load(struct frag *f)
{
	char path[PATH_MAX];
	children_path(f, path, sizeof(path));
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return;
	uint32_t no[2], n[2];
	uint8_t pk[2][IX_MAX_REPLICAS][CM_PK_BYTES];
	if (fread(no, sizeof(no), 1, fp) == 1 && fread(n, sizeof(n), 1, fp) == 1 && fread(pk, sizeof(pk), 1, fp) == 1 &&
	    n[0] <= IX_MAX_REPLICAS && n[1] <= IX_MAX_REPLICAS) {
		memcpy(f->child_no, no, sizeof(no));
		memcpy(f->nchild, n, sizeof(n));
		memcpy(f->child_pk, pk, sizeof(pk));
	}
	fclose(fp);
}

void ixp_note_child(ix_service *s, const Muri__V1__FragmentConfig *cfg)
{
	if (!cfg || !cfg->source || !cfg->magu)
		return;
	struct frag *p = ixs_find_frag(s, cfg->magu, cfg->source->fragment);
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	int slot = p->nchild[0] && p->child_no[0] != cfg->fragment ? 1 : 0;
	if (slot == 1 && p->nchild[1] && p->child_no[1] != cfg->fragment)
		slot = -1; /* a parent has two halves */
	if (slot >= 0) {
		uint32_t n = 0;
		for (size_t i = 0; i < cfg->n_replicas && n < IX_MAX_REPLICAS; i++)
			if (cfg->replicas[i] && cfg->replicas[i]->pubkey.len == CM_PK_BYTES)
				memcpy(p->child_pk[slot][n++], cfg->replicas[i]->pubkey.data, CM_PK_BYTES);
		p->child_no[slot] = cfg->fragment;
		p->nchild[slot] = n;
		char path[PATH_MAX], tmp[PATH_MAX + 8];
		children_path(p, path, sizeof(path));
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		FILE *fp = fopen(tmp, "wb");
		int ok = fp && fwrite(p->child_no, sizeof(p->child_no), 1, fp) == 1 &&
			 fwrite(p->nchild, sizeof(p->nchild), 1, fp) == 1 && fwrite(p->child_pk, sizeof(p->child_pk), 1, fp) == 1;
		if (fp)
			ok &= fclose(fp) == 0;
		if (!ok || rename(tmp, path) != 0)
			cm_warn("split_children", "magu=%s fragment=%u error=\"cannot write %s\"", p->magu, p->fragment, path);
	}
	pthread_mutex_unlock(&p->mu);
}

int ixp_child_reader(struct frag *f, const uint8_t pk[CM_PK_BYTES])
{
	int yes = 0;
	if (!f)
		return 0;
	pthread_mutex_lock(&f->mu);
	for (int c = 0; c < 2 && !yes; c++)
		for (uint32_t i = 0; i < f->nchild[c] && !yes; i++)
			yes = memcmp(f->child_pk[c][i], pk, CM_PK_BYTES) == 0;
	pthread_mutex_unlock(&f->mu);
	return yes;
}

void ixp_config(struct frag *f)
{
	if (f->cfg && f->cfg->source && f->cfg->live && f->derived && !f->split_live) {
		f->split_live = 1;
		if (marker_save(f) != CM_OK)
			cm_warn("split_marker", "magu=%s fragment=%u error=\"cannot write %s/%s\"", f->magu, f->fragment,
				f->dir, DERIVED_FILE);
	}
}

int ixp_takes_writes(const struct frag *f)
{
	const Muri__V1__FragmentConfig *c = f->cfg;
	if (!c)
		return 1;
	if (c->phase != MURI__V1__FRAGMENT_PHASE__FRAGMENT_PHASE_SERVING)
		return 0;
	return !c->source || (f->derived && (c->live || f->split_live));
}

int ixp_takes_appends(const struct frag *f)
{
	return !(f->cfg && f->cfg->source && !f->derived);
}
