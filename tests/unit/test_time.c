/* Tests of common/cm_time's timed waits: a mutex held by another thread is
 * not taken (ETIMEDOUT, after at least the wait asked), a free one is taken
 * at once, one freed during the wait is taken; a condition waited on with
 * no signal times out after at least the wait asked. */
#include "tap.h"
#include "cm_time.h"

#include <errno.h>
#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *hold(void *arg)
{
	uint64_t ms = *(const uint64_t *)arg;
	pthread_mutex_lock(&mu);
	cm_sleep_ms(ms);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void test_mutex_lock_ms(void)
{
	TAP_EQ(cm_mutex_lock_ms(&mu, 50), 0); /* free: taken */
	pthread_mutex_unlock(&mu);

	uint64_t held = 400;
	pthread_t t;
	pthread_create(&t, NULL, hold, &held);
	while (pthread_mutex_trylock(&mu) == 0) { /* until the holder has it */
		pthread_mutex_unlock(&mu);
		cm_sleep_ms(1);
	}
	uint64_t t0 = cm_now_ms();
	TAP_EQ(cm_mutex_lock_ms(&mu, 50), ETIMEDOUT);
	TAP_CHECK(cm_now_ms() - t0 >= 49);
	TAP_EQ(cm_mutex_lock_ms(&mu, 60000), 0); /* freed during the wait */
	pthread_mutex_unlock(&mu);
	pthread_join(t, NULL);
}

static void test_cond_wait_ms(void)
{
	pthread_cond_t cv;
	TAP_EQ(cm_cond_init(&cv), 0);
	pthread_mutex_lock(&mu);
	uint64_t t0 = cm_now_ms();
	TAP_EQ(cm_cond_wait_ms(&cv, &mu, 30), ETIMEDOUT);
	TAP_CHECK(cm_now_ms() - t0 >= 29);
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cv);
}

int main(void)
{
	TAP_RUN(test_mutex_lock_ms);
	TAP_RUN(test_cond_wait_ms);
	return tap_done();
}
