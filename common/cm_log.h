/* Logging: one line per event to stderr, as key=value pairs:
 *   ts=2026-11-21T06:40:00.123Z level=info svc=indexer event=listening port=7001
 * Libraries do not log; the RPC boundary and main() do, once, with context. */
#ifndef CM_LOG_H
#define CM_LOG_H

/* Longest line written, newline included (at most PIPE_BUF, so a line sent
 * to a pipe arrives whole); a longer event is cut and ends in CM_LOG_TRUNC. */
#define CM_LOG_LINE_MAX 4096
#define CM_LOG_TRUNC " truncated=true"
/* Longest service name kept by cm_log_set_service, NUL excluded. */
#define CM_LOG_SVC_MAX 63

enum cm_log_level {
	CM_LOG_DEBUG = 0,
	CM_LOG_INFO = 1,
	CM_LOG_WARN = 2,
	CM_LOG_ERROR = 3,
	CM_LOG_OFF = 4,
};

/* Process-wide settings, made once in main() before threads start. */
void cm_log_set_level(enum cm_log_level level);
void cm_log_set_service(const char *svc);
enum cm_log_level cm_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; CM_ERR_INVALID otherwise. */
int cm_log_parse_level(const char *s, enum cm_log_level *out);

/* Writes one line: ts, level, svc, event, then the printf-formatted rest,
 * which the caller writes as key=value pairs (quote values with spaces).
 * The line is written with one write(2), so lines from threads never mix. */
void cm_log(enum cm_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define cm_debug(event, ...) cm_log(CM_LOG_DEBUG, event, __VA_ARGS__)
#define cm_info(event, ...) cm_log(CM_LOG_INFO, event, __VA_ARGS__)
#define cm_warn(event, ...) cm_log(CM_LOG_WARN, event, __VA_ARGS__)
#define cm_error(event, ...) cm_log(CM_LOG_ERROR, event, __VA_ARGS__)

#endif
