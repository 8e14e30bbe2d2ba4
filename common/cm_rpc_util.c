/* Helpers shared by the RPC server and client: message packing, deadlines,
 * PEM files and status codes. */
#include "cm_rpc_int.h"
#include "cm_err.h"
#include "cm_pb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

grpc_byte_buffer *cm_rpc_pack(const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(n);
	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

ProtobufCMessage *cm_rpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
				ProtobufCAllocator *a)
{
	grpc_byte_buffer_reader r;
	if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	grpc_slice s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, a, GRPC_SLICE_LENGTH(s),
							GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	if (m && !cm_pb_well_formed(m)) {
		protobuf_c_message_free_unpacked(m, a);
		return NULL;
	}
	return m;
}

gpr_timespec cm_rpc_deadline(int64_t timeout_ms)
{
	if (timeout_ms <= 0)
		return gpr_inf_future(GPR_CLOCK_REALTIME);
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
			    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

int cm_rpc_read_pem(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return CM_ERR_IO;
	}
	char *buf = malloc(CM_RPC_PEM_MAX + 1);
	if (!buf) {
		fclose(f);
		return CM_ERR_NOMEM;
	}
	size_t n = fread(buf, 1, CM_RPC_PEM_MAX + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n == 0 || n > CM_RPC_PEM_MAX) {
		snprintf(err, errlen, "%s: %s", path,
			 bad ? "read error" : n == 0 ? "empty file" : "larger than 1 MiB");
		free(buf);
		return CM_ERR_INVALID;
	}
	buf[n] = '\0';
	*out = buf;
	return CM_OK;
}

void cm_rpc_status_set(cm_rpc_status *st, int code, grpc_slice details)
{
	if (!st)
		return;
	size_t n = GRPC_SLICE_LENGTH(details);
	if (n >= sizeof(st->message))
		n = sizeof(st->message) - 1;
	st->code = code;
	memcpy(st->message, GRPC_SLICE_START_PTR(details), n);
	st->message[n] = '\0';
}

int cm_rpc_code_to_err(int code)
{
	switch (code) {
	case GRPC_STATUS_OK: return CM_OK;
	case GRPC_STATUS_CANCELLED: return CM_ERR_CANCELLED;
	case GRPC_STATUS_INVALID_ARGUMENT:
	case GRPC_STATUS_OUT_OF_RANGE: return CM_ERR_INVALID;
	case GRPC_STATUS_DEADLINE_EXCEEDED: return CM_ERR_TIMEOUT;
	case GRPC_STATUS_NOT_FOUND: return CM_ERR_NOTFOUND;
	case GRPC_STATUS_ALREADY_EXISTS: return CM_ERR_EXISTS;
	case GRPC_STATUS_PERMISSION_DENIED:
	case GRPC_STATUS_UNAUTHENTICATED: return CM_ERR_PERM;
	case GRPC_STATUS_RESOURCE_EXHAUSTED: return CM_ERR_TOOBIG;
	case GRPC_STATUS_FAILED_PRECONDITION:
	case GRPC_STATUS_ABORTED: return CM_ERR_STATE;
	case GRPC_STATUS_UNAVAILABLE: return CM_ERR_UNAVAILABLE;
	default: return CM_ERR_INTERNAL;
	}
}

const char *cm_rpc_code_name(int code)
{
	static const char *names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
		"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	};
	if (code >= 0 && (size_t)code < sizeof(names) / sizeof(names[0]))
		return names[code];
	return "UNKNOWN";
}

ProtobufCMessage *cm_pb_dup(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return NULL;
	protobuf_c_message_pack(m, buf);
	ProtobufCMessage *d = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
	free(buf);
	return d;
}
