/* SPDX-License-Identifier: MIT */
/* uuid_test.c - cmocka tests for the UUIDv7 ids (uuid.c): the version and variant bits, the
 * millisecond timestamp against the clock, uniqueness, case and time order; the validator's
 * accepted and refused shapes; and getrandom() failing (wrapped with -Wl,--wrap=getrandom). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "uuid.h"

/* ---- getrandom, made to fail on demand ----------------------------------------------------------- */

ssize_t __real_getrandom(void *buf, size_t len, unsigned int flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags);

/* >= 0: the call returns that many bytes (filled); -1: it fails with EINTR; INT32_MIN: the real one. */
static long getrandom_result = INT32_MIN;

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned int flags)
{
	if (getrandom_result == INT32_MIN)
		return __real_getrandom(buf, len, flags);
	if (getrandom_result < 0) {
		errno = EINTR;
		return -1;
	}
	size_t n = (size_t)getrandom_result < len ? (size_t)getrandom_result : len;
	memset(buf, 0xa5, n);
	return (ssize_t)n;
}

/* ---- helpers --------------------------------------------------------------------------------------- */

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 48-bit big-endian millisecond field: the first 12 hex digits (8, a hyphen, then 4). */
static uint64_t uuid_ms(const char *id)
{
	uint64_t ms = 0;
	for (size_t i = 0; i < 13; i++) {
		if (i == 8)
			continue;
		int v = hex_value(id[i]);
		assert_true(v >= 0);
		ms = ms << 4 | (uint64_t)v;
	}
	return ms;
}

static uint64_t clock_ms(void)
{
	struct timespec ts;
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void new_id(char out[UUID_TEXT_LEN + 1])
{
	memset(out, 'Z', UUID_TEXT_LEN + 1);
	assert_int_equal(uuid_v7(out), 0);
	assert_int_equal(strlen(out), UUID_TEXT_LEN);
}

/* ---- uuid_v7 ---------------------------------------------------------------------------------------- */

static void test_v7_shape(void **state)
{
	(void)state;
	for (int round = 0; round < 200; round++) {
		char id[UUID_TEXT_LEN + 1];
		new_id(id);
		assert_true(uuid_is_valid(id));
		for (size_t i = 0; i < UUID_TEXT_LEN; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23) {
				assert_int_equal(id[i], '-');
				continue;
			}
			/* lowercase hex only */
			bool is_lower_hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
			if (!is_lower_hex)
				fail_msg("%s: byte %zu is '%c'", id, i, id[i]);
		}
		/* version nibble: the first digit of the third group */
		assert_int_equal(id[14], '7');
		/* RFC 9562 variant 10xx: the first digit of the fourth group is 8, 9, a or b */
		int variant = hex_value(id[19]);
		if ((variant & 0xc) != 0x8)
			fail_msg("%s: variant digit '%c'", id, id[19]);
	}
}

static void test_v7_timestamp_is_the_clock(void **state)
{
	(void)state;
	uint64_t before = clock_ms();
	char id[UUID_TEXT_LEN + 1];
	new_id(id);
	uint64_t after = clock_ms();
	uint64_t ms = uuid_ms(id);
	/* the clock read in between; within a second either side for a slow machine */
	assert_true(ms + 1000 >= before);
	assert_true(ms <= after + 1000);
	/* and not some other time base (monotonic clock, seconds): the year is plausible */
	assert_true(ms > UINT64_C(1700000000000));
}

static void test_v7_ids_differ(void **state)
{
	(void)state;
	enum { N = 256 };
	static char ids[N][UUID_TEXT_LEN + 1];
	for (size_t i = 0; i < N; i++)
		new_id(ids[i]);
	/* most share a millisecond: the random part must tell them apart */
	for (size_t i = 0; i < N; i++) {
		for (size_t j = i + 1; j < N; j++) {
			if (strcmp(ids[i], ids[j]) == 0)
				fail_msg("ids %zu and %zu are both %s", i, j, ids[i]);
		}
	}
	/* the random tail (the last group) is not constant */
	bool does_tail_vary = false;
	for (size_t i = 1; i < N && !does_tail_vary; i++)
		does_tail_vary = memcmp(ids[0] + 24, ids[i] + 24, 12) != 0;
	assert_true(does_tail_vary);
}

static void test_v7_sorts_by_time(void **state)
{
	(void)state;
	char earlier[UUID_TEXT_LEN + 1], later[UUID_TEXT_LEN + 1];
	for (int round = 0; round < 5; round++) {
		new_id(earlier);
		struct timespec two_ms = { 0, 2 * 1000 * 1000 };
		while (nanosleep(&two_ms, &two_ms) != 0 && errno == EINTR)
			;
		new_id(later);
		assert_true(uuid_ms(later) >= uuid_ms(earlier) + 2);
		if (strcmp(earlier, later) >= 0)
			fail_msg("%s sorts after %s", earlier, later);
	}
}

static void test_v7_random_failure(void **state)
{
	(void)state;
	char id[UUID_TEXT_LEN + 1];
	getrandom_result = -1;
	assert_int_equal(uuid_v7(id), -EIO);
	getrandom_result = 8; /* a short read is a failure too, never a half-random id */
	assert_int_equal(uuid_v7(id), -EIO);
	getrandom_result = 16;
	assert_int_equal(uuid_v7(id), 0);
	assert_true(uuid_is_valid(id));
	assert_int_equal(id[14], '7');
	getrandom_result = INT32_MIN;
}

/* ---- uuid_is_valid -------------------------------------------------------------------------------- */

typedef struct ValidCase {
	const char *name;
	const char *text;
	bool is_valid;
} ValidCase;

static const ValidCase valid_cases[] = {
	{ "lowercase v7", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d", true },
	{ "uppercase", "01970F3C-9E2A-7B61-8C4D-2F3E4A5B6C7D", true },
	{ "mixed case", "01970f3C-9E2a-7b61-8C4d-2f3E4a5B6c7D", true },
	{ "v4", "f47ac10b-58cc-4372-a567-0e02b2c3d479", true },
	{ "nil", "00000000-0000-0000-0000-000000000000", true },
	{ "max", "ffffffff-ffff-ffff-ffff-ffffffffffff", true },
	{ "empty", "", false },
	{ "one short", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7", false },
	{ "one long", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d0", false },
	{ "no hyphens", "01970f3c9e2a7b618c4d2f3e4a5b6c7d", false },
	{ "no hyphens, padded to 36", "01970f3c9e2a7b618c4d2f3e4a5b6c7d0000", false },
	{ "first hyphen missing", "01970f3c09e2a-7b61-8c4d-2f3e4a5b6c7d", false },
	{ "last hyphen missing", "01970f3c-9e2a-7b61-8c4d02f3e4a5b6c7d", false },
	{ "hyphen moved", "01970f3-c9e2a-7b61-8c4d-2f3e4a5b6c7d", false },
	{ "hyphen where a digit goes", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c-d", false },
	{ "underscore for a hyphen", "01970f3c_9e2a_7b61_8c4d_2f3e4a5b6c7d", false },
	{ "g", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7g", false },
	{ "G first", "G1970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d", false },
	{ "space", "01970f3c-9e2a-7b61-8c4d-2f3e 4a5b6c7", false },
	{ "high byte", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7\xc3", false },
	{ "braces", "{01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d}", false },
	{ "urn", "urn:uuid:01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d", false },
	{ "trailing newline", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d\n", false },
	{ "trailing space", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d ", false },
	{ "trailing junk", "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7dxyz", false },
	{ "leading space", " 01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d", false },
	{ "path traversal", "../../../../../../../../etc/passwd....", false },
};

static void test_is_valid_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
		const ValidCase *c = &valid_cases[i];
		if (uuid_is_valid(c->text) != c->is_valid)
			fail_msg("%s: \"%s\" should be %s", c->name, c->text,
				 c->is_valid ? "valid" : "invalid");
	}
}

/* A short string is refused without reading past its end (exact-size heap copies, for ASan). */
static void test_is_valid_reads_no_further_than_the_string(void **state)
{
	(void)state;
	const char *full = "01970f3c-9e2a-7b61-8c4d-2f3e4a5b6c7d";
	for (size_t len = 0; len <= UUID_TEXT_LEN; len++) {
		char *copy = malloc(len + 1);
		assert_non_null(copy);
		memcpy(copy, full, len);
		copy[len] = '\0';
		assert_int_equal(uuid_is_valid(copy), len == UUID_TEXT_LEN);
		free(copy);
	}
}

static void test_is_valid_every_position(void **state)
{
	(void)state;
	char id[UUID_TEXT_LEN + 1];
	new_id(id);
	/* each position refuses the wrong kind of byte: a digit where a hyphen goes, and the reverse */
	for (size_t i = 0; i < UUID_TEXT_LEN; i++) {
		char saved = id[i];
		id[i] = saved == '-' ? 'a' : '-';
		if (uuid_is_valid(id))
			fail_msg("accepted %s (position %zu changed)", id, i);
		id[i] = 'x';
		assert_false(uuid_is_valid(id));
		id[i] = saved;
	}
	assert_true(uuid_is_valid(id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v7_shape),
		cmocka_unit_test(test_v7_timestamp_is_the_clock),
		cmocka_unit_test(test_v7_ids_differ),
		cmocka_unit_test(test_v7_sorts_by_time),
		cmocka_unit_test(test_v7_random_failure),
		cmocka_unit_test(test_is_valid_table),
		cmocka_unit_test(test_is_valid_reads_no_further_than_the_string),
		cmocka_unit_test(test_is_valid_every_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
