/* SPDX-License-Identifier: MIT */
/* base64_test.c - cmocka tests for base64: RFC 4648 vectors, round trips, strictness, and the
 * reference decoder's error words (recorded from codex 0.169.0's fs/writeFile). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const char test_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The obvious encoder, six bits at a time: what the pair table must agree with. */
static void naive_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = test_alphabet[v >> 18];
		out[o++] = test_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? test_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? test_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

static void test_rfc4648_vectors(void **state)
{
	(void)state;
	static const char *const vectors[][2] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
		{ "hello", "aGVsbG8=" },
	};
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *plain = vectors[i][0], *coded = vectors[i][1];
		char out[32];
		uint8_t back[32];
		size_t back_len = 99;
		assert_int_equal(base64_encoded_len(strlen(plain)), strlen(coded));
		base64_encode((const uint8_t *)plain, strlen(plain), out);
		assert_string_equal(out, coded);
		assert_true(base64_decoded_max(strlen(coded)) >= strlen(plain));
		assert_int_equal(base64_decode(coded, strlen(coded), back, &back_len), 0);
		assert_int_equal(back_len, strlen(plain));
		assert_memory_equal(back, plain, back_len);
	}
}

/* Every length across the unrolled loop's boundaries, every byte value, against the naive encoder. */
static void test_round_trip_all_lengths(void **state)
{
	(void)state;
	enum { MAX = 1100 };
	uint8_t *data = malloc(MAX), *back = malloc(base64_decoded_max(base64_encoded_len(MAX)));
	char *coded = malloc(base64_encoded_len(MAX) + 1), *want = malloc(base64_encoded_len(MAX) + 1);
	assert_non_null(data);
	assert_non_null(back);
	assert_non_null(coded);
	assert_non_null(want);
	srand(4648);
	for (size_t i = 0; i < MAX; i++)
		data[i] = i < 256 ? (uint8_t)i : (uint8_t)rand();
	for (size_t n = 0; n <= MAX; n++) {
		size_t back_len = 0;
		base64_encode(data, n, coded);
		naive_encode(data, n, want);
		assert_string_equal(coded, want);
		assert_int_equal(strlen(coded), base64_encoded_len(n));
		assert_int_equal(base64_decode(coded, strlen(coded), back, &back_len), 0);
		assert_int_equal(back_len, n);
		assert_memory_equal(back, data, n);
	}
	free(data);
	free(back);
	free(coded);
	free(want);
}

typedef struct BadCase {
	const char *in;
	const char *message; /* exactly as codex 0.169.0 answered fs/writeFile */
} BadCase;

static const BadCase bad_cases[] = {
	{ "!!!", "Invalid symbol 33, offset 0." },
	{ "aGk", "Invalid padding" },
	{ "aGk=x", "Invalid symbol 61, offset 3." },
	{ "aG=k", "Invalid symbol 61, offset 2." },
	{ "aGl=", "Invalid last symbol 108, offset 2." },
	{ "a", "Invalid input length: 1" },
	{ "aGVsbG8", "Invalid padding" },
	{ "aGVsbG8==", "Invalid symbol 61, offset 7." },
	{ "====", "Invalid symbol 61, offset 0." },
	{ "aGk==", "Invalid symbol 61, offset 3." },
	{ " aGk=", "Invalid symbol 32, offset 0." },
	{ "aGk=\n", "Invalid symbol 10, offset 4." },
	{ "YQ", "Invalid padding" },
	{ "YQ=", "Invalid padding" },
	{ "YQ===", "Invalid symbol 61, offset 2." },
	{ "ab=c", "Invalid symbol 61, offset 2." },
	{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!AAA", "Invalid symbol 33, offset 40." },
	{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Invalid input length: 41" },
	{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Invalid padding" },
	{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=A", "Invalid symbol 61, offset 42." },
	{ "AAA=AAAA", "Invalid symbol 61, offset 3." },
	{ "YR==", "Invalid last symbol 82, offset 1." },
	{ "YQ=a", "Invalid symbol 61, offset 2." },
	{ "AAAAA", "Invalid input length: 5" },
	{ "AAAAAAAAA", "Invalid input length: 9" },
	{ "AAAAA===", "Invalid symbol 61, offset 5." },
	{ "A=", "Invalid symbol 61, offset 1." },
	{ "A==", "Invalid symbol 61, offset 1." },
	{ "AB==", "Invalid last symbol 66, offset 1." },
	{ "AB=", "Invalid padding" },
	{ "Zm9v\xc3\xa9", "Invalid symbol 195, offset 4." },
	{ "AAAA-_AA", "Invalid symbol 45, offset 4." },
	/* the crate's order of checks: a stray final byte is named before an earlier fault */
	{ "!AAA\n", "Invalid symbol 10, offset 4." },
	{ "AAAA=", "Invalid symbol 61, offset 4." },
	{ "AAAA!===", "Invalid symbol 33, offset 4." },
	{ "AAAAAAAAAB==", "Invalid last symbol 66, offset 9." },
};

static void test_refusals_word_like_the_reference(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const BadCase *c = &bad_cases[i];
		uint8_t out[64];
		size_t out_len = 0;
		char msg[128];
		assert_int_equal(base64_decode(c->in, strlen(c->in), out, &out_len), -EINVAL);
		base64_describe_error(c->in, strlen(c->in), msg, sizeof(msg));
		if (strcmp(msg, c->message) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->in, msg, c->message);
	}
}

/* The long strings of bad_cases must not overflow a short message buffer. */
static void test_describe_truncates(void **state)
{
	(void)state;
	char msg[8];
	memset(msg, 'x', sizeof(msg));
	base64_describe_error("!!!", 3, msg, sizeof(msg));
	assert_string_equal(msg, "Invalid");
	base64_describe_error("!!!", 3, msg, 0); /* nothing written, no crash */
}

/*
 * decode and describe_error implement one grammar twice (fast and exact): over every string of
 * up to 8 characters from a small alphabet that hits each rule, they must agree on what is valid.
 */
static void test_decode_and_describe_agree(void **state)
{
	(void)state;
	static const char symbols[] = "AQB=!";
	enum { K = sizeof(symbols) - 1 };
	char in[9];
	uint8_t out[16];
	char msg[64];
	for (size_t len = 0; len <= 8; len++) {
		size_t total = 1;
		for (size_t i = 0; i < len; i++)
			total *= K;
		for (size_t code = 0; code < total; code++) {
			size_t c = code, out_len = 0;
			for (size_t i = 0; i < len; i++, c /= K)
				in[i] = symbols[c % K];
			in[len] = '\0';
			int rc = base64_decode(in, len, out, &out_len);
			base64_describe_error(in, len, msg, sizeof(msg));
			if ((rc == 0) != (msg[0] == '\0'))
				fail_msg("\"%s\": decode %d but describe \"%s\"", in, rc, msg);
		}
	}
}

static void test_empty_input(void **state)
{
	(void)state;
	char out[4] = "zzz";
	uint8_t back[4];
	size_t back_len = 7;
	base64_encode((const uint8_t *)"", 0, out);
	assert_string_equal(out, "");
	assert_int_equal(base64_decode("", 0, back, &back_len), 0);
	assert_int_equal(back_len, 0);
	assert_int_equal(base64_decoded_max(0), 0);
	assert_int_equal(base64_encoded_len(0), 0);
}

/* RFC 4648 §10 vectors in the URL alphabet, unpadded, and the strictness JWT segments need. */
static void test_base64url(void **state)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const coded[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	char out[16];
	uint8_t back[16];
	size_t back_len;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		base64url_encode((const uint8_t *)plain[i], strlen(plain[i]), out);
		assert_string_equal(out, coded[i]);
		assert_int_equal(base64url_decode(coded[i], strlen(coded[i]), back, &back_len), 0);
		assert_int_equal(back_len, strlen(plain[i]));
		assert_memory_equal(back, plain[i], back_len);
	}
	const uint8_t high[] = { 0xfb, 0xff };
	base64url_encode(high, 2, out);
	assert_string_equal(out, "-_8");
	assert_int_equal(base64url_decode("Zg==", 4, back, &back_len), -EINVAL);
	assert_int_equal(base64url_decode("Z", 1, back, &back_len), -EINVAL);
	assert_int_equal(base64url_decode("Zh", 2, back, &back_len), -EINVAL); /* stray bits */
	assert_int_equal(base64url_decode("Zm+v", 4, back, &back_len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_round_trip_all_lengths),
		cmocka_unit_test(test_refusals_word_like_the_reference),
		cmocka_unit_test(test_describe_truncates),
		cmocka_unit_test(test_decode_and_describe_agree),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_base64url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
