/* SPDX-License-Identifier: MIT */
/* mp.h - reading and writing envelope bodies (msgpack maps) with bounds on every field. */
#ifndef AGENTD_MP_H
#define AGENTD_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed body: a msgpack map whose strings point into the envelope's buffer. */
typedef struct MpBody {
	msgpack_unpacked unpacked;
	const msgpack_object *map;
} MpBody;

/**
 * mp_body_parse() - parse @data as exactly one msgpack map (an empty body is an empty map).
 * Return: 0 or -EBADMSG. mp_body_free() must follow a successful parse.
 */
int mp_body_parse(const uint8_t *data, size_t len, MpBody *body);
void mp_body_free(MpBody *body);

/** mp_map_find() - the value under @key in @map, or NULL. */
const msgpack_object *mp_map_find(const msgpack_object *map, const char *key);

/* Typed getters: 0; -ENOENT when absent; -EINVAL when of another type or out of bounds. */
int mp_get_str(const msgpack_object *map, const char *key, size_t max_len, const char **text, size_t *len);
int mp_get_u64(const msgpack_object *map, const char *key, uint64_t *value);
int mp_get_bool(const msgpack_object *map, const char *key, bool *value);

/** mp_pack_cstr() - pack a NUL-terminated string. Return 0 or -1 like msgpack-c. */
int mp_pack_cstr(msgpack_packer *pk, const char *text);
/** mp_pack_kv_str() / mp_pack_kv_u64() / mp_pack_kv_bool() - pack a key and its value. */
int mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value);
int mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value);
int mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);

#endif
