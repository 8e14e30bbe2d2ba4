/* muri import SOURCE --collection C --server-side: the gateway reads the
 * source itself (its Import RPC, services/gateway/gw_import.c) and reports
 * its progress on a stream, shown here as `muri import` shows its own. The
 * same rows get the same ids either way, so an import may switch between
 * the two and still not duplicate a row. A local path becomes a file://
 * URL (a gateway reads those only when its import_schemes allow file). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_progress.h"
#include "cm_err.h"
#include "cm_time.h"

/* One Import call, its progress shown as it comes: CM_OK once the stream
 * ended with a summary, else the failure in *st (code OK: ended without). */
static int follow(cm_rpc_client *gw, const cli_conn *c, const Muri__V1__ImportRequest *req, cli_progress *prog,
		  int *inited, uint64_t *done, char *summary, size_t summary_len, cm_rpc_status *st)
{
	cm_rpc_stream *s = NULL;
	int rc = cm_rpc_stream_open(gw, "/muri.v1.VectorStore/Import", &req->base, &muri__v1__import_progress__descriptor,
				    c->timeout_ms > 0 ? (int)c->timeout_ms : 0, &s, st);
	while (rc == CM_OK) {
		ProtobufCMessage *msg = NULL;
		int n = cm_rpc_stream_next(s, &msg, -1, st);
		if (n < 0) {
			rc = st->code == GRPC_STATUS_OK && summary[0] ? CM_OK : n;
			break;
		}
		if (n == 0)
			continue;
		Muri__V1__ImportProgress *p = (Muri__V1__ImportProgress *)msg;
		if (!*inited) {
			cli_progress_init(prog, stderr, p->total, 0);
			*inited = 1;
		}
		*done = p->imported;
		if (p->summary)
			snprintf(summary, summary_len, "%s", p->summary->message);
		cli_progress_update(prog, *done, p->summary != NULL);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	cm_rpc_stream_close(s);
	return rc;
}

int cli_import_remote(const cli_conn *c, const char *source, const char *collection, const char *format, long batch,
		      int level, long retries)
{
	char url[PATH_MAX + 16];
	if (strstr(source, "://")) {
		snprintf(url, sizeof(url), "%s", source);
	} else {
		char abs[PATH_MAX];
		if (!realpath(source, abs))
			return cli_fail(CLI_FAIL, "import", "%s: no such file (give a URL the gateway can read)", source);
		snprintf(url, sizeof(url), "file://%s", abs);
	}
	Muri__V1__ImportRequest req = MURI__V1__IMPORT_REQUEST__INIT;
	req.collection = (char *)collection;
	req.source = url;
	req.batch_size = (uint32_t)batch;
	req.consistency_level = level;
	if (format)
		req.format = !strcmp(format, "fvecs") ? MURI__V1__IMPORT_FORMAT__FVECS
			     : !strcmp(format, "npy") ? MURI__V1__IMPORT_FORMAT__NPY
			     : !strcmp(format, "jsonl") ? MURI__V1__IMPORT_FORMAT__JSONL
							: MURI__V1__IMPORT_FORMAT__IMPORT_FORMAT_UNSPECIFIED;
	cm_rpc_client *gw = cli_gateway("import", c);
	if (!gw)
		return CLI_FAIL;
	cli_progress prog;
	int inited = 0, rc = CM_OK;
	uint64_t t0 = cm_now_us(), done = 0;
	char summary[600] = "";
	cm_rpc_status st;
	long backoff = 200;
	for (long attempt = 0;; attempt++) {
		rc = follow(gw, c, &req, &prog, &inited, &done, summary, sizeof(summary), &st);
		if (rc == CM_OK || st.code == GRPC_STATUS_OK || !cli_import_transient(st.code) || attempt >= retries)
			break;
		/* the gateway keeps the rows of every finished batch: called again
		 * with the same request, it resumes after the last one */
		fprintf(stderr, "muri import: the import stopped after row %llu (%s: %s); resuming in %ld ms\n",
			(unsigned long long)done, cm_rpc_code_name(st.code), st.message, backoff);
		cm_sleep_ms((uint64_t)backoff);
		backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
	}
	cm_rpc_client_free(gw);
	if (rc != CM_OK) {
		if (st.code == GRPC_STATUS_OK)
			return cli_fail(CLI_FAIL, "import", "the gateway ended the import without a summary");
		char cabuf[4200];
		return cli_fail(CLI_FAIL, "import", "%s: %s%s", cm_rpc_code_name(st.code), st.message,
				st.code == GRPC_STATUS_UNAVAILABLE
					? cli_tls_hint(cli_tls_ca(c, !(c->gateway && *c->gateway), cabuf, sizeof(cabuf)))
					: "");
	}
	double secs = (double)(cm_now_us() - t0) / 1e6;
	if (c->json) {
		printf("{\"imported\": %llu, \"seconds\": %.3f, \"summary\": ", (unsigned long long)done, secs);
		cm_json_str(stdout, summary);
		printf("}\n");
	} else {
		printf("%s (server-side)\n", summary);
	}
	return 0;
}
