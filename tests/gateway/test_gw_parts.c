/* The gateway's small parts: the fan-out pool runs every task once, in
 * parallel, within its bound; ids go to fragments by the rule the proto
 * states; names, levels, vectors, timeouts and id lists are refused naming
 * the field; versions only grow; the split map follows a fragment's
 * configurations through a split (routing, search plan, kept hits). */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_uuid.h"
#include "gw.h"
#include "cm_cell.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

static atomic_int runs[1000];
static atomic_int in_flight, most;

static void task(void *arg, size_t i)
{
	(void)arg;
	int now = atomic_fetch_add(&in_flight, 1) + 1;
	for (int m = atomic_load(&most); now > m && !atomic_compare_exchange_weak(&most, &m, now);)
		;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 2000000};
	nanosleep(&ts, NULL);
	atomic_fetch_add(&runs[i], 1);
	atomic_fetch_sub(&in_flight, 1);
}

static void test_pool_runs_each_task_once_in_parallel(void)
{
	gw_pool *p = NULL;
	TAP_EQ(gw_pool_new(8, 2000, &p), CM_OK);
	TAP_EQ(gw_pool_run(p, 1000, task, NULL), CM_OK);
	for (int i = 0; i < 1000; i++)
		TAP_EQ(atomic_load(&runs[i]), 1);
	/* 8 pool threads and the caller */
	TAP_CHECK(atomic_load(&most) > 1 && atomic_load(&most) <= 9);
	TAP_EQ(gw_pool_run(p, 0, task, NULL), CM_OK);
	TAP_EQ(gw_pool_run(p, 1, task, NULL), CM_OK);
	TAP_EQ(atomic_load(&runs[0]), 2);
	gw_pool_free(p);
}

static void test_pool_refuses_beyond_its_bound(void)
{
	gw_pool *p = NULL;
	memset(runs, 0, sizeof(runs));
	TAP_EQ(gw_pool_new(2, 10, &p), CM_OK);
	TAP_EQ(gw_pool_run(p, 12, task, NULL), CM_ERR_TOOBIG); /* 11 would queue */
	for (int i = 0; i < 12; i++)
		TAP_EQ(atomic_load(&runs[i]), 0);
	TAP_EQ(gw_pool_run(p, 11, task, NULL), CM_OK);
	gw_pool_free(p);
}

struct many {
	gw_pool *p;
	atomic_int done;
};

static void *runner(void *arg)
{
	struct many *m = arg;
	for (int k = 0; k < 20; k++)
		if (gw_pool_run(m->p, 5, task, NULL) == CM_OK)
			atomic_fetch_add(&m->done, 1);
	return NULL;
}

static void test_pool_serves_concurrent_requests(void)
{
	struct many m = {0};
	TAP_EQ(gw_pool_new(4, 1000, &m.p), CM_OK);
	pthread_t th[6];
	for (int i = 0; i < 6; i++)
		pthread_create(&th[i], NULL, runner, &m);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	TAP_EQ(atomic_load(&m.done), 120);
	gw_pool_free(m.p);
}

static void test_route_is_the_documented_rule(void)
{
	uint8_t id[16];
	memset(id, 0, sizeof(id));
	id[7] = 5;
	TAP_EQ(gw_route_id(id, 3), 2);
	id[0] = 1; /* 2^56 + 5 */
	TAP_EQ(gw_route_id(id, 1000), (uint32_t)(((UINT64_C(1) << 56) + 5) % 1000));
	TAP_EQ(gw_route_id(id, 1), 0);
	/* random ids spread over the fragments */
	unsigned count[4] = {0};
	for (int i = 0; i < 4000; i++) {
		cm_uuid u;
		cm_uuid_v4(&u);
		count[gw_route_id(u.b, 4)]++;
	}
	for (int f = 0; f < 4; f++)
		TAP_CHECK(count[f] > 800 && count[f] < 1200);
}

static void test_checks_name_the_field(void)
{
	char err[GW_ERR_MAX];
	TAP_EQ(gw_valid_name("a-b_c.9", "name", err, sizeof(err)), CM_OK);
	TAP_EQ(gw_valid_name("", "name", err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strncmp(err, "name: 0 bytes", 13) == 0);
	TAP_EQ(gw_valid_name("a/b", "collection", err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strncmp(err, "collection: byte 1", 18) == 0);
	char longname[GW_NAME_MAX + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	TAP_EQ(gw_valid_name(longname, "name", err, sizeof(err)), CM_ERR_INVALID);
	longname[GW_NAME_MAX] = 0;
	TAP_EQ(gw_valid_name(longname, "name", err, sizeof(err)), CM_OK);
	TAP_EQ(gw_valid_level(3, "consistency_level", err, sizeof(err)), CM_OK);
	TAP_EQ(gw_valid_level(4, "consistency_level", err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "consistency_level: unknown") == err);
	TAP_EQ(gw_valid_timeout(600000, "timeout_ms", err, sizeof(err)), CM_OK);
	TAP_EQ(gw_valid_timeout(600001, "timeout_ms", err, sizeof(err)), CM_ERR_INVALID);
	float v[3] = {1, 2, 3};
	Muri__V1__Vector vec = MURI__V1__VECTOR__INIT;
	vec.values = v;
	vec.n_values = 3;
	TAP_EQ(gw_valid_vector(&vec, 3, MURI__V1__METRIC__L2, "vectors[0]", err, sizeof(err)), CM_OK);
	TAP_EQ(gw_valid_vector(&vec, 4, MURI__V1__METRIC__L2, "vectors[0]", err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "vectors[0]: 3 values, the collection's dimension is 4");
	v[1] = NAN;
	TAP_EQ(gw_valid_vector(&vec, 3, MURI__V1__METRIC__L2, "query_vector", err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "query_vector: value 1 is not finite (NaN)");
	v[1] = -INFINITY;
	TAP_EQ(gw_valid_vector(&vec, 3, MURI__V1__METRIC__L2, "query_vector", err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "query_vector: value 1 is not finite (infinity)");
	TAP_EQ(gw_valid_vector(NULL, 3, MURI__V1__METRIC__L2, "query_vector", err, sizeof(err)), CM_ERR_INVALID);
	/* HAMMING: dimension / 8 packed bytes, never floats; floats' collections refuse bytes */
	uint8_t code[4] = {0xff, 0, 1, 2};
	Muri__V1__Vector bv = MURI__V1__VECTOR__INIT;
	bv.binary.data = code;
	bv.binary.len = 4;
	TAP_EQ(gw_valid_vector(&bv, 32, MURI__V1__METRIC__HAMMING, "vectors[0]", err, sizeof(err)), CM_OK);
	TAP_EQ(gw_valid_vector(&bv, 40, MURI__V1__METRIC__HAMMING, "vectors[0]", err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "vectors[0].binary: 4 bytes, the collection's dimension is 40 bits (5 bytes)");
	v[1] = 2;
	TAP_EQ(gw_valid_vector(&vec, 24, MURI__V1__METRIC__HAMMING, "query_vector", err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "query_vector.values: 3 floats given") == err);
	TAP_EQ(gw_valid_vector(&bv, 4, MURI__V1__METRIC__L2, "vectors[1]", err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strstr(err, "vectors[1].binary: 4 bytes given, the collection holds float vectors") == err);
}

static void test_id_lists(void)
{
	char err[GW_ERR_MAX];
	uint8_t raw[4][16];
	char a[CM_UUID_CHARS + 1], b[CM_UUID_CHARS + 1];
	cm_uuid u;
	cm_uuid_v4(&u);
	cm_uuid_format(&u, a);
	cm_uuid_v4(&u);
	cm_uuid_format(&u, b);
	char upper[CM_UUID_CHARS + 1];
	for (int i = 0; i <= CM_UUID_CHARS; i++)
		upper[i] = (char)(a[i] >= 'a' && a[i] <= 'f' ? a[i] - 32 : a[i]);
	char *ok[] = {a, b};
	TAP_EQ(gw_parse_ids(ok, 2, raw, err, sizeof(err)), CM_OK);
	char *dup[] = {a, b, upper};
	TAP_EQ(gw_parse_ids(dup, 3, raw, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "ids[2]: repeats ids[0]");
	char *bad[] = {a, "not-a-uuid"};
	TAP_EQ(gw_parse_ids(bad, 2, raw, err, sizeof(err)), CM_ERR_INVALID);
	TAP_STREQ(err, "ids[1]: \"not-a-uuid\" is not a UUIDv4");
}

static void test_versions_grow(void)
{
	static gw_ctx g;
	uint64_t last = 0;
	for (int i = 0; i < 10000; i++) {
		uint64_t v = gw_next_version(&g);
		TAP_CHECK(v > last);
		last = v;
	}
}

/* A fragment configuration of a split (FragmentConfig fields 7-13). */
static void split_cfg(gw_coll *m, uint32_t f, int phase, uint32_t depth, uint64_t path, int kids, int has_src,
		      int live)
{
	Muri__V1__FragmentConfig c = MURI__V1__FRAGMENT_CONFIG__INIT;
	Muri__V1__FragmentSource src = MURI__V1__FRAGMENT_SOURCE__INIT;
	uint32_t children[2] = {1, 2};
	c.fragment = f;
	c.epoch = 1;
	c.phase = (Muri__V1__FragmentPhase)phase;
	c.cell_base = 0;
	c.cell_depth = depth;
	c.cell_path = path;
	c.n_children = kids ? 2 : 0;
	c.children = children;
	src.fragment = 0;
	c.source = has_src ? &src : NULL;
	c.live = live;
	gw_split_set(&m->frags[f], f, &c);
}

static void replan(gw_coll *m)
{
	free(m->map);
	free(m->plan);
	m->map = NULL;
	m->plan = NULL;
	TAP_EQ(gw_split_plan(m), CM_OK);
}

static void test_split_map_follows_the_configs(void)
{
	gw_coll m;
	memset(&m, 0, sizeof(m));
	m.nbase = 1;
	m.nfrag = 3;
	m.frags = calloc(3, sizeof(*m.frags));
	uint8_t id[2][16]; /* an id of each half (split bit 0, 1) */
	for (int got = 0; got != 3;) {
		cm_uuid u;
		cm_uuid_v4(&u);
		int b = (int)(cm_cell_hash(u.b) & 1);
		memcpy(id[b], u.b, 16);
		got |= 1 << b;
	}
	uint32_t f = 99;
	/* unsplit: fragment 0 takes and answers everything */
	split_cfg(&m, 0, CM_PHASE_SERVING, 0, 0, 0, 0, 0);
	replan(&m);
	TAP_EQ(gw_split_route(&m, id[1], &f), CM_OK);
	TAP_EQ(f, 0u);
	TAP_EQ(m.nplan, 1u);
	TAP_CHECK(m.frags[0].ask && !m.frags[1].ask && gw_split_keeps(&m, 0, id[0]));
	TAP_CHECK(strcmp(gw_split_state(&m.frags[0]), "serving") == 0);
	/* sealing: writes wait, reads stay on 0 */
	split_cfg(&m, 0, CM_PHASE_SEALING, 0, 0, 1, 0, 0);
	replan(&m);
	TAP_EQ(gw_split_route(&m, id[0], &f), CM_ERR_UNAVAILABLE);
	TAP_EQ(f, 0u);
	TAP_CHECK(!gw_split_writable(&m.frags[0]) && m.frags[0].ask);
	TAP_CHECK(strcmp(gw_split_state(&m.frags[0]), "sealing") == 0);
	/* split, halves deriving: writes wait for the half, 0 answers for both cells */
	split_cfg(&m, 0, CM_PHASE_SPLIT, 0, 0, 1, 0, 0);
	split_cfg(&m, 1, CM_PHASE_SERVING, 1, 0, 0, 1, 0);
	split_cfg(&m, 2, CM_PHASE_SERVING, 1, 1, 0, 1, 0);
	replan(&m);
	TAP_EQ(gw_split_route(&m, id[1], &f), CM_ERR_UNAVAILABLE);
	TAP_EQ(f, 2u);
	TAP_CHECK(m.frags[0].ask && !m.frags[1].ask && !m.frags[2].ask);
	TAP_EQ(gw_split_reader(&m, id[0]), 0u);
	TAP_CHECK(gw_split_keeps(&m, 0, id[0]) && gw_split_keeps(&m, 0, id[1]));
	TAP_CHECK(strcmp(gw_split_state(&m.frags[1]), "deriving") == 0);
	/* half 1 live: its ids go there, the parent answers only for half 2's cell */
	split_cfg(&m, 1, CM_PHASE_SERVING, 1, 0, 0, 1, 1);
	replan(&m);
	TAP_EQ(gw_split_route(&m, id[0], &f), CM_OK);
	TAP_EQ(f, 1u);
	TAP_EQ(gw_split_route(&m, id[1], &f), CM_ERR_UNAVAILABLE);
	TAP_EQ(gw_split_reader(&m, id[0]), 1u);
	TAP_EQ(gw_split_reader(&m, id[1]), 0u);
	TAP_CHECK(!gw_split_keeps(&m, 0, id[0]) && gw_split_keeps(&m, 0, id[1]));
	TAP_CHECK(gw_split_keeps(&m, 1, id[0]) && !gw_split_keeps(&m, 1, id[1]));
	/* both live, the parent retired: it is asked no more */
	split_cfg(&m, 2, CM_PHASE_SERVING, 1, 1, 0, 1, 1);
	split_cfg(&m, 0, CM_PHASE_RETIRED, 0, 0, 1, 0, 0);
	replan(&m);
	TAP_EQ(gw_split_route(&m, id[1], &f), CM_OK);
	TAP_EQ(f, 2u);
	TAP_CHECK(!m.frags[0].ask && m.frags[1].ask && m.frags[2].ask);
	TAP_CHECK(!gw_split_keeps(&m, 0, id[0]) && !gw_split_keeps(&m, 0, id[1]) && gw_split_keeps(&m, 2, id[1]));
	TAP_CHECK(strcmp(gw_split_state(&m.frags[0]), "retired") == 0);
	free(m.map);
	free(m.plan);
	free(m.frags);
}

int main(void)
{
	cm_crypto_init();
	TAP_RUN(test_pool_runs_each_task_once_in_parallel);
	TAP_RUN(test_pool_refuses_beyond_its_bound);
	TAP_RUN(test_pool_serves_concurrent_requests);
	TAP_RUN(test_route_is_the_documented_rule);
	TAP_RUN(test_checks_name_the_field);
	TAP_RUN(test_id_lists);
	TAP_RUN(test_versions_grow);
	TAP_RUN(test_split_map_follows_the_configs);
	return tap_done();
}
