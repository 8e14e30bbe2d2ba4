/* Reading .fvecs / .ivecs files (per row: int32 dimension, then that many
 * float32 or int32 values), the format of the benchmark datasets and one of
 * the import formats. */
#ifndef CM_VECS_H
#define CM_VECS_H

#include <stddef.h>
#include <stdint.h>

/* Reads at most max_rows rows (0: all) of path. All rows must share one
 * dimension (1..65536). On success *data is a heap array of rows*dim values
 * the caller frees; CM_ERR_INVALID for a malformed file, CM_ERR_IO or
 * CM_ERR_NOTFOUND when it cannot be read. */
int cm_fvecs_read(const char *path, size_t max_rows, float **data, size_t *rows, size_t *dim);
int cm_ivecs_read(const char *path, size_t max_rows, int32_t **data, size_t *rows, size_t *dim);

#endif
