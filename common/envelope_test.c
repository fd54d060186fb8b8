/* SPDX-License-Identifier: MIT */
/* envelope_test.c - cmocka tests for the envelope codec: round trips, the wire layout of
 * agentd-ipc(7) checked element by element, and every rejection path of envelope_decode()
 * and envelope_validate() on hand-built msgpack. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"

/* ---- allocation watch ------------------------------------------------------------------------ */
/* Under AddressSanitizer every allocation can be observed, so the huge-container cases can prove
 * that msgpack-c never reserved storage for a declared element count. Without ASan the hook is
 * absent (weak symbol) and those cases still check the result code and the time taken. */
extern int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
						     void (*free_hook)(const volatile void *))
	__attribute__((weak));

static size_t largest_allocation;
static int watching_allocations;

static void on_malloc(const volatile void *ptr, size_t size)
{
	(void)ptr;
	if (watching_allocations && size > largest_allocation)
		largest_allocation = size;
}

static void on_free(const volatile void *ptr)
{
	(void)ptr;
}

static int allocation_watch_available(void)
{
	static int state = -1;
	if (state < 0)
		state = __sanitizer_install_malloc_and_free_hooks &&
			__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;
	return state;
}

/* ---- byte sinks ------------------------------------------------------------------------------ */

static int sbuf_write(void *ctx, const char *data, size_t len)
{
	return msgpack_sbuffer_write(ctx, data, len);
}

/* Fails on the Nth write (0-based); counts writes and bytes accepted before that. */
typedef struct FailingSink {
	unsigned fail_at;
	unsigned calls;
	size_t bytes;
} FailingSink;

static int failing_write(void *ctx, const char *data, size_t len)
{
	FailingSink *s = ctx;
	(void)data;
	if (s->calls++ == s->fail_at)
		return -1;
	s->bytes += len;
	return 0;
}

/* ---- a valid envelope of each kind ----------------------------------------------------------- */

static const uint8_t small_body[] = { 0x81, 0xa2, 'o', 'k', 0xc3 }; /* {"ok": true} */

static Envelope valid_envelope(EnvelopeKind kind)
{
	Envelope env;
	memset(&env, 0, sizeof(env));
	env.version = ENVELOPE_VERSION;
	env.kind = kind;
	env.id = 7;
	env.correlation_id = kind == ENVELOPE_RESPONSE ? 6 : 0;
	strcpy(env.source, "agentd");
	strcpy(env.destination, "execd");
	if (kind == ENVELOPE_REQUEST || kind == ENVELOPE_EVENT)
		strcpy(env.method, "exec/start");
	env.connection_id = 3;
	env.status = kind == ENVELOPE_RESPONSE ? -2 : 0;
	env.body = small_body;
	env.body_len = sizeof(small_body);
	return env;
}

static void encode_ok(const Envelope *env, msgpack_sbuffer *sb)
{
	msgpack_sbuffer_init(sb);
	assert_int_equal(envelope_encode(env, sbuf_write, sb), 0);
	assert_non_null(sb->data);
}

static void assert_envelope_equal(const Envelope *want, const Envelope *got)
{
	assert_int_equal(got->version, want->version);
	assert_int_equal(got->kind, want->kind);
	assert_true(got->id == want->id);
	assert_true(got->correlation_id == want->correlation_id);
	assert_string_equal(got->source, want->source);
	assert_string_equal(got->destination, want->destination);
	assert_string_equal(got->method, want->method);
	assert_true(got->connection_id == want->connection_id);
	assert_int_equal(got->status, want->status);
	assert_int_equal(got->body_len, want->body_len);
	if (want->body_len)
		assert_memory_equal(got->body, want->body, want->body_len);
}

/* ---- round trips ----------------------------------------------------------------------------- */

typedef struct RoundTripCase {
	const char *name;
	EnvelopeKind kind;
	uint64_t id, correlation_id, connection_id;
	int32_t status;
	const char *source, *destination, *method; /* NULL: keep valid_envelope()'s */
	size_t body_len;			   /* bytes of a patterned body; SIZE_MAX: none */
} RoundTripCase;

#define NAME31 "abcdefghijklmnopqrstuvwxyz_0123"
#define METHOD63 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/.-" /* 66: cut below */

static const RoundTripCase round_trip_cases[] = {
	{ "request", ENVELOPE_REQUEST, 1, 0, 0, 0, NULL, NULL, NULL, 5 },
	{ "response ok", ENVELOPE_RESPONSE, 2, 1, 9, 0, NULL, NULL, "", 5 },
	{ "response with status", ENVELOPE_RESPONSE, 3, 2, 9, ENVELOPE_STATUS_UNAVAILABLE, NULL, NULL, "",
	  0 },
	{ "response status -1", ENVELOPE_RESPONSE, 3, 2, 9, -1, NULL, NULL, "", 0 },
	{ "response INT32_MIN status", ENVELOPE_RESPONSE, 4, 3, 0, INT32_MIN, NULL, NULL, "", 0 },
	{ "response keeps a method", ENVELOPE_RESPONSE, 4, 3, 0, 0, NULL, NULL, "exec/start", 0 },
	{ "event", ENVELOPE_EVENT, 5, 0, 12, 0, "watchd", "agentd", "fs/changed", 5 },
	{ "credit", ENVELOPE_CREDIT, 6, 0, 12, 0, "agentd", "execd", "", 0 },
	{ "credit with method", ENVELOPE_CREDIT, 6, 0, 12, 0, "agentd", "execd", "exec/output", 0 },
	{ "ids at UINT64_MAX", ENVELOPE_RESPONSE, UINT64_MAX, UINT64_MAX, UINT64_MAX, 0, NULL, NULL, "", 5 },
	{ "ids at 2^32", ENVELOPE_RESPONSE, 1ull << 32, 1ull << 32, 1ull << 32, 0, NULL, NULL, NULL, 5 },
	{ "ids at 2^16", ENVELOPE_EVENT, 65536, 0, 65535, 0, NULL, NULL, NULL, 5 },
	{ "31-char names", ENVELOPE_REQUEST, 9, 0, 0, 0, NAME31, NAME31, NULL, 5 },
	{ "one-char names", ENVELOPE_REQUEST, 9, 0, 0, 0, "a", "_", NULL, 5 },
	{ "63-char method of every class", ENVELOPE_REQUEST, 9, 0, 0, 0, NULL, NULL, METHOD63, 5 },
	{ "empty body", ENVELOPE_REQUEST, 10, 0, 0, 0, NULL, NULL, NULL, SIZE_MAX },
	{ "bin8 boundary body", ENVELOPE_EVENT, 11, 0, 0, 0, NULL, NULL, NULL, 255 },
	{ "bin16 body", ENVELOPE_EVENT, 11, 0, 0, 0, NULL, NULL, NULL, 256 },
	{ "bin32 body", ENVELOPE_EVENT, 11, 0, 0, 0, NULL, NULL, NULL, 65536 },
	{ "max body", ENVELOPE_EVENT, 12, 0, 0, 0, NULL, NULL, NULL, ENVELOPE_MAX_BODY_BYTES },
};

static uint8_t *patterned(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31u + 7u);
	return p;
}

static Envelope case_envelope(const RoundTripCase *c, uint8_t **owned)
{
	Envelope env = valid_envelope(c->kind);
	env.id = c->id;
	env.correlation_id = c->correlation_id;
	env.connection_id = c->connection_id;
	env.status = c->status;
	if (c->source)
		strcpy(env.source, c->source);
	if (c->destination)
		strcpy(env.destination, c->destination);
	if (c->method) {
		memset(env.method, 0, sizeof(env.method));
		strncpy(env.method, c->method, ENVELOPE_METHOD_MAX);
	}
	*owned = NULL;
	if (c->body_len == SIZE_MAX) {
		env.body = NULL;
		env.body_len = 0;
	} else {
		*owned = patterned(c->body_len);
		env.body = *owned;
		env.body_len = c->body_len;
	}
	return env;
}

static void test_round_trips(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(round_trip_cases) / sizeof(round_trip_cases[0]); i++) {
		const RoundTripCase *c = &round_trip_cases[i];
		print_message("round trip: %s\n", c->name);
		uint8_t *owned;
		Envelope env = case_envelope(c, &owned);
		assert_int_equal(envelope_validate(&env), 0);
		msgpack_sbuffer sb;
		encode_ok(&env, &sb);
		/* The frame bound covers the largest body plus the headers. */
		assert_true(sb.size <= ENVELOPE_MAX_BYTES);
		Envelope got;
		memset(&got, 0xa5, sizeof(got));
		assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &got), 0);
		assert_envelope_equal(&env, &got);
		/* The body is borrowed from the input: the last body_len bytes of the frame. */
		if (env.body_len)
			assert_ptr_equal(got.body, (const uint8_t *)sb.data + sb.size - env.body_len);
		/* Encoding what was decoded gives the same bytes. */
		msgpack_sbuffer again;
		encode_ok(&got, &again);
		assert_int_equal(again.size, sb.size);
		assert_memory_equal(again.data, sb.data, sb.size);
		msgpack_sbuffer_destroy(&again);
		msgpack_sbuffer_destroy(&sb);
		free(owned);
	}
}

/* The encoding follows agentd-ipc(7) element by element, read back with plain msgpack-c. */
static void test_wire_layout(void **state)
{
	(void)state;
	Envelope env = valid_envelope(ENVELOPE_RESPONSE);
	env.id = UINT64_MAX;
	env.correlation_id = 0x1122334455667788ull;
	env.connection_id = 99;
	env.status = -113;
	msgpack_sbuffer sb;
	encode_ok(&env, &sb);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, sb.size);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(u.data.via.array.size, 10);
	const msgpack_object *f = u.data.via.array.ptr;
	assert_int_equal(f[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(f[0].via.u64, 1);
	assert_int_equal(f[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(f[1].via.u64, 1); /* response */
	assert_int_equal(f[2].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_true(f[2].via.u64 == UINT64_MAX);
	assert_int_equal(f[3].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_true(f[3].via.u64 == 0x1122334455667788ull);
	assert_int_equal(f[4].type, MSGPACK_OBJECT_STR);
	assert_int_equal(f[4].via.str.size, 6);
	assert_memory_equal(f[4].via.str.ptr, "agentd", 6);
	assert_int_equal(f[5].type, MSGPACK_OBJECT_STR);
	assert_int_equal(f[5].via.str.size, 5);
	assert_memory_equal(f[5].via.str.ptr, "execd", 5);
	assert_int_equal(f[6].type, MSGPACK_OBJECT_STR);
	assert_int_equal(f[6].via.str.size, 0);
	assert_int_equal(f[7].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(f[7].via.u64, 99);
	assert_int_equal(f[8].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	assert_int_equal(f[8].via.i64, -113);
	assert_int_equal(f[9].type, MSGPACK_OBJECT_BIN);
	assert_int_equal(f[9].via.bin.size, sizeof(small_body));
	assert_memory_equal(f[9].via.bin.ptr, small_body, sizeof(small_body));
	msgpack_unpacked_destroy(&u);
	/* Byte for byte, with every integer in msgpack's shortest form (agentd-ipc(7)). */
	static const uint8_t want[] = {
		0x9a,						      /* fixarray of 10 */
		0x01,						      /* version: positive fixint */
		0x01,						      /* kind: response */
		0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* id: uint64 */
		0xcf, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* correlation_id: uint64 */
		0xa6, 'a',  'g',  'e',	'n',  't',  'd',	      /* source: fixstr */
		0xa5, 'e',  'x',  'e',	'c',  'd',		      /* destination: fixstr */
		0xa0,						      /* method: empty fixstr */
		0x63,						      /* connection_id 99: fixint */
		0xd0, 0x8f,					      /* status -113: int8 */
		0xc4, 0x05, 0x81, 0xa2, 'o',  'k',  0xc3,	      /* body: bin8 */
	};
	assert_int_equal(sb.size, sizeof(want));
	assert_memory_equal(sb.data, want, sizeof(want));
	msgpack_sbuffer_destroy(&sb);
}

/* ---- hand-built envelopes -------------------------------------------------------------------- */

typedef enum ValueKind {
	V_DEFAULT = 0, /* the valid request field at this position */
	V_UINT,	       /* msgpack_pack_uint64(u) */
	V_INT,	       /* msgpack_pack_int64(i) */
	V_UINT64_WIDE, /* 0xcf + 8 bytes even for small u: non-minimal but valid msgpack */
	V_STR,	       /* str of s[0..len) (may hold NUL) */
	V_STR16,       /* 0xda header even for short s: valid msgpack */
	V_BIN,	       /* bin of s[0..len) */
	V_NIL,
	V_TRUE,
	V_FLOAT,
	V_DOUBLE,
	V_ARRAY1, /* [nil] */
	V_MAP1,	  /* {"k": nil} */
	V_RAW,	  /* s[0..len) appended verbatim */
} ValueKind;

typedef struct Value {
	ValueKind kind;
	uint64_t u;
	int64_t i;
	const char *s;
	size_t len;
} Value;

#define U(x)                                                                                                 \
	{                                                                                                    \
		.kind = V_UINT, .u = (x)                                                                     \
	}
#define I(x)                                                                                                 \
	{                                                                                                    \
		.kind = V_INT, .i = (x)                                                                      \
	}
#define S(x)                                                                                                 \
	{                                                                                                    \
		.kind = V_STR, .s = (x), .len = sizeof(x) - 1                                                \
	}
#define B(x)                                                                                                 \
	{                                                                                                    \
		.kind = V_BIN, .s = (x), .len = sizeof(x) - 1                                                \
	}
#define RAW(x)                                                                                               \
	{                                                                                                    \
		.kind = V_RAW, .s = (x), .len = sizeof(x) - 1                                                \
	}
#define NIL                                                                                                  \
	{                                                                                                    \
		.kind = V_NIL                                                                                \
	}

static void pack_value(msgpack_packer *pk, msgpack_sbuffer *sb, const Value *v)
{
	switch (v->kind) {
	case V_DEFAULT:
		fail_msg("pack_value(V_DEFAULT)");
		break;
	case V_UINT:
		msgpack_pack_uint64(pk, v->u);
		break;
	case V_INT:
		msgpack_pack_int64(pk, v->i);
		break;
	case V_UINT64_WIDE: {
		uint8_t b[9] = { 0xcf };
		for (int k = 0; k < 8; k++)
			b[1 + k] = (uint8_t)(v->u >> (56 - 8 * k));
		msgpack_sbuffer_write(sb, (const char *)b, sizeof(b));
		break;
	}
	case V_STR:
		msgpack_pack_str(pk, v->len);
		msgpack_pack_str_body(pk, v->s, v->len);
		break;
	case V_STR16: {
		uint8_t h[3] = { 0xda, (uint8_t)(v->len >> 8), (uint8_t)v->len };
		msgpack_sbuffer_write(sb, (const char *)h, sizeof(h));
		msgpack_sbuffer_write(sb, v->s, v->len);
		break;
	}
	case V_BIN:
		msgpack_pack_bin(pk, v->len);
		msgpack_pack_bin_body(pk, v->s, v->len);
		break;
	case V_NIL:
		msgpack_pack_nil(pk);
		break;
	case V_TRUE:
		msgpack_pack_true(pk);
		break;
	case V_FLOAT:
		msgpack_pack_float(pk, 1.0f);
		break;
	case V_DOUBLE:
		msgpack_pack_double(pk, 1.0);
		break;
	case V_ARRAY1:
		msgpack_pack_array(pk, 1);
		msgpack_pack_nil(pk);
		break;
	case V_MAP1:
		msgpack_pack_map(pk, 1);
		msgpack_pack_str(pk, 1);
		msgpack_pack_str_body(pk, "k", 1);
		msgpack_pack_nil(pk);
		break;
	case V_RAW:
		msgpack_sbuffer_write(sb, v->s, v->len);
		break;
	}
}

/* The valid request the hand-built cases start from (agentd-ipc(7) field order). */
static const Value default_fields[ENVELOPE_FIELDS] = {
	U(1), U(0), U(7), U(0), S("agentd"), S("execd"), S("exec/start"), U(3), U(0), B("\x81\xa2ok\xc3"),
};

typedef struct BuildSpec {
	unsigned count;		      /* array elements; 0 means 10 */
	Value f[ENVELOPE_FIELDS + 2]; /* per-field override, V_DEFAULT keeps default_fields[] */
	const char *trail;	      /* bytes appended after the array */
	size_t trail_len;
} BuildSpec;

static void build(const BuildSpec *spec, msgpack_sbuffer *sb)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	unsigned count = spec->count ? spec->count : ENVELOPE_FIELDS;
	msgpack_pack_array(&pk, count);
	for (unsigned i = 0; i < count; i++) {
		const Value *v = &(const Value)NIL; /* elements past the last overridable one */
		if (i < ENVELOPE_FIELDS + 2 && spec->f[i].kind != V_DEFAULT)
			v = &spec->f[i];
		else if (i < ENVELOPE_FIELDS)
			v = &default_fields[i];
		pack_value(&pk, sb, v);
	}
	if (spec->trail_len)
		msgpack_sbuffer_write(sb, spec->trail, spec->trail_len);
}

/* Hand-built inputs that are valid msgpack in an unusual spelling, and must decode. */
typedef struct HandValidCase {
	const char *name;
	BuildSpec spec;
	uint64_t id;
	const char *source;
	size_t body_len;
} HandValidCase;

static const HandValidCase hand_valid_cases[] = {
	{ "defaults", { 0 }, 7, "agentd", 5 },
	{ "uint64 spelling of small ints",
	  { .f = { { .kind = V_UINT64_WIDE, .u = 1 },
		   { .kind = V_UINT64_WIDE, .u = 0 },
		   { .kind = V_UINT64_WIDE, .u = 42 } } },
	  42,
	  "agentd",
	  5 },
	{ "str8 source",
	  { .f[4] = RAW("\xd9\x05"
			"authd") },
	  7,
	  "authd",
	  5 },
	{ "str16 source", { .f[4] = { .kind = V_STR16, .s = "watchd", .len = 6 } }, 7, "watchd", 5 },
	{ "str32 source",
	  { .f[4] = RAW("\xdb\x00\x00\x00\x04"
			"a_b9") },
	  7,
	  "a_b9",
	  5 },
	{ "bin16 empty body", { .f[9] = RAW("\xc5\x00\x00") }, 7, "agentd", 0 },
	{ "bin32 body",
	  { .f[9] = RAW("\xc6\x00\x00\x00\x02"
			"\x80\x80") },
	  7,
	  "agentd",
	  2 },
	{ "status as uint8", { .f[8] = RAW("\xcc\x00") }, 7, "agentd", 5 },
};

static void test_hand_built_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hand_valid_cases) / sizeof(hand_valid_cases[0]); i++) {
		const HandValidCase *c = &hand_valid_cases[i];
		print_message("hand-built valid: %s\n", c->name);
		msgpack_sbuffer sb;
		build(&c->spec, &sb);
		Envelope got;
		assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &got), 0);
		assert_int_equal(got.version, 1);
		assert_int_equal(got.kind, ENVELOPE_REQUEST);
		assert_true(got.id == c->id);
		assert_true(got.correlation_id == 0);
		assert_string_equal(got.source, c->source);
		assert_string_equal(got.destination, "execd");
		assert_string_equal(got.method, "exec/start");
		assert_true(got.connection_id == 3);
		assert_int_equal(got.status, 0);
		assert_int_equal(got.body_len, c->body_len);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* ---- decode rejections ----------------------------------------------------------------------- */

typedef struct RejectCase {
	const char *name;
	BuildSpec spec;
	int rc;
} RejectCase;

#define KIND(k) .f[1] = U(k)

static const RejectCase reject_cases[] = {
	/* version */
	{ "version 0", { .f[0] = U(0) }, -EPROTONOSUPPORT },
	{ "version 2", { .f[0] = U(2) }, -EPROTONOSUPPORT },
	{ "version UINT32_MAX", { .f[0] = U(UINT32_MAX) }, -EPROTONOSUPPORT },
	{ "version 2^32 + 1", { .f[0] = U(1ull << 32 | 1) }, -EPROTONOSUPPORT },
	{ "version UINT64_MAX", { .f[0] = U(UINT64_MAX) }, -EPROTONOSUPPORT },
	/* element count */
	{ "9 elements", { .count = 9 }, -EBADMSG },
	{ "11 elements", { .count = 11 }, -EBADMSG },
	{ "1 element", { .count = 1 }, -EBADMSG },
	{ "15 elements", { .count = 15 }, -EBADMSG },
	/* trailing bytes */
	{ "trailing nil", { .trail = "\xc0", .trail_len = 1 }, -EBADMSG },
	{ "trailing zero byte", { .trail = "\x00", .trail_len = 1 }, -EBADMSG },
	{ "trailing array header", { .trail = "\x9a", .trail_len = 1 }, -EBADMSG },
	/* kind */
	{ "kind 4", { KIND(4) }, -EINVAL },
	{ "kind 255", { KIND(255) }, -EINVAL },
	{ "kind 2^32", { KIND(1ull << 32) }, -EINVAL },
	{ "kind -1", { .f[1] = I(-1) }, -EBADMSG },
	/* ids */
	{ "id 0", { .f[2] = U(0) }, -EINVAL },
	{ "response with correlation 0", { KIND(ENVELOPE_RESPONSE), .f[3] = U(0), .f[6] = S("") }, -EINVAL },
	/* status only on responses */
	{ "request with status 1", { .f[8] = U(1) }, -EINVAL },
	{ "request with status -1", { .f[8] = I(-1) }, -EINVAL },
	{ "event with status -113", { KIND(ENVELOPE_EVENT), .f[8] = I(-113) }, -EINVAL },
	{ "credit with status 5", { KIND(ENVELOPE_CREDIT), .f[6] = S(""), .f[8] = U(5) }, -EINVAL },
	/* correlation only on responses, and a status is never positive */
	{ "request with correlation 7", { .f[3] = U(7) }, -EINVAL },
	{ "event with correlation 1", { KIND(ENVELOPE_EVENT), .f[3] = U(1) }, -EINVAL },
	{ "response with status 1",
	  { KIND(ENVELOPE_RESPONSE), .f[3] = U(1), .f[6] = S(""), .f[8] = U(1) },
	  -EINVAL },
	/* a status that does not fit int32 is not a status at all */
	{ "status above INT32_MAX",
	  { KIND(ENVELOPE_RESPONSE), .f[3] = U(1), .f[8] = U(2147483648ull) },
	  -EBADMSG },
	{ "status below INT32_MIN",
	  { KIND(ENVELOPE_RESPONSE), .f[3] = U(1), .f[8] = I(-2147483649ll) },
	  -EBADMSG },
	/* service names */
	{ "empty source", { .f[4] = S("") }, -EINVAL },
	{ "32-char source", { .f[4] = S(NAME31 "4") }, -EINVAL },
	{ "uppercase source", { .f[4] = S("Agentd") }, -EINVAL },
	{ "source with slash", { .f[4] = S("agent/d") }, -EINVAL },
	{ "source with hyphen", { .f[4] = S("agent-d") }, -EINVAL },
	{ "source with dot", { .f[4] = S("agent.d") }, -EINVAL },
	{ "source with space", { .f[4] = S("agent d") }, -EINVAL },
	{ "source with UTF-8", { .f[4] = S("agent\xc3\xa9") }, -EINVAL },
	{ "empty destination", { .f[5] = S("") }, -EINVAL },
	{ "32-char destination", { .f[5] = S(NAME31 "x") }, -EINVAL },
	{ "uppercase destination", { .f[5] = S("EXECD") }, -EINVAL },
	{ "destination with slash", { .f[5] = S("/execd") }, -EINVAL },
	/* method */
	{ "empty method on request", { .f[6] = S("") }, -EINVAL },
	{ "empty method on event", { KIND(ENVELOPE_EVENT), .f[6] = S("") }, -EINVAL },
	{ "64-char method", { .f[6] = { .kind = V_STR, .s = METHOD63, .len = 64 } }, -EINVAL },
	{ "method with space", { .f[6] = S("exec start") }, -EINVAL },
	{ "method with colon", { .f[6] = S("exec:start") }, -EINVAL },
	{ "method with backslash", { .f[6] = S("exec\\start") }, -EINVAL },
	{ "method with newline", { .f[6] = S("exec\nstart") }, -EINVAL },
	{ "method with high byte", { .f[6] = S("exec\xff") }, -EINVAL },
	/* NUL bytes inside strings */
	{ "NUL in source", { .f[4] = S("age\0ntd") }, -EINVAL },
	{ "NUL at end of source", { .f[4] = S("agentd\0") }, -EINVAL },
	{ "NUL in destination", { .f[5] = S("\0execd") }, -EINVAL },
	{ "NUL in method", { .f[6] = S("exec\0start") }, -EINVAL },
	/* wrong types, one per field */
	{ "version as str", { .f[0] = S("1") }, -EBADMSG },
	{ "version negative", { .f[0] = I(-1) }, -EBADMSG },
	{ "version as float", { .f[0] = { .kind = V_FLOAT } }, -EBADMSG },
	{ "kind as str", { .f[1] = S("request") }, -EBADMSG },
	{ "kind as nil", { .f[1] = NIL }, -EBADMSG },
	{ "id as str", { .f[2] = S("7") }, -EBADMSG },
	{ "id negative", { .f[2] = I(-7) }, -EBADMSG },
	{ "id as double", { .f[2] = { .kind = V_DOUBLE } }, -EBADMSG },
	{ "correlation as bool", { .f[3] = { .kind = V_TRUE } }, -EBADMSG },
	{ "correlation negative", { .f[3] = I(-1) }, -EBADMSG },
	{ "source as bin", { .f[4] = B("agentd") }, -EBADMSG },
	{ "source as uint", { .f[4] = U(1) }, -EBADMSG },
	{ "destination as nil", { .f[5] = NIL }, -EBADMSG },
	{ "method as bin", { .f[6] = B("exec/start") }, -EBADMSG },
	{ "method as nil", { .f[6] = NIL }, -EBADMSG },
	{ "connection as str", { .f[7] = S("3") }, -EBADMSG },
	{ "connection negative", { .f[7] = I(-3) }, -EBADMSG },
	{ "status as str", { .f[8] = S("0") }, -EBADMSG },
	{ "status as double", { .f[8] = { .kind = V_DOUBLE } }, -EBADMSG },
	{ "status as nil", { .f[8] = NIL }, -EBADMSG },
	{ "body as str", { .f[9] = S("\x80") }, -EBADMSG },
	{ "body as nil", { .f[9] = NIL }, -EBADMSG },
	{ "body as uint", { .f[9] = U(0) }, -EBADMSG },
	{ "reserved byte 0xc1 as id", { .f[2] = RAW("\xc1") }, -EBADMSG },
	/* containers where a scalar is expected */
	{ "array as id", { .f[2] = { .kind = V_ARRAY1 } }, -EBADMSG },
	{ "map as source", { .f[4] = { .kind = V_MAP1 } }, -EBADMSG },
	{ "empty array as method", { .f[6] = RAW("\x90") }, -EBADMSG },
	{ "empty map as status", { .f[8] = RAW("\x80") }, -EBADMSG },
	{ "map as body", { .f[9] = { .kind = V_MAP1 } }, -EBADMSG },
	{ "array as version", { .f[0] = { .kind = V_ARRAY1 } }, -EBADMSG },
	/* ext types */
	{ "fixext1 as id", { .f[2] = RAW("\xd4\x01\x07") }, -EBADMSG },
	{ "fixext16 as status",
	  { .f[8] = RAW("\xd8\x01"
			"0123456789abcdef") },
	  -EBADMSG },
	{ "ext8 as body", { .f[9] = RAW("\xc7\x01\x05\x80") }, -EBADMSG },
	{ "ext16 as body", { .f[9] = RAW("\xc8\x00\x01\x05\x80") }, -EBADMSG },
	{ "ext32 as body", { .f[9] = RAW("\xc9\x00\x00\x00\x01\x05\x80") }, -EBADMSG },
	{ "timestamp ext as connection", { .f[7] = RAW("\xd6\xff\x00\x00\x00\x01") }, -EBADMSG },
	/* body size */
	{ "bin32 declaring max+1, 4 bytes present",
	  { .f[9] = RAW("\xc6\x00\x80\x00\x01"
			"\x80\x80\x80\x80") },
	  -EMSGSIZE },
	{ "bin32 declaring 4 GiB - 1, nothing present", { .f[9] = RAW("\xc6\xff\xff\xff\xff") }, -EMSGSIZE },
	/* exactly the limit declared but not present is truncated, not too large */
	{ "bin32 declaring max, 4 bytes present",
	  { .f[9] = RAW("\xc6\x00\x80\x00\x00"
			"\x80\x80\x80\x80") },
	  -EBADMSG },
	{ "bin8 declaring 10, 2 present", { .f[9] = RAW("\xc4\x0a\x80\x80") }, -EBADMSG },
	{ "str8 source declaring 200, 3 present",
	  { .f[4] = RAW("\xd9\xc8"
			"abc") },
	  -EBADMSG },
	{ "str32 method declaring 4 GiB - 1",
	  { .f[6] = RAW("\xdb\xff\xff\xff\xff"
			"ab") },
	  -EBADMSG },
	{ "truncated bin32 header", { .count = 10, .f[9] = RAW("\xc6\x00\x80") }, -EBADMSG },
	/* the version is read first, then the fields in order (agentd-ipc(7)) */
	{ "version 2 and id 0", { .f[0] = U(2), .f[2] = U(0) }, -EPROTONOSUPPORT },
	{ "version 2 and id as str", { .f[0] = U(2), .f[2] = S("7") }, -EPROTONOSUPPORT },
	{ "version 2 and kind 4", { .f[0] = U(2), KIND(4) }, -EPROTONOSUPPORT },
	{ "version 2 and body as str", { .f[0] = U(2), .f[9] = S("") }, -EPROTONOSUPPORT },
	{ "version as str and id 0", { .f[0] = S("1"), .f[2] = U(0) }, -EBADMSG },
	/* structure comes before any field: a nested container anywhere wins */
	{ "version 2 and array as body", { .f[0] = U(2), .f[9] = { .kind = V_ARRAY1 } }, -EBADMSG },
};

static void test_decode_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
		const RejectCase *c = &reject_cases[i];
		print_message("reject: %s\n", c->name);
		msgpack_sbuffer sb;
		build(&c->spec, &sb);
		Envelope out;
		int rc = envelope_decode((const uint8_t *)sb.data, sb.size, &out);
		if (rc != c->rc)
			fail_msg("%s: got %d, want %d", c->name, rc, c->rc);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* The default spec itself must decode, or every rejection above proves nothing. */
static void test_reject_baseline_is_valid(void **state)
{
	(void)state;
	static const BuildSpec specs[] = {
		{ 0 },
		{ KIND(ENVELOPE_RESPONSE), .f[3] = U(1), .f[6] = S(""), .f[8] = I(INT32_MIN) },
		{ KIND(ENVELOPE_RESPONSE), .f[3] = U(UINT64_MAX), .f[6] = S(""), .f[8] = I(-1) },
		{ KIND(ENVELOPE_EVENT) },
		{ KIND(ENVELOPE_CREDIT), .f[6] = S("") },
		{ .f[4] = S(NAME31) },
		{ .f[6] = { .kind = V_STR, .s = METHOD63, .len = 63 } },
		{ .f[9] = RAW("\xc4\x00") },
	};
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		msgpack_sbuffer sb;
		build(&specs[i], &sb);
		Envelope out;
		assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &out), 0);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* Whole inputs that are not an envelope array at all. */
typedef struct RawCase {
	const char *name;
	const char *bytes;
	size_t len;
	int rc;
} RawCase;

#define RAWCASE(n, b, r)                                                                                     \
	{                                                                                                    \
		n, b, sizeof(b) - 1, r                                                                       \
	}

static const RawCase raw_cases[] = {
	{ "empty input", "", 0, -EBADMSG },
	RAWCASE("nil", "\xc0", -EBADMSG),
	RAWCASE("positive fixint", "\x01", -EBADMSG),
	RAWCASE("empty map", "\x80", -EBADMSG),
	RAWCASE("fixmap of 10 nil pairs",
		"\x8a\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0"
		"\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0",
		-EBADMSG),
	RAWCASE("str",
		"\xa3"
		"abc",
		-EBADMSG),
	RAWCASE("bin", "\xc4\x01\x00", -EBADMSG),
	RAWCASE("empty array", "\x90", -EBADMSG),
	RAWCASE("fixarray 10 header only", "\x9a", -EBADMSG),
	RAWCASE("array32 claiming 2^31", "\xdd\x80\x00\x00\x00", -EBADMSG),
	RAWCASE("map32 claiming 2^32-1", "\xdf\xff\xff\xff\xff", -EBADMSG),
	RAWCASE("fixarray of 10 nils", "\x9a\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0", -EBADMSG),
};

static void test_decode_rejects_raw(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++) {
		const RawCase *c = &raw_cases[i];
		print_message("raw reject: %s\n", c->name);
		Envelope out;
		int rc = envelope_decode((const uint8_t *)c->bytes, c->len, &out);
		if (rc != c->rc)
			fail_msg("%s: got %d, want %d", c->name, rc, c->rc);
	}
}

/* The envelope array must be a fixarray: a 10-element array16/array32 is refused. */
static void test_decode_rejects_long_array_headers(void **state)
{
	(void)state;
	static const char *const headers[] = { "\xdc\x00\x0a", "\xdd\x00\x00\x00\x0a" };
	static const size_t header_lens[] = { 3, 5 };
	msgpack_sbuffer sb;
	build(&(const BuildSpec){ 0 }, &sb);
	Envelope out;
	assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &out), 0);
	for (size_t i = 0; i < 2; i++) {
		size_t len = sb.size - 1 + header_lens[i];
		uint8_t *buf = malloc(len);
		assert_non_null(buf);
		memcpy(buf, headers[i], header_lens[i]);
		memcpy(buf + header_lens[i], sb.data + 1, sb.size - 1);
		assert_int_equal(envelope_decode(buf, len, &out), -EBADMSG);
		free(buf);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Declared element counts must never turn into allocations. */
typedef struct HugeCase {
	const char *name;
	unsigned field;
	const char *header;
	size_t len;
} HugeCase;

#define HUGE(n, f, h)                                                                                        \
	{                                                                                                    \
		n, f, h, sizeof(h) - 1                                                                       \
	}

static const HugeCase huge_cases[] = {
	HUGE("array32 2^31 as body", 9, "\xdd\x80\x00\x00\x00"),
	HUGE("array32 2^32-1 as body", 9, "\xdd\xff\xff\xff\xff"),
	HUGE("map32 2^31 as body", 9, "\xdf\x80\x00\x00\x00"),
	HUGE("array32 2^20 as body", 9, "\xdd\x00\x10\x00\x00"),
	HUGE("array16 65535 as id", 2, "\xdc\xff\xff"),
	HUGE("map16 65535 as source", 4, "\xde\xff\xff"),
	HUGE("array32 2^31 as version", 0, "\xdd\x80\x00\x00\x00"),
	HUGE("map32 2^24 as status", 8, "\xdf\x01\x00\x00\x00"),
};

static void test_decode_huge_declared_containers(void **state)
{
	(void)state;
	int watched = allocation_watch_available();
	if (!watched)
		print_message("(no ASan allocation hook: checking result and time only)\n");
	for (size_t i = 0; i < sizeof(huge_cases) / sizeof(huge_cases[0]); i++) {
		const HugeCase *c = &huge_cases[i];
		print_message("huge container: %s\n", c->name);
		BuildSpec spec = { 0 };
		spec.f[c->field].kind = V_RAW;
		spec.f[c->field].s = c->header;
		spec.f[c->field].len = c->len;
		msgpack_sbuffer sb;
		build(&spec, &sb);
		/* Also as the last element with the whole array in place: the header is complete. */
		Envelope out;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		largest_allocation = 0;
		watching_allocations = 1;
		int rc = envelope_decode((const uint8_t *)sb.data, sb.size, &out);
		watching_allocations = 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_int_equal(rc, -EBADMSG);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		assert_true(ms < 500.0);
		/* msgpack-c would ask for count * sizeof(msgpack_object) (>= 1.5 MiB for 65535). */
		if (watched)
			assert_true(largest_allocation < 64 * 1024);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* A body over the limit, really present: -EMSGSIZE; one past the frame bound too. */
static void test_decode_oversized_bodies(void **state)
{
	(void)state;
	static const size_t sizes[] = { ENVELOPE_MAX_BODY_BYTES + 1, ENVELOPE_MAX_BODY_BYTES + 4096,
					ENVELOPE_MAX_BYTES + 1 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *body = patterned(sizes[i]);
		BuildSpec spec = { 0 };
		spec.f[9].kind = V_BIN;
		spec.f[9].s = (const char *)body;
		spec.f[9].len = sizes[i];
		msgpack_sbuffer sb;
		build(&spec, &sb);
		Envelope out;
		assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &out), -EMSGSIZE);
		msgpack_sbuffer_destroy(&sb);
		/* Within the frame bound, a whole oversized body is judged in field order: a wrong
		 * version, read first, decides. Past the frame bound the length decides. */
		spec.f[0] = (Value)U(2);
		build(&spec, &sb);
		int want = sb.size > ENVELOPE_MAX_BYTES ? -EMSGSIZE : -EPROTONOSUPPORT;
		assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &out), want);
		msgpack_sbuffer_destroy(&sb);
		free(body);
	}
	/* Any input longer than the frame bound is too large before it is looked at. */
	size_t len = ENVELOPE_MAX_BYTES + 1;
	uint8_t *junk = calloc(1, len);
	assert_non_null(junk);
	junk[0] = 0x9a;
	Envelope out;
	assert_int_equal(envelope_decode(junk, len, &out), -EMSGSIZE);
	free(junk);
}

/* Every strict prefix of a valid envelope is truncated: -EBADMSG, never a read past the end
 * (each prefix is copied to an exactly-sized heap block so ASan sees any overread). */
static void assert_every_prefix_rejected(const uint8_t *data, size_t len)
{
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		assert_non_null(copy);
		memcpy(copy, data, cut);
		Envelope out;
		int rc = envelope_decode(copy, cut, &out);
		if (rc != -EBADMSG)
			fail_msg("prefix of %zu/%zu bytes: got %d, want %d", cut, len, rc, -EBADMSG);
		free(copy);
	}
}

static void test_decode_truncated_everywhere(void **state)
{
	(void)state;
	static const size_t body_lens[] = { 0, 5, 300, 70000 };
	for (EnvelopeKind kind = ENVELOPE_REQUEST; kind <= ENVELOPE_CREDIT; kind++) {
		for (size_t b = 0; b < sizeof(body_lens) / sizeof(body_lens[0]); b++) {
			uint8_t *body = patterned(body_lens[b]);
			Envelope env = valid_envelope(kind);
			env.id = UINT64_MAX;
			env.body = body_lens[b] ? body : NULL;
			env.body_len = body_lens[b];
			msgpack_sbuffer sb;
			encode_ok(&env, &sb);
			Envelope out;
			assert_int_equal(envelope_decode((const uint8_t *)sb.data, sb.size, &out), 0);
			if (body_lens[b] <= 300) {
				assert_every_prefix_rejected((const uint8_t *)sb.data, sb.size);
			} else {
				/* Large body: every cut in the headers and the last 300 bytes. */
				const uint8_t *data = (const uint8_t *)sb.data;
				size_t tail = sb.size - 300;
				for (size_t cut = 0; cut < sb.size; cut = cut == 80 ? tail : cut + 1) {
					Envelope o;
					assert_int_equal(envelope_decode(data, cut, &o), -EBADMSG);
				}
			}
			msgpack_sbuffer_destroy(&sb);
			free(body);
		}
	}
	/* Hand-built spellings with multi-byte headers, cut everywhere. */
	for (size_t i = 0; i < sizeof(hand_valid_cases) / sizeof(hand_valid_cases[0]); i++) {
		msgpack_sbuffer sb;
		build(&hand_valid_cases[i].spec, &sb);
		assert_every_prefix_rejected((const uint8_t *)sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* ---- validate / encode rejections ------------------------------------------------------------ */

typedef enum Mutation {
	M_VERSION_0,
	M_VERSION_2,
	M_KIND_4,
	M_KIND_NEGATIVE,
	M_ID_0,
	M_RESPONSE_CORRELATION_0,
	M_REQUEST_STATUS,
	M_EVENT_STATUS,
	M_CREDIT_STATUS,
	M_SOURCE_EMPTY,
	M_SOURCE_32,
	M_SOURCE_UNTERMINATED,
	M_SOURCE_UPPER,
	M_SOURCE_SLASH,
	M_DEST_EMPTY,
	M_DEST_32,
	M_DEST_UPPER,
	M_DEST_SLASH,
	M_METHOD_EMPTY_REQUEST,
	M_METHOD_EMPTY_EVENT,
	M_METHOD_64,
	M_METHOD_SPACE,
	M_METHOD_QUOTE,
	M_BODY_OVER,
	M_BODY_WAY_OVER,
	M_BODY_NULL,
} Mutation;

typedef struct ValidateCase {
	const char *name;
	EnvelopeKind kind;
	Mutation mutation;
	int rc;
} ValidateCase;

static const ValidateCase validate_cases[] = {
	{ "version 0", ENVELOPE_REQUEST, M_VERSION_0, -EPROTONOSUPPORT },
	{ "version 2", ENVELOPE_EVENT, M_VERSION_2, -EPROTONOSUPPORT },
	{ "kind 4", ENVELOPE_REQUEST, M_KIND_4, -EINVAL },
	{ "kind -1", ENVELOPE_REQUEST, M_KIND_NEGATIVE, -EINVAL },
	{ "id 0 request", ENVELOPE_REQUEST, M_ID_0, -EINVAL },
	{ "id 0 credit", ENVELOPE_CREDIT, M_ID_0, -EINVAL },
	{ "response correlation 0", ENVELOPE_RESPONSE, M_RESPONSE_CORRELATION_0, -EINVAL },
	{ "request with status", ENVELOPE_REQUEST, M_REQUEST_STATUS, -EINVAL },
	{ "event with status", ENVELOPE_EVENT, M_EVENT_STATUS, -EINVAL },
	{ "credit with status", ENVELOPE_CREDIT, M_CREDIT_STATUS, -EINVAL },
	{ "empty source", ENVELOPE_REQUEST, M_SOURCE_EMPTY, -EINVAL },
	{ "32-char source", ENVELOPE_REQUEST, M_SOURCE_32, -EINVAL },
	{ "unterminated source", ENVELOPE_RESPONSE, M_SOURCE_UNTERMINATED, -EINVAL },
	{ "uppercase source", ENVELOPE_EVENT, M_SOURCE_UPPER, -EINVAL },
	{ "source with slash", ENVELOPE_REQUEST, M_SOURCE_SLASH, -EINVAL },
	{ "empty destination", ENVELOPE_REQUEST, M_DEST_EMPTY, -EINVAL },
	{ "32-char destination", ENVELOPE_CREDIT, M_DEST_32, -EINVAL },
	{ "uppercase destination", ENVELOPE_REQUEST, M_DEST_UPPER, -EINVAL },
	{ "destination with slash", ENVELOPE_RESPONSE, M_DEST_SLASH, -EINVAL },
	{ "empty method on request", ENVELOPE_REQUEST, M_METHOD_EMPTY_REQUEST, -EINVAL },
	{ "empty method on event", ENVELOPE_EVENT, M_METHOD_EMPTY_EVENT, -EINVAL },
	{ "64-char method", ENVELOPE_REQUEST, M_METHOD_64, -EINVAL },
	{ "64-char method on response", ENVELOPE_RESPONSE, M_METHOD_64, -EINVAL },
	{ "method with space", ENVELOPE_REQUEST, M_METHOD_SPACE, -EINVAL },
	{ "method with quote", ENVELOPE_EVENT, M_METHOD_QUOTE, -EINVAL },
	{ "body max+1", ENVELOPE_EVENT, M_BODY_OVER, -EMSGSIZE },
	{ "body SIZE_MAX", ENVELOPE_REQUEST, M_BODY_WAY_OVER, -EMSGSIZE },
	{ "body_len without body", ENVELOPE_REQUEST, M_BODY_NULL, -EINVAL },
};

static void mutate(Envelope *env, Mutation m)
{
	switch (m) {
	case M_VERSION_0:
		env->version = 0;
		break;
	case M_VERSION_2:
		env->version = 2;
		break;
	case M_KIND_4:
		env->kind = (EnvelopeKind)4;
		break;
	case M_KIND_NEGATIVE:
		env->kind = (EnvelopeKind)-1;
		break;
	case M_ID_0:
		env->id = 0;
		break;
	case M_RESPONSE_CORRELATION_0:
		env->correlation_id = 0;
		break;
	case M_REQUEST_STATUS:
		env->status = 1;
		break;
	case M_EVENT_STATUS:
		env->status = -113;
		break;
	case M_CREDIT_STATUS:
		env->status = INT32_MIN;
		break;
	case M_SOURCE_EMPTY:
		env->source[0] = '\0';
		break;
	case M_SOURCE_32:
		memset(env->source, 'a', 32);
		break; /* fills the array: no NUL */
	case M_SOURCE_UNTERMINATED:
		memset(env->source, 'z', sizeof(env->source));
		break;
	case M_SOURCE_UPPER:
		strcpy(env->source, "agentD");
		break;
	case M_SOURCE_SLASH:
		strcpy(env->source, "a/b");
		break;
	case M_DEST_EMPTY:
		env->destination[0] = '\0';
		break;
	case M_DEST_32:
		memset(env->destination, 'b', 32);
		break;
	case M_DEST_UPPER:
		strcpy(env->destination, "Execd");
		break;
	case M_DEST_SLASH:
		strcpy(env->destination, "execd/");
		break;
	case M_METHOD_EMPTY_REQUEST:
	case M_METHOD_EMPTY_EVENT:
		env->method[0] = '\0';
		break;
	case M_METHOD_64:
		memset(env->method, 'm', 64);
		break;
	case M_METHOD_SPACE:
		strcpy(env->method, "a b");
		break;
	case M_METHOD_QUOTE:
		strcpy(env->method, "a\"b");
		break;
	case M_BODY_OVER:
		env->body_len = ENVELOPE_MAX_BODY_BYTES + 1;
		break;
	case M_BODY_WAY_OVER:
		env->body_len = SIZE_MAX;
		break;
	case M_BODY_NULL:
		env->body = NULL;
		break;
	}
}

static void test_validate_and_encode_reject(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(validate_cases) / sizeof(validate_cases[0]); i++) {
		const ValidateCase *c = &validate_cases[i];
		print_message("validate: %s\n", c->name);
		Envelope env = valid_envelope(c->kind);
		assert_int_equal(envelope_validate(&env), 0);
		mutate(&env, c->mutation);
		int rc = envelope_validate(&env);
		if (rc != c->rc)
			fail_msg("%s: validate got %d, want %d", c->name, rc, c->rc);
		/* encode refuses the same envelope before writing a single byte */
		FailingSink sink = { .fail_at = UINT32_MAX };
		rc = envelope_encode(&env, failing_write, &sink);
		if (rc != c->rc)
			fail_msg("%s: encode got %d, want %d", c->name, rc, c->rc);
		assert_int_equal(sink.calls, 0);
	}
}

static void test_validate_accepts(void **state)
{
	(void)state;
	for (EnvelopeKind kind = ENVELOPE_REQUEST; kind <= ENVELOPE_CREDIT; kind++) {
		Envelope env = valid_envelope(kind);
		assert_int_equal(envelope_validate(&env), 0);
		env.body = NULL;
		env.body_len = 0;
		assert_int_equal(envelope_validate(&env), 0);
		env.body = small_body;
		env.body_len = ENVELOPE_MAX_BODY_BYTES; /* validate only checks the length */
		assert_int_equal(envelope_validate(&env), 0);
	}
	Envelope env = valid_envelope(ENVELOPE_RESPONSE);
	env.method[0] = '\0';
	env.status = INT32_MIN;
	assert_int_equal(envelope_validate(&env), 0);
	env = valid_envelope(ENVELOPE_CREDIT);
	env.method[0] = '\0';
	assert_int_equal(envelope_validate(&env), 0);
}

/* A failing sink at any write turns into -ENOMEM. */
static void test_encode_write_failure(void **state)
{
	(void)state;
	Envelope env = valid_envelope(ENVELOPE_REQUEST);
	msgpack_sbuffer sb;
	encode_ok(&env, &sb);
	FailingSink count = { .fail_at = UINT32_MAX };
	assert_int_equal(envelope_encode(&env, failing_write, &count), 0);
	assert_int_equal(count.bytes, sb.size);
	assert_true(count.calls >= 2);
	for (unsigned n = 0; n < count.calls; n++) {
		FailingSink sink = { .fail_at = n };
		assert_int_equal(envelope_encode(&env, failing_write, &sink), -ENOMEM);
		assert_int_equal(sink.calls, n + 1); /* stops at the first failure */
	}
	msgpack_sbuffer_destroy(&sb);
}

/* ---- small helpers --------------------------------------------------------------------------- */

static void test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(envelope_kind_name(ENVELOPE_REQUEST), "request");
	assert_string_equal(envelope_kind_name(ENVELOPE_RESPONSE), "response");
	assert_string_equal(envelope_kind_name(ENVELOPE_EVENT), "event");
	assert_string_equal(envelope_kind_name(ENVELOPE_CREDIT), "credit");
	assert_string_equal(envelope_kind_name((EnvelopeKind)4), "?");
	assert_string_equal(envelope_kind_name((EnvelopeKind)-1), "?");
}

typedef struct NameCase {
	const char *name;
	int valid;
} NameCase;

static const NameCase name_cases[] = {
	{ "agentd", 1 }, { "a", 1 },	    { "_", 1 },	       { "0", 1 },	  { NAME31, 1 },
	{ "", 0 },	 { NAME31 "x", 0 }, { "Agentd", 0 },   { "a/b", 0 },	  { "a-b", 0 },
	{ "a.b", 0 },	 { "a b", 0 },	    { "\xc3\xa9", 0 }, { "agentd\n", 0 },
};

static void test_name_is_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		int got = envelope_name_is_valid(name_cases[i].name) != 0;
		if (got != name_cases[i].valid)
			fail_msg("envelope_name_is_valid(\"%s\") = %d", name_cases[i].name, got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_wire_layout),
		cmocka_unit_test(test_hand_built_valid),
		cmocka_unit_test(test_reject_baseline_is_valid),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_decode_rejects_raw),
		cmocka_unit_test(test_decode_rejects_long_array_headers),
		cmocka_unit_test(test_decode_huge_declared_containers),
		cmocka_unit_test(test_decode_oversized_bodies),
		cmocka_unit_test(test_decode_truncated_everywhere),
		cmocka_unit_test(test_validate_and_encode_reject),
		cmocka_unit_test(test_validate_accepts),
		cmocka_unit_test(test_encode_write_failure),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_name_is_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
