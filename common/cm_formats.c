/* The row formats an import reads (fvecs, npy of float32 or uint8 in C
 * order, jsonl of [...] or {"id", "vector", "metadata"}) from a cm_src
 * stream, one row at a time, never the whole source; and the deterministic
 * row ids that make an import written again replace itself. The muri
 * command's import and the gateway's Import RPC share them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cm_crypto.h"
#include "cm_formats.h"
#include "cm_json.h"

int cm_fmt_of(const char *s)
{
	if (!strcmp(s, "fvecs"))
		return CM_FMT_FVECS;
	if (!strcmp(s, "npy"))
		return CM_FMT_NPY;
	if (!strcmp(s, "jsonl"))
		return CM_FMT_JSONL;
	return -1;
}

int cm_fmt_guess(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? cm_fmt_of(dot + 1) : -1;
}

int cm_reader_header(cm_reader *m)
{
	cm_src *s;
	if (cm_src_open(m->source, 0, m->chunk, &s, m->err, sizeof(m->err)) != 0)
		return -1;
	int64_t size = cm_src_size(s);
	int rc = 0;
	if (m->fmt == CM_FMT_FVECS) {
		int32_t d = 0;
		if (cm_src_read(s, &d, 4) != 4 || d < 1 || d > 65536) {
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
		if (cm_src_read(s, h, 10) != 10 || memcmp(h, "\x93NUMPY", 6) != 0) {
			snprintf(m->err, sizeof(m->err), "%s: not an .npy file", m->source);
			cm_src_close(s);
			return -1;
		}
		size_t hl = h[8] | (size_t)h[9] << 8, pre = 10;
		if (h[6] >= 2) { /* version 2: a 4-byte header length */
			if (cm_src_read(s, h + 10, 2) != 2) {
				snprintf(m->err, sizeof(m->err), "%s: .npy header cut", m->source);
				cm_src_close(s);
				return -1;
			}
			hl = h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 | (size_t)h[11] << 24;
			pre = 12;
		}
		if (hl >= sizeof(hdr) || cm_src_read(s, hdr, hl) != (ssize_t)hl) {
			snprintf(m->err, sizeof(m->err), "%s: .npy header too long or cut", m->source);
			cm_src_close(s);
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
	cm_src_close(s);
	return rc;
}

int cm_reader_next(cm_reader *m, uint64_t row, float *vec, char *id, Muri__V1__Metadata **meta)
{
	*meta = NULL;
	id[0] = '\0';
	if (m->fmt == CM_FMT_JSONL) {
		size_t used;
		ssize_t n;
		do {
			n = cm_src_line(m->src, &m->line, &m->cap, &used);
			if (n >= 0)
				m->byte += used;
		} while (n == 0); /* blank lines */
		if (n == -1)
			return 0;
		if (n < 0) {
			snprintf(m->err, sizeof(m->err), "%s", cm_src_error(m->src));
			return -1;
		}
		char e[300];
		cm_json *j = cm_json_parse(m->line, e, sizeof(e));
		const cm_json *v = j && j->type == CM_JSON_OBJ ? cm_json_get(j, "vector") : j;
		float *f = NULL;
		size_t d = 0;
		int rc = j && cm_json_floats(v, &f, &d, e, sizeof(e)) == 0 ? 0 : -1;
		if (!rc && m->dim && d != m->dim) {
			snprintf(e, sizeof(e), "%zu values, earlier rows had %zu", d, m->dim);
			rc = -1;
		}
		const cm_json *ij = cm_json_get(j, "id"), *mj = cm_json_get(j, "metadata");
		if (!rc && ij && ij->type == CM_JSON_STR)
			snprintf(id, 37, "%s", ij->str);
		if (!rc && mj && !(*meta = cm_json_metadata(mj, e, sizeof(e))))
			rc = -1;
		if (rc)
			snprintf(m->err, sizeof(m->err), "%s: row %llu: %s", m->source, (unsigned long long)row + 1, e);
		else {
			m->dim = d;
			memcpy(vec, f, d * sizeof(float));
		}
		free(f);
		cm_json_free(j);
		return rc ? -1 : 1;
	}
	if (m->total && row >= m->total)
		return 0;
	unsigned char *buf = (unsigned char *)vec; /* rows are read in place, then widened */
	size_t want = m->fmt == CM_FMT_FVECS ? 4 + m->dim * 4 : m->row_bytes;
	unsigned char tmp[4];
	if (m->fmt == CM_FMT_FVECS) {
		ssize_t r = cm_src_read(m->src, tmp, 4);
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
	ssize_t r = cm_src_read(m->src, buf, want);
	if (r == 0 && m->fmt == CM_FMT_NPY)
		return 0;
	if (r != (ssize_t)want) {
		snprintf(m->err, sizeof(m->err), "%s: row %llu: %s", m->source, (unsigned long long)row + 1,
			 r < 0 ? cm_src_error(m->src) : "the file ends inside the row");
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
	m->byte += (m->fmt == CM_FMT_FVECS ? 4 : 0) + want;
	if (m->meta) {
		size_t used;
		ssize_t n = cm_src_line(m->meta, &m->mline, &m->mcap, &used);
		if (n < 0) {
			snprintf(m->err, sizeof(m->err), "metadata: %s", n == -1 ? "fewer lines than rows" : cm_src_error(m->meta));
			return -1;
		}
		m->meta_byte += used;
		char e[300];
		cm_json *j = cm_json_parse(m->mline, e, sizeof(e));
		if (!j || !(*meta = cm_json_metadata(j, e, sizeof(e)))) {
			snprintf(m->err, sizeof(m->err), "metadata line %llu: %s", (unsigned long long)row + 1, e);
			cm_json_free(j);
			return -1;
		}
		cm_json_free(j);
	}
	return 1;
}

int cm_reader_open(cm_reader *m, const char *metadata)
{
	if (m->fmt != CM_FMT_JSONL)
		m->byte = m->data_off + m->start_row * m->row_bytes;
	if (cm_src_open(m->source, m->byte, m->chunk, &m->src, m->err, sizeof(m->err)) != 0)
		return -1;
	if (metadata && cm_src_open(metadata, m->meta_byte, m->chunk, &m->meta, m->err, sizeof(m->err)) != 0)
		return -1;
	return 0;
}

void cm_reader_close(cm_reader *m)
{
	free(m->line);
	free(m->mline);
	cm_src_close(m->src);
	cm_src_close(m->meta);
	m->line = m->mline = NULL;
	m->src = m->meta = NULL;
}

void cm_import_row_id(char out[37], const char *collection, const char *ns, uint64_t row)
{
	uint8_t h[CM_HASH_BYTES], u[16];
	crypto_generichash_state st;
	uint8_t rb[8];
	for (int i = 0; i < 8; i++)
		rb[i] = (uint8_t)(row >> (56 - 8 * i));
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)"muri-import-row", 16);
	crypto_generichash_update(&st, (const uint8_t *)collection, strlen(collection) + 1);
	crypto_generichash_update(&st, (const uint8_t *)ns, strlen(ns) + 1);
	crypto_generichash_update(&st, rb, sizeof(rb));
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(u, h, 16);
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
		 u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}
