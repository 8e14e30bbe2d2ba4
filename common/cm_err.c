/* Names for the error codes of cm_err.h. */
#include "cm_err.h"

const char *cm_strerror(int err)
{
	switch (err) {
	case CM_OK: return "ok";
	case CM_ERR_NOMEM: return "out of memory";
	case CM_ERR_INVALID: return "invalid argument";
	case CM_ERR_IO: return "input/output error";
	case CM_ERR_NOTFOUND: return "not found";
	case CM_ERR_EXISTS: return "already exists";
	case CM_ERR_PERM: return "permission denied";
	case CM_ERR_VERIFY: return "verification failed";
	case CM_ERR_RANGE: return "out of range";
	case CM_ERR_TOOBIG: return "limit exceeded";
	case CM_ERR_TIMEOUT: return "deadline exceeded";
	case CM_ERR_UNAVAILABLE: return "unavailable";
	case CM_ERR_CANCELLED: return "cancelled";
	case CM_ERR_STATE: return "wrong state";
	case CM_ERR_INTERNAL: return "internal error";
	}
	return "unknown error";
}
