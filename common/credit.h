/* SPDX-License-Identifier: MIT */
/* credit.h - credit-based flow control for streams that cross the broker. */
#ifndef AGENTD_CREDIT_H
#define AGENTD_CREDIT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The producer of a stream (execd output, watchd changes) may have at most `available`
 * chunks in flight; the consumer (agentd, once a chunk is written to the client's socket)
 * returns credit in ENVELOPE_CREDIT envelopes. A window never exceeds `limit`, so a consumer
 * granting more than it was given is a protocol violation, not extra buffering.
 */
typedef struct CreditWindow {
	uint32_t available;
	uint32_t limit;
} CreditWindow;

/** credit_init() - a window of @limit chunks (>= 1), all available. */
void credit_init(CreditWindow *w, uint32_t limit);
/** credit_can_send() - whether one more chunk may go out now. */
bool credit_can_send(const CreditWindow *w);
/** credit_consume() - take one credit for a chunk sent. Return 0 or -EAGAIN when none is left. */
int credit_consume(CreditWindow *w);
/** credit_grant() - return @n credits. Return 0, or -EPROTO when it would exceed the limit (window
 * unchanged). */
int credit_grant(CreditWindow *w, uint32_t n);
/** credit_in_flight() - chunks sent and not yet acknowledged. */
uint32_t credit_in_flight(const CreditWindow *w);

#endif
