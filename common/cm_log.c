/* Structured logging: one key=value line per event, written to stderr with a
 * single write(2) so that lines from different threads never interleave.
 * Control characters are escaped (one event stays one line) and a line
 * longer than CM_LOG_LINE_MAX is cut and marked with CM_LOG_TRUNC. */
#include "cm_log.h"
#include "cm_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_FD 2
#define LOG_DEFAULT_SVC "muri"
#define LOG_TS_MAX 32 /* "2026-11-21T06:40:00" and NUL, with room to spare */
#define LOG_ESC_MAX 4 /* the longest escape, "\xHH" */

/* The log level and service name are the process-wide settings STYLE.md
 * allows as globals; the level is atomic so it may also change later. */
static atomic_int log_level = CM_LOG_INFO;
static char log_svc[CM_LOG_SVC_MAX + 1] = LOG_DEFAULT_SVC;

static const char *const level_names[] = {
	[CM_LOG_DEBUG] = "debug",
	[CM_LOG_INFO] = "info",
	[CM_LOG_WARN] = "warn",
	[CM_LOG_ERROR] = "error",
	[CM_LOG_OFF] = "off",
};

/* A line being built: content up to CM_LOG_LINE_MAX - 1 bytes, then '\n'. */
struct log_line {
	char buf[CM_LOG_LINE_MAX];
	size_t len;
	int truncated;
};

void cm_log_set_level(enum cm_log_level level)
{
	if ((int)level < CM_LOG_DEBUG || level > CM_LOG_OFF)
		level = CM_LOG_INFO;
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum cm_log_level cm_log_get_level(void)
{
	return (enum cm_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void cm_log_set_service(const char *svc)
{
	if (!svc || !*svc)
		svc = LOG_DEFAULT_SVC;
	snprintf(log_svc, sizeof(log_svc), "%s", svc);
}

int cm_log_parse_level(const char *s, enum cm_log_level *out)
{
	if (!s)
		return CM_ERR_INVALID;
	for (int l = CM_LOG_DEBUG; l <= CM_LOG_OFF; l++) {
		if (strcasecmp(s, level_names[l]) == 0) {
			*out = (enum cm_log_level)l;
			return CM_OK;
		}
	}
	return CM_ERR_INVALID;
}

/* Appends n bytes verbatim if they all fit before the newline; otherwise
 * marks the line truncated and appends nothing more from then on. */
static void line_put(struct log_line *l, const char *s, size_t n)
{
	if (l->truncated)
		return;
	if (n > CM_LOG_LINE_MAX - 1 - l->len) {
		l->truncated = 1;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

/* Appends s, escaping control characters so the event stays on one line. */
static void line_put_escaped(struct log_line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char esc[LOG_ESC_MAX];

	for (const unsigned char *p = (const unsigned char *)s; *p && !l->truncated; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			line_put(l, (const char *)p, 1);
			continue;
		}
		esc[0] = '\\';
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
			line_put(l, esc, 2);
		} else {
			esc[1] = 'x';
			esc[2] = hex[*p >> 4];
			esc[3] = hex[*p & 15];
			line_put(l, esc, 4);
		}
	}
}

/* Drops a UTF-8 sequence left incomplete at the end of the first len bytes;
 * returns the new length. */
static size_t utf8_cut(const char *buf, size_t len)
{
	size_t start = len, need;
	unsigned char lead;

	while (start > 0 && len - start < 4 && ((unsigned char)buf[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0)
		return len;
	lead = (unsigned char)buf[start - 1];
	if (lead < 0xc0)
		return len; /* ASCII (or stray continuation bytes): nothing to do */
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	return len - (start - 1) < need ? start - 1 : len;
}

/* Cuts the line to leave room for the marker and appends it. */
static void line_mark_truncated(struct log_line *l)
{
	size_t mark = strlen(CM_LOG_TRUNC);

	if (l->len > CM_LOG_LINE_MAX - 1 - mark)
		l->len = CM_LOG_LINE_MAX - 1 - mark;
	l->len = utf8_cut(l->buf, l->len);
	memcpy(l->buf + l->len, CM_LOG_TRUNC, mark);
	l->len += mark;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report a failing stderr */
		}
		p += w;
		n -= (size_t)w;
	}
}

void cm_log(enum cm_log_level level, const char *event, const char *fmt, ...)
{
	struct log_line l;
	char ts[LOG_TS_MAX], head[LOG_TS_MAX + 64];
	char rest[CM_LOG_LINE_MAX];
	struct timespec now;
	struct tm tm;
	int saved_errno = errno, n;
	va_list ap;

	if ((int)level < CM_LOG_DEBUG || level >= CM_LOG_OFF || (int)level < atomic_load_explicit(&log_level, memory_order_relaxed))
		return;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(ts, sizeof(ts), "1970-01-01T00:00:00");

	l.len = 0;
	l.truncated = 0;
	n = snprintf(head, sizeof(head), "ts=%s.%03ldZ level=%s svc=", ts,
		     now.tv_nsec / 1000000, level_names[level]);
	line_put(&l, head, n > 0 ? (size_t)n : 0);
	line_put_escaped(&l, log_svc);
	line_put(&l, " event=", strlen(" event="));
	line_put_escaped(&l, event && *event ? event : "-");

	if (fmt && *fmt) {
		va_start(ap, fmt);
		n = vsnprintf(rest, sizeof(rest), fmt, ap);
		va_end(ap);
		if (n > 0) {
			line_put(&l, " ", 1);
			line_put_escaped(&l, rest);
			if ((size_t)n >= sizeof(rest))
				l.truncated = 1;
		}
	}
	if (l.truncated)
		line_mark_truncated(&l);
	l.buf[l.len++] = '\n';
	write_all(LOG_FD, l.buf, l.len);
	errno = saved_errno;
}
