/* SPDX-License-Identifier: MIT */
/* envelope_fuzz.c - libFuzzer target: envelope_decode() on arbitrary bytes, re-encode what it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

typedef struct FuzzBuf {
	uint8_t *data;
	size_t len;
} FuzzBuf;

static int fuzz_write(void *ctx, const char *data, size_t len)
{
	FuzzBuf *buf = ctx;
	uint8_t *grown = realloc(buf->data, buf->len + len);
	if (!grown)
		return -1;
	memcpy(grown + buf->len, data, len);
	buf->data = grown;
	buf->len += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Envelope env;
	if (envelope_decode(data, size, &env) < 0)
		return 0;
	/* Whatever decodes must re-encode and decode to the same fields. */
	FuzzBuf buf = { 0 };
	if (envelope_encode(&env, fuzz_write, &buf) != 0)
		abort();
	Envelope again;
	if (envelope_decode(buf.data, buf.len, &again) != 0 || again.id != env.id || again.kind != env.kind ||
	    again.body_len != env.body_len || strcmp(again.method, env.method) != 0 ||
	    (env.body_len && memcmp(again.body, env.body, env.body_len) != 0))
		abort();
	free(buf.data);
	return 0;
}
