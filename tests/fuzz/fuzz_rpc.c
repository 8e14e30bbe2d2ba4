/* Every request message a stranger can send to a public port: the inputs
 * of each method of the VectorStore, Indexer, Ledger and Consensus
 * services, picked by the first byte. Oracles: whatever protobuf-c decodes
 * and the RPC layer accepts (cm_pb_well_formed) packs to bytes that decode again and pack to the same bytes; every Filter
 * inside a search or scroll either compiles or is refused with a message; every query
 * vector is either accepted by the gateway's check or refused with one. */
#include <string.h>

#include "cm_arena.h"
#include "cm_pb.h"
#include "consensus.pb-c.h"
#include "cm_err.h"
#include "fuzz.h"
#include "gw.h"
#include "indexer.pb-c.h"
#include "ix_filter.h"
#include "ledger.pb-c.h"
#include "vectorstore.pb-c.h"

static const ProtobufCServiceDescriptor *const services[] = {
	&muri__v1__vector_store__descriptor,
	&muri__v1__indexer__descriptor,
	&muri__v1__ledger__descriptor,
	&muri__v1__consensus__descriptor,
};

static const ProtobufCMessageDescriptor *pick(uint8_t b)
{
	size_t total = 0;
	for (size_t s = 0; s < sizeof services / sizeof *services; s++)
		total += services[s]->n_methods;
	size_t i = b % total;
	for (size_t s = 0; s < sizeof services / sizeof *services; s++) {
		if (i < services[s]->n_methods)
			return services[s]->methods[i].input;
		i -= services[s]->n_methods;
	}
	return NULL;
}

static void check_filter(const Muri__V1__Filter *f)
{
	if (!f)
		return;
	cm_arena a;
	cm_arena_init(&a, 1u << 24);
	ix_filter out;
	char err[256] = "";
	if (ix_filter_from_pb(f, &a, &out, err, sizeof err) != CM_OK)
		FUZZ_CHECK(err[0] != '\0');
	cm_arena_free(&a);
}

static void check_vector(const Muri__V1__Vector *v)
{
	if (!v)
		return;
	char err[256] = "";
	uint32_t dims[] = {(uint32_t)v->n_values, 1, 128, (uint32_t)v->binary.len * 8};
	int metrics[] = {MURI__V1__METRIC__L2, MURI__V1__METRIC__COSINE, MURI__V1__METRIC__HAMMING};
	for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
		for (size_t j = 0; j < sizeof metrics / sizeof *metrics; j++) {
			err[0] = '\0';
			if (gw_valid_vector(v, dims[i], metrics[j], "query", err, sizeof err) != CM_OK)
				FUZZ_CHECK(err[0] != '\0');
		}
}

static void check_fields(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	if (d == &muri__v1__search_request__descriptor) {
		const Muri__V1__SearchRequest *r = (const void *)m;
		check_filter(r->filter);
		check_vector(r->query_vector);
	} else if (d == &muri__v1__search_batch_request__descriptor) {
		const Muri__V1__SearchBatchRequest *r = (const void *)m;
		check_filter(r->filter);
		for (size_t i = 0; i < r->n_query_vectors && i < 64; i++)
			check_vector(r->query_vectors[i]);
	} else if (d == &muri__v1__local_search_request__descriptor) {
		const Muri__V1__LocalSearchRequest *r = (const void *)m;
		check_filter(r->filter);
		check_vector(r->query);
	} else if (d == &muri__v1__scroll_request__descriptor) {
		check_filter(((const Muri__V1__ScrollRequest *)(const void *)m)->filter);
	} else if (d == &muri__v1__local_scroll_request__descriptor) {
		check_filter(((const Muri__V1__LocalScrollRequest *)(const void *)m)->filter);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const ProtobufCMessageDescriptor *d = pick(data[0]);
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
	if (!m)
		return 0;
	if (!cm_pb_well_formed(m)) {
		/* what every public port refuses (cm_rpc_unpack) */
		protobuf_c_message_free_unpacked(m, NULL);
		return 0;
	}
	size_t n1 = protobuf_c_message_get_packed_size(m);
	uint8_t *b1 = malloc(n1 ? n1 : 1);
	FUZZ_CHECK(b1 && protobuf_c_message_pack(m, b1) == n1);
	ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, n1, b1);
	FUZZ_CHECK(m2 != NULL);
	size_t n2 = protobuf_c_message_get_packed_size(m2);
	uint8_t *b2 = malloc(n2 ? n2 : 1);
	FUZZ_CHECK(b2 && protobuf_c_message_pack(m2, b2) == n2);
	FUZZ_CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
	check_fields(m);
	free(b1);
	free(b2);
	protobuf_c_message_free_unpacked(m2, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
