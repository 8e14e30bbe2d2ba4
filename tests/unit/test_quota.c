/* Tests of services/gateway/gw_quota: the token buckets on a fake clock
 * (burst, refill, the wait they name), all-or-nothing admission, calls in
 * flight, the per-request caps, accounts apart, limits changed on a live
 * table, a full table forgetting idle accounts, and many threads on one
 * table (exact counts, and the cost of an admission). */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "gw_quota.h"

#include <pthread.h>
#include <time.h>

static void key_of(uint8_t key[GW_QUOTA_KEY_BYTES], unsigned n)
{
	memset(key, 0, GW_QUOTA_KEY_BYTES);
	key[0] = GW_QUOTA_ACCOUNT;
	memcpy(key + 1, &n, sizeof(n));
}

static int admit(gw_quota *q, unsigned acct, uint64_t now_us, uint64_t vectors, gw_quota_refusal *why)
{
	uint8_t k[GW_QUOTA_KEY_BYTES];
	key_of(k, acct);
	gw_quota_ask ask = {.bytes = 100, .vectors = vectors};
	gw_quota_slot *held = NULL;
	int rc = gw_quota_admit(q, k, now_us, &ask, &held, why);
	if (rc == CM_OK)
		gw_quota_release(q, held);
	return rc;
}

static void test_request_bucket(void)
{
	gw_quota_limits l = {.requests_per_second = 10, .requests_burst = 5};
	gw_quota *q;
	gw_quota_refusal why;
	TAP_EQ(gw_quota_new(&l, 1024, &q), CM_OK);
	for (int i = 0; i < 5; i++)
		TAP_EQ(admit(q, 1, 1000000, 0, &why), CM_OK);
	TAP_EQ(admit(q, 1, 1000000, 0, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_requests_per_second");
	TAP_EQ(why.value, 10);
	TAP_EQ(why.wait_ms, 100); /* one token at 10/s */
	TAP_EQ(admit(q, 1, 1060000, 0, &why), CM_ERR_RANGE);
	TAP_EQ(why.wait_ms, 40);
	TAP_EQ(admit(q, 1, 1100000, 0, &why), CM_OK);
	TAP_EQ(admit(q, 1, 1100000, 0, &why), CM_ERR_RANGE);
	/* another account has its own bucket */
	TAP_EQ(admit(q, 2, 1100000, 0, &why), CM_OK);
	/* a long pause refills to the burst, no more */
	for (int i = 0; i < 5; i++)
		TAP_EQ(admit(q, 1, 100000000, 0, &why), CM_OK);
	TAP_EQ(admit(q, 1, 100000000, 0, &why), CM_ERR_RANGE);
	/* a clock that goes back changes nothing */
	TAP_EQ(admit(q, 1, 50000000, 0, &why), CM_ERR_RANGE);
	gw_quota_free(q);
}

static void test_vector_bucket(void)
{
	gw_quota_limits l = {.requests_per_second = 10, .requests_burst = 2, .vectors_per_second = 100,
			     .vectors_burst = 100};
	gw_quota *q;
	gw_quota_refusal why;
	TAP_EQ(gw_quota_new(&l, 64, &q), CM_OK);
	TAP_EQ(admit(q, 7, 0, 80, &why), CM_OK);
	TAP_EQ(admit(q, 7, 0, 30, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_vectors_per_second");
	TAP_EQ(why.asked, 30);
	TAP_EQ(why.wait_ms, 100); /* 10 more vectors at 100/s */
	/* the refused write took no request token: one is left */
	TAP_EQ(admit(q, 7, 0, 20, &why), CM_OK);
	TAP_EQ(admit(q, 7, 0, 0, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_requests_per_second");
	/* more than the bucket holds never passes, and says so at once */
	TAP_EQ(admit(q, 8, 0, 101, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_vectors_burst");
	TAP_EQ(why.asked, 101);
	TAP_EQ(why.wait_ms, 0);
	TAP_EQ(admit(q, 8, 0, 100, &why), CM_OK);
	gw_quota_free(q);
}

static void test_concurrent(void)
{
	gw_quota_limits l = {.concurrent_calls = 2};
	gw_quota *q;
	gw_quota_refusal why;
	uint8_t k[GW_QUOTA_KEY_BYTES];
	key_of(k, 3);
	gw_quota_ask ask = {0};
	gw_quota_slot *a = NULL, *b = NULL, *c = NULL;
	TAP_EQ(gw_quota_new(&l, 64, &q), CM_OK);
	TAP_EQ(gw_quota_admit(q, k, 0, &ask, &a, &why), CM_OK);
	TAP_EQ(gw_quota_admit(q, k, 0, &ask, &b, &why), CM_OK);
	TAP_EQ(gw_quota_admit(q, k, 0, &ask, &c, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_concurrent_calls");
	TAP_EQ(why.value, 2);
	TAP_CHECK(c == NULL);
	TAP_EQ(admit(q, 4, 0, 0, &why), CM_OK); /* another account is not held up */
	gw_quota_release(q, a);
	TAP_EQ(gw_quota_admit(q, k, 0, &ask, &c, &why), CM_OK);
	gw_quota_release(q, b);
	gw_quota_release(q, c);
	gw_quota_release(q, NULL);
	gw_quota_free(q);
}

static void test_caps(void)
{
	gw_quota_limits l = {.request_bytes = 1000, .top_k_batch = 500};
	gw_quota *q;
	gw_quota_refusal why;
	uint8_t k[GW_QUOTA_KEY_BYTES];
	key_of(k, 5);
	gw_quota_slot *h = NULL;
	TAP_EQ(gw_quota_new(&l, 64, &q), CM_OK);
	gw_quota_ask big = {.bytes = 1001};
	TAP_EQ(gw_quota_admit(q, k, 0, &big, &h, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_request_bytes");
	TAP_EQ(why.asked, 1001);
	TAP_EQ(why.wait_ms, 0);
	gw_quota_ask wide = {.bytes = 10, .queries = 11, .top_k = 50};
	TAP_EQ(gw_quota_admit(q, k, 0, &wide, &h, &why), CM_ERR_RANGE);
	TAP_STREQ(why.limit, "quota_top_k_batch");
	TAP_EQ(why.asked, 550);
	gw_quota_ask huge = {.bytes = 10, .queries = UINT64_MAX, .top_k = 3};
	TAP_EQ(gw_quota_admit(q, k, 0, &huge, &h, &why), CM_ERR_RANGE);
	TAP_EQ(why.asked, UINT64_MAX);
	gw_quota_ask ok = {.bytes = 1000, .queries = 10, .top_k = 50};
	TAP_EQ(gw_quota_admit(q, k, 0, &ok, &h, &why), CM_OK);
	gw_quota_release(q, h);
	gw_quota_free(q);
}

static void test_set_limits(void)
{
	gw_quota_limits l = {.requests_per_second = 100};
	gw_quota *q;
	gw_quota_refusal why;
	TAP_EQ(gw_quota_new(&l, 64, &q), CM_OK);
	for (int i = 0; i < 100; i++)
		TAP_EQ(admit(q, 9, 0, 0, &why), CM_OK);
	TAP_EQ(admit(q, 9, 0, 0, &why), CM_ERR_RANGE);
	/* lowered: the bucket is capped at the new burst and refills slower */
	gw_quota_limits low = {.requests_per_second = 2, .requests_burst = 1};
	gw_quota_set_limits(q, &low);
	TAP_EQ(admit(q, 9, 10000000, 0, &why), CM_OK);
	TAP_EQ(admit(q, 9, 10000000, 0, &why), CM_ERR_RANGE);
	TAP_EQ(why.value, 2);
	TAP_EQ(why.wait_ms, 500);
	/* lifted: no limit at all */
	gw_quota_limits none = {0};
	gw_quota_set_limits(q, &none);
	for (int i = 0; i < 1000; i++)
		TAP_EQ(admit(q, 9, 10000000, 0, &why), CM_OK);
	gw_quota_limits got;
	gw_quota_get_limits(q, &got);
	TAP_EQ(got.requests_per_second, 0);
	gw_quota_free(q);
}

static void test_full_table(void)
{
	gw_quota_limits l = {.requests_per_second = 1, .requests_burst = 1};
	gw_quota *q;
	gw_quota_refusal why;
	enum { CAP = 32, KEYS = 400 };
	gw_quota_slot *held[KEYS] = {0};
	TAP_EQ(gw_quota_new(&l, CAP, &q), CM_OK);
	TAP_EQ(gw_quota_new(&l, GW_QUOTA_STRIPES - 1, &(gw_quota *){NULL}), CM_ERR_INVALID);
	int refused = 0, admitted = 0;
	gw_quota_ask ask = {0};
	for (unsigned i = 0; i < KEYS; i++) {
		uint8_t k[GW_QUOTA_KEY_BYTES];
		key_of(k, 1000 + i);
		int rc = gw_quota_admit(q, k, i, &ask, &held[i], &why);
		if (rc == CM_OK) {
			admitted++;
		} else {
			TAP_EQ(rc, CM_ERR_TOOBIG);
			TAP_STREQ(why.limit, "quota_accounts");
			refused++;
		}
	}
	/* every slot is held by a call in flight: the table is full, and bounded */
	TAP_EQ(admitted, CAP);
	TAP_EQ(refused, KEYS - CAP);
	TAP_EQ(gw_quota_accounts(q), CAP);
	for (unsigned i = 0; i < KEYS; i++)
		gw_quota_release(q, held[i]);
	/* idle accounts are forgotten for new ones */
	for (unsigned i = 0; i < KEYS; i++)
		TAP_EQ(admit(q, 5000 + i, 1000 + i, 0, &why), CM_OK);
	TAP_EQ(gw_quota_accounts(q), CAP);
	gw_quota_free(q);
}

#define THREADS 4
#define PER_THREAD 200000

struct worker {
	gw_quota *q;
	unsigned base;
	int passed;
};

static void *flood_one(void *arg)
{
	struct worker *w = arg;
	gw_quota_refusal why;
	for (int i = 0; i < 1000; i++)
		if (admit(w->q, 42, 5000000, 0, &why) == CM_OK)
			w->passed++;
	return NULL;
}

static void *spread(void *arg)
{
	struct worker *w = arg;
	gw_quota_refusal why;
	for (unsigned i = 0; i < PER_THREAD; i++)
		if (admit(w->q, w->base + (i % 1000), (uint64_t)i * 10, 1, &why) == CM_OK)
			w->passed++;
	return NULL;
}

static void test_threads(void)
{
	/* one account hit by every thread at one instant: exactly its burst passes */
	gw_quota_limits l = {.requests_per_second = 1000, .requests_burst = 1000};
	gw_quota *q;
	TAP_EQ(gw_quota_new(&l, 4096, &q), CM_OK);
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.q = q};
		pthread_create(&t[i], NULL, flood_one, &w[i]);
	}
	int passed = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		passed += w[i].passed;
	}
	TAP_EQ(passed, 1000);
	gw_quota_free(q);

	/* the cost of admit + release from several threads over many accounts */
	gw_quota_limits loose = {.requests_per_second = 1e9, .vectors_per_second = 1e9, .concurrent_calls = 64};
	TAP_EQ(gw_quota_new(&loose, 65536, &q), CM_OK);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.q = q, .base = (unsigned)i * 1000};
		pthread_create(&t[i], NULL, spread, &w[i]);
	}
	passed = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		passed += w[i].passed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	TAP_EQ(passed, THREADS * PER_THREAD);
	TAP_EQ(gw_quota_accounts(q), THREADS * 1000);
	printf("# %d threads: %.0f admissions/s (admit + release, %.2f us each)\n", THREADS,
	       THREADS * PER_THREAD / s, s * 1e6 / (THREADS * PER_THREAD));
	gw_quota_free(q);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_request_bucket);
	TAP_RUN(test_vector_bucket);
	TAP_RUN(test_concurrent);
	TAP_RUN(test_caps);
	TAP_RUN(test_set_limits);
	TAP_RUN(test_full_table);
	TAP_RUN(test_threads);
	return tap_done();
}
