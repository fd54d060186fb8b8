/* SPDX-License-Identifier: MIT */
/* usage_limit_test.c - cmocka tests for the 429 usage_limit_reached text (usage_limit.c,
 * codex-behaviour.md §12.3, with 0.169's https://chatgpt.com/settings/usage and "You’ve"): the
 * precedence (model-specific limit, workspace type, promo, plan), every plan's copy, and the reset
 * time ("3:45 PM" on the same local day, "Jun 6th, 2026 12:30 AM" otherwise, "later" without one). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_client.h"
#include "usage_limit.h"

#define PREFIX "You\u2019ve hit your usage limit"
#define USAGE_URL "https://chatgpt.com/settings/usage"

/* ---- helpers --------------------------------------------------------------------------------------- */

static int set_utc(void **state)
{
	(void)state;
	assert_int_equal(setenv("TZ", "UTC", 1), 0);
	tzset();
	return 0;
}

/* Unix seconds of a UTC wall-clock time. */
static time_t utc(int year, int month, int day, int hour, int minute)
{
	struct tm tm = {
		.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day, .tm_hour = hour, .tm_min = minute
	};
	return timegm(&tm);
}

/* The error object of a 429: {"type":"usage_limit_reached", plan_type?, resets_at?}. */
static json_t *limit_error(const char *plan, time_t resets_at)
{
	json_t *err = json_pack("{s:s}", "type", "usage_limit_reached");
	assert_non_null(err);
	if (plan)
		json_object_set_new(err, "plan_type", json_string(plan));
	if (resets_at)
		json_object_set_new(err, "resets_at", json_integer((json_int_t)resets_at));
	return err;
}

#define HEADERS(...)                                                                                         \
	((ModelHeaders){ .items = (const ModelHeader[]){ __VA_ARGS__ },                                      \
			 .count = sizeof((const ModelHeader[]){ __VA_ARGS__ }) / sizeof(ModelHeader) })

/* The message for @err and @headers at @now, in a buffer ASan bounds exactly. */
static void expect_message(const json_t *err, const ModelHeaders *headers, time_t now, const char *expected)
{
	char out[512];
	memset(out, 'Z', sizeof(out));
	usage_limit_message(err, headers, now, out, sizeof(out));
	assert_non_null(memchr(out, '\0', sizeof(out)));
	assert_string_equal(out, expected);
}

/* 2026-06-06 10:00 UTC: a Saturday morning. */
#define NOW utc(2026, 6, 6, 10, 0)
#define AT_345PM utc(2026, 6, 6, 15, 45)

/* ---- precedence ----------------------------------------------------------------------------------- */

static void test_model_specific_limit_first(void **state)
{
	(void)state;
	/* everything else that could decide the text is there too; the model limit wins */
	json_t *err = limit_error("plus", AT_345PM);
	json_object_set_new(err, "rate_limit_reached_type", json_string("workspace_owner_credits_depleted"));
	ModelHeaders h = HEADERS({ "x-codex-promo-message", "Buy more now" },
				 { "X-Codex-Active-Limit", "codex_bengalfox" },
				 { "X-Codex_Bengalfox-Limit-Name", "GPT-5.3-Codex-Spark" });
	expect_message(err, &h, NOW,
		       PREFIX
		       " for GPT-5.3-Codex-Spark. Switch to another model now, or try again at 3:45 PM.");
	/* and a team plan hears it too: it is about the model, not buying */
	json_object_set_new(err, "plan_type", json_string("team"));
	expect_message(err, &h, NOW,
		       PREFIX
		       " for GPT-5.3-Codex-Spark. Switch to another model now, or try again at 3:45 PM.");
	json_decref(err);
}

static void test_model_specific_limit_later(void **state)
{
	(void)state;
	json_t *err = limit_error("pro", 0);
	ModelHeaders h =
		HEADERS({ "x-codex-active-limit", "mini" }, { "x-mini-limit-name", "GPT-5-Codex-Mini" });
	expect_message(err, &h, NOW,
		       PREFIX " for GPT-5-Codex-Mini. Switch to another model now, or try again later.");
	json_decref(err);
}

/* The codex limit itself, or no display name, is not a model-specific limit: the plan decides. */
static void test_codex_limit_is_not_model_specific(void **state)
{
	(void)state;
	json_t *err = limit_error("free", AT_345PM);
	const char *free_text =
		PREFIX ". Upgrade to Plus to continue using Codex (https://chatgpt.com/explore/plus), or "
		       "try again at 3:45 PM.";
	const ModelHeaders cases[] = {
		HEADERS({ "x-codex-active-limit", "codex" }, { "x-codex-limit-name", "Codex" }),
		HEADERS({ "x-codex-active-limit", "CODEX" }, { "x-CODEX-limit-name", "GPT-5" }),
		HEADERS({ "x-codex-active-limit", "mini" }, { "x-mini-limit-name", "codex" }),
		HEADERS({ "x-codex-active-limit", "mini" }, { "x-mini-limit-name", "CoDeX" }),
		HEADERS({ "x-codex-active-limit", "mini" }, { "x-mini-limit-name", "" }),
		HEADERS({ "x-codex-active-limit", "mini" }, { "x-other-limit-name", "GPT-5-Codex-Mini" }),
		HEADERS({ "x-codex-active-limit", "" }, { "x--limit-name", "Nameless" }),
		HEADERS({ "x-mini-limit-name", "GPT-5-Codex-Mini" }),
		{ NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_message(err, &cases[i], NOW, free_text);
	expect_message(err, NULL, NOW, free_text);
	json_decref(err);
}

typedef struct WorkspaceCase {
	const char *type;
	const char *text;
} WorkspaceCase;

static const WorkspaceCase workspace_cases[] = {
	{ "workspace_owner_credits_depleted", "Your workspace is out of credits. Add credits to continue." },
	{ "workspace_member_credits_depleted",
	  "Your workspace is out of credits. Ask your workspace owner to refill in order to continue." },
	{ "workspace_owner_usage_limit_reached",
	  "You hit your spend cap set in your workspace. Increase your spend cap to continue." },
	{ "workspace_member_usage_limit_reached", "You hit your spend cap set by the owner of your "
						  "workspace. Ask an owner to increase your spend cap to "
						  "continue." },
};

static void test_workspace_type_from_the_body(void **state)
{
	(void)state;
	/* ahead of the promo and the plan, and with no reset time in the text */
	ModelHeaders h = HEADERS({ "x-codex-promo-message", "Try the promo" });
	for (size_t i = 0; i < sizeof(workspace_cases) / sizeof(workspace_cases[0]); i++) {
		json_t *err = limit_error("plus", AT_345PM);
		json_object_set_new(err, "rate_limit_reached_type", json_string(workspace_cases[i].type));
		expect_message(err, &h, NOW, workspace_cases[i].text);
		expect_message(err, NULL, NOW, workspace_cases[i].text);
		json_decref(err);
	}
}

static void test_workspace_type_from_the_header(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(workspace_cases) / sizeof(workspace_cases[0]); i++) {
		json_t *err = limit_error("business", 0);
		ModelHeaders h = HEADERS({ "x-codex-promo-message", "Try the promo" },
					 { "X-Codex-Rate-Limit-Reached-Type", workspace_cases[i].type });
		expect_message(err, &h, NOW, workspace_cases[i].text);
		json_decref(err);
	}
}

static void test_unknown_reached_type_falls_through(void **state)
{
	(void)state;
	json_t *err = limit_error("pro", AT_345PM);
	const char *pro_text =
		PREFIX ". Visit " USAGE_URL " to purchase more credits or try again at 3:45 PM.";
	const char *unknown[] = { "", "workspace_owner", "WORKSPACE_OWNER_CREDITS_DEPLETED",
				  "rate_limit_reached", "workspace_owner_credits_depleted " };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		json_object_set_new(err, "rate_limit_reached_type", json_string(unknown[i]));
		expect_message(err, NULL, NOW, pro_text);
	}
	/* not a string */
	json_object_set_new(err, "rate_limit_reached_type", json_integer(1));
	expect_message(err, NULL, NOW, pro_text);
	json_decref(err);
}

static void test_promo_before_plan(void **state)
{
	(void)state;
	ModelHeaders h =
		HEADERS({ "X-Codex-Promo-Message", "Get 2x usage with the Pro trial at https://x.test/pro" });
	const char *plans[] = { "plus", "free", "pro", "team", "enterprise", NULL };
	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		json_t *err = limit_error(plans[i], AT_345PM);
		expect_message(
			err, &h, NOW,
			PREFIX
			". Get 2x usage with the Pro trial at https://x.test/pro, or try again at 3:45 PM.");
		json_decref(err);
	}
	json_t *err = limit_error("plus", 0);
	expect_message(err, &h, NOW,
		       PREFIX ". Get 2x usage with the Pro trial at https://x.test/pro, or try again later.");
	/* an empty promo is none */
	ModelHeaders empty = HEADERS({ "x-codex-promo-message", "" });
	expect_message(err, &empty, NOW,
		       PREFIX ". Upgrade to Pro (https://chatgpt.com/explore/pro), visit " USAGE_URL
			      " to purchase more credits or try again later.");
	json_decref(err);
}

/* ---- by plan -------------------------------------------------------------------------------------- */

typedef struct PlanCase {
	const char *plan;
	const char *text; /* with the reset at 3:45 PM */
} PlanCase;

#define PLUS_TEXT                                                                                            \
	PREFIX ". Upgrade to Pro (https://chatgpt.com/explore/pro), visit " USAGE_URL                        \
	       " to purchase more credits or try again at 3:45 PM."
#define TEAM_TEXT PREFIX ". To get more access now, send a request to your admin or try again at 3:45 PM."
#define FREE_TEXT                                                                                            \
	PREFIX ". Upgrade to Plus to continue using Codex (https://chatgpt.com/explore/plus), or try again " \
	       "at 3:45 PM."
#define PRO_TEXT PREFIX ". Visit " USAGE_URL " to purchase more credits or try again at 3:45 PM."
#define OTHER_TEXT PREFIX ". Try again at 3:45 PM."

static const PlanCase plan_cases[] = {
	{ "plus", PLUS_TEXT },
	{ "Plus", PLUS_TEXT },
	{ "team", TEAM_TEXT },
	{ "TEAM", TEAM_TEXT },
	{ "self_serve_business_usage_based", TEAM_TEXT },
	{ "business", TEAM_TEXT },
	{ "enterprise_cbp_usage_based", TEAM_TEXT },
	{ "free", FREE_TEXT },
	{ "go", FREE_TEXT },
	{ "Free", FREE_TEXT },
	{ "pro", PRO_TEXT },
	{ "prolite", PRO_TEXT },
	{ "pro_lite", PRO_TEXT },
	{ "enterprise", OTHER_TEXT },
	{ "edu", OTHER_TEXT },
	{ "education", OTHER_TEXT },
	{ "unknown", OTHER_TEXT },
	{ "", OTHER_TEXT },
	{ "plus_team", OTHER_TEXT },
	{ "pro ", OTHER_TEXT },
	{ NULL, OTHER_TEXT },
};

static void test_plan_copy(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(plan_cases) / sizeof(plan_cases[0]); i++) {
		json_t *err = limit_error(plan_cases[i].plan, AT_345PM);
		char out[512];
		usage_limit_message(err, NULL, NOW, out, sizeof(out));
		if (strcmp(out, plan_cases[i].text) != 0)
			fail_msg("plan \"%s\": got \"%s\"",
				 plan_cases[i].plan ? plan_cases[i].plan : "(none)", out);
		json_decref(err);
	}
	/* plan_type not a string: as unknown */
	json_t *err = limit_error(NULL, AT_345PM);
	json_object_set_new(err, "plan_type", json_integer(3));
	expect_message(err, NULL, NOW, OTHER_TEXT);
	json_decref(err);
	/* an empty object */
	err = json_object();
	expect_message(err, NULL, NOW, PREFIX ". Try again later.");
	json_decref(err);
}

/* Team and business workspaces buy through their admin: never "switch models", "upgrade" or "purchase". */
static void test_team_plans_never_upsell(void **state)
{
	(void)state;
	const char *team[] = { "team", "self_serve_business_usage_based", "business",
			       "enterprise_cbp_usage_based", "Business" };
	const time_t resets[] = { 0, AT_345PM, utc(2026, 6, 21, 0, 30) };
	const ModelHeaders headers[] = {
		{ NULL, 0 },
		HEADERS({ "x-codex-active-limit", "codex" }, { "x-codex-limit-name", "Codex" }),
		HEADERS({ "x-codex-rate-limit-reached-type", "not_a_workspace_type" }),
	};
	const char *forbidden[] = { "model",   "Model",	  "purchase", "Purchase", "buy",
				    "Upgrade", "upgrade", "credits",  "explore",  "settings/usage" };
	for (size_t p = 0; p < sizeof(team) / sizeof(team[0]); p++) {
		for (size_t r = 0; r < sizeof(resets) / sizeof(resets[0]); r++) {
			for (size_t k = 0; k < sizeof(headers) / sizeof(headers[0]); k++) {
				json_t *err = limit_error(team[p], resets[r]);
				char out[512];
				usage_limit_message(err, &headers[k], NOW, out, sizeof(out));
				assert_non_null(strstr(out, "send a request to your admin"));
				for (size_t f = 0; f < sizeof(forbidden) / sizeof(forbidden[0]); f++) {
					if (strstr(out, forbidden[f]))
						fail_msg("plan %s: \"%s\" mentions \"%s\"", team[p], out,
							 forbidden[f]);
				}
				json_decref(err);
			}
		}
	}
}

/* ---- the reset time -------------------------------------------------------------------------------- */

typedef struct TimeCase {
	time_t now;
	time_t resets_at;
	const char *when; /* "at …" or "later" */
} TimeCase;

static void test_reset_time_format(void **state)
{
	(void)state;
	const TimeCase cases[] = {
		/* the same local day: the time alone */
		{ NOW, AT_345PM, "at 3:45 PM" },
		{ NOW, utc(2026, 6, 6, 0, 5), "at 12:05 AM" },
		{ NOW, utc(2026, 6, 6, 12, 0), "at 12:00 PM" },
		{ NOW, utc(2026, 6, 6, 11, 59), "at 11:59 AM" },
		{ NOW, utc(2026, 6, 6, 23, 59), "at 11:59 PM" },
		{ NOW, utc(2026, 6, 6, 9, 5), "at 9:05 AM" },
		/* another day: month, ordinal day, year and time */
		{ utc(2026, 6, 5, 23, 0), utc(2026, 6, 6, 0, 30), "at Jun 6th, 2026 12:30 AM" },
		{ NOW, utc(2026, 6, 7, 0, 30), "at Jun 7th, 2026 12:30 AM" },
		{ NOW, utc(2026, 6, 5, 15, 45), "at Jun 5th, 2026 3:45 PM" },
		/* the same day of the year, a year later */
		{ NOW, utc(2027, 6, 6, 10, 30), "at Jun 6th, 2027 10:30 AM" },
		{ utc(2026, 12, 31, 22, 0), utc(2027, 1, 1, 1, 0), "at Jan 1st, 2027 1:00 AM" },
		/* ordinals */
		{ NOW, utc(2026, 7, 1, 9, 5), "at Jul 1st, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 2, 9, 5), "at Jul 2nd, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 3, 9, 5), "at Jul 3rd, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 4, 9, 5), "at Jul 4th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 10, 9, 5), "at Jul 10th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 11, 9, 5), "at Jul 11th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 12, 9, 5), "at Jul 12th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 13, 9, 5), "at Jul 13th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 14, 9, 5), "at Jul 14th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 20, 9, 5), "at Jul 20th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 21, 9, 5), "at Jul 21st, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 22, 9, 5), "at Jul 22nd, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 23, 9, 5), "at Jul 23rd, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 24, 9, 5), "at Jul 24th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 30, 9, 5), "at Jul 30th, 2026 9:05 AM" },
		{ NOW, utc(2026, 7, 31, 9, 5), "at Jul 31st, 2026 9:05 AM" },
		{ NOW, utc(2026, 12, 31, 23, 59), "at Dec 31st, 2026 11:59 PM" },
		{ NOW, utc(2026, 2, 28, 12, 1), "at Feb 28th, 2026 12:01 PM" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *err = limit_error("enterprise", cases[i].resets_at);
		char expected[256], out[512];
		snprintf(expected, sizeof(expected), PREFIX ". Try again %s.", cases[i].when);
		usage_limit_message(err, NULL, cases[i].now, out, sizeof(out));
		if (strcmp(out, expected) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, expected);
		json_decref(err);
	}
}

static void test_no_reset_time_is_later(void **state)
{
	(void)state;
	json_t *values[] = {
		NULL, json_null(), json_integer(0), json_integer(-5), json_string("1780000000"), json_true()
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		json_t *err = limit_error("pro", 0);
		if (values[i])
			json_object_set_new(err, "resets_at", values[i]);
		expect_message(err, NULL, NOW,
			       PREFIX ". Visit " USAGE_URL " to purchase more credits or try again later.");
		json_decref(err);
	}
}

/* "Same day" is the local day: at UTC+10, 15:00 UTC is already tomorrow 1:00 AM. */
static void test_reset_time_is_local(void **state)
{
	(void)state;
	assert_int_equal(setenv("TZ", "AEST-10", 1), 0);
	tzset();
	json_t *err = limit_error("enterprise", utc(2026, 6, 6, 15, 0));
	expect_message(err, NULL, NOW, PREFIX ". Try again at Jun 7th, 2026 1:00 AM.");
	/* and 13:30 UTC is 11:30 PM of the same local day as 10:00 UTC (8 PM local) */
	json_object_set_new(err, "resets_at", json_integer((json_int_t)utc(2026, 6, 6, 13, 30)));
	expect_message(err, NULL, NOW, PREFIX ". Try again at 11:30 PM.");
	json_decref(err);
	set_utc(NULL);
}

/* ---- bounds --------------------------------------------------------------------------------------- */

/* A small buffer gets a truncated, terminated message and nothing past its end (ASan checks). */
static void test_small_buffer(void **state)
{
	(void)state;
	json_t *err = limit_error("plus", AT_345PM);
	ModelHeaders h =
		HEADERS({ "x-codex-active-limit", "mini" }, { "x-mini-limit-name", "GPT-5-Codex-Mini" });
	for (size_t len = 1; len <= 40; len++) {
		char *out = malloc(len);
		assert_non_null(out);
		usage_limit_message(err, &h, NOW, out, len);
		assert_int_equal(strlen(out), len - 1);
		free(out);
	}
	/* out_len 0 writes nothing */
	char canary = 'Q';
	usage_limit_message(err, &h, NOW, &canary, 0);
	assert_int_equal(canary, 'Q');
	json_decref(err);
}

/* Long header values (a promo, a limit name, an active-limit id past any internal buffer) are safe. */
static void test_long_header_values(void **state)
{
	(void)state;
	char big[2048];
	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_t *err = limit_error("plus", AT_345PM);

	ModelHeaders promo = HEADERS({ "x-codex-promo-message", big });
	char out[4096];
	usage_limit_message(err, &promo, NOW, out, sizeof(out));
	assert_int_equal(strncmp(out, PREFIX ". nnnn", strlen(PREFIX ". nnnn")), 0);
	assert_non_null(strstr(out, ", or try again at 3:45 PM."));

	ModelHeaders name = HEADERS({ "x-codex-active-limit", "mini" }, { "x-mini-limit-name", big });
	usage_limit_message(err, &name, NOW, out, sizeof(out));
	assert_int_equal(strncmp(out, PREFIX " for nnnn", strlen(PREFIX " for nnnn")), 0);

	ModelHeaders active = HEADERS({ "x-codex-active-limit", big });
	usage_limit_message(err, &active, NOW, out, sizeof(out));
	assert_string_equal(out, PLUS_TEXT);
	json_decref(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_model_specific_limit_first, set_utc),
		cmocka_unit_test_setup(test_model_specific_limit_later, set_utc),
		cmocka_unit_test_setup(test_codex_limit_is_not_model_specific, set_utc),
		cmocka_unit_test_setup(test_workspace_type_from_the_body, set_utc),
		cmocka_unit_test_setup(test_workspace_type_from_the_header, set_utc),
		cmocka_unit_test_setup(test_unknown_reached_type_falls_through, set_utc),
		cmocka_unit_test_setup(test_promo_before_plan, set_utc),
		cmocka_unit_test_setup(test_plan_copy, set_utc),
		cmocka_unit_test_setup(test_team_plans_never_upsell, set_utc),
		cmocka_unit_test_setup(test_reset_time_format, set_utc),
		cmocka_unit_test_setup(test_no_reset_time_is_later, set_utc),
		cmocka_unit_test_setup(test_reset_time_is_local, set_utc),
		cmocka_unit_test_setup(test_small_buffer, set_utc),
		cmocka_unit_test_setup(test_long_header_values, set_utc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
