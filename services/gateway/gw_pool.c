/* The fan-out pool: a fixed set of threads that carry the gateway's calls to
 * indexers (each call blocks its thread in cm_rpc_unary, so the threads
 * bound the calls in flight), and a bounded queue of tasks. A request runs
 * its n calls with gw_pool_run and waits for all of them; every call carries
 * the request's deadline, so the wait is bounded by it. Tasks never submit
 * tasks (no nesting, so no deadlock). */
#include "gw.h"
#include "cm_err.h"

#include <stdlib.h>

struct group {
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t left;              /* tasks not finished; under the pool's mutex */
	pthread_cond_t done;
};

struct task {
	struct group *g;
	size_t i;
};

struct gw_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct task *q;           /* ring */
	size_t cap, head, n;
	int stop;
	int nthreads;
	pthread_t *th;
};

static void *worker(void *arg)
{
	gw_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->n == 0)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->n == 0 && p->stop)
			break;
		struct task t = p->q[p->head];
		p->head = (p->head + 1) % p->cap;
		p->n--;
		pthread_mutex_unlock(&p->mu);
		t.g->fn(t.g->arg, t.i);
		pthread_mutex_lock(&p->mu);
		if (--t.g->left == 0)
			pthread_cond_signal(&t.g->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int gw_pool_new(int threads, size_t max_queued, gw_pool **out)
{
	gw_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return CM_ERR_NOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->cap = max_queued ? max_queued : 1;
	p->q = calloc(p->cap, sizeof(*p->q));
	p->th = calloc((size_t)threads, sizeof(*p->th));
	if (!p->q || !p->th) {
		gw_pool_free(p);
		return CM_ERR_NOMEM;
	}
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&p->th[i], NULL, worker, p) != 0) {
			gw_pool_free(p);
			return CM_ERR_NOMEM;
		}
		p->nthreads++;
	}
	*out = p;
	return CM_OK;
}

void gw_pool_free(gw_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->th[i], NULL);
	free(p->th);
	free(p->q);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int gw_pool_run(gw_pool *p, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
	if (n == 0)
		return CM_OK;
	if (n == 1) { /* the caller's thread carries a lone task */
		fn(arg, 0);
		return CM_OK;
	}
	/* tasks 1..n-1 go to the pool; the caller carries task 0 */
	struct group g = {.fn = fn, .arg = arg, .left = n - 1};
	pthread_cond_init(&g.done, NULL);
	pthread_mutex_lock(&p->mu);
	if (p->n + n - 1 > p->cap) {
		pthread_mutex_unlock(&p->mu);
		pthread_cond_destroy(&g.done);
		return CM_ERR_TOOBIG;
	}
	for (size_t i = 1; i < n; i++) {
		p->q[(p->head + p->n) % p->cap] = (struct task){.g = &g, .i = i};
		p->n++;
	}
	if (n == 2)
		pthread_cond_signal(&p->cv);
	else
		pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	fn(arg, 0);
	pthread_mutex_lock(&p->mu);
	while (g.left > 0)
		pthread_cond_wait(&g.done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	pthread_cond_destroy(&g.done);
	return CM_OK;
}
