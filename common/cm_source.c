/* Import sources: local files, and URLs read range by range through
 * libcurl with retries (cm_source.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cm_source.h"

struct cm_src {
	FILE *f;                 /* a local file */
	CURL *curl;              /* a URL */
	char *url;
	int s3;
	char sigv4[128], userpwd[512];
	int64_t size;            /* -1 unknown */
	size_t chunk;            /* bytes per range */
	uint64_t pos;            /* next byte of the stream to fetch */
	char *buf;               /* the current range */
	size_t len, off;
	int eof;
	char err[512];
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	cm_src *s = arg;
	size_t add = sz * n;
	if (s->len + add > s->chunk + 65536) /* a server that ignores Range */
		return 0;
	memcpy(s->buf + s->len, p, add);
	s->len += add;
	return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	cm_src *s = arg;
	size_t len = sz * n;
	char line[256];
	snprintf(line, sizeof(line), "%.*s", (int)(len < 255 ? len : 255), p);
	unsigned long long a, b, total;
	if (!strncasecmp(line, "Content-Range:", 14) && sscanf(line + 14, " bytes %llu-%llu/%llu", &a, &b, &total) == 3)
		s->size = (int64_t)total;
	else if (!strncasecmp(line, "Content-Range:", 14) && sscanf(line + 14, " bytes */%llu", &total) == 1)
		s->size = (int64_t)total;
	return len;
}

/* Fetches the next range into buf; 0, or -1 with err set. */
static int fetch(cm_src *s)
{
	s->len = s->off = 0;
	if (s->size >= 0 && s->pos >= (uint64_t)s->size) {
		s->eof = 1;
		return 0;
	}
	char range[64];
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)s->pos,
		 (unsigned long long)(s->pos + s->chunk - 1));
	long backoff = CM_SRC_BACKOFF_MS;
	for (int attempt = 0;; attempt++) {
		s->len = 0;
		curl_easy_reset(s->curl);
		curl_easy_setopt(s->curl, CURLOPT_URL, s->url);
		curl_easy_setopt(s->curl, CURLOPT_RANGE, range);
		curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
		curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, s);
		curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, 10L);
		curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(s->curl, CURLOPT_LOW_SPEED_TIME, 30L);
		curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
		if (s->s3) {
			curl_easy_setopt(s->curl, CURLOPT_AWS_SIGV4, s->sigv4);
			curl_easy_setopt(s->curl, CURLOPT_USERPWD, s->userpwd);
		}
		CURLcode rc = curl_easy_perform(s->curl);
		long code = 0;
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
		if (rc == CURLE_OK && code == 206) {
			s->pos += s->len;
			if (!s->len)
				s->eof = 1;
			return 0;
		}
		if (rc == CURLE_OK && code == 416) { /* past the end */
			s->eof = 1;
			return 0;
		}
		if (rc == CURLE_OK && code == 200) { /* no ranges: fine if it all fit */
			if (s->pos == 0) {
				s->size = (int64_t)s->len;
				s->pos = s->len;
				return 0;
			}
			snprintf(s->err, sizeof(s->err), "%s: the server ignores Range requests; cannot resume at byte %llu",
				 s->url, (unsigned long long)s->pos);
			return -1;
		}
		if (rc == CURLE_WRITE_ERROR && code == 200) {
			snprintf(s->err, sizeof(s->err), "%s: the server ignores Range requests and the file is over %u MiB (the range size)",
				 s->url, (unsigned)(s->chunk >> 20));
			return -1;
		}
		int retry = rc != CURLE_OK || code == 429 || code >= 500;
		if (rc != CURLE_OK)
			snprintf(s->err, sizeof(s->err), "%s: %s", s->url, curl_easy_strerror(rc));
		else
			snprintf(s->err, sizeof(s->err), "%s: HTTP %ld", s->url, code);
		if (!retry || attempt >= CM_SRC_RETRIES)
			return -1;
		fprintf(stderr, "import: %s; retrying in %ld ms\n", s->err, backoff);
		usleep((useconds_t)backoff * 1000);
		backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
	}
}

int cm_src_open(const char *source, uint64_t offset, size_t chunk, cm_src **out, char *err, size_t errlen)
{
	cm_src *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->size = -1;
	s->chunk = chunk ? chunk : CM_SRC_CHUNK;
	const char *path = !strncmp(source, "file://", 7) ? source + 7 : NULL;
	int http = !strncmp(source, "http://", 7) || !strncmp(source, "https://", 8);
	int s3 = !strncmp(source, "s3://", 5);
	if (!path && !http && !s3) {
		if (strstr(source, "://")) {
			snprintf(err, errlen, "%s: unsupported scheme (a path, file://, http://, https:// or s3://)", source);
			free(s);
			return -1;
		}
		path = source;
	}
	if (path) {
		if (!(s->f = fopen(path, "rb"))) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			free(s);
			return -1;
		}
		if (fseeko(s->f, 0, SEEK_END) == 0)
			s->size = (int64_t)ftello(s->f);
		if (fseeko(s->f, (off_t)offset, SEEK_SET) != 0) {
			snprintf(err, errlen, "%s: cannot seek to %llu", path, (unsigned long long)offset);
			cm_src_close(s);
			return -1;
		}
		*out = s;
		return 0;
	}
	static int curl_ready;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = 1;
	}
	if (s3) { /* s3://bucket/key -> the bucket's endpoint, signed with the environment's keys */
		const char *slash = strchr(source + 5, '/');
		const char *region = getenv("AWS_REGION") ? getenv("AWS_REGION") : "us-east-1";
		const char *endpoint = getenv("MURI_S3_ENDPOINT"), *id = getenv("AWS_ACCESS_KEY_ID"),
			   *secret = getenv("AWS_SECRET_ACCESS_KEY");
		if (!slash || !id || !secret) {
			snprintf(err, errlen, "%s: %s", source,
				 !slash ? "expected s3://BUCKET/KEY" : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
			free(s);
			return -1;
		}
		size_t ulen = strlen(source) + 256 + (endpoint ? strlen(endpoint) : 0);
		s->url = malloc(ulen);
		if (endpoint) /* path style: ENDPOINT/bucket/key */
			snprintf(s->url, ulen, "%s/%.*s%s", endpoint, (int)(slash - source - 5), source + 5, slash);
		else
			snprintf(s->url, ulen, "https://%.*s.s3.%s.amazonaws.com%s", (int)(slash - source - 5), source + 5,
				 region, slash);
		snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", region);
		snprintf(s->userpwd, sizeof(s->userpwd), "%s:%s", id, secret);
		s->s3 = 1;
	} else {
		s->url = strdup(source);
	}
	s->buf = malloc(s->chunk + 65536);
	s->curl = curl_easy_init();
	if (!s->url || !s->buf || !s->curl) {
		cm_src_close(s);
		return -1;
	}
	s->pos = offset;
	if (fetch(s) != 0) {
		snprintf(err, errlen, "%s", s->err);
		cm_src_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

int64_t cm_src_size(const cm_src *s) { return s->size; }
const char *cm_src_error(const cm_src *s) { return s->err; }

ssize_t cm_src_read(cm_src *s, void *buf, size_t n)
{
	if (s->f) {
		size_t got = fread(buf, 1, n, s->f);
		if (got < n && ferror(s->f)) {
			snprintf(s->err, sizeof(s->err), "read error: %s", strerror(errno));
			return -1;
		}
		return (ssize_t)got;
	}
	size_t done = 0;
	while (done < n) {
		if (s->off == s->len) {
			if (s->eof || (s->size >= 0 && s->pos >= (uint64_t)s->size))
				break;
			if (fetch(s) != 0)
				return -1;
			if (!s->len)
				break;
		}
		size_t take = s->len - s->off < n - done ? s->len - s->off : n - done;
		memcpy((char *)buf + done, s->buf + s->off, take);
		s->off += take;
		done += take;
	}
	return (ssize_t)done;
}

ssize_t cm_src_line(cm_src *s, char **line, size_t *cap, size_t *consumed)
{
	size_t n = 0;
	*consumed = 0;
	for (;;) {
		char c;
		ssize_t r = cm_src_read(s, &c, 1);
		if (r < 0)
			return -2;
		if (r == 0)
			break;
		(*consumed)++;
		if (c == '\n')
			break;
		if (n + 2 > *cap) {
			size_t nc = *cap ? *cap * 2 : 4096;
			char *nl = realloc(*line, nc);
			if (!nl)
				return -2;
			*line = nl;
			*cap = nc;
		}
		(*line)[n++] = c;
	}
	if (!*consumed)
		return -1;
	if (!*line && !(*line = malloc(*cap = 16)))
		return -2;
	(*line)[n] = '\0';
	return (ssize_t)n;
}

void cm_src_close(cm_src *s)
{
	if (!s)
		return;
	if (s->f)
		fclose(s->f);
	if (s->curl)
		curl_easy_cleanup(s->curl);
	if (s->userpwd[0])
		memset(s->userpwd, 0, sizeof(s->userpwd));
	free(s->url);
	free(s->buf);
	free(s);
}

void cm_src_name(const char *source, char *out, size_t len)
{
	char tmp[2048];
	snprintf(tmp, sizeof(tmp), "%s", source);
	char *q = strpbrk(tmp, "?#");
	if (q && strstr(tmp, "://"))
		*q = '\0';
	size_t l = strlen(tmp);
	while (l > 1 && tmp[l - 1] == '/')
		tmp[--l] = '\0';
	const char *slash = strrchr(tmp, '/');
	snprintf(out, len, "%s", slash ? slash + 1 : tmp);
}
