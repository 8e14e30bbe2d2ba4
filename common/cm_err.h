/* Error codes shared by every muri module.
 * Functions that can fail return 0 on success or one of these negative codes;
 * cm_strerror() names them. Output parameters are written only on success. */
#ifndef CM_ERR_H
#define CM_ERR_H

enum cm_err {
	CM_OK = 0,
	CM_ERR_NOMEM = -1,      /* allocation failed */
	CM_ERR_INVALID = -2,    /* an argument or input is malformed */
	CM_ERR_IO = -3,         /* a read, write or fsync failed */
	CM_ERR_NOTFOUND = -4,   /* the thing asked for does not exist */
	CM_ERR_EXISTS = -5,     /* the thing to create exists already */
	CM_ERR_PERM = -6,       /* permissions too open or not allowed */
	CM_ERR_VERIFY = -7,     /* a signature or proof does not verify */
	CM_ERR_RANGE = -8,      /* an index or size is out of range */
	CM_ERR_TOOBIG = -9,     /* a configured limit was reached */
	CM_ERR_TIMEOUT = -10,   /* a deadline passed */
	CM_ERR_UNAVAILABLE = -11, /* a peer or service cannot be reached */
	CM_ERR_CANCELLED = -12, /* the operation was cancelled or shut down */
	CM_ERR_STATE = -13,     /* not allowed in the current state */
	CM_ERR_INTERNAL = -14,  /* a bug or an unexpected library failure */
};

/* A static, human-readable name for a code from enum cm_err. */
const char *cm_strerror(int err);

#define CM_UNUSED(x) ((void)(x))

#endif
