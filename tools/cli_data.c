/* muri insert | get | search | delete through the gateway. Vectors come
 * from an argument (a JSON array), a JSON file (an array of arrays or of
 * {"id", "vector", "metadata"} objects) or an .fvecs file; metadata is a
 * JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"
#include "cm_vecs.h"

#define DATA_FILE_MAX (64u << 20) /* bytes of a JSON vectors file read whole */

static char *slurp(const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(max + 1);
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	fclose(f);
	if (!buf || n > max) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Rows to write: vectors (n x dim), optional ids and metadata. */
typedef struct rows {
	size_t n, dim;
	float *vecs;
	char **ids;
	Muri__V1__Metadata **meta;
} rows;

static void rows_free(rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->ids)
			free(r->ids[i]);
		if (r->meta)
			cm_json_metadata_free(r->meta[i]);
	}
	free(r->ids);
	free(r->meta);
	free(r->vecs);
}

static int rows_add(rows *r, const cm_json *vec, const cm_json *id, const cm_json *meta, char *err, size_t errlen)
{
	float *v;
	size_t d;
	if (cm_json_floats(vec, &v, &d, err, errlen) != 0)
		return -1;
	if (r->n && d != r->dim) {
		free(v);
		snprintf(err, errlen, "row %zu has %zu values, the first had %zu", r->n, d, r->dim);
		return -1;
	}
	r->dim = d;
	float *nv = realloc(r->vecs, (r->n + 1) * d * sizeof(float));
	char **ni = realloc(r->ids, (r->n + 1) * sizeof(char *));
	Muri__V1__Metadata **nm = realloc(r->meta, (r->n + 1) * sizeof(*nm));
	if (nv)
		r->vecs = nv;
	if (ni)
		r->ids = ni;
	if (nm)
		r->meta = nm;
	if (!nv || !ni || !nm) {
		free(v);
		return -1;
	}
	memcpy(r->vecs + r->n * d, v, d * sizeof(float));
	free(v);
	r->ids[r->n] = id && id->type == CM_JSON_STR ? strdup(id->str) : NULL;
	r->meta[r->n] = NULL;
	r->n++;
	if (meta && !(r->meta[r->n - 1] = cm_json_metadata(meta, err, errlen)))
		return -1;
	return 0;
}

static int rows_from_file(const char *cmd, const char *path, rows *r)
{
	char err[300];
	size_t len = strlen(path);
	if (len > 6 && !strcmp(path + len - 6, ".fvecs")) {
		int rc = cm_fvecs_read(path, 0, &r->vecs, &r->n, &r->dim);
		if (rc != CM_OK)
			return cli_fail(CLI_FAIL, cmd, "%s: %s", path, rc == CM_ERR_INVALID ? "not a valid .fvecs file" : cm_strerror(rc));
		return 0;
	}
	char *text = slurp(path, DATA_FILE_MAX);
	if (!text)
		return cli_fail(CLI_FAIL, cmd, "%s: cannot read it (or larger than %u MiB: use muri import)", path,
				DATA_FILE_MAX >> 20);
	cm_json *j = cm_json_parse(text, err, sizeof(err));
	free(text);
	if (!j || j->type != CM_JSON_ARR) {
		cm_json_free(j);
		return cli_fail(CLI_FAIL, cmd, "%s: %s", path, j ? "expected a JSON array of rows" : err);
	}
	int rc = 0;
	for (const cm_json *row = j->child; row && !rc; row = row->next) {
		if (row->type == CM_JSON_OBJ)
			rc = rows_add(r, cm_json_get(row, "vector"), cm_json_get(row, "id"), cm_json_get(row, "metadata"),
				      err, sizeof(err));
		else
			rc = rows_add(r, row, NULL, NULL, err, sizeof(err));
	}
	cm_json_free(j);
	if (rc)
		return cli_fail(CLI_FAIL, cmd, "%s: row %zu: %s", path, r->n, err);
	return 0;
}

static const char insert_help[] =
	"usage: muri insert COLLECTION --vector '[0.1, 0.2, ...]' [--metadata '{\"k\": \"v\"}'] [--id UUID]\n"
	"       muri insert COLLECTION --binary HEX [--metadata ...] [--id UUID]   (a HAMMING collection:\n"
	"                                dimension / 8 bytes in hex, byte 0 first)\n"
	"       muri insert COLLECTION --file F.json|F.fvecs\n"
	"Writes vectors: new ids are assigned (printed) unless given, in which case each id is created\n"
	"or replaced. A JSON file is an array of vectors or of {\"id\", \"vector\", \"metadata\"} objects.\n"
	"  --level ONE|QUORUM|ALL   replicas that must acknowledge (default QUORUM)\n" CLI_CONN_HELP;

int cli_cmd_insert(int argc, char **argv)
{
	cli_conn c = {0};
	const char *vector = NULL, *metadata = NULL, *id = NULL, *file = NULL, *level = NULL, *binary = NULL;
	const cli_opt opts[] = {CLI_CONN_OPTS(c),         {"--vector", CLI_STR, &vector}, {"--metadata", CLI_STR, &metadata},
				{"--binary", CLI_STR, &binary},
				{"--id", CLI_STR, &id},   {"--file", CLI_STR, &file},     {"--level", CLI_STR, &level},
				{NULL, 0, NULL}};
	char *pos[1], err[300];
	int npos, prc = cli_parse("insert", insert_help, argc, argv, opts, pos, 1, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 1)
		return cli_fail(CLI_USAGE, "insert", "give the COLLECTION");
	if ((vector != NULL) + (file != NULL) + (binary != NULL) != 1)
		return cli_fail(CLI_USAGE, "insert", "give one of --vector JSON, --binary HEX or --file F");
	uint8_t *bin = NULL; /* one binary vector (HAMMING) */
	size_t nbin = 0;
	if (binary && cli_hex_bytes(binary, &bin, &nbin) != 0)
		return cli_fail(CLI_USAGE, "insert", "--binary: not an even number of hex digits");
	if (binary)
		vector = "[0]"; /* the row's id and metadata; its vector is the binary one */
	int lv = cli_level(level);
	if (lv < 0)
		return cli_fail(CLI_USAGE, "insert", "--level must be ONE, QUORUM or ALL: %s", level);
	rows r = {0};
	if (vector) {
		cm_json *v = cm_json_parse(vector, err, sizeof(err));
		cm_json *m = metadata ? cm_json_parse(metadata, err, sizeof(err)) : NULL;
		cm_json idj = {.type = CM_JSON_STR, .str = (char *)id};
		int rc = v && (!metadata || m) ? rows_add(&r, v, id ? &idj : NULL, m, err, sizeof(err)) : -1;
		cm_json_free(v);
		cm_json_free(m);
		if (rc) {
			rows_free(&r);
			free(bin);
			return cli_fail(CLI_USAGE, "insert", "%s", err);
		}
	} else if (rows_from_file("insert", file, &r)) {
		rows_free(&r);
		return CLI_FAIL;
	}
	int with_ids = 0, with_meta = 0;
	for (size_t i = 0; i < r.n; i++) {
		with_ids += r.ids && r.ids[i];
		with_meta += r.meta && r.meta[i];
	}
	if (with_ids && with_ids != (int)r.n) {
		rows_free(&r);
		return cli_fail(CLI_USAGE, "insert", "give an id for every row or for none");
	}
	Muri__V1__Vector *vv = calloc(r.n, sizeof(*vv));
	Muri__V1__Vector **vp = calloc(r.n, sizeof(*vp));
	Muri__V1__Metadata **mp = calloc(r.n, sizeof(*mp));
	Muri__V1__Metadata empty = MURI__V1__METADATA__INIT;
	for (size_t i = 0; vv && vp && mp && i < r.n; i++) {
		muri__v1__vector__init(&vv[i]);
		vv[i].values = bin ? NULL : r.vecs + i * r.dim;
		vv[i].n_values = bin ? 0 : r.dim;
		vv[i].binary.data = bin;
		vv[i].binary.len = bin ? nbin : 0;
		vp[i] = &vv[i];
		mp[i] = r.meta && r.meta[i] ? r.meta[i] : &empty;
	}
	cm_rpc_client *gw = cli_gateway("insert", &c);
	ProtobufCMessage *resp = NULL;
	int rc = CLI_FAIL;
	if (gw && vv && vp && mp) {
		if (with_ids) {
			Muri__V1__UpsertRequest u = MURI__V1__UPSERT_REQUEST__INIT;
			u.collection = pos[0];
			u.ids = r.ids;
			u.n_ids = r.n;
			u.vectors = vp;
			u.n_vectors = r.n;
			u.metadata = with_meta ? mp : NULL;
			u.n_metadata = with_meta ? r.n : 0;
			u.consistency_level = lv;
			rc = cli_call("insert", &c, gw, "/muri.v1.VectorStore/Upsert", &u.base,
				      &muri__v1__write_response__descriptor, &resp);
		} else {
			Muri__V1__InsertRequest in = MURI__V1__INSERT_REQUEST__INIT;
			in.collection = pos[0];
			in.vectors = vp;
			in.n_vectors = r.n;
			in.metadata = with_meta ? mp : NULL;
			in.n_metadata = with_meta ? r.n : 0;
			in.consistency_level = lv;
			rc = cli_call("insert", &c, gw, "/muri.v1.VectorStore/Insert", &in.base,
				      &muri__v1__write_response__descriptor, &resp);
		}
	}
	if (!rc) {
		Muri__V1__WriteResponse *w = (Muri__V1__WriteResponse *)resp;
		if (w->status != MURI__V1__WRITE_STATUS__SUCCESS)
			rc = cli_fail(CLI_FAIL, "insert", "%s: %s", w->status == MURI__V1__WRITE_STATUS__PARTIAL ? "PARTIAL" : "FAILED",
				      w->message);
		if (c.json) {
			printf("{\"status\": %d, \"ids\": [", w->status);
			for (size_t i = 0; i < w->n_vector_ids; i++)
				printf("%s\"%s\"", i ? ", " : "", w->vector_ids[i]);
			printf("], \"consistency_hash\": \"%s\"}\n", w->consistency_hash);
		} else {
			for (size_t i = 0; i < w->n_vector_ids; i++)
				printf("%s\n", w->vector_ids[i]);
		}
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	free(vv);
	free(vp);
	free(mp);
	free(bin);
	rows_free(&r);
	cm_rpc_client_free(gw);
	return rc;
}

static void print_vector(const Muri__V1__Vector *v)
{
	if (v && v->binary.len) { /* a binary vector (HAMMING): its bytes in hex, byte 0 first */
		printf("\"");
		for (size_t k = 0; k < v->binary.len; k++)
			printf("%02x", v->binary.data[k]);
		printf("\"");
		return;
	}
	printf("[");
	for (size_t k = 0; v && k < v->n_values; k++)
		printf("%s%.9g", k ? ", " : "", v->values[k]);
	printf("]");
}

static const char get_help[] = "usage: muri get COLLECTION ID... [--vectors]\n"
			       "Prints the records of the ids that exist (id, version, metadata).\n"
			       "  --vectors   print the vectors too\n" CLI_CONN_HELP;

int cli_cmd_get(int argc, char **argv)
{
	cli_conn c = {0};
	int vectors = 0;
	const cli_opt opts[] = {CLI_CONN_OPTS(c), {"--vectors", CLI_FLAG, &vectors}, {NULL, 0, NULL}};
	char *pos[1001];
	int npos, prc = cli_parse("get", get_help, argc, argv, opts, pos, 1001, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos < 2)
		return cli_fail(CLI_USAGE, "get", "give the COLLECTION and at least one ID");
	cm_rpc_client *gw = cli_gateway("get", &c);
	if (!gw)
		return CLI_FAIL;
	Muri__V1__GetRequest g = MURI__V1__GET_REQUEST__INIT;
	g.collection = pos[0];
	g.ids = pos + 1;
	g.n_ids = (size_t)npos - 1;
	g.include_vectors = vectors;
	ProtobufCMessage *resp = NULL;
	int rc = cli_call("get", &c, gw, "/muri.v1.VectorStore/Get", &g.base, &muri__v1__get_response__descriptor, &resp);
	if (!rc) {
		Muri__V1__GetResponse *r = (Muri__V1__GetResponse *)resp;
		if (c.json)
			printf("[");
		for (size_t i = 0; i < r->n_records; i++) {
			const Muri__V1__Record *x = r->records[i];
			if (c.json) {
				printf("%s{\"id\": \"%s\", \"version\": %llu, \"metadata\": ", i ? ", " : "", x->id,
				       (unsigned long long)x->version);
				cli_print_metadata(stdout, x->metadata, 1);
				if (vectors) {
					printf(", \"vector\": ");
					print_vector(x->vector);
				}
				printf("}");
			} else {
				printf("%s  version %llu  ", x->id, (unsigned long long)x->version);
				cli_print_metadata(stdout, x->metadata, 0);
				if (vectors) {
					printf("  ");
					print_vector(x->vector);
				}
				printf("\n");
			}
		}
		if (c.json)
			printf("]\n");
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	cm_rpc_client_free(gw);
	return rc;
}

static const char delete_help[] = "usage: muri delete COLLECTION ID...\n"
				  "Deletes the ids (a missing id is not an error); prints how many existed.\n"
				  "  --level ONE|QUORUM|ALL\n" CLI_CONN_HELP;

int cli_cmd_delete(int argc, char **argv)
{
	cli_conn c = {0};
	const char *level = NULL;
	const cli_opt opts[] = {CLI_CONN_OPTS(c), {"--level", CLI_STR, &level}, {NULL, 0, NULL}};
	char *pos[1001];
	int npos, prc = cli_parse("delete", delete_help, argc, argv, opts, pos, 1001, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos < 2)
		return cli_fail(CLI_USAGE, "delete", "give the COLLECTION and at least one ID");
	int lv = cli_level(level);
	if (lv < 0)
		return cli_fail(CLI_USAGE, "delete", "--level must be ONE, QUORUM or ALL: %s", level);
	cm_rpc_client *gw = cli_gateway("delete", &c);
	if (!gw)
		return CLI_FAIL;
	Muri__V1__DeleteRequest d = MURI__V1__DELETE_REQUEST__INIT;
	d.collection = pos[0];
	d.ids = pos + 1;
	d.n_ids = (size_t)npos - 1;
	d.consistency_level = lv;
	ProtobufCMessage *resp = NULL;
	int rc = cli_call("delete", &c, gw, "/muri.v1.VectorStore/Delete", &d.base, &muri__v1__delete_response__descriptor,
			  &resp);
	if (!rc) {
		Muri__V1__DeleteResponse *r = (Muri__V1__DeleteResponse *)resp;
		if (r->status != MURI__V1__WRITE_STATUS__SUCCESS)
			rc = cli_fail(CLI_FAIL, "delete", "%s", r->message);
		printf(c.json ? "{\"deleted\": %llu}\n" : "deleted %llu\n", (unsigned long long)r->deleted);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	cm_rpc_client_free(gw);
	return rc;
}
