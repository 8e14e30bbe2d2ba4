/* Tests of common/cm_log: the exact shape of a line on fd 2, level
 * filtering, level names, escaping, truncation of long lines and whole lines
 * from concurrent threads. fd 2 is redirected to a temporary file. */
#include "tap.h"
#include "cm_log.h"
#include "cm_err.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define CAPTURE_MAX (1024 * 1024)
#define TS_CHARS 24 /* 2026-11-21T06:40:00.123Z */
#define THREADS 4
#define LINES_PER_THREAD 250

static char tmpl[] = "/tmp/muri-test-log-XXXXXX";
static int cap_fd = -1, saved_fd = -1;
static char captured[CAPTURE_MAX];

/* Sends fd 2 to an empty temporary file until capture_end. */
static void capture_begin(void)
{
	fflush(stderr);
	TAP_EQ(ftruncate(cap_fd, 0), 0);
	TAP_EQ(lseek(cap_fd, 0, SEEK_SET), 0);
	saved_fd = dup(2);
	TAP_CHECK(saved_fd >= 0);
	TAP_EQ(dup2(cap_fd, 2), 2);
}

/* Restores fd 2 and returns what was written meanwhile (NUL-terminated). */
static const char *capture_end(size_t *len)
{
	ssize_t n;
	TAP_EQ(dup2(saved_fd, 2), 2);
	close(saved_fd);
	n = pread(cap_fd, captured, sizeof(captured) - 1, 0);
	TAP_CHECK(n >= 0);
	if (n < 0)
		n = 0;
	captured[n] = '\0';
	if (len)
		*len = (size_t)n;
	return captured;
}

static size_t count_char(const char *s, size_t n, char c)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

/* Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " and that the time is close to now. */
static void check_timestamp(const char *line)
{
	const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
	struct tm tm;
	TAP_CHECK(strncmp(line, "ts=", 3) == 0);
	for (size_t i = 0; i < TS_CHARS; i++) {
		char c = line[3 + i];
		if (shape[i] == 'd')
			TAP_CHECK(c >= '0' && c <= '9');
		else
			TAP_EQ(c, shape[i]);
	}
	TAP_EQ(line[3 + TS_CHARS], ' ');
	memset(&tm, 0, sizeof(tm));
	TAP_CHECK(strptime(line + 3, "%Y-%m-%dT%H:%M:%S", &tm) != NULL);
	/* time() reads the kernel's coarse clock, which may still be in the
	 * second before the precise clock the line was stamped from */
	time_t t = timegm(&tm), now = time(NULL);
	TAP_CHECK(t <= now + 1 && now - t <= 5);
}

static void test_line_shape(void)
{
	size_t len;
	cm_log_set_service("indexer");
	cm_log_set_level(CM_LOG_INFO);
	capture_begin();
	cm_info("listening", "port=%d addr=%s", 7001, "127.0.0.1");
	const char *out = capture_end(&len);
	check_timestamp(out);
	TAP_STREQ(out + 3 + TS_CHARS,
		  " level=info svc=indexer event=listening port=7001 addr=127.0.0.1\n");
	TAP_EQ(count_char(out, len, '\n'), 1);

	/* no key=value rest: the line ends after the event */
	capture_begin();
	cm_error("shutdown", "%s", "");
	out = capture_end(&len);
	check_timestamp(out);
	TAP_STREQ(out + 3 + TS_CHARS, " level=error svc=indexer event=shutdown\n");

	/* the service name is kept to CM_LOG_SVC_MAX bytes; NULL restores the default */
	char longsvc[CM_LOG_SVC_MAX + 20];
	memset(longsvc, 's', sizeof(longsvc) - 1);
	longsvc[sizeof(longsvc) - 1] = '\0';
	cm_log_set_service(longsvc);
	capture_begin();
	cm_warn("x", "k=v");
	out = capture_end(&len);
	char want[CM_LOG_SVC_MAX + 64];
	snprintf(want, sizeof(want), " level=warn svc=%.*s event=x k=v\n", CM_LOG_SVC_MAX, longsvc);
	TAP_STREQ(out + 3 + TS_CHARS, want);
	cm_log_set_service(NULL);
	capture_begin();
	cm_warn("x", "k=v");
	out = capture_end(&len);
	TAP_STREQ(out + 3 + TS_CHARS, " level=warn svc=muri event=x k=v\n");
}

static void log_all_levels(void)
{
	cm_debug("e", "n=%d", 0);
	cm_info("e", "n=%d", 1);
	cm_warn("e", "n=%d", 2);
	cm_error("e", "n=%d", 3);
	cm_log(CM_LOG_OFF, "e", "n=%d", 4); /* OFF is not a level to log at */
}

static void test_level_filter(void)
{
	size_t len;
	const char *out;
	cm_log_set_service("t");

	cm_log_set_level(CM_LOG_WARN);
	TAP_EQ(cm_log_get_level(), CM_LOG_WARN);
	capture_begin();
	log_all_levels();
	out = capture_end(&len);
	TAP_EQ(count_char(out, len, '\n'), 2);
	TAP_CHECK(strstr(out, "level=warn svc=t event=e n=2\n") != NULL);
	TAP_CHECK(strstr(out, "level=error svc=t event=e n=3\n") != NULL);
	TAP_CHECK(strstr(out, "level=info") == NULL);
	TAP_CHECK(strstr(out, "level=debug") == NULL);

	cm_log_set_level(CM_LOG_DEBUG);
	capture_begin();
	log_all_levels();
	out = capture_end(&len);
	TAP_EQ(count_char(out, len, '\n'), 4);
	TAP_CHECK(strstr(out, "level=debug svc=t event=e n=0\n") != NULL);
	TAP_CHECK(strstr(out, "n=4") == NULL);

	cm_log_set_level(CM_LOG_OFF);
	capture_begin();
	log_all_levels();
	out = capture_end(&len);
	TAP_EQ(len, 0);
	cm_log_set_level(CM_LOG_INFO);
}

static void test_parse_level(void)
{
	static const struct {
		const char *s;
		enum cm_log_level l;
	} good[] = {
		{"debug", CM_LOG_DEBUG}, {"info", CM_LOG_INFO}, {"warn", CM_LOG_WARN},
		{"error", CM_LOG_ERROR}, {"off", CM_LOG_OFF},   {"WARN", CM_LOG_WARN},
	};
	enum cm_log_level l;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		l = (enum cm_log_level)-1;
		TAP_EQ(cm_log_parse_level(good[i].s, &l), CM_OK);
		TAP_EQ(l, good[i].l);
	}
	const char *bad[] = {"", "verbose", "warning", "info ", "3", NULL};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = CM_LOG_ERROR;
		TAP_EQ(cm_log_parse_level(bad[i], &l), CM_ERR_INVALID);
		TAP_EQ(l, CM_LOG_ERROR); /* untouched on failure */
	}
}

static void test_escaping(void)
{
	size_t len;
	cm_log_set_service("t");
	capture_begin();
	cm_info("bad\nevent", "msg=\"two\nlines\r\" tab=a\tb bell=\a");
	const char *out = capture_end(&len);
	TAP_EQ(count_char(out, len, '\n'), 1);
	TAP_STREQ(out + 3 + TS_CHARS,
		  " level=info svc=t event=bad\\nevent msg=\"two\\nlines\\r\" tab=a\\tb bell=\\x07\n");
}

static void test_long_line_truncated(void)
{
	static char big[3 * CM_LOG_LINE_MAX];
	size_t len, head;
	const char *out;
	cm_log_set_service("t");

	/* measure the fixed part of the line */
	capture_begin();
	cm_info("long", "m=");
	out = capture_end(&len);
	head = len - 1; /* "ts=... event=long m=" */

	/* a line that exactly fits is not marked */
	size_t fill = CM_LOG_LINE_MAX - 1 - head;
	memset(big, 'a', fill);
	big[fill] = '\0';
	capture_begin();
	cm_info("long", "m=%s", big);
	out = capture_end(&len);
	TAP_EQ(len, CM_LOG_LINE_MAX);
	TAP_EQ(out[len - 1], '\n');
	TAP_EQ(count_char(out, len, '\n'), 1);
	TAP_CHECK(strstr(out, CM_LOG_TRUNC) == NULL);

	/* one byte more is cut and marked, still one newline-terminated line */
	memset(big, 'a', fill + 1);
	big[fill + 1] = '\0';
	capture_begin();
	cm_info("long", "m=%s", big);
	out = capture_end(&len);
	TAP_EQ(len, CM_LOG_LINE_MAX);
	TAP_EQ(count_char(out, len, '\n'), 1);
	TAP_STREQ(out + len - strlen(CM_LOG_TRUNC "\n"), CM_LOG_TRUNC "\n");
	TAP_EQ(out[len - strlen(CM_LOG_TRUNC "\n") - 1], 'a');

	/* far longer than any buffer */
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture_begin();
	cm_info("long", "m=%s", big);
	out = capture_end(&len);
	TAP_EQ(len, CM_LOG_LINE_MAX);
	TAP_STREQ(out + len - strlen(CM_LOG_TRUNC "\n"), CM_LOG_TRUNC "\n");
	TAP_CHECK(strncmp(out + head - 2, "m=bbbb", 6) == 0);

	/* the cut never splits a UTF-8 character ("é" is 0xc3 0xa9): one of
	 * the two alignments lands mid-character and loses one more byte */
	size_t lens[2] = {0, 0};
	for (size_t shift = 0; shift < 2; shift++) {
		size_t k = 0;
		for (size_t i = 0; i < shift; i++)
			big[k++] = 'x';
		while (k + 2 < sizeof(big)) {
			big[k++] = (char)0xc3;
			big[k++] = (char)0xa9;
		}
		big[k] = '\0';
		capture_begin();
		cm_info("long", "m=%s", big);
		out = capture_end(&len);
		TAP_EQ(out[len - 1], '\n');
		size_t end = len - strlen(CM_LOG_TRUNC "\n");
		TAP_STREQ(out + end, CM_LOG_TRUNC "\n");
		TAP_EQ((unsigned char)out[end - 1], 0xa9);
		lens[shift] = len;
	}
	TAP_EQ(lens[0] + lens[1], 2 * CM_LOG_LINE_MAX - 1);
}

static void test_errno_preserved(void)
{
	capture_begin();
	errno = ENOSPC;
	cm_error("disk", "err=%s", "full");
	TAP_EQ(errno, ENOSPC);
	capture_end(NULL);
}

static void *log_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	char pad[512];
	for (int i = 0; i < LINES_PER_THREAD; i++) {
		size_t n = (size_t)(i * 7 + id * 13) % (sizeof(pad) - 1);
		memset(pad, 'a' + id, n);
		pad[n] = '\0';
		cm_info("tick", "thread=%d i=%d pad=%s end=1", id, i, pad);
	}
	return NULL;
}

static void test_threads_never_interleave(void)
{
	pthread_t th[THREADS];
	size_t len;
	int seen[THREADS] = {0};

	capture_begin();
	for (int i = 0; i < THREADS; i++)
		TAP_EQ(pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	char *out = (char *)capture_end(&len);
	TAP_EQ(count_char(out, len, '\n'), THREADS * LINES_PER_THREAD);

	/* each line is whole: its own thread's padding, then its own ending */
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int id = -1, i = -1, off = 0;
		const char *p = strstr(line, "event=tick thread=");
		TAP_CHECK(p != NULL);
		if (!p)
			continue;
		TAP_EQ(sscanf(p, "event=tick thread=%d i=%d pad=%n", &id, &i, &off), 2);
		TAP_CHECK(id >= 0 && id < THREADS && off > 0);
		if (id < 0 || id >= THREADS || off <= 0)
			continue;
		p += off;
		size_t n = strspn(p, (char[]){(char)('a' + id), '\0'});
		TAP_EQ(n, (size_t)(i * 7 + id * 13) % 511);
		TAP_STREQ(p + n, " end=1");
		seen[id]++;
	}
	for (int i = 0; i < THREADS; i++)
		TAP_EQ(seen[i], LINES_PER_THREAD);
}

int main(void)
{
	cap_fd = mkstemp(tmpl);
	if (cap_fd < 0)
		return 1;
	unlink(tmpl);
	TAP_RUN(test_line_shape);
	TAP_RUN(test_level_filter);
	TAP_RUN(test_parse_level);
	TAP_RUN(test_escaping);
	TAP_RUN(test_long_line_truncated);
	TAP_RUN(test_errno_preserved);
	TAP_RUN(test_threads_never_interleave);
	close(cap_fd);
	return tap_done();
}
