/* Checks of client input that are not the indexer's record rules (those the
 * gateway runs from services/indexer/ix_record.c and ix_filter.c, so both
 * sides agree): names, consistency levels, vectors, timeouts. Each names the
 * field it refuses. */
#include "gw.h"
#include "cm_err.h"

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

int gw_valid_vector(const Muri__V1__Vector *v, uint32_t dim, const char *field, char *err, size_t errlen)
{
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
