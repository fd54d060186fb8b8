/* SPDX-License-Identifier: MIT */
/* credit.c - bounded credit windows: the only way a stream may move. */
#include "credit.h"

#include <errno.h>

void credit_init(CreditWindow *w, uint32_t limit)
{
	w->limit = limit ? limit : 1;
	w->available = w->limit;
}

bool credit_can_send(const CreditWindow *w)
{
	return w->available > 0;
}

int credit_consume(CreditWindow *w)
{
	if (w->available == 0)
		return -EAGAIN;
	w->available--;
	return 0;
}

int credit_grant(CreditWindow *w, uint32_t n)
{
	if (n > w->limit - w->available)
		return -EPROTO;
	w->available += n;
	return 0;
}

uint32_t credit_in_flight(const CreditWindow *w)
{
	return w->limit - w->available;
}
