/* SPDX-License-Identifier: MIT */
/*
 * store_test.c - cmocka tests for authd's credential store and refresh rules: the reference's
 * auth.json format (modes, inference, claims), corrupt files, atomic 0600 writes, the lock, time
 * stamps, the classification of the issuer's answers and the merge of new tokens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "refresh.h"
#include "store.h"

typedef struct Fixture {
	char dir[64];
	StorePaths paths;
} Fixture;

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/authd-store-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_paths(f->dir, &f->paths), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	DIR *dir = opendir(f->dir);
	struct dirent *e;
	while (dir && (e = readdir(dir)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(dir), e->d_name, 0);
	}
	if (dir)
		closedir(dir);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_file(const Fixture *f, const char *text)
{
	FILE *fp = fopen(f->paths.file, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* An unsigned JWT (header.payload.sig) whose payload is @claims. */
static char *make_jwt(const char *claims)
{
	char *payload = malloc(strlen(claims) * 2 + 4);
	base64url_encode((const uint8_t *)claims, strlen(claims), payload);
	char *jwt = malloc(strlen(payload) + 64);
	sprintf(jwt, "eyJhbGciOiJub25lIn0.%s.c2ln", payload);
	free(payload);
	return jwt;
}

static char *chatgpt_auth_json(const char *access_claims, const char *account_id)
{
	char *id = make_jwt("{\"email\":\"u@example.com\",\"https://api.openai.com/auth\":{\"chatgpt_plan_type\":"
			    "\"plus\",\"chatgpt_user_id\":\"user-1\",\"chatgpt_account_id\":\"acct-claim\"}}");
	char *access = make_jwt(access_claims);
	char *text = malloc(strlen(id) + strlen(access) + 512);
	sprintf(text,
		"{\"auth_mode\":\"chatgpt\",\"OPENAI_API_KEY\":null,\"tokens\":{\"id_token\":\"%s\","
		"\"access_token\":\"%s\",\"refresh_token\":\"rt-1\"%s%s%s},\"last_refresh\":"
		"\"2026-06-01T12:34:56.789Z\"}",
		id, access, account_id ? ",\"account_id\":\"" : "", account_id ? account_id : "",
		account_id ? "\"" : "");
	free(id);
	free(access);
	return text;
}

static void test_missing_file_is_no_credential(void **state)
{
	Fixture *f = *state;
	AuthSnapshot snap;
	struct stat st;
	char err[256];
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_int_equal(snap.mode, AUTH_MODE_NONE);
	assert_null(snap.identity);
	assert_null(store_mode_name(snap.mode));
	store_snapshot_clear(&snap);
}

static void test_api_key_file(void **state)
{
	Fixture *f = *state;
	AuthSnapshot snap;
	struct stat st;
	char err[256];
	write_file(f, "{\"auth_mode\":\"apikey\",\"OPENAI_API_KEY\":\"sk-test\"}");
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_int_equal(snap.mode, AUTH_MODE_APIKEY);
	assert_string_equal(snap.api_key, "sk-test");
	assert_string_equal(store_mode_name(snap.mode), "apikey");
	assert_null(snap.refresh_token);
	store_snapshot_clear(&snap);
}

/* §6.1: without auth_mode a non-null key means apikey even when tokens exist. */
static void test_mode_inference(void **state)
{
	Fixture *f = *state;
	AuthSnapshot snap;
	struct stat st;
	char err[256];
	write_file(f, "{\"OPENAI_API_KEY\":\"sk-x\",\"tokens\":{\"access_token\":\"a\",\"refresh_token\":\"r\"}}");
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_int_equal(snap.mode, AUTH_MODE_APIKEY);
	store_snapshot_clear(&snap);
	write_file(f, "{\"OPENAI_API_KEY\":null,\"tokens\":{\"access_token\":\"a\",\"refresh_token\":\"r\"}}");
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_int_equal(snap.mode, AUTH_MODE_CHATGPT);
	store_snapshot_clear(&snap);
	write_file(f, "{\"personal_access_token\":\"pat\",\"OPENAI_API_KEY\":\"sk-x\"}");
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_int_equal(snap.mode, AUTH_MODE_PERSONAL_ACCESS_TOKEN);
	store_snapshot_clear(&snap);
}

static void test_chatgpt_claims(void **state)
{
	Fixture *f = *state;
	AuthSnapshot snap;
	struct stat st;
	char err[256];
	char *text = chatgpt_auth_json("{\"exp\":1900000000}", NULL);
	write_file(f, text);
	free(text);
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_int_equal(snap.mode, AUTH_MODE_CHATGPT);
	assert_string_equal(snap.email, "u@example.com");
	assert_string_equal(snap.plan_type, "plus");
	assert_string_equal(snap.user_id, "user-1");
	/* No tokens.account_id: the id token's claim stands in. */
	assert_string_equal(snap.account_id, "acct-claim");
	assert_int_equal(snap.access_exp_s, 1900000000);
	assert_string_equal(snap.refresh_token, "rt-1");
	int64_t expected;
	assert_int_equal(store_parse_time("2026-06-01T12:34:56Z", &expected), 0);
	assert_int_equal(snap.last_refresh_s, expected);
	store_snapshot_clear(&snap);
}

static void test_stored_account_id_wins(void **state)
{
	Fixture *f = *state;
	AuthSnapshot snap;
	struct stat st;
	char err[256];
	char *text = chatgpt_auth_json("{\"exp\":1}", "acct-stored");
	write_file(f, text);
	free(text);
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_string_equal(snap.account_id, "acct-stored");
	store_snapshot_clear(&snap);
}

/* A corrupt file is an error naming the file, never a credential. */
static void test_corrupt_files(void **state)
{
	Fixture *f = *state;
	static const char *const bad[] = {
		"{\"auth_mode\":\"apikey\"",
		"[1,2]",
		"{\"auth_mode\":\"apikey\"}",
		"{\"auth_mode\":\"chatgpt\",\"OPENAI_API_KEY\":null}",
		"{\"auth_mode\":\"bogus\"}",
		"{\"OPENAI_API_KEY\":42}",
		"{\"auth_mode\":\"chatgpt\",\"tokens\":{\"access_token\":7}}",
		"{\"a\":1,\"a\":2}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		AuthSnapshot snap;
		struct stat st;
		char err[512] = "";
		write_file(f, bad[i]);
		assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, f->paths.file));
		assert_int_equal(snap.mode, AUTH_MODE_NONE);
	}
	/* The reason never quotes the file: it holds secrets. */
	AuthSnapshot snap;
	struct stat st;
	char err[512] = "";
	write_file(f, "{\"OPENAI_API_KEY\": \"sk-secret-value\" \"x\"}");
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "sk-secret"));
	assert_non_null(strstr(err, "line 1 column"));
}

static void test_write_is_atomic_and_private(void **state)
{
	Fixture *f = *state;
	umask(022);
	json_t *doc = json_pack("{s:s,s:s}", "auth_mode", "apikey", "OPENAI_API_KEY", "sk-1");
	assert_int_equal(store_write(&f->paths, doc), 0);
	json_decref(doc);
	struct stat st;
	assert_int_equal(stat(f->paths.file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Nothing but the file itself is left in the directory. */
	DIR *dir = opendir(f->dir);
	struct dirent *e;
	int entries = 0;
	while ((e = readdir(dir)) != NULL)
		entries += e->d_name[0] != '.' || strncmp(e->d_name, ".auth", 5) == 0;
	closedir(dir);
	assert_int_equal(entries, 1);
	AuthSnapshot snap;
	char err[256];
	assert_int_equal(store_load(&f->paths, &snap, &st, err, sizeof(err)), 0);
	assert_string_equal(snap.api_key, "sk-1");
	store_snapshot_clear(&snap);
	assert_int_equal(store_remove(&f->paths), 0);
	assert_int_equal(access(f->paths.file, F_OK), -1);
	assert_int_equal(store_remove(&f->paths), 0);
}

/* A write that cannot happen says why and leaves no temp file behind. */
static void test_write_failures_are_reported_and_clean(void **state)
{
	Fixture *f = *state;
	StorePaths gone;
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/no-such-dir", f->dir);
	assert_int_equal(store_paths(missing, &gone), 0);
	json_t *doc = json_pack("{s:s}", "OPENAI_API_KEY", "sk-2");
	assert_int_equal(store_write(&gone, doc), -ENOENT);
	/* The file's place taken by a directory: the rename fails, the temp file is removed. */
	char blocker[200];
	snprintf(blocker, sizeof(blocker), "%s/sub", f->dir);
	assert_int_equal(mkdir(blocker, 0700), 0);
	char inner[256];
	snprintf(inner, sizeof(inner), "%s/auth.json", blocker);
	assert_int_equal(mkdir(inner, 0700), 0);
	StorePaths sub;
	assert_int_equal(store_paths(blocker, &sub), 0);
	assert_true(store_write(&sub, doc) < 0);
	DIR *dir = opendir(blocker);
	struct dirent *e;
	int temps = 0;
	while ((e = readdir(dir)) != NULL)
		temps += strncmp(e->d_name, ".auth.json.tmp.", 15) == 0;
	closedir(dir);
	assert_int_equal(temps, 0);
	rmdir(inner);
	rmdir(blocker);
	json_decref(doc);
}

static void test_stale_temps_removed(void **state)
{
	Fixture *f = *state;
	char temp[4200];
	snprintf(temp, sizeof(temp), "%s/.auth.json.tmp.1.00", f->dir);
	int fd = open(temp, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	store_remove_stale_temps(&f->paths);
	assert_int_equal(access(temp, F_OK), -1);
}

/* The lock is a flock(2) on auth.json.lock: another open file description waits for it. */
static void test_lock_excludes_and_times_out(void **state)
{
	Fixture *f = *state;
	int held = store_lock(&f->paths, 100, NULL);
	assert_true(held >= 0);
	int other = open(f->paths.lock, O_RDWR);
	assert_true(other >= 0);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(store_lock(&f->paths, 30, NULL), -ETIMEDOUT);
	volatile bool cancel = true;
	assert_int_equal(store_lock(&f->paths, 1000, &cancel), -ECANCELED);
	store_unlock(held);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
	close(other);
}

static void test_time_round_trip(void **state)
{
	char text[64];
	int64_t s;
	store_format_time(1780317296789000000LL, text, sizeof(text));
	assert_string_equal(text, "2026-06-01T12:34:56.789000000Z");
	assert_int_equal(store_parse_time(text, &s), 0);
	assert_int_equal(s, 1780317296);
	assert_int_equal(store_parse_time("2026-06-01T14:34:56+02:00", &s), 0);
	assert_int_equal(s, 1780317296);
	assert_int_equal(store_parse_time("1970-01-01T00:00:00Z", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(store_parse_time("2026-06-01 12:34:56Z", &s), -EINVAL);
	assert_int_equal(store_parse_time("2026-13-01T12:34:56Z", &s), -EINVAL);
	assert_int_equal(store_parse_time("2026-06-01T12:34:56", &s), -EINVAL);
}

static void test_snapshot_identity(void **state)
{
	char err[128];
	AuthSnapshot a, b, c;
	assert_int_equal(store_snapshot_from_doc(json_loads("{\"OPENAI_API_KEY\":\"k\",\"x\":1}", 0, NULL), &a, err,
						 sizeof(err)),
			 0);
	assert_int_equal(store_snapshot_from_doc(json_loads("{\"x\":1,\"OPENAI_API_KEY\":\"k\"}", 0, NULL), &b, err,
						 sizeof(err)),
			 0);
	assert_int_equal(store_snapshot_from_doc(json_loads("{\"OPENAI_API_KEY\":\"k2\"}", 0, NULL), &c, err,
						 sizeof(err)),
			 0);
	assert_true(store_snapshot_equal(&a, &b)); /* key order is no difference */
	assert_false(store_snapshot_equal(&a, &c));
	AuthSnapshot copy;
	assert_int_equal(store_snapshot_copy(&c, &copy), 0);
	assert_true(store_snapshot_equal(&c, &copy));
	store_snapshot_clear(&a);
	store_snapshot_clear(&b);
	store_snapshot_clear(&c);
	store_snapshot_clear(&copy);
}

/* §6.2's classification: 401 or the three codes (even with 400) are permanent, the rest transient. */
static void test_classify(void **state)
{
	char msg[512];
	assert_int_equal(refresh_classify(400, "{\"error\":{\"code\":\"refresh_token_reused\"}}", msg, sizeof(msg)),
			 REFRESH_PERMANENT);
	assert_string_equal(msg, "Your access token could not be refreshed because your refresh token was already "
				 "used. Please log out and sign in again.");
	assert_int_equal(refresh_classify(400, "{\"error\":\"REFRESH_TOKEN_EXPIRED\"}", msg, sizeof(msg)),
			 REFRESH_PERMANENT);
	assert_non_null(strstr(msg, "has expired"));
	assert_int_equal(refresh_classify(403, "{\"code\":\"refresh_token_invalidated\"}", msg, sizeof(msg)),
			 REFRESH_PERMANENT);
	assert_non_null(strstr(msg, "was revoked"));
	assert_int_equal(refresh_classify(401, "{}", msg, sizeof(msg)), REFRESH_PERMANENT);
	assert_string_equal(msg, "Your access token could not be refreshed. Please log out and sign in again.");
	assert_int_equal(refresh_classify(500, "{\"error\":{\"message\":\"boom\"}}", msg, sizeof(msg)),
			 REFRESH_TRANSIENT);
	assert_string_equal(msg, "Failed to refresh token: 500: boom");
	assert_int_equal(refresh_classify(400, "not json", msg, sizeof(msg)), REFRESH_TRANSIENT);
	assert_string_equal(msg, "Failed to refresh token: 400: not json");
	assert_int_equal(refresh_classify(429, NULL, msg, sizeof(msg)), REFRESH_TRANSIENT);
}

static void test_request_body(void **state)
{
	char *body = refresh_request_body("app_X", "forced", "rt-\"1");
	assert_string_equal(body, "{\"client_id\":\"app_X\",\"grant_type\":\"refresh_token\",\"refresh_reason\":"
				  "\"forced\",\"refresh_token\":\"rt-\\\"1\"}");
	free(body);
}

static void test_apply_merges_tokens(void **state)
{
	char err[128], msg[256];
	AuthSnapshot snap;
	json_t *doc = json_loads("{\"auth_mode\":\"chatgpt\",\"OPENAI_API_KEY\":null,\"tokens\":{\"id_token\":\"i\","
				 "\"access_token\":\"a\",\"refresh_token\":\"r\",\"account_id\":\"acct\"},\"extra\":true}",
				 0, NULL);
	assert_int_equal(store_snapshot_from_doc(doc, &snap, err, sizeof(err)), 0);
	json_t *fresh = refresh_apply(&snap, "{\"access_token\":\"a2\",\"refresh_token\":\"r2\",\"id_token\":null}",
				      1780317296000000000LL, msg, sizeof(msg));
	assert_non_null(fresh);
	json_t *tokens = json_object_get(fresh, "tokens");
	assert_string_equal(json_string_value(json_object_get(tokens, "access_token")), "a2");
	assert_string_equal(json_string_value(json_object_get(tokens, "refresh_token")), "r2");
	assert_string_equal(json_string_value(json_object_get(tokens, "id_token")), "i");
	assert_string_equal(json_string_value(json_object_get(tokens, "account_id")), "acct");
	assert_true(json_is_true(json_object_get(fresh, "extra")));
	assert_string_equal(json_string_value(json_object_get(fresh, "last_refresh")),
			    "2026-06-01T12:34:56.000000000Z");
	/* The snapshot itself is untouched. */
	assert_string_equal(snap.access_token, "a");
	json_decref(fresh);
	assert_null(refresh_apply(&snap, "[]", 0, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "invalid response"));
	assert_null(refresh_apply(&snap, "{\"access_token\":5}", 0, msg, sizeof(msg)));
	store_snapshot_clear(&snap);
}

/* 0.169 refreshes at the issuer a login recorded, unless the endpoint is overridden. */
static void test_refresh_endpoint_follows_provenance(void **state)
{
	char err[128], url[256], client[64];
	AuthSnapshot snap;
	json_t *doc = json_loads("{\"auth_mode\":\"chatgpt\",\"tokens\":{\"access_token\":\"a\",\"refresh_token\":"
				 "\"r\",\"oauth_provenance\":{\"issuer\":\"http://127.0.0.1:9/\",\"client_id\":"
				 "\"app_other\"}}}",
				 0, NULL);
	assert_int_equal(store_snapshot_from_doc(doc, &snap, err, sizeof(err)), 0);
	refresh_endpoint(&snap, "https://auth.openai.com/oauth/token", "app_X", true, url, sizeof(url), client,
			 sizeof(client));
	assert_string_equal(url, "http://127.0.0.1:9/oauth/token");
	assert_string_equal(client, "app_other");
	refresh_endpoint(&snap, "http://override/t", "app_X", false, url, sizeof(url), client, sizeof(client));
	assert_string_equal(url, "http://override/t");
	assert_string_equal(client, "app_X");
	store_snapshot_clear(&snap);
	doc = json_loads("{\"auth_mode\":\"chatgpt\",\"tokens\":{\"access_token\":\"a\",\"oauth_provenance\":"
			 "{\"issuer\":\"file:///etc/passwd\"}}}",
			 0, NULL);
	assert_int_equal(store_snapshot_from_doc(doc, &snap, err, sizeof(err)), 0);
	refresh_endpoint(&snap, "https://a/oauth/token", "app_X", true, url, sizeof(url), client, sizeof(client));
	assert_string_equal(url, "https://a/oauth/token"); /* not a web issuer: ignored */
	store_snapshot_clear(&snap);
}

static void test_same_account(void **state)
{
	assert_true(refresh_same_account(NULL, NULL));
	assert_true(refresh_same_account("a", "a"));
	assert_false(refresh_same_account("a", NULL));
	assert_false(refresh_same_account("a", "b"));
	assert_non_null(strstr(refresh_message(REFRESH_ACCOUNT_CHANGED), "signed in to another account"));
}

static void test_jwt_claims(void **state)
{
	char *jwt = make_jwt("{\"exp\":5}");
	json_t *claims = store_jwt_claims(jwt);
	assert_non_null(claims);
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 5);
	json_decref(claims);
	free(jwt);
	assert_null(store_jwt_claims("not-a-jwt"));
	assert_null(store_jwt_claims("a.!!!.c"));
	assert_null(store_jwt_claims(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_file_is_no_credential, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_inference, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chatgpt_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stored_account_id_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_is_atomic_and_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failures_are_reported_and_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_temps_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_excludes_and_times_out, setup, teardown),
		cmocka_unit_test(test_time_round_trip),
		cmocka_unit_test(test_snapshot_identity),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_request_body),
		cmocka_unit_test(test_apply_merges_tokens),
		cmocka_unit_test(test_refresh_endpoint_follows_provenance),
		cmocka_unit_test(test_same_account),
		cmocka_unit_test(test_jwt_claims),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
