/* Replica-to-replica transport of the ledger: consensus messages as bytes in
 * signed envelopes over the muri.v1.Consensus gRPC service. Each peer has a
 * sender thread with a bounded queue (the oldest message is dropped when it
 * is full: consensus tolerates loss and retransmits by its pacemaker), and
 * inbound envelopes are checked (chain id, sender index, signature) before
 * they reach the consensus core. The same threads relay admitted
 * transactions to the peers' mempools (Consensus.Relay), in batches, from a
 * second bounded queue per peer that yields to consensus messages. */
#ifndef LG_NET_H
#define LG_NET_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_rpc.h"
#include "consensus.pb-c.h"

#define LG_NET_MAX_REPLICAS 64
#define LG_NET_ADDR_MAX 256 /* bytes of a host:port */
#define LG_NET_RELAY_MAX 10000 /* transactions in one inbound Relay */

typedef struct lg_net lg_net;

/* Called on an RPC worker thread for every authenticated inbound message;
 * msg is valid only during the call. */
typedef void (*lg_net_deliver_fn)(void *arg, uint32_t from, const uint8_t *msg, size_t len);

/* Answers a FetchBlocks request into resp, allocating from the call
 * (cm_rpc_alloc); returns a gRPC status code as a unary handler does. */
typedef int (*lg_net_fetch_fn)(void *arg, cm_rpc_call *call, const Muri__V1__FetchBlocksRequest *req,
			       Muri__V1__FetchBlocksResponse *resp);

/* Called on an RPC worker thread with the transactions of an authenticated
 * Relay from replica `from`; they are valid only during the call. */
typedef void (*lg_net_relay_fn)(void *arg, uint32_t from, Muri__V1__SignedTransaction *const *txs, size_t n);

typedef struct lg_net_opts {
	const char *chain_id;
	uint32_t self;                                  /* this replica's index */
	uint32_t n;                                     /* replicas */
	const char *const *addresses;                   /* n host:port or NULL ([self] unused); see lg_net_set_address */
	const uint8_t (*pubkeys)[CM_PK_BYTES];          /* n public keys */
	const cm_keypair *key;                          /* this replica's key */
	size_t queue_max;                               /* messages queued per peer */
	size_t message_max;                             /* bytes of one message */
	int send_timeout_ms;                            /* deadline of one Deliver call */
	const char *tls_ca_file;                        /* NULL: plaintext */
	size_t relay_queue_max;                         /* transactions queued per peer for Relay (0: 65536) */
	size_t relay_batch;                             /* transactions per Relay call (0: 256, at most
							 * LG_NET_RELAY_MAX; fewer if message_max is reached) */
} lg_net_opts;

/* Creates the transport and starts a sender thread per peer. The caller owns
 * *out (lg_net_free). deliver and fetch are called from RPC threads. */
int lg_net_new(const lg_net_opts *o, lg_net_deliver_fn deliver, lg_net_fetch_fn fetch, void *arg,
	       lg_net **out);
/* Sets or changes where a peer listens; its connection is made anew before
 * the next message to it. */
int lg_net_set_address(lg_net *net, uint32_t peer, const char *address);
/* Sets who receives inbound Relay calls (before lg_net_register); without
 * one, Relay answers UNIMPLEMENTED. */
void lg_net_on_relay(lg_net *net, lg_net_relay_fn fn);
/* Registers the Consensus service's handlers on srv (before it starts). */
int lg_net_register(lg_net *net, cm_rpc_server *srv);
/* Queues msg for replica `to`, or for every other replica when to < 0. The
 * message is copied. Never blocks. */
void lg_net_send(lg_net *net, int to, const uint8_t *msg, size_t len);
/* Queues one signed transaction (body and signature, copied) for every
 * peer's next Relay batch. A peer whose relay queue is full does not get it
 * (counted in relay_dropped). Never blocks. */
void lg_net_relay(lg_net *net, const ProtobufCBinaryData *body, const ProtobufCBinaryData *signature);
/* Synchronous FetchBlocks call to one peer; *resp is the caller's to free
 * with protobuf_c_message_free_unpacked. */
int lg_net_fetch(lg_net *net, uint32_t peer, const Muri__V1__FetchBlocksRequest *req,
		 Muri__V1__FetchBlocksResponse **resp, int timeout_ms);
/* Stops the sender threads (queued messages are dropped). Idempotent. */
void lg_net_stop(lg_net *net);
/* Stops if needed and frees. Accepts NULL. */
void lg_net_free(lg_net *net);

/* Counters for status and tests. */
typedef struct lg_net_stats {
	uint64_t sent, send_failed, dropped, received, rejected;
	uint64_t relay_calls, relayed_txs, relay_dropped, relay_received; /* relay_received: txs */
	uint64_t relay_queued;                                            /* waiting now, all peers */
} lg_net_stats;
void lg_net_get_stats(lg_net *net, lg_net_stats *out);

#endif
