/* .fvecs / .ivecs readers: both are rows of (int32 d, d x 4-byte values), so
 * one reader serves both. */
#include "cm_vecs.h"
#include "cm_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VECS_MAX_DIM 65536

static int read_rows(const char *path, size_t max_rows, void **data, size_t *rows, size_t *dim)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? CM_ERR_NOTFOUND : CM_ERR_IO;
	int32_t d;
	if (fread(&d, 4, 1, f) != 1 || d < 1 || d > VECS_MAX_DIM) {
		fclose(f);
		return CM_ERR_INVALID;
	}
	if (fseek(f, 0, SEEK_END) != 0) {
		fclose(f);
		return CM_ERR_IO;
	}
	long size = ftell(f);
	size_t row_bytes = 4 + 4 * (size_t)d;
	if (size < 0 || (size_t)size % row_bytes != 0) {
		fclose(f);
		return CM_ERR_INVALID;
	}
	size_t n = (size_t)size / row_bytes;
	if (max_rows && n > max_rows)
		n = max_rows;
	uint8_t *out = malloc(n * 4 * (size_t)d + 1);
	if (!out) {
		fclose(f);
		return CM_ERR_NOMEM;
	}
	rewind(f);
	for (size_t i = 0; i < n; i++) {
		int32_t di;
		if (fread(&di, 4, 1, f) != 1 || di != d ||
		    fread(out + i * 4 * (size_t)d, 4, (size_t)d, f) != (size_t)d) {
			free(out);
			fclose(f);
			return CM_ERR_INVALID;
		}
	}
	fclose(f);
	*data = out;
	*rows = n;
	*dim = (size_t)d;
	return CM_OK;
}

int cm_fvecs_read(const char *path, size_t max_rows, float **data, size_t *rows, size_t *dim)
{
	return read_rows(path, max_rows, (void **)data, rows, dim);
}

int cm_ivecs_read(const char *path, size_t max_rows, int32_t **data, size_t *rows, size_t *dim)
{
	return read_rows(path, max_rows, (void **)data, rows, dim);
}
