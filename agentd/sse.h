/* SPDX-License-Identifier: MIT */
/* sse.h - incremental text/event-stream parser (WHATWG HTML §9.2.6) with hard size bounds. */
#ifndef AGENTD_SSE_H
#define AGENTD_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The model client hands in whatever bytes libcurl read, split anywhere; the parser reassembles
 * lines and calls back once per dispatched event. It follows the spec's processing model: the
 * stream is UTF-8 decoded (one leading BOM skipped, invalid sequences become U+FFFD), lines end
 * in CRLF, LF or CR, ':' starts a comment, and a blank line dispatches the event when it has data.
 * Nothing touches a socket; errors are negative errno values and stick until sse_parser_finish().
 */

/* One event's data (its data lines joined with "\n") may hold this much; one line, this much. */
#define SSE_DEFAULT_MAX_EVENT_BYTES ((size_t)16 << 20)

/* sse_parser_finish(): the stream ended inside an event, which was discarded (a cut stream). */
#define SSE_E_TRUNCATED 1

typedef struct SseLimits {
	size_t max_event_bytes; /* data of one event; 0: SSE_DEFAULT_MAX_EVENT_BYTES */
	size_t max_line_bytes;	/* one decoded line without its line end, field name included; 0: as
				 * max_event_bytes, so a "data:" line this long does not fit */
} SseLimits;

typedef struct SseEvent {
	const char *type; /* the event field, or "message" when there was none; NUL-terminated */
	size_t type_len;
	const char *data; /* NUL-terminated after data_len bytes, which may themselves hold NUL */
	size_t data_len;
	const char *last_id; /* the last event ID string, "" until an id field; never holds NUL */
} SseEvent;

/* Called once per event; the pointers are valid only during the call, which must not feed,
 * finish or free the parser. Return 0 to go on; non-zero stops the parse (see sse_parser_feed). */
typedef int (*SseEventFn)(void *ctx, const SseEvent *event);

typedef struct SseParser SseParser;

/**
 * sse_parser_new() - a parser at the start of a stream.
 * @limits: the bounds; NULL for the defaults.
 * @on_event: called per dispatched event, with @ctx.
 * @out: receives the parser.
 *
 * Return: 0; -EINVAL without @on_event or for a bound above SIZE_MAX / 2; -ENOMEM.
 */
int sse_parser_new(const SseLimits *limits, SseEventFn on_event, void *ctx, SseParser **out);

/** sse_parser_free() - free @p and everything it holds; NULL is allowed. */
void sse_parser_free(SseParser *p);

/**
 * sse_parser_feed() - consume @len bytes of the stream, calling back for each event they end.
 *
 * Any split of the stream into feeds gives the same events, a CR ending one feed and the LF
 * starting the next being one line end. Once a feed fails, every later feed returns the same
 * error without reading its bytes, until sse_parser_finish().
 *
 * Return: 0; -EMSGSIZE for a line or an event over its bound (nothing past the bound is
 * buffered); -ENOMEM; the callback's value when it returned a negative one, -ECANCELED when
 * it returned a positive one. Either way the bytes after that event are not read.
 */
int sse_parser_feed(SseParser *p, const void *bytes, size_t len);

/**
 * sse_parser_finish() - the stream ended: drop what was not dispatched and ready @p for the
 * next stream (a reconnection), which starts afresh except for the last event ID string, which
 * seeds its last event ID buffer as browsers do, and the reconnection time.
 *
 * Return: 0 when the stream ended between events; SSE_E_TRUNCATED when it ended after a field
 * line with no blank line since, or inside a line that is not a comment; the error an earlier
 * feed returned, if one did; -ENOMEM.
 */
int sse_parser_finish(SseParser *p);

/** sse_parser_last_id() - the last event ID string (for Last-Event-ID); "" when none. */
const char *sse_parser_last_id(const SseParser *p);

/** sse_parser_retry_ms() - whether a valid retry field was seen; the latest value in @retry_ms.
 * A value that is empty, not all ASCII digits, or over UINT64_MAX is ignored. */
bool sse_parser_retry_ms(const SseParser *p, uint64_t *retry_ms);

#endif
