/* SPDX-License-Identifier: MIT */
/* lines.c - split a byte stream into bounded lines; oversized lines are skipped, never held. */
#include "lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void line_reader_init(LineReader *r, size_t max_bytes, const LineReaderEvents *events, void *ctx)
{
	memset(r, 0, sizeof(*r));
	r->max_bytes = max_bytes;
	r->events = *events;
	r->ctx = ctx;
}

void line_reader_free(LineReader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
}

static int line_reader_append(LineReader *r, const char *data, size_t len)
{
	if (len == 0)
		return 0;
	if (r->len + len > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + len)
			cap *= 2;
		if (cap > r->max_bytes)
			cap = r->max_bytes;
		char *grown = realloc(r->buf, cap);
		if (!grown)
			return -ENOMEM;
		r->buf = grown;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return 0;
}

/* Keeps memory proportional to recent traffic: a one-off big line does not pin its buffer. */
static void line_reader_shrink(LineReader *r)
{
	if (r->len == 0 && r->cap > 64 * 1024) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
}

static void line_reader_keep_head(LineReader *r, const char *data, size_t len)
{
	size_t room = LINE_HEAD_BYTES - r->head_len;
	size_t take = len < room ? len : room;
	if (take > 0) {
		memcpy(r->head + r->head_len, data, take);
		r->head_len += take;
	}
}

static int line_reader_take_bytes(LineReader *r, const char *data, size_t len)
{
	if (r->is_discarding) {
		line_reader_keep_head(r, data, len);
		r->discarded += len;
		return 0;
	}
	if (r->len + len > r->max_bytes) {
		/* Keep the line's start: the id of an oversized request is usually in it. */
		r->head_len = 0;
		line_reader_keep_head(r, r->buf, r->len);
		line_reader_keep_head(r, data, len);
		r->is_discarding = true;
		r->discarded = r->len + len;
		r->len = 0;
		line_reader_shrink(r);
		return 0;
	}
	return line_reader_append(r, data, len);
}

/* Bytes of one line (up to, not including, a newline) arriving at @data. A final '\r' is held
 * aside: it is the CR of a CRLF (dropped) unless more of the line follows. */
static int line_reader_take(LineReader *r, const char *data, size_t len)
{
	if (len == 0)
		return 0;
	if (r->has_pending_cr) {
		r->has_pending_cr = false;
		int rc = line_reader_take_bytes(r, "\r", 1);
		if (rc < 0)
			return rc;
	}
	if (data[len - 1] == '\r') {
		r->has_pending_cr = true;
		len--;
	}
	return line_reader_take_bytes(r, data, len);
}

static void line_reader_finish(LineReader *r)
{
	r->has_pending_cr = false;
	if (r->is_discarding) {
		r->is_discarding = false;
		size_t total = r->discarded;
		r->discarded = 0;
		r->events.on_oversize(r->ctx, total, r->head, r->head_len);
		return;
	}
	size_t len = r->len;
	r->len = 0;
	if (len > 0)
		r->events.on_line(r->ctx, r->buf, len);
	line_reader_shrink(r);
}

int line_reader_feed(LineReader *r, const char *data, size_t len, bool (*should_stop)(void *ctx))
{
	while (len > 0) {
		const char *newline = memchr(data, '\n', len);
		size_t chunk = newline ? (size_t)(newline - data) : len;
		int rc = line_reader_take(r, data, chunk);
		if (rc < 0)
			return rc;
		if (!newline)
			return 0;
		data += chunk + 1;
		len -= chunk + 1;
		line_reader_finish(r);
		if (should_stop && should_stop(r->ctx))
			return 0;
	}
	return 0;
}
