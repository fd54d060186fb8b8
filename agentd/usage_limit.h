/* SPDX-License-Identifier: MIT */
/* usage_limit.h - the user-facing text of a 429 usage_limit_reached (codex-behaviour.md §12.3). */
#ifndef AGENTD_USAGE_LIMIT_H
#define AGENTD_USAGE_LIMIT_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "model_client.h"

/**
 * usage_limit_message() - the message for the error object @err ({type, plan_type, resets_at, …})
 * of a 429 and the response's @headers (may be NULL: x-codex-promo-message,
 * x-codex-rate-limit-reached-type, x-codex-active-limit with its x-<limit>-limit-name), written to
 * @out. @now is the current time: a reset on the same local day shows as "3:45 PM", else as
 * "Jun 6th, 2026 12:30 AM". Team and business plans are told to ask their admin, never to switch
 * models or buy more.
 */
void usage_limit_message(const json_t *err, const ModelHeaders *headers, time_t now, char *out, size_t out_len);

#endif
