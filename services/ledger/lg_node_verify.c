/* A ledger replica's signature verifiers: a bounded pool of threads that
 * checks the transactions of a batch in parallel (admission, relays,
 * proposals), so that the consensus thread finds a proposal's transactions
 * already verified. Every check goes through lg_node_check_tx, the memo
 * keyed on the whole signed transaction, so a check made here and one made
 * at vote or commit time reach the same verdict. */
#include "lg_node_int.h"

/* One batch being checked; lives on its caller's stack until done. */
struct vjob {
	struct vjob *next;                  /* in the pool's list, under vmu_pool */
	Muri__V1__SignedTransaction *const *txs;
	uint8_t (*hashes)[CM_HASH_BYTES];
	int *rcs;
	size_t count;
	atomic_size_t take;                 /* next index to check */
	size_t done;                        /* under pool mu */
	int active;                         /* workers inside, under pool mu */
};

struct lg_vpool {
	pthread_mutex_t mu;
	pthread_cond_t work, finished;
	struct vjob *head, *tail;
	pthread_t *threads;
	uint32_t nthreads;
	int stopping;
};

/* Checks entries of j until none is left; returns how many it checked. */
static size_t run_job(lg_node *n, struct vjob *j)
{
	size_t did = 0;
	for (;;) {
		size_t i = atomic_fetch_add(&j->take, 1);
		if (i >= j->count)
			return did;
		j->rcs[i] = lg_node_check_tx(n, j->txs[i], j->hashes[i]);
		did++;
	}
}

static void unlink_job(struct lg_vpool *p, struct vjob *j)
{
	for (struct vjob **q = &p->head; *q; q = &(*q)->next)
		if (*q == j) {
			*q = j->next;
			break;
		}
	p->tail = NULL;
	for (struct vjob *x = p->head; x; x = x->next)
		p->tail = x;
}

static void *verifier_main(void *arg)
{
	lg_node *n = arg;
	struct lg_vpool *p = n->vpool;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stopping)
			break;
		struct vjob *j = p->head;
		j->active++;
		pthread_mutex_unlock(&p->mu);
		size_t did = run_job(n, j);
		pthread_mutex_lock(&p->mu);
		j->active--;
		j->done += did;
		if (p->head == j) /* nothing left to take: let the workers move on */
			unlink_job(p, j);
		pthread_cond_broadcast(&p->finished);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int lg_node_verifiers_start(lg_node *n, uint32_t threads)
{
	struct lg_vpool *p = calloc(1, sizeof(*p));
	if (!p)
		return CM_ERR_NOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	cm_cond_init(&p->finished);
	n->vpool = p;
	if (threads == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		threads = c > 0 ? (uint32_t)c : 1;
	}
	if (threads > LG_NODE_VERIFIERS_MAX)
		threads = LG_NODE_VERIFIERS_MAX;
	p->threads = calloc(threads, sizeof(*p->threads));
	if (!p->threads)
		return CM_ERR_NOMEM;
	for (uint32_t i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, verifier_main, n) != 0)
			return CM_ERR_NOMEM;
		p->nthreads++;
	}
	return CM_OK;
}

void lg_node_verifiers_stop(lg_node *n)
{
	struct lg_vpool *p = n->vpool;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (uint32_t i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->finished);
	free(p->threads);
	free(p);
	n->vpool = NULL;
}

int lg_node_check_txs(lg_node *n, Muri__V1__SignedTransaction *const *txs, size_t count,
		      uint8_t (*hashes)[CM_HASH_BYTES])
{
	struct lg_vpool *p = n->vpool;
	int *rcs = NULL;
	if (p && p->nthreads && count >= 2)
		rcs = malloc(count * sizeof(*rcs));
	if (!rcs) { /* small batch, no pool, or no memory: here, in order */
		int rc = CM_OK;
		for (size_t i = 0; i < count; i++) {
			int r = lg_node_check_tx(n, txs[i], hashes[i]);
			if (r != CM_OK && rc == CM_OK)
				rc = r;
		}
		return rc;
	}
	struct vjob j = {.txs = txs, .hashes = hashes, .rcs = rcs, .count = count};
	atomic_init(&j.take, 0);
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = &j;
	else
		p->head = &j;
	p->tail = &j;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	size_t did = run_job(n, &j); /* the caller checks too */
	pthread_mutex_lock(&p->mu);
	j.done += did;
	unlink_job(p, &j);
	while (j.done < count || j.active > 0)
		cm_cond_wait_ms(&p->finished, &p->mu, 100);
	pthread_mutex_unlock(&p->mu);
	int rc = CM_OK;
	for (size_t i = 0; i < count && rc == CM_OK; i++)
		rc = rcs[i];
	free(rcs);
	return rc;
}

/* Whether a proposal is worth verifying ahead of the consensus thread, on
 * cheap checks only: its proposer leads its view (the core's round robin,
 * view mod n, from the replica count: lg_hs_leader is not thread-safe), the
 * view is neither stale (PREVERIFY_STALE_VIEWS behind ours) nor beyond
 * FUTURE_VIEWS ahead, no proposal of that view was pre-verified yet, and
 * the proposer's signature over the block verifies. Then the view is taken:
 * a peer cannot make this replica verify transactions twice per view. */
static int preverify_worth(lg_node *n, const lg_hs_proposal *p)
{
	const cm_block *pb = &p->block;
	if (pb->proposer >= n->n || pb->proposer != (uint32_t)(pb->view % n->n))
		return 0;
	pthread_mutex_lock(&n->cmu);
	uint64_t cur = n->view;
	pthread_mutex_unlock(&n->cmu);
	if (pb->view + PREVERIFY_STALE_VIEWS < cur || pb->view > cur + FUTURE_VIEWS)
		return 0;
	uint64_t *slot = &n->pv_views[pb->view % PREVERIFY_SLOTS];
	pthread_mutex_lock(&n->pvmu);
	int seen = *slot == pb->view + 1;
	pthread_mutex_unlock(&n->pvmu);
	if (seen)
		return 0;
	cm_block b = *pb;
	uint8_t d[CM_HASH_BYTES];
	cm_block_hash(&b);
	cm_vote_digest(d, n->chain_tag, b.view, b.hash);
	if (cm_verify(n->pks[b.proposer], p->sig, d, sizeof(d)) != CM_OK)
		return 0;
	pthread_mutex_lock(&n->pvmu);
	seen = *slot == pb->view + 1;
	*slot = pb->view + 1;
	pthread_mutex_unlock(&n->pvmu);
	return !seen;
}

void lg_node_preverify(lg_node *n, const uint8_t *msg, size_t len)
{
	lg_hs_msg m;
	if (lg_hs_msg_decode(msg, len, &m) != CM_OK || m.type != LG_HS_MSG_PROPOSAL)
		return;
	if (!preverify_worth(n, &m.u.proposal))
		return; /* the consensus thread checks it in full if it ever votes on it */
	const cm_block *b = &m.u.proposal.block;
	Muri__V1__BlockBody *body = muri__v1__block_body__unpack(NULL, b->payload_len, b->payload);
	if (!body)
		return; /* the consensus thread says why */
	uint8_t(*hashes)[CM_HASH_BYTES] = malloc((body->n_txs ? body->n_txs : 1) * CM_HASH_BYTES);
	if (hashes && body->n_txs)
		lg_node_check_txs(n, body->txs, body->n_txs, hashes);
	free(hashes);
	muri__v1__block_body__free_unpacked(body, NULL);
}
