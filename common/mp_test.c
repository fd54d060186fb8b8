/* SPDX-License-Identifier: MIT */
/* mp_test.c - cmocka tests for body parsing, the bounded typed getters and the key/value packers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

/* ---- mp_body_parse --------------------------------------------------------------------------- */

typedef struct ParseCase {
	const char *name;
	const char *bytes;
	size_t len;
	int rc;
	uint32_t entries; /* map size when rc == 0 */
} ParseCase;

#define PC(n, b, rc, e)                                                                                      \
	{                                                                                                    \
		n, b, sizeof(b) - 1, rc, e                                                                   \
	}

static const ParseCase parse_cases[] = {
	/* happy */
	{ "empty body is an empty map", "", 0, 0, 0 },
	PC("empty fixmap", "\x80", 0, 0),
	PC("one entry",
	   "\x81\xa1"
	   "a"
	   "\x01",
	   0, 1),
	PC("map16 spelling",
	   "\xde\x00\x02\xa1"
	   "a"
	   "\x01\xa1"
	   "b"
	   "\xc2",
	   0, 2),
	PC("map32 spelling of empty", "\xdf\x00\x00\x00\x00", 0, 0),
	PC("nested values",
	   "\x81\xa1"
	   "a"
	   "\x81\xa1"
	   "b"
	   "\x92\x01\x02",
	   0, 1),
	PC("non-string key",
	   "\x81\x07\xa1"
	   "x",
	   0, 1),
	/* failures */
	PC("nil", "\xc0", -EBADMSG, 0),
	PC("positive int", "\x01", -EBADMSG, 0),
	PC("string",
	   "\xa1"
	   "a",
	   -EBADMSG, 0),
	PC("empty array", "\x90", -EBADMSG, 0),
	PC("array of a map", "\x91\x80", -EBADMSG, 0),
	PC("bin holding a map", "\xc4\x01\x80", -EBADMSG, 0),
	PC("trailing map", "\x80\x80", -EBADMSG, 0),
	PC("trailing nil",
	   "\x81\xa1"
	   "a"
	   "\x01\xc0",
	   -EBADMSG, 0),
	PC("trailing zero byte", "\x80\x00", -EBADMSG, 0),
	PC("truncated: value missing",
	   "\x81\xa1"
	   "a",
	   -EBADMSG, 0),
	PC("truncated: header only", "\x81", -EBADMSG, 0),
	PC("truncated: key string cut",
	   "\x81\xa5"
	   "ab",
	   -EBADMSG, 0),
	PC("truncated: map16 header", "\xde\x00", -EBADMSG, 0),
	PC("map32 claiming 2^16 entries, none present", "\xdf\x00\x01\x00\x00", -EBADMSG, 0),
	PC("reserved byte", "\xc1", -EBADMSG, 0),
	PC("reserved byte as value",
	   "\x81\xa1"
	   "a"
	   "\xc1",
	   -EBADMSG, 0),
};

static void test_body_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const ParseCase *c = &parse_cases[i];
		/* an exactly-sized copy so ASan catches any read past @len */
		uint8_t *copy = malloc(c->len ? c->len : 1);
		assert_non_null(copy);
		memcpy(copy, c->bytes, c->len);
		MpBody body;
		int rc = mp_body_parse(c->len ? copy : NULL, c->len, &body);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == 0) {
			assert_non_null(body.map);
			assert_int_equal(body.map->type, MSGPACK_OBJECT_MAP);
			assert_int_equal(body.map->via.map.size, c->entries);
			mp_body_free(&body);
			assert_null(body.map);
		}
		free(copy);
	}
}

/* Every strict prefix of a valid non-empty body is refused. */
static void test_body_parse_prefixes(void **state)
{
	(void)state;
	static const char whole[] = "\x83\xa4"
				    "name"
				    "\xa5"
				    "execd"
				    "\xa1"
				    "n"
				    "\xcd\x01\x2c"
				    "\xa4"
				    "flag"
				    "\xc3";
	size_t len = sizeof(whole) - 1;
	MpBody body;
	assert_int_equal(mp_body_parse((const uint8_t *)whole, len, &body), 0);
	mp_body_free(&body);
	for (size_t cut = 1; cut < len; cut++) {
		uint8_t *copy = malloc(cut);
		assert_non_null(copy);
		memcpy(copy, whole, cut);
		if (mp_body_parse(copy, cut, &body) != -EBADMSG)
			fail_msg("prefix of %zu/%zu bytes accepted", cut, len);
		free(copy);
	}
}

/* ---- getters --------------------------------------------------------------------------------- */

/* {"name":"execd","empty":"","n":42,"big":UINT64_MAX,"zero":0,"neg":-1,"flag":true,"off":false,
 *  "f":1.5,"nil":nil,"bin":bin"abc","arr":[1],"map":{},"num":"12", 7:"seven"} */
static void pack_fixture(msgpack_sbuffer *sb)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 15);
	mp_pack_cstr(&pk, "name");
	mp_pack_cstr(&pk, "execd");
	mp_pack_cstr(&pk, "empty");
	mp_pack_cstr(&pk, "");
	mp_pack_cstr(&pk, "n");
	msgpack_pack_uint64(&pk, 42);
	mp_pack_cstr(&pk, "big");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	mp_pack_cstr(&pk, "zero");
	msgpack_pack_uint64(&pk, 0);
	mp_pack_cstr(&pk, "neg");
	msgpack_pack_int64(&pk, -1);
	mp_pack_cstr(&pk, "flag");
	msgpack_pack_true(&pk);
	mp_pack_cstr(&pk, "off");
	msgpack_pack_false(&pk);
	mp_pack_cstr(&pk, "f");
	msgpack_pack_double(&pk, 1.5);
	mp_pack_cstr(&pk, "nil");
	msgpack_pack_nil(&pk);
	mp_pack_cstr(&pk, "bin");
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "abc", 3);
	mp_pack_cstr(&pk, "arr");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	mp_pack_cstr(&pk, "map");
	msgpack_pack_map(&pk, 0);
	mp_pack_cstr(&pk, "num");
	mp_pack_cstr(&pk, "12");
	msgpack_pack_uint64(&pk, 7);
	mp_pack_cstr(&pk, "seven");
}

typedef enum GetterKind { GET_STR, GET_U64, GET_BOOL } GetterKind;

typedef struct GetCase {
	const char *name;
	GetterKind getter;
	const char *key;
	size_t max_len; /* GET_STR */
	int rc;
	const char *str; /* expected GET_STR value */
	uint64_t u64;	 /* expected GET_U64 value, or GET_BOOL as 0/1 */
} GetCase;

static const GetCase get_cases[] = {
	/* strings */
	{ "str", GET_STR, "name", 100, 0, "execd", 0 },
	{ "str exactly max_len", GET_STR, "name", 5, 0, "execd", 0 },
	{ "empty str with max 0", GET_STR, "empty", 0, 0, "", 0 },
	{ "str one over max_len", GET_STR, "name", 4, -EINVAL, NULL, 0 },
	{ "str with max 0", GET_STR, "name", 0, -EINVAL, NULL, 0 },
	{ "str: absent", GET_STR, "missing", 100, -ENOENT, NULL, 0 },
	{ "str: key prefix only", GET_STR, "nam", 100, -ENOENT, NULL, 0 },
	{ "str: key longer", GET_STR, "names", 100, -ENOENT, NULL, 0 },
	{ "str: empty key", GET_STR, "", 100, -ENOENT, NULL, 0 },
	{ "str: key is case-sensitive", GET_STR, "NAME", 100, -ENOENT, NULL, 0 },
	{ "str: int value", GET_STR, "n", 100, -EINVAL, NULL, 0 },
	{ "str: bin value", GET_STR, "bin", 100, -EINVAL, NULL, 0 },
	{ "str: nil value", GET_STR, "nil", 100, -EINVAL, NULL, 0 },
	{ "str: array value", GET_STR, "arr", 100, -EINVAL, NULL, 0 },
	/* integers */
	{ "u64", GET_U64, "n", 0, 0, NULL, 42 },
	{ "u64 max", GET_U64, "big", 0, 0, NULL, UINT64_MAX },
	{ "u64 zero", GET_U64, "zero", 0, 0, NULL, 0 },
	{ "u64: negative", GET_U64, "neg", 0, -EINVAL, NULL, 0 },
	{ "u64: float", GET_U64, "f", 0, -EINVAL, NULL, 0 },
	{ "u64: numeric string", GET_U64, "num", 0, -EINVAL, NULL, 0 },
	{ "u64: bool", GET_U64, "flag", 0, -EINVAL, NULL, 0 },
	{ "u64: map", GET_U64, "map", 0, -EINVAL, NULL, 0 },
	{ "u64: absent", GET_U64, "N", 0, -ENOENT, NULL, 0 },
	/* booleans */
	{ "bool true", GET_BOOL, "flag", 0, 0, NULL, 1 },
	{ "bool false", GET_BOOL, "off", 0, 0, NULL, 0 },
	{ "bool: zero", GET_BOOL, "zero", 0, -EINVAL, NULL, 0 },
	{ "bool: nil", GET_BOOL, "nil", 0, -EINVAL, NULL, 0 },
	{ "bool: string", GET_BOOL, "name", 0, -EINVAL, NULL, 0 },
	{ "bool: absent", GET_BOOL, "flags", 0, -ENOENT, NULL, 0 },
	{ "bool: non-string key is not found by text", GET_BOOL, "7", 0, -ENOENT, NULL, 0 },
};

static void test_getters(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	pack_fixture(&sb);
	MpBody body;
	assert_int_equal(mp_body_parse((const uint8_t *)sb.data, sb.size, &body), 0);
	const char *lo = sb.data, *hi = sb.data + sb.size;
	for (size_t i = 0; i < sizeof(get_cases) / sizeof(get_cases[0]); i++) {
		const GetCase *c = &get_cases[i];
		int rc;
		const char *text = NULL;
		size_t len = 0;
		uint64_t u = 0;
		bool b = false;
		switch (c->getter) {
		case GET_STR:
			rc = mp_get_str(body.map, c->key, c->max_len, &text, &len);
			break;
		case GET_U64:
			rc = mp_get_u64(body.map, c->key, &u);
			break;
		default:
			rc = mp_get_bool(body.map, c->key, &b);
			break;
		}
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc != 0)
			continue;
		switch (c->getter) {
		case GET_STR:
			assert_int_equal(len, strlen(c->str));
			if (len) {
				assert_memory_equal(text, c->str, len);
				/* borrowed from the body's buffer, not copied */
				assert_true(text >= lo && text + len <= hi);
			}
			break;
		case GET_U64:
			assert_true(u == c->u64);
			break;
		default:
			assert_int_equal(b, c->u64 != 0);
			break;
		}
	}
	mp_body_free(&body);
	msgpack_sbuffer_destroy(&sb);
}

static void test_getters_without_a_map(void **state)
{
	(void)state;
	const char *text;
	size_t len;
	uint64_t u;
	bool b;
	assert_null(mp_map_find(NULL, "a"));
	assert_int_equal(mp_get_str(NULL, "a", 10, &text, &len), -ENOENT);
	assert_int_equal(mp_get_u64(NULL, "a", &u), -ENOENT);
	assert_int_equal(mp_get_bool(NULL, "a", &b), -ENOENT);
	/* an array is not searched as if it were a map */
	msgpack_object arr = { .type = MSGPACK_OBJECT_ARRAY };
	assert_null(mp_map_find(&arr, "a"));
	assert_int_equal(mp_get_u64(&arr, "a", &u), -ENOENT);
	/* the empty body has nothing in it */
	MpBody body;
	assert_int_equal(mp_body_parse(NULL, 0, &body), 0);
	assert_null(mp_map_find(body.map, "a"));
	assert_int_equal(mp_get_bool(body.map, "a", &b), -ENOENT);
	mp_body_free(&body);
	mp_body_free(NULL); /* tolerated */
}

/* ---- packers --------------------------------------------------------------------------------- */

typedef struct PackCase {
	const char *name;
	GetterKind kind;
	const char *key;
	const char *str;
	uint64_t u64;
	bool flag;
	const char *bytes; /* expected encoding of the key/value pair per the msgpack spec, or NULL */
	size_t bytes_len;
} PackCase;

#define BYTES(b) b, sizeof(b) - 1

static char long_text[70001]; /* str32 territory, filled in main() */

static const PackCase pack_cases[] = {
	{ "str", GET_STR, "name", "execd", 0, false,
	  BYTES("\xa4"
		"name"
		"\xa5"
		"execd") },
	{ "empty str", GET_STR, "e", "", 0, false,
	  BYTES("\xa1"
		"e"
		"\xa0") },
	{ "31-byte str is fixstr", GET_STR, "k", "0123456789012345678901234567890", 0, false,
	  BYTES("\xa1"
		"k"
		"\xbf"
		"0123456789012345678901234567890") },
	{ "32-byte str is str8", GET_STR, "k", "01234567890123456789012345678901", 0, false,
	  BYTES("\xa1"
		"k"
		"\xd9\x20"
		"01234567890123456789012345678901") },
	{ "70000-byte str", GET_STR, "long", long_text, 0, false, NULL, 0 },
	{ "u64 0", GET_U64, "n", NULL, 0, false,
	  BYTES("\xa1"
		"n"
		"\x00") },
	{ "u64 127", GET_U64, "n", NULL, 127, false,
	  BYTES("\xa1"
		"n"
		"\x7f") },
	{ "u64 128", GET_U64, "n", NULL, 128, false,
	  BYTES("\xa1"
		"n"
		"\xcc\x80") },
	{ "u64 300", GET_U64, "n", NULL, 300, false,
	  BYTES("\xa1"
		"n"
		"\xcd\x01\x2c") },
	{ "u64 65536", GET_U64, "n", NULL, 65536, false,
	  BYTES("\xa1"
		"n"
		"\xce\x00\x01\x00\x00") },
	{ "u64 2^32", GET_U64, "n", NULL, 1ull << 32, false,
	  BYTES("\xa1"
		"n"
		"\xcf\x00\x00\x00\x01\x00\x00\x00\x00") },
	{ "u64 max", GET_U64, "n", NULL, UINT64_MAX, false,
	  BYTES("\xa1"
		"n"
		"\xcf\xff\xff\xff\xff\xff\xff\xff\xff") },
	{ "bool true", GET_BOOL, "ok", NULL, 0, true,
	  BYTES("\xa2"
		"ok"
		"\xc3") },
	{ "bool false", GET_BOOL, "ok", NULL, 0, false,
	  BYTES("\xa2"
		"ok"
		"\xc2") },
};

static int pack_one(msgpack_packer *pk, const PackCase *c)
{
	switch (c->kind) {
	case GET_STR:
		return mp_pack_kv_str(pk, c->key, c->str);
	case GET_U64:
		return mp_pack_kv_u64(pk, c->key, c->u64);
	default:
		return mp_pack_kv_bool(pk, c->key, c->flag);
	}
}

static void test_pack_round_trips(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pack_cases) / sizeof(pack_cases[0]); i++) {
		const PackCase *c = &pack_cases[i];
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		assert_int_equal(msgpack_pack_map(&pk, 1), 0);
		assert_int_equal(pack_one(&pk, c), 0);
		if (c->bytes) {
			if (sb.size != 1 + c->bytes_len || memcmp(sb.data + 1, c->bytes, c->bytes_len) != 0)
				fail_msg("%s: unexpected encoding (%zu bytes)", c->name, sb.size);
		}
		MpBody body;
		assert_int_equal(mp_body_parse((const uint8_t *)sb.data, sb.size, &body), 0);
		const char *text;
		size_t len;
		uint64_t u;
		bool b;
		switch (c->kind) {
		case GET_STR:
			assert_int_equal(mp_get_str(body.map, c->key, strlen(c->str), &text, &len), 0);
			assert_int_equal(len, strlen(c->str));
			if (len)
				assert_memory_equal(text, c->str, len);
			break;
		case GET_U64:
			assert_int_equal(mp_get_u64(body.map, c->key, &u), 0);
			assert_true(u == c->u64);
			break;
		default:
			b = !c->flag;
			assert_int_equal(mp_get_bool(body.map, c->key, &b), 0);
			assert_int_equal(b, c->flag);
			break;
		}
		mp_body_free(&body);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void test_pack_cstr(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	assert_int_equal(mp_pack_cstr(&pk, "abc"), 0);
	assert_int_equal(mp_pack_cstr(&pk, ""), 0);
	assert_int_equal(sb.size, 5);
	assert_memory_equal(sb.data,
			    "\xa3"
			    "abc"
			    "\xa0",
			    5);
	msgpack_sbuffer_destroy(&sb);
}

/* A sink that fails on its Nth write: the packers report -1. */
typedef struct FailingSink {
	unsigned fail_at;
	unsigned calls;
} FailingSink;

static int failing_write(void *ctx, const char *data, size_t len)
{
	FailingSink *s = ctx;
	(void)data;
	(void)len;
	return s->calls++ == s->fail_at ? -1 : 0;
}

static void test_pack_write_failures(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pack_cases) / sizeof(pack_cases[0]); i++) {
		const PackCase *c = &pack_cases[i];
		FailingSink count = { .fail_at = UINT32_MAX };
		msgpack_packer pk;
		msgpack_packer_init(&pk, &count, failing_write);
		assert_int_equal(pack_one(&pk, c), 0);
		for (unsigned n = 0; n < count.calls; n++) {
			FailingSink sink = { .fail_at = n };
			msgpack_packer_init(&pk, &sink, failing_write);
			if (pack_one(&pk, c) != -1)
				fail_msg("%s: failure at write %u not reported", c->name, n);
			assert_int_equal(sink.calls, n + 1); /* nothing written after the failure */
		}
	}
	FailingSink sink = { .fail_at = 0 };
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sink, failing_write);
	assert_int_equal(mp_pack_cstr(&pk, "abc"), -1);
}

int main(void)
{
	memset(long_text, 'x', sizeof(long_text) - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_parse),
		cmocka_unit_test(test_body_parse_prefixes),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_getters_without_a_map),
		cmocka_unit_test(test_pack_round_trips),
		cmocka_unit_test(test_pack_cstr),
		cmocka_unit_test(test_pack_write_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
