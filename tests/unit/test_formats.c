/* Tests of common/cm_formats and cm_source on local files: each format's
 * header and rows (fvecs, npy of uint8 and float32, jsonl with ids,
 * metadata and bare arrays), opening at a row to resume, the end of the
 * source, malformed input refused with the row and the reason, the formats
 * named and guessed, and the deterministic row ids (known values, shared
 * with the Python tests' row_id). */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_formats.h"
#include "cm_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static const char *write_file(const char *name, const void *data, size_t n)
{
	static char path[8][128];
	static int k;
	char *p = path[k++ % 8];
	snprintf(p, 128, "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
		return NULL;
	return p;
}

static int open_at(cm_reader *r, const char *path, int fmt, uint64_t row)
{
	memset(r, 0, sizeof(*r));
	r->source = path;
	r->fmt = fmt;
	if (fmt != CM_FMT_JSONL && cm_reader_header(r) != 0)
		return -1;
	r->start_row = row;
	return cm_reader_open(r, NULL);
}

static void test_fvecs(void)
{
	unsigned char buf[5 * 16];
	for (int i = 0; i < 5; i++) {
		int32_t d = 3;
		float v[3] = {(float)i, (float)i + 0.5f, -1.0f};
		memcpy(buf + 16 * i, &d, 4);
		memcpy(buf + 16 * i + 4, v, 12);
	}
	const char *p = write_file("a.fvecs", buf, sizeof(buf));
	cm_reader r;
	TAP_EQ(open_at(&r, p, CM_FMT_FVECS, 2), 0);
	TAP_EQ(r.dim, 3);
	TAP_EQ(r.total, 5);
	float v[3];
	char id[37];
	Muri__V1__Metadata *m;
	TAP_EQ(cm_reader_next(&r, 2, v, id, &m), 1); /* resumed at row 2 */
	TAP_CHECK(v[0] == 2.0f && v[1] == 2.5f && v[2] == -1.0f && !id[0] && !m);
	TAP_EQ(cm_reader_next(&r, 3, v, id, &m), 1);
	TAP_EQ(cm_reader_next(&r, 4, v, id, &m), 1);
	TAP_CHECK(v[0] == 4.0f);
	TAP_EQ(cm_reader_next(&r, 5, v, id, &m), 0); /* the end */
	cm_reader_close(&r);
	/* a file cut inside a row is not an .fvecs file of whole rows */
	p = write_file("cut.fvecs", buf, sizeof(buf) - 3);
	TAP_EQ(open_at(&r, p, CM_FMT_FVECS, 0), -1);
	TAP_CHECK(strstr(r.err, "not an .fvecs file") != NULL);
	cm_reader_close(&r);
	/* a row whose length prefix disagrees with the first */
	int32_t bad = 4;
	memcpy(buf + 16 * 3, &bad, 4);
	p = write_file("mixed.fvecs", buf, sizeof(buf));
	TAP_EQ(open_at(&r, p, CM_FMT_FVECS, 0), 0);
	int rc = 1;
	for (uint64_t row = 0; rc == 1; row++)
		rc = cm_reader_next(&r, row, v, id, &m);
	TAP_EQ(rc, -1);
	TAP_CHECK(strstr(r.err, "row 4: dimension 4") != NULL);
	cm_reader_close(&r);
}

static size_t npy(unsigned char *out, const char *descr, const char *order, int rows, int dim, const void *data,
		  size_t n)
{
	char head[128];
	int hl = snprintf(head, sizeof(head), "{'descr': '%s', 'fortran_order': %s, 'shape': (%d, %d), }", descr, order,
			  rows, dim);
	while ((10 + hl + 1) % 64)
		head[hl++] = ' ';
	head[hl++] = '\n';
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	out[8] = (unsigned char)(hl & 0xff);
	out[9] = (unsigned char)(hl >> 8);
	memcpy(out + 10, head, (size_t)hl);
	memcpy(out + 10 + hl, data, n);
	return 10 + (size_t)hl + n;
}

static void test_npy(void)
{
	unsigned char file[512], px[4 * 3];
	for (int i = 0; i < 12; i++)
		px[i] = (unsigned char)(i * 20);
	const char *p = write_file("u8.npy", file, npy(file, "|u1", "False", 4, 3, px, sizeof(px)));
	cm_reader r;
	float v[3];
	char id[37];
	Muri__V1__Metadata *m;
	TAP_EQ(open_at(&r, p, CM_FMT_NPY, 1), 0);
	TAP_CHECK(r.u8 && r.dim == 3 && r.total == 4);
	TAP_EQ(cm_reader_next(&r, 1, v, id, &m), 1);
	TAP_CHECK(v[0] == 60.0f && v[1] == 80.0f && v[2] == 100.0f); /* widened to float */
	cm_reader_close(&r);
	float f[2 * 2] = {1.5f, -2.0f, 3.25f, 4.0f};
	p = write_file("f4.npy", file, npy(file, "<f4", "False", 2, 2, f, sizeof(f)));
	TAP_EQ(open_at(&r, p, CM_FMT_NPY, 0), 0);
	TAP_EQ(cm_reader_next(&r, 0, v, id, &m), 1);
	TAP_EQ(cm_reader_next(&r, 1, v, id, &m), 1);
	TAP_CHECK(v[0] == 3.25f && v[1] == 4.0f);
	TAP_EQ(cm_reader_next(&r, 2, v, id, &m), 0);
	cm_reader_close(&r);
	p = write_file("fortran.npy", file, npy(file, "<f4", "True", 2, 2, f, sizeof(f)));
	TAP_EQ(open_at(&r, p, CM_FMT_NPY, 0), -1);
	TAP_CHECK(strstr(r.err, "Fortran order") != NULL);
	cm_reader_close(&r);
	p = write_file("f8.npy", file, npy(file, "<f8", "False", 1, 2, f, 16));
	TAP_EQ(open_at(&r, p, CM_FMT_NPY, 0), -1);
	TAP_CHECK(strstr(r.err, "dtype") != NULL);
	cm_reader_close(&r);
	p = write_file("not.npy", "hello world", 11);
	TAP_EQ(open_at(&r, p, CM_FMT_NPY, 0), -1);
	TAP_CHECK(strstr(r.err, "not an .npy file") != NULL);
	cm_reader_close(&r);
}

static void test_jsonl(void)
{
	const char text[] = "{\"id\": \"3c177ec9-a9d3-480e-8e5d-92dba3b22934\", \"vector\": [1, 2], \"metadata\": "
			    "{\"lang\": \"en\", \"n\": 3}}\n"
			    "\n"
			    "[3.5, 4]\n"
			    "{\"vector\": [5, 6, 7]}\n";
	const char *p = write_file("rows.jsonl", text, sizeof(text) - 1);
	cm_reader r;
	float v[3];
	char id[37];
	Muri__V1__Metadata *m = NULL;
	TAP_EQ(open_at(&r, p, CM_FMT_JSONL, 0), 0);
	TAP_EQ(cm_reader_next(&r, 0, v, id, &m), 1);
	TAP_STREQ(id, "3c177ec9-a9d3-480e-8e5d-92dba3b22934");
	TAP_CHECK(r.dim == 2 && v[0] == 1.0f && v[1] == 2.0f);
	TAP_CHECK(m && m->n_fields == 2 && !strcmp(m->fields[0]->key, "lang") &&
		  !strcmp(m->fields[0]->value->string_value, "en") && m->fields[1]->value->int_value == 3);
	cm_json_metadata_free(m);
	uint64_t after_first = r.byte;
	TAP_EQ(cm_reader_next(&r, 1, v, id, &m), 1); /* the blank line is skipped */
	TAP_CHECK(v[0] == 3.5f && !id[0] && !m);
	TAP_EQ(cm_reader_next(&r, 2, v, id, &m), -1); /* three values after rows of two */
	TAP_CHECK(strstr(r.err, "row 3: 3 values") != NULL);
	cm_reader_close(&r);
	/* resumed at the byte after the first row */
	memset(&r, 0, sizeof(r));
	r.source = p;
	r.fmt = CM_FMT_JSONL;
	r.start_row = 1;
	r.byte = after_first;
	TAP_EQ(cm_reader_open(&r, NULL), 0);
	TAP_EQ(cm_reader_next(&r, 1, v, id, &m), 1);
	TAP_CHECK(v[0] == 3.5f && v[1] == 4.0f);
	cm_reader_close(&r);
	const char bad[] = "[1, 2]\n{\"vector\": [1,\n";
	p = write_file("bad.jsonl", bad, sizeof(bad) - 1);
	TAP_EQ(open_at(&r, p, CM_FMT_JSONL, 0), 0);
	TAP_EQ(cm_reader_next(&r, 0, v, id, &m), 1);
	TAP_EQ(cm_reader_next(&r, 1, v, id, &m), -1);
	TAP_CHECK(strstr(r.err, "row 2: bad JSON") != NULL);
	cm_reader_close(&r);
	/* a missing file says so */
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/none.jsonl", dir);
	TAP_EQ(open_at(&r, missing, CM_FMT_JSONL, 0), -1);
	TAP_CHECK(strstr(r.err, "No such file") != NULL);
	cm_reader_close(&r);
}

static void test_names_and_ids(void)
{
	TAP_EQ(cm_fmt_of("fvecs"), CM_FMT_FVECS);
	TAP_EQ(cm_fmt_of("npy"), CM_FMT_NPY);
	TAP_EQ(cm_fmt_of("jsonl"), CM_FMT_JSONL);
	TAP_EQ(cm_fmt_of("csv"), -1);
	TAP_EQ(cm_fmt_guess("base.fvecs"), CM_FMT_FVECS);
	TAP_EQ(cm_fmt_guess("train.npy"), CM_FMT_NPY);
	TAP_EQ(cm_fmt_guess("base"), -1);
	char name[64];
	cm_src_name("https://host/a/b/base.fvecs?X-Amz-Signature=abc", name, sizeof(name));
	TAP_STREQ(name, "base.fvecs");
	cm_src_name("/data/base.fvecs", name, sizeof(name));
	TAP_STREQ(name, "base.fvecs");
	char id[37];
	cm_import_row_id(id, "docs", "base.fvecs", 0);
	TAP_STREQ(id, "3c177ec9-a9d3-480e-8e5d-92dba3b22934");
	cm_import_row_id(id, "docs", "base.fvecs", 9999);
	TAP_STREQ(id, "26062130-c834-405e-a0f2-7ba531c78b1f");
	char other[37];
	cm_import_row_id(other, "docs2", "base.fvecs", 9999);
	TAP_CHECK(strcmp(id, other) != 0);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	snprintf(dir, sizeof(dir), "/tmp/muri-test-formats-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	TAP_RUN(test_fvecs);
	TAP_RUN(test_npy);
	TAP_RUN(test_jsonl);
	TAP_RUN(test_names_and_ids);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", dir);
	return tap_done();
}
