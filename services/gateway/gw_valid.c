/* Checks of client input that are not the indexer's record rules (those the
 * gateway runs from services/indexer/ix_record.c and ix_filter.c, so both
 * sides agree): names, consistency levels, vectors, timeouts, and whether
 * the vectors a request asks for fit in one message (rpc_max_message) at
 * the collection's dimension. Each names the field it refuses. */
#include "gw.h"
#include "cm_err.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int gw_valid_name(const char *name, const char *field, char *err, size_t errlen)
{
	size_t n = name ? strlen(name) : 0;
	if (n < 1 || n > GW_NAME_MAX) {
		snprintf(err, errlen, "%s: %zu bytes, expected 1..%d of [A-Za-z0-9_.-]", field, n, GW_NAME_MAX);
		return CM_ERR_INVALID;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-')) {
			snprintf(err, errlen, "%s: byte %zu (0x%02x) is not one of [A-Za-z0-9_.-]", field, i,
				 (unsigned)(unsigned char)c);
			return CM_ERR_INVALID;
		}
	}
	return CM_OK;
}

int gw_valid_level(int level, const char *field, char *err, size_t errlen)
{
	if (level < MURI__V1__CONSISTENCY_LEVEL__CONSISTENCY_UNSPECIFIED || level > MURI__V1__CONSISTENCY_LEVEL__ALL) {
		snprintf(err, errlen, "%s: unknown consistency level %d (ONE, QUORUM or ALL)", field, level);
		return CM_ERR_INVALID;
	}
	return CM_OK;
}

int gw_valid_vector(const Muri__V1__Vector *v, uint32_t dim, int metric, const char *field, char *err,
		    size_t errlen)
{
	if (metric == MURI__V1__METRIC__HAMMING) {
		if (v && v->n_values) {
			snprintf(err, errlen,
				 "%s.values: %zu floats given, the collection holds binary vectors (HAMMING): "
				 "send %s.binary of %u bytes",
				 field, v->n_values, field, dim / 8);
			return CM_ERR_INVALID;
		}
		if (!v || v->binary.len != dim / 8) {
			snprintf(err, errlen, "%s.binary: %zu bytes, the collection's dimension is %u bits (%u bytes)",
				 field, v ? v->binary.len : 0, dim, dim / 8);
			return CM_ERR_INVALID;
		}
		return CM_OK;
	}
	if (v && v->binary.len) {
		snprintf(err, errlen, "%s.binary: %zu bytes given, the collection holds float vectors (only HAMMING "
			 "takes binary); send %s.values",
			 field, v->binary.len, field);
		return CM_ERR_INVALID;
	}
	if (!v || v->n_values != dim) {
		snprintf(err, errlen, "%s: %zu values, the collection's dimension is %u", field, v ? v->n_values : 0,
			 dim);
		return CM_ERR_INVALID;
	}
	for (size_t i = 0; i < v->n_values; i++)
		if (!isfinite(v->values[i])) {
			snprintf(err, errlen, "%s: value %zu is not finite (%s)", field, i,
				 isnan(v->values[i]) ? "NaN" : "infinity");
			return CM_ERR_INVALID;
		}
	return CM_OK;
}

int gw_valid_timeout(uint32_t t, const char *field, char *err, size_t errlen)
{
	if (t > GW_MAX_TIMEOUT_MS) {
		snprintf(err, errlen, "%s: %u, at most %d (0: the default)", field, t, GW_MAX_TIMEOUT_MS);
		return CM_ERR_INVALID;
	}
	return CM_OK;
}

/* The bytes hits (or records) with vectors may take in one message: 3/4 of
 * it, the rest left for ids, metadata, signatures and framing. */
static uint64_t vector_room(uint64_t max_message)
{
	return max_message / 4 * 3;
}

size_t gw_vectors_per_message(uint32_t dim, uint64_t max_message)
{
	return (size_t)(vector_room(max_message) / GW_HIT_WIRE_BYTES(dim));
}

int gw_valid_vectors_fit(uint64_t n, uint32_t dim, uint64_t max_message, const char *field, const char *what,
			 char *err, size_t errlen)
{
	uint64_t need = n * GW_HIT_WIRE_BYTES(dim);
	if (need <= vector_room(max_message))
		return CM_OK;
	snprintf(err, errlen,
		 "%s: %" PRIu64 " %s with %u-d vectors take about %.1f MiB in one message, above 3/4 of "
		 "rpc_max_message (%.1f MiB): at most %zu",
		 field, n, what, dim, (double)need / 1048576.0, (double)max_message / 1048576.0,
		 gw_vectors_per_message(dim, max_message));
	return CM_ERR_TOOBIG;
}
