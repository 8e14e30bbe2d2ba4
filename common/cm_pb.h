/* Checks on decoded protobuf messages that protobuf-c leaves out. */
#ifndef CM_PB_H
#define CM_PB_H

#include <protobuf-c/protobuf-c.h>

/* 1 if m and every message inside it are well formed beyond what
 * protobuf-c checks: protobuf-c keeps an unknown field numbered 0 (which
 * the protobuf encoding forbids) when its tag is written in more than one
 * byte, and writes it back in one byte, which it then refuses; such a
 * message must be refused where it arrives. 0 otherwise. */
int cm_pb_well_formed(const ProtobufCMessage *m);

#endif
