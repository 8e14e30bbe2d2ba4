/* Tests of common/cm_pb: a message carrying an unknown field numbered 0
 * (its tag written in two bytes, which protobuf-c decodes, then re-encodes
 * in one byte and refuses) is refused at the top level and nested inside
 * other messages, repeated fields and oneofs; ordinary unknown fields, which
 * the protobuf encoding allows, pass. */
#include "tap.h"
#include "cm_pb.h"
#include "ledger.pb-c.h"
#include "vectorstore.pb-c.h"

/* tag (field 0, fixed32) in two bytes, then four bytes of value */
static const uint8_t FIELD0[] = {0x85, 0x00, 0x01, 0x01, 0x85, 0x00};

static void test_top_level(void)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(&muri__v1__insert_request__descriptor, NULL,
							sizeof FIELD0, FIELD0);
	TAP_CHECK(m != NULL); /* what protobuf-c alone lets through */
	TAP_EQ(cm_pb_well_formed(m), 0);
	/* and why it matters: written back, the bytes no longer decode */
	uint8_t out[16];
	size_t n = protobuf_c_message_pack(m, out);
	TAP_CHECK(protobuf_c_message_unpack(&muri__v1__insert_request__descriptor, NULL, n, out) == NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_nested(void)
{
	/* SearchRequest.filter (field 5) holding the bad field */
	uint8_t buf[2 + sizeof FIELD0] = {0x2a, sizeof FIELD0};
	memcpy(buf + 2, FIELD0, sizeof FIELD0);
	Muri__V1__SearchRequest *r = muri__v1__search_request__unpack(NULL, sizeof buf, buf);
	TAP_CHECK(r != NULL && r->filter != NULL);
	TAP_EQ(cm_pb_well_formed(&r->base), 0);
	muri__v1__search_request__free_unpacked(r, NULL);

	/* InsertRequest.vectors (repeated, field 2): the second one is bad */
	uint8_t rep[4 + sizeof FIELD0] = {0x12, 0x00, 0x12, sizeof FIELD0};
	memcpy(rep + 4, FIELD0, sizeof FIELD0);
	ProtobufCMessage *m = protobuf_c_message_unpack(&muri__v1__insert_request__descriptor, NULL,
							sizeof rep, rep);
	TAP_CHECK(m != NULL);
	TAP_EQ(cm_pb_well_formed(m), 0);
	protobuf_c_message_free_unpacked(m, NULL);

	/* Transaction.transfer (a oneof member, field 10) */
	uint8_t one[2 + sizeof FIELD0] = {0x52, sizeof FIELD0};
	memcpy(one + 2, FIELD0, sizeof FIELD0);
	Muri__V1__Transaction *t = muri__v1__transaction__unpack(NULL, sizeof one, one);
	TAP_CHECK(t != NULL && t->payload_case == MURI__V1__TRANSACTION__PAYLOAD_TRANSFER);
	TAP_EQ(cm_pb_well_formed(&t->base), 0);
	muri__v1__transaction__free_unpacked(t, NULL);
}

static void test_ordinary_unknown_fields_pass(void)
{
	/* field 99 (varint 7) in a filter, and a well-formed vector */
	const uint8_t buf[] = {0x2a, 0x03, 0x98, 0x06, 0x07, 0x12, 0x00};
	Muri__V1__InsertRequest *r = muri__v1__insert_request__unpack(NULL, 2, buf + 5);
	TAP_CHECK(r != NULL);
	TAP_EQ(cm_pb_well_formed(&r->base), 1);
	muri__v1__insert_request__free_unpacked(r, NULL);
	Muri__V1__SearchRequest *s = muri__v1__search_request__unpack(NULL, 5, buf);
	TAP_CHECK(s != NULL && s->filter != NULL && s->filter->base.n_unknown_fields == 1);
	TAP_EQ(cm_pb_well_formed(&s->base), 1);
	muri__v1__search_request__free_unpacked(s, NULL);
	TAP_EQ(cm_pb_well_formed(NULL), 1);
}

int main(void)
{
	TAP_RUN(test_top_level);
	TAP_RUN(test_nested);
	TAP_RUN(test_ordinary_unknown_fields_pass);
	return tap_done();
}
