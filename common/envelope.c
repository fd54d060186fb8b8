/* SPDX-License-Identifier: MIT */
/* envelope.c - strict msgpack encode/decode of the internal envelope. */
#include "envelope.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

const char *envelope_kind_name(EnvelopeKind kind)
{
	switch (kind) {
	case ENVELOPE_REQUEST:
		return "request";
	case ENVELOPE_RESPONSE:
		return "response";
	case ENVELOPE_EVENT:
		return "event";
	case ENVELOPE_CREDIT:
		return "credit";
	}
	return "?";
}

static int name_char_is_valid(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static int method_char_is_valid(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '/' || c == '.' || c == '-';
}

static int text_is_valid(const char *text, size_t len, size_t min, size_t max, int (*is_valid)(char))
{
	if (len < min || len > max)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_valid(text[i]))
			return 0;
	}
	return 1;
}

int envelope_name_is_valid(const char *name)
{
	size_t len = strnlen(name, ENVELOPE_NAME_MAX + 1);
	return text_is_valid(name, len, 1, ENVELOPE_NAME_MAX, name_char_is_valid);
}

static int method_is_valid(const Envelope *env)
{
	size_t len = strnlen(env->method, ENVELOPE_METHOD_MAX + 1);
	/* Requests and events say what they are; responses and credit refer to something else. */
	size_t min = (env->kind == ENVELOPE_REQUEST || env->kind == ENVELOPE_EVENT) ? 1 : 0;
	return text_is_valid(env->method, len, min, ENVELOPE_METHOD_MAX, method_char_is_valid);
}

int envelope_validate(const Envelope *env)
{
	if (env->version != ENVELOPE_VERSION)
		return -EPROTONOSUPPORT;
	if ((unsigned)env->kind > ENVELOPE_CREDIT)
		return -EINVAL;
	if (env->id == 0)
		return -EINVAL;
	if (env->kind == ENVELOPE_RESPONSE && env->correlation_id == 0)
		return -EINVAL;
	/* Only responses correlate and carry a status; a status is 0 or a negative error code. */
	if (env->kind != ENVELOPE_RESPONSE && (env->status != 0 || env->correlation_id != 0))
		return -EINVAL;
	if (env->status > 0)
		return -EINVAL;
	if (!envelope_name_is_valid(env->source) || !envelope_name_is_valid(env->destination))
		return -EINVAL;
	if (!method_is_valid(env))
		return -EINVAL;
	if (env->body_len > ENVELOPE_MAX_BODY_BYTES)
		return -EMSGSIZE;
	if (env->body_len > 0 && !env->body)
		return -EINVAL;
	return 0;
}

static int pack_text(msgpack_packer *pk, const char *text)
{
	size_t len = strlen(text);
	if (msgpack_pack_str(pk, len) < 0)
		return -1;
	return msgpack_pack_str_body(pk, text, len);
}

int envelope_encode(const Envelope *env, EnvelopeWriteFn write, void *ctx)
{
	int rc = envelope_validate(env);
	if (rc < 0)
		return rc;
	msgpack_packer pk;
	msgpack_packer_init(&pk, ctx, (msgpack_packer_write)write);
	if (msgpack_pack_array(&pk, ENVELOPE_FIELDS) < 0 || msgpack_pack_uint32(&pk, env->version) < 0 ||
	    msgpack_pack_uint8(&pk, (uint8_t)env->kind) < 0 || msgpack_pack_uint64(&pk, env->id) < 0 ||
	    msgpack_pack_uint64(&pk, env->correlation_id) < 0 || pack_text(&pk, env->source) < 0 ||
	    pack_text(&pk, env->destination) < 0 || pack_text(&pk, env->method) < 0 ||
	    msgpack_pack_uint64(&pk, env->connection_id) < 0 || msgpack_pack_int32(&pk, env->status) < 0 ||
	    msgpack_pack_bin(&pk, env->body_len) < 0 ||
	    (env->body_len > 0 && msgpack_pack_bin_body(&pk, env->body, env->body_len) < 0))
		return -ENOMEM;
	return 0;
}

static int read_uint(const msgpack_object *obj, uint64_t max, uint64_t *out)
{
	if (obj->type != MSGPACK_OBJECT_POSITIVE_INTEGER || obj->via.u64 > max)
		return -EBADMSG;
	*out = obj->via.u64;
	return 0;
}

static int read_int32(const msgpack_object *obj, int32_t *out)
{
	if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER && obj->via.u64 <= INT32_MAX) {
		*out = (int32_t)obj->via.u64;
		return 0;
	}
	if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && obj->via.i64 >= INT32_MIN) {
		*out = (int32_t)obj->via.i64;
		return 0;
	}
	return -EBADMSG;
}

static int read_text(const msgpack_object *obj, char *out, size_t max_len)
{
	if (obj->type != MSGPACK_OBJECT_STR)
		return -EBADMSG;
	if (obj->via.str.size > max_len)
		return -EINVAL;
	/* msgpack-c may give an empty str a NULL ptr: memchr/memcpy must not see it. */
	if (obj->via.str.size > 0) {
		if (memchr(obj->via.str.ptr, '\0', obj->via.str.size))
			return -EINVAL;
		memcpy(out, obj->via.str.ptr, obj->via.str.size);
	}
	out[obj->via.str.size] = '\0';
	return 0;
}

static int read_fields(const msgpack_object *f, Envelope *out)
{
	uint64_t version, kind;
	int rc;
	/* Any other unsigned version, however large, is a version mismatch (agentd-ipc(7)). */
	if ((rc = read_uint(&f[0], UINT64_MAX, &version)) < 0)
		return rc;
	if (version != ENVELOPE_VERSION)
		return -EPROTONOSUPPORT;
	out->version = (uint32_t)version;
	if ((rc = read_uint(&f[1], ENVELOPE_CREDIT, &kind)) < 0)
		return rc == -EBADMSG && f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? -EINVAL : rc;
	out->kind = (EnvelopeKind)kind;
	if ((rc = read_uint(&f[2], UINT64_MAX, &out->id)) < 0 ||
	    (rc = read_uint(&f[3], UINT64_MAX, &out->correlation_id)) < 0 ||
	    (rc = read_text(&f[4], out->source, ENVELOPE_NAME_MAX)) < 0 ||
	    (rc = read_text(&f[5], out->destination, ENVELOPE_NAME_MAX)) < 0 ||
	    (rc = read_text(&f[6], out->method, ENVELOPE_METHOD_MAX)) < 0 ||
	    (rc = read_uint(&f[7], UINT64_MAX, &out->connection_id)) < 0 ||
	    (rc = read_int32(&f[8], &out->status)) < 0)
		return rc;
	if (f[9].type != MSGPACK_OBJECT_BIN)
		return -EBADMSG;
	out->body = (const uint8_t *)f[9].via.bin.ptr;
	out->body_len = f[9].via.bin.size;
	return envelope_validate(out);
}

/* Size of the scalar, str or bin element at @p (header included), or 0 when it is a container,
 * an ext, truncated or reserved. msgpack-c allocates container storage from declared counts, so
 * a flat layout is confirmed here before msgpack-c sees the bytes. */
static size_t scan_flat_element(const uint8_t *p, size_t avail)
{
	uint8_t t = p[0];
	size_t head = 1, body = 0;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return 1;
	if (t >= 0xa0 && t <= 0xbf) {
		body = t & 0x1f;
	} else {
		switch (t) {
		case 0xcc:
		case 0xd0:
			body = 1;
			break;
		case 0xcd:
		case 0xd1:
			body = 2;
			break;
		case 0xce:
		case 0xd2:
		case 0xca:
			body = 4;
			break;
		case 0xcf:
		case 0xd3:
		case 0xcb:
			body = 8;
			break;
		case 0xc4:
		case 0xd9:
			head = 2;
			break;
		case 0xc5:
		case 0xda:
			head = 3;
			break;
		case 0xc6:
		case 0xdb:
			head = 5;
			break;
		default:
			return 0;
		}
		if (head > 1) {
			if (avail < head)
				return 0;
			for (size_t i = 1; i < head; i++)
				body = (body << 8) | p[i];
		}
	}
	if (body > avail || head + body > avail)
		return 0;
	return head + body;
}

/* Size a complete bin header at @p declares, or 0 when @p holds no complete bin header. */
static size_t scan_bin_declared_size(const uint8_t *p, size_t avail)
{
	size_t head, size = 0;
	switch (p[0]) {
	case 0xc4:
		head = 2;
		break;
	case 0xc5:
		head = 3;
		break;
	case 0xc6:
		head = 5;
		break;
	default:
		return 0;
	}
	if (avail < head)
		return 0;
	for (size_t i = 1; i < head; i++)
		size = (size << 8) | p[i];
	return size;
}

static int scan_flat_array(const uint8_t *data, size_t len)
{
	size_t offset = 1;
	for (unsigned i = 0; i < ENVELOPE_FIELDS; i++) {
		if (offset >= len)
			return -EBADMSG;
		size_t n = scan_flat_element(data + offset, len - offset);
		/* A body cut short is too large rather than truncated when its header declares more than
		 * the limit (a whole oversized body is caught in field order, after the version). */
		if (n == 0 && i == ENVELOPE_FIELDS - 1 &&
		    scan_bin_declared_size(data + offset, len - offset) > ENVELOPE_MAX_BODY_BYTES)
			return -EMSGSIZE;
		if (n == 0)
			return -EBADMSG;
		offset += n;
	}
	return offset == len ? 0 : -EBADMSG;
}

int envelope_decode(const uint8_t *data, size_t len, Envelope *out)
{
	if (len > ENVELOPE_MAX_BYTES)
		return -EMSGSIZE;
	/* Cheap structural check before msgpack-c allocates anything: a fixarray of 10. */
	if (len == 0 || data[0] != (0x90 | ENVELOPE_FIELDS))
		return -EBADMSG;
	int rc = scan_flat_array(data, len);
	if (rc < 0)
		return rc;
	msgpack_unpacked unpacked;
	msgpack_unpacked_init(&unpacked);
	size_t offset = 0;
	rc = -EBADMSG;
	msgpack_unpack_return ret = msgpack_unpack_next(&unpacked, (const char *)data, len, &offset);
	if (ret == MSGPACK_UNPACK_SUCCESS && offset == len && unpacked.data.type == MSGPACK_OBJECT_ARRAY &&
	    unpacked.data.via.array.size == ENVELOPE_FIELDS) {
		memset(out, 0, sizeof(*out));
		/* str/bin objects point into @data, so the body stays valid after the zone goes. */
		rc = read_fields(unpacked.data.via.array.ptr, out);
	}
	msgpack_unpacked_destroy(&unpacked);
	return rc;
}
