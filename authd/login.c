/* SPDX-License-Identifier: MIT */
/*
 * login.c - the ChatGPT sign-in flows, as the reference runs them (§6.4).
 *
 * Browser: PKCE and a random state, a loopback HTTP server on 127.0.0.1 for the issuer's redirect
 * to /auth/callback, the code exchanged at the token endpoint. Device code: a user code from the
 * issuer, then a poll until the user has approved it, then the same exchange. Either way the new
 * tokens are stored through creds_replace() before the attempt reports success.
 *
 * One attempt is active at a time; a new one, a logout or the shutdown cancels it. Everything
 * runs on the daemon's loop except the HTTP requests, which run on libuv's worker threads with a
 * cancel flag. An attempt is freed once its handles are closed and its jobs are back. Nothing
 * here logs a code, a verifier, a state or a token.
 */
#include "login.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base64.h"
#include "hex.h"
#include "http.h"
#include "log.h"

#define LOGIN_DEFAULT_PORT 1455
#define LOGIN_FALLBACK_PORT 1457 /* the other redirect port the issuer accepts, as the reference */
#define LOGIN_BIND_TRIES 5	 /* per port, LOGIN_BIND_RETRY_MS apart: about a second */
#define LOGIN_BIND_RETRY_MS 200
#define LOGIN_VERIFIER_BYTES 64
#define LOGIN_STATE_BYTES 32
#define LOGIN_MAX_HEAD_BYTES 8192u /* a callback's request head; browsers send 1-2 KiB */
#define LOGIN_MAX_CONNS 8	   /* open callback connections; the oldest idle one gives way */
#define LOGIN_MAX_PARAM_BYTES 4096 /* a decoded code, state or error */
#define LOGIN_MIN_POLL_MS 200	   /* an interval of 0 must not become a hot loop against the issuer */
#define LOGIN_MAX_INTERVAL_S 3600u
#define LOGIN_REVOKE_TIMEOUT_MS 10000 /* the reference's REVOKE_HTTP_TIMEOUT */

static const char login_persist_error[] = "Sign-in completed but credentials could not be saved locally.";

typedef enum LoginKind {
	LOGIN_KIND_BROWSER,
	LOGIN_KIND_DEVICE,
} LoginKind;

typedef enum LoginPhase {
	LOGIN_PHASE_STARTING,	/* binding the port or asking for a user code; login_start() unanswered */
	LOGIN_PHASE_WAITING,	/* for the browser's callback, or polling for the user's approval */
	LOGIN_PHASE_EXCHANGING, /* the code is being exchanged for tokens */
	LOGIN_PHASE_STORING,	/* the tokens are being written: a cancel no longer undoes the login */
	LOGIN_PHASE_DONE,	/* the outcome is reported */
} LoginPhase;

typedef enum LoginJobKind {
	LOGIN_JOB_USERCODE,
	LOGIN_JOB_POLL,
	LOGIN_JOB_EXCHANGE,
	LOGIN_JOB_API_KEY,
	LOGIN_JOB_REVOKE,
} LoginJobKind;

typedef struct LoginAttempt LoginAttempt;

/* One HTTP request on a worker thread; the worker touches nothing but the job. */
typedef struct LoginJob {
	uv_work_t work;
	Login *login;
	LoginAttempt *attempt; /* NULL for a revoke, which outlives any attempt */
	LoginJobKind kind;
	char *url;
	char *body; /* carries codes, verifiers or tokens: wiped when freed */
	const char *content_type;
	int timeout_ms;
	atomic_bool cancel;
	const volatile bool *cancel_flag; /* &cancel, or the Login's stop flag for a revoke */
	bool is_refresh_token;		  /* a revoke: which kind of token it sends */
	int rc;
	HttpResponse resp;
} LoginJob;

/* One connection to the callback server: one request, one answer, closed. */
typedef struct LoginConn {
	uv_tcp_t tcp;
	uv_write_t write;
	uv_shutdown_t shutdown;
	LoginAttempt *attempt;
	struct LoginConn *next;
	char *reply;
	size_t head_len;
	bool is_answering;
	char head[LOGIN_MAX_HEAD_BYTES + 1];
} LoginConn;

struct LoginAttempt {
	Login *login;
	LoginAttempt *next; /* in login->attempts */
	LoginKind kind;
	LoginPhase phase;
	unsigned refs; /* one for not being done, one per open handle, job and store */
	bool is_superseded_refresh;
	LoginOptions opts;
	LoginStartedFn started; /* NULL once called */
	void *started_ctx;
	uv_timer_t deadline;
	uv_timer_t tick;	/* bind retries (browser), the poll interval (device) */
	LoginJob *job;		/* the request in flight */
	json_t *pending_doc;	/* the new auth.json while the API key is asked for */
	char *superseded_token; /* the replaced credential's token, revoked once the new one is stored */
	char id[LOGIN_ID_LEN + 1];
	char originator[129];
	/* Browser */
	uv_tcp_t listener;
	uv_tcp_t probe; /* GET /cancel to an older login server holding the port */
	uv_connect_t probe_connect;
	uv_write_t probe_write;
	LoginConn *conns;
	LoginConn *exchange_conn; /* the callback waiting for the exchange's outcome */
	unsigned conn_count;
	int bind_port;
	int bind_tries;
	bool has_listener;
	bool has_probe;
	bool has_sent_cancel;
	char probe_request[128];
	char probe_buf[64];
	char verifier[LOGIN_VERIFIER_BYTES * 2];
	char challenge[LOGIN_CHALLENGE_LEN + 1];
	char state[LOGIN_STATE_BYTES * 2];
	char redirect_uri[64];
	/* Device code */
	LoginDeviceCode device;
};

struct Login {
	uv_loop_t *loop;
	Creds *creds;
	LoginOptions opts;
	LoginCompletedFn on_completed;
	void *ctx;
	LoginAttempt *active;
	LoginAttempt *attempts; /* every attempt not yet freed */
	unsigned live;		/* attempts not yet freed and revokes in flight */
	bool is_stopped;
	atomic_bool stopping; /* the cancel flag of revokes */
};

/* -------------------------------------------------------------------------------------------
 * Small helpers */

static int login_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* @n random bytes as unpadded base64url: verifiers and states. */
static int login_random_text(size_t n, char *out, size_t out_len)
{
	uint8_t bytes[LOGIN_VERIFIER_BYTES];
	if (n > sizeof(bytes) || out_len < (4 * n + 2) / 3 + 1 || login_random(bytes, n) < 0)
		return -EIO;
	base64url_encode(bytes, n, out);
	OPENSSL_cleanse(bytes, sizeof(bytes));
	return 0;
}

static int login_uuid_v4(char out[LOGIN_ID_LEN + 1])
{
	uint8_t b[16];
	if (login_random(b, sizeof(b)) < 0)
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, LOGIN_ID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
		 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

static int64_t login_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool login_is_success(long status)
{
	return status >= 200 && status < 300;
}

static char *login_strdup_printf(const char *fmt, const char *a, const char *b)
{
	char *out = NULL;
	return asprintf(&out, fmt, a, b) < 0 ? NULL : out;
}

/* Free text that carried a secret, wiped first. */
static void login_free_secret(char *text)
{
	if (text) {
		OPENSSL_cleanse(text, strlen(text));
		free(text);
	}
}

static const char *login_reason_phrase(long status)
{
	static const struct {
		long status;
		const char *phrase;
	} phrases[] = {
		{ 200, "OK" },
		{ 201, "Created" },
		{ 202, "Accepted" },
		{ 204, "No Content" },
		{ 301, "Moved Permanently" },
		{ 302, "Found" },
		{ 303, "See Other" },
		{ 304, "Not Modified" },
		{ 307, "Temporary Redirect" },
		{ 308, "Permanent Redirect" },
		{ 400, "Bad Request" },
		{ 401, "Unauthorized" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 409, "Conflict" },
		{ 410, "Gone" },
		{ 413, "Payload Too Large" },
		{ 415, "Unsupported Media Type" },
		{ 422, "Unprocessable Entity" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 501, "Not Implemented" },
		{ 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
	};
	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		if (phrases[i].status == status)
			return phrases[i].phrase;
	return NULL;
}

void login_status_text(long status, char *out, size_t out_len)
{
	const char *phrase = login_reason_phrase(status);
	snprintf(out, out_len, "%ld %s", status, phrase ? phrase : "<unknown status code>");
}

/* -------------------------------------------------------------------------------------------
 * PKCE, the authorize URL, the callback's request */

int login_pkce_challenge(const char *verifier, char *out, size_t out_len)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	if (out_len < LOGIN_CHALLENGE_LEN + 1 ||
	    EVP_Digest(verifier, strlen(verifier), digest, &digest_len, EVP_sha256(), NULL) != 1 ||
	    digest_len != 32)
		return -EIO;
	base64url_encode(digest, digest_len, out);
	return 0;
}

/* Form encoding (application/x-www-form-urlencoded), as the reference's query and bodies are
 * written: alphanumerics and *-._ stay, a space is '+', every other byte is %XX. */
static char *login_form_escape(const char *text)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(text) * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (isalnum(*p) || strchr("*-._", *p)) {
			*o++ = (char)*p;
		} else if (*p == ' ') {
			*o++ = '+';
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* "k1=v1&k2=v2..." of @count pairs, each value form-encoded; malloc'd, or NULL. */
static char *login_form_join(const char *const (*pairs)[2], size_t count)
{
	size_t len = 1;
	char **values = calloc(count, sizeof(*values));
	bool is_ok = values != NULL;
	for (size_t i = 0; is_ok && i < count; i++) {
		values[i] = login_form_escape(pairs[i][1]);
		is_ok = values[i] != NULL;
		if (is_ok)
			len += strlen(pairs[i][0]) + strlen(values[i]) + 2;
	}
	char *out = is_ok ? malloc(len) : NULL, *o = out;
	for (size_t i = 0; out && i < count; i++)
		o += sprintf(o, "%s%s=%s", i == 0 ? "" : "&", pairs[i][0], values[i]);
	if (out && count == 0)
		*out = '\0';
	for (size_t i = 0; values && i < count; i++)
		login_free_secret(values[i]);
	free(values);
	return out;
}

char *login_authorize_url(const char *issuer, const char *client_id, const char *redirect_uri,
			  const char *challenge, const char *state, const char *originator)
{
	/* The parameters in the order 0.169 sends them. */
	const char *const params[][2] = {
		{ "response_type", "code" },
		{ "client_id", client_id },
		{ "redirect_uri", redirect_uri },
		{ "code_challenge", challenge },
		{ "code_challenge_method", "S256" },
		{ "state", state },
		{ "scope", "openid profile email offline_access api.connectors.read api.connectors.invoke" },
		{ "id_token_add_organizations", "true" },
		{ "codex_cli_simplified_flow", "true" },
		{ "originator", originator },
	};
	char *query = login_form_join(params, sizeof(params) / sizeof(params[0]));
	char *url = query ? login_strdup_printf("%s/oauth/authorize?%s", issuer, query) : NULL;
	free(query);
	return url;
}

static bool login_is_token_char(char c)
{
	return c > ' ' && c < 0x7f;
}

int login_parse_request(const char *head, size_t len, LoginRequest *out)
{
	const char *eol = memmem(head, len, "\r\n", 2);
	if (!eol)
		return -EINVAL;
	const char *method = head, *sp1 = memchr(head, ' ', (size_t)(eol - head));
	if (!sp1 || sp1 == method)
		return -EINVAL;
	const char *target = sp1 + 1, *sp2 = memchr(target, ' ', (size_t)(eol - target));
	if (!sp2 || sp2 == target || *target != '/')
		return -EINVAL;
	const char *version = sp2 + 1;
	size_t version_len = (size_t)(eol - version);
	if (version_len != 8 || (memcmp(version, "HTTP/1.1", 8) != 0 && memcmp(version, "HTTP/1.0", 8) != 0))
		return -EINVAL;
	for (const char *p = method; p < sp1; p++)
		if (!isupper((unsigned char)*p))
			return -EINVAL;
	for (const char *p = target; p < sp2; p++)
		if (!login_is_token_char(*p))
			return -EINVAL;
	if (sp1 - method != 3 || memcmp(method, "GET", 3) != 0)
		return -EOPNOTSUPP;
	const char *mark = memchr(target, '?', (size_t)(sp2 - target));
	out->path = target;
	out->path_len = (size_t)((mark ? mark : sp2) - target);
	out->query = mark ? mark + 1 : sp2;
	out->query_len = mark ? (size_t)(sp2 - mark - 1) : 0;
	return 0;
}

/* Form-decode @len bytes of @in into @out. Return: 0, -EINVAL, or -ENOBUFS. */
static int login_form_decode(const char *in, size_t len, char *out, size_t out_len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)in[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 2 < len ? hex_digit_value(in[i + 1]) : -1;
			int lo = hi < 0 ? -1 : hex_digit_value(in[i + 2]);
			/* A broken escape, or an encoded NUL a C string cannot carry. */
			if (lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o + 1 >= out_len)
			return -ENOBUFS;
		out[o++] = (char)c;
	}
	if (out_len == 0)
		return -ENOBUFS;
	out[o] = '\0';
	return 0;
}

int login_query_param(const char *query, size_t len, const char *key, char *out, size_t out_len)
{
	int found = 0;
	size_t key_len = strlen(key);
	for (size_t start = 0; start < len;) {
		const char *seg = query + start;
		const char *amp = memchr(seg, '&', len - start);
		size_t seg_len = amp ? (size_t)(amp - seg) : len - start;
		start += seg_len + 1;
		const char *eq = memchr(seg, '=', seg_len);
		size_t name_len = eq ? (size_t)(eq - seg) : seg_len;
		char name[64];
		/* A name that does not decode, or is too long, is not one of ours. */
		if (seg_len == 0 || login_form_decode(seg, name_len, name, sizeof(name)) < 0 ||
		    strlen(name) != key_len || memcmp(name, key, key_len) != 0)
			continue;
		const char *value = eq ? eq + 1 : seg + seg_len;
		int rc = login_form_decode(value, (size_t)(seg + seg_len - value), out, out_len);
		if (rc < 0)
			return rc;
		found = 1; /* the last one wins, as the reference's map of the query has it */
	}
	return found;
}

void login_callback_error_message(const char *code, const char *description, char *out, size_t out_len)
{
	bool has_description = description && strspn(description, " \t\r\n") < strlen(description);
	if (strcmp(code, "access_denied") == 0 && description &&
	    strcasestr(description, "missing_codex_entitlement")) {
		snprintf(out, out_len,
			 "Codex is not enabled for your workspace. Contact your workspace "
			 "administrator to request access to Codex.");
		return;
	}
	snprintf(out, out_len, "Sign-in failed: %s", has_description ? description : code);
}

static bool login_is_blank(const char *text)
{
	return !text || strspn(text, " \t\r\n") == strlen(text);
}

static const char *login_json_nonblank(json_t *obj, const char *key)
{
	const char *text = json_string_value(json_object_get(obj, key));
	return login_is_blank(text) ? NULL : text;
}

void login_token_error_detail(const char *body, char *out, size_t out_len)
{
	size_t lead = strspn(body, " \t\r\n");
	size_t len = strlen(body + lead);
	while (len > 0 && strchr(" \t\r\n", body[lead + len - 1]))
		len--;
	if (len == 0) {
		snprintf(out, out_len, "unknown error");
		return;
	}
	json_t *doc = json_loadb(body + lead, len, 0, NULL);
	json_t *error = json_object_get(doc, "error");
	const char *code = login_json_nonblank(doc, "error");
	if (!code)
		code = login_json_nonblank(error, "code");
	const char *detail = login_json_nonblank(doc, "error_description");
	if (!detail)
		detail = login_json_nonblank(error, "message");
	if (!detail)
		detail = code;
	if (detail)
		snprintf(out, out_len, "%s", detail);
	else
		snprintf(out, out_len, "%.*s", (int)len, body + lead);
	json_decref(doc);
}

/* -------------------------------------------------------------------------------------------
 * The issuer's answers */

/* A u64 as the reference's interval takes it (a string of digits, trimmed), or a JSON number. */
static int login_parse_interval(json_t *value, unsigned *out)
{
	unsigned long long n;
	if (!value || json_is_null(value)) {
		*out = 0;
		return 0;
	}
	if (json_is_integer(value)) {
		if (json_integer_value(value) < 0)
			return -EINVAL;
		n = (unsigned long long)json_integer_value(value);
	} else if (json_is_string(value)) {
		const char *text = json_string_value(value);
		text += strspn(text, " \t\r\n");
		char *end;
		errno = 0;
		if (!isdigit((unsigned char)*text))
			return -EINVAL;
		n = strtoull(text, &end, 10);
		if (errno || strspn(end, " \t\r\n") != strlen(end))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	*out = n > LOGIN_MAX_INTERVAL_S ? LOGIN_MAX_INTERVAL_S : (unsigned)n;
	return 0;
}

int login_parse_device_code(const char *body, LoginDeviceCode *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	json_error_t jerr;
	json_t *doc = json_loads(body, 0, &jerr);
	int rc = -EINVAL;
	const char *id = json_string_value(json_object_get(doc, "device_auth_id"));
	json_t *code = json_object_get(doc, "user_code");
	if (!code)
		code = json_object_get(doc, "usercode");
	if (!json_is_object(doc))
		snprintf(err, err_len, "%s", doc ? "expected a JSON object" : jerr.text);
	else if (!id)
		snprintf(err, err_len, "missing field `device_auth_id`");
	else if (!json_is_string(code))
		snprintf(err, err_len, "missing field `user_code`");
	else if (login_parse_interval(json_object_get(doc, "interval"), &out->interval_s) < 0)
		snprintf(err, err_len, "invalid interval");
	else
		rc = 0;
	if (rc == 0) {
		out->device_auth_id = strdup(id);
		out->user_code = strdup(json_string_value(code));
		if (!out->device_auth_id || !out->user_code) {
			login_device_code_clear(out);
			snprintf(err, err_len, "out of memory");
			rc = -ENOMEM;
		}
	}
	json_decref(doc);
	return rc;
}

void login_device_code_clear(LoginDeviceCode *code)
{
	if (code) {
		free(code->device_auth_id);
		free(code->user_code);
		memset(code, 0, sizeof(*code));
	}
}

/*
 * The auth.json document of a fresh ChatGPT login, as 0.169 writes it: the tokens, where they
 * came from (a refresh goes back to that issuer), a random login_owner_id, the id token's account.
 */
static json_t *login_auth_doc(const LoginOptions *opts, const char *id_token, const char *access_token,
			      const char *refresh_token)
{
	char owner[64], now[64];
	json_t *claims = store_jwt_claims(id_token);
	if (!claims || login_random_text(32, owner, sizeof(owner)) < 0) {
		json_decref(claims);
		return NULL; /* the reference cannot parse the id token either: nothing is stored */
	}
	const char *account = json_string_value(json_object_get(
		json_object_get(claims, "https://api.openai.com/auth"), "chatgpt_account_id"));
	store_format_time(login_now_ns(), now, sizeof(now));
	json_t *doc = json_pack("{s:s,s:n,s:{s:s,s:s,s:s,s:{s:s,s:s},s:s,s:s?},s:s}", "auth_mode", "chatgpt",
				"OPENAI_API_KEY", "tokens", "id_token", id_token, "access_token",
				access_token, "refresh_token", refresh_token, "oauth_provenance", "issuer",
				opts->issuer, "client_id", opts->client_id, "login_owner_id", owner,
				"account_id", account, "last_refresh", now);
	json_decref(claims);
	return doc;
}

/* -------------------------------------------------------------------------------------------
 * Jobs: one HTTP request each on a worker thread */

static void login_job_free(LoginJob *job)
{
	if (!job)
		return;
	free(job->url);
	login_free_secret(job->body);
	if (job->resp.body)
		OPENSSL_cleanse(job->resp.body, job->resp.body_len);
	http_response_clear(&job->resp);
	free(job);
}

static LoginJob *login_job_new(Login *login, LoginAttempt *a, LoginJobKind kind, char *url, char *body,
			       const char *content_type, int timeout_ms)
{
	LoginJob *job = url && body ? calloc(1, sizeof(*job)) : NULL;
	if (!job) {
		free(url);
		login_free_secret(body);
		return NULL;
	}
	job->login = login;
	job->attempt = a;
	job->kind = kind;
	job->url = url;
	job->body = body;
	job->content_type = content_type;
	job->timeout_ms = timeout_ms;
	atomic_init(&job->cancel, false);
	job->cancel_flag = a ? (const volatile bool *)&job->cancel : (const volatile bool *)&login->stopping;
	return job;
}

static void login_job_work(uv_work_t *work)
{
	LoginJob *job = work->data;
	job->rc = http_request("POST", job->url, job->content_type, job->body, strlen(job->body),
			       job->timeout_ms, job->cancel_flag, &job->resp);
}

/* Why a request got no answer, for a message. */
static const char *login_job_error(const LoginJob *job)
{
	if (job->rc == -ECANCELED)
		return "request cancelled";
	return job->resp.error[0] ? job->resp.error : strerror(-job->rc);
}

static void login_job_after(uv_work_t *work, int status);

static int login_job_queue(Login *login, LoginJob *job)
{
	job->work.data = job;
	(void)http_prepare(); /* on the loop thread; a failure to load is the request's to report */
	int rc = uv_queue_work(login->loop, &job->work, login_job_work, login_job_after);
	if (rc < 0) {
		log_error("cannot start a worker: %s", uv_strerror(rc));
		login_job_free(job);
		return -EIO;
	}
	return 0;
}

/* -------------------------------------------------------------------------------------------
 * Attempts: life cycle */

static void login_maybe_free(Login *login)
{
	if (login->is_stopped && login->live == 0)
		free(login);
}

static void login_attempt_free(LoginAttempt *a)
{
	Login *login = a->login;
	for (LoginAttempt **p = &login->attempts; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			break;
		}
	}
	login_device_code_clear(&a->device);
	json_decref(a->pending_doc);
	login_free_secret(a->superseded_token);
	OPENSSL_cleanse(a->verifier, sizeof(a->verifier));
	OPENSSL_cleanse(a->state, sizeof(a->state));
	free(a);
	login->live--;
	login_maybe_free(login);
}

static void login_attempt_release(LoginAttempt *a)
{
	if (--a->refs == 0)
		login_attempt_free(a);
}

static void login_on_handle_closed(uv_handle_t *handle)
{
	login_attempt_release(handle->data);
}

static void login_close_handle(LoginAttempt *a, uv_handle_t *handle)
{
	if (!uv_is_closing(handle))
		uv_close(handle, login_on_handle_closed);
}

static void login_close_listener(LoginAttempt *a)
{
	if (a->has_listener) {
		a->has_listener = false;
		login_close_handle(a, (uv_handle_t *)&a->listener);
	}
}

static void login_close_probe(LoginAttempt *a)
{
	if (a->has_probe) {
		a->has_probe = false;
		login_close_handle(a, (uv_handle_t *)&a->probe);
	}
}

static void login_conn_close(LoginConn *conn);
static void login_conn_reply(LoginConn *conn, int status, const char *content_type, const char *body);
static void login_reply_error_page(LoginConn *conn, const char *message);

/* Give up the port and what waits on it; a connection being answered (or waiting for the
 * exchange's outcome) finishes its answer unless @is_closing_all. */
static void login_release_port(LoginAttempt *a, bool is_closing_all)
{
	login_close_listener(a);
	login_close_probe(a);
	uv_timer_stop(&a->tick);
	uv_timer_stop(&a->deadline);
	for (LoginConn *conn = a->conns, *next; conn; conn = next) {
		next = conn->next;
		if (is_closing_all || (!conn->is_answering && conn != a->exchange_conn))
			login_conn_close(conn);
	}
}

/* The attempt's outcome is known: tear down, then tell whoever waits. */
static void login_end(LoginAttempt *a)
{
	Login *login = a->login;
	a->phase = LOGIN_PHASE_DONE;
	if (login->active == a)
		login->active = NULL;
	if (a->job)
		atomic_store(&a->job->cancel, true);
	login_release_port(a, login->is_stopped);
	login_close_handle(a, (uv_handle_t *)&a->tick);
	login_close_handle(a, (uv_handle_t *)&a->deadline);
}

/* login_start() fails: @started hears it; no completion follows (the client has no login id). */
static void login_fail_start(LoginAttempt *a, int status, const char *message)
{
	LoginStartedFn started = a->started;
	a->started = NULL;
	log_warn("login %s could not start: %s", a->id, message);
	login_end(a);
	started(a->started_ctx, status, NULL, message);
	login_attempt_release(a);
}

/* The attempt ends: a browser still waiting on the callback gets a page; the client the event. */
static void login_finish(LoginAttempt *a, bool success, const char *error)
{
	if (a->phase == LOGIN_PHASE_DONE)
		return;
	if (a->phase == LOGIN_PHASE_STARTING) {
		login_fail_start(a, -ECANCELED, error);
		return;
	}
	if (a->exchange_conn)
		login_reply_error_page(a->exchange_conn, error);
	if (success)
		log_info("login %s succeeded", a->id);
	else
		log_warn("login %s failed: %s", a->id, error);
	login_end(a);
	a->login->on_completed(a->login->ctx, a->id, success, error);
	login_attempt_release(a);
}

static void login_on_deadline(uv_timer_t *timer);

static void login_started(LoginAttempt *a, json_t *result, int timeout_s)
{
	LoginStartedFn started = a->started;
	a->started = NULL;
	a->phase = LOGIN_PHASE_WAITING;
	uv_timer_start(&a->deadline, login_on_deadline, (uint64_t)timeout_s * 1000u, 0);
	log_info("login %s started (%s)", a->id, a->kind == LOGIN_KIND_BROWSER ? "browser" : "device code");
	started(a->started_ctx, 0, result, NULL);
}

static const char *login_cancel_message(const LoginAttempt *a)
{
	return a->kind == LOGIN_KIND_BROWSER ? "Login server error: Login was not completed"
					     : "Login was not completed";
}

/*
 * Cancel @a. Tokens already being stored are a login that happened: the port is given up and
 * the attempt stops being the active one, but it reports how the store went.
 */
static void login_cancel_attempt(LoginAttempt *a)
{
	if (a->phase == LOGIN_PHASE_STORING) {
		if (a->login->active == a)
			a->login->active = NULL;
		login_release_port(a, false);
		return;
	}
	if (a->phase == LOGIN_PHASE_STARTING)
		login_fail_start(a, -ECANCELED, "Login was not completed");
	else
		login_finish(a, false, login_cancel_message(a));
}

static void login_on_deadline(uv_timer_t *timer)
{
	LoginAttempt *a = timer->data;
	char message[128];
	/* An exchange under way has its own request timeout; its outcome is the attempt's. */
	if (a->phase != LOGIN_PHASE_WAITING)
		return;
	int n = a->opts.device_timeout_s, is_minutes = n % 60 == 0;
	if (is_minutes)
		n /= 60;
	/* The reference's words are for its fixed 15 minutes; another timeout is said the same way. */
	if (a->kind == LOGIN_KIND_BROWSER)
		snprintf(message, sizeof(message), "Login timed out");
	else
		snprintf(message, sizeof(message), "device auth timed out after %d %s%s", n,
			 is_minutes ? "minute" : "second", n == 1 ? "" : "s");
	login_finish(a, false, message);
}

static LoginAttempt *login_attempt_new(Login *login, LoginKind kind, const char *originator,
				       LoginStartedFn started, void *ctx)
{
	LoginAttempt *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	if (login_uuid_v4(a->id) < 0) {
		free(a);
		return NULL;
	}
	a->login = login;
	a->kind = kind;
	a->phase = LOGIN_PHASE_STARTING;
	a->opts = login->opts;
	snprintf(a->originator, sizeof(a->originator), "%s", originator ? originator : "codex_cli_rs");
	a->started = started;
	a->started_ctx = ctx;
	uv_timer_init(login->loop, &a->deadline);
	uv_timer_init(login->loop, &a->tick);
	a->deadline.data = a;
	a->tick.data = a;
	a->refs = 3; /* not done, two timers */
	a->next = login->attempts;
	login->attempts = a;
	login->live++;
	return a;
}

static int login_attempt_queue(LoginAttempt *a, LoginJobKind kind, char *url, char *body,
			       const char *content_type)
{
	LoginJob *job = login_job_new(a->login, a, kind, url, body, content_type, a->opts.request_timeout_ms);
	if (!job)
		return -ENOMEM;
	a->refs++;
	a->job = job;
	if (login_job_queue(a->login, job) < 0) {
		a->job = NULL;
		a->refs--; /* never below one here: the attempt is not done */
		return -EIO;
	}
	return 0;
}

/* A JSON body of string fields, for the device-code endpoints and the revoke. */
static char *login_json_body(json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	return text;
}

/* -------------------------------------------------------------------------------------------
 * The callback server's connections */

static void login_on_conn_closed(uv_handle_t *handle)
{
	LoginConn *conn = handle->data;
	LoginAttempt *a = conn->attempt;
	free(conn->reply);
	OPENSSL_cleanse(conn->head, sizeof(conn->head)); /* the callback's query carried the code */
	free(conn);
	login_attempt_release(a);
}

static void login_conn_close(LoginConn *conn)
{
	LoginAttempt *a = conn->attempt;
	if (uv_is_closing((uv_handle_t *)&conn->tcp))
		return;
	for (LoginConn **p = &a->conns; *p; p = &(*p)->next) {
		if (*p == conn) {
			*p = conn->next;
			a->conn_count--;
			break;
		}
	}
	if (a->exchange_conn == conn)
		a->exchange_conn = NULL;
	uv_close((uv_handle_t *)&conn->tcp, login_on_conn_closed);
}

static void login_conn_on_shutdown(uv_shutdown_t *req, int status)
{
	login_conn_close(req->data);
}

static void login_conn_on_written(uv_write_t *req, int status)
{
	LoginConn *conn = req->data;
	/* A FIN after the answer, not a reset: the browser reads the whole page. */
	conn->shutdown.data = conn;
	if (status < 0 || uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, login_conn_on_shutdown) < 0)
		login_conn_close(conn);
}

/* Answer @conn once and close it (one request per connection, as Connection: close says). */
static void login_conn_reply(LoginConn *conn, int status, const char *content_type, const char *body)
{
	LoginAttempt *a = conn->attempt;
	if (conn->is_answering || uv_is_closing((uv_handle_t *)&conn->tcp))
		return;
	conn->is_answering = true;
	if (a->exchange_conn == conn)
		a->exchange_conn = NULL;
	uv_read_stop((uv_stream_t *)&conn->tcp);
	char status_text[64];
	login_status_text(status, status_text, sizeof(status_text));
	int n = asprintf(
		&conn->reply,
		"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
		"Connection: close\r\n\r\n%s",
		status_text, content_type, strlen(body), body);
	if (n < 0) {
		conn->reply = NULL;
		login_conn_close(conn);
		return;
	}
	uv_buf_t buf = uv_buf_init(conn->reply, (unsigned)n);
	conn->write.data = conn;
	if (uv_write(&conn->write, (uv_stream_t *)&conn->tcp, &buf, 1, login_conn_on_written) < 0)
		login_conn_close(conn);
}

static void login_reply_text(LoginConn *conn, int status, const char *text)
{
	login_conn_reply(conn, status, "text/plain; charset=utf-8", text);
}

/* @text with HTML's special characters escaped; malloc'd, or NULL. */
static char *login_html_escape(const char *text)
{
	size_t len = 0;
	for (const char *p = text; *p; p++)
		len += strchr("&<>\"'", *p) ? 6 : 1;
	char *out = malloc(len + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = text; *p; p++) {
		switch (*p) {
		case '&':
			o = stpcpy(o, "&amp;");
			break;
		case '<':
			o = stpcpy(o, "&lt;");
			break;
		case '>':
			o = stpcpy(o, "&gt;");
			break;
		case '"':
			o = stpcpy(o, "&quot;");
			break;
		case '\'':
			o = stpcpy(o, "&#39;");
			break;
		default:
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* A page for the browser: its title (twice) and one paragraph, already escaped. */
#define LOGIN_PAGE_FORMAT                                                                                    \
	"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>"                 \
	"<style>body{font-family:system-ui,sans-serif;margin:4em auto;max-width:36em;padding:0 1em}</style>" \
	"</head><body><h1>%s</h1><p>%s</p></body></html>\n"

static void login_reply_page(LoginConn *conn, const char *title, const char *message)
{
	char *escaped = login_html_escape(message);
	char *page = NULL;
	if (!escaped || asprintf(&page, LOGIN_PAGE_FORMAT, title, title, escaped) < 0) {
		page = NULL;
		login_conn_close(conn);
	} else {
		/* The reference answers its pages with 200, failures included. */
		login_conn_reply(conn, 200, "text/html; charset=utf-8", page);
	}
	free(page);
	free(escaped);
}

static void login_reply_error_page(LoginConn *conn, const char *message)
{
	login_reply_page(conn, "Sign-in could not be completed", message);
}

static void login_reply_success_page(LoginConn *conn)
{
	login_reply_page(conn, "Signed in to Codex",
			 "You are signed in. You may close this page and return to Codex.");
}

/* -------------------------------------------------------------------------------------------
 * The code exchange and the store (both flows) */

static int login_exchange_start(LoginAttempt *a, const char *code, const char *redirect_uri,
				const char *verifier)
{
	/* The fields in the order 0.169 sends them. */
	const char *const fields[][2] = {
		{ "grant_type", "authorization_code" }, { "client_id", a->opts.client_id }, { "code", code },
		{ "redirect_uri", redirect_uri },	{ "code_verifier", verifier },
	};
	a->phase = LOGIN_PHASE_EXCHANGING;
	return login_attempt_queue(a, LOGIN_JOB_EXCHANGE, strdup(a->opts.token_url),
				   login_form_join(fields, sizeof(fields) / sizeof(fields[0])),
				   "application/x-www-form-urlencoded");
}

/* The exchange failed: @detail worded for the flow, as the reference's two flows word it. */
static void login_fail_exchange(LoginAttempt *a, const char *detail)
{
	char message[1200];
	if (a->kind == LOGIN_KIND_BROWSER) {
		snprintf(message, sizeof(message), "Token exchange failed: %s", detail);
		if (a->exchange_conn)
			login_reply_error_page(a->exchange_conn, message);
		snprintf(message, sizeof(message), "Login server error: Token exchange failed: %s", detail);
	} else {
		snprintf(message, sizeof(message), "device code exchange failed: %s", detail);
	}
	login_finish(a, false, message);
}

static void login_fail_persist(LoginAttempt *a, const char *detail)
{
	char message[1200];
	log_error("login %s: cannot store the new credential: %s", a->id, detail);
	if (a->exchange_conn)
		login_reply_error_page(a->exchange_conn, login_persist_error);
	snprintf(message, sizeof(message), "%s%s",
		 a->kind == LOGIN_KIND_BROWSER ? "Login server error: " : "", login_persist_error);
	login_finish(a, false, message);
}

/*
 * Remember the credential about to be replaced when it is another ChatGPT login: its refresh
 * token (else its access token) is revoked once the new one is stored, as the reference does.
 */
static void login_note_superseded(LoginAttempt *a, json_t *doc)
{
	Creds *creds = a->login->creds;
	if (creds_sync(creds) < 0)
		return;
	const AuthSnapshot *old = creds_current(creds);
	if (old->mode != AUTH_MODE_CHATGPT)
		return;
	bool is_refresh = old->refresh_token && *old->refresh_token;
	const char *token = is_refresh ? old->refresh_token : old->access_token;
	json_t *tokens = json_object_get(doc, "tokens");
	const char *fresh =
		json_string_value(json_object_get(tokens, is_refresh ? "refresh_token" : "access_token"));
	if (!token || !*token || (fresh && strcmp(fresh, token) == 0))
		return;
	a->superseded_token = strdup(token);
	a->is_superseded_refresh = is_refresh;
}

static void login_revoke_token(Login *login, const char *token, bool is_refresh);

static void login_on_stored(void *ctx, int status, const char *message)
{
	LoginAttempt *a = ctx;
	if (a->phase == LOGIN_PHASE_STORING) {
		if (status < 0) {
			login_fail_persist(a, message ? message : strerror(-status));
		} else {
			if (a->superseded_token)
				login_revoke_token(a->login, a->superseded_token, a->is_superseded_refresh);
			if (a->exchange_conn)
				login_reply_success_page(a->exchange_conn);
			login_finish(a, true, NULL);
		}
	}
	login_attempt_release(a);
}

static void login_store(LoginAttempt *a, json_t *doc)
{
	login_note_superseded(a, doc);
	a->phase = LOGIN_PHASE_STORING;
	a->refs++;
	creds_replace(a->login->creds, doc, login_on_stored, a);
}

/*
 * The browser flow also trades the id token for an API key, as the reference does (best effort:
 * without one, OPENAI_API_KEY stays null). Return: 0 with @doc held until it answers, or < 0.
 */
static int login_api_key_start(LoginAttempt *a, json_t *doc)
{
	const char *id_token = json_string_value(json_object_get(json_object_get(doc, "tokens"), "id_token"));
	const char *const fields[][2] = {
		{ "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange" },
		{ "client_id", a->opts.client_id },
		{ "requested_token", "openai-api-key" },
		{ "subject_token", id_token },
		{ "subject_token_type", "urn:ietf:params:oauth:token-type:id_token" },
	};
	int rc = login_attempt_queue(a, LOGIN_JOB_API_KEY, strdup(a->opts.token_url),
				     login_form_join(fields, sizeof(fields) / sizeof(fields[0])),
				     "application/x-www-form-urlencoded");
	if (rc == 0)
		a->pending_doc = doc;
	return rc;
}

static void login_api_key_done(LoginAttempt *a, LoginJob *job)
{
	json_t *doc = a->pending_doc;
	a->pending_doc = NULL;
	json_t *answer = job->rc == 0 && login_is_success(job->resp.status)
				 ? json_loads(job->resp.body, 0, NULL)
				 : NULL;
	const char *key = json_string_value(json_object_get(answer, "access_token"));
	if (key)
		json_object_set_new(doc, "OPENAI_API_KEY", json_string(key));
	else if (job->rc < 0)
		log_info("login %s: no API key (%s)", a->id, login_job_error(job));
	else
		log_info("login %s: no API key (the token exchange answered %ld)", a->id, job->resp.status);
	json_decref(answer);
	login_store(a, doc);
}

/* The token endpoint answered: {id_token, access_token, refresh_token}, all three required. */
static void login_exchange_done(LoginAttempt *a, LoginJob *job)
{
	char detail[1024], status_text[64];
	if (job->rc < 0) {
		login_fail_exchange(a, login_job_error(job));
		return;
	}
	if (!login_is_success(job->resp.status)) {
		char what[900];
		login_token_error_detail(job->resp.body, what, sizeof(what));
		login_status_text(job->resp.status, status_text, sizeof(status_text));
		snprintf(detail, sizeof(detail), "token endpoint returned status %s: %s", status_text, what);
		login_fail_exchange(a, detail);
		return;
	}
	json_t *answer = json_loads(job->resp.body, 0, NULL);
	const char *id_token = json_string_value(json_object_get(answer, "id_token"));
	const char *access_token = json_string_value(json_object_get(answer, "access_token"));
	const char *refresh_token = json_string_value(json_object_get(answer, "refresh_token"));
	json_t *doc = id_token && access_token && refresh_token
			      ? login_auth_doc(&a->opts, id_token, access_token, refresh_token)
			      : NULL;
	json_decref(answer);
	if (!id_token || !access_token || !refresh_token)
		login_fail_exchange(a, "error decoding response body");
	else if (!doc)
		login_fail_persist(a, "the id token cannot be read");
	else if (a->kind != LOGIN_KIND_BROWSER || login_api_key_start(a, doc) < 0)
		login_store(a, doc);
}

/* -------------------------------------------------------------------------------------------
 * The browser flow: the callback server */

static bool login_path_is(const LoginRequest *req, const char *path)
{
	return req->path_len == strlen(path) && memcmp(req->path, path, req->path_len) == 0;
}

static bool login_is_state_valid(const LoginAttempt *a, const char *state)
{
	size_t len = strlen(a->state);
	return strlen(state) == len && CRYPTO_memcmp(state, a->state, len) == 0;
}

/* GET /auth/callback?code=..&state=.. (or ?error=..): the issuer sends the browser back. */
static void login_on_callback(LoginConn *conn, const LoginRequest *req)
{
	LoginAttempt *a = conn->attempt;
	char state[LOGIN_MAX_PARAM_BYTES], error[LOGIN_MAX_PARAM_BYTES], description[LOGIN_MAX_PARAM_BYTES];
	char code[LOGIN_MAX_PARAM_BYTES];
	char message[LOGIN_MAX_PARAM_BYTES + 200];
	int has_state = login_query_param(req->query, req->query_len, "state", state, sizeof(state));
	int has_error = login_query_param(req->query, req->query_len, "error", error, sizeof(error));
	int has_description = login_query_param(req->query, req->query_len, "error_description", description,
						sizeof(description));
	int has_code = login_query_param(req->query, req->query_len, "code", code, sizeof(code));
	if (has_state < 0 || has_error < 0 || has_description < 0 || has_code < 0) {
		login_reply_text(conn, 400, "Bad Request");
	} else if (has_state == 0 || !login_is_state_valid(a, state)) {
		/* Not our issuer's redirect (or a stale one): refused, and the login waits on. */
		log_warn("login %s: a callback with a %s state was refused", a->id,
			 has_state ? "wrong" : "missing");
		login_reply_text(conn, 400, "State mismatch");
	} else if (a->phase != LOGIN_PHASE_WAITING) {
		login_reply_text(conn, 409, "Sign-in is already being completed");
	} else if (has_error || !has_code || !*code) {
		if (has_error)
			login_callback_error_message(error, has_description ? description : NULL, message,
						     sizeof(message));
		else
			snprintf(message, sizeof(message),
				 "Missing authorization code. Sign-in could not be completed.");
		login_reply_error_page(conn, message);
		char *error_text = login_strdup_printf("%s%s", "Login server error: ", message);
		login_finish(a, false, error_text ? error_text : message);
		free(error_text);
	} else {
		a->exchange_conn = conn;
		log_info("login %s: exchanging the authorization code", a->id);
		if (login_exchange_start(a, code, a->redirect_uri, a->verifier) < 0)
			login_fail_exchange(a, "out of memory");
	}
	OPENSSL_cleanse(code, sizeof(code));
}

static void login_on_request(LoginConn *conn, size_t head_len)
{
	LoginAttempt *a = conn->attempt;
	LoginRequest req;
	int rc = login_parse_request(conn->head, head_len, &req);
	if (rc == -EOPNOTSUPP) {
		login_reply_text(conn, 405, "Method Not Allowed");
	} else if (rc < 0) {
		login_reply_text(conn, 400, "Bad Request");
	} else if (login_path_is(&req, "/auth/callback")) {
		login_on_callback(conn, &req);
	} else if (login_path_is(&req, "/cancel")) {
		/* Another login (ours or the reference's) wants the port. */
		login_reply_text(conn, 200, "Login cancelled");
		if (a->phase == LOGIN_PHASE_STORING)
			login_cancel_attempt(a); /* the tokens are being stored: it reports how that went */
		else
			login_finish(a, false, "Login server error: Login cancelled");
	} else {
		login_reply_text(conn, 404, "Not Found");
	}
}

static void login_conn_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	LoginConn *conn = handle->data;
	buf->base = conn->head + conn->head_len;
	buf->len = LOGIN_MAX_HEAD_BYTES - conn->head_len;
}

static void login_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	LoginConn *conn = stream->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		login_conn_close(conn);
		return;
	}
	conn->head_len += (size_t)nread;
	conn->head[conn->head_len] = '\0';
	const char *end = memmem(conn->head, conn->head_len, "\r\n\r\n", 4);
	if (end) {
		/* One request per connection: what follows it is not read (nor answered twice). */
		uv_read_stop(stream);
		login_on_request(conn, (size_t)(end - conn->head) + 4);
	}
	else if (conn->head_len >= LOGIN_MAX_HEAD_BYTES)
		login_reply_text(conn, 431, "Request Header Fields Too Large");
}

/* Over the bound: the oldest connection that has sent no complete request gives way. */
static void login_evict_idle_conn(LoginAttempt *a)
{
	LoginConn *oldest = NULL;
	for (LoginConn *conn = a->conns; conn; conn = conn->next)
		if (!conn->is_answering && conn != a->exchange_conn)
			oldest = conn; /* the list is newest first */
	if (oldest)
		login_conn_close(oldest);
}

static void login_on_connection(uv_stream_t *server, int status)
{
	LoginAttempt *a = server->data;
	if (status < 0 || a->phase == LOGIN_PHASE_DONE)
		return;
	LoginConn *conn = calloc(1, sizeof(*conn));
	if (!conn || uv_tcp_init(a->login->loop, &conn->tcp) < 0) {
		free(conn);
		return;
	}
	conn->tcp.data = conn;
	conn->attempt = a;
	conn->next = a->conns;
	a->conns = conn;
	a->conn_count++;
	a->refs++;
	if (uv_accept(server, (uv_stream_t *)&conn->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&conn->tcp, login_conn_alloc, login_conn_on_read) < 0) {
		login_conn_close(conn);
		return;
	}
	if (a->conn_count > LOGIN_MAX_CONNS)
		login_evict_idle_conn(a);
}

/* -------------------------------------------------------------------------------------------
 * The browser flow: the port */

/* A listening socket on 127.0.0.1:@port. Return: its fd, or a negative errno (-EADDRINUSE). */
static int login_listen_socket(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* As the reference's listener: a port whose last connections linger in TIME_WAIT is free. */
	int one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int login_adopt_listener(LoginAttempt *a, int fd)
{
	int rc = uv_tcp_init(a->login->loop, &a->listener);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	a->listener.data = a;
	a->has_listener = true;
	a->refs++;
	rc = uv_tcp_open(&a->listener, fd);
	if (rc < 0)
		close(fd); /* not the handle's yet */
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->listener, 16, login_on_connection);
	if (rc < 0)
		login_close_listener(a);
	return rc < 0 ? -EIO : 0;
}

static void login_browser_ready(LoginAttempt *a)
{
	struct sockaddr_in addr;
	int addr_len = sizeof(addr);
	if (uv_tcp_getsockname(&a->listener, (struct sockaddr *)&addr, &addr_len) < 0) {
		login_fail_start(a, -EIO,
				 "failed to start login server: Unable to determine the server port");
		return;
	}
	int port = ntohs(addr.sin_port);
	snprintf(a->redirect_uri, sizeof(a->redirect_uri), "http://127.0.0.1:%d/auth/callback", port);
	char *url = login_authorize_url(a->opts.issuer, a->opts.client_id, a->redirect_uri, a->challenge,
					a->state, a->originator);
	json_t *result =
		url ? json_pack("{s:s,s:s,s:s}", "type", "chatgpt", "loginId", a->id, "authUrl", url) : NULL;
	free(url);
	if (!result) {
		login_fail_start(a, -ENOMEM, "out of memory");
		return;
	}
	log_info("login %s: callback server on 127.0.0.1:%d", a->id, port);
	login_started(a, result, a->opts.timeout_s);
	json_decref(result);
}

static void login_probe_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	if (nread != 0)
		login_close_probe(stream->data);
}

static void login_probe_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	LoginAttempt *a = handle->data;
	buf->base = a->probe_buf;
	buf->len = sizeof(a->probe_buf);
}

static void login_probe_on_written(uv_write_t *req, int status)
{
	LoginAttempt *a = req->data;
	if (status < 0 || uv_read_start((uv_stream_t *)&a->probe, login_probe_alloc, login_probe_on_read) < 0)
		login_close_probe(a);
}

static void login_probe_on_connected(uv_connect_t *req, int status)
{
	LoginAttempt *a = req->data;
	if (status < 0 || !a->has_probe) {
		login_close_probe(a);
		return;
	}
	uv_buf_t buf = uv_buf_init(a->probe_request, (unsigned)strlen(a->probe_request));
	a->probe_write.data = a;
	if (uv_write(&a->probe_write, (uv_stream_t *)&a->probe, &buf, 1, login_probe_on_written) < 0)
		login_close_probe(a);
}

/* An older login server (ours or the reference's) may hold the port: ask it to exit. */
static void login_send_cancel(LoginAttempt *a, int port)
{
	struct sockaddr_in addr;
	if (uv_tcp_init(a->login->loop, &a->probe) < 0)
		return;
	a->probe.data = a;
	a->has_probe = true;
	a->refs++;
	snprintf(a->probe_request, sizeof(a->probe_request),
		 "GET /cancel HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", port);
	uv_ip4_addr("127.0.0.1", port, &addr);
	a->probe_connect.data = a;
	if (uv_tcp_connect(&a->probe_connect, &a->probe, (const struct sockaddr *)&addr,
			   login_probe_on_connected) < 0)
		login_close_probe(a);
}

static void login_try_bind(LoginAttempt *a);

static void login_on_bind_retry(uv_timer_t *timer)
{
	LoginAttempt *a = timer->data;
	if (a->phase == LOGIN_PHASE_STARTING)
		login_try_bind(a);
}

static void login_on_port_busy(LoginAttempt *a)
{
	char message[128];
	if (++a->bind_tries < LOGIN_BIND_TRIES) {
		if (!a->has_sent_cancel) {
			a->has_sent_cancel = true;
			login_send_cancel(a, a->bind_port);
		}
		uv_timer_start(&a->tick, login_on_bind_retry, LOGIN_BIND_RETRY_MS, 0);
		return;
	}
	if (a->bind_port == LOGIN_DEFAULT_PORT) {
		log_warn("login %s: port %d stays busy; trying the fallback port %d", a->id,
			 LOGIN_DEFAULT_PORT, LOGIN_FALLBACK_PORT);
		a->bind_port = LOGIN_FALLBACK_PORT;
		a->bind_tries = 0;
		a->has_sent_cancel = true; /* the reference asks only the preferred port's server to exit */
		login_try_bind(a);
		return;
	}
	snprintf(message, sizeof(message),
		 "failed to start login server: Port 127.0.0.1:%d is already in use", a->bind_port);
	login_fail_start(a, -EADDRINUSE, message);
}

static void login_try_bind(LoginAttempt *a)
{
	char message[256];
	int fd = login_listen_socket(a->bind_port);
	if (fd == -EADDRINUSE) {
		login_on_port_busy(a);
		return;
	}
	int rc = fd < 0 ? fd : login_adopt_listener(a, fd);
	if (rc < 0) {
		snprintf(message, sizeof(message), "failed to start login server: %s", strerror(-rc));
		login_fail_start(a, rc, message);
		return;
	}
	login_close_probe(a);
	login_browser_ready(a);
}

static void login_browser_begin(LoginAttempt *a)
{
	if (login_random_text(LOGIN_VERIFIER_BYTES, a->verifier, sizeof(a->verifier)) < 0 ||
	    login_pkce_challenge(a->verifier, a->challenge, sizeof(a->challenge)) < 0 ||
	    login_random_text(LOGIN_STATE_BYTES, a->state, sizeof(a->state)) < 0) {
		login_fail_start(a, -EIO, "failed to start login server: no random bytes");
		return;
	}
	a->bind_port = a->opts.port;
	login_try_bind(a);
}

/* -------------------------------------------------------------------------------------------
 * The device-code flow */

static char *login_issuer_url(const LoginAttempt *a, const char *path)
{
	return login_strdup_printf("%s%s", a->opts.issuer, path);
}

static void login_poll(LoginAttempt *a)
{
	json_t *req = json_pack("{s:s,s:s}", "device_auth_id", a->device.device_auth_id, "user_code",
				a->device.user_code);
	if (login_attempt_queue(a, LOGIN_JOB_POLL, login_issuer_url(a, "/api/accounts/deviceauth/token"),
				login_json_body(req), "application/json") < 0)
		login_finish(a, false, "cannot poll for the device code's approval: out of memory");
}

static void login_on_poll_tick(uv_timer_t *timer)
{
	LoginAttempt *a = timer->data;
	if (a->phase == LOGIN_PHASE_WAITING)
		login_poll(a);
}

static void login_usercode_done(LoginAttempt *a, LoginJob *job)
{
	char message[1200], detail[1024];
	if (job->rc < 0) {
		snprintf(message, sizeof(message), "failed to request device code: %s", login_job_error(job));
		login_fail_start(a, -EIO, message);
		return;
	}
	if (job->resp.status == 404) {
		/* The reference answers this one as an invalid request, the rest as internal errors. */
		login_fail_start(a, -EINVAL,
				 "device code login is not enabled for this Codex server. Use the "
				 "browser login or verify the server URL.");
		return;
	}
	if (!login_is_success(job->resp.status)) {
		login_status_text(job->resp.status, detail, sizeof(detail));
		snprintf(message, sizeof(message),
			 "failed to request device code: device code request failed with status %s", detail);
		login_fail_start(a, -EIO, message);
		return;
	}
	if (login_parse_device_code(job->resp.body, &a->device, detail, sizeof(detail)) < 0) {
		snprintf(message, sizeof(message), "failed to request device code: %s", detail);
		login_fail_start(a, -EIO, message);
		return;
	}
	char *verification = login_issuer_url(a, "/codex/device");
	json_t *result =
		verification ? json_pack("{s:s,s:s,s:s,s:s}", "type", "chatgptDeviceCode", "loginId", a->id,
					 "verificationUrl", verification, "userCode", a->device.user_code)
			     : NULL;
	free(verification);
	if (!result) {
		login_fail_start(a, -ENOMEM, "out of memory");
		return;
	}
	login_started(a, result, a->opts.device_timeout_s);
	json_decref(result);
	if (a->phase == LOGIN_PHASE_WAITING)
		login_poll(a); /* at once, then every interval, as the reference polls */
}

/* The poll answered: 403/404 pending, 2xx approved {authorization_code, code_challenge, code_verifier}. */
static void login_poll_done(LoginAttempt *a, LoginJob *job)
{
	char message[256], status_text[64];
	if (job->rc < 0) {
		login_finish(a, false, login_job_error(job));
		return;
	}
	if (job->resp.status == 403 || job->resp.status == 404) {
		uint64_t delay_ms = (uint64_t)a->device.interval_s * 1000u;
		uv_timer_start(&a->tick, login_on_poll_tick,
			       delay_ms < LOGIN_MIN_POLL_MS ? LOGIN_MIN_POLL_MS : delay_ms, 0);
		return;
	}
	if (!login_is_success(job->resp.status)) {
		login_status_text(job->resp.status, status_text, sizeof(status_text));
		snprintf(message, sizeof(message), "device auth failed with status %s", status_text);
		login_finish(a, false, message);
		return;
	}
	json_t *answer = json_loads(job->resp.body, 0, NULL);
	const char *code = json_string_value(json_object_get(answer, "authorization_code"));
	const char *verifier = json_string_value(json_object_get(answer, "code_verifier"));
	const char *challenge = json_string_value(json_object_get(answer, "code_challenge"));
	char *redirect = login_issuer_url(a, "/deviceauth/callback");
	if (!code || !verifier || !challenge) {
		login_finish(a, false, "error decoding response body");
	} else {
		log_info("login %s: device code approved; exchanging the authorization code", a->id);
		if (!redirect || login_exchange_start(a, code, redirect, verifier) < 0)
			login_fail_exchange(a, "out of memory");
	}
	free(redirect);
	json_decref(answer);
}

static void login_device_begin(LoginAttempt *a)
{
	json_t *req = json_pack("{s:s}", "client_id", a->opts.client_id);
	if (login_attempt_queue(a, LOGIN_JOB_USERCODE,
				login_issuer_url(a, "/api/accounts/deviceauth/usercode"),
				login_json_body(req), "application/json") < 0)
		login_fail_start(a, -ENOMEM, "failed to request device code: out of memory");
}

/* -------------------------------------------------------------------------------------------
 * Revoke */

/* Where revokes go: main.c resolves the reference's overrides into revoke_url. */
static char *login_revoke_url(const Login *login)
{
	if (login->opts.revoke_url[0])
		return strdup(login->opts.revoke_url);
	return login_strdup_printf("%s%s", login->opts.issuer, "/oauth/revoke");
}

static void login_revoke_token(Login *login, const char *token, bool is_refresh)
{
	if (login->is_stopped)
		return;
	/* A refresh token is revoked with the client id; an access token without, as the reference. */
	json_t *req = is_refresh ? json_pack("{s:s,s:s,s:s}", "token", token, "token_type_hint",
					     "refresh_token", "client_id", login->opts.client_id)
				 : json_pack("{s:s,s:s}", "token", token, "token_type_hint", "access_token");
	LoginJob *job = login_job_new(login, NULL, LOGIN_JOB_REVOKE, login_revoke_url(login),
				      login_json_body(req), "application/json", LOGIN_REVOKE_TIMEOUT_MS);
	if (!job) {
		log_warn("token revoke skipped: out of memory");
		return;
	}
	job->is_refresh_token = is_refresh;
	login->live++;
	if (login_job_queue(login, job) < 0)
		login->live--;
}

/* Best effort: a failure is logged (the status and the issuer's words, never the token). */
static void login_revoke_done(LoginJob *job)
{
	const char *hint = job->is_refresh_token ? "refresh_token" : "access_token";
	char status_text[64], detail[512];
	if (job->rc == -ECANCELED)
		return;
	if (job->rc < 0) {
		log_warn("token revoke failed: %s", login_job_error(job));
	} else if (!login_is_success(job->resp.status)) {
		login_status_text(job->resp.status, status_text, sizeof(status_text));
		login_token_error_detail(job->resp.body, detail, sizeof(detail));
		log_warn("token revoke failed: failed to revoke %s: %s: %.200s", hint, status_text, detail);
	} else {
		log_info("the previous %s was revoked", hint);
	}
}

static void login_job_after(uv_work_t *work, int status)
{
	LoginJob *job = work->data;
	Login *login = job->login;
	LoginAttempt *a = job->attempt;
	if (status == UV_ECANCELED)
		job->rc = -ECANCELED;
	if (!a) {
		login_revoke_done(job);
		login_job_free(job);
		login->live--;
		login_maybe_free(login);
		return;
	}
	if (a->job == job)
		a->job = NULL;
	if (a->phase != LOGIN_PHASE_DONE) {
		switch (job->kind) {
		case LOGIN_JOB_USERCODE:
			login_usercode_done(a, job);
			break;
		case LOGIN_JOB_POLL:
			login_poll_done(a, job);
			break;
		case LOGIN_JOB_EXCHANGE:
			login_exchange_done(a, job);
			break;
		case LOGIN_JOB_API_KEY:
			login_api_key_done(a, job);
			break;
		case LOGIN_JOB_REVOKE:
			break;
		}
	}
	login_job_free(job);
	login_attempt_release(a);
}

/* -------------------------------------------------------------------------------------------
 * The interface */

int login_new(uv_loop_t *loop, Creds *creds, const LoginOptions *opts, LoginCompletedFn on_completed,
	      void *ctx, Login **out)
{
	Login *login = calloc(1, sizeof(*login));
	if (!login)
		return -ENOMEM;
	login->loop = loop;
	login->creds = creds;
	login->opts = *opts;
	login->on_completed = on_completed;
	login->ctx = ctx;
	atomic_init(&login->stopping, false);
	*out = login;
	return 0;
}

void login_set_options(Login *login, const LoginOptions *opts)
{
	login->opts = *opts;
}

/*
 * A new login cancels the active one. A browser login waiting on the port the new one wants ends
 * as the reference's does: its successor's GET /cancel makes it exit with "Login cancelled".
 */
static void login_replace_active(LoginAttempt *old, LoginKind kind)
{
	int port = old->login->opts.port;
	if (kind == LOGIN_KIND_BROWSER && old->kind == LOGIN_KIND_BROWSER &&
	    old->phase == LOGIN_PHASE_WAITING && port != 0 && old->bind_port == port)
		login_finish(old, false, "Login server error: Login cancelled");
	else
		login_cancel_attempt(old);
}

void login_start(Login *login, const char *type, const char *originator, LoginStartedFn started, void *ctx)
{
	LoginKind kind;
	if (strcmp(type, "chatgpt") == 0) {
		kind = LOGIN_KIND_BROWSER;
	} else if (strcmp(type, "chatgptDeviceCode") == 0) {
		kind = LOGIN_KIND_DEVICE;
	} else {
		started(ctx, -EINVAL, NULL, "unknown login type");
		return;
	}
	if (login->is_stopped) {
		started(ctx, -ECANCELED, NULL, "authd is stopping");
		return;
	}
	if (login->active)
		login_replace_active(login->active, kind);
	LoginAttempt *a = login_attempt_new(login, kind, originator, started, ctx);
	if (!a) {
		started(ctx, -ENOMEM, NULL, "out of memory");
		return;
	}
	login->active = a;
	if (kind == LOGIN_KIND_BROWSER)
		login_browser_begin(a);
	else
		login_device_begin(a);
}

bool login_cancel(Login *login, const char *login_id)
{
	LoginAttempt *a = login->active;
	/* UUIDs compare without regard to case, as the reference parses them. */
	if (!a || a->phase == LOGIN_PHASE_STARTING || strcasecmp(a->id, login_id) != 0)
		return false;
	login_cancel_attempt(a);
	return true;
}

void login_cancel_active(Login *login)
{
	if (login->active)
		login_cancel_attempt(login->active);
}

void login_revoke(Login *login, const AuthSnapshot *snap)
{
	if (!snap || snap->mode != AUTH_MODE_CHATGPT)
		return;
	bool is_refresh = snap->refresh_token && *snap->refresh_token;
	const char *token = is_refresh ? snap->refresh_token : snap->access_token;
	if (token && *token)
		login_revoke_token(login, token, is_refresh);
}

void login_stop(Login *login)
{
	if (!login || login->is_stopped)
		return;
	login->is_stopped = true;
	atomic_store(&login->stopping, true);
	/* Ending an attempt frees nothing before the loop runs again: the list holds still. */
	for (LoginAttempt *a = login->attempts, *next; a; a = next) {
		next = a->next;
		if (a->phase == LOGIN_PHASE_STARTING)
			login_fail_start(a, -ECANCELED, "authd is stopping");
		else if (a->phase == LOGIN_PHASE_STORING)
			login_cancel_attempt(a); /* the store decides how it ended */
		else if (a->phase != LOGIN_PHASE_DONE)
			login_finish(a, false, login_cancel_message(a));
		else
			login_release_port(a, true);
	}
	login_maybe_free(login);
}
