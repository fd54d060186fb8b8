/* SPDX-License-Identifier: MIT */
/* mp.c - msgpack body helpers shared by the broker and every helper daemon. */
#include "mp.h"

#include <errno.h>
#include <string.h>

int mp_body_parse(const uint8_t *data, size_t len, MpBody *body)
{
	static const uint8_t empty_map = 0x80;
	msgpack_unpacked_init(&body->unpacked);
	body->map = NULL;
	if (len == 0) {
		data = &empty_map;
		len = 1;
	}
	size_t offset = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(&body->unpacked, (const char *)data, len, &offset);
	if (ret != MSGPACK_UNPACK_SUCCESS || offset != len ||
	    body->unpacked.data.type != MSGPACK_OBJECT_MAP) {
		msgpack_unpacked_destroy(&body->unpacked);
		return -EBADMSG;
	}
	body->map = &body->unpacked.data;
	return 0;
}

void mp_body_free(MpBody *body)
{
	if (!body)
		return;
	msgpack_unpacked_destroy(&body->unpacked);
	body->map = NULL;
}

const msgpack_object *mp_map_find(const msgpack_object *map, const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t key_len = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == key_len &&
		    memcmp(k->via.str.ptr, key, key_len) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

int mp_get_str(const msgpack_object *map, const char *key, size_t max_len, const char **text, size_t *len)
{
	const msgpack_object *v = mp_map_find(map, key);
	if (!v)
		return -ENOENT;
	if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > max_len)
		return -EINVAL;
	*text = v->via.str.ptr;
	*len = v->via.str.size;
	return 0;
}

int mp_get_u64(const msgpack_object *map, const char *key, uint64_t *value)
{
	const msgpack_object *v = mp_map_find(map, key);
	if (!v)
		return -ENOENT;
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EINVAL;
	*value = v->via.u64;
	return 0;
}

int mp_get_bool(const msgpack_object *map, const char *key, bool *value)
{
	const msgpack_object *v = mp_map_find(map, key);
	if (!v)
		return -ENOENT;
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		return -EINVAL;
	*value = v->via.boolean;
	return 0;
}

int mp_pack_cstr(msgpack_packer *pk, const char *text)
{
	size_t len = strlen(text);
	if (msgpack_pack_str(pk, len) < 0)
		return -1;
	return msgpack_pack_str_body(pk, text, len);
}

int mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
	return mp_pack_cstr(pk, key) < 0 ? -1 : mp_pack_cstr(pk, value);
}

int mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value)
{
	return mp_pack_cstr(pk, key) < 0 ? -1 : msgpack_pack_uint64(pk, value);
}

int mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value)
{
	if (mp_pack_cstr(pk, key) < 0)
		return -1;
	return value ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}
