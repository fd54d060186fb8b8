/* SPDX-License-Identifier: MIT */
/* lines.h - newline-delimited message framing with a hard bound per line. */
#ifndef AGENTD_LINES_H
#define AGENTD_LINES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct LineReaderEvents {
	/* One complete, non-empty line without its "\n" (or "\r\n"). */
	void (*on_line)(void *ctx, const char *line, size_t len);
	/* A line longer than the bound was skipped without being buffered; @len is its length and
	 * @head its first bytes (at most LINE_HEAD_BYTES), enough to find a request's id. */
	void (*on_oversize)(void *ctx, size_t len, const char *head, size_t head_len);
} LineReaderEvents;

#define LINE_HEAD_BYTES 256u

typedef struct LineReader {
	char *buf;
	size_t len, cap, max_bytes;
	bool is_discarding;
	bool has_pending_cr; /* a '\r' ending the data so far, held until the next byte decides */
	size_t discarded;
	char head[LINE_HEAD_BYTES]; /* the first bytes of a line being discarded */
	size_t head_len;
	LineReaderEvents events;
	void *ctx;
} LineReader;

void line_reader_init(LineReader *r, size_t max_bytes, const LineReaderEvents *events, void *ctx);
/**
 * line_reader_feed() - consume @len bytes, calling back once per complete line.
 * @should_stop is polled between lines so a callback that closes the connection halts the feed.
 * Return: 0 or -ENOMEM.
 */
int line_reader_feed(LineReader *r, const char *data, size_t len, bool (*should_stop)(void *ctx));
void line_reader_free(LineReader *r);

#endif
