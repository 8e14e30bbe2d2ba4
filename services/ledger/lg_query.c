/* The Ledger service's queries over the store: each fills a protobuf-c
 * message of ledger.proto from the rows of the state. */
#include "lg_state.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

/* ---- queries ---- */

static int pb_bytes(ProtobufCBinaryData *b, const void *p, size_t n)
{
	if (!(b->data = malloc(n ? n : 1)))
		return CM_ERR_NOMEM;
	if (n)
		memcpy(b->data, p, n);
	b->len = n;
	return CM_OK;
}

static int pb_str(char **dst, const char *s)
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

int lg_query_account(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__Account **out)
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
	if (pb_bytes(&m->address, pk, CM_PK_BYTES) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

int lg_query_indexer(lg_store *s, const uint8_t pk[CM_PK_BYTES], Muri__V1__IndexerInfo **out)
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
	if (!(m = malloc(sizeof(*m))))
		return CM_ERR_NOMEM;
	muri__v1__indexer_info__init(m);
	m->capacity_bytes = ix.capacity;
	m->stake = a.staked;
	m->failures = ix.failures > UINT32_MAX ? UINT32_MAX : (uint32_t)ix.failures;
	m->active = ix.active;
	m->jailed = ix.jailed;
	if (pb_bytes(&m->pubkey, pk, CM_PK_BYTES) != CM_OK || pb_str(&m->address, ix.address) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

/* Fills one FragmentConfig, with each replica's address. */
static int fill_config(lg_store *s, const lg_fragment *f, Muri__V1__FragmentConfig **out)
{
	Muri__V1__FragmentConfig *c = malloc(sizeof(*c));
	int rc = CM_ERR_NOMEM;
	if (!c)
		return CM_ERR_NOMEM;
	muri__v1__fragment_config__init(c);
	*out = c;
	c->fragment = f->fragment;
	c->epoch = f->epoch;
	if (pb_str(&c->magu, f->magu) != CM_OK || pb_bytes(&c->primary, f->primary, LG_KEY_BYTES) != CM_OK ||
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
		if (pb_bytes(&r->pubkey, f->replicas[i], LG_KEY_BYTES) != CM_OK ||
		    pb_str(&r->address, ix.address) != CM_OK)
			return CM_ERR_NOMEM;
	}
	return CM_OK;
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
	if (pb_str(&m->name, g->name) != CM_OK || pb_bytes(&m->owner, g->owner, LG_KEY_BYTES) != CM_OK)
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
		if (pb_bytes(&m->members[nmem], slots[i].holder, LG_KEY_BYTES) != CM_OK)
			goto out;
		m->n_members = ++nmem;
	}
	for (size_t i = 0; i < nf; i++) {
		m->n_configs = i + 1;
		if ((rc = fill_config(s, &fr[i], &m->configs[i])) != CM_OK)
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
		if (pb_str(&r->magu, g->name) != CM_OK ||
		    pb_bytes(&r->root, fr[i].committed_root, LG_ROOT_BYTES) != CM_OK)
			goto out;
	}
	rc = CM_OK;
out:
	free(slots);
	free(fr);
	return rc;
}

int lg_query_magu(lg_store *s, const char *name, Muri__V1__MaguInfo **out)
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

int lg_query_magus(lg_store *s, size_t max, Muri__V1__ListMagusResponse **out)
{
	char(*names)[LG_NAME_MAX + 1] = NULL;
	size_t nn;
	Muri__V1__ListMagusResponse *m;
	int rc;

	if ((rc = lg_store_magu_names(s, &names, &nn)) != CM_OK)
		return rc;
	if (max && nn > max)
		nn = max;
	if (!(m = malloc(sizeof(*m)))) {
		free(names);
		return CM_ERR_NOMEM;
	}
	muri__v1__list_magus_response__init(m);
	if (!(m->magus = pb_array(nn, sizeof(*m->magus))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < nn && rc == CM_OK; i++) {
		Muri__V1__MaguInfo *mi;
		m->n_magus = i + 1;
		if ((rc = lg_query_magu(s, names[i], &mi)) == CM_OK)
			m->magus[i] = mi;
	}
	free(names);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_tx(lg_store *s, const uint8_t hash[CM_HASH_BYTES], Muri__V1__TxStatus **out)
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
	if (pb_bytes(&m->tx_hash, hash, CM_HASH_BYTES) != CM_OK || pb_str(&m->message, t.message) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

int lg_query_params(lg_store *s, Muri__V1__Params **out)
{
	lg_named *p = NULL;
	size_t n;
	Muri__V1__Params *m;
	int rc;

	if ((rc = lg_store_params(s, &p, &n)) != CM_OK)
		return rc;
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
		rc = pb_str(&e->key, p[i].name);
	}
	free(p);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_challenges(lg_store *s, const uint8_t indexer[CM_PK_BYTES], int open_only, size_t max,
			Muri__V1__ChallengesResponse **out)
{
	lg_challenge *ch = NULL;
	size_t n;
	Muri__V1__ChallengesResponse *m;
	int rc;

	if (max < 1 || max > 1000)
		return CM_ERR_RANGE;
	if ((rc = lg_store_challenges_of(s, indexer, open_only, max, &ch, &n)) != CM_OK)
		return rc;
	if (!(m = malloc(sizeof(*m)))) {
		free(ch);
		return CM_ERR_NOMEM;
	}
	muri__v1__challenges_response__init(m);
	if (!(m->challenges = pb_array(n, sizeof(*m->challenges))))
		rc = CM_ERR_NOMEM;
	for (size_t i = 0; i < n && rc == CM_OK; i++) {
		Muri__V1__Challenge *c = malloc(sizeof(*c));
		rc = CM_ERR_NOMEM;
		if (!c)
			break;
		muri__v1__challenge__init(c);
		m->challenges[i] = c;
		m->n_challenges = i + 1;
		c->id = ch[i].id;
		c->fragment = ch[i].fragment;
		c->size = ch[i].size;
		c->issued_height = ch[i].issued_height;
		c->deadline_height = ch[i].deadline;
		c->state = (Muri__V1__ChallengeState)ch[i].status;
		if (pb_str(&c->magu, ch[i].magu) != CM_OK ||
		    pb_bytes(&c->indexer, ch[i].indexer, LG_KEY_BYTES) != CM_OK ||
		    pb_bytes(&c->beacon, ch[i].beacon, CM_HASH_BYTES) != CM_OK ||
		    pb_bytes(&c->root, ch[i].root, LG_ROOT_BYTES) != CM_OK ||
		    !(c->leaf_indices = pb_array(ch[i].nleaves, sizeof(uint64_t))))
			break;
		memcpy(c->leaf_indices, ch[i].leaves, ch[i].nleaves * sizeof(uint64_t));
		c->n_leaf_indices = ch[i].nleaves;
		rc = CM_OK;
	}
	free(ch);
	if (rc != CM_OK) {
		pb_free(m);
		return rc;
	}
	*out = m;
	return CM_OK;
}

int lg_query_proposal(lg_store *s, uint64_t id, Muri__V1__ProposalInfo **out)
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
	if (pb_bytes(&m->proposer, p.proposer, LG_KEY_BYTES) != CM_OK || pb_str(&m->param, p.param) != CM_OK) {
		pb_free(m);
		return CM_ERR_NOMEM;
	}
	*out = m;
	return CM_OK;
}

