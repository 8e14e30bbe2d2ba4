/* Channels to indexers by address and node key, made on first use and kept
 * for the life of the process (one per indexer the chain has named: bounded
 * by the network, at most GW_CLIENTS_MAX). gRPC reconnects a channel by
 * itself. Over TLS a channel takes answers only from a server whose
 * certificate is bound to the node key the chain names at that address
 * (cm_rpc.h tls_expect_node): another node serving there, even with a
 * certificate of the same CA, gets an UNAUTHENTICATED "tls: the server at
 * ADDR is not node KEY: it is node OTHER". */
#include "gw.h"
#include "cm_err.h"
#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

#define GW_CLIENTS_MAX 4096

struct gw_clients {
	pthread_mutex_t mu;
	char *tls_ca;
	size_t max_message;
	size_t n;
	char *addr[GW_CLIENTS_MAX];
	uint8_t pk[GW_CLIENTS_MAX][CM_PK_BYTES];
	cm_rpc_client *c[GW_CLIENTS_MAX];
};

int gw_clients_new(const char *tls_ca, size_t max_message, gw_clients **out)
{
	gw_clients *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return CM_ERR_NOMEM;
	pthread_mutex_init(&cs->mu, NULL);
	cs->max_message = max_message;
	if (tls_ca && tls_ca[0] && !(cs->tls_ca = strdup(tls_ca))) {
		gw_clients_free(cs);
		return CM_ERR_NOMEM;
	}
	*out = cs;
	return CM_OK;
}

void gw_clients_free(gw_clients *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < cs->n; i++) {
		cm_rpc_client_free(cs->c[i]);
		free(cs->addr[i]);
	}
	free(cs->tls_ca);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

cm_rpc_client *gw_clients_get(gw_clients *cs, const char *addr, const uint8_t pk[CM_PK_BYTES])
{
	if (!addr || !addr[0])
		return NULL;
	pthread_mutex_lock(&cs->mu);
	cm_rpc_client *c = NULL;
	for (size_t i = 0; i < cs->n && !c; i++)
		if (strcmp(cs->addr[i], addr) == 0 && memcmp(cs->pk[i], pk, CM_PK_BYTES) == 0)
			c = cs->c[i];
	if (!c && cs->n < GW_CLIENTS_MAX) {
		char err[GW_ERR_MAX] = "";
		cm_rpc_client_opts o = {.target = addr, .max_message = cs->max_message, .tls_ca_file = cs->tls_ca,
					.tls_expect_node = pk};
		char *a = strdup(addr);
		if (a && cm_rpc_client_new(&o, &c, err, sizeof(err)) == CM_OK) {
			cs->addr[cs->n] = a;
			memcpy(cs->pk[cs->n], pk, CM_PK_BYTES);
			cs->c[cs->n++] = c;
		} else {
			free(a);
			c = NULL;
			cm_warn("gw_channel", "addr=%s error=\"%s\"", addr, err);
		}
	}
	pthread_mutex_unlock(&cs->mu);
	return c;
}
