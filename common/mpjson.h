/* SPDX-License-Identifier: MIT */
/* mpjson.h - msgpack to JSON (a helper's answer for a client) and JSON to msgpack. */
#ifndef AGENTD_MPJSON_H
#define AGENTD_MPJSON_H

#include <jansson.h>
#include <msgpack.h>

/* Nesting deeper than this in a helper's answer is refused rather than recursed into. */
#define MPJSON_MAX_DEPTH 32

/** mpjson_from_object() - a new JSON value for @obj, or NULL (non-string map keys, ext, too deep). */
json_t *mpjson_from_object(const msgpack_object *obj);

/** mpjson_pack() - pack @json as msgpack (JSON types map one to one). Return 0 or -1 like msgpack-c. */
int mpjson_pack(msgpack_packer *pk, const json_t *json);

#endif
