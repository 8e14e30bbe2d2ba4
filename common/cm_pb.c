/* Checks on decoded protobuf messages that protobuf-c leaves out. */
#include "cm_pb.h"

#include <stdint.h>
#include <string.h>

/* Messages nest at most this deep here (protobuf's own default limit). */
#define CM_PB_MAX_DEPTH 100

static int well_formed(const ProtobufCMessage *m, int depth)
{
	if (!m)
		return 1;
	if (depth > CM_PB_MAX_DEPTH)
		return 0;
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return 0;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		const char *base = (const char *)m;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n;
			memcpy(&n, base + f->quantifier_offset, sizeof n);
			ProtobufCMessage *const *arr;
			memcpy(&arr, base + f->offset, sizeof arr);
			for (size_t k = 0; k < n; k++)
				if (!well_formed(arr[k], depth + 1))
					return 0;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which;
			memcpy(&which, base + f->quantifier_offset, sizeof which);
			if (which != f->id)
				continue;
		}
		const ProtobufCMessage *sub;
		memcpy(&sub, base + f->offset, sizeof sub);
		if (!well_formed(sub, depth + 1))
			return 0;
	}
	return 1;
}

int cm_pb_well_formed(const ProtobufCMessage *m)
{
	return well_formed(m, 0);
}
