/* SPDX-License-Identifier: MIT */
/* mpjson.c - msgpack to jansson, bounded in depth. */
#include "mpjson.h"

#include <string.h>

static json_t *mpjson_convert(const msgpack_object *obj, int depth);

static json_t *mpjson_array(const msgpack_object *obj, int depth)
{
	json_t *array = json_array();
	for (uint32_t i = 0; array && i < obj->via.array.size; i++) {
		json_t *item = mpjson_convert(&obj->via.array.ptr[i], depth + 1);
		if (!item || json_array_append_new(array, item) < 0) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

static json_t *mpjson_map(const msgpack_object *obj, int depth)
{
	json_t *map = json_object();
	for (uint32_t i = 0; map && i < obj->via.map.size; i++) {
		const msgpack_object_kv *kv = &obj->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR) {
			json_decref(map);
			return NULL;
		}
		json_t *value = mpjson_convert(&kv->val, depth + 1);
		if (!value ||
		    json_object_setn_new(map, kv->key.via.str.ptr, kv->key.via.str.size, value) < 0) {
			json_decref(map);
			return NULL;
		}
	}
	return map;
}

static json_t *mpjson_convert(const msgpack_object *obj, int depth)
{
	if (depth > MPJSON_MAX_DEPTH)
		return NULL;
	switch (obj->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(obj->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return obj->via.u64 > (uint64_t)INT64_MAX ? NULL : json_integer((json_int_t)obj->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)obj->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(obj->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_stringn(obj->via.str.ptr, obj->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		return mpjson_array(obj, depth);
	case MSGPACK_OBJECT_MAP:
		return mpjson_map(obj, depth);
	default:
		return NULL;
	}
}

json_t *mpjson_from_object(const msgpack_object *obj)
{
	return mpjson_convert(obj, 0);
}

int mpjson_pack(msgpack_packer *pk, const json_t *json)
{
	switch (json_typeof(json)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *value;
		int rc = msgpack_pack_map(pk, json_object_size(json));
		json_object_foreach((json_t *)json, key, value) {
			if (rc == 0)
				rc = msgpack_pack_str_with_body(pk, key, strlen(key));
			if (rc == 0)
				rc = mpjson_pack(pk, value);
		}
		return rc;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *value;
		int rc = msgpack_pack_array(pk, json_array_size(json));
		json_array_foreach(json, i, value)
			if (rc == 0)
				rc = mpjson_pack(pk, value);
		return rc;
	}
	case JSON_STRING:
		return msgpack_pack_str_with_body(pk, json_string_value(json), json_string_length(json));
	case JSON_INTEGER:
		return msgpack_pack_int64(pk, json_integer_value(json));
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(json));
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	case JSON_FALSE:
		return msgpack_pack_false(pk);
	case JSON_NULL:
		return msgpack_pack_nil(pk);
	}
	return -1;
}
