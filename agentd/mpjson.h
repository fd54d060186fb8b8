/* SPDX-License-Identifier: MIT */
/* mpjson.h - turning a helper's msgpack answer into the JSON a client sees. */
#ifndef AGENTD_MPJSON_H
#define AGENTD_MPJSON_H

#include <jansson.h>
#include <msgpack.h>

/* Nesting deeper than this in a helper's answer is refused rather than recursed into. */
#define MPJSON_MAX_DEPTH 32

/** mpjson_from_object() - a new JSON value for @obj, or NULL (non-string map keys, ext, too deep). */
json_t *mpjson_from_object(const msgpack_object *obj);

#endif
