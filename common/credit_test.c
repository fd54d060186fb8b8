/* SPDX-License-Identifier: MIT */
/* credit_test.c - cmocka tests for credit windows, as scripts of operations with the window's
 * state checked after every step. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>

#include "credit.h"

typedef enum OpKind { OP_END = 0, OP_CONSUME, OP_GRANT } OpKind;

typedef struct Op {
	OpKind kind;
	uint32_t n;	    /* credits granted (OP_GRANT) */
	int rc;		    /* expected return */
	uint32_t available; /* expected after the step */
} Op;

typedef struct CreditCase {
	const char *name;
	uint32_t init;	/* credit_init()'s limit argument */
	uint32_t limit; /* the limit the window must end up with */
	Op ops[12];
} CreditCase;

#define CONSUME(rc, avail)                                                                                   \
	{                                                                                                    \
		OP_CONSUME, 0, rc, avail                                                                     \
	}
#define GRANT(n, rc, avail)                                                                                  \
	{                                                                                                    \
		OP_GRANT, n, rc, avail                                                                       \
	}

static const CreditCase credit_cases[] = {
	/* happy paths */
	{ "init 0 becomes a window of 1", 0, 1, { CONSUME(0, 0), GRANT(1, 0, 1), CONSUME(0, 0) } },
	{ "init 1", 1, 1, { CONSUME(0, 0), GRANT(1, 0, 1) } },
	{ "consume to empty, refill",
	  3,
	  3,
	  { CONSUME(0, 2), CONSUME(0, 1), CONSUME(0, 0), GRANT(3, 0, 3), CONSUME(0, 2) } },
	{ "partial grants back to full",
	  3,
	  3,
	  { CONSUME(0, 2), CONSUME(0, 1), CONSUME(0, 0), GRANT(1, 0, 1), GRANT(2, 0, 3) } },
	{ "grant 0 is a no-op", 2, 2, { GRANT(0, 0, 2), CONSUME(0, 1), GRANT(0, 0, 1) } },
	{ "largest window",
	  UINT32_MAX,
	  UINT32_MAX,
	  { CONSUME(0, UINT32_MAX - 1), CONSUME(0, UINT32_MAX - 2), GRANT(2, 0, UINT32_MAX) } },
	/* failures */
	{ "empty after one (init 0)", 0, 1, { CONSUME(0, 0), CONSUME(-EAGAIN, 0), CONSUME(-EAGAIN, 0) } },
	{ "empty after limit",
	  3,
	  3,
	  { CONSUME(0, 2), CONSUME(0, 1), CONSUME(0, 0), CONSUME(-EAGAIN, 0), GRANT(1, 0, 1), CONSUME(0, 0),
	    CONSUME(-EAGAIN, 0) } },
	{ "grant on a full window", 4, 4, { GRANT(1, -EPROTO, 4), CONSUME(0, 3), GRANT(1, 0, 4) } },
	{ "grant more than in flight",
	  4,
	  4,
	  { CONSUME(0, 3), CONSUME(0, 2), GRANT(3, -EPROTO, 2), GRANT(2, 0, 4) } },
	{ "grant one too many after refill",
	  3,
	  3,
	  { CONSUME(0, 2), CONSUME(0, 1), GRANT(1, 0, 2), GRANT(1, 0, 3), GRANT(1, -EPROTO, 3) } },
	{ "grant that would wrap uint32",
	  4,
	  4,
	  { CONSUME(0, 3), GRANT(UINT32_MAX, -EPROTO, 3), GRANT(UINT32_MAX - 1, -EPROTO, 3),
	    GRANT(1, 0, 4) } },
	{ "grant on the largest full window",
	  UINT32_MAX,
	  UINT32_MAX,
	  { GRANT(1, -EPROTO, UINT32_MAX), GRANT(UINT32_MAX, -EPROTO, UINT32_MAX) } },
	{ "grant the limit on an empty window of 1, then more",
	  0,
	  1,
	  { CONSUME(0, 0), GRANT(2, -EPROTO, 0), GRANT(1, 0, 1), GRANT(1, -EPROTO, 1) } },
};

static void test_credit_scripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(credit_cases) / sizeof(credit_cases[0]); i++) {
		const CreditCase *c = &credit_cases[i];
		CreditWindow w;
		credit_init(&w, c->init);
		if (w.limit != c->limit || w.available != c->limit)
			fail_msg("%s: init gave limit %u available %u", c->name, w.limit, w.available);
		assert_int_equal(credit_in_flight(&w), 0);
		assert_true(credit_can_send(&w));
		for (size_t k = 0; k < sizeof(c->ops) / sizeof(c->ops[0]) && c->ops[k].kind != OP_END; k++) {
			const Op *op = &c->ops[k];
			int rc = op->kind == OP_CONSUME ? credit_consume(&w) : credit_grant(&w, op->n);
			if (rc != op->rc)
				fail_msg("%s: step %zu returned %d, want %d", c->name, k, rc, op->rc);
			if (w.available != op->available)
				fail_msg("%s: step %zu left %u available, want %u", c->name, k, w.available,
					 op->available);
			/* invariants after every step, failed or not */
			assert_int_equal(w.limit, c->limit);
			assert_int_equal(credit_in_flight(&w), c->limit - op->available);
			assert_int_equal(credit_can_send(&w), op->available > 0);
		}
	}
}

/* credit_can_send() and credit_consume() agree: consume succeeds exactly when sending is allowed. */
static void test_can_send_matches_consume(void **state)
{
	(void)state;
	static const uint32_t limits[] = { 0, 1, 2, 7, 64 };
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		CreditWindow w;
		credit_init(&w, limits[i]);
		uint32_t limit = limits[i] ? limits[i] : 1;
		uint32_t sent = 0;
		while (credit_can_send(&w)) {
			assert_int_equal(credit_consume(&w), 0);
			sent++;
			assert_int_equal(credit_in_flight(&w), sent);
			assert_true(sent <= limit);
		}
		assert_int_equal(sent, limit);
		assert_int_equal(credit_consume(&w), -EAGAIN);
		assert_int_equal(credit_in_flight(&w), limit);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_credit_scripts),
		cmocka_unit_test(test_can_send_matches_consume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
