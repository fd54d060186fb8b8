/* SPDX-License-Identifier: MIT */
/* ws_auth_test.c - unit tests for websocket upgrade credentials: options, capability token, HS256 JWT. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ws_auth.h"

#define NOW 1800000000LL
#define SECRET "0123456789abcdef0123456789abcdef-shared"
/* Any well-formed digest (these cases fail before it is used). */
#define TOKEN_SHA256 "00000000000000000000000000000000000000000000000000000000000000ff"

typedef struct Fixture {
	char dir[64];
	char token_path[128];
	char secret_path[128];
	char short_path[128];
	char empty_path[128];
} Fixture;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	Fixture *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/ws_auth_test.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->token_path, sizeof(fx->token_path), "%s/token", fx->dir);
	snprintf(fx->secret_path, sizeof(fx->secret_path), "%s/secret", fx->dir);
	snprintf(fx->short_path, sizeof(fx->short_path), "%s/short", fx->dir);
	snprintf(fx->empty_path, sizeof(fx->empty_path), "%s/empty", fx->dir);
	write_file(fx->token_path, "  sekrit-token\n");
	write_file(fx->secret_path, "\n" SECRET "\n");
	write_file(fx->short_path, "only-31-bytes-long-after-trim!!\n");
	write_file(fx->empty_path, " \n\t\n");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	Fixture *fx = *state;
	unlink(fx->token_path);
	unlink(fx->secret_path);
	unlink(fx->short_path);
	unlink(fx->empty_path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void sha256_hex(const char *text, char out[65])
{
	uint8_t digest[32];
	unsigned int len = 0;
	EVP_Digest(text, strlen(text), digest, &len, EVP_sha256(), NULL);
	for (size_t i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", digest[i]);
}

static void b64url(const uint8_t *in, size_t len, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = alphabet[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = alphabet[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

/* "Bearer <header>.<claims>.<HMAC-SHA256 with @secret>" into @out. */
static void make_bearer(const char *header, const char *claims, const char *secret, char *out, size_t out_len)
{
	char h[512], c[1024], sig[128], signing[1600];
	b64url((const uint8_t *)header, strlen(header), h);
	b64url((const uint8_t *)claims, strlen(claims), c);
	snprintf(signing, sizeof(signing), "%s.%s", h, c);
	uint8_t mac[32];
	unsigned int mac_len = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)signing, strlen(signing), mac,
	     &mac_len);
	b64url(mac, mac_len, sig);
	snprintf(out, out_len, "Bearer %s.%s", signing, sig);
}

static void signed_auth(Fixture *fx, const char *issuer, const char *audience, WsAuth *auth)
{
	char err[512] = "";
	WsAuthOptions opts = { .mode = "signed-bearer-token",
			       .shared_secret_file = fx->secret_path,
			       .issuer = issuer,
			       .audience = audience };
	assert_int_equal(ws_auth_configure(&opts, auth, err, sizeof(err)), 0);
	assert_int_equal(auth->mode, WS_AUTH_SIGNED_BEARER_TOKEN);
}

static const char *check_claims(const WsAuth *auth, const char *claims)
{
	static char bearer[2048];
	make_bearer("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, SECRET, bearer, sizeof(bearer));
	return ws_auth_check(auth, bearer, NOW);
}

/* --- options ------------------------------------------------------------------------------------ */

static void expect_config_error(const WsAuthOptions *opts, const char *message)
{
	WsAuth auth;
	char err[512] = "";
	assert_int_equal(ws_auth_configure(opts, &auth, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, message);
	assert_int_equal(auth.mode, WS_AUTH_NONE);
	assert_null(auth.secret);
}

static void test_no_flags_means_no_auth(void **state)
{
	WsAuth auth;
	WsAuthOptions opts = { 0 };
	assert_int_equal(ws_auth_configure(&opts, &auth, NULL, 0), 0);
	assert_int_equal(auth.mode, WS_AUTH_NONE);
	assert_null(ws_auth_check(&auth, NULL, NOW));
	ws_auth_clear(&auth);
}

static void test_flags_require_a_mode(void **state)
{
	WsAuthOptions opts = { .token_file = "/x" };
	expect_config_error(&opts, "websocket auth flags require `--ws-auth capability-token` or `--ws-auth "
				   "signed-bearer-token`");
	WsAuthOptions skew = { .max_clock_skew_s = "5" };
	expect_config_error(&skew, "websocket auth flags require `--ws-auth capability-token` or `--ws-auth "
				   "signed-bearer-token`");
}

static void test_unknown_mode(void **state)
{
	WsAuthOptions opts = { .mode = "bogus" };
	expect_config_error(&opts, "invalid value 'bogus' for '--ws-auth <MODE>' [possible values: "
				   "capability-token, signed-bearer-token]");
}

static void test_capability_token_options(void **state)
{
	Fixture *fx = *state;
	WsAuthOptions none = { .mode = "capability-token" };
	expect_config_error(&none, "`--ws-token-file` or `--ws-token-sha256` is required when `--ws-auth "
				   "capability-token` is set");
	WsAuthOptions both = { .mode = "capability-token",
			       .token_file = fx->token_path,
			       .token_sha256 = TOKEN_SHA256 };
	expect_config_error(&both, "`--ws-token-file` and `--ws-token-sha256` are mutually exclusive");
	WsAuthOptions short_hash = { .mode = "capability-token", .token_sha256 = "abc" };
	expect_config_error(&short_hash, "--ws-token-sha256 must be a 64-character hex SHA-256 digest");
	WsAuthOptions bad_hex = {
		.mode = "capability-token",
		.token_sha256 = "zz00000000000000000000000000000000000000000000000000000000000000"
	};
	expect_config_error(&bad_hex, "--ws-token-sha256 must be a 64-character hex SHA-256 digest");
	WsAuthOptions signed_flag = { .mode = "capability-token",
				      .token_sha256 = TOKEN_SHA256,
				      .issuer = "me" };
	expect_config_error(&signed_flag,
			    "`--ws-shared-secret-file`, `--ws-issuer`, `--ws-audience`, and "
			    "`--ws-max-clock-skew-seconds` require `--ws-auth signed-bearer-token`");
	WsAuthOptions relative = { .mode = "capability-token",
				   .token_file = "token",
				   .requires_absolute_paths = true };
	expect_config_error(&relative, "--ws-token-file must be an absolute path");
	char message[512];
	WsAuthOptions empty = { .mode = "capability-token", .token_file = fx->empty_path };
	snprintf(message, sizeof(message), "websocket auth secret %s must not be empty", fx->empty_path);
	expect_config_error(&empty, message);
	WsAuthOptions missing = { .mode = "capability-token", .token_file = "/nonexistent/token" };
	expect_config_error(&missing, "failed to read websocket auth secret /nonexistent/token: No such file "
				      "or directory (os error 2)");
	WsAuthOptions dir = { .mode = "capability-token", .token_file = fx->dir };
	snprintf(message, sizeof(message),
		 "failed to read websocket auth secret %s: Is a directory (os error 21)", fx->dir);
	expect_config_error(&dir, message);
}

static void test_signed_bearer_options(void **state)
{
	Fixture *fx = *state;
	WsAuthOptions none = { .mode = "signed-bearer-token" };
	expect_config_error(
		&none, "`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` is set");
	WsAuthOptions token_flag = { .mode = "signed-bearer-token",
				     .shared_secret_file = fx->secret_path,
				     .token_sha256 = TOKEN_SHA256 };
	expect_config_error(&token_flag, "`--ws-token-file` and `--ws-token-sha256` require `--ws-auth "
					 "capability-token`, not `signed-bearer-token`");
	char message[512];
	WsAuthOptions short_secret = { .mode = "signed-bearer-token", .shared_secret_file = fx->short_path };
	snprintf(message, sizeof(message), "signed websocket bearer secret %s must be at least 32 bytes",
		 fx->short_path);
	expect_config_error(&short_secret, message);
	WsAuthOptions bad_skew = { .mode = "signed-bearer-token",
				   .shared_secret_file = fx->secret_path,
				   .max_clock_skew_s = "x" };
	expect_config_error(&bad_skew,
			    "invalid value 'x' for '--ws-max-clock-skew-seconds <SECONDS>': invalid "
			    "digit found in string");
	WsAuthOptions negative_skew = { .mode = "signed-bearer-token",
					.shared_secret_file = fx->secret_path,
					.max_clock_skew_s = "-1" };
	expect_config_error(&negative_skew, "invalid value '-1' for '--ws-max-clock-skew-seconds <SECONDS>': "
					    "invalid digit found in string");
	WsAuthOptions relative = { .mode = "signed-bearer-token",
				   .shared_secret_file = "secret",
				   .requires_absolute_paths = true };
	expect_config_error(&relative, "--ws-shared-secret-file must be an absolute path");
}

static void test_signed_bearer_defaults_and_trimming(void **state)
{
	Fixture *fx = *state;
	WsAuth auth;
	signed_auth(fx, "  ", " aud \n", &auth);
	assert_int_equal(auth.max_clock_skew_s, 30);
	assert_int_equal(auth.secret_len, strlen(SECRET));
	assert_memory_equal(auth.secret, SECRET, strlen(SECRET));
	assert_null(auth.issuer); /* blank: not checked */
	assert_string_equal(auth.audience, "aud");
	ws_auth_clear(&auth);
	assert_null(auth.secret);
	ws_auth_clear(&auth); /* idempotent */
}

/* --- capability token ----------------------------------------------------------------------------- */

static void test_capability_token_from_file(void **state)
{
	Fixture *fx = *state;
	WsAuth auth;
	char err[512] = "";
	WsAuthOptions opts = { .mode = "capability-token", .token_file = fx->token_path };
	assert_int_equal(ws_auth_configure(&opts, &auth, err, sizeof(err)), 0);
	assert_null(ws_auth_check(&auth, "Bearer sekrit-token", NOW));
	assert_null(ws_auth_check(&auth, "bEaReR   sekrit-token", NOW));
	assert_string_equal(ws_auth_check(&auth, NULL, NOW), "missing websocket bearer token");
	assert_string_equal(ws_auth_check(&auth, "Bearer wrong", NOW), "invalid websocket bearer token");
	assert_string_equal(ws_auth_check(&auth, "Bearer sekrit-toke", NOW),
			    "invalid websocket bearer token");
	assert_string_equal(ws_auth_check(&auth, "Basic sekrit-token", NOW), "invalid authorization header");
	assert_string_equal(ws_auth_check(&auth, "Bearer", NOW), "invalid authorization header");
	assert_string_equal(ws_auth_check(&auth, "Bearer    ", NOW), "invalid authorization header");
	assert_string_equal(ws_auth_check(&auth, "Bearersekrit-token", NOW), "invalid authorization header");
	assert_string_equal(ws_auth_check(&auth, "Bearer \xff\xfe", NOW), "invalid authorization header");
	assert_string_equal(ws_auth_check(&auth, "", NOW), "invalid authorization header");
	ws_auth_clear(&auth);
}

static void test_capability_token_from_hash(void **state)
{
	WsAuth auth;
	char hex[65], padded[80];
	sha256_hex("sekrit-token", hex);
	for (char *c = hex; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A'); /* upper case is accepted too */
	snprintf(padded, sizeof(padded), "  %s\n", hex);
	WsAuthOptions opts = { .mode = "capability-token", .token_sha256 = padded };
	assert_int_equal(ws_auth_configure(&opts, &auth, NULL, 0), 0);
	assert_null(ws_auth_check(&auth, "Bearer sekrit-token", NOW));
	assert_string_equal(ws_auth_check(&auth, "Bearer other", NOW), "invalid websocket bearer token");
	ws_auth_clear(&auth);
}

/* --- signed bearer tokens ---------------------------------------------------------------------------- */

static void test_jwt_valid(void **state)
{
	WsAuth auth;
	signed_auth(*state, NULL, NULL, &auth);
	assert_null(check_claims(&auth, "{\"exp\":1800000060}"));
	assert_null(check_claims(&auth,
				 "{\"exp\":1800000060,\"iss\":\"x\",\"aud\":[\"a\",\"b\"],\"sub\":\"s\"}"));
	char bearer[2048];
	make_bearer("{\"alg\":\"HS256\",\"kid\":\"1\",\"typ\":\"other\"}", "{\"exp\":1800000060}", SECRET,
		    bearer, sizeof(bearer));
	assert_null(ws_auth_check(&auth, bearer, NOW));
	ws_auth_clear(&auth);
}

static void test_jwt_rejects_tampering(void **state)
{
	WsAuth auth;
	signed_auth(*state, NULL, NULL, &auth);
	char bearer[2048];
	make_bearer("{\"alg\":\"HS256\"}", "{\"exp\":1800000060}", "another-secret-of-thirty-two-bytes!!",
		    bearer, sizeof(bearer));
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	make_bearer("{\"alg\":\"HS256\"}", "{\"exp\":1800000060}", SECRET, bearer, sizeof(bearer));
	/* Flip one character of the claims segment. */
	char *claims = strchr(bearer, '.') + 1;
	claims[2] = claims[2] == 'A' ? 'B' : 'A';
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	/* A padded signature is not the unpadded base64url a JWT uses. */
	make_bearer("{\"alg\":\"HS256\"}", "{\"exp\":1800000060}", SECRET, bearer, sizeof(bearer));
	strcat(bearer, "=");
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	assert_string_equal(ws_auth_check(&auth, "Bearer abc.def.ghi", NOW), "invalid websocket jwt");
	assert_string_equal(ws_auth_check(&auth, "Bearer abc.def", NOW), "invalid websocket jwt");
	assert_string_equal(ws_auth_check(&auth, "Bearer a.b.c.d", NOW), "invalid websocket jwt");
	ws_auth_clear(&auth);
}

static void test_jwt_rejects_other_algorithms(void **state)
{
	WsAuth auth;
	signed_auth(*state, NULL, NULL, &auth);
	char bearer[2048], h[128], c[128];
	/* alg none with an empty signature */
	b64url((const uint8_t *)"{\"alg\":\"none\"}", 14, h);
	b64url((const uint8_t *)"{\"exp\":1800000060}", 18, c);
	snprintf(bearer, sizeof(bearer), "Bearer %s.%s.", h, c);
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	/* HS384 header, even with a valid HS256 MAC */
	make_bearer("{\"alg\":\"HS384\"}", "{\"exp\":1800000060}", SECRET, bearer, sizeof(bearer));
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	make_bearer("{\"alg\":\"hs256\"}", "{\"exp\":1800000060}", SECRET, bearer, sizeof(bearer));
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	make_bearer("{\"typ\":\"JWT\"}", "{\"exp\":1800000060}", SECRET, bearer, sizeof(bearer));
	assert_string_equal(ws_auth_check(&auth, bearer, NOW), "invalid websocket jwt");
	ws_auth_clear(&auth);
}

static void test_jwt_claim_types(void **state)
{
	WsAuth auth;
	signed_auth(*state, "me", "you", &auth);
	assert_string_equal(check_claims(&auth, "{\"iss\":\"me\",\"aud\":\"you\"}"), "invalid websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":\"1800000060\",\"iss\":\"me\",\"aud\":\"you\"}"),
			    "invalid websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060.5,\"iss\":\"me\",\"aud\":\"you\"}"),
			    "invalid websocket jwt");
	assert_string_equal(
		check_claims(&auth, "{\"exp\":9223372036854775808,\"iss\":\"me\",\"aud\":\"you\"}"),
		"invalid websocket jwt");
	assert_string_equal(
		check_claims(&auth, "{\"exp\":1800000060,\"nbf\":\"x\",\"iss\":\"me\",\"aud\":\"you\"}"),
		"invalid websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":5,\"aud\":\"you\"}"),
			    "invalid websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\",\"aud\":5}"),
			    "invalid websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\",\"aud\":[5]}"),
			    "invalid websocket jwt");
	assert_string_equal(check_claims(&auth, "[1]"), "invalid websocket jwt");
	ws_auth_clear(&auth);
}

static void test_jwt_times_with_skew(void **state)
{
	WsAuth auth;
	signed_auth(*state, NULL, NULL, &auth);
	assert_null(check_claims(&auth, "{\"exp\":1799999970}")); /* expired 30 s ago: in skew */
	assert_string_equal(check_claims(&auth, "{\"exp\":1799999969}"), "expired websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":-5}"), "expired websocket jwt");
	assert_null(check_claims(&auth, "{\"exp\":1800000600,\"nbf\":1800000030}")); /* 30 s early: in skew */
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000600,\"nbf\":1800000031}"),
			    "websocket jwt is not valid yet");
	/* exp is judged before nbf */
	assert_string_equal(check_claims(&auth, "{\"exp\":1799990000,\"nbf\":1800009000}"),
			    "expired websocket jwt");
	ws_auth_clear(&auth);
}

static void test_jwt_issuer_and_audience(void **state)
{
	WsAuth auth;
	signed_auth(*state, "me", "you", &auth);
	assert_null(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\",\"aud\":\"you\"}"));
	assert_null(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\",\"aud\":[\"x\",\"you\"]}"));
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"aud\":\"you\"}"),
			    "websocket jwt issuer mismatch");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"no\",\"aud\":\"you\"}"),
			    "websocket jwt issuer mismatch");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\"}"),
			    "websocket jwt audience mismatch");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\",\"aud\":\"no\"}"),
			    "websocket jwt audience mismatch");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"me\",\"aud\":[]}"),
			    "websocket jwt audience mismatch");
	/* Time is judged before the issuer, the issuer before the audience. */
	assert_string_equal(check_claims(&auth, "{\"exp\":1700000000,\"iss\":\"no\",\"aud\":\"no\"}"),
			    "expired websocket jwt");
	assert_string_equal(check_claims(&auth, "{\"exp\":1800000060,\"iss\":\"no\",\"aud\":\"no\"}"),
			    "websocket jwt issuer mismatch");
	ws_auth_clear(&auth);
}

/* --- listeners ----------------------------------------------------------------------------------------- */

static void test_loopback_detection(void **state)
{
	assert_true(ws_auth_is_loopback("127.0.0.1"));
	assert_true(ws_auth_is_loopback("127.255.0.9"));
	assert_true(ws_auth_is_loopback("::1"));
	assert_true(ws_auth_is_loopback("::ffff:127.0.0.1"));
	assert_false(ws_auth_is_loopback("0.0.0.0"));
	assert_false(ws_auth_is_loopback("::"));
	assert_false(ws_auth_is_loopback("10.0.0.1"));
	assert_false(ws_auth_is_loopback("::ffff:10.0.0.1"));
	assert_false(ws_auth_is_loopback("localhost"));
	assert_false(ws_auth_is_loopback(""));
}

static void test_non_loopback_listener_needs_auth(void **state)
{
	WsAuth none = { 0 };
	char err[512] = "";
	assert_int_equal(ws_auth_check_listener(&none, "127.0.0.1", "127.0.0.1:0", err, sizeof(err)), 0);
	assert_int_equal(ws_auth_check_listener(&none, "0.0.0.0", "0.0.0.0:8080", err, sizeof(err)), -EACCES);
	assert_string_equal(err,
			    "refusing to start non-loopback websocket listener 0.0.0.0:8080 without auth; "
			    "configure `--ws-auth capability-token` or `--ws-auth signed-bearer-token`");
	WsAuth token = { .mode = WS_AUTH_CAPABILITY_TOKEN };
	assert_int_equal(ws_auth_check_listener(&token, "0.0.0.0", "0.0.0.0:8080", err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_flags_means_no_auth),
		cmocka_unit_test(test_flags_require_a_mode),
		cmocka_unit_test(test_unknown_mode),
		cmocka_unit_test(test_capability_token_options),
		cmocka_unit_test(test_signed_bearer_options),
		cmocka_unit_test(test_signed_bearer_defaults_and_trimming),
		cmocka_unit_test(test_capability_token_from_file),
		cmocka_unit_test(test_capability_token_from_hash),
		cmocka_unit_test(test_jwt_valid),
		cmocka_unit_test(test_jwt_rejects_tampering),
		cmocka_unit_test(test_jwt_rejects_other_algorithms),
		cmocka_unit_test(test_jwt_claim_types),
		cmocka_unit_test(test_jwt_times_with_skew),
		cmocka_unit_test(test_jwt_issuer_and_audience),
		cmocka_unit_test(test_loopback_detection),
		cmocka_unit_test(test_non_loopback_listener_needs_auth),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
