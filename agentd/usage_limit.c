/* SPDX-License-Identifier: MIT */
/* usage_limit.c - the reference's usage-limit copy, precedence and time format. */
#include "usage_limit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIMIT_PREFIX "You\u2019ve hit your usage limit"
#define USAGE_URL "https://chatgpt.com/settings/usage"

static const char *ordinal_suffix(int day)
{
	if (day % 100 >= 11 && day % 100 <= 13)
		return "th";
	switch (day % 10) {
	case 1:
		return "st";
	case 2:
		return "nd";
	case 3:
		return "rd";
	default:
		return "th";
	}
}

/* "at 3:45 PM" (same local day), "at Jun 6th, 2026 12:30 AM", or "later" without a reset time. */
static void reset_phrase(const json_t *err, time_t now, char *out, size_t len)
{
	const json_t *at = json_object_get(err, "resets_at");
	if (!json_is_integer(at) || json_integer_value(at) <= 0) {
		snprintf(out, len, "later");
		return;
	}
	time_t reset = (time_t)json_integer_value(at);
	struct tm r, n;
	localtime_r(&reset, &r);
	localtime_r(&now, &n);
	int hour = r.tm_hour % 12 ? r.tm_hour % 12 : 12;
	const char *half = r.tm_hour < 12 ? "AM" : "PM";
	if (r.tm_year == n.tm_year && r.tm_yday == n.tm_yday) {
		snprintf(out, len, "at %d:%02d %s", hour, r.tm_min, half);
		return;
	}
	char month[8];
	strftime(month, sizeof(month), "%b", &r);
	snprintf(out, len, "at %s %d%s, %d %d:%02d %s", month, r.tm_mday, ordinal_suffix(r.tm_mday), r.tm_year + 1900,
		 hour, r.tm_min, half);
}

static bool plan_is(const char *plan, const char *const *names)
{
	for (; *names; names++) {
		if (strcasecmp(plan, *names) == 0)
			return true;
	}
	return false;
}

/* The limit's display name when the active limit is not codex's own (model-specific limits). */
static const char *model_limit_name(const ModelHeaders *headers)
{
	const char *active = model_headers_get(headers, "x-codex-active-limit");
	if (!active || !active[0] || strcasecmp(active, "codex") == 0)
		return NULL;
	char name[200];
	snprintf(name, sizeof(name), "x-%s-limit-name", active);
	const char *display = model_headers_get(headers, name);
	return display && display[0] && strcasecmp(display, "codex") != 0 ? display : NULL;
}

static const char *workspace_message(const char *reached)
{
	static const struct {
		const char *type, *text;
	} table[] = {
		{ "workspace_owner_credits_depleted", "Your workspace is out of credits. Add credits to continue." },
		{ "workspace_member_credits_depleted",
		  "Your workspace is out of credits. Ask your workspace owner to refill in order to continue." },
		{ "workspace_owner_usage_limit_reached",
		  "You hit your spend cap set in your workspace. Increase your spend cap to continue." },
		{ "workspace_member_usage_limit_reached", "You hit your spend cap set by the owner of your workspace. "
							  "Ask an owner to increase your spend cap to continue." },
	};
	for (size_t i = 0; reached && i < sizeof(table) / sizeof(table[0]); i++) {
		if (strcmp(reached, table[i].type) == 0)
			return table[i].text;
	}
	return NULL;
}

void usage_limit_message(const json_t *err, const ModelHeaders *headers, time_t now, char *out, size_t out_len)
{
	static const char *const team[] = { "team", "self_serve_business_usage_based", "business",
					    "enterprise_cbp_usage_based", NULL };
	static const char *const free_plans[] = { "free", "go", NULL };
	static const char *const pro[] = { "pro", "prolite", "pro_lite", NULL };
	char when[80];
	reset_phrase(err, now, when, sizeof(when));
	const char *limit = model_limit_name(headers);
	if (limit) {
		snprintf(out, out_len, LIMIT_PREFIX " for %s. Switch to another model now, or try again %s.", limit, when);
		return;
	}
	const char *reached = json_string_value(json_object_get(err, "rate_limit_reached_type"));
	if (!reached)
		reached = model_headers_get(headers, "x-codex-rate-limit-reached-type");
	const char *workspace = workspace_message(reached);
	if (workspace) {
		snprintf(out, out_len, "%s", workspace);
		return;
	}
	const char *promo = model_headers_get(headers, "x-codex-promo-message");
	if (promo && promo[0]) {
		snprintf(out, out_len, LIMIT_PREFIX ". %s, or try again %s.", promo, when);
		return;
	}
	const char *plan = json_string_value(json_object_get(err, "plan_type"));
	if (!plan)
		plan = "";
	if (strcasecmp(plan, "plus") == 0)
		snprintf(out, out_len,
			 LIMIT_PREFIX ". Upgrade to Pro (https://chatgpt.com/explore/pro), visit " USAGE_URL
				      " to purchase more credits or try again %s.",
			 when);
	else if (plan_is(plan, team))
		snprintf(out, out_len, LIMIT_PREFIX ". To get more access now, send a request to your admin or try again %s.",
			 when);
	else if (plan_is(plan, free_plans))
		snprintf(out, out_len,
			 LIMIT_PREFIX ". Upgrade to Plus to continue using Codex (https://chatgpt.com/explore/plus), or "
				      "try again %s.",
			 when);
	else if (plan_is(plan, pro))
		snprintf(out, out_len, LIMIT_PREFIX ". Visit " USAGE_URL " to purchase more credits or try again %s.", when);
	else
		snprintf(out, out_len, LIMIT_PREFIX ". Try again %s.", when);
}
