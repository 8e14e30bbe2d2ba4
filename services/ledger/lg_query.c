/* The Ledger service's queries over the store: each fills a protobuf-c
 * message of ledger.proto from the rows of one read snapshot and says where
 * it read (ReadAt: the head height and state root of that snapshot). Lists
 * are paged with opaque tokens and bounded. */
#include "lg_query.h"
#include "lg_fill.h"
#include "cm_bytes.h"
#include "cm_err.h"
#include "lg_state.h"
#include "lg_tx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- queries ---- */

int lg_query_dup_bytes(ProtobufCBinaryData *b, const void *p, size_t n)
{
	if (!(b->data = malloc(n ? n : 1)))
		return CM_ERR_NOMEM;
	if (n)
		memcpy(b->data, p, n);
	b->len = n;
	return CM_OK;
}

int lg_query_dup_str(char **dst, const char *s)
{
	size_t n = strlen(s) + 1;
	char *c = malloc(n);
	if (!c)
		return CM_ERR_NOMEM;
	memcpy(c, s, n);
	*dst = c;
	return CM_OK;
}

/* Allocates a zeroed array of n pointers (at least one slot). */
static void *pb_array(size_t n, size_t elem)
{
	return calloc(n ? n : 1, elem);
}

static void pb_free(void *msg)
{
	protobuf_c_message_free_unpacked(msg, NULL);
}

static int q_account(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__Account **out)
{
	lg_account a;
	Muri__V1__Account *m;
	int rc = lg_store_account_get(s, pk, &a);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__account__init(m);
	m->balance = a.balance;
	m->nonce = a.nonce;
	m->staked = a.staked;
	m->unbonding = a.unbonding;
	if (lg_query_dup_bytes(&m->address, pk, CM_PK_BYTES) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

/* A parameter's value in the store, or its default without a row. */
static int param_of(lg_store *s, const char *name, int64_t *v)
{
	lg_named *p = NULL;
	size_t n;
	const lg_param_def *d = lg_param_find(name);
	int rc = lg_store_params(s, &p, &n);
	if (rc != CM_OK)
		return rc;
	*v = d ? d->def : 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(p[i].name, name) == 0)
			*v = p[i].value;
	free(p);
	return CM_OK;
}

static int q_indexer(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__IndexerInfo **out)
{
	lg_indexer ix;
	lg_account a;
	Muri__V1__IndexerInfo *m;
	int rc = lg_store_indexer_get(s, pk, &ix);
	if (rc != CM_OK)
		return rc;
	rc = lg_store_account_get(s, pk, &a);
	if (rc == CM_ERR_NOTFOUND)
		a.staked = 0;
	else if (rc != CM_OK)
		return rc;
	int64_t overhead;
	uint64_t used;
	if ((rc = param_of(s, "record_overhead", &overhead)) != CM_OK ||
	    (rc = lg_fill_used_of(s, (uint64_t)overhead, pk, &used)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__indexer_info__init(m);
	m->capacity_bytes = ix.capacity;
	m->used_bytes = used;
	m->fill_permille = lg_fill_permille(used, ix.capacity);
	m->stake = a.staked;
	m->failures = ix.failures > UINT32_MAX ? UINT32_MAX : (uint32_t)ix.failures;
	m->active = ix.active;
	m->jailed = ix.jailed;
	if (lg_query_dup_bytes(&m->pubkey, pk, CM_PK_BYTES) != CM_OK || lg_query_dup_str(&m->address, ix.address) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

/* The split fields of a FragmentConfig (a fragment with no cell row leaves
 * them unset, so its encoding is as before splits existed). */
static int fill_cell(lg_store *s, const lg_fragment *f, Muri__V1__FragmentConfig *c)
{
	lg_cell cell;
	int rc = lg_store_cell_get(s, f->magu, f->fragment, &cell);
	if (rc == CM_ERR_NOTFOUND)
		return CM_OK;
	if (rc != CM_OK)
		return rc;
	c->phase = (Muri__V1__FragmentPhase)cell.state;
	if (cell.depth) {
		c->cell_base = cell.base;
		c->cell_depth = cell.depth;
		c->cell_path = cell.path;
	}
	if (cell.nchildren) {
		if (!(c->children = pb_array(cell.nchildren, sizeof(*c->children))))
			return CM_ERR_NOMEM;
		memcpy(c->children, cell.children, cell.nchildren * sizeof(*c->children));
		c->n_children = cell.nchildren;
	}
	if (cell.has_parent) {
		Muri__V1__FragmentSource *src = malloc(sizeof(*src));
		if (!src)
			return CM_ERR_NOMEM;
		muri__v1__fragment_source__init(src);
		c->source = src;
		c->live = cell.derived;
		src->fragment = cell.parent;
		src->size = cell.src_size;
		if (lg_query_dup_bytes(&src->root, cell.src_root, LG_ROOT_BYTES) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
}

/* Fills one FragmentConfig, with each replica's address. */
int lg_query_fill_config(lg_store *s, const lg_fragment *f, Muri__V1__FragmentConfig **out)
{
	Muri__V1__FragmentConfig *c = malloc(sizeof(*c));
	int rc = CM_ERR_NOMEM;
	if (!c)
		return CM_ERR_NOMEM;
	muri__v1__fragment_config__init(c);
	*out = c;
	c->fragment = f->fragment;
	c->epoch = f->epoch;
	if (lg_query_dup_str(&c->magu, f->magu) != CM_OK || lg_query_dup_bytes(&c->primary, f->primary, LG_KEY_BYTES) != CM_OK ||
	    !(c->replicas = pb_array(f->nreplicas, sizeof(*c->replicas))))
		return CM_ERR_NOMEM;
	c->n_replicas = f->nreplicas;
	for (uint32_t i = 0; i < f->nreplicas; i++) {
		Muri__V1__Replica *r = malloc(sizeof(*r));
		lg_indexer ix;
		if (!r)
			return CM_ERR_NOMEM;
		muri__v1__replica__init(r);
		c->replicas[i] = r;
		if ((rc = lg_store_indexer_get(s, f->replicas[i], &ix)) != CM_OK)
			return rc == CM_ERR_NOTFOUND ? CM_ERR_INTERNAL : rc;
		if (lg_query_dup_bytes(&r->pubkey, f->replicas[i], LG_KEY_BYTES) != CM_OK ||
		    lg_query_dup_str(&r->address, ix.address) != CM_OK)
			return CM_ERR_NOMEM;
	}
	lg_handover *h = NULL;
	size_t nh = 0;
	if ((rc = lg_store_handovers(s, f->magu, f->fragment, &h, &nh)) != CM_OK)
		return rc;
	if (nh && !(c->leaving = pb_array(nh, sizeof(*c->leaving)))) {
		free(h);
		return CM_ERR_NOMEM;
	}
	for (size_t i = 0; i < nh; i++) {
		if (lg_query_dup_bytes(&c->leaving[i], h[i].leaver, LG_KEY_BYTES) != CM_OK) {
			free(h);
			return CM_ERR_NOMEM;
		}
		c->n_leaving = i + 1;
	}
	free(h);
	return fill_cell(s, f, c);
}

static int fill_magu(lg_store *s, const lg_magu *g, Muri__V1__MaguInfo *m)
{
	lg_slot *slots = NULL;
	lg_fragment *fr = NULL;
	size_t ns, nf, nmem = 0, ncommitted = 0;
	int rc;

	m->dimension = g->dimension;
	m->metric = (Muri__V1__Metric)g->metric;
	m->fragments = g->fragments;
	m->replication = g->replication;
	m->deposit = g->deposit;
	m->created_height = g->created_height;
	if (lg_query_dup_str(&m->name, g->name) != CM_OK || lg_query_dup_bytes(&m->owner, g->owner, LG_KEY_BYTES) != CM_OK)
		return CM_ERR_NOMEM;
	if (g->index_spec_len &&
	    !(m->index = muri__v1__index_spec__unpack(NULL, g->index_spec_len, g->index_spec)))
		return CM_ERR_INTERNAL;
	if ((rc = lg_store_slots_of_magu(s, g->name, &slots, &ns)) != CM_OK ||
	    (rc = lg_store_fragments_of(s, g->name, &fr, &nf)) != CM_OK)
		goto out;
	rc = CM_ERR_NOMEM;
	if (!(m->members = pb_array(ns, sizeof(*m->members))) ||
	    !(m->configs = pb_array(nf, sizeof(*m->configs))) ||
	    !(m->committed_roots = pb_array(nf, sizeof(*m->committed_roots))))
		goto out;
	for (size_t i = 0; i < ns; i++) {
		if (!slots[i].filled)
			continue;
		if (lg_query_dup_bytes(&m->members[nmem], slots[i].holder, LG_KEY_BYTES) != CM_OK)
			goto out;
		m->n_members = ++nmem;
	}
	for (size_t i = 0; i < nf; i++) {
		m->n_configs = i + 1;
		if ((rc = lg_query_fill_config(s, &fr[i], &m->configs[i])) != CM_OK)
			goto out;
		if (!fr[i].committed_size)
			continue;
		Muri__V1__SignedRoot *r = malloc(sizeof(*r));
		rc = CM_ERR_NOMEM;
		if (!r)
			goto out;
		muri__v1__signed_root__init(r);
		m->committed_roots[ncommitted] = r;
		m->n_committed_roots = ++ncommitted;
		r->fragment = fr[i].fragment;
		r->size = fr[i].committed_size;
		if (lg_query_dup_str(&r->magu, g->name) != CM_OK ||
		    lg_query_dup_bytes(&r->root, fr[i].committed_root, LG_ROOT_BYTES) != CM_OK)
			goto out;
	}
	rc = CM_OK;
out:
	free(slots);
	free(fr);
	return rc;
}

static int q_magu(lg_store *s, const char *name, Muri__V1__MaguInfo **out)
{
	lg_magu g;
	Muri__V1__MaguInfo *m;
	int rc = lg_store_magu_get(s, name, &g);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__magu_info__init(m);
	if ((rc = fill_magu(s, &g, m)) != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

static int q_tx(lg_store *s, const uint8_t hash[CM_HASH_BYTES], Muri__V1__TxStatus **out)
{
	lg_txrec t;
	Muri__V1__TxStatus *m;
	int rc = lg_store_tx_get(s, hash, &t);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__tx_status__init(m);
	m->state = (Muri__V1__TxState)t.state;
	m->height = t.height;
	if (lg_query_dup_bytes(&m->tx_hash, hash, CM_HASH_BYTES) != CM_OK || lg_query_dup_str(&m->message, t.message) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

static int q_params(lg_store *s, Muri__V1__Params **out)
{
	lg_named *p = NULL;
	size_t n;
	Muri__V1__Params *m;
	int rc;

	if ((rc = lg_store_params(s, &p, &n)) != CM_OK)
		return rc;
	/* a parameter with no row (added after the chain began, lg_state.c)
	 * reads as its default */
	lg_named *all = realloc(p, (n + lg_param_count() + 1) * sizeof(*p));
	if (!all) {
		free(p);
		return CM_ERR_NOMEM;
	}
	p = all;
	for (size_t i = 0, n0 = n; i < lg_param_count(); i++) {
		const lg_param_def *d = lg_param_at(i);
		size_t j = 0;
		while (j < n0 && strcmp(p[j].name, d->name) != 0)
			j++;
		if (j == n0) {
			memset(&p[n], 0, sizeof(p[n]));
			snprintf(p[n].name, sizeof(p[n].name), "%s", d->name);
			p[n++].value = d->def;
		}
	}
	if (!(m = malloc(sizeof(*m)))) {
		free(p);
		return CM_ERR_NOMEM;
	}
	muri__v1__params__init(m);
	if (!(m->values = pb_array(n, sizeof(*m->values))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		Muri__V1__Params__ValuesEntry *e = malloc(sizeof(*e));
		if (!e) {
			rc = CM_ERR_NOMEM;
			break;
		}
		muri__v1__params__values_entry__init(e);
		m->values[i] = e;
		m->n_values = i + 1;
		e->value = p[i].value;
		rc = lg_query_dup_str(&e->key, p[i].name);
	}
	free(p);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

static int q_proposal(lg_store *s, uint64_t id, Muri__V1__ProposalInfo **out)
{
	lg_proposal p;
	Muri__V1__ProposalInfo *m;
	int rc = lg_store_proposal_get(s, id, &p);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__proposal_info__init(m);
	m->id = p.id;
	m->value = p.value;
	m->apply_height = p.apply_height;
	m->created_height = p.created_height;
	m->state = (Muri__V1__ProposalState)p.status;
	m->yes_stake = p.yes_stake;
	m->total_stake = p.total_stake;
	if (lg_query_dup_bytes(&m->proposer, p.proposer, LG_KEY_BYTES) != CM_OK || lg_query_dup_str(&m->param, p.param) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}


int lg_query_fill_challenge(const lg_challenge *ch, Muri__V1__Challenge **out)
{
	Muri__V1__Challenge *c = malloc(sizeof(*c));
	if (!c)
		return CM_ERR_NOMEM;
	muri__v1__challenge__init(c);
	*out = c;
	c->id = ch->id;
	c->fragment = ch->fragment;
	c->size = ch->size;
	c->issued_height = ch->issued_height;
	c->deadline_height = ch->deadline;
	c->state = (Muri__V1__ChallengeState)ch->status;
	if (lg_query_dup_str(&c->magu, ch->magu) != CM_OK || lg_query_dup_bytes(&c->indexer, ch->indexer, LG_KEY_BYTES) != CM_OK ||
	    lg_query_dup_bytes(&c->beacon, ch->beacon, CM_HASH_BYTES) != CM_OK ||
	    lg_query_dup_bytes(&c->root, ch->root, LG_ROOT_BYTES) != CM_OK ||
	    !(c->leaf_indices = pb_array(ch->nleaves, sizeof(uint64_t))))
		return CM_ERR_NOMEM;
	memcpy(c->leaf_indices, ch->leaves, ch->nleaves * sizeof(uint64_t));
	c->n_leaf_indices = ch->nleaves;
	return CM_OK;
}

/* ---- snapshots ---- */

/* Opens a read snapshot and reads where it stands into *at (heap). */
static int snap_begin(lg_store *s, Muri__V1__ReadAt **at)
{
	uint8_t root[LG_ROOT_BYTES];
	uint64_t h;
	Muri__V1__ReadAt *a;
	int rc;

	*at = NULL;
	if ((rc = lg_store_read_begin(s)) != CM_OK)
		return rc;
	if ((rc = lg_store_head(s, &h, root)) != CM_OK) {
		lg_store_read_end(s);
		return rc == CM_ERR_NOTFOUND ? CM_ERR_STATE : rc;
	}
	if (!(a = malloc(sizeof(*a)))) {
		lg_store_read_end(s);
		return CM_ERR_NOMEM;
	}
	muri__v1__read_at__init(a);
	a->height = h;
	if (lg_query_dup_bytes(&a->state_root, root, LG_ROOT_BYTES) != CM_OK) {
		pb_free(a);
		lg_store_read_end(s);
		return CM_ERR_NOMEM;
	}
	*at = a;
	return CM_OK;
}

/* Closes the snapshot; on success hands at to *dst, else frees it. */
static int snap_end(lg_store *s, int rc, Muri__V1__ReadAt *at, Muri__V1__ReadAt **dst)
{
	lg_store_read_end(s);
	if (rc == CM_OK && dst)
		*dst = at;
	else
		pb_free(at);
	return rc;
}

int lg_query_read_at(lg_store *s, Muri__V1__ReadAt **out)
{
	Muri__V1__ReadAt *at;
	int rc = snap_begin(s, &at);
	if (rc != CM_OK)
		return rc;
	return snap_end(s, CM_OK, at, out);
}

/* The pattern of every single-row query: snapshot, read, where. */
#define SNAPSHOT_QUERY(call)                              \
	do {                                              \
		Muri__V1__ReadAt *at_;                    \
		int rc_ = snap_begin(s, &at_);            \
		if (rc_ != CM_OK)                         \
			return rc_;                       \
		rc_ = call;                               \
		return snap_end(s, rc_, at_, rc_ == CM_OK ? &(*out)->at : NULL); \
	} while (0)

int lg_query_account(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__Account **out)
{
	SNAPSHOT_QUERY(q_account(s, pk, out));
}

int lg_query_indexer(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__IndexerInfo **out)
{
	SNAPSHOT_QUERY(q_indexer(s, pk, out));
}

int lg_query_magu(lg_store *s, const char *name, Muri__V1__MaguInfo **out)
{
	SNAPSHOT_QUERY(q_magu(s, name, out));
}

int lg_query_tx(lg_store *s, const uint8_t hash[CM_HASH_BYTES], Muri__V1__TxStatus **out)
{
	SNAPSHOT_QUERY(q_tx(s, hash, out));
}

int lg_query_params(lg_store *s, Muri__V1__Params **out)
{
	SNAPSHOT_QUERY(q_params(s, out));
}

int lg_query_proposal(lg_store *s, uint64_t id, Muri__V1__ProposalInfo **out)
{
	SNAPSHOT_QUERY(q_proposal(s, id, out));
}

/* ---- pages ---- */

/* limit 0 means def; above max is CM_ERR_RANGE. */
static int page_limit(uint32_t limit, size_t def, size_t max, size_t *out)
{
	if (limit > max)
		return CM_ERR_RANGE;
	*out = limit ? limit : def;
	return CM_OK;
}

/* A token that is a big-endian 64-bit position; an empty one is `none`. */
static int token_u64(const uint8_t *tok, size_t len, uint64_t none, uint64_t *out)
{
	if (len == 0) {
		*out = none;
		return CM_OK;
	}
	if (len != 8)
		return CM_ERR_INVALID;
	*out = cm_get_be64(tok);
	return CM_OK;
}

static int set_token_u64(ProtobufCBinaryData *b, uint64_t v)
{
	uint8_t t[8];
	cm_put_be64(t, v);
	return lg_query_dup_bytes(b, t, sizeof(t));
}

static int q_magus(lg_store *s, size_t limit, const char *after, Muri__V1__ListMagusResponse **out)
{
	char(*names)[LG_NAME_MAX + 1] = NULL;
	size_t nn, configs = 0;
	Muri__V1__ListMagusResponse *m;
	int rc, more;

	/* one more than asked tells whether a next page exists */
	if ((rc = lg_store_magu_names_after(s, after, limit + 1, &names, &nn)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m)))) {
		free(names);
		return CM_ERR_NOMEM;
	}
	muri__v1__list_magus_response__init(m);
	*out = m;
	more = nn > limit;
	if (more)
		nn = limit;
	if (!(m->magus = pb_array(nn, sizeof(*m->magus))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < nn && rc == CM_OK; i++) {
		Muri__V1__MaguInfo *mi;
		if ((rc = q_magu(s, names[i], &mi)) != CM_OK)
			break;
		/* the page ends early rather than exceed its configuration budget */
		if (m->n_magus && configs + mi->n_configs > LG_QUERY_MAGUS_CONFIGS_MAX) {
			pb_free(mi);
			more = 1;
			break;
		}
		configs += mi->n_configs;
		m->magus[m->n_magus++] = mi;
	}
	if (rc == CM_OK && more && m->n_magus)
		rc = lg_query_dup_bytes(&m->next_page_token, m->magus[m->n_magus - 1]->name,
			      strlen(m->magus[m->n_magus - 1]->name));
	free(names);
	if (rc != CM_OK) {
		pb_free(m);
		*out = NULL;
	}
	return rc;
}

int lg_query_magus_page(lg_store *s, uint32_t limit, const uint8_t *token, size_t token_len,
			Muri__V1__ListMagusResponse **out)
{
	char after[LG_NAME_MAX + 1] = "";
	size_t lim;
	int rc;

	if ((rc = page_limit(limit, LG_QUERY_MAGUS_DEFAULT, LG_QUERY_MAGUS_MAX, &lim)) != CM_OK)
		return rc;
	if (token_len) {
		if (token_len > LG_NAME_MAX)
			return CM_ERR_INVALID;
		memcpy(after, token, token_len);
		after[token_len] = '\0';
		if (!lg_name_valid(after))
			return CM_ERR_INVALID;
	}
	SNAPSHOT_QUERY(q_magus(s, lim, after, out));
}

int lg_query_magus(lg_store *s, size_t max, Muri__V1__ListMagusResponse **out)
{
	return lg_query_magus_page(s, max > LG_QUERY_MAGUS_MAX ? LG_QUERY_MAGUS_MAX : (uint32_t)max, NULL,
				   0, out);
}

static int q_challenges(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only, size_t limit,
			uint64_t before, Muri__V1__ChallengesResponse **out)
{
	lg_challenge *ch = NULL;
	size_t n;
	Muri__V1__ChallengesResponse *m;
	int rc;

	if ((rc = lg_store_challenges_page(s, indexer, open_only, before, limit + 1, &ch, &n)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m)))) {
		free(ch);
		return CM_ERR_NOMEM;
	}
	muri__v1__challenges_response__init(m);
	*out = m;
	if (n > limit) {
		n = limit;
		rc = set_token_u64(&m->next_page_token, ch[n - 1].id);
	}
	if (rc == CM_OK && !(m->challenges = pb_array(n, sizeof(*m->challenges))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		m->n_challenges = i + 1;
		rc = lg_query_fill_challenge(&ch[i], &m->challenges[i]);
	}
	free(ch);
	if (rc != CM_OK) {
		pb_free(m);
		*out = NULL;
	}
	return rc;
}

int lg_query_challenges_page(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only,
			     uint32_t limit, const uint8_t *token, size_t token_len,
			     Muri__V1__ChallengesResponse **out)
{
	size_t lim;
	uint64_t before;
	int rc;

	if ((rc = page_limit(limit, LG_QUERY_CHALLENGES_DEFAULT, LG_QUERY_CHALLENGES_MAX, &lim)) != CM_OK)
		return rc;
	if ((rc = token_u64(token, token_len, UINT64_MAX, &before)) != CM_OK)
		return rc;
	SNAPSHOT_QUERY(q_challenges(s, indexer, open_only, lim, before, out));
}

int lg_query_challenges(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only, size_t max,
			Muri__V1__ChallengesResponse **out)
{
	if (max < 1 || max > LG_QUERY_CHALLENGES_MAX)
		return CM_ERR_RANGE;
	return lg_query_challenges_page(s, indexer, open_only, (uint32_t)max, NULL, 0, out);
}

/* ---- fragments, receipts, earnings, effects ---- */

static int q_fragment(lg_store *s, const char *magu, uint32_t fragment, Muri__V1__FragmentInfo **out)
{
	lg_fragment f;
	Muri__V1__FragmentInfo *m;
	int rc = lg_store_fragment_get(s, magu, fragment, &f);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__fragment_info__init(m);
	m->committed_size = f.committed_size;
	if ((rc = lg_query_fill_config(s, &f, &m->config)) == CM_OK && f.committed_size)
		rc = lg_query_dup_bytes(&m->committed_root, f.committed_root, LG_ROOT_BYTES);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_fragment(lg_store *s, const char *magu, uint32_t fragment, Muri__V1__FragmentInfo **out)
{
	SNAPSHOT_QUERY(q_fragment(s, magu, fragment, out));
}

static int fill_receipt(const lg_receipt *r, Muri__V1__SettledReceipt **out)
{
	Muri__V1__SettledReceipt *m = malloc(sizeof(*m));
	if (!m)
		return CM_ERR_NOMEM;
	muri__v1__settled_receipt__init(m);
	*out = m;
	m->fee = r->fee;
	m->height = r->height;
	if (lg_query_dup_bytes(&m->id, r->id, r->id_len) != CM_OK || lg_query_dup_str(&m->magu, r->magu) != CM_OK ||
	    lg_query_dup_bytes(&m->searcher, r->searcher, LG_KEY_BYTES) != CM_OK ||
	    lg_query_dup_bytes(&m->gateway, r->gateway, LG_KEY_BYTES) != CM_OK ||
	    lg_query_dup_bytes(&m->tx_hash, r->tx_hash, CM_HASH_BYTES) != CM_OK ||
	    !(m->payouts = pb_array(r->npayouts, sizeof(*m->payouts))))
		return CM_ERR_NOMEM;
	for (uint32_t i = 0; i < r->npayouts; i++) {
		Muri__V1__ReceiptPayout *p = malloc(sizeof(*p));
		if (!p)
			return CM_ERR_NOMEM;
		muri__v1__receipt_payout__init(p);
		m->payouts[m->n_payouts++] = p;
		p->amount = r->payouts[i].amount;
		if (lg_query_dup_bytes(&p->node, r->payouts[i].node, LG_KEY_BYTES) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
}

static int q_receipts(lg_store *s, enum lg_receipts_by by, const uint8_t *key, size_t limit,
		      uint64_t before, Muri__V1__ReceiptsResponse **out)
{
	lg_receipt *r = NULL;
	size_t n;
	Muri__V1__ReceiptsResponse *m;
	int rc;

	if ((rc = lg_store_receipts(s, by, key, before, limit + 1, &r, &n)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m)))) {
		free(r);
		return CM_ERR_NOMEM;
	}
	muri__v1__receipts_response__init(m);
	*out = m;
	if (n > limit) {
		n = limit;
		rc = set_token_u64(&m->next_page_token, r[n - 1].seq);
	}
	if (rc == CM_OK && !(m->receipts = pb_array(n, sizeof(*m->receipts))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		m->n_receipts = i + 1;
		rc = fill_receipt(&r[i], &m->receipts[i]);
	}
	free(r);
	if (rc != CM_OK) {
		pb_free(m);
		*out = NULL;
	}
	return rc;
}

int lg_query_receipts(lg_store *s, const Muri__V1__ReceiptsRequest *req,
		      Muri__V1__ReceiptsResponse **out, char *err, size_t errlen)
{
	const ProtobufCBinaryData *keys[3] = {&req->searcher, &req->gateway, &req->node};
	static const char *const names[3] = {"searcher", "gateway", "node"};
	int set = -1;
	size_t lim;
	uint64_t before;

	for (int i = 0; i < 3; i++) {
		if (!keys[i]->len)
			continue;
		if (keys[i]->len != LG_KEY_BYTES) {
			snprintf(err, errlen, "%s: %zu bytes, expected %d", names[i], keys[i]->len, LG_KEY_BYTES);
			return CM_ERR_INVALID;
		}
		if (set >= 0) {
			snprintf(err, errlen, "%s: only one of searcher, gateway or node may be set", names[i]);
			return CM_ERR_INVALID;
		}
		set = i;
	}
	if (set < 0) {
		snprintf(err, errlen, "searcher, gateway or node: one must be set");
		return CM_ERR_INVALID;
	}
	if (page_limit(req->limit, LG_QUERY_RECEIPTS_DEFAULT, LG_QUERY_RECEIPTS_MAX, &lim) != CM_OK) {
		snprintf(err, errlen, "limit: %u, at most %d", req->limit, LG_QUERY_RECEIPTS_MAX);
		return CM_ERR_INVALID;
	}
	if (token_u64(req->page_token.data, req->page_token.len, UINT64_MAX, &before) != CM_OK) {
		snprintf(err, errlen, "page_token: not a token of this query");
		return CM_ERR_INVALID;
	}
	SNAPSHOT_QUERY(q_receipts(s, (enum lg_receipts_by)set, keys[set]->data, lim, before, out));
}

static int q_earnings(lg_store *s, const uint8_t node[CM_PK_BYTES], Muri__V1__Earnings **out)
{
	lg_earnings e;
	Muri__V1__Earnings *m;
	int rc = lg_store_earnings_get(s, node, &e);
	if (rc != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__earnings__init(m);
	m->total_earned = e.total;
	m->receipts = e.receipts;
	if (lg_query_dup_bytes(&m->node, node, CM_PK_BYTES) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

int lg_query_earnings(lg_store *s, const uint8_t node[CM_PK_BYTES], Muri__V1__Earnings **out)
{
	SNAPSHOT_QUERY(q_earnings(s, node, out));
}

int lg_query_effects(lg_store *s, uint64_t height, Muri__V1__BlockEffects **out)
{
	uint8_t *data = NULL;
	size_t len;
	int rc = lg_store_effects_get(s, height, &data, &len);
	if (rc != CM_OK)
		return rc;
	*out = muri__v1__block_effects__unpack(NULL, len, data);
	free(data);
	return *out ? CM_OK : CM_ERR_INTERNAL;
}
