/* The import formats a stranger's file or URL feeds the gateway's Import
 * and the muri command: .fvecs, .npy and .jsonl (with the JSON reader
 * behind it), read from a local file as a source. The first byte picks the
 * format (and whether reading resumes after the first row); the rest is
 * the file. Oracles: a refusal says which row and why; a row is never
 * wider than the dimension the header gave; fvecs and npy never yield more
 * rows than their header's total; reading resumed at row 1 gives the same
 * rows as reading from the start. */
#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cm_formats.h"
#include "cm_json.h"
#include "fuzz.h"

#define MAX_ROWS 256

/* Reads up to MAX_ROWS rows from start; their vectors into out (rows x
 * dim floats), their count into *rows. 0 at the end of the data, -1 on a
 * refusal (checked to say why). */
static int read_rows(const char *path, int fmt, uint64_t start, float *out, size_t cap, size_t *rows,
		     size_t *dim)
{
	cm_reader m = {.source = path, .fmt = fmt, .chunk = 4096};
	*rows = 0;
	if (cm_reader_header(&m) != 0) {
		FUZZ_CHECK(m.err[0] != '\0');
		cm_reader_close(&m);
		return -1;
	}
	FUZZ_CHECK(m.dim <= CM_FMT_DIM_MAX);
	/* fvecs and npy resume at a row's offset, which the header gives (jsonl
	 * resumes at a byte offset the caller kept, not tried here) */
	m.start_row = start;
	if (cm_reader_open(&m, NULL) != 0) {
		FUZZ_CHECK(m.err[0] != '\0');
		cm_reader_close(&m);
		return -1;
	}
	int rc = 0;
	float *vec = malloc(sizeof(float) * (m.dim ? m.dim : CM_FMT_DIM_MAX));
	FUZZ_CHECK(vec != NULL);
	for (uint64_t r = start; r < start + MAX_ROWS; r++) {
		char id[64];
		Muri__V1__Metadata *meta = NULL;
		int got = cm_reader_next(&m, r, vec, id, &meta);
		if (got < 0) {
			FUZZ_CHECK(m.err[0] != '\0');
			rc = -1;
			break;
		}
		if (got == 0)
			break;
		FUZZ_CHECK(m.dim >= 1 && m.dim <= CM_FMT_DIM_MAX);
		if (m.total)
			FUZZ_CHECK(r < m.total);
		if (*rows * m.dim + m.dim <= cap)
			memcpy(out + *rows * m.dim, vec, m.dim * sizeof(float));
		(*rows)++;
		cm_json_metadata_free(meta);
	}
	*dim = m.dim;
	free(vec);
	cm_reader_close(&m);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const int fmts[] = {CM_FMT_FVECS, CM_FMT_NPY, CM_FMT_JSONL};
	int fmt = fmts[(data[0] & 0x7f) % 3];
	int fd = memfd_create("fuzz-import", 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

	static float all[MAX_ROWS * 64], tail[MAX_ROWS * 64];
	size_t n_all = 0, n_tail = 0, dim = 0, dim2 = 0;
	int rc = read_rows(path, fmt, 0, all, sizeof all / sizeof *all, &n_all, &dim);
	if ((data[0] & 0x80) && rc == 0 && n_all >= 2 && n_all < MAX_ROWS && dim <= 64 && fmt != CM_FMT_JSONL) {
		FUZZ_CHECK(read_rows(path, fmt, 1, tail, sizeof tail / sizeof *tail, &n_tail, &dim2) == 0);
		FUZZ_CHECK(dim2 == dim && n_tail == n_all - 1);
		for (size_t i = 0; i < n_tail * dim; i++) {
			float a = all[dim + i], b = tail[i];
			FUZZ_CHECK(a == b || (isnan(a) && isnan(b)));
		}
	}
	close(fd);
	return 0;
}
