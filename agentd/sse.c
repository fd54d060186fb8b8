/* SPDX-License-Identifier: MIT */
/* sse.c - text/event-stream parsing as WHATWG HTML §9.2.6 writes it, one byte stream in, events out. */
#include "sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte string, always NUL-terminated once allocated. It only grows (up to the bound it
 * is given), so a stream of similar events allocates nothing after the first. */
typedef struct SseBuf {
	char *bytes;
	size_t len, cap;
} SseBuf;

/* The WHATWG UTF-8 decoder's state for the sequence being read; its bytes sit in the line
 * buffer from @start on, so a valid sequence needs no copy and a broken one is cut back. */
typedef struct SseUtf8 {
	unsigned char needed, seen, lower, upper;
	size_t start;
} SseUtf8;

struct SseParser {
	size_t max_event_bytes, max_line_bytes;
	SseEventFn on_event;
	void *ctx;
	SseBuf line;	/* the line being read, decoded, without its line end */
	SseBuf data;	/* the data buffer: each data value followed by "\n" */
	SseBuf type;	/* the event type buffer */
	SseBuf id;	/* the last event ID buffer */
	SseBuf last_id; /* the last event ID string: the buffer as it was at the last dispatch */
	SseUtf8 utf8;
	uint64_t retry_ms;
	bool has_retry;
	bool is_at_stream_start; /* no code point decoded yet, so a BOM would be skipped */
	bool has_pending_cr;	 /* the last line ended in CR: an LF next is the rest of a CRLF */
	bool is_event_open;	 /* a field line since the last blank line */
	int error;		 /* the failure that stopped this stream, or 0 */
};

static const char sse_replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
static const char sse_bom[] = "\xEF\xBB\xBF";	      /* U+FEFF */

/* ---- byte strings ------------------------------------------------------------------------------ */

static const char *sse_buf_str(const SseBuf *b)
{
	return b->bytes ? b->bytes : "";
}

/* Room for @need bytes and a NUL; -EMSGSIZE past @limit, which also caps the capacity. */
static int sse_buf_reserve(SseBuf *b, size_t need, size_t limit)
{
	if (need > limit)
		return -EMSGSIZE;
	if (b->bytes && need < b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap <= need)
		cap *= 2;
	if (cap > limit + 1)
		cap = limit + 1;
	char *grown = realloc(b->bytes, cap);
	if (!grown)
		return -ENOMEM;
	b->bytes = grown;
	b->cap = cap;
	return 0;
}

static int sse_buf_append(SseBuf *b, const void *bytes, size_t n, size_t limit)
{
	if (n > limit - b->len)
		return -EMSGSIZE;
	int rc = sse_buf_reserve(b, b->len + n, limit);
	if (rc < 0)
		return rc;
	if (n > 0)
		memcpy(b->bytes + b->len, bytes, n);
	b->len += n;
	b->bytes[b->len] = '\0';
	return 0;
}

static int sse_buf_set(SseBuf *b, const void *bytes, size_t n, size_t limit)
{
	b->len = 0;
	if (b->bytes)
		b->bytes[0] = '\0';
	return sse_buf_append(b, bytes, n, limit);
}

static void sse_buf_truncate(SseBuf *b, size_t len)
{
	b->len = len;
	if (b->bytes)
		b->bytes[len] = '\0';
}

static void sse_buf_free(SseBuf *b)
{
	free(b->bytes);
	memset(b, 0, sizeof(*b));
}

/* ---- fields and dispatch ----------------------------------------------------------------------- */

static int sse_field_event(SseParser *p, const char *value, size_t len)
{
	return sse_buf_set(&p->type, value, len, p->max_line_bytes);
}

/* The data buffer may reach one byte past the bound: the "\n" after the last line is not data. */
static int sse_field_data(SseParser *p, const char *value, size_t len)
{
	int rc = sse_buf_append(&p->data, value, len, p->max_event_bytes + 1);
	return rc < 0 ? rc : sse_buf_append(&p->data, "\n", 1, p->max_event_bytes + 1);
}

/* An id with NUL is ignored: it could not travel back in a Last-Event-ID header. */
static int sse_field_id(SseParser *p, const char *value, size_t len)
{
	if (memchr(value, '\0', len))
		return 0;
	return sse_buf_set(&p->id, value, len, p->max_line_bytes);
}

static int sse_field_retry(SseParser *p, const char *value, size_t len)
{
	uint64_t ms = 0;
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '9')
			return 0;
		unsigned digit = (unsigned)(value[i] - '0');
		if (ms > (UINT64_MAX - digit) / 10)
			return 0;
		ms = ms * 10 + digit;
	}
	p->retry_ms = ms;
	p->has_retry = true;
	return 0;
}

/* The fields the spec knows, compared byte for byte; any other name is ignored. */
static const struct SseField {
	const char *name;
	int (*process)(SseParser *p, const char *value, size_t len);
} sse_fields[] = {
	{ "event", sse_field_event },
	{ "data", sse_field_data },
	{ "id", sse_field_id },
	{ "retry", sse_field_retry },
};

static int sse_process_field(SseParser *p, const char *name, size_t name_len, const char *value,
			     size_t value_len)
{
	for (size_t i = 0; i < sizeof(sse_fields) / sizeof(sse_fields[0]); i++) {
		const struct SseField *f = &sse_fields[i];
		if (strlen(f->name) == name_len && memcmp(f->name, name, name_len) == 0)
			return f->process(p, value, value_len);
	}
	return 0;
}

/* The callback's verdict as feed reports it: its own negative code, or a stop. */
static int sse_callback_result(int rc)
{
	if (rc < 0)
		return rc;
	return rc > 0 ? -ECANCELED : 0;
}

/* The spec's "dispatch the event" steps, in order: commit the id, skip an event without data,
 * drop the final "\n", deliver, empty the data and type buffers. */
static int sse_dispatch(SseParser *p)
{
	p->is_event_open = false;
	int rc = sse_buf_set(&p->last_id, sse_buf_str(&p->id), p->id.len, p->max_line_bytes);
	if (rc < 0)
		return rc;
	if (p->data.len == 0) {
		sse_buf_truncate(&p->type, 0);
		return 0;
	}
	sse_buf_truncate(&p->data, p->data.len - 1);
	SseEvent event = {
		.type = p->type.len ? p->type.bytes : "message",
		.type_len = p->type.len ? p->type.len : strlen("message"),
		.data = p->data.bytes,
		.data_len = p->data.len,
		.last_id = sse_buf_str(&p->last_id),
	};
	rc = p->on_event(p->ctx, &event);
	sse_buf_truncate(&p->data, 0);
	sse_buf_truncate(&p->type, 0);
	return sse_callback_result(rc);
}

static int sse_process_line(SseParser *p, const char *line, size_t len)
{
	if (len == 0)
		return sse_dispatch(p);
	if (line[0] == ':')
		return 0;
	p->is_event_open = true;
	const char *colon = memchr(line, ':', len);
	if (!colon)
		return sse_process_field(p, line, len, "", 0);
	size_t name_len = (size_t)(colon - line);
	const char *value = colon + 1;
	size_t value_len = len - name_len - 1;
	if (value_len > 0 && value[0] == ' ') {
		value++;
		value_len--;
	}
	return sse_process_field(p, line, name_len, value, value_len);
}

/* ---- UTF-8 decoding into the line -------------------------------------------------------------- */

static int sse_line_append(SseParser *p, const void *bytes, size_t n)
{
	return sse_buf_append(&p->line, bytes, n, p->max_line_bytes);
}

static void sse_utf8_reset(SseUtf8 *u)
{
	u->needed = u->seen = 0;
	u->lower = 0x80;
	u->upper = 0xBF;
}

/* A code point is complete at the end of the line; the first one of the stream is dropped when
 * it is the BOM. */
static void sse_code_point_done(SseParser *p)
{
	if (!p->is_at_stream_start)
		return;
	p->is_at_stream_start = false;
	if (p->line.len == 3 && memcmp(p->line.bytes, sse_bom, 3) == 0)
		sse_buf_truncate(&p->line, 0);
}

/* The bytes of a broken sequence are replaced by one U+FFFD, as the decoder's error mode says. */
static int sse_utf8_replace(SseParser *p)
{
	sse_buf_truncate(&p->line, p->utf8.start);
	sse_utf8_reset(&p->utf8);
	p->is_at_stream_start = false;
	return sse_line_append(p, sse_replacement, 3);
}

/* A byte with no sequence under way: ASCII, the lead of a sequence, or an error. The ranges
 * narrow the first continuation byte so overlongs, surrogates and values past U+10FFFF fail. */
static int sse_utf8_lead(SseParser *p, unsigned char byte)
{
	SseUtf8 *u = &p->utf8;
	if (byte < 0x80) {
		int rc = sse_line_append(p, &byte, 1);
		sse_code_point_done(p);
		return rc;
	}
	if (byte >= 0xC2 && byte <= 0xDF) {
		u->needed = 1;
	} else if (byte >= 0xE0 && byte <= 0xEF) {
		u->lower = byte == 0xE0 ? 0xA0 : 0x80;
		u->upper = byte == 0xED ? 0x9F : 0xBF;
		u->needed = 2;
	} else if (byte >= 0xF0 && byte <= 0xF4) {
		u->lower = byte == 0xF0 ? 0x90 : 0x80;
		u->upper = byte == 0xF4 ? 0x8F : 0xBF;
		u->needed = 3;
	} else {
		u->start = p->line.len;
		return sse_utf8_replace(p);
	}
	u->start = p->line.len;
	return sse_line_append(p, &byte, 1);
}

/* A byte that is not CR or LF. An unexpected one ends the sequence in U+FFFD and is then read
 * afresh, so a broken sequence never swallows the byte after it. */
static int sse_utf8_take(SseParser *p, unsigned char byte)
{
	SseUtf8 *u = &p->utf8;
	if (u->needed == 0)
		return sse_utf8_lead(p, byte);
	if (byte < u->lower || byte > u->upper) {
		int rc = sse_utf8_replace(p);
		return rc < 0 ? rc : sse_utf8_lead(p, byte);
	}
	u->lower = 0x80;
	u->upper = 0xBF;
	int rc = sse_line_append(p, &byte, 1);
	if (rc < 0 || ++u->seen < u->needed)
		return rc;
	sse_utf8_reset(u);
	sse_code_point_done(p);
	return 0;
}

/* ---- lines ------------------------------------------------------------------------------------- */

/* A line end cuts short any sequence under way (CR and LF are ASCII, so it is broken). */
static int sse_end_line(SseParser *p)
{
	int rc = 0;
	if (p->utf8.needed > 0)
		rc = sse_utf8_replace(p);
	p->is_at_stream_start = false;
	if (rc == 0)
		rc = sse_process_line(p, sse_buf_str(&p->line), p->line.len);
	sse_buf_truncate(&p->line, 0);
	return rc;
}

static int sse_take_byte(SseParser *p, unsigned char byte)
{
	if (p->has_pending_cr) {
		p->has_pending_cr = false;
		if (byte == '\n')
			return 0; /* the LF of a CRLF whose CR already ended the line */
	}
	if (byte == '\r' || byte == '\n') {
		p->has_pending_cr = byte == '\r';
		return sse_end_line(p);
	}
	return sse_utf8_take(p, byte);
}

/* How many bytes from @in need no decision: ASCII other than CR and LF, read while no sequence
 * and no CR is pending. They go to the line in one copy, the common case of a JSON payload. */
static size_t sse_plain_run(const SseParser *p, const unsigned char *in, size_t len)
{
	size_t n = 0;
	if (p->utf8.needed > 0 || p->has_pending_cr)
		return 0;
	while (n < len && in[n] < 0x80 && in[n] != '\r' && in[n] != '\n')
		n++;
	return n;
}

static int sse_take_plain(SseParser *p, const unsigned char *in, size_t n)
{
	p->is_at_stream_start = false; /* an ASCII first code point: there is no BOM */
	return sse_line_append(p, in, n);
}

/* ---- the parser -------------------------------------------------------------------------------- */

static void sse_parser_start_stream(SseParser *p)
{
	sse_utf8_reset(&p->utf8);
	p->is_at_stream_start = true;
	p->has_pending_cr = false;
	p->is_event_open = false;
	p->error = 0;
}

int sse_parser_new(const SseLimits *limits, SseEventFn on_event, void *ctx, SseParser **out)
{
	SseLimits bounds = limits ? *limits : (SseLimits){ 0 };
	if (!bounds.max_event_bytes)
		bounds.max_event_bytes = SSE_DEFAULT_MAX_EVENT_BYTES;
	if (!bounds.max_line_bytes)
		bounds.max_line_bytes = bounds.max_event_bytes;
	/* Half the address space keeps "bound + 1" and capacity doubling from overflowing. */
	if (!on_event || bounds.max_event_bytes > SIZE_MAX / 2 || bounds.max_line_bytes > SIZE_MAX / 2)
		return -EINVAL;
	SseParser *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->max_event_bytes = bounds.max_event_bytes;
	p->max_line_bytes = bounds.max_line_bytes;
	p->on_event = on_event;
	p->ctx = ctx;
	sse_parser_start_stream(p);
	*out = p;
	return 0;
}

void sse_parser_free(SseParser *p)
{
	if (!p)
		return;
	sse_buf_free(&p->line);
	sse_buf_free(&p->data);
	sse_buf_free(&p->type);
	sse_buf_free(&p->id);
	sse_buf_free(&p->last_id);
	free(p);
}

int sse_parser_feed(SseParser *p, const void *bytes, size_t len)
{
	const unsigned char *in = bytes;
	size_t off = 0;
	int rc = p->error;
	while (rc == 0 && off < len) {
		size_t n = sse_plain_run(p, in + off, len - off);
		if (n > 0) {
			rc = sse_take_plain(p, in + off, n);
		} else {
			rc = sse_take_byte(p, in[off]);
			n = 1;
		}
		off += n;
	}
	p->error = rc;
	return rc;
}

/* Whether the end of the stream discards something of an event: its fields, or a line. */
static bool sse_is_mid_event(const SseParser *p)
{
	return p->is_event_open || (p->line.len > 0 && p->line.bytes[0] != ':');
}

int sse_parser_finish(SseParser *p)
{
	int rc = p->error ? p->error : sse_is_mid_event(p) ? SSE_E_TRUNCATED : 0;
	/* The buffers of one stream are let go with it: a huge event does not pin its memory. */
	sse_buf_free(&p->line);
	sse_buf_free(&p->data);
	sse_buf_free(&p->type);
	sse_parser_start_stream(p);
	int seeded = sse_buf_set(&p->id, sse_buf_str(&p->last_id), p->last_id.len, p->max_line_bytes);
	return seeded < 0 ? seeded : rc;
}

const char *sse_parser_last_id(const SseParser *p)
{
	return sse_buf_str(&p->last_id);
}

bool sse_parser_retry_ms(const SseParser *p, uint64_t *retry_ms)
{
	if (p->has_retry && retry_ms)
		*retry_ms = p->retry_ms;
	return p->has_retry;
}
