/* SPDX-License-Identifier: MIT */
/* server.c - `execd --listen URL`: the standalone exec-server (main, client core, sessions). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "daemon.h"
#include "execd.h"
#include "log.h"
#include "paths.h"
#include "seccomp_filter.h"
#include "server.h"
#include "spawner.h"

/* A message waiting for its turn on a connection. */
struct EsInput {
	EsInput *next;
	size_t len;
	char data[];
};

/* --- replies ------------------------------------------------------------------------------------ */

bool es_client_can_take_output(const EsClient *c)
{
	return c->queued_bytes < ES_OUTPUT_HIGH_BYTES;
}

int es_client_send(EsClient *c, json_t *msg)
{
	if (!msg)
		return -ENOMEM;
	if (c->is_closing) {
		json_decref(msg);
		return -EPIPE;
	}
	/* Members in insertion order, no spaces, non-ASCII as UTF-8: serde_json's compact form. */
	char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(msg);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	int rc = c->ops->write(c, text, len);
	free(text);
	if (rc == 0) {
		c->queued_bytes += len;
		if (!es_client_can_take_output(c))
			c->is_over_high_water = true;
	}
	return rc;
}

void es_client_on_written(EsClient *c, size_t len)
{
	c->queued_bytes = len > c->queued_bytes ? 0 : c->queued_bytes - len;
	if (c->is_over_high_water && c->queued_bytes <= ES_OUTPUT_LOW_BYTES) {
		c->is_over_high_water = false;
		if (c->session)
			es_proc_session_changed(c->session);
	}
}

static void es_client_pump(EsClient *c);

static void es_request_finish(EsRequest *req)
{
	EsClient *c = req->client;
	if (c->current == req)
		c->current = NULL;
	json_decref(req->id);
	free(req);
	if (!c->is_pumping)
		es_client_pump(c);
}

void es_reply_result(EsRequest *req, json_t *result)
{
	json_t *msg = json_object();
	json_object_set(msg, "id", req->id);
	json_object_set_new(msg, "result", result ? result : json_object());
	es_client_send(req->client, msg);
	es_request_finish(req);
}

static json_t *es_error_message(json_t *id, int code, const char *message)
{
	json_t *msg = json_object();
	json_t *error = json_object();
	json_object_set_new(error, "code", json_integer(code));
	json_object_set_new(error, "message", es_json_string_lossy(message, strlen(message)));
	/* The reference writes the error before the id. */
	json_object_set_new(msg, "error", error);
	json_object_set(msg, "id", id);
	return msg;
}

void es_reply_error(EsRequest *req, int code, const char *fmt, ...)
{
	char message[2 * AGENTD_PATH_MAX + 512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	es_client_send(req->client, es_error_message(req->id, code, message));
	es_request_finish(req);
}

/* The length of the UTF-8 sequence at @s (at most @len bytes), or 0 when it is not one. */
static size_t es_utf8_sequence(const unsigned char *s, size_t len)
{
	size_t more;
	uint32_t cp;
	if (s[0] < 0x80)
		return s[0] ? 1 : 0;
	if ((s[0] & 0xe0) == 0xc0) {
		more = 1;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		more = 2;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		more = 3;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len <= more)
		return 0;
	for (size_t k = 1; k <= more; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return more + 1;
}

json_t *es_json_string_lossy(const char *bytes, size_t len)
{
	json_t *s = json_stringn(bytes, len);
	if (s)
		return s;
	/* Not UTF-8 (a file name, a path in a message): each bad byte becomes U+FFFD, as Rust's
	 * to_string_lossy() has it; a NUL is dropped. */
	char *out = malloc(len * 3 + 1);
	if (!out)
		return json_string("");
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = es_utf8_sequence((const unsigned char *)bytes + i, len - i);
		if (n) {
			memcpy(out + o, bytes + i, n);
			o += n;
			i += n;
			continue;
		}
		if (bytes[i] != '\0') {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
		}
		i++;
	}
	s = json_stringn(out, o);
	free(out);
	return s ? s : json_string("");
}

/* --- sessions ------------------------------------------------------------------------------------- */

static void es_uuid_v4(char out[37])
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		/* getrandom(2) on a 16-byte buffer does not fail once the pool is ready. */
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (uint8_t)rand();
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void es_on_handle_freed(uv_handle_t *handle)
{
	free(handle);
}

static void es_session_free(EsSession *session)
{
	EsServer *s = session->server;
	if (session->prev)
		session->prev->next = session->next;
	else
		s->sessions = session->next;
	if (session->next)
		session->next->prev = session->prev;
	if (session->client)
		session->client->session = NULL;
	es_proc_session_free(session);
	if (session->expiry)
		uv_close((uv_handle_t *)session->expiry, es_on_handle_freed);
	log_info("session %s ended", session->id);
	free(session);
}

static void es_session_on_expired(uv_timer_t *timer)
{
	EsSession *session = timer->data;
	log_info("session %s was not resumed within %llu ms: its processes are killed", session->id,
		 (unsigned long long)session->server->detached_ttl_ms);
	es_session_free(session);
}

static EsSession *es_session_new(EsServer *s)
{
	EsSession *session = calloc(1, sizeof(*session));
	if (!session)
		return NULL;
	session->server = s;
	es_uuid_v4(session->id);
	session->next = s->sessions;
	if (s->sessions)
		s->sessions->prev = session;
	s->sessions = session;
	return session;
}

static EsSession *es_session_find(EsServer *s, const char *id)
{
	for (EsSession *session = s->sessions; session; session = session->next)
		if (strcmp(session->id, id) == 0)
			return session;
	return NULL;
}

static void es_session_attach(EsSession *session, EsClient *c)
{
	if (session->expiry) {
		uv_close((uv_handle_t *)session->expiry, es_on_handle_freed);
		session->expiry = NULL;
	}
	session->client = c;
	c->session = session;
	es_proc_session_changed(session);
}

/* The connection is gone: the session waits ES_DETACHED_SESSION_TTL_MS for a resume. */
static void es_session_detach(EsSession *session)
{
	EsServer *s = session->server;
	session->client = NULL;
	if (s->is_stopping || s->is_stdio) {
		es_session_free(session);
		return;
	}
	session->expiry = malloc(sizeof(*session->expiry));
	if (!session->expiry || uv_timer_init(s->loop, session->expiry) < 0) {
		free(session->expiry);
		session->expiry = NULL;
		es_session_free(session);
		return;
	}
	session->expiry->data = session;
	uv_timer_start(session->expiry, es_session_on_expired, s->detached_ttl_ms, 0);
	log_info("session %s detached: resumable for %llu ms", session->id,
		 (unsigned long long)s->detached_ttl_ms);
	es_proc_session_changed(session);
}

bool es_session_notify(EsSession *session, json_t *msg)
{
	if (!session->client || session->client->is_closing) {
		json_decref(msg);
		return false;
	}
	return es_client_send(session->client, msg) == 0;
}

/* --- lifecycle methods ------------------------------------------------------------------------------- */

static const char *es_family_name(EsFamily family)
{
	switch (family) {
	case ES_FAMILY_EXEC:
		return "exec";
	case ES_FAMILY_FS:
		return "filesystem";
	case ES_FAMILY_ENVIRONMENT:
		return "environment info";
	case ES_FAMILY_LIFECYCLE:
		break;
	}
	return "lifecycle";
}

bool es_request_is_allowed(EsRequest *req)
{
	EsClient *c = req->client;
	if (req->method->family == ES_FAMILY_LIFECYCLE)
		return true;
	if (!c->has_initialize) {
		es_reply_error(req, ES_INVALID_REQUEST, "client must call initialize before using %s methods",
			       es_family_name(req->method->family));
		return false;
	}
	if (!c->has_initialized) {
		es_reply_error(req, ES_INVALID_REQUEST,
			       "client must send initialized before using %s methods",
			       es_family_name(req->method->family));
		return false;
	}
	return true;
}

static const EsField es_initialize_fields[] = {
	{ .name = "clientName", .type = ES_T_STRING, .is_required = true },
	{ .name = "resumeSessionId", .type = ES_T_STRING, .is_nullable = true },
};
static const EsStruct es_initialize_params = { "struct InitializeParams", es_initialize_fields, 2 };

static void es_method_initialize(EsRequest *req, json_t *params)
{
	EsClient *c = req->client;
	EsServer *s = c->server;
	json_t *v[2];
	char err[512];
	if (es_params_decode(&es_initialize_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (c->has_initialize) {
		es_reply_error(req, ES_INVALID_REQUEST, "initialize may only be sent once per connection");
		return;
	}
	EsSession *session;
	if (v[1]) {
		const char *id = json_string_value(v[1]);
		session = es_session_find(s, id);
		if (!session) {
			es_reply_error(req, ES_INVALID_REQUEST, "unknown session id %s", id);
			return;
		}
		if (session->client) {
			es_reply_error(req, ES_SESSION_ATTACHED,
				       "session %s is already attached to another connection", id);
			return;
		}
		log_info("session %s resumed by %s", session->id, json_string_value(v[0]));
	} else {
		session = es_session_new(s);
		if (!session) {
			es_reply_error(req, ES_INTERNAL_ERROR, "out of memory");
			return;
		}
		log_info("session %s started for %s", session->id, json_string_value(v[0]));
	}
	c->has_initialize = true;
	json_t *result = json_object();
	json_object_set_new(result, "sessionId", json_string(session->id));
	json_object_set(result, "environmentInfo", s->environment_info);
	/* Attach after the answer is queued: output the session held comes behind it. */
	es_reply_result(req, result);
	es_session_attach(session, c);
}

static void es_method_environment_info(EsRequest *req, json_t *params)
{
	char err[512];
	if (es_params_unit(params, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req))
		return;
	es_reply_result(req, json_deep_copy(req->client->server->environment_info));
}

/*
 * The allow-list: every method a client may call, its family (for the initialize rules) and
 * its handler. Anything else is answered -32601, as the reference answers it.
 */
static const EsMethod es_methods[] = {
	{ "initialize", ES_FAMILY_LIFECYCLE, es_method_initialize },
	{ "environment/info", ES_FAMILY_ENVIRONMENT, es_method_environment_info },
	{ "process/start", ES_FAMILY_EXEC, es_method_process_start },
	{ "process/read", ES_FAMILY_EXEC, es_method_process_read },
	{ "process/write", ES_FAMILY_EXEC, es_method_process_write },
	{ "process/signal", ES_FAMILY_EXEC, es_method_process_signal },
	{ "process/terminate", ES_FAMILY_EXEC, es_method_process_terminate },
	{ "fs/readFile", ES_FAMILY_FS, es_method_fs_read_file },
	{ "fs/writeFile", ES_FAMILY_FS, es_method_fs_write_file },
	{ "fs/createDirectory", ES_FAMILY_FS, es_method_fs_create_directory },
	{ "fs/getMetadata", ES_FAMILY_FS, es_method_fs_get_metadata },
	{ "fs/readDirectory", ES_FAMILY_FS, es_method_fs_read_directory },
	{ "fs/remove", ES_FAMILY_FS, es_method_fs_remove },
	{ "fs/copy", ES_FAMILY_FS, es_method_fs_copy },
	{ "fs/canonicalize", ES_FAMILY_FS, es_method_fs_canonicalize },
	{ "fs/join", ES_FAMILY_FS, es_method_fs_join },
	{ "fs/parent", ES_FAMILY_FS, es_method_fs_parent },
};

static const EsMethod *es_method_find(const char *name)
{
	for (size_t i = 0; i < sizeof(es_methods) / sizeof(es_methods[0]); i++)
		if (strcmp(es_methods[i].name, name) == 0)
			return &es_methods[i];
	return NULL;
}

/* --- messages ------------------------------------------------------------------------------------------ */

static void es_client_parse_error(EsClient *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A message that is not JSON-RPC: answered with id -1; the connection goes on. */
static void es_client_parse_error(EsClient *c, const char *fmt, ...)
{
	char reason[512], message[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	snprintf(message, sizeof(message), "%s: %s", c->parse_error_prefix, reason);
	json_t *id = json_integer(-1);
	es_client_send(c, es_error_message(id, ES_INVALID_REQUEST, message));
	json_decref(id);
}

/* "exec-server websocket 127.0.0.1:5000" or "exec-server stdio", for the log. */
static const char *es_client_name(const EsClient *c)
{
	const char *from = strstr(c->parse_error_prefix, " from ");
	return from ? from + 6 : c->parse_error_prefix;
}

static void es_client_close(EsClient *c, const char *why)
{
	if (c->is_closing)
		return;
	log_info("%s: closing the connection: %s", es_client_name(c), why);
	c->is_closing = true;
	c->ops->close(c);
}

static void es_client_handle_request(EsClient *c, json_t *id, const char *method, json_t *params)
{
	EsRequest *req = calloc(1, sizeof(*req));
	if (!req) {
		es_client_send(c, es_error_message(id, ES_INTERNAL_ERROR, "out of memory"));
		return;
	}
	req->client = c;
	req->id = json_incref(id);
	req->method = es_method_find(method);
	c->current = req;
	log_debug("%s: %s", es_client_name(c), method);
	if (!req->method) {
		es_reply_error(req, ES_METHOD_NOT_FOUND, "exec-server stub does not implement `%s` yet",
			       method);
		return;
	}
	req->method->handler(req, params);
}

static void es_client_handle_notification(EsClient *c, const char *method)
{
	/* The reference drops the connection for any other notification, or an early one. */
	if (strcmp(method, "initialized") == 0 && c->has_initialize) {
		c->has_initialized = true;
		return;
	}
	es_client_close(c, strcmp(method, "initialized") == 0 ? "initialized before initialize"
							      : "unexpected notification");
}

static const char *es_json_kind(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "map";
	case JSON_ARRAY:
		return "sequence";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
		return "boolean `true`";
	case JSON_FALSE:
		return "boolean `false`";
	case JSON_NULL:
		break;
	}
	return "null";
}

static void es_client_handle(EsClient *c, const char *data, size_t len)
{
	json_error_t jerr;
	json_t *msg = json_loadb(data, len, JSON_DECODE_ANY, &jerr);
	if (!msg) {
		es_client_parse_error(c, "%s at line %d column %d", jerr.text, jerr.line, jerr.column);
		return;
	}
	if (!json_is_object(msg)) {
		es_client_parse_error(c, "expected a JSON-RPC object");
		json_decref(msg);
		return;
	}
	json_t *id = json_object_get(msg, "id");
	json_t *method = json_object_get(msg, "method");
	if (method) {
		if (id && !json_is_integer(id) && !json_is_string(id)) {
			es_client_parse_error(c, "data did not match any variant of untagged enum RequestId");
		} else if (!json_is_string(method)) {
			es_client_parse_error(c, "invalid type: %s, expected a string", es_json_kind(method));
		} else if (id) {
			es_client_handle_request(c, id, json_string_value(method),
						 json_object_get(msg, "params"));
		} else {
			es_client_handle_notification(c, json_string_value(method));
		}
	} else if (json_object_get(msg, "result") || json_object_get(msg, "error")) {
		/* This server never asks the client anything: a response is a protocol violation. */
		es_client_close(c, "the client sent a response");
	} else {
		es_client_parse_error(c, "missing field `error`");
	}
	json_decref(msg);
}

/* Serve queued messages until one of them leaves a request running. */
static void es_client_pump(EsClient *c)
{
	c->is_pumping = true;
	while (!c->current && c->input_head && !c->is_closing) {
		EsInput *in = c->input_head;
		c->input_head = in->next;
		if (!c->input_head)
			c->input_tail = NULL;
		c->input_count--;
		c->input_bytes -= in->len;
		es_client_handle(c, in->data, in->len);
		free(in);
	}
	c->is_pumping = false;
	if (c->is_reading_paused && !c->is_closing && c->input_count <= ES_INPUT_MAX_MESSAGES / 2 &&
	    c->input_bytes <= ES_INPUT_MAX_BYTES / 2) {
		c->is_reading_paused = false;
		c->ops->set_reading(c, true);
	}
}

void es_client_on_message(EsClient *c, const char *data, size_t len)
{
	if (c->is_closing)
		return;
	EsInput *in = malloc(sizeof(*in) + len);
	if (!in) {
		es_client_close(c, "out of memory");
		return;
	}
	in->next = NULL;
	in->len = len;
	memcpy(in->data, data, len);
	if (c->input_tail)
		c->input_tail->next = in;
	else
		c->input_head = in;
	c->input_tail = in;
	c->input_count++;
	c->input_bytes += len;
	/* Bounded: a client that pipelines past the bound waits for its earlier requests. */
	if (!c->is_reading_paused &&
	    (c->input_count >= ES_INPUT_MAX_MESSAGES || c->input_bytes >= ES_INPUT_MAX_BYTES)) {
		c->is_reading_paused = true;
		c->ops->set_reading(c, false);
	}
	if (!c->is_pumping)
		es_client_pump(c);
}

void es_client_on_oversize(EsClient *c, size_t len)
{
	es_client_parse_error(c, "message of %zu bytes exceeds the limit of %u bytes", len,
			      ES_MESSAGE_MAX_BYTES);
}

EsClient *es_client_new(EsServer *s, const EsClientOps *ops, void *transport, const char *parse_error_prefix)
{
	EsClient *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->server = s;
	c->ops = ops;
	c->transport = transport;
	snprintf(c->parse_error_prefix, sizeof(c->parse_error_prefix), "%s", parse_error_prefix);
	c->next = s->clients;
	if (s->clients)
		s->clients->prev = c;
	s->clients = c;
	return c;
}

void es_client_gone(EsClient *c)
{
	EsServer *s = c->server;
	c->is_closing = true;
	if (c->current) {
		EsRequest *req = c->current;
		if (req->cancel)
			req->cancel(req);
		c->current = NULL;
		json_decref(req->id);
		free(req);
	}
	while (c->input_head) {
		EsInput *in = c->input_head;
		c->input_head = in->next;
		free(in);
	}
	if (c->session) {
		EsSession *session = c->session;
		c->session = NULL;
		es_session_detach(session);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
	if (s->is_stdio && !s->is_stopping)
		es_server_stop(s); /* stdio serves one client: its end of input ends the server */
}

/* --- the environment ------------------------------------------------------------------------------------ */

static json_t *es_uri_json(const char *path)
{
	char *uri = es_path_to_uri(path);
	json_t *v = uri ? json_string(uri) : json_null();
	free(uri);
	return v ? v : json_null();
}

/* The user's shell, as the reference detects it: the passwd entry, else $SHELL, else sh. */
static void es_detect_shell(char *name, size_t name_size, char *path, size_t path_size)
{
	const char *candidates[3] = { NULL, getenv("SHELL"), NULL };
	struct passwd *pw = getpwuid(getuid());
	candidates[0] = pw ? pw->pw_shell : NULL;
	for (size_t i = 0; i < 2; i++) {
		const char *shell = candidates[i];
		if (!shell || shell[0] != '/' || access(shell, X_OK) != 0)
			continue;
		const char *base = strrchr(shell, '/') + 1;
		if (strcmp(base, "bash") == 0 || strcmp(base, "zsh") == 0 || strcmp(base, "sh") == 0) {
			snprintf(name, name_size, "%s", base);
			snprintf(path, path_size, "%s", shell);
			return;
		}
	}
	if (access("/bin/bash", X_OK) == 0) {
		snprintf(name, name_size, "bash");
		snprintf(path, path_size, "/bin/bash");
	} else {
		snprintf(name, name_size, "sh");
		snprintf(path, path_size, "/bin/sh");
	}
}

static json_t *es_environment_info(void)
{
	char shell_name[16], shell_path[AGENTD_PATH_MAX], cwd[AGENTD_PATH_MAX], host[256] = "";
	es_detect_shell(shell_name, sizeof(shell_name), shell_path, sizeof(shell_path));
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	struct passwd *pw = getpwuid(getuid());
	const char *home = getenv("HOME");
	if (!home || home[0] != '/')
		home = pw && pw->pw_dir ? pw->pw_dir : "/";
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	/* An opaque, stable name for this executor: the host and the user it runs commands as. */
	gethostname(host, sizeof(host) - 1);
	char seed[320], provider[8 + 65] = "sha256:";
	snprintf(seed, sizeof(seed), "agentd-execd:%s:%ld", host, (long)getuid());
	uint8_t digest[32];
	unsigned int digest_len = 0;
	EVP_Digest(seed, strlen(seed), digest, &digest_len, EVP_sha256(), NULL);
	for (size_t i = 0; i < 32; i++)
		snprintf(provider + 7 + 2 * i, 3, "%02x", digest[i]);

	json_t *shell = json_object();
	json_object_set_new(shell, "name", json_string(shell_name));
	json_object_set_new(shell, "path", es_json_string_lossy(shell_path, strlen(shell_path)));
	/*
	 * The capabilities a client may rely on: none of the optional features (network proxy,
	 * credential masking, capability discovery, file streaming, ...) is implemented here, so
	 * every flag is false and a client keeps to the base protocol.
	 */
	static const char *const capabilities[] = {
		"networkProxyLaunch",
		"networkProxyReviewDomains",
		"credentialMasking",
		"credentialMaskingCustomProviders",
		"capabilityDiscoverySandbox",
		"fsWatchMissing",
		"capabilityDiscoveryV2",
		"environmentConfigRead",
		"httpHeaderEnvVars",
		"sandboxedFileStreaming",
		"fileWriteStreaming",
		"shellSnapshotV2",
		"windowsMxc",
		"linuxRootWritePreservesDevices",
		"linuxApprovedRootWritePreservesRestrictions",
	};
	json_t *caps = json_object();
	for (size_t i = 0; i < sizeof(capabilities) / sizeof(capabilities[0]); i++)
		json_object_set_new(caps, capabilities[i], json_false());
	json_t *info = json_object();
	json_object_set_new(info, "shell", shell);
	json_object_set_new(info, "executorVersion", json_string(ES_PROTOCOL_VERSION));
	json_object_set_new(info, "providerId", json_string(provider));
	json_object_set_new(info, "cwd", es_uri_json(cwd));
	json_object_set_new(info, "userHomeDir", es_uri_json(home));
	json_object_set_new(info, "platformOs", json_string("linux"));
	json_object_set_new(info, "prependPathDirs", json_array());
	json_object_set_new(info, "temporaryDirectories", json_array());
	json_object_set_new(info, "tempDir", es_uri_json(tmp));
	json_object_set_new(info, "capabilities", caps);
	return info;
}

/* --- start and stop ------------------------------------------------------------------------------------- */

static int es_parse_listen(const char *url, EsListen *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	if (strcmp(url, "stdio") == 0 || strcmp(url, "stdio://") == 0) {
		out->is_stdio = true;
		return 0;
	}
	if (strncmp(url, "ws://", 5) != 0) {
		snprintf(err, err_len, "unsupported --listen URL `%s`; expected `ws://IP:PORT` or `stdio`",
			 url);
		return -EINVAL;
	}
	const char *addr = url + 5;
	const char *host = addr, *host_end, *colon;
	if (addr[0] == '[') {
		host = addr + 1;
		host_end = strchr(host, ']');
		colon = host_end && host_end[1] == ':' ? host_end + 1 : NULL;
	} else {
		colon = strrchr(addr, ':');
		host_end = colon;
	}
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	size_t host_len = host_end ? (size_t)(host_end - host) : 0;
	bool is_ok = colon && colon[1] && end && *end == '\0' && port >= 0 && port <= 65535 && host_len > 0 &&
		     host_len < sizeof(out->host) && strlen(addr) < sizeof(out->addr);
	if (is_ok) {
		memcpy(out->host, host, host_len);
		out->host[host_len] = '\0';
		struct sockaddr_in6 a6;
		struct sockaddr_in a4;
		is_ok = addr[0] == '[' ? uv_ip6_addr(out->host, (int)port, &a6) == 0
				       : uv_ip4_addr(out->host, (int)port, &a4) == 0;
	}
	if (!is_ok) {
		snprintf(err, err_len, "invalid websocket --listen URL `%s`; expected `ws://IP:PORT`", url);
		return -EINVAL;
	}
	out->port = (int)port;
	snprintf(out->addr, sizeof(out->addr), "%s", addr);
	return 0;
}

static void es_usage(FILE *out)
{
	fprintf(out, "usage: execd --listen URL [options]\n"
		     "  the standalone exec-server: runs processes and file operations for a remote client\n"
		     "  --listen URL                      ws://IP:PORT (port 0 picks one) or stdio (also "
		     "stdio://)\n"
		     "  --ws-auth MODE                    capability-token | signed-bearer-token\n"
		     "  --ws-token-file PATH              the capability token (hashed at start)\n"
		     "  --ws-token-sha256 HEX             or its SHA-256 digest\n"
		     "  --ws-shared-secret-file PATH      the HS256 secret for signed bearer tokens (>= 32 "
		     "bytes)\n"
		     "  --ws-issuer ISSUER                the `iss` signed tokens must carry\n"
		     "  --ws-audience AUDIENCE            the `aud` signed tokens must carry\n"
		     "  --ws-max-clock-skew-seconds N     leeway for `exp` and `nbf` (default 30)\n"
		     "  -d                                log at debug level\n"
		     "  --version                         print the version and exit\n");
}

static void es_on_signal(uv_signal_t *sig, int signum)
{
	EsServer *s = sig->data;
	log_info("signal %d: stopping", signum);
	es_server_stop(s);
}

static void es_on_spawner_lost(void *ctx)
{
	EsServer *s = ctx;
	/* Nothing can run without it: stop, so that whoever runs us starts a fresh execd. */
	es_server_stop(s);
}

void es_server_stop(EsServer *s)
{
	if (s->is_stopping)
		return;
	s->is_stopping = true;
	es_ws_stop(s);
	for (EsClient *c = s->clients; c; c = c->next)
		if (!c->is_closing) {
			c->is_closing = true;
			c->ops->close(c);
		}
	while (s->sessions)
		es_session_free(s->sessions);
	es_proc_shutdown(s);
	proc_table_free(s->procs); /* closes the spawner's socket: it kills and reaps what is left */
	s->procs = NULL;
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
}

/*
 * Beyond the common base: signalling process groups and reaping the spawner, the file
 * operations of the fs methods, and the sockets of the listener (the same list as the daemon
 * mode's, plus inet sockets).
 */
static const char *const es_syscalls[] = {
	"kill",	 "wait4",     "getdents64",	 "mkdir",     "mkdirat",   "unlink",   "unlinkat",
	"rmdir", "rename",    "renameat",	 "renameat2", "fchmod",	   "fchmodat", "ftruncate",
	"fsync", "fdatasync", "copy_file_range", "sendfile",  "utimensat", "symlink",  "symlinkat",
	"bind",	 "listen",    "accept",		 "accept4",   "fchown",
};

int exec_server_main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "ws-auth", required_argument, NULL, 'a' },
		{ "ws-token-file", required_argument, NULL, 't' },
		{ "ws-token-sha256", required_argument, NULL, 'T' },
		{ "ws-shared-secret-file", required_argument, NULL, 's' },
		{ "ws-issuer", required_argument, NULL, 'i' },
		{ "ws-audience", required_argument, NULL, 'u' },
		{ "ws-max-clock-skew-seconds", required_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	WsAuthOptions auth_opts = { 0 };
	const char *listen_url = "ws://127.0.0.1:0";
	bool is_debug = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "dh", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_url = optarg;
			break;
		case 'a':
			auth_opts.mode = optarg;
			break;
		case 't':
			auth_opts.token_file = optarg;
			break;
		case 'T':
			auth_opts.token_sha256 = optarg;
			break;
		case 's':
			auth_opts.shared_secret_file = optarg;
			break;
		case 'i':
			auth_opts.issuer = optarg;
			break;
		case 'u':
			auth_opts.audience = optarg;
			break;
		case 'k':
			auth_opts.max_clock_skew_s = optarg;
			break;
		case 'd':
			is_debug = true;
			break;
		case 'V':
			printf("execd %s (exec-server protocol %s)\n", PACKAGE_VERSION, ES_PROTOCOL_VERSION);
			return 0;
		case 'h':
			es_usage(stdout);
			return 0;
		default:
			es_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "execd: unexpected argument '%s'\n", argv[optind]);
		es_usage(stderr);
		return 2;
	}
	log_init("execd", is_debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);

	/* Configuration first: a mistake is reported before anything starts. */
	static EsServer server;
	EsServer *s = &server;
	EsListen listen;
	char err[2 * PATH_MAX + 256];
	if (es_parse_listen(listen_url, &listen, err, sizeof(err)) < 0 ||
	    ws_auth_configure(&auth_opts, &s->auth, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (listen.is_stdio && s->auth.mode != WS_AUTH_NONE) {
		log_error("WebSocket auth requires a WebSocket listener, not stdio");
		ws_auth_clear(&s->auth);
		return 1;
	}
	/* Only a loopback listener may go without client authentication. */
	if (!listen.is_stdio &&
	    ws_auth_check_listener(&s->auth, listen.host, listen.addr, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	s->is_stdio = listen.is_stdio;
	s->detached_ttl_ms = ES_DETACHED_SESSION_TTL_MS;
	const char *ttl = getenv("EXECD_DETACHED_SESSION_TTL_MS");
	if (ttl && *ttl) {
		char *end = NULL;
		unsigned long long value = strtoull(ttl, &end, 10);
		if (*end != '\0' || value < ES_DETACHED_SESSION_TTL_MIN_MS ||
		    value > ES_DETACHED_SESSION_TTL_MAX_MS) {
			log_error("EXECD_DETACHED_SESSION_TTL_MS must be a number of milliseconds from %u to "
				  "%u",
				  ES_DETACHED_SESSION_TTL_MIN_MS, ES_DETACHED_SESSION_TTL_MAX_MS);
			ws_auth_clear(&s->auth);
			return 1;
		}
		s->detached_ttl_ms = value;
	}

	/* The spawner is forked first: it must not inherit the seccomp list installed below. */
	int spawner_sock = -1;
	pid_t spawner_pid = 0;
	int rc = spawner_start(&spawner_sock, &spawner_pid);
	if (rc < 0) {
		log_error("cannot start the spawner: %s", strerror(-rc));
		ws_auth_clear(&s->auth);
		return 1;
	}
	static uv_loop_t loop;
	uv_loop_init(&loop);
	s->loop = &loop;
	s->environment_info = es_environment_info();
	signal(SIGPIPE, SIG_IGN); /* a closed client or stdin is an error to handle, not our death */
	/*
	 * execd spawns nothing itself (the spawner does) and needs no capability: no_new_privs, an
	 * empty bounding set and no ambient capabilities carry over to the commands it runs. Left
	 * after the seccomp list: the loop, the spawner's socket, the fs operations' file system
	 * calls, and inet sockets for the listener (bind, listen, accept).
	 */
	rc = daemon_drop_privileges("execd");
	if (rc == 0)
		rc = proc_table_new(s->loop, spawner_sock, &s->procs);
	SeccompProfile profile = { es_syscalls, sizeof(es_syscalls) / sizeof(es_syscalls[0]), true, false };
	if (rc == 0)
		rc = seccomp_filter_apply("execd", &profile);
	if (rc < 0) {
		log_error("cannot confine the exec-server: %s", strerror(-rc));
		goto out;
	}
	proc_table_set_on_spawner_lost(s->procs, es_on_spawner_lost, s);
	es_proc_init(s);
	uv_signal_init(s->loop, &s->sigterm);
	uv_signal_init(s->loop, &s->sigint);
	s->sigterm.data = s->sigint.data = s;
	uv_signal_start(&s->sigterm, es_on_signal, SIGTERM);
	uv_signal_start(&s->sigint, es_on_signal, SIGINT);
	rc = listen.is_stdio ? es_stdio_start(s) : es_ws_start(s, &listen);
	if (rc < 0) {
		es_server_stop(s);
		uv_run(s->loop, UV_RUN_DEFAULT);
		goto out;
	}
	log_info("exec-server started (pid %ld) on %s", (long)getpid(),
		 listen.is_stdio ? "stdio" : listen_url);
	uv_run(s->loop, UV_RUN_DEFAULT);
	log_info("exec-server stopped");
out:
	if (!s->is_stopping) {
		proc_table_free(s->procs);
		s->procs = NULL;
	}
	if (spawner_pid > 0)
		while (waitpid(spawner_pid, NULL, 0) < 0 && errno == EINTR)
			;
	json_decref(s->environment_info);
	ws_auth_clear(&s->auth);
	uv_loop_close(s->loop);
	return rc < 0 ? 1 : 0;
}
