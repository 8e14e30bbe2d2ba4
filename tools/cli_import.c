/* muri import SOURCE --collection C: rows of an .fvecs, .npy (float32 or
 * uint8, C order) or .jsonl source streamed in batches to the gateway's
 * Upsert, with metadata from a parallel .jsonl file.
 *
 * No duplicates, no loss, across retries and interruptions: row r of a
 * source gets the id cli_row_id(collection, the source's file name, r), so
 * writing a batch again replaces the same records; after each acknowledged
 * batch a resume file records the rows and bytes done (written atomically),
 * and a new run of the same import starts there. A batch that was written
 * but not yet recorded when the import died is written again, harmlessly.
 * The resume file is removed once the import completes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_progress.h"
#include "cli_source.h"
#include "cm_err.h"
#include "cm_time.h"

#define IMP_BATCH_DEFAULT 1000
#define IMP_BATCH_MAX 10000
#define IMP_RETRIES 8

enum { F_FVECS = 1, F_NPY, F_JSONL };

typedef struct imp {
	const char *source, *collection;
	int fmt;
	size_t dim;
	int u8;                  /* npy of uint8 */
	size_t chunk;            /* bytes per range request */
	uint64_t data_off, row_bytes, total;
	cli_src *src, *meta;
	char *line, *mline;
	size_t cap, mcap;
	uint64_t byte, meta_byte; /* stream offsets after the rows done */
	char err[600];
} imp;

static int fmt_of(const char *s)
{
	if (!strcmp(s, "fvecs"))
		return F_FVECS;
	if (!strcmp(s, "npy"))
		return F_NPY;
	if (!strcmp(s, "jsonl"))
		return F_JSONL;
	return -1;
}

static int guess_fmt(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? fmt_of(dot + 1) : -1;
}

/* Dimension and layout from the first bytes: .fvecs's first row length,
 * .npy's header. */
static int read_header(imp *m)
{
	cli_src *s;
	if (cli_src_open(m->source, 0, m->chunk, &s, m->err, sizeof(m->err)) != 0)
		return -1;
	int64_t size = cli_src_size(s);
	int rc = 0;
	if (m->fmt == F_FVECS) {
		int32_t d = 0;
		if (cli_src_read(s, &d, 4) != 4 || d < 1 || d > 65536) {
			snprintf(m->err, sizeof(m->err), "%s: not an .fvecs file (first row's dimension %d)", m->source, d);
			rc = -1;
		} else {
			m->dim = (size_t)d;
			m->row_bytes = 4 + 4 * (uint64_t)d;
			if (size >= 0 && size % (int64_t)m->row_bytes) {
				snprintf(m->err, sizeof(m->err), "%s: not an .fvecs file of %d-d rows (%lld bytes)", m->source,
					 d, (long long)size);
				rc = -1;
			}
			m->total = size > 0 ? (uint64_t)size / m->row_bytes : 0;
		}
	} else {
		unsigned char h[12];
		char hdr[4096];
		if (cli_src_read(s, h, 10) != 10 || memcmp(h, "\x93NUMPY", 6) != 0) {
			snprintf(m->err, sizeof(m->err), "%s: not an .npy file", m->source);
			cli_src_close(s);
			return -1;
		}
		size_t hl = h[8] | (size_t)h[9] << 8, pre = 10;
		if (h[6] >= 2) { /* version 2: a 4-byte header length */
			if (cli_src_read(s, h + 10, 2) != 2) {
				cli_src_close(s);
				return -1;
			}
			hl = h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 | (size_t)h[11] << 24;
			pre = 12;
		}
		if (hl >= sizeof(hdr) || cli_src_read(s, hdr, hl) != (ssize_t)hl) {
			snprintf(m->err, sizeof(m->err), "%s: .npy header too long or cut", m->source);
			cli_src_close(s);
			return -1;
		}
		hdr[hl] = '\0';
		unsigned long long rows = 0, d = 0;
		const char *shape = strstr(hdr, "'shape'");
		m->u8 = strstr(hdr, "'|u1'") != NULL;
		if (!strstr(hdr, "'<f4'") && !m->u8) {
			snprintf(m->err, sizeof(m->err), "%s: .npy dtype must be float32 ('<f4') or uint8 ('|u1')", m->source);
			rc = -1;
		} else if (strstr(hdr, "'fortran_order': True")) {
			snprintf(m->err, sizeof(m->err), "%s: .npy in Fortran order is not supported", m->source);
			rc = -1;
		} else if (!shape || sscanf(shape, "'shape': (%llu, %llu)", &rows, &d) != 2 || !d || d > 65536) {
			snprintf(m->err, sizeof(m->err), "%s: .npy shape must be (rows, dimension)", m->source);
			rc = -1;
		}
		m->dim = (size_t)d;
		m->total = rows;
		m->row_bytes = d * (m->u8 ? 1 : 4);
		m->data_off = pre + hl;
	}
	cli_src_close(s);
	return rc;
}

/* The next row's vector (and its id and metadata for jsonl); 1 a row, 0 the
 * end, -1 an error. */
static int next_row(imp *m, uint64_t row, float *vec, char *id, Muri__V1__Metadata **meta)
{
	*meta = NULL;
	id[0] = '\0';
	if (m->fmt == F_JSONL) {
		size_t used;
		ssize_t n;
		do {
			n = cli_src_line(m->src, &m->line, &m->cap, &used);
			if (n >= 0)
				m->byte += used;
		} while (n == 0); /* blank lines */
		if (n == -1)
			return 0;
		if (n < 0) {
			snprintf(m->err, sizeof(m->err), "%s", cli_src_error(m->src));
			return -1;
		}
		char e[300];
		cli_json *j = cli_json_parse(m->line, e, sizeof(e));
		const cli_json *v = j && j->type == CJ_OBJ ? cli_json_get(j, "vector") : j;
		float *f = NULL;
		size_t d = 0;
		int rc = j && cli_json_floats(v, &f, &d, e, sizeof(e)) == 0 ? 0 : -1;
		if (!rc && m->dim && d != m->dim) {
			snprintf(e, sizeof(e), "%zu values, earlier rows had %zu", d, m->dim);
			rc = -1;
		}
		const cli_json *ij = cli_json_get(j, "id"), *mj = cli_json_get(j, "metadata");
		if (!rc && ij && ij->type == CJ_STR)
			snprintf(id, 37, "%s", ij->str);
		if (!rc && mj && !(*meta = cli_metadata(mj, e, sizeof(e))))
			rc = -1;
		if (rc)
			snprintf(m->err, sizeof(m->err), "%s: row %llu: %s", m->source, (unsigned long long)row + 1, e);
		else {
			m->dim = d;
			memcpy(vec, f, d * sizeof(float));
		}
		free(f);
		cli_json_free(j);
		return rc ? -1 : 1;
	}
	if (m->total && row >= m->total)
		return 0;
	unsigned char *buf = (unsigned char *)vec; /* rows are read in place, then widened */
	size_t want = m->fmt == F_FVECS ? 4 + m->dim * 4 : m->row_bytes;
	unsigned char tmp[4];
	if (m->fmt == F_FVECS) {
		ssize_t r = cli_src_read(m->src, tmp, 4);
		if (r == 0)
			return 0;
		int32_t d;
		memcpy(&d, tmp, 4);
		if (r != 4 || (size_t)d != m->dim) {
			snprintf(m->err, sizeof(m->err), "%s: row %llu: dimension %d, the first row's is %zu", m->source,
				 (unsigned long long)row + 1, r == 4 ? d : -1, m->dim);
			return -1;
		}
		want -= 4;
	}
	ssize_t r = cli_src_read(m->src, buf, want);
	if (r == 0 && m->fmt == F_NPY)
		return 0;
	if (r != (ssize_t)want) {
		snprintf(m->err, sizeof(m->err), "%s: row %llu: %s", m->source, (unsigned long long)row + 1,
			 r < 0 ? cli_src_error(m->src) : "the file ends inside the row");
		return -1;
	}
	if (m->u8)
		for (size_t k = m->dim; k-- > 0;)
			vec[k] = (float)buf[k];
	for (size_t k = 0; k < m->dim; k++)
		if (!isfinite(vec[k])) {
			snprintf(m->err, sizeof(m->err), "%s: row %llu: value %zu is not finite", m->source,
				 (unsigned long long)row + 1, k);
			return -1;
		}
	m->byte += (m->fmt == F_FVECS ? 4 : 0) + want;
	if (m->meta) {
		size_t used;
		ssize_t n = cli_src_line(m->meta, &m->mline, &m->mcap, &used);
		if (n < 0) {
			snprintf(m->err, sizeof(m->err), "metadata: %s", n == -1 ? "fewer lines than rows" : cli_src_error(m->meta));
			return -1;
		}
		m->meta_byte += used;
		char e[300];
		cli_json *j = cli_json_parse(m->mline, e, sizeof(e));
		if (!j || !(*meta = cli_metadata(j, e, sizeof(e)))) {
			snprintf(m->err, sizeof(m->err), "metadata line %llu: %s", (unsigned long long)row + 1, e);
			cli_json_free(j);
			return -1;
		}
		cli_json_free(j);
	}
	return 1;
}

static int save_resume(const char *path, uint64_t rows, uint64_t byte, uint64_t meta_byte)
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "rows=%llu\nbyte=%llu\nmeta_byte=%llu\n", (unsigned long long)rows, (unsigned long long)byte,
		(unsigned long long)meta_byte);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return rename(tmp, path);
}

/* Upsert with retries: 0 written, CLI_FAIL after printing why. */
static int write_batch(const cli_conn *c, cm_rpc_client *gw, Muri__V1__UpsertRequest *u, long retries)
{
	long backoff = 200;
	for (long attempt = 0;; attempt++) {
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		int to = c->timeout_ms > 0 ? (int)c->timeout_ms : 60000;
		u->timeout_ms = (uint32_t)to;
		int rc = cm_rpc_unary(gw, "/muri.v1.VectorStore/Upsert", &u->base, &muri__v1__write_response__descriptor,
				      &resp, to + 5000, &st);
		char why[700];
		if (rc == CM_OK) {
			Muri__V1__WriteResponse *w = (Muri__V1__WriteResponse *)resp;
			int ok = w->status == MURI__V1__WRITE_STATUS__SUCCESS;
			snprintf(why, sizeof(why), "%s", w->message);
			protobuf_c_message_free_unpacked(resp, NULL);
			if (ok)
				return 0;
		} else {
			snprintf(why, sizeof(why), "%s: %s", cm_rpc_code_name(st.code), st.message);
			if (st.code == GRPC_STATUS_INVALID_ARGUMENT || st.code == GRPC_STATUS_NOT_FOUND ||
			    st.code == GRPC_STATUS_PERMISSION_DENIED || st.code == GRPC_STATUS_UNIMPLEMENTED)
				return cli_fail(CLI_FAIL, "import", "%s", why);
		}
		if (attempt >= retries)
			return cli_fail(CLI_FAIL, "import", "a batch failed %ld times: %s", attempt + 1, why);
		fprintf(stderr, "muri import: batch failed (%s); retrying in %ld ms\n", why, backoff);
		usleep((useconds_t)backoff * 1000);
		backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
	}
}

static const char help[] =
	"usage: muri import SOURCE --collection C [--format fvecs|npy|jsonl] [--metadata FILE]\n"
	"                  [--batch N] [--limit N] [--level ONE|QUORUM|ALL] [--resume-file F] [--restart]\n"
	"SOURCE is a path, file://, http(s):// (read in Range requests) or s3://BUCKET/KEY (SigV4 with\n"
	"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; MURI_S3_ENDPOINT for another endpoint).\n"
	"Rows are streamed in batches (default 1000) and upserted with ids derived from the collection,\n"
	"the source's file name and the row number, so an interrupted import run again resumes where it\n"
	"stopped (from the resume file, default D/imports/) with no duplicates and no loss.\n"
	"  --metadata FILE   .jsonl, one JSON object per row (a path or URL)\n"
	"  --format F        fvecs, npy (float32 or uint8) or jsonl ([...] or {\"id\",\"vector\",\"metadata\"})\n"
	"  --limit N         import the first N rows only\n"
	"  --id-namespace S  ids from S instead of the source's file name\n"
	"  --range-bytes N   bytes per HTTP Range request (default 4 MiB)\n"
	"  --retries N       attempts of a failed batch beyond the first (default 8, backoff up to 10 s)\n"
	"  --restart         ignore the resume file\n" CLI_CONN_HELP;

int cli_cmd_import(int argc, char **argv)
{
	cli_conn c = {0};
	const char *collection = NULL, *format = NULL, *metadata = NULL, *level = NULL, *resume = NULL, *ns = NULL;
	long batch = IMP_BATCH_DEFAULT, limit = 0, retries = IMP_RETRIES, range = CLI_SRC_CHUNK;
	int restart = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),
				{"--collection", CLI_STR, &collection},
				{"--format", CLI_STR, &format},
				{"--metadata", CLI_STR, &metadata},
				{"--level", CLI_STR, &level},
				{"--resume-file", CLI_STR, &resume},
				{"--id-namespace", CLI_STR, &ns},
				{"--batch", CLI_INT, &batch},
				{"--limit", CLI_INT, &limit},
				{"--retries", CLI_INT, &retries},
				{"--range-bytes", CLI_INT, &range},
				{"--restart", CLI_FLAG, &restart},
				{NULL, 0, NULL}};
	char *pos[1];
	int npos, prc = cli_parse("import", help, argc, argv, opts, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, "import", "give the SOURCE (a path or URL)");
	if (!collection)
		return cli_fail(CLI_USAGE, "import", "--collection is required");
	if (batch < 1 || batch > IMP_BATCH_MAX || limit < 0 || retries < 0 || range < 4096 || range > CLI_SRC_CHUNK_MAX)
		return cli_fail(CLI_USAGE, "import", "--batch must be 1..%d, --range-bytes 4096..%u; --limit and --retries >= 0",
				IMP_BATCH_MAX, CLI_SRC_CHUNK_MAX);
	int lv = cli_level(level);
	if (lv < 0)
		return cli_fail(CLI_USAGE, "import", "--level must be ONE, QUORUM or ALL: %s", level);
	static imp m;
	memset(&m, 0, sizeof(m));
	m.source = pos[0];
	m.collection = collection;
	m.chunk = (size_t)range;
	char name[1024];
	cli_src_name(m.source, name, sizeof(name));
	m.fmt = format ? fmt_of(format) : guess_fmt(name);
	if (m.fmt < 0)
		return cli_fail(CLI_USAGE, "import", format ? "--format must be fvecs, npy or jsonl: %s"
							    : "cannot tell the format of %s: give --format fvecs|npy|jsonl",
				format ? format : name);
	if (m.fmt == F_JSONL && metadata)
		return cli_fail(CLI_USAGE, "import", "--metadata goes with fvecs or npy; a jsonl row carries its own");
	if (m.fmt != F_JSONL && read_header(&m) != 0)
		return cli_fail(CLI_FAIL, "import", "%s", m.err);
	/* the collection exists and takes this dimension: nothing is written otherwise */
	cm_rpc_client *gw = cli_gateway("import", &c);
	if (!gw)
		return CLI_FAIL;
	Muri__V1__DescribeCollectionRequest dr = MURI__V1__DESCRIBE_COLLECTION_REQUEST__INIT;
	dr.name = (char *)collection;
	ProtobufCMessage *info = NULL;
	if (cli_call("import", &c, gw, "/muri.v1.VectorStore/DescribeCollection", &dr.base,
		     &muri__v1__collection_info__descriptor, &info)) {
		cm_rpc_client_free(gw);
		return CLI_FAIL;
	}
	size_t cdim = ((Muri__V1__CollectionInfo *)info)->dimension;
	protobuf_c_message_free_unpacked(info, NULL);
	if (m.dim && m.dim != cdim) {
		cm_rpc_client_free(gw);
		return cli_fail(CLI_FAIL, "import", "wrong dimension: %s has %zu-d rows, collection %s is %zu-d", m.source,
				m.dim, collection, cdim);
	}
	m.dim = cdim;
	/* where a previous run stopped */
	char rpath[4200], dir[4096];
	uint64_t done = 0;
	if (resume) {
		snprintf(rpath, sizeof(rpath), "%s", resume);
	} else {
		uint8_t h[16];
		char hex[33];
		crypto_generichash_state st;
		crypto_generichash_init(&st, NULL, 0, sizeof(h));
		crypto_generichash_update(&st, (const uint8_t *)collection, strlen(collection) + 1);
		crypto_generichash_update(&st, (const uint8_t *)m.source, strlen(m.source) + 1);
		crypto_generichash_final(&st, h, sizeof(h));
		cm_hex(hex, h, sizeof(h));
		cli_devnet_dir(c.dir, dir, sizeof(dir));
		snprintf(rpath, sizeof(rpath), "%s/imports", dir);
		mkdir(dir, 0700);
		mkdir(rpath, 0700);
		snprintf(rpath, sizeof(rpath), "%s/imports/%s.resume", dir, hex);
	}
	FILE *rf = restart ? NULL : fopen(rpath, "r");
	if (rf) {
		unsigned long long a = 0, b = 0, d = 0;
		if (fscanf(rf, "rows=%llu byte=%llu meta_byte=%llu", &a, &b, &d) == 3) {
			done = a;
			m.byte = b;
			m.meta_byte = d;
		}
		fclose(rf);
		if (done)
			fprintf(stderr, "muri import: resuming after row %llu (%s)\n", (unsigned long long)done, rpath);
	}
	if (m.fmt != F_JSONL)
		m.byte = m.data_off + done * m.row_bytes;
	int rc = 0;
	if (cli_src_open(m.source, m.byte, m.chunk, &m.src, m.err, sizeof(m.err)) != 0 ||
	    (metadata && cli_src_open(metadata, m.meta_byte, m.chunk, &m.meta, m.err, sizeof(m.err)) != 0))
		rc = cli_fail(CLI_FAIL, "import", "%s", m.err);
	uint64_t total = m.total;
	if (limit && (!total || (uint64_t)limit < total))
		total = (uint64_t)limit;
	const char *idns = ns ? ns : name;
	float *vecs = malloc((size_t)batch * m.dim * sizeof(float) + 64);
	char (*ids)[37] = malloc((size_t)batch * 37);
	char **idp = malloc((size_t)batch * sizeof(char *));
	Muri__V1__Vector *vv = calloc((size_t)batch, sizeof(*vv));
	Muri__V1__Vector **vp = calloc((size_t)batch, sizeof(*vp));
	Muri__V1__Metadata **mp = calloc((size_t)batch, sizeof(*mp));
	Muri__V1__Metadata empty = MURI__V1__METADATA__INIT;
	if (!vecs || !ids || !idp || !vv || !vp || !mp)
		rc = rc ? rc : cli_fail(CLI_FAIL, "import", "out of memory for batches of %ld rows", batch);
	cli_progress prog;
	cli_progress_init(&prog, stderr, total, done);
	uint64_t t0 = cm_now_us(), start = done;
	while (!rc && (!limit || done < (uint64_t)limit)) {
		size_t n = 0, with_meta = 0;
		int r = 1;
		while (n < (size_t)batch && (!limit || done + n < (uint64_t)limit)) {
			r = next_row(&m, done + n, vecs + n * m.dim, ids[n], &mp[n]);
			if (r <= 0)
				break;
			if (!ids[n][0])
				cli_row_id(ids[n], collection, idns, done + n);
			with_meta += mp[n] != NULL;
			n++;
		}
		if (r < 0)
			rc = cli_fail(CLI_FAIL, "import", "%s", m.err);
		if (!rc && n) {
			for (size_t i = 0; i < n; i++) {
				muri__v1__vector__init(&vv[i]);
				vv[i].values = vecs + i * m.dim;
				vv[i].n_values = m.dim;
				vp[i] = &vv[i];
				idp[i] = ids[i];
				if (!mp[i])
					mp[i] = &empty;
			}
			Muri__V1__UpsertRequest u = MURI__V1__UPSERT_REQUEST__INIT;
			u.collection = (char *)collection;
			u.ids = idp;
			u.n_ids = n;
			u.vectors = vp;
			u.n_vectors = n;
			u.metadata = with_meta ? mp : NULL;
			u.n_metadata = with_meta ? n : 0;
			u.consistency_level = lv;
			rc = write_batch(&c, gw, &u, retries);
			if (!rc) {
				done += n;
				if (save_resume(rpath, done, m.byte, m.meta_byte) != 0)
					rc = cli_fail(CLI_FAIL, "import", "cannot write the resume file %s: %s", rpath, strerror(errno));
				cli_progress_update(&prog, done, 0);
			}
		}
		for (size_t i = 0; i < n; i++) {
			if (mp[i] != &empty)
				cli_metadata_free(mp[i]);
			mp[i] = NULL;
		}
		if (r == 0 || !n)
			break;
	}
	if (!rc) {
		cli_progress_update(&prog, done, 1);
		unlink(rpath);
		double s = (double)(cm_now_us() - t0) / 1e6;
		if (c.json)
			printf("{\"imported\": %llu, \"resumed_from\": %llu, \"seconds\": %.3f}\n", (unsigned long long)done,
			       (unsigned long long)start, s);
		else
			printf("imported %llu rows into %s%s in %.1f s (%.0f rows/s)\n", (unsigned long long)done, collection,
			       start ? " (resumed)" : "", s, s > 0 ? (double)(done - start) / s : 0.0);
	}
	free(vecs);
	free(ids);
	free(idp);
	free(vv);
	free(vp);
	free(mp);
	free(m.line);
	free(m.mline);
	cli_src_close(m.src);
	cli_src_close(m.meta);
	cm_rpc_client_free(gw);
	return rc;
}
