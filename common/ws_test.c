/* SPDX-License-Identifier: MIT */
/* ws_test.c - unit tests for the websocket codec: handshake parsing, accept key, frame header, decoder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)
#define FIN 0x80u

/* ------------------------------------------------------------------ */
/* Helpers: event recorder and masked frame builder                    */
/* ------------------------------------------------------------------ */

typedef enum { EVENT_MESSAGE, EVENT_OVERSIZE, EVENT_CONTROL } EventKind;

#define EVENT_MAX 64
#define EVENT_DATA_MAX 256

/* One callback, with the start of its payload and a hash of all of it. */
typedef struct Event {
	EventKind kind;
	unsigned opcode;
	uint64_t len;
	uint64_t hash;
	uint8_t data[EVENT_DATA_MAX];
	bool is_data_nonnull;
} Event;

typedef struct Recorder {
	Event events[EVENT_MAX];
	size_t count;
	WsDecoder *dec;
	size_t peak_buffer_bytes; /* largest reassembly buffer seen at any checkpoint */
	size_t heap_baseline;	  /* live heap bytes when measuring started; 0 if not measuring */
	size_t peak_heap_growth;  /* most live heap bytes above the baseline at any checkpoint */
	int reentry_rc;		  /* what a nested ws_decoder_feed() returned, when tried */
	bool try_reentry;
} Recorder;

static uint64_t hash_bytes(const uint8_t *data, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ data[i]) * 0x100000001b3u;
	return h;
}

/* Provided by the AddressSanitizer runtime: an allocation count that does not
 * rely on the decoder's own bookkeeping. Absent (NULL) in a plain build. */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t heap_live_bytes(void)
{
	return __sanitizer_get_current_allocated_bytes ? __sanitizer_get_current_allocated_bytes() : 0;
}

static void recorder_note_buffer(Recorder *rec)
{
	size_t bytes = ws_decoder_buffer_bytes(rec->dec);
	size_t live = heap_live_bytes();

	if (bytes > rec->peak_buffer_bytes)
		rec->peak_buffer_bytes = bytes;
	if (rec->heap_baseline && live > rec->heap_baseline &&
	    live - rec->heap_baseline > rec->peak_heap_growth)
		rec->peak_heap_growth = live - rec->heap_baseline;
}

static Event *recorder_add(Recorder *rec, EventKind kind, unsigned opcode, const uint8_t *data, uint64_t len)
{
	assert_true(rec->count < EVENT_MAX);
	Event *ev = &rec->events[rec->count++];

	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->opcode = opcode;
	ev->len = len;
	if (data) {
		ev->is_data_nonnull = true;
		ev->hash = hash_bytes(data, (size_t)len);
		memcpy(ev->data, data, len < EVENT_DATA_MAX ? (size_t)len : EVENT_DATA_MAX);
	}
	recorder_note_buffer(rec);
	return ev;
}

static void on_message(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	Recorder *rec = ctx;

	recorder_add(rec, EVENT_MESSAGE, opcode, data, len);
	if (rec->try_reentry)
		rec->reentry_rc = ws_decoder_feed(rec->dec, (const uint8_t *)"x", 1);
}

static void on_oversize(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len)
{
	assert_true(head_len <= WS_OVERSIZE_HEAD_BYTES && head_len <= total_len);
	assert_true(head_len == 0 || head != NULL);
	recorder_add(ctx, EVENT_OVERSIZE, 0, NULL, total_len);
}

static void on_control(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	recorder_add(ctx, EVENT_CONTROL, opcode, data, len);
}

static const WsDecoderEvents recorder_events = {
	.on_message = on_message,
	.on_oversize = on_oversize,
	.on_control = on_control,
};

static WsDecoder *recorder_start(Recorder *rec, size_t max_message_bytes)
{
	memset(rec, 0, sizeof(*rec));
	rec->dec = ws_decoder_new(max_message_bytes, &recorder_events, rec);
	assert_non_null(rec->dec);
	return rec->dec;
}

static void assert_event(const Recorder *rec, size_t i, EventKind kind, unsigned opcode, const void *data,
			 uint64_t len)
{
	assert_true(i < rec->count);
	const Event *ev = &rec->events[i];

	assert_int_equal(ev->kind, kind);
	assert_int_equal(ev->opcode, opcode);
	assert_int_equal(ev->len, len);
	if (kind != EVENT_OVERSIZE)
		assert_true(ev->is_data_nonnull);
	if (data)
		assert_memory_equal(ev->data, data, len);
}

static void assert_same_events(const Recorder *a, const Recorder *b)
{
	assert_int_equal(a->count, b->count);
	for (size_t i = 0; i < a->count; i++) {
		assert_int_equal(a->events[i].kind, b->events[i].kind);
		assert_int_equal(a->events[i].opcode, b->events[i].opcode);
		assert_int_equal(a->events[i].len, b->events[i].len);
		assert_true(a->events[i].hash == b->events[i].hash);
	}
}

/* A growing byte buffer of client frames. */
typedef struct Stream {
	uint8_t *bytes;
	size_t len;
	size_t cap;
} Stream;

static uint8_t *stream_grow(Stream *s, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 256;

		while (cap < s->len + n)
			cap *= 2;
		s->bytes = realloc(s->bytes, cap);
		assert_non_null(s->bytes);
		s->cap = cap;
	}
	uint8_t *at = s->bytes + s->len;

	s->len += n;
	return at;
}

static void stream_raw(Stream *s, const void *bytes, size_t n)
{
	memcpy(stream_grow(s, n), bytes, n);
}

static const uint8_t test_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Append one masked client frame; b0 is FIN plus opcode, exactly as on the wire. */
static void stream_frame(Stream *s, unsigned b0, const void *payload, size_t len)
{
	uint8_t header[14];
	size_t n = 0;

	header[n++] = (uint8_t)b0;
	if (len <= 125) {
		header[n++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		header[n++] = 0x80 | 126;
		header[n++] = (uint8_t)(len >> 8);
		header[n++] = (uint8_t)len;
	} else {
		header[n++] = 0x80 | 127;
		for (int shift = 56; shift >= 0; shift -= 8)
			header[n++] = (uint8_t)((uint64_t)len >> shift);
	}
	memcpy(header + n, test_mask, 4);
	n += 4;
	stream_raw(s, header, n);

	uint8_t *out = stream_grow(s, len);
	const uint8_t *in = payload;

	for (size_t i = 0; i < len; i++)
		out[i] = (in ? in[i] : (uint8_t)'a') ^ test_mask[i & 3];
}

static void stream_text(Stream *s, unsigned b0, const char *text)
{
	stream_frame(s, b0, text, strlen(text));
}

static void stream_free(Stream *s)
{
	free(s->bytes);
	memset(s, 0, sizeof(*s));
}

/* Feed in fixed-size chunks, noting the reassembly buffer after each one. */
static int feed_chunks(Recorder *rec, const uint8_t *data, size_t len, size_t chunk)
{
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		int rc = ws_decoder_feed(rec->dec, data + off, n);

		recorder_note_buffer(rec);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Accept key                                                          */
/* ------------------------------------------------------------------ */

static void test_accept_key_rfc_example(void **state)
{
	char out[29];

	(void)state;
	assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_key_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"dGhlIHNhbXBsZSBub25jZQ=",   /* 23 chars */
		"dGhlIHNhbXBsZSBub25jZQ===", /* 25 chars */
		"dGhlIHNhbXBsZSBub25jZQAA",  /* no padding: 18 bytes */
		"dGhlIHNhbXBsZSBub25jZ===",  /* padding too early */
		"dGhlIHNhbXBsZSBub25j*Q==",  /* not base64 */
		"dGhlIHNhbXBsZSBub25jZQ=A",
		" dGhlIHNhbXBsZSBub25jZQ=",
	};
	char out[29];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ws_accept_key(bad[i], out), -EINVAL);
		assert_string_equal(out, "");
	}
	assert_int_equal(ws_accept_key(NULL, out), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Request parsing                                                     */
/* ------------------------------------------------------------------ */

static const char good_request[] = "GET /chat?token=1 HTTP/1.1\r\n"
				   "Host: 127.0.0.1:4500\r\n"
				   "Upgrade: websocket\r\n"
				   "Connection: Upgrade\r\n"
				   "Sec-WebSocket-Key:   dGhlIHNhbXBsZSBub25jZQ==  \r\n"
				   "Sec-WebSocket-Version: 13\r\n"
				   "Authorization: \tBearer abc.def \r\n"
				   "\r\n";

static int parse_text(const char *text, WsRequest *req)
{
	return ws_request_parse(text, strlen(text), req);
}

static void test_request_parse_complete(void **state)
{
	WsRequest req;
	char buf[sizeof(good_request) + 8];
	size_t head_len = sizeof(good_request) - 1;

	(void)state;
	/* Bytes after the head (an early first frame) are left for the caller. */
	memcpy(buf, good_request, head_len);
	memcpy(buf + head_len, "\x81\x80\x01\x02\x03\x04", 6);
	assert_int_equal(ws_request_parse(buf, head_len + 6, &req), (int)head_len);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/chat");
	assert_string_equal(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
	assert_true(req.has_authorization);
	assert_string_equal(req.authorization, "Bearer abc.def");
	assert_false(req.has_origin);
	assert_true(req.is_upgrade);
	assert_int_equal(req.version, 13);
}

static void test_request_parse_incomplete(void **state)
{
	WsRequest req;

	(void)state;
	for (size_t len = 0; len < sizeof(good_request) - 1; len++)
		assert_int_equal(ws_request_parse(good_request, len, &req), 0);
	assert_int_equal(ws_request_parse(NULL, 0, &req), 0);
}

/* A head arriving in pieces: complete on the piece that ends it, with what follows left over. */
static void test_head_take_in_pieces(void **state)
{
	char head[sizeof(good_request) + 16];
	size_t head_len = 0, taken;
	size_t len = sizeof(good_request) - 1, half = len / 2;
	WsRequest req;

	(void)state;
	assert_int_equal(ws_head_take(head, sizeof(head), &head_len, good_request, half, &taken, &req), 0);
	assert_int_equal(taken, half);
	char rest[sizeof(good_request) + 4];
	memcpy(rest, good_request + half, len - half);
	memcpy(rest + len - half, "\x81\x80", 2);
	int rc = ws_head_take(head, sizeof(head), &head_len, rest, len - half + 2, &taken, &req);
	assert_int_equal(rc, (int)len);
	assert_int_equal(taken, len - half + 2); /* the frame bytes fit: they sit in head past the request */
	assert_memory_equal(head + len, "\x81\x80", 2);
	assert_string_equal(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
}

/* An incomplete head that cannot take the bytes offered is too large, not "more needed". */
static void test_head_take_overflow(void **state)
{
	char head[32];
	size_t head_len = 0, taken;
	WsRequest req;

	(void)state;
	assert_int_equal(ws_head_take(head, sizeof(head), &head_len, good_request, sizeof(good_request) - 1, &taken,
				      &req),
			 -E2BIG);
	assert_int_equal(taken, sizeof(head));
	assert_int_equal(head_len, sizeof(head));
	head_len = 0;
	assert_int_equal(ws_head_take(head, sizeof(head), &head_len, "GET /\x01", 6, &taken, &req), -EINVAL);
}

/* A head of exactly total_len bytes, padded with one filler header. */
static char *request_of_len(size_t total_len)
{
	static const char prefix[] = "GET / HTTP/1.1\r\nX-Pad: ";
	char *text = malloc(total_len + 1);
	size_t pad = total_len - (sizeof(prefix) - 1) - 4;

	assert_non_null(text);
	memcpy(text, prefix, sizeof(prefix) - 1);
	memset(text + sizeof(prefix) - 1, 'p', pad);
	memcpy(text + total_len - 4, "\r\n\r\n", 5);
	return text;
}

static void test_request_parse_oversized(void **state)
{
	WsRequest req;
	char *fits = request_of_len(WS_HANDSHAKE_MAX_BYTES);
	char *too_big = request_of_len(WS_HANDSHAKE_MAX_BYTES + 1);

	(void)state;
	assert_int_equal(parse_text(fits, &req), WS_HANDSHAKE_MAX_BYTES);
	assert_int_equal(parse_text(too_big, &req), -E2BIG);
	/* Without an end in sight: wait below the limit, refuse at it. */
	assert_int_equal(ws_request_parse(too_big, WS_HANDSHAKE_MAX_BYTES - 1, &req), 0);
	assert_int_equal(ws_request_parse(too_big, WS_HANDSHAKE_MAX_BYTES, &req), -E2BIG);
	free(fits);
	free(too_big);
}

typedef struct RawCase {
	const char *text;
	size_t len;
} RawCase;

#define RAW(s)                                                                                               \
	{                                                                                                    \
		s, sizeof(s) - 1                                                                             \
	}

static void test_request_parse_malformed(void **state)
{
	static const RawCase cases[] = {
		RAW("GET/ HTTP/1.1\r\n\r\n"),
		RAW("GET  / HTTP/1.1\r\n\r\n"),
		RAW("GET / HTTP/1.1 \r\n\r\n"),
		RAW("GET /\r\n\r\n"),
		RAW("GET / HTTP/1.0\r\n\r\n"),
		RAW("GET / HTTP/2.0\r\n\r\n"),
		RAW("GET / http/1.1\r\n\r\n"),
		RAW("GET chat HTTP/1.1\r\n\r\n"),
		RAW("GET http://host/ HTTP/1.1\r\n\r\n"),
		RAW("GET /a#frag HTTP/1.1\r\n\r\n"),
		RAW("GET /\x80 HTTP/1.1\r\n\r\n"),
		RAW("G(T / HTTP/1.1\r\n\r\n"),
		RAW("GETGETGETGETGETGET / HTTP/1.1\r\n\r\n"),
		RAW("\r\nGET / HTTP/1.1\r\n\r\n"),
		RAW("\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\n: x\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nX-A: a\0z\r\n\r\n"),
		RAW("GET / HTTP/1.1\nHost: x\n\n"),
		RAW("GET / HTTP/1.1\r\nX-A: a\rz\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nSec-WebSocket-Key: a\r\nsec-websocket-key: b\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nSec-WebSocket-Version: abc\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nSec-WebSocket-Version: 256\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nSec-WebSocket-Version: 13, 8\r\n\r\n"),
		RAW("GET / HTTP/1.1\r\nSec-WebSocket-Version:\r\n\r\n"),
	};
	WsRequest req;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ws_request_parse(cases[i].text, cases[i].len, &req);

		if (rc != -EINVAL)
			fail_msg("case %zu (%s): got %d", i, cases[i].text, rc);
		assert_string_equal(req.method, ""); /* nothing half-parsed is left behind */
	}
}

/* Bytes that can never start a valid head fail before the head is complete. */
static void test_request_parse_rejects_early(void **state)
{
	static const RawCase cases[] = {
		RAW("GET / HTTP/1.1\nHo"),
		RAW("\0GET"),
		RAW("GET / HTTP/1.1\rX"),
		RAW("GET / HTTP/1.1\r\nX-A: \x1b"),
	};
	WsRequest req;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(ws_request_parse(cases[i].text, cases[i].len, &req), -EINVAL);
}

static void test_request_parse_case_insensitive(void **state)
{
	static const char text[] = "GET / HTTP/1.1\r\n"
				   "uPgRaDe: WebSocket\r\n"
				   "CONNECTION: keep-alive, UPGRADE\r\n"
				   "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				   "SEC-WEBSOCKET-VERSION: 13\r\n"
				   "aUtHoRiZaTiOn: Bearer x\r\n"
				   "oRiGiN: http://evil.example\r\n"
				   "\r\n";
	WsRequest req;

	(void)state;
	assert_int_equal(parse_text(text, &req), (int)strlen(text));
	assert_true(req.is_upgrade);
	assert_string_equal(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
	assert_int_equal(req.version, 13);
	assert_true(req.has_authorization);
	assert_string_equal(req.authorization, "Bearer x");
	assert_true(req.has_origin);
}

static void test_request_parse_upgrade_tokens(void **state)
{
	static const struct {
		const char *headers;
		bool is_upgrade;
	} cases[] = {
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\n", true },
		{ "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: upgrade\r\n", true },
		{ "Upgrade: h2c, websocket\r\nConnection: Upgrade, HTTP2-Settings\r\n", true },
		{ "Upgrade: websocket\r\n", false },
		{ "Connection: Upgrade\r\n", false },
		{ "Upgrade: h2c\r\nConnection: Upgrade\r\n", false },
		{ "Upgrade: websockets\r\nConnection: Upgrade\r\n", false },
		{ "Upgrade: websocket\r\nConnection: upgraded\r\n", false },
		{ "Upgrade: websocket\r\nConnection: keep-alive\r\n", false },
	};
	WsRequest req;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "GET / HTTP/1.1\r\n%s\r\n", cases[i].headers);
		assert_int_equal(parse_text(text, &req), (int)strlen(text));
		if (req.is_upgrade != cases[i].is_upgrade)
			fail_msg("case %zu: is_upgrade %d", i, req.is_upgrade);
	}
}

static void test_request_parse_origin(void **state)
{
	static const struct {
		const char *headers;
		bool has_origin;
	} cases[] = {
		{ "Origin: https://example.com\r\n", true },
		{ "origin: null\r\n", true },
		{ "Origin:\r\n", true },
		{ "Origin: a\r\nOrigin: b\r\n", true },
		{ "", false },
		{ "X-Origin: a\r\n", false },
		{ "Origin-Agent-Cluster: ?1\r\n", false },
		{ "Referer: https://example.com/\r\n", false },
	};
	WsRequest req;
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "GET /readyz HTTP/1.1\r\nHost: h\r\n%s\r\n", cases[i].headers);
		assert_int_equal(parse_text(text, &req), (int)strlen(text));
		if (req.has_origin != cases[i].has_origin)
			fail_msg("case %zu: has_origin %d", i, req.has_origin);
		assert_string_equal(req.path, "/readyz");
		assert_false(req.is_upgrade);
	}
}

static void test_request_parse_authorization(void **state)
{
	WsRequest req;
	char text[WS_HANDSHAKE_MAX_BYTES];
	char value[4097];

	(void)state;
	assert_int_equal(parse_text("GET / HTTP/1.1\r\n\r\n", &req), 18);
	assert_false(req.has_authorization);
	assert_string_equal(req.authorization, "");
	assert_int_equal(req.version, 0);

	assert_true(parse_text("GET / HTTP/1.1\r\nAuthorization:  Basic  a b  \r\n\r\n", &req) > 0);
	assert_true(req.has_authorization);
	assert_string_equal(req.authorization, "Basic  a b");

	assert_true(parse_text("GET / HTTP/1.1\r\nAuthorization:\r\n\r\n", &req) > 0);
	assert_true(req.has_authorization);
	assert_string_equal(req.authorization, "");

	/* The longest value that fits is kept whole; one more byte is refused, never truncated. */
	memset(value, 'a', 4095);
	value[4095] = '\0';
	snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nAuthorization: %s\r\n\r\n", value);
	assert_int_equal(parse_text(text, &req), (int)strlen(text));
	assert_int_equal(strlen(req.authorization), 4095);
	memset(value, 'a', 4096);
	value[4096] = '\0';
	snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nAuthorization: %s\r\n\r\n", value);
	assert_int_equal(parse_text(text, &req), -EINVAL);
	assert_false(req.has_authorization);
}

static void test_request_parse_path_limits(void **state)
{
	WsRequest req;
	char text[4096];
	char path[600];

	(void)state;
	path[0] = '/';
	memset(path + 1, 'p', 510);
	path[511] = '\0';
	snprintf(text, sizeof(text), "GET %s?%s HTTP/1.1\r\n\r\n", path, path); /* a long query is dropped */
	assert_true(parse_text(text, &req) > 0);
	assert_string_equal(req.path, path);
	path[511] = 'p';
	path[512] = '\0';
	snprintf(text, sizeof(text), "GET %s HTTP/1.1\r\n\r\n", path);
	assert_int_equal(parse_text(text, &req), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Frame header                                                        */
/* ------------------------------------------------------------------ */

static void test_frame_header_lengths(void **state)
{
	static const struct {
		uint64_t payload_len;
		size_t header_len;
		uint8_t bytes[10];
	} cases[] = {
		{ 0, 2, { 0x81, 0 } },
		{ 125, 2, { 0x81, 125 } },
		{ 126, 4, { 0x81, 126, 0x00, 0x7e } },
		{ 65535, 4, { 0x81, 126, 0xff, 0xff } },
		{ 65536, 10, { 0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0 } },
		{ 0x123456789aull, 10, { 0x81, 127, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a } },
	};
	uint8_t out[10];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ws_frame_header(out, WS_OP_TEXT, cases[i].payload_len), cases[i].header_len);
		assert_memory_equal(out, cases[i].bytes, cases[i].header_len);
	}
	assert_int_equal(ws_frame_header(out, WS_OP_CLOSE, 2), 2);
	assert_int_equal(out[0], 0x88);
	assert_int_equal(ws_frame_header(out, WS_OP_PONG, 0), 2);
	assert_int_equal(out[0], 0x8a);
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */
/* ------------------------------------------------------------------ */

static void test_decoder_single_text(void **state)
{
	/* RFC 6455 section 5.7: a single-frame masked text message "Hello". */
	static const uint8_t frame[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	Recorder rec;
	WsDecoder *dec = recorder_start(&rec, 1024);

	(void)state;
	assert_int_equal(ws_decoder_feed(dec, frame, sizeof(frame)), 0);
	assert_int_equal(rec.count, 1);
	assert_event(&rec, 0, EVENT_MESSAGE, WS_OP_TEXT, "Hello", 5);
	assert_int_equal(ws_decoder_close_code(dec), 0);
	ws_decoder_free(dec);
	ws_decoder_free(NULL);
}

/* Frames of every length encoding, fragments, control frames in between and a close. */
static void build_mixed_stream(Stream *s)
{
	uint8_t medium[300], large[70000];

	for (size_t i = 0; i < sizeof(medium); i++)
		medium[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(large); i++)
		large[i] = (uint8_t)(i * 7);
	stream_text(s, FIN | WS_OP_TEXT, "{\"id\":1}");
	stream_frame(s, WS_OP_BINARY, medium, 100);
	stream_text(s, FIN | WS_OP_PING, "ping");
	stream_frame(s, WS_OP_CONT, medium + 100, 0);
	stream_frame(s, FIN | WS_OP_CONT, medium + 100, 200);
	stream_frame(s, FIN | WS_OP_BINARY, large, sizeof(large));
	stream_frame(s, FIN | WS_OP_TEXT, NULL, 0);
	stream_text(s, FIN | WS_OP_PONG, "");
	stream_raw(s, "\x88\x82\x37\xfa\x21\x3d\x34\x12", 8); /* CLOSE 1000 */
}

static void test_decoder_byte_at_a_time(void **state)
{
	Stream s = { 0 };
	Recorder whole, bytewise;

	(void)state;
	build_mixed_stream(&s);
	recorder_start(&whole, 128 * KIB);
	assert_int_equal(ws_decoder_feed(whole.dec, s.bytes, s.len), 0);
	recorder_start(&bytewise, 128 * KIB);
	for (size_t i = 0; i < s.len; i++)
		assert_int_equal(ws_decoder_feed(bytewise.dec, s.bytes + i, 1), 0);

	assert_int_equal(whole.count, 7);
	assert_event(&whole, 0, EVENT_MESSAGE, WS_OP_TEXT, "{\"id\":1}", 8);
	assert_event(&whole, 1, EVENT_CONTROL, WS_OP_PING, "ping", 4);
	assert_event(&whole, 2, EVENT_MESSAGE, WS_OP_BINARY, NULL, 300);
	for (size_t i = 0; i < EVENT_DATA_MAX; i++)
		assert_int_equal(whole.events[2].data[i], (uint8_t)i);
	assert_event(&whole, 3, EVENT_MESSAGE, WS_OP_BINARY, NULL, 70000);
	assert_event(&whole, 4, EVENT_MESSAGE, WS_OP_TEXT, "", 0);
	assert_event(&whole, 5, EVENT_CONTROL, WS_OP_PONG, "", 0);
	assert_event(&whole, 6, EVENT_CONTROL, WS_OP_CLOSE, "\x03\xe8", 2);
	assert_same_events(&whole, &bytewise);
	ws_decoder_free(whole.dec);
	ws_decoder_free(bytewise.dec);
	stream_free(&s);
}

static void test_decoder_close_frame(void **state)
{
	Stream s = { 0 };
	Recorder rec;
	static const uint8_t close_payload[] = { 0x03, 0xe8, 'b', 'y', 'e' };

	(void)state;
	recorder_start(&rec, 1024);
	stream_frame(&s, FIN | WS_OP_CLOSE, close_payload, sizeof(close_payload));
	stream_text(&s, FIN | WS_OP_TEXT, "after close"); /* ignored: the peer may not send it */
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(rec.count, 1);
	assert_event(&rec, 0, EVENT_CONTROL, WS_OP_CLOSE, close_payload, sizeof(close_payload));
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(rec.count, 1);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

static void test_decoder_fragmented_with_ping(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 1024);
	stream_text(&s, WS_OP_TEXT, "Hel");
	stream_text(&s, FIN | WS_OP_PING, "are you there");
	stream_text(&s, WS_OP_CONT, "lo, ");
	stream_frame(&s, WS_OP_CONT, "\xe2\x82", 2); /* U+20AC split across fragments */
	stream_frame(&s, FIN | WS_OP_CONT, "\xac!", 2);
	stream_text(&s, FIN | WS_OP_BINARY, "next");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(rec.count, 3);
	assert_event(&rec, 0, EVENT_CONTROL, WS_OP_PING, "are you there", 13);
	assert_event(&rec, 1, EVENT_MESSAGE, WS_OP_TEXT, "Hello, \xe2\x82\xac!", 11);
	assert_event(&rec, 2, EVENT_MESSAGE, WS_OP_BINARY, "next", 4);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

static void test_decoder_oversize_fragments(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 16);
	stream_text(&s, WS_OP_TEXT, "0123456789");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_true(ws_decoder_buffer_bytes(rec.dec) <= 16);
	s.len = 0;
	/* The second fragment tips it over: the first one's bytes are released at once. */
	stream_text(&s, WS_OP_CONT, "0123456789");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(ws_decoder_buffer_bytes(rec.dec), 0);
	s.len = 0;
	stream_text(&s, FIN | WS_OP_PING, "hi");
	stream_frame(&s, WS_OP_CONT, "\xff\xfe", 2); /* invalid UTF-8, but never checked */
	stream_text(&s, FIN | WS_OP_CONT, "0123456789");
	stream_text(&s, FIN | WS_OP_TEXT, "still works");
	stream_text(&s, FIN | WS_OP_BINARY, "0123456789abcdef"); /* exactly the limit */
	stream_text(&s, FIN | WS_OP_BINARY, "0123456789abcdefg");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);

	assert_int_equal(rec.count, 5);
	assert_event(&rec, 0, EVENT_CONTROL, WS_OP_PING, "hi", 2);
	assert_event(&rec, 1, EVENT_OVERSIZE, 0, NULL, 32);
	assert_event(&rec, 2, EVENT_MESSAGE, WS_OP_TEXT, "still works", 11);
	assert_event(&rec, 3, EVENT_MESSAGE, WS_OP_BINARY, "0123456789abcdef", 16);
	assert_event(&rec, 4, EVENT_OVERSIZE, 0, NULL, 17);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

static void test_decoder_zero_limit(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 0);
	stream_text(&s, FIN | WS_OP_TEXT, "");
	stream_text(&s, FIN | WS_OP_TEXT, "x");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(rec.count, 2);
	assert_event(&rec, 0, EVENT_MESSAGE, WS_OP_TEXT, "", 0);
	assert_event(&rec, 1, EVENT_OVERSIZE, 0, NULL, 1);
	assert_int_equal(ws_decoder_buffer_bytes(rec.dec), 0);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

#define M 0x37, 0xfa, 0x21, 0x3d /* the mask key, for hand-written frames */

/* Frames a server must fail with 1002. prefix frames are valid and must be delivered first. */
static void test_decoder_protocol_errors(void **state)
{
	static const struct {
		const char *name;
		uint8_t bytes[24];
		size_t len;
	} cases[] = {
		{ "unmasked text", { 0x81, 0x00 }, 2 },
		{ "unmasked close", { 0x88, 0x00 }, 2 },
		{ "rsv1", { 0xc1, 0x80, M }, 6 },
		{ "rsv2", { 0xa1, 0x80, M }, 6 },
		{ "rsv3", { 0x91, 0x80, M }, 6 },
		{ "opcode 3", { 0x83, 0x80, M }, 6 },
		{ "opcode 7", { 0x87, 0x80, M }, 6 },
		{ "opcode 11", { 0x8b, 0x80, M }, 6 },
		{ "opcode 15", { 0x8f, 0x80, M }, 6 },
		{ "fragmented ping", { 0x09, 0x80, M }, 6 },
		{ "fragmented close", { 0x08, 0x80, M }, 6 },
		{ "ping of 126", { 0x89, 0xfe, 0x00, 0x7e, M }, 8 },
		{ "pong with 64-bit length", { 0x8a, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, M }, 14 },
		{ "cont without message", { 0x80, 0x80, M }, 6 },
		{ "unfinished cont without message", { 0x00, 0x80, M }, 6 },
		{ "text inside fragmented text", { 0x01, 0x80, M, 0x81, 0x80, M }, 12 },
		{ "binary inside fragmented text", { 0x01, 0x80, M, 0x02, 0x80, M }, 12 },
		{ "cont after finished message", { 0x81, 0x80, M, 0x80, 0x80, M }, 12 },
		{ "64-bit length top bit", { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, M }, 14 },
		{ "close with 1-byte payload", { 0x88, 0x81, M, 0x03 ^ 0x37 }, 7 },
		{ "close code 1005", { 0x88, 0x82, M, 0x03 ^ 0x37, 0xed ^ 0xfa }, 8 },
		{ "close code 999", { 0x88, 0x82, M, 0x03 ^ 0x37, 0xe7 ^ 0xfa }, 8 },
		{ "close code 2000", { 0x88, 0x82, M, 0x07 ^ 0x37, 0xd0 ^ 0xfa }, 8 },
		{ "close code 5000", { 0x88, 0x82, M, 0x13 ^ 0x37, 0x88 ^ 0xfa }, 8 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			Recorder rec;
			int rc = 0;

			recorder_start(&rec, 1024);
			if (bytewise) {
				for (size_t off = 0; off < cases[i].len && rc == 0; off++)
					rc = ws_decoder_feed(rec.dec, cases[i].bytes + off, 1);
			} else {
				rc = ws_decoder_feed(rec.dec, cases[i].bytes, cases[i].len);
			}
			if (rc != -EPROTO)
				fail_msg("%s (bytewise %d): got %d", cases[i].name, bytewise, rc);
			assert_int_equal(ws_decoder_close_code(rec.dec), 1002);
			/* Unusable afterwards, even for a valid frame. */
			assert_int_equal(ws_decoder_feed(rec.dec, (const uint8_t[]){ 0x81, 0x80, M }, 6),
					 -EPROTO);
			for (size_t e = 0; e < rec.count; e++)
				assert_int_equal(rec.events[e].opcode,
						 WS_OP_TEXT); /* only the valid prefix */
			ws_decoder_free(rec.dec);
		}
	}
}

static void test_decoder_invalid_utf8(void **state)
{
	static const RawCase bad[] = {
		RAW("\xc0\x80"),	 /* overlong NUL */
		RAW("\xc1\xbf"),	 /* overlong */
		RAW("\xe0\x80\xaf"),	 /* overlong '/' */
		RAW("\xed\xa0\x80"),	 /* surrogate U+D800 */
		RAW("\xf4\x90\x80\x80"), /* past U+10FFFF */
		RAW("\xf5\x80\x80\x80"),
		RAW("\xe2\x82"), /* truncated */
		RAW("ok\x80"),	 /* lone continuation */
		RAW("\xff"),
		RAW("\xe2\x28\xa1"),
	};
	static const RawCase good[] = {
		RAW("\x7f"),
		RAW("\xc2\x80"),
		RAW("\xed\x9f\xbf"),
		RAW("\xee\x80\x80"),
		RAW("\xf0\x90\x80\x80"),
		RAW("\xf4\x8f\xbf\xbf"),
		RAW("\xef\xbb\xbfplain"),
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Stream s = { 0 };
		Recorder rec;

		recorder_start(&rec, 1024);
		stream_frame(&s, FIN | WS_OP_BINARY, bad[i].text, bad[i].len); /* binary is never checked */
		stream_frame(&s, FIN | WS_OP_TEXT, bad[i].text, bad[i].len);
		assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), -EILSEQ);
		assert_int_equal(ws_decoder_close_code(rec.dec), 1007);
		assert_int_equal(rec.count, 1);
		assert_event(&rec, 0, EVENT_MESSAGE, WS_OP_BINARY, bad[i].text, bad[i].len);
		assert_int_equal(ws_decoder_buffer_bytes(rec.dec), 0);
		ws_decoder_free(rec.dec);
		stream_free(&s);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		Stream s = { 0 };
		Recorder rec;

		recorder_start(&rec, 1024);
		stream_frame(&s, FIN | WS_OP_TEXT, good[i].text, good[i].len);
		assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
		assert_event(&rec, 0, EVENT_MESSAGE, WS_OP_TEXT, good[i].text, good[i].len);
		ws_decoder_free(rec.dec);
		stream_free(&s);
	}
}

static void test_decoder_close_reason_utf8(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 1024);
	stream_frame(&s, FIN | WS_OP_CLOSE, "\x03\xe8\xc0\x80", 4);
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), -EILSEQ);
	assert_int_equal(ws_decoder_close_code(rec.dec), 1007);
	assert_int_equal(rec.count, 0);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

static void test_close_payload_parse(void **state)
{
	static const uint16_t sendable[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009,
					     1010, 1011, 1012, 1014, 3000, 4999 };
	static const uint16_t reserved[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535 };
	uint16_t code = 0;
	uint8_t payload[2];

	(void)state;
	assert_int_equal(ws_close_payload_parse(NULL, 0, &code), 0);
	assert_int_equal(code, WS_CLOSE_NO_STATUS);
	for (size_t i = 0; i < sizeof(sendable) / sizeof(sendable[0]); i++) {
		payload[0] = (uint8_t)(sendable[i] >> 8);
		payload[1] = (uint8_t)sendable[i];
		assert_int_equal(ws_close_payload_parse(payload, 2, &code), 0);
		assert_int_equal(code, sendable[i]);
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		payload[0] = (uint8_t)(reserved[i] >> 8);
		payload[1] = (uint8_t)reserved[i];
		assert_int_equal(ws_close_payload_parse(payload, 2, &code), -EPROTO);
	}
	assert_int_equal(ws_close_payload_parse(payload, 1, &code), -EPROTO);
}

/* A 16 MiB message against a 1 MiB limit, in 64 KiB fragments fed in 64 KiB
 * reads: the buffer never passes the limit and the connection carries on. */
static void test_decoder_memory_bound(void **state)
{
	const size_t fragment = 64 * KIB, total = 16 * MIB;
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 1 * MIB);
	for (size_t off = 0; off < total; off += fragment) {
		unsigned b0 = off == 0 ? WS_OP_TEXT : WS_OP_CONT;

		stream_frame(&s, off + fragment == total ? FIN | b0 : b0, NULL, fragment);
	}
	stream_text(&s, FIN | WS_OP_TEXT, "next");
	stream_frame(&s, FIN | WS_OP_BINARY, NULL, 1 * MIB); /* exactly the limit still fits */
	stream_text(&s, FIN | WS_OP_TEXT, "last");

	rec.heap_baseline = heap_live_bytes();
	assert_int_equal(feed_chunks(&rec, s.bytes, s.len, 64 * KIB), 0);
	assert_int_equal(rec.count, 4);
	assert_event(&rec, 0, EVENT_OVERSIZE, 0, NULL, total);
	assert_event(&rec, 1, EVENT_MESSAGE, WS_OP_TEXT, "next", 4);
	assert_event(&rec, 2, EVENT_MESSAGE, WS_OP_BINARY, NULL, 1 * MIB);
	assert_event(&rec, 3, EVENT_MESSAGE, WS_OP_TEXT, "last", 4);
	assert_true(rec.peak_buffer_bytes <= 1 * MIB);
	if (rec.heap_baseline) {
		/* Measured by the allocator itself, under AddressSanitizer. */
		assert_true(rec.peak_heap_growth >= 1 * MIB);
		assert_true(rec.peak_heap_growth <= 1 * MIB + 64 * KIB);
	}
	/* After a large delivery the buffer is given back. */
	assert_true(ws_decoder_buffer_bytes(rec.dec) <= 64 * KIB);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

/* A header announcing a large frame reserves nothing until its bytes arrive. */
static void test_decoder_no_preallocation(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 1 * MIB);
	stream_frame(&s, FIN | WS_OP_BINARY, NULL, 1 * MIB);
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, 14 + 100), 0);
	assert_true(ws_decoder_buffer_bytes(rec.dec) <= 4 * KIB);
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes + 114, 100 * KIB), 0);
	assert_true(ws_decoder_buffer_bytes(rec.dec) <= 256 * KIB);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

static void test_decoder_shrinks_after_large_message(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	recorder_start(&rec, 1 * MIB);
	stream_text(&s, FIN | WS_OP_TEXT, "small");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	/* A small buffer is kept for the next message. */
	assert_true(ws_decoder_buffer_bytes(rec.dec) > 0);
	assert_true(ws_decoder_buffer_bytes(rec.dec) <= 64 * KIB);
	s.len = 0;
	stream_frame(&s, FIN | WS_OP_BINARY, NULL, 100 * KIB);
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(rec.count, 2);
	assert_true(rec.peak_buffer_bytes >= 100 * KIB);
	assert_int_equal(ws_decoder_buffer_bytes(rec.dec), 0);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

static void test_decoder_rejects_reentry_and_bad_arguments(void **state)
{
	Stream s = { 0 };
	Recorder rec;

	(void)state;
	assert_null(ws_decoder_new(16, NULL, NULL));
	recorder_start(&rec, 64);
	rec.try_reentry = true;
	stream_text(&s, FIN | WS_OP_TEXT, "a");
	stream_text(&s, FIN | WS_OP_TEXT, "b");
	assert_int_equal(ws_decoder_feed(rec.dec, s.bytes, s.len), 0);
	assert_int_equal(rec.reentry_rc, -EBUSY);
	assert_int_equal(rec.count, 2);
	assert_int_equal(ws_decoder_feed(rec.dec, NULL, 1), -EINVAL);
	assert_int_equal(ws_decoder_feed(rec.dec, NULL, 0), 0);
	assert_int_equal(ws_decoder_close_code(rec.dec), 0);
	ws_decoder_free(rec.dec);
	stream_free(&s);
}

typedef struct HeadSeen {
	uint8_t head[WS_OVERSIZE_HEAD_BYTES];
	size_t head_len;
	uint64_t total_len;
	int calls;
} HeadSeen;

static void head_on_oversize(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len)
{
	HeadSeen *seen = ctx;
	memcpy(seen->head, head, head_len);
	seen->head_len = head_len;
	seen->total_len = total_len;
	seen->calls++;
}

/* An oversized message keeps its unmasked start whether it overflows in its first frame or a later
 * one, and whatever the feed chunking, so agentd can answer the request's id. */
static void test_decoder_oversize_keeps_head(void **state)
{
	uint8_t payload[1000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)('a' + i % 26);
	memcpy(payload, "{\"id\":77,", 10);
	static const WsDecoderEvents events = { .on_oversize = head_on_oversize };
	for (int split = 0; split < 2; split++) {
		for (size_t chunk = 1; chunk <= 1100; chunk = chunk * 3 + 1) {
			HeadSeen seen = { 0 };
			Stream s = { 0 };
			if (split) { /* 100 bytes fit, the next fragment overflows the 512-byte bound */
				stream_frame(&s, WS_OP_TEXT, payload, 100);
				stream_frame(&s, 0x80 | WS_OP_CONT, payload + 100, sizeof(payload) - 100);
			} else {
				stream_frame(&s, 0x80 | WS_OP_TEXT, payload, sizeof(payload));
			}
			WsDecoder *dec = ws_decoder_new(512, &events, &seen);
			assert_non_null(dec);
			for (size_t off = 0; off < s.len; off += chunk) {
				size_t n = s.len - off < chunk ? s.len - off : chunk;
				assert_int_equal(ws_decoder_feed(dec, s.bytes + off, n), 0);
			}
			assert_int_equal(seen.calls, 1);
			assert_int_equal(seen.total_len, sizeof(payload));
			assert_int_equal(seen.head_len, WS_OVERSIZE_HEAD_BYTES);
			assert_memory_equal(seen.head, payload, WS_OVERSIZE_HEAD_BYTES);
			ws_decoder_free(dec);
			free(s.bytes);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Client end: masked encoder, decoder of server frames                */
/* ------------------------------------------------------------------ */

static void test_frame_header_masked(void **state)
{
	static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	/* RFC 6455 section 5.7: the masked "Hello" a client sends. */
	static const uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	uint8_t out[14 + 5];
	uint8_t payload[5] = { 'H', 'e', 'l', 'l', 'o' };

	(void)state;
	assert_int_equal(ws_frame_header_masked(out, WS_OP_TEXT, 5, mask), 6);
	ws_payload_mask(payload, sizeof(payload), mask);
	memcpy(out + 6, payload, sizeof(payload));
	assert_memory_equal(out, hello, sizeof(hello));
	/* Masking twice gives the plain text back. */
	ws_payload_mask(payload, sizeof(payload), mask);
	assert_memory_equal(payload, "Hello", 5);

	assert_int_equal(ws_frame_header_masked(out, WS_OP_BINARY, 126, mask), 8);
	assert_int_equal(out[0], 0x82);
	assert_int_equal(out[1], 0x80 | 126);
	assert_memory_equal(out + 4, mask, 4);
	assert_int_equal(ws_frame_header_masked(out, WS_OP_TEXT, 65536, mask), 14);
	assert_int_equal(out[1], 0x80 | 127);
	assert_int_equal(out[7], 1);
	assert_memory_equal(out + 10, mask, 4);
	assert_int_equal(ws_frame_header_masked(out, WS_OP_PONG, 0, mask), 6);
	assert_int_equal(out[0], 0x8a);
	assert_int_equal(out[1], 0x80);
}

/* What our own client encoder writes, the server decoder reads back. */
static void test_masked_frames_round_trip(void **state)
{
	static const uint8_t mask[4] = { 0xde, 0xad, 0xbe, 0xef };
	uint8_t large[70001];
	Stream s = { 0 };
	Recorder rec;
	WsDecoder *dec = recorder_start(&rec, 1 * MIB);

	(void)state;
	for (size_t i = 0; i < sizeof(large); i++)
		large[i] = (uint8_t)('a' + i % 26);
	const size_t sizes[] = { 0, 1, 125, 126, 65535, 65536, sizeof(large) };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t header[14];
		size_t n = ws_frame_header_masked(header, WS_OP_TEXT, sizes[i], mask);

		stream_raw(&s, header, n);
		uint8_t *payload = stream_grow(&s, sizes[i]);

		memcpy(payload, large, sizes[i]);
		ws_payload_mask(payload, sizes[i], mask);
	}
	assert_int_equal(feed_chunks(&rec, s.bytes, s.len, 1000), 0);
	assert_int_equal(rec.count, sizeof(sizes) / sizeof(sizes[0]));
	for (size_t i = 0; i < rec.count; i++) {
		assert_event(&rec, i, EVENT_MESSAGE, WS_OP_TEXT, sizes[i] <= EVENT_DATA_MAX ? large : NULL,
			     sizes[i]);
		assert_true(rec.events[i].hash == hash_bytes(large, sizes[i]));
	}
	stream_free(&s);
	ws_decoder_free(dec);
}

static WsDecoder *recorder_start_client(Recorder *rec, size_t max_message_bytes)
{
	memset(rec, 0, sizeof(*rec));
	rec->dec = ws_client_decoder_new(max_message_bytes, &recorder_events, rec);
	assert_non_null(rec->dec);
	return rec->dec;
}

/* Server frames (unmasked, as ws_frame_header() writes them) of every length encoding, fragmented,
 * with a ping in between, fed a byte at a time. */
static void test_client_decoder_server_frames(void **state)
{
	uint8_t big[70000];
	Stream s = { 0 };
	uint8_t header[10];
	Recorder rec;
	WsDecoder *dec = recorder_start_client(&rec, 1 * MIB);

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)('A' + i % 26);
	stream_raw(&s, header, ws_frame_header(header, WS_OP_TEXT, 5));
	stream_raw(&s, "Hello", 5);
	stream_raw(&s, header, ws_frame_header(header, WS_OP_BINARY, 300));
	stream_raw(&s, big, 300);
	stream_raw(&s, header, ws_frame_header(header, WS_OP_TEXT, sizeof(big)));
	stream_raw(&s, big, sizeof(big));
	/* "frag" + "ment", a ping between the fragments. */
	stream_raw(&s, (const uint8_t[]){ 0x01, 4 }, 2);
	stream_raw(&s, "frag", 4);
	stream_raw(&s, (const uint8_t[]){ 0x89, 2 }, 2);
	stream_raw(&s, "pp", 2);
	stream_raw(&s, (const uint8_t[]){ 0x80, 4 }, 2);
	stream_raw(&s, "ment", 4);
	stream_raw(&s, (const uint8_t[]){ 0x88, 2, 0x03, 0xe8 }, 4);
	assert_int_equal(feed_chunks(&rec, s.bytes, s.len, 1), 0);
	assert_int_equal(rec.count, 6);
	assert_event(&rec, 0, EVENT_MESSAGE, WS_OP_TEXT, "Hello", 5);
	assert_event(&rec, 1, EVENT_MESSAGE, WS_OP_BINARY, NULL, 300);
	assert_true(rec.events[1].hash == hash_bytes(big, 300));
	assert_event(&rec, 2, EVENT_MESSAGE, WS_OP_TEXT, NULL, sizeof(big));
	assert_true(rec.events[2].hash == hash_bytes(big, sizeof(big)));
	assert_event(&rec, 3, EVENT_CONTROL, WS_OP_PING, "pp", 2);
	assert_event(&rec, 4, EVENT_MESSAGE, WS_OP_TEXT, "fragment", 8);
	assert_event(&rec, 5, EVENT_CONTROL, WS_OP_CLOSE, "\x03\xe8", 2);
	stream_free(&s);
	ws_decoder_free(dec);
}

/* RFC 6455 section 5.1: a client closes on a masked frame; the server decoder is unchanged. */
static void test_client_decoder_rejects_masked(void **state)
{
	static const uint8_t masked_hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
						0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const uint8_t plain_hello[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	Recorder rec;
	WsDecoder *dec = recorder_start_client(&rec, 1024);

	(void)state;
	assert_int_equal(ws_decoder_feed(dec, masked_hello, sizeof(masked_hello)), -EPROTO);
	assert_int_equal(ws_decoder_close_code(dec), WS_CLOSE_PROTOCOL_ERROR);
	assert_int_equal(rec.count, 0);
	ws_decoder_free(dec);

	dec = recorder_start(&rec, 1024);
	assert_int_equal(ws_decoder_feed(dec, plain_hello, sizeof(plain_hello)), -EPROTO);
	ws_decoder_free(dec);

	assert_null(ws_client_decoder_new(16, NULL, NULL));
	assert_int_equal(errno, EINVAL);
}

/* The oversize path keeps an unmasked message's first bytes as they are, overflowing in the first
 * fragment or a later one. */
static void test_client_decoder_oversize_keeps_head(void **state)
{
	static const WsDecoderEvents events = { .on_oversize = head_on_oversize, .on_message = on_message };
	uint8_t payload[1000];
	uint8_t header[10];

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)('a' + i % 26);
	memcpy(payload, "{\"id\":42,", 9);
	for (int split = 0; split < 2; split++) {
		HeadSeen seen = { 0 };
		Stream s = { 0 };

		if (split) {
			stream_raw(&s, (const uint8_t[]){ WS_OP_TEXT, 100 }, 2);
			stream_raw(&s, payload, 100);
			stream_raw(&s, header, ws_frame_header(header, WS_OP_CONT, sizeof(payload) - 100));
			stream_raw(&s, payload + 100, sizeof(payload) - 100);
		} else {
			stream_raw(&s, header, ws_frame_header(header, WS_OP_TEXT, sizeof(payload)));
			stream_raw(&s, payload, sizeof(payload));
		}
		WsDecoder *dec = ws_client_decoder_new(512, &events, &seen);

		assert_non_null(dec);
		for (size_t off = 0; off < s.len; off += 7)
			assert_int_equal(
				ws_decoder_feed(dec, s.bytes + off, s.len - off < 7 ? s.len - off : 7), 0);
		assert_int_equal(seen.calls, 1);
		assert_int_equal(seen.total_len, sizeof(payload));
		assert_int_equal(seen.head_len, WS_OVERSIZE_HEAD_BYTES);
		assert_memory_equal(seen.head, payload, WS_OVERSIZE_HEAD_BYTES);
		ws_decoder_free(dec);
		stream_free(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decoder_oversize_keeps_head),
		cmocka_unit_test(test_accept_key_rfc_example),
		cmocka_unit_test(test_accept_key_rejects_malformed),
		cmocka_unit_test(test_request_parse_complete),
		cmocka_unit_test(test_request_parse_incomplete),
		cmocka_unit_test(test_head_take_in_pieces),
		cmocka_unit_test(test_head_take_overflow),
		cmocka_unit_test(test_request_parse_oversized),
		cmocka_unit_test(test_request_parse_malformed),
		cmocka_unit_test(test_request_parse_rejects_early),
		cmocka_unit_test(test_request_parse_case_insensitive),
		cmocka_unit_test(test_request_parse_upgrade_tokens),
		cmocka_unit_test(test_request_parse_origin),
		cmocka_unit_test(test_request_parse_authorization),
		cmocka_unit_test(test_request_parse_path_limits),
		cmocka_unit_test(test_frame_header_lengths),
		cmocka_unit_test(test_decoder_single_text),
		cmocka_unit_test(test_decoder_byte_at_a_time),
		cmocka_unit_test(test_decoder_close_frame),
		cmocka_unit_test(test_decoder_fragmented_with_ping),
		cmocka_unit_test(test_decoder_oversize_fragments),
		cmocka_unit_test(test_decoder_zero_limit),
		cmocka_unit_test(test_decoder_protocol_errors),
		cmocka_unit_test(test_decoder_invalid_utf8),
		cmocka_unit_test(test_decoder_close_reason_utf8),
		cmocka_unit_test(test_close_payload_parse),
		cmocka_unit_test(test_decoder_memory_bound),
		cmocka_unit_test(test_decoder_no_preallocation),
		cmocka_unit_test(test_decoder_shrinks_after_large_message),
		cmocka_unit_test(test_decoder_rejects_reentry_and_bad_arguments),
		cmocka_unit_test(test_frame_header_masked),
		cmocka_unit_test(test_masked_frames_round_trip),
		cmocka_unit_test(test_client_decoder_server_frames),
		cmocka_unit_test(test_client_decoder_rejects_masked),
		cmocka_unit_test(test_client_decoder_oversize_keeps_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
