/* SPDX-License-Identifier: MIT */
/* ws_fuzz.c - libFuzzer target for the websocket codec: request head parser and frame decoder. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ws.h"

#define FUZZ_MAX_MESSAGE_BYTES 4096

/* Events reduced to a count and a running hash, so two runs can be compared. */
typedef struct FuzzDigest {
	uint64_t hash;
	size_t events;
} FuzzDigest;

static void fuzz_digest_add(FuzzDigest *digest, unsigned kind, unsigned opcode, const uint8_t *data,
			    uint64_t len)
{
	uint64_t h = digest->hash ^ (kind * 0x9e3779b97f4a7c15u) ^ opcode ^ (len << 8);

	for (size_t i = 0; data && i < len; i++)
		h = (h ^ data[i]) * 0x100000001b3u;
	digest->hash = h * 0x100000001b3u;
	digest->events++;
}

static void fuzz_on_message(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	if (!data || len > FUZZ_MAX_MESSAGE_BYTES || (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY))
		__builtin_trap();
	fuzz_digest_add(ctx, 1, opcode, data, len);
}

static void fuzz_on_oversize(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len)
{
	if (head_len > WS_OVERSIZE_HEAD_BYTES || head_len > total_len)
		__builtin_trap();
	if (total_len <= FUZZ_MAX_MESSAGE_BYTES)
		__builtin_trap();
	fuzz_digest_add(ctx, 2, 0, NULL, total_len);
}

static void fuzz_on_control(void *ctx, unsigned opcode, const uint8_t *data, size_t len)
{
	if (!data || len > 125 || (opcode != WS_OP_CLOSE && opcode != WS_OP_PING && opcode != WS_OP_PONG))
		__builtin_trap();
	fuzz_digest_add(ctx, 3, opcode, data, len);
}

static const WsDecoderEvents fuzz_events = {
	.on_message = fuzz_on_message,
	.on_oversize = fuzz_on_oversize,
	.on_control = fuzz_on_control,
};

/* Decode the input whole (is_split false) or in irregular small reads; the
 * outcome must not depend on how the bytes were split. */
static int fuzz_decode(const uint8_t *data, size_t len, bool is_split, FuzzDigest *digest,
		       uint16_t *close_code)
{
	WsDecoder *dec = ws_decoder_new(FUZZ_MAX_MESSAGE_BYTES, &fuzz_events, digest);
	uint32_t seed = (uint32_t)len * 2654435761u;
	int rc = 0;

	if (!dec)
		__builtin_trap();
	for (size_t off = 0; off < len;) {
		size_t n = len - off;

		if (is_split) {
			seed = seed * 1103515245u + 12345u;
			size_t step = 1 + (seed >> 16) % 23;
			n = step < n ? step : n;
		}
		rc = ws_decoder_feed(dec, data + off, n);
		if (ws_decoder_buffer_bytes(dec) > FUZZ_MAX_MESSAGE_BYTES)
			__builtin_trap();
		if (rc < 0)
			break;
		off += n;
	}
	if (rc != 0 && rc != -EPROTO && rc != -EILSEQ)
		__builtin_trap();
	*close_code = ws_decoder_close_code(dec);
	ws_decoder_free(dec);
	return rc;
}

static void fuzz_decode_both_ways(const uint8_t *data, size_t len)
{
	FuzzDigest whole = { 0 }, split = { 0 };
	uint16_t whole_code = 0, split_code = 0;
	int whole_rc = fuzz_decode(data, len, false, &whole, &whole_code);
	int split_rc = fuzz_decode(data, len, true, &split, &split_code);

	if (whole_rc != split_rc || whole_code != split_code || whole.hash != split.hash ||
	    whole.events != split.events)
		__builtin_trap();
}

static void fuzz_check_request(const WsRequest *req)
{
	char accept[29];

	if (strnlen(req->method, sizeof(req->method)) == sizeof(req->method) ||
	    strnlen(req->path, sizeof(req->path)) == sizeof(req->path) ||
	    strnlen(req->key, sizeof(req->key)) == sizeof(req->key) ||
	    strnlen(req->authorization, sizeof(req->authorization)) == sizeof(req->authorization))
		__builtin_trap();
	if (req->path[0] != '/' || req->version < 0 || req->version > 255)
		__builtin_trap();
	if (ws_accept_key(req->key, accept) == 0 && strlen(accept) != 28)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	WsRequest req;
	int head_len = ws_request_parse((const char *)data, size, &req);

	if (head_len > 0) {
		if ((size_t)head_len > size || head_len > WS_HANDSHAKE_MAX_BYTES)
			__builtin_trap();
		fuzz_check_request(&req);
		/* The head alone parses the same as with bytes after it. */
		if (ws_request_parse((const char *)data, (size_t)head_len, &req) != head_len)
			__builtin_trap();
		/* What follows a head is what a server would hand to its decoder. */
		fuzz_decode_both_ways(data + head_len, size - (size_t)head_len);
	} else if (head_len != 0 && head_len != -EINVAL && head_len != -E2BIG) {
		__builtin_trap();
	}
	fuzz_decode_both_ways(data, size);
	return 0;
}
