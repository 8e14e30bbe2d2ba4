/* muri import SOURCE --collection C: rows of an .fvecs, .npy (float32 or
 * uint8, C order) or .jsonl source streamed in batches to the gateway's
 * Upsert, with metadata from a parallel .jsonl file.
 *
 * No duplicates, no loss, across retries and interruptions: row r of a
 * source gets the id cm_import_row_id(collection, the source's file name, r), so
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
#include "cm_formats.h"
#include "cm_source.h"
#include "cm_err.h"
#include "cm_time.h"

#define IMP_BATCH_DEFAULT 1000
#define IMP_BATCH_MAX 10000
#define IMP_RETRIES 8

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

int cli_import_transient(int code)
{
	return code != GRPC_STATUS_INVALID_ARGUMENT && code != GRPC_STATUS_NOT_FOUND &&
	       code != GRPC_STATUS_PERMISSION_DENIED && code != GRPC_STATUS_UNAUTHENTICATED &&
	       code != GRPC_STATUS_UNIMPLEMENTED && code != GRPC_STATUS_CANCELLED;
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
			if (!cli_import_transient(st.code))
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
	"  --retries N       attempts of a failed batch (with --server-side: of the import, which resumes)\n"
	"                    beyond the first (default 8, backoff up to 10 s)\n"
	"  --restart         ignore the resume file\n"
	"  --server-side     the gateway reads SOURCE itself (its Import RPC: an http(s):// or s3:// URL it can\n"
	"                    reach; a path becomes file://, which a gateway reads only if its import_schemes allow);\n"
	"                    progress comes from the gateway, and calling it again resumes there (same row ids)\n"
	CLI_CONN_HELP;

int cli_cmd_import(int argc, char **argv)
{
	cli_conn c = {0};
	const char *collection = NULL, *format = NULL, *metadata = NULL, *level = NULL, *resume = NULL, *ns = NULL;
	long batch = IMP_BATCH_DEFAULT, limit = 0, retries = IMP_RETRIES, range = CM_SRC_CHUNK;
	int restart = 0, server_side = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),
				{"--server-side", CLI_FLAG, &server_side},
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
	if (batch < 1 || batch > IMP_BATCH_MAX || limit < 0 || retries < 0 || range < 4096 || range > CM_SRC_CHUNK_MAX)
		return cli_fail(CLI_USAGE, "import", "--batch must be 1..%d, --range-bytes 4096..%u; --limit and --retries >= 0",
				IMP_BATCH_MAX, CM_SRC_CHUNK_MAX);
	int lv = cli_level(level);
	if (lv < 0)
		return cli_fail(CLI_USAGE, "import", "--level must be ONE, QUORUM or ALL: %s", level);
	if (server_side) {
		if (metadata || limit || resume || ns || restart || range != CM_SRC_CHUNK)
			return cli_fail(CLI_USAGE, "import", "--server-side takes --format, --batch, --level and --retries only "
							     "(not --metadata, --limit, --resume-file, --id-namespace, --restart, "
							     "--range-bytes)");
		if (format && cm_fmt_of(format) < 0)
			return cli_fail(CLI_USAGE, "import", "--format must be fvecs, npy or jsonl: %s", format);
		return cli_import_remote(&c, pos[0], collection, format, batch, lv, retries);
	}
	static cm_reader m;
	memset(&m, 0, sizeof(m));
	m.source = pos[0];
	m.chunk = (size_t)range;
	char name[1024];
	cm_src_name(m.source, name, sizeof(name));
	m.fmt = format ? cm_fmt_of(format) : cm_fmt_guess(name);
	if (m.fmt < 0)
		return cli_fail(CLI_USAGE, "import", format ? "--format must be fvecs, npy or jsonl: %s"
							    : "cannot tell the format of %s: give --format fvecs|npy|jsonl",
				format ? format : name);
	if (m.fmt == CM_FMT_JSONL && metadata)
		return cli_fail(CLI_USAGE, "import", "--metadata goes with fvecs or npy; a jsonl row carries its own");
	if (m.fmt != CM_FMT_JSONL && cm_reader_header(&m) != 0)
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
	m.start_row = done;
	int rc = 0;
	if (cm_reader_open(&m, metadata) != 0)
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
			r = cm_reader_next(&m, done + n, vecs + n * m.dim, ids[n], &mp[n]);
			if (r <= 0)
				break;
			if (!ids[n][0])
				cm_import_row_id(ids[n], collection, idns, done + n);
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
				cm_json_metadata_free(mp[i]);
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
	cm_reader_close(&m);
	cm_rpc_client_free(gw);
	return rc;
}
