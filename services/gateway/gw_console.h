/* The console: a web page served by the gateway over HTTP (console_listen)
 * that draws the network (ledger replicas, indexers, gateways, the
 * fragments' replica sets), the collections, the chain and a search box,
 * with read-only JSON endpoints behind it (gw_console.c, gw_console_api.c).
 * A background thread polls every node's Status at most once per
 * console_poll_ms (gw_console_poll.c). */
#ifndef GW_CONSOLE_H
#define GW_CONSOLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gw.h"

#define GW_CONSOLE_NODES_MAX 512      /* ledger replicas + indexers the console tracks */
#define GW_CONSOLE_CALL_MS 400        /* a Status call to one node waits at most this */
#define GW_CONSOLE_BLOCKS_MAX 50      /* blocks per /api/blocks page */
#define GW_CONSOLE_HTTP_TIMEOUT_S 30

typedef struct gw_console gw_console;

/* One node as the poller last saw it. */
typedef struct gw_console_node {
	int ledger;                      /* 1: a ledger replica, 0: an indexer */
	uint32_t index;                  /* ledger: position in genesis */
	uint8_t pk[CM_PK_BYTES];
	char addr[GW_ADDR_MAX];
	int up;                          /* its last Status answered */
	int polled;                      /* it was asked at least once */
	uint64_t last_ok_ms;             /* monotonic time of its last answer */
	char error[160];                 /* why its last Status failed */
	/* ledger replicas */
	uint64_t height, view, height_ms;/* height_ms: when height last moved */
	/* indexers (Status details, GetIndexer, GetChallenges) */
	uint64_t fragments, primary_of, log_records, live_vectors;
	uint64_t stake, failures;
	int active, jailed, known_on_chain;
	uint64_t challenge_id;           /* the latest decided challenge (0: none) */
	int challenge_state;             /* Muri__V1__ChallengeState */
	uint64_t challenges_failed;
	uint64_t leases_held, lease_ms;  /* primaries holding their lease now; the lease's length */
} gw_console_node;

/* A gateway the genesis lists (`gateway = <hex key>`, no address): its
 * latest settled receipt on chain is what the console knows of its life. */
typedef struct gw_console_gateway {
	uint8_t pk[CM_PK_BYTES];
	int checked;                     /* the ledger answered GetReceipts for it */
	uint64_t last_settle_height;     /* 0: none settled yet */
} gw_console_gateway;

/* Starts the console on listen ("host:port") and its poller; rpc_port is
 * the gateway's own VectorStore port (the console's searches go through it,
 * exactly as a client's). *port receives the bound port. */
int gw_console_start(gw_ctx *g, const char *listen, int rpc_port, gw_console **out, int *port, char *err,
		     size_t errlen);
void gw_console_free(gw_console *c);

/* ---- gw_console_poll.c ---- */
typedef struct gw_console_poll gw_console_poll;
int gw_console_poll_start(gw_ctx *g, int poll_ms, gw_console_poll **out, char *err, size_t errlen);
void gw_console_poll_free(gw_console_poll *p);
/* A copy of every node (ledger replicas first, in genesis order): *out
 * malloc'd, *n entries. */
int gw_console_poll_nodes(gw_console_poll *p, gw_console_node **out, size_t *n);
const char *gw_console_poll_chain_id(gw_console_poll *p);
/* A copy of the genesis's gateways: *out malloc'd, *n entries. */
int gw_console_poll_gateways(gw_console_poll *p, gw_console_gateway **out, size_t *n);

/* ---- gw_console_api.c: JSON endpoints, each writes one JSON value to f;
 * returns the HTTP status ---- */
typedef struct gw_console_api {
	gw_ctx *g;
	gw_console_poll *poll;
	int rpc_port;
	cm_rpc_client *self;             /* the gateway's own VectorStore */
	uint8_t self_pk[CM_PK_BYTES];
	int has_self_pk;
	char target[64];                 /* the gateway's own VectorStore, "127.0.0.1:<rpc_port>" */
	const char *tls_ca;              /* its TLS roots, or NULL (plaintext) */
} gw_console_api;

/* Who asks one /api request (gw_console.c): with auth on, the caller that
 * `Authorization: Bearer <key>` proves (gw_auth_key), or an anonymous one;
 * with auth off an open caller. key: the API key, forwarded to the
 * gateway's own VectorStore for records and searches; NULL: none. */
typedef struct gw_console_who {
	gw_caller c;
	const char *key;
} gw_console_who;
/* A client of the gateway's own VectorStore that sends who's key (a channel
 * of its own, freed with gw_console_client_done), or the shared one. */
cm_rpc_client *gw_console_client(gw_console_api *a, const gw_console_who *who, char *err, size_t errlen);
void gw_console_client_done(gw_console_api *a, cm_rpc_client *c);
/* 1 if who may read collection; else writes the JSON error and returns 0 */
int gw_console_may_read(gw_console_api *a, const gw_console_who *who, const char *collection, FILE *f);

unsigned gw_api_network(gw_console_api *a, FILE *f);
unsigned gw_api_collections(gw_console_api *a, const gw_console_who *who, FILE *f);
unsigned gw_api_collection(gw_console_api *a, const gw_console_who *who, const char *name, FILE *f);
unsigned gw_api_blocks(gw_console_api *a, const char *from, const char *limit, FILE *f);
unsigned gw_api_node(gw_console_api *a, const char *hex, FILE *f);
unsigned gw_api_search(gw_console_api *a, const gw_console_who *who, const char *body, FILE *f);
/* gw_console_records.c: a page of records through the gateway's Scroll */
unsigned gw_api_records(gw_console_api *a, const gw_console_who *who, const char *name, const char *cursor,
			const char *limit, const char *vectors, const char *filter, FILE *f);
/* {"error": msg} */
void gw_api_error(FILE *f, const char *msg);
void gw_json_str(FILE *f, const char *s);
void gw_json_hex(FILE *f, const uint8_t *b, size_t n);

#endif
