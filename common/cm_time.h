/* Clocks and timed waits. Durations and deadlines use the monotonic clock
 * (a wall-clock step never shortens or stretches a wait); the wall clock is
 * for timestamps that leave the process. */
#ifndef CM_TIME_H
#define CM_TIME_H

#include <pthread.h>
#include <stdint.h>

/* Milliseconds (and microseconds) on the monotonic clock; milliseconds on
 * the wall clock. */
uint64_t cm_now_ms(void);
uint64_t cm_now_us(void);
uint64_t cm_wall_ms(void);
/* Sleeps ms milliseconds (a signal may cut it short). */
void cm_sleep_ms(uint64_t ms);

/* Initializes cv so that cm_cond_wait_ms measures on the monotonic clock;
 * 0 on success. */
int cm_cond_init(pthread_cond_t *cv);
/* Waits on cv (mu held) for at most ms milliseconds, measured on the
 * monotonic clock; cv must come from cm_cond_init. Returns as
 * pthread_cond_timedwait does (0 or ETIMEDOUT). */
int cm_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);
/* Locks mu if it comes free within ms milliseconds (monotonic clock);
 * 0 when locked, else ETIMEDOUT or another pthread error. */
int cm_mutex_lock_ms(pthread_mutex_t *mu, uint64_t ms);

#endif
