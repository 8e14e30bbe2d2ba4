/* Pieces shared by cm_rpc_server.c and cm_rpc_client.c: protobuf-c message
 * <-> gRPC byte buffer, deadlines, channel arguments and PEM files. */
#ifndef CM_RPC_INT_H
#define CM_RPC_INT_H

#include <grpc/grpc.h>
#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>

#include "cm_rpc.h"

#define CM_RPC_PEM_MAX (1u << 20) /* bytes of a certificate or key file */

/* Packs msg into a new byte buffer; the caller destroys it after the batch
 * that sends it has completed. NULL if out of memory. */
grpc_byte_buffer *cm_rpc_pack(const ProtobufCMessage *msg);
/* Decodes bb with allocator a (NULL: malloc); NULL if malformed. */
ProtobufCMessage *cm_rpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
				ProtobufCAllocator *a);
/* Absolute deadline timeout_ms from now; infinite for timeout_ms <= 0. */
gpr_timespec cm_rpc_deadline(int64_t timeout_ms);
/* Reads a whole PEM file into a NUL-terminated heap string the caller frees
 * (after wiping it, for keys). */
int cm_rpc_read_pem(const char *path, char **out, char *err, size_t errlen);
/* The gRPC call under a server call (for its auth context). */
grpc_call *cm_rpc_call_grpc(const cm_rpc_call *call);
/* The node key the peer's certificate on call gc is bound to (server or
 * client side; cm_rpc_peer.c): CM_OK, CM_ERR_NOTFOUND (no certificate),
 * CM_ERR_INVALID / CM_ERR_VERIFY; why says which. */
int cm_rpc_node_of_call(grpc_call *gc, uint8_t pk[32], char *why, size_t whylen);
/* Copies a status detail slice into st->message, truncating. */
void cm_rpc_status_set(cm_rpc_status *st, int code, grpc_slice details);

#endif
