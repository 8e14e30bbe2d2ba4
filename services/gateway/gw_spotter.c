/* Spot checks, the I/O around gw_spot.h: after a merge, a share of the
 * answers (spot_permille) is offered here with the query's digest; one hit
 * below the fragment's committed size is checked on a thread of its own by
 * an InclusionProof against the committed root (asked of the other replicas
 * first, the answerer last; a read signed with the gateway's node key, which
 * the indexers answer when the genesis lists it as a gateway), and an
 * answer proven false, or one whose root
 * the merge found contradicting the committed root, is reported to the
 * ledger as a ReportAnswer transaction signed by the payer account. Nothing
 * here delays a search: offers beyond the bounded queue are dropped and
 * counted. */
#include "gw.h"
#include "cm_answer.h"
#include "cm_err.h"
#include "cm_genesis.h"
#include "cm_log.h"
#include "cm_read_auth.h"
#include "cm_time.h"
#include "gw_spot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
	char magu[GW_NAME_MAX + 1];
	uint32_t fragment;
	uint8_t node[CM_PK_BYTES];
	uint8_t query[CM_HASH_BYTES];
	Muri__V1__LocalSearchResponse *r;  /* owned copy */
	int by_root;
	size_t hit;
	gw_frag fr;                        /* routing and committed root when offered */
};

struct gw_spotter {
	gw_ctx *g;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *q;
	size_t cap, n, head;
	int stop, started;
	pthread_t th;
	atomic_uint_least64_t salt;
	int has_key;
	cm_keypair key;                    /* signs the reads */
	char chain_id[sizeof(((cm_genesis_replicas *)0)->chain_id)];
	cm_counter *checks, *false_answers, *reports, *dropped;
};

static void report(gw_spotter *s, struct job *j, const Muri__V1__InclusionProofResponse *proof)
{
	cm_arena a;
	cm_arena_init(&a, 0);
	Muri__V1__ReportAnswer *ra = NULL;
	char err[GW_ERR_MAX] = "";
	if (gw_spot_evidence(j->magu, j->fragment, j->query, j->r, j->by_root, j->hit, proof, &a, &ra) != CM_OK) {
		cm_arena_free(&a);
		return;
	}
	char node[2 * CM_PK_BYTES + 1];
	cm_hex(node, j->node, CM_PK_BYTES);
	if (!s->g->has_payer) {
		cm_warn("gw_spot_false", "magu=%s fragment=%u node=%s by_root=%d reported=no (no payer_key_file)", j->magu,
			j->fragment, node, j->by_root);
		cm_arena_free(&a);
		return;
	}
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_REPORT_ANSWER;
	t.report_answer = ra;
	cm_ledger_result res;
	int rc = cm_ledger_client_submit(gw_chain_client(s->g->chain), &t, 0, &res, err, sizeof(err));
	if (rc == CM_OK && s->reports)
		cm_counter_add(s->reports, 1);
	cm_warn("gw_spot_false", "magu=%s fragment=%u node=%s by_root=%d reported=%s%s%s", j->magu, j->fragment, node,
		j->by_root, rc == CM_OK ? "yes" : "no", rc == CM_OK ? "" : " error=", rc == CM_OK ? "" : err);
	cm_arena_free(&a);
}

static void check(gw_spotter *s, struct job *j)
{
	if (j->by_root) {
		report(s, j, NULL);
		return;
	}
	if (s->checks)
		cm_counter_add(s->checks, 1);
	Muri__V1__InclusionProofRequest req = MURI__V1__INCLUSION_PROOF_REQUEST__INIT;
	req.magu = j->magu;
	req.fragment = j->fragment;
	req.index = j->r->hits[j->hit]->seq;
	req.size = j->fr.committed_size;
	Muri__V1__ReadAuth auth;
	uint8_t sig[CM_SIG_BYTES];
	/* the other replicas first: a proof from the accused proves nothing against it */
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < j->fr.nrep; i++) {
			if ((memcmp(j->fr.rep[i].pk, j->node, CM_PK_BYTES) == 0) != pass)
				continue;
			cm_rpc_client *cl = gw_clients_get(s->g->clients, j->fr.rep[i].addr, j->fr.rep[i].pk);
			if (!cl)
				continue;
			ProtobufCMessage *resp = NULL;
			cm_rpc_status st;
			/* each ask signed anew: an indexer answers a signed read once */
			if (s->has_key && cm_read_auth_sign(&req.base, &auth, sig, &s->key, "InclusionProof", s->chain_id,
							    cm_wall_ms()) != CM_OK)
				continue;
			if (cm_rpc_unary(cl, "/muri.v1.Indexer/InclusionProof", &req.base,
					 &muri__v1__inclusion_proof_response__descriptor, &resp, 5000, &st) != CM_OK) {
				if (st.code == GRPC_STATUS_PERMISSION_DENIED || st.code == GRPC_STATUS_UNAUTHENTICATED)
					cm_warn("gw_spot_refused", "magu=%s fragment=%u code=%d message=\"%s\"", j->magu,
						j->fragment, st.code, st.message);
				continue;
			}
			const Muri__V1__InclusionProofResponse *p = (const Muri__V1__InclusionProofResponse *)resp;
			const char *why = NULL;
			int v = gw_spot_judge(j->node, j->query, j->magu, j->fragment, j->r, j->hit, p, j->fr.committed_size,
					      j->fr.committed_root, &why);
			if (v == GW_SPOT_FALSE) {
				if (s->false_answers)
					cm_counter_add(s->false_answers, 1);
				report(s, j, p);
			}
			protobuf_c_message_free_unpacked(resp, NULL);
			if (v != GW_SPOT_NO_PROOF)
				return;
		}
}

static void *spot_main(void *arg)
{
	gw_spotter *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && s->n == 0)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop)
			break;
		struct job j = s->q[s->head];
		s->head = (s->head + 1) % s->cap;
		s->n--;
		pthread_mutex_unlock(&s->mu);
		check(s, &j);
		protobuf_c_message_free_unpacked(&j.r->base, NULL);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int gw_spotter_start(gw_ctx *g, const cm_keypair *key, size_t queue_max, gw_spotter **out, char *err,
		     size_t errlen)
{
	cm_genesis_replicas *gen = calloc(1, sizeof(*gen));
	gw_spotter *s = calloc(1, sizeof(*s));
	if (!s || !gen) {
		free(gen);
		free(s);
		snprintf(err, errlen, "cannot start the spot checks: out of memory");
		return CM_ERR_NOMEM;
	}
	int rc = cm_genesis_read_replicas(g->cfg->genesis, gen, err, errlen);
	if (rc != CM_OK) {
		free(gen);
		free(s);
		return rc;
	}
	snprintf(s->chain_id, sizeof(s->chain_id), "%s", gen->chain_id);
	if (key) {
		s->key = *key;
		s->has_key = 1;
		int listed = 0;
		for (uint32_t i = 0; i < gen->ngateways; i++)
			listed |= memcmp(gen->gateways[i], key->pk, CM_PK_BYTES) == 0;
		if (!listed)
			cm_warn("gw_spot_unlisted", "message=\"this gateway's node key is not a gateway of the genesis: "
				"indexers refuse its spot checks' proof reads\"");
	} else {
		cm_warn("gw_spot_no_key", "message=\"no key_file: indexers refuse the spot checks' proof reads\"");
	}
	free(gen);
	s->g = g;
	s->cap = queue_max ? queue_max : 1;
	s->q = calloc(s->cap, sizeof(*s->q));
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (g->metrics) {
		s->checks = cm_metrics_counter(g->metrics, "muri_gateway_spot_checks_total", NULL,
					       "hits checked by an inclusion proof against the committed root");
		s->false_answers = cm_metrics_counter(g->metrics, "muri_gateway_spot_false_total", NULL,
						      "answers a spot check proved false");
		s->reports = cm_metrics_counter(g->metrics, "muri_gateway_reports_total", NULL,
						"ReportAnswer transactions submitted");
		s->dropped = cm_metrics_counter(g->metrics, "muri_gateway_spot_dropped_total", NULL,
						"spot checks dropped: the queue was full");
	}
	if (!s->q || pthread_create(&s->th, NULL, spot_main, s) != 0) {
		gw_spotter_free(s);
		snprintf(err, errlen, "cannot start the spot checks: out of memory");
		return CM_ERR_NOMEM;
	}
	s->started = 1;
	*out = s;
	return CM_OK;
}

void gw_spotter_free(gw_spotter *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = 1;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
	}
	for (size_t i = 0; s->q && i < s->n; i++)
		protobuf_c_message_free_unpacked(&s->q[(s->head + i) % s->cap].r->base, NULL);
	free(s->q);
	cm_keypair_wipe(&s->key);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

void gw_spot_offer(gw_spotter *s, const gw_coll *m, uint32_t fragment, const uint8_t node[CM_PK_BYTES],
		   const Muri__V1__Vector *query, uint32_t k, const Muri__V1__Filter *filter,
		   const Muri__V1__LocalSearchResponse *r, int by_root)
{
	if (!s || !r || fragment >= m->nfrag)
		return;
	const gw_frag *fr = &m->frags[fragment];
	size_t hit = 0;
	if (!by_root && (fr->committed_size == 0 ||
			 !gw_spot_pick(atomic_fetch_add(&s->salt, 1), (uint32_t)s->g->cfg->spot_permille, r,
				       fr->committed_size, &hit)))
		return;
	struct job j;
	memset(&j, 0, sizeof(j));
	if (cm_answer_query_digest_pb(j.query, query, k, filter) != CM_OK)
		return;
	snprintf(j.magu, sizeof(j.magu), "%s", m->name);
	j.fragment = fragment;
	memcpy(j.node, node, CM_PK_BYTES);
	j.by_root = by_root;
	j.hit = hit;
	j.fr = *fr;
	pthread_mutex_lock(&s->mu);
	int room = s->n < s->cap;
	pthread_mutex_unlock(&s->mu);
	if (!room || !(j.r = (Muri__V1__LocalSearchResponse *)cm_pb_dup(&r->base))) {
		if (s->dropped)
			cm_counter_add(s->dropped, 1);
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->n < s->cap) {
		s->q[(s->head + s->n) % s->cap] = j;
		s->n++;
		pthread_cond_signal(&s->cv);
		j.r = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	if (j.r) {
		protobuf_c_message_free_unpacked(&j.r->base, NULL);
		if (s->dropped)
			cm_counter_add(s->dropped, 1);
	}
}
