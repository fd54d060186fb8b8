/* SPDX-License-Identifier: MIT */
/* login_test.c - cmocka tests for the sign-in flows' pieces (PKCE, the authorize URL, the callback's
 * request and query, the issuer's answers) and for the callback server on a real loop. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "login.h"

/* ---- PKCE ---------------------------------------------------------------------------------- */

/* RFC 7636, appendix B. */
static void test_pkce_rfc7636_example(void **state)
{
	(void)state;
	char challenge[LOGIN_CHALLENGE_LEN + 1];
	assert_int_equal(login_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge,
					      sizeof(challenge)),
			 0);
	assert_string_equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void test_pkce_refuses_a_short_buffer(void **state)
{
	(void)state;
	char small[LOGIN_CHALLENGE_LEN];
	assert_int_equal(login_pkce_challenge("x", small, sizeof(small)), -EIO);
}

/* ---- the authorize URL --------------------------------------------------------------------- */

/* 0.169's order and form encoding (space '+', ':' and '/' escaped), byte for byte. */
static void test_authorize_url(void **state)
{
	(void)state;
	char *url = login_authorize_url("http://127.0.0.1:18555", "app_EMoamEEZ73f0CkXaXp7hrann",
					"http://127.0.0.1:1455/auth/callback",
					"XXU_y5Nv6DLb5sy-aAD0o_U_CYlqAuI4g2Sj0WBAKYc",
					"Mk--vky4m2pEyga7SLHPC2H2xA9l5EaqamAsgNUxpLU", "t");
	assert_non_null(url);
	assert_string_equal(
		url, "http://127.0.0.1:18555/oauth/authorize?response_type=code"
		     "&client_id=app_EMoamEEZ73f0CkXaXp7hrann"
		     "&redirect_uri=http%3A%2F%2F127.0.0.1%3A1455%2Fauth%2Fcallback"
		     "&code_challenge=XXU_y5Nv6DLb5sy-aAD0o_U_CYlqAuI4g2Sj0WBAKYc"
		     "&code_challenge_method=S256&state=Mk--vky4m2pEyga7SLHPC2H2xA9l5EaqamAsgNUxpLU"
		     "&scope=openid+profile+email+offline_access+api.connectors.read+api.connectors.invoke"
		     "&id_token_add_organizations=true&codex_cli_simplified_flow=true&originator=t");
	free(url);
}

static void test_authorize_url_escapes_the_originator(void **state)
{
	(void)state;
	char *url = login_authorize_url("https://auth.openai.com", "c", "r", "ch", "st", "my app&x=1~");
	assert_non_null(url);
	assert_non_null(strstr(url, "&originator=my+app%26x%3D1%7E"));
	assert_null(strstr(url, "&x=1"));
	free(url);
}

/* ---- the callback's request line ----------------------------------------------------------- */

static void test_parse_request(void **state)
{
	(void)state;
	static const char head[] =
		"GET /auth/callback?code=abc&state=xyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	LoginRequest req;
	assert_int_equal(login_parse_request(head, strlen(head), &req), 0);
	assert_int_equal(req.path_len, strlen("/auth/callback"));
	assert_memory_equal(req.path, "/auth/callback", req.path_len);
	assert_int_equal(req.query_len, strlen("code=abc&state=xyz"));
	assert_memory_equal(req.query, "code=abc&state=xyz", req.query_len);

	static const char bare[] = "GET /cancel HTTP/1.0\r\n\r\n";
	assert_int_equal(login_parse_request(bare, strlen(bare), &req), 0);
	assert_int_equal(req.path_len, strlen("/cancel"));
	assert_int_equal(req.query_len, 0);
}

static void test_parse_request_refuses(void **state)
{
	(void)state;
	static const struct {
		const char *head;
		int rc;
	} cases[] = {
		{ "POST /auth/callback HTTP/1.1\r\n\r\n", -EOPNOTSUPP },
		{ "HEAD / HTTP/1.1\r\n\r\n", -EOPNOTSUPP },
		{ "get / HTTP/1.1\r\n\r\n", -EINVAL },
		{ "GET / HTTP/2.0\r\n\r\n", -EINVAL },
		{ "GET / HTTP/1.1 extra\r\n\r\n", -EINVAL },
		{ "GET auth/callback HTTP/1.1\r\n\r\n", -EINVAL },
		{ "GET http://evil/auth/callback HTTP/1.1\r\n\r\n", -EINVAL },
		{ "GET  / HTTP/1.1\r\n\r\n", -EINVAL },
		{ "GET /a\tb HTTP/1.1\r\n\r\n", -EINVAL },
		{ "GET / HTTP/1.1\n\n", -EINVAL },
		{ "GET /\r\n\r\n", -EINVAL },
		{ " / HTTP/1.1\r\n\r\n", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		LoginRequest req;
		int rc = login_parse_request(cases[i].head, strlen(cases[i].head), &req);
		if (rc != cases[i].rc)
			fail_msg("%s: %d, expected %d", cases[i].head, rc, cases[i].rc);
	}
}

/* ---- the callback's query ------------------------------------------------------------------ */

static int query(const char *q, const char *key, char *out, size_t out_len)
{
	return login_query_param(q, strlen(q), key, out, out_len);
}

static void test_query_code_state_error(void **state)
{
	(void)state;
	static const char q[] = "code=c-1&state=s-2&error=access_denied&error_description=User+denied";
	char out[64];
	assert_int_equal(query(q, "code", out, sizeof(out)), 1);
	assert_string_equal(out, "c-1");
	assert_int_equal(query(q, "state", out, sizeof(out)), 1);
	assert_string_equal(out, "s-2");
	assert_int_equal(query(q, "error", out, sizeof(out)), 1);
	assert_string_equal(out, "access_denied");
	assert_int_equal(query(q, "error_description", out, sizeof(out)), 1);
	assert_string_equal(out, "User denied");
	assert_int_equal(query(q, "scope", out, sizeof(out)), 0);
	assert_int_equal(query("", "code", out, sizeof(out)), 0);
}

static void test_query_percent_decoding(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(query("state=a%2Fb%3d%3D%25+c%20d", "state", out, sizeof(out)), 1);
	assert_string_equal(out, "a/b==% c d");
	/* The name is decoded too; a longer name with the key as its prefix is another key. */
	assert_int_equal(query("codex=1&co%64e=x", "code", out, sizeof(out)), 1);
	assert_string_equal(out, "x");
	assert_int_equal(query("codex=1", "code", out, sizeof(out)), 0);
	/* UTF-8 passes through as bytes. */
	assert_int_equal(query("error_description=%C3%A9t%C3%A9", "error_description", out, sizeof(out)), 1);
	assert_string_equal(out, "\xc3\xa9t\xc3\xa9");
}

static void test_query_edges(void **state)
{
	(void)state;
	char out[8];
	/* The last one wins, as a map built from the pairs has it. */
	assert_int_equal(query("state=one&state=two", "state", out, sizeof(out)), 1);
	assert_string_equal(out, "two");
	/* Present without '=' or with an empty value: present and empty. */
	assert_int_equal(query("a=1&code&b=2", "code", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	assert_int_equal(query("code=&&", "code", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	/* Broken escapes, an encoded NUL, a value that does not fit. */
	assert_int_equal(query("code=%4", "code", out, sizeof(out)), -EINVAL);
	assert_int_equal(query("code=%zz", "code", out, sizeof(out)), -EINVAL);
	assert_int_equal(query("code=%", "code", out, sizeof(out)), -EINVAL);
	assert_int_equal(query("code=a%00b", "code", out, sizeof(out)), -EINVAL);
	assert_int_equal(query("code=12345678", "code", out, sizeof(out)), -ENOBUFS);
	assert_int_equal(query("code=1234567", "code", out, sizeof(out)), 1);
	/* Another key's broken escape is not this key's problem. */
	assert_int_equal(query("x=%zz&code=ok", "code", out, sizeof(out)), 1);
	assert_string_equal(out, "ok");
}

/* ---- the issuer's answers ------------------------------------------------------------------ */

static void test_device_code_interval_as_string_and_number(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		unsigned interval;
	} cases[] = {
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":\"5\"}", 5 },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":\" 7 \"}", 7 },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":3}", 3 },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":\"0\"}", 0 },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\"}", 0 },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":null}", 0 },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":\"999999999\"}", 3600 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		LoginDeviceCode code;
		char err[128] = "";
		if (login_parse_device_code(cases[i].body, &code, err, sizeof(err)) != 0)
			fail_msg("%s: %s", cases[i].body, err);
		assert_string_equal(code.device_auth_id, "d");
		assert_string_equal(code.user_code, "U");
		assert_int_equal(code.interval_s, cases[i].interval);
		login_device_code_clear(&code);
	}
}

static void test_device_code_user_code_or_usercode(void **state)
{
	(void)state;
	LoginDeviceCode code;
	char err[128];
	assert_int_equal(login_parse_device_code("{\"device_auth_id\":\"dev-1\",\"usercode\":\"ABCD-1234\","
						 "\"interval\":\"1\"}",
						 &code, err, sizeof(err)),
			 0);
	assert_string_equal(code.device_auth_id, "dev-1");
	assert_string_equal(code.user_code, "ABCD-1234");
	assert_int_equal(code.interval_s, 1);
	login_device_code_clear(&code);
	assert_int_equal(login_parse_device_code("{\"device_auth_id\":\"dev-2\",\"user_code\":\"WXYZ-9876\"}",
						 &code, err, sizeof(err)),
			 0);
	assert_string_equal(code.user_code, "WXYZ-9876");
	login_device_code_clear(&code);
	login_device_code_clear(NULL);
}

static void test_device_code_refuses(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		const char *err;
	} cases[] = {
		{ "{\"user_code\":\"U\",\"interval\":\"1\"}", "missing field `device_auth_id`" },
		{ "{\"device_auth_id\":\"d\",\"interval\":\"1\"}", "missing field `user_code`" },
		{ "{\"device_auth_id\":\"d\",\"user_code\":5}", "missing field `user_code`" },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":\"soon\"}",
		  "invalid interval" },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":\"-1\"}", "invalid interval" },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":-1}", "invalid interval" },
		{ "{\"device_auth_id\":\"d\",\"user_code\":\"U\",\"interval\":1.5}", "invalid interval" },
		{ "[1]", "expected a JSON object" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		LoginDeviceCode code;
		char err[128] = "";
		assert_int_equal(login_parse_device_code(cases[i].body, &code, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, cases[i].err);
		assert_null(code.device_auth_id);
	}
	LoginDeviceCode code;
	char err[128] = "";
	assert_int_equal(login_parse_device_code("not json", &code, err, sizeof(err)), -EINVAL);
	assert_true(err[0] != '\0');
}

static void test_callback_error_message(void **state)
{
	(void)state;
	char out[256];
	login_callback_error_message("access_denied", "User denied", out, sizeof(out));
	assert_string_equal(out, "Sign-in failed: User denied");
	login_callback_error_message("server_error", NULL, out, sizeof(out));
	assert_string_equal(out, "Sign-in failed: server_error");
	login_callback_error_message("server_error", "  ", out, sizeof(out));
	assert_string_equal(out, "Sign-in failed: server_error");
	login_callback_error_message("access_denied", "MISSING_CODEX_ENTITLEMENT for this user", out,
				     sizeof(out));
	assert_string_equal(
		out, "Codex is not enabled for your workspace. Contact your workspace administrator to "
		     "request access to Codex.");
	login_callback_error_message("other", "missing_codex_entitlement", out, sizeof(out));
	assert_string_equal(out, "Sign-in failed: missing_codex_entitlement");
}

static void test_token_error_detail(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "{\"error\":\"invalid_grant\",\"error_description\":\"code expired\"}", "code expired" },
		{ "{\"error\":{\"code\":\"bad\",\"message\":\"the message\"}}", "the message" },
		{ "{\"error\":\"invalid_grant\"}", "invalid_grant" },
		{ "{\"error\":{\"code\":\"bad_code\"}}", "bad_code" },
		{ "{\"error\":\" \",\"error_description\":\"\"}",
		  "{\"error\":\" \",\"error_description\":\"\"}" },
		{ "  plain words \n", "plain words" },
		{ "", "unknown error" },
		{ " \r\n", "unknown error" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		login_token_error_detail(cases[i][0], out, sizeof(out));
		assert_string_equal(out, cases[i][1]);
	}
}

static void test_status_text(void **state)
{
	(void)state;
	char out[64];
	login_status_text(400, out, sizeof(out));
	assert_string_equal(out, "400 Bad Request");
	login_status_text(500, out, sizeof(out));
	assert_string_equal(out, "500 Internal Server Error");
	login_status_text(599, out, sizeof(out));
	assert_string_equal(out, "599 <unknown status code>");
}

/* ---- the callback server on a real loop ---------------------------------------------------- */

typedef struct Fixture {
	char home[64];
	uv_loop_t loop;
	Creds *creds;
	Login *login;
	int started_status;
	char started_message[256];
	char login_id[LOGIN_ID_LEN + 1];
	char auth_url[2048];
	int completions;
	bool completed_success;
	char completed_error[256];
} Fixture;

static void fixture_on_completed(void *ctx, const char *login_id, bool success, const char *error)
{
	Fixture *f = ctx;
	f->completions++;
	f->completed_success = success;
	snprintf(f->completed_error, sizeof(f->completed_error), "%s", error ? error : "");
	assert_string_equal(login_id, f->login_id);
}

static void fixture_on_started(void *ctx, int status, json_t *result, const char *message)
{
	Fixture *f = ctx;
	f->started_status = status;
	snprintf(f->started_message, sizeof(f->started_message), "%s", message ? message : "");
	if (status == 0) {
		snprintf(f->login_id, sizeof(f->login_id), "%s",
			 json_string_value(json_object_get(result, "loginId")));
		snprintf(f->auth_url, sizeof(f->auth_url), "%s",
			 json_string_value(json_object_get(result, "authUrl")));
	}
}

static int fixture_setup(void **state)
{
	Fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->home, sizeof(f->home), "/tmp/login_test.XXXXXX");
	assert_non_null(mkdtemp(f->home));
	assert_int_equal(uv_loop_init(&f->loop), 0);
	StorePaths paths;
	assert_int_equal(store_paths(f->home, &paths), 0);
	CredsOptions copts = { .request_timeout_ms = 1000,
			       .lock_timeout_ms = 1000,
			       .refresh_attempts = 1,
			       .retry_base_ms = 10,
			       .background_retry_max_ms = 1000 };
	snprintf(copts.refresh_url, sizeof(copts.refresh_url), "http://127.0.0.1:9/oauth/token");
	assert_int_equal(creds_new(&f->loop, &paths, &copts, NULL, NULL, &f->creds), 0);
	/* An issuer nobody listens on: these tests never get as far as the exchange. */
	LoginOptions lopts = {
		.port = 0, .timeout_s = 600, .device_timeout_s = 900, .request_timeout_ms = 1000
	};
	snprintf(lopts.issuer, sizeof(lopts.issuer), "http://127.0.0.1:9");
	snprintf(lopts.token_url, sizeof(lopts.token_url), "http://127.0.0.1:9/oauth/token");
	snprintf(lopts.client_id, sizeof(lopts.client_id), "app_test");
	assert_int_equal(login_new(&f->loop, f->creds, &lopts, fixture_on_completed, f, &f->login), 0);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	Fixture *f = *state;
	login_stop(f->login);
	creds_stop(f->creds);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	char lock[128];
	snprintf(lock, sizeof(lock), "%s/auth.json.lock", f->home);
	unlink(lock);
	rmdir(f->home);
	free(f);
	return 0;
}

/* The port and state in the authorize URL. */
static int url_port(const char *url)
{
	const char *p = strstr(url, "redirect_uri=http%3A%2F%2F127.0.0.1%3A");
	assert_non_null(p);
	return atoi(p + strlen("redirect_uri=http%3A%2F%2F127.0.0.1%3A"));
}

static void url_state(const char *url, char *out, size_t out_len)
{
	const char *p = strstr(url, "&state=");
	assert_non_null(p);
	p += strlen("&state=");
	snprintf(out, out_len, "%.*s", (int)strcspn(p, "&"), p);
}

typedef struct Client {
	int port;
	const char *request;
	size_t request_len;
	char response[8192];
	atomic_bool is_done;
} Client;

static void *client_run(void *arg)
{
	Client *c = arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	size_t got = 0;
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		for (size_t sent = 0; sent < c->request_len;) {
			ssize_t n = send(fd, c->request + sent, c->request_len - sent, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			sent += (size_t)n;
		}
		ssize_t n;
		while (got + 1 < sizeof(c->response) &&
		       (n = recv(fd, c->response + got, sizeof(c->response) - 1 - got, 0)) > 0)
			got += (size_t)n;
	}
	c->response[got] = '\0';
	if (fd >= 0)
		close(fd);
	atomic_store(&c->is_done, true);
	return NULL;
}

/* Send @request to the callback server while the loop runs; the answer lands in @c->response. */
static void client_exchange(Fixture *f, Client *c, int port, const char *request, size_t request_len)
{
	memset(c, 0, sizeof(*c));
	c->port = port;
	c->request = request;
	c->request_len = request_len;
	atomic_init(&c->is_done, false);
	pthread_t thread;
	assert_int_equal(pthread_create(&thread, NULL, client_run, c), 0);
	const struct timespec nap = { 0, 1000000 };
	for (int i = 0; i < 5000 && !atomic_load(&c->is_done); i++) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		nanosleep(&nap, NULL);
	}
	pthread_join(thread, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void start_browser(Fixture *f)
{
	login_start(f->login, "chatgpt", "test_originator", fixture_on_started, f);
	assert_int_equal(f->started_status, 0);
	assert_non_null(strstr(f->auth_url,
			       "http://127.0.0.1:9/oauth/authorize?response_type=code&client_id=app_test"));
	assert_non_null(strstr(f->auth_url, "&originator=test_originator"));
	assert_int_equal(strlen(f->login_id), LOGIN_ID_LEN);
	assert_int_equal(f->login_id[14], '4'); /* a version 4 UUID */
}

static bool port_accepts(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool is_open = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	close(fd);
	return is_open;
}

static void test_server_refuses_a_wrong_state_and_waits_on(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	int port = url_port(f->auth_url);
	Client c;
	static const char wrong[] = "GET /auth/callback?code=abc&state=not-it HTTP/1.1\r\nHost: x\r\n\r\n";
	client_exchange(f, &c, port, wrong, strlen(wrong));
	assert_non_null(strstr(c.response, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(c.response, "\r\n\r\nState mismatch"));
	static const char missing[] = "GET /auth/callback?code=abc HTTP/1.1\r\n\r\n";
	client_exchange(f, &c, port, missing, strlen(missing));
	assert_non_null(strstr(c.response, "State mismatch"));
	static const char other[] = "GET /elsewhere HTTP/1.1\r\n\r\n";
	client_exchange(f, &c, port, other, strlen(other));
	assert_non_null(strstr(c.response, "HTTP/1.1 404 Not Found\r\n"));
	static const char post[] = "POST /auth/callback HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
	client_exchange(f, &c, port, post, strlen(post));
	assert_non_null(strstr(c.response, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_int_equal(f->completions, 0);
	assert_true(port_accepts(port));
}

static void test_server_callback_error_ends_the_login(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	int port = url_port(f->auth_url);
	char st[128], request[512];
	url_state(f->auth_url, st, sizeof(st));
	snprintf(request, sizeof(request),
		 "GET /auth/callback?state=%s&error=access_denied&error_description=User+%%3Cb%%3Edenied "
		 "HTTP/1.1\r\n\r\n",
		 st);
	Client c;
	client_exchange(f, &c, port, request, strlen(request));
	assert_non_null(strstr(c.response, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(c.response, "Sign-in failed: User &lt;b&gt;denied"));
	assert_int_equal(f->completions, 1);
	assert_false(f->completed_success);
	assert_string_equal(f->completed_error, "Login server error: Sign-in failed: User <b>denied");
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_false(port_accepts(port));
	assert_false(login_cancel(f->login, f->login_id));
}

static void test_server_missing_code_ends_the_login(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	char st[128], request[512];
	url_state(f->auth_url, st, sizeof(st));
	snprintf(request, sizeof(request), "GET /auth/callback?state=%s&code= HTTP/1.1\r\n\r\n", st);
	Client c;
	client_exchange(f, &c, url_port(f->auth_url), request, strlen(request));
	assert_non_null(strstr(c.response, "Missing authorization code. Sign-in could not be completed."));
	assert_int_equal(f->completions, 1);
	assert_string_equal(
		f->completed_error,
		"Login server error: Missing authorization code. Sign-in could not be completed.");
}

static void test_server_cancel_path(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	int port = url_port(f->auth_url);
	static const char cancel[] = "GET /cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	Client c;
	client_exchange(f, &c, port, cancel, strlen(cancel));
	assert_non_null(strstr(c.response, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(c.response, "\r\n\r\nLogin cancelled"));
	assert_int_equal(f->completions, 1);
	assert_string_equal(f->completed_error, "Login server error: Login cancelled");
	assert_false(port_accepts(port));
}

static void test_server_bounds_the_request_head(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	size_t len = 20000;
	char *big = malloc(len);
	assert_non_null(big);
	memcpy(big, "GET /auth/callback?", 19);
	memset(big + 19, 'a', len - 19);
	Client c;
	client_exchange(f, &c, url_port(f->auth_url), big, len);
	free(big);
	assert_non_null(strstr(c.response, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
	assert_int_equal(f->completions, 0);
}

static void test_cancel_active_frees_the_port_at_once(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	int port = url_port(f->auth_url);
	assert_false(login_cancel(f->login, "00000000-0000-4000-8000-000000000000"));
	login_cancel_active(f->login);
	assert_int_equal(f->completions, 1);
	assert_string_equal(f->completed_error, "Login server error: Login was not completed");
	/* Closed before login_cancel_active() returned, without running the loop. */
	assert_false(port_accepts(port));
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
}

static void test_a_new_login_cancels_the_first(void **state)
{
	Fixture *f = *state;
	start_browser(f);
	char first[LOGIN_ID_LEN + 1];
	snprintf(first, sizeof(first), "%s", f->login_id);
	int first_port = url_port(f->auth_url);
	login_start(f->login, "chatgpt", "o", fixture_on_started, f);
	assert_int_equal(f->started_status, 0);
	/* The first one's completion was checked against the id then current: the first's. */
	assert_int_equal(f->completions, 1);
	assert_false(f->completed_success);
	assert_string_equal(f->completed_error, "Login server error: Login was not completed");
	assert_string_not_equal(first, f->login_id);
	assert_false(login_cancel(f->login, first));
	assert_false(port_accepts(first_port) && first_port != url_port(f->auth_url));
	assert_true(login_cancel(f->login, f->login_id));
	assert_int_equal(f->completions, 2);
}

static void test_device_code_start_fails_without_an_issuer(void **state)
{
	Fixture *f = *state;
	login_start(f->login, "chatgptDeviceCode", "o", fixture_on_started, f);
	for (int i = 0; i < 2000 && f->started_status == 0 && !f->started_message[0]; i++)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(f->started_status, -EIO);
	assert_true(strncmp(f->started_message, "failed to request device code: ", 31) == 0);
	assert_int_equal(f->completions, 0);
}

static void test_unknown_type(void **state)
{
	Fixture *f = *state;
	login_start(f->login, "password", "o", fixture_on_started, f);
	assert_int_equal(f->started_status, -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pkce_rfc7636_example),
		cmocka_unit_test(test_pkce_refuses_a_short_buffer),
		cmocka_unit_test(test_authorize_url),
		cmocka_unit_test(test_authorize_url_escapes_the_originator),
		cmocka_unit_test(test_parse_request),
		cmocka_unit_test(test_parse_request_refuses),
		cmocka_unit_test(test_query_code_state_error),
		cmocka_unit_test(test_query_percent_decoding),
		cmocka_unit_test(test_query_edges),
		cmocka_unit_test(test_device_code_interval_as_string_and_number),
		cmocka_unit_test(test_device_code_user_code_or_usercode),
		cmocka_unit_test(test_device_code_refuses),
		cmocka_unit_test(test_callback_error_message),
		cmocka_unit_test(test_token_error_detail),
		cmocka_unit_test(test_status_text),
		cmocka_unit_test_setup_teardown(test_server_refuses_a_wrong_state_and_waits_on, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_server_callback_error_ends_the_login, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_server_missing_code_ends_the_login, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_server_cancel_path, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_server_bounds_the_request_head, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_active_frees_the_port_at_once, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_a_new_login_cancels_the_first, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_device_code_start_fails_without_an_issuer, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type, fixture_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
