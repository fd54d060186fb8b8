/* SPDX-License-Identifier: MIT */
/*
 * broker_call.c - plays agentd's broker for one helper daemon, so tests drive the daemon's internal
 * methods as JSON lines on stdin and read its answers and events as JSON lines on stdout.
 *
 *   broker-call [--runtime DIR] [--keep] SERVICE -- DAEMON_ARGV...
 *
 * It listens on DIR/SERVICE.sock (DIR: created if missing; a fresh directory under $TMPDIR, removed
 * at exit, when not given), spawns DAEMON_ARGV with AGENTD_RUNTIME_DIR=DIR, answers its hello as
 * the broker does, and prints {"ready":true,"pid":N,...}. Input lines (see usage()) become
 * requests, events and credit envelopes; output lines are described in broker_call.py. The
 * broker's own rules apply to what the daemon sends: a wrong source, anything before hello, a
 * request to agentd other than hello, or a destination that is no service cuts the daemon off
 * (it reconnects and says hello again). Unlike agentd, every event the daemon sends to agentd is
 * printed, whatever its method, so a daemon's new events can be tested before agentd knows them.
 *
 * Stop: stdin EOF (or SIGTERM/SIGINT) waits up to 5 s for outstanding requests, then SIGTERM to
 * the daemon, 5 s, SIGKILL, reap, exit 0. Without --keep, broker-call also stops once the daemon
 * it spawned has exited and its link is down; with --keep (once the daemon was ready) it waits
 * for stdin EOF, accepting a daemon started by someone else or a {"spawn":true} line meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>
#include <uv.h>

#include "base64.h"
#include "envelope.h"
#include "link.h"
#include "mp.h"
#include "mpjson.h"

extern char **environ;

#define BROKER_NAME "agentd"
/* How long outstanding requests may take to be answered once stdin has closed. */
#define DRAIN_TIMEOUT_MS 5000
/* SIGTERM to SIGKILL, as the spec of the tool says; helpers themselves stop within 3 s. */
#define TERM_TIMEOUT_MS 5000
/* A spawned daemon that has not said hello by then is stopped (a test would hang otherwise). */
#define HELLO_TIMEOUT_MS 15000
/* One input line: a body is at most 8 MiB of msgpack, as JSON (or base64) a little more. */
#define INPUT_LINE_MAX (ENVELOPE_MAX_BODY_BYTES * 2u + 4096u)
#define INPUT_READ_BYTES 65536

typedef enum Phase {
	PHASE_RUN,   /* serving */
	PHASE_DRAIN, /* stdin closed: waiting for outstanding responses */
	PHASE_TERM,  /* SIGTERM (then SIGKILL) sent: waiting to reap */
	PHASE_DONE,
} Phase;

/* A request sent to the daemon and not answered yet: its envelope id and the caller's JSON id. */
typedef struct Pending {
	struct Pending *next;
	uint64_t envelope_id;
	uint64_t connection_id;
	json_t *json_id;
} Pending;

typedef struct BrokerCall {
	uv_loop_t loop;
	Link *link;
	const char *service;
	char runtime_dir[PATH_MAX];
	char socket_path[PATH_MAX + ENVELOPE_NAME_MAX + 8];
	bool is_runtime_ours;
	char **daemon_argv;
	bool is_keep;
	Phase phase;
	int exit_status;

	pid_t child;	     /* the daemon we spawned and have not reaped, else 0 */
	bool has_spawned;    /* a child was spawned at least once */
	bool is_hello_armed; /* the hello timer runs for a child that has not registered */
	uv_signal_t sigchld, sigterm, sigint;
	uv_timer_t hello_timer, stop_timer;

	/* stdin: a stream (pipe, tty) or, for a regular file or device, uv_fs_read. */
	union {
		uv_pipe_t pipe;
		uv_tty_t tty;
	} in;
	bool is_in_stream, is_in_open, is_in_eof;
	uv_fs_t in_req;
	char in_chunk[INPUT_READ_BYTES];
	char *in_buf;
	size_t in_len, in_cap;

	bool is_registered; /* the daemon's hello was accepted on the current connection */
	bool has_been_ready;
	unsigned hello_count;
	uint64_t next_id;
	Pending *pending;
	size_t pending_count;
} BrokerCall;

static void broker_call_stop(BrokerCall *bc);
static void broker_call_terminate(BrokerCall *bc);
static void input_process(BrokerCall *bc);

static uint64_t broker_call_next_id(BrokerCall *bc)
{
	return ++bc->next_id;
}

/* ---- output: one JSON object per line ------------------------------------------------------- */

/* Print @line (stolen). A reader that went away stops us: nobody is left to see the answers. */
static void emit(BrokerCall *bc, json_t *line)
{
	if (!line)
		return;
	char *text = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "broker-call: cannot write to stdout; stopping\n");
		broker_call_stop(bc);
	}
	free(text);
}

static void emit_error(BrokerCall *bc, const json_t *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void emit_error(BrokerCall *bc, const json_t *id, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	json_t *line = json_pack("{s:s}", "error", message);
	if (id)
		json_object_set(line, "id", (json_t *)id);
	emit(bc, line);
}

/*
 * Add "body" to @line: the msgpack @body as JSON through mpjson, null when empty. A body mpjson
 * cannot express (bin, ext, non-string keys, not msgpack at all) is null with "raw": its bytes in
 * base64, so nothing the daemon said is lost.
 */
static void line_set_body(json_t *line, const uint8_t *body, size_t len)
{
	json_t *json = NULL;
	if (len) {
		msgpack_unpacked unpacked;
		size_t offset = 0;
		msgpack_unpacked_init(&unpacked);
		if (msgpack_unpack_next(&unpacked, (const char *)body, len, &offset) ==
			    MSGPACK_UNPACK_SUCCESS &&
		    offset == len)
			json = mpjson_from_object(&unpacked.data);
		msgpack_unpacked_destroy(&unpacked);
		if (!json) {
			char *raw = malloc(base64_encoded_len(len) + 1);
			if (raw) {
				base64_encode(body, len, raw);
				json_object_set_new(line, "raw", json_string(raw));
				free(raw);
			}
		}
	}
	json_object_set_new(line, "body", json ? json : json_null());
}

static json_t *json_u64(uint64_t value)
{
	return value > (uint64_t)INT64_MAX ? json_real((double)value) : json_integer((json_int_t)value);
}

/* ---- requests we sent and their answers ------------------------------------------------------ */

static void pending_add(BrokerCall *bc, uint64_t envelope_id, uint64_t connection_id, json_t *json_id)
{
	Pending *p = calloc(1, sizeof(*p));
	if (!p) {
		fprintf(stderr, "broker-call: out of memory\n");
		exit(1);
	}
	p->envelope_id = envelope_id;
	p->connection_id = connection_id;
	p->json_id = json_incref(json_id);
	p->next = bc->pending;
	bc->pending = p;
	bc->pending_count++;
}

/* Take the request that @correlation_id answers, or NULL. */
static Pending *pending_take(BrokerCall *bc, uint64_t correlation_id)
{
	for (Pending **pp = &bc->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->envelope_id == correlation_id) {
			Pending *p = *pp;
			*pp = p->next;
			bc->pending_count--;
			return p;
		}
	}
	return NULL;
}

static void pending_free(Pending *p)
{
	json_decref(p->json_id);
	free(p);
}

/* An answer given on the daemon's behalf, as the broker gives it ("broker":true marks it). */
static void emit_broker_answer(BrokerCall *bc, const json_t *json_id, uint64_t connection_id, int32_t status)
{
	json_t *line = json_pack("{s:O,s:i,s:o,s:n,s:b}", "id", (json_t *)json_id, "status", (int)status,
				 "connection", json_u64(connection_id), "body", "broker", 1);
	emit(bc, line);
}

/* The link dropped: nothing sent before will be answered; the broker says -EHOSTUNREACH. */
static void pending_fail_all(BrokerCall *bc)
{
	/* The list is newest first: answer in the order the requests were made. */
	Pending *reversed = NULL;
	while (bc->pending) {
		Pending *p = bc->pending;
		bc->pending = p->next;
		p->next = reversed;
		reversed = p;
	}
	bc->pending_count = 0;
	while (reversed) {
		Pending *p = reversed;
		reversed = p->next;
		emit_broker_answer(bc, p->json_id, p->connection_id, ENVELOPE_STATUS_UNAVAILABLE);
		pending_free(p);
	}
}

/* ---- the daemon's side of the link ----------------------------------------------------------- */

static bool is_service_name(const char *name)
{
	static const char *const services[] = { "agentd", "execd", "sandboxd", "authd", "watchd" };
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		if (strcmp(name, services[i]) == 0)
			return true;
	}
	return false;
}

static void reply(BrokerCall *bc, const Envelope *req, int32_t status)
{
	Envelope resp = { .version = ENVELOPE_VERSION,
			  .kind = ENVELOPE_RESPONSE,
			  .id = broker_call_next_id(bc),
			  .correlation_id = req->id,
			  .connection_id = req->connection_id,
			  .status = status };
	snprintf(resp.source, sizeof(resp.source), "%s", req->destination);
	snprintf(resp.destination, sizeof(resp.destination), "%s", req->source);
	int rc = link_send(bc->link, &resp);
	if (rc < 0)
		fprintf(stderr, "broker-call: cannot answer %s: %s\n", req->method, strerror(-rc));
}

/* A violation as agentd's broker sees one: say so and close the daemon's connection. */
static void cut_off(BrokerCall *bc, const Envelope *env, const char *why)
{
	json_t *line =
		json_pack("{s:s,s:s,s:s,s:s,s:b}", "violation", why, "kind", envelope_kind_name(env->kind),
			  "method", env->method, "destination", env->destination, "cut_off", 1);
	emit(bc, line);
	fprintf(stderr, "broker-call: cutting %s off: %s\n", bc->service, why);
	link_cut_off(bc->link);
}

static void on_first_ready(BrokerCall *bc)
{
	bc->has_been_ready = true;
	/* Lines that came before the daemon was ready were kept for now. */
	input_process(bc);
}

static void handle_hello(BrokerCall *bc, const Envelope *env)
{
	MpBody body;
	int32_t status = 0;
	uint64_t body_pid = 0;
	if (mp_body_parse(env->body, env->body_len, &body) < 0) {
		status = -EBADMSG;
	} else {
		const char *name;
		size_t len;
		if (mp_get_str(body.map, "service", ENVELOPE_NAME_MAX, &name, &len) < 0 ||
		    len != strlen(bc->service) || memcmp(name, bc->service, len) != 0)
			status = -EPERM;
		mp_get_u64(body.map, "pid", &body_pid);
		mp_body_free(&body);
	}
	reply(bc, env, status);
	if (status < 0) {
		emit(bc, json_pack("{s:b,s:i}", "hello_refused", 1, "status", (int)status));
		if (status == -EPERM)
			link_cut_off(bc->link);
		return;
	}
	bc->is_registered = true;
	bc->hello_count++;
	if (bc->is_hello_armed) {
		uv_timer_stop(&bc->hello_timer);
		bc->is_hello_armed = false;
	}
	/* The kernel's word for the pid, as agentd takes it; the body's if the kernel said nothing. */
	int pid = link_peer_pid(bc->link);
	json_t *line =
		json_pack("{s:b,s:i,s:i,s:I,s:s}", "ready", 1, "pid", pid > 0 ? pid : (int)body_pid, "child",
			  (int)bc->child, "hello", (json_int_t)bc->hello_count, "runtime", bc->runtime_dir);
	emit(bc, line);
	if (!bc->has_been_ready)
		on_first_ready(bc);
}

static void handle_response(BrokerCall *bc, const Envelope *env)
{
	Pending *p = pending_take(bc, env->correlation_id);
	json_t *line;
	if (p) {
		line = json_pack("{s:O,s:i,s:o}", "id", p->json_id, "status", (int)env->status, "connection",
				 json_u64(env->connection_id));
		pending_free(p);
	} else {
		line = json_pack("{s:b,s:o,s:i,s:o}", "unmatched", 1, "correlation_id",
				 json_u64(env->correlation_id), "status", (int)env->status, "connection",
				 json_u64(env->connection_id));
	}
	if (strcmp(env->destination, BROKER_NAME) != 0)
		json_object_set_new(line, "destination", json_string(env->destination));
	line_set_body(line, env->body, env->body_len);
	emit(bc, line);
	if (bc->phase == PHASE_DRAIN && bc->pending_count == 0)
		broker_call_terminate(bc);
}

static void handle_event(BrokerCall *bc, const Envelope *env)
{
	json_t *line =
		json_pack("{s:s,s:o}", "event", env->method, "connection", json_u64(env->connection_id));
	if (strcmp(env->destination, BROKER_NAME) != 0)
		json_object_set_new(line, "destination", json_string(env->destination));
	line_set_body(line, env->body, env->body_len);
	emit(bc, line);
}

/* Credit goes from agentd to producers; one coming from a helper is printed for the test to judge. */
static void handle_credit(BrokerCall *bc, const Envelope *env)
{
	json_t *line = json_pack("{s:b,s:o,s:s}", "credit", 1, "connection", json_u64(env->connection_id),
				 "destination", env->destination);
	line_set_body(line, env->body, env->body_len);
	emit(bc, line);
}

/* A request from the daemon to a helper: no other helper is registered here, so -EHOSTUNREACH. */
static void handle_request(BrokerCall *bc, const Envelope *env)
{
	json_t *line = json_pack("{s:s,s:s,s:o}", "request", env->method, "destination", env->destination,
				 "connection", json_u64(env->connection_id));
	line_set_body(line, env->body, env->body_len);
	emit(bc, line);
	reply(bc, env, ENVELOPE_STATUS_UNAVAILABLE);
}

static void on_envelope(Link *link, const Envelope *env, void *ctx)
{
	BrokerCall *bc = ctx;
	if (strcmp(env->source, bc->service) != 0) {
		cut_off(bc, env, "source is not the service of this socket");
		return;
	}
	if (env->kind == ENVELOPE_REQUEST && strcmp(env->method, "hello") == 0 &&
	    strcmp(env->destination, BROKER_NAME) == 0) {
		handle_hello(bc, env);
		return;
	}
	if (!bc->is_registered) {
		cut_off(bc, env, "sent before a successful hello");
		return;
	}
	if (!is_service_name(env->destination)) {
		cut_off(bc, env, "destination is no service");
		return;
	}
	switch (env->kind) {
	case ENVELOPE_RESPONSE:
		handle_response(bc, env);
		break;
	case ENVELOPE_EVENT:
		handle_event(bc, env);
		break;
	case ENVELOPE_CREDIT:
		handle_credit(bc, env);
		break;
	case ENVELOPE_REQUEST:
		if (strcmp(env->destination, BROKER_NAME) == 0)
			cut_off(bc, env, "a request to agentd other than hello");
		else
			handle_request(bc, env);
		break;
	}
}

/* --keep outlives a daemon that exits, but not one that never became ready: nothing to keep. */
static bool is_kept_alive(const BrokerCall *bc)
{
	return bc->is_keep && bc->has_been_ready;
}

static void on_peer(Link *link, bool is_connected, void *ctx)
{
	BrokerCall *bc = ctx;
	if (is_connected)
		return;
	bc->is_registered = false;
	emit(bc, json_pack("{s:b}", "disconnected", 1));
	pending_fail_all(bc);
	if (bc->phase == PHASE_DRAIN)
		broker_call_terminate(bc);
	else if (bc->phase == PHASE_RUN && bc->has_spawned && bc->child == 0 && !is_kept_alive(bc))
		broker_call_stop(bc);
}

/* ---- input lines ---------------------------------------------------------------------------- */

static int pack_body(const json_t *msg, const json_t *id, msgpack_sbuffer *sbuf, BrokerCall *bc)
{
	const json_t *raw = json_object_get(msg, "raw_body");
	const json_t *body = json_object_get(msg, "body");
	if (raw) {
		const char *text = json_string_value(raw);
		size_t len = json_string_length(raw), out_len = 0;
		uint8_t *bytes = text ? malloc(base64_decoded_max(len) + 1) : NULL;
		if (!bytes || base64_decode(text, len, bytes, &out_len) < 0) {
			free(bytes);
			emit_error(bc, id, "raw_body is not a base64 string");
			return -1;
		}
		if (out_len)
			msgpack_sbuffer_write(sbuf, (const char *)bytes, out_len);
		free(bytes);
		return 0;
	}
	msgpack_packer pk;
	msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
	if (!body) {
		msgpack_pack_map(&pk, 0);
		return 0;
	}
	if (mpjson_pack(&pk, body) < 0) {
		emit_error(bc, id, "body cannot be packed");
		return -1;
	}
	return 0;
}

/* "source"/"destination" overrides (to test a daemon's own checks); defaults agentd -> SERVICE. */
static int envelope_from_line(BrokerCall *bc, const json_t *msg, const json_t *id, const char *method,
			      Envelope *env)
{
	const json_t *conn = json_object_get(msg, "connection");
	const char *source = json_string_value(json_object_get(msg, "source"));
	const char *destination = json_string_value(json_object_get(msg, "destination"));
	if (conn && (!json_is_integer(conn) || json_integer_value(conn) < 0)) {
		emit_error(bc, id, "connection must be a non-negative integer");
		return -1;
	}
	if (strlen(method) > ENVELOPE_METHOD_MAX) {
		emit_error(bc, id, "method longer than %u characters", ENVELOPE_METHOD_MAX);
		return -1;
	}
	env->version = ENVELOPE_VERSION;
	env->id = broker_call_next_id(bc);
	env->connection_id = conn ? (uint64_t)json_integer_value(conn) : 0;
	snprintf(env->method, sizeof(env->method), "%s", method);
	snprintf(env->source, sizeof(env->source), "%s", source ? source : BROKER_NAME);
	snprintf(env->destination, sizeof(env->destination), "%s", destination ? destination : bc->service);
	return 0;
}

static void send_from_line(BrokerCall *bc, const json_t *msg, EnvelopeKind kind, const char *method)
{
	const json_t *id = kind == ENVELOPE_REQUEST ? json_object_get(msg, "id") : NULL;
	Envelope env = { .kind = kind };
	msgpack_sbuffer sbuf;
	msgpack_sbuffer_init(&sbuf);
	if (envelope_from_line(bc, msg, id, method, &env) < 0 || pack_body(msg, id, &sbuf, bc) < 0)
		goto out;
	env.body = (const uint8_t *)sbuf.data;
	env.body_len = sbuf.size;
	if (!bc->is_registered) {
		/* As the broker: a request to a helper that is not registered is answered at once. */
		if (kind == ENVELOPE_REQUEST)
			emit_broker_answer(bc, id, env.connection_id, ENVELOPE_STATUS_UNAVAILABLE);
		else
			fprintf(stderr, "broker-call: %s not registered; dropping %s\n", bc->service,
				envelope_kind_name(kind));
		goto out;
	}
	int rc = link_send(bc->link, &env);
	if (rc == -EAGAIN && kind == ENVELOPE_REQUEST) {
		emit_broker_answer(bc, id, env.connection_id, -EAGAIN);
	} else if (rc < 0) {
		emit_error(bc, id, "cannot send %s %s: %s", envelope_kind_name(kind), method, strerror(-rc));
	} else if (kind == ENVELOPE_REQUEST) {
		pending_add(bc, env.id, env.connection_id, (json_t *)id);
	}
out:
	msgpack_sbuffer_destroy(&sbuf);
}

static int spawn_daemon(BrokerCall *bc);

static void input_line(BrokerCall *bc, const char *text, size_t len)
{
	while (len && (text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t'))
		len--;
	if (len == 0)
		return;
	json_error_t err;
	json_t *msg = json_loadb(text, len, 0, &err);
	if (!json_is_object(msg)) {
		emit_error(bc, NULL, "input is not a JSON object: %s", msg ? "another JSON value" : err.text);
		json_decref(msg);
		return;
	}
	const json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	const char *event = json_string_value(json_object_get(msg, "event"));
	if (id && method) {
		send_from_line(bc, msg, ENVELOPE_REQUEST, method);
	} else if (event) {
		send_from_line(bc, msg, ENVELOPE_EVENT, event);
	} else if (json_object_get(msg, "credit")) {
		/* {"credit":true,"connection":C,"body":{...}} or the body itself: {"credit":{...}} */
		json_t *credit = json_object_get(msg, "credit");
		if (json_is_object(credit) && !json_object_get(msg, "body"))
			json_object_set(msg, "body", credit);
		send_from_line(bc, msg, ENVELOPE_CREDIT, "");
	} else if (json_object_get(msg, "spawn")) {
		if (bc->child > 0)
			emit_error(bc, NULL, "the daemon (pid %ld) is still running", (long)bc->child);
		else
			spawn_daemon(bc);
	} else {
		emit_error(bc, id, "input names no method (with an id), event, credit or spawn");
	}
	json_decref(msg);
}

/* Handle every complete line buffered; lines wait until the daemon first said hello. */
static void input_process(BrokerCall *bc)
{
	if (!bc->has_been_ready)
		return;
	size_t start = 0;
	while (bc->phase == PHASE_RUN && start < bc->in_len) {
		char *nl = memchr(bc->in_buf + start, '\n', bc->in_len - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (bc->in_buf + start));
		input_line(bc, bc->in_buf + start, len);
		start += len + 1;
	}
	if (bc->is_in_eof && bc->phase == PHASE_RUN && start < bc->in_len) {
		/* A last line without its newline still counts. */
		input_line(bc, bc->in_buf + start, bc->in_len - start);
		start = bc->in_len;
	}
	if (start) {
		memmove(bc->in_buf, bc->in_buf + start, bc->in_len - start);
		bc->in_len -= start;
	}
	if (bc->is_in_eof)
		broker_call_stop(bc);
}

static void input_append(BrokerCall *bc, const char *data, size_t len)
{
	if (bc->in_len + len > INPUT_LINE_MAX + INPUT_READ_BYTES) {
		fprintf(stderr, "broker-call: input line longer than %u bytes; stopping\n", INPUT_LINE_MAX);
		bc->is_in_eof = true;
		bc->in_len = 0;
		return;
	}
	if (bc->in_len + len > bc->in_cap) {
		size_t cap = bc->in_cap ? bc->in_cap : 4096;
		while (cap < bc->in_len + len)
			cap *= 2;
		char *grown = realloc(bc->in_buf, cap);
		if (!grown) {
			fprintf(stderr, "broker-call: out of memory\n");
			exit(1);
		}
		bc->in_buf = grown;
		bc->in_cap = cap;
	}
	memcpy(bc->in_buf + bc->in_len, data, len);
	bc->in_len += len;
}

static void input_close(BrokerCall *bc)
{
	if (bc->is_in_stream && bc->is_in_open) {
		uv_read_stop((uv_stream_t *)&bc->in);
		uv_close((uv_handle_t *)&bc->in, NULL);
	}
	bc->is_in_open = false;
}

static void input_on_eof(BrokerCall *bc)
{
	bc->is_in_eof = true;
	input_close(bc);
	input_process(bc);
}

static void on_stream_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	BrokerCall *bc = handle->data;
	*buf = uv_buf_init(bc->in_chunk, sizeof(bc->in_chunk));
}

static void on_stream_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	BrokerCall *bc = stream->data;
	if (nread > 0) {
		input_append(bc, buf->base, (size_t)nread);
		if (bc->is_in_eof)
			input_on_eof(bc);
		else
			input_process(bc);
	} else if (nread < 0) {
		if (nread != UV_EOF)
			fprintf(stderr, "broker-call: reading stdin: %s\n", uv_strerror((int)nread));
		input_on_eof(bc);
	}
}

static void file_read_next(BrokerCall *bc);

static void on_file_read(uv_fs_t *req)
{
	BrokerCall *bc = req->data;
	ssize_t nread = req->result;
	uv_fs_req_cleanup(req);
	if (nread > 0) {
		input_append(bc, bc->in_chunk, (size_t)nread);
		if (bc->is_in_eof) {
			input_on_eof(bc);
			return;
		}
		input_process(bc);
		if (bc->phase == PHASE_RUN)
			file_read_next(bc);
		return;
	}
	if (nread < 0)
		fprintf(stderr, "broker-call: reading stdin: %s\n", uv_strerror((int)nread));
	input_on_eof(bc);
}

static void file_read_next(BrokerCall *bc)
{
	uv_buf_t buf = uv_buf_init(bc->in_chunk, sizeof(bc->in_chunk));
	bc->in_req.data = bc;
	int rc = uv_fs_read(&bc->loop, &bc->in_req, 0, &buf, 1, -1, on_file_read);
	if (rc < 0) {
		fprintf(stderr, "broker-call: reading stdin: %s\n", uv_strerror(rc));
		input_on_eof(bc);
	}
}

static int input_start(BrokerCall *bc)
{
	int rc;
	bc->is_in_open = true;
	switch (uv_guess_handle(0)) {
	case UV_TTY:
		rc = uv_tty_init(&bc->loop, &bc->in.tty, 0, 1);
		break;
	case UV_NAMED_PIPE:
		rc = uv_pipe_init(&bc->loop, &bc->in.pipe, 0);
		if (rc == 0 && (rc = uv_pipe_open(&bc->in.pipe, 0)) < 0)
			uv_close((uv_handle_t *)&bc->in.pipe, NULL);
		break;
	default:
		/* A regular file or /dev/null: epoll cannot watch those. */
		file_read_next(bc);
		return 0;
	}
	if (rc < 0)
		return rc;
	bc->is_in_stream = true;
	bc->in.pipe.data = bc;
	return uv_read_start((uv_stream_t *)&bc->in, on_stream_alloc, on_stream_read);
}

/* ---- the child -------------------------------------------------------------------------------- */

static void on_hello_timeout(uv_timer_t *timer)
{
	BrokerCall *bc = timer->data;
	bc->is_hello_armed = false;
	emit_error(bc, NULL, "%s sent no hello within %d s", bc->service, HELLO_TIMEOUT_MS / 1000);
	bc->exit_status = 1;
	broker_call_stop(bc);
}

static int spawn_daemon(BrokerCall *bc)
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t defaults;
	/* The daemon must not read our stdin (the test's requests) nor write into our stdout. */
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&actions, 2, 1);
	/* We ignore SIGPIPE; the daemon starts from the defaults as under agentd. */
	posix_spawnattr_init(&attr);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	posix_spawnattr_setsigdefault(&attr, &defaults);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int rc = posix_spawnp(&pid, bc->daemon_argv[0], &actions, &attr, bc->daemon_argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		emit_error(bc, NULL, "cannot spawn %s: %s", bc->daemon_argv[0], strerror(rc));
		return -rc;
	}
	bc->child = pid;
	bc->has_spawned = true;
	bc->is_hello_armed = true;
	uv_timer_start(&bc->hello_timer, on_hello_timeout, HELLO_TIMEOUT_MS, 0);
	return 0;
}

static int decode_wait_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return status;
}

static void on_sigchld(uv_signal_t *handle, int signum)
{
	BrokerCall *bc = handle->data;
	int status;
	if (bc->child <= 0 || waitpid(bc->child, &status, WNOHANG) != bc->child)
		return;
	emit(bc, json_pack("{s:b,s:i,s:i}", "exited", 1, "status", decode_wait_status(status), "pid",
			   (int)bc->child));
	bc->child = 0;
	if (bc->is_hello_armed) {
		uv_timer_stop(&bc->hello_timer);
		bc->is_hello_armed = false;
	}
	if (bc->phase == PHASE_TERM) {
		bc->phase = PHASE_DONE;
		uv_stop(&bc->loop);
	} else if (bc->phase == PHASE_RUN && !is_kept_alive(bc) && !link_is_connected(bc->link)) {
		/* Nothing is left: no daemon, no link (a daemon that forked away keeps us going). */
		broker_call_stop(bc);
	}
}

/* ---- stopping --------------------------------------------------------------------------------- */

static void on_kill_timeout(uv_timer_t *timer)
{
	BrokerCall *bc = timer->data;
	if (bc->child > 0) {
		fprintf(stderr, "broker-call: %s (pid %ld) still running %d s after SIGTERM; SIGKILL\n",
			bc->service, (long)bc->child, TERM_TIMEOUT_MS / 1000);
		kill(bc->child, SIGKILL);
	}
}

static void broker_call_terminate(BrokerCall *bc)
{
	if (bc->phase == PHASE_TERM || bc->phase == PHASE_DONE)
		return;
	bc->phase = PHASE_TERM;
	uv_timer_stop(&bc->stop_timer);
	if (bc->child <= 0) {
		bc->phase = PHASE_DONE;
		uv_stop(&bc->loop);
		return;
	}
	kill(bc->child, SIGTERM);
	uv_timer_start(&bc->stop_timer, on_kill_timeout, TERM_TIMEOUT_MS, 0);
}

static void on_drain_timeout(uv_timer_t *timer)
{
	BrokerCall *bc = timer->data;
	fprintf(stderr, "broker-call: %zu request(s) still unanswered %d s after stdin closed\n",
		bc->pending_count, DRAIN_TIMEOUT_MS / 1000);
	broker_call_terminate(bc);
}

/* Stop reading, let outstanding requests be answered (up to DRAIN_TIMEOUT_MS), then terminate. */
static void broker_call_stop(BrokerCall *bc)
{
	if (bc->phase != PHASE_RUN)
		return;
	bc->phase = PHASE_DRAIN;
	input_close(bc);
	if (bc->pending_count && bc->is_registered) {
		uv_timer_start(&bc->stop_timer, on_drain_timeout, DRAIN_TIMEOUT_MS, 0);
		return;
	}
	broker_call_terminate(bc);
}

static void on_stop_signal(uv_signal_t *handle, int signum)
{
	broker_call_stop(handle->data);
}

/* ---- set-up and tear-down --------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int runtime_dir_prepare(BrokerCall *bc, const char *requested)
{
	if (!requested) {
		const char *tmp = getenv("TMPDIR");
		/* Short: a unix socket path holds at most 107 bytes. */
		snprintf(bc->runtime_dir, sizeof(bc->runtime_dir), "%s/broker-call.XXXXXX",
			 tmp && *tmp && strlen(tmp) < 48 ? tmp : "/tmp");
		if (!mkdtemp(bc->runtime_dir))
			return -errno;
		bc->is_runtime_ours = true;
		return 0;
	}
	if (mkdir(requested, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (!realpath(requested, bc->runtime_dir))
		return -errno;
	return 0;
}

static void runtime_dir_cleanup(BrokerCall *bc)
{
	/* agentd removes its socket files when it stops; the directory goes only if we made it. */
	unlink(bc->socket_path);
	if (bc->is_runtime_ours)
		nftw(bc->runtime_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void close_walk(uv_handle_t *handle, void *arg)
{
	if (!uv_is_closing(handle))
		uv_close(handle, NULL);
}

static void usage(FILE *out)
{
	static const char text[] =
		"usage: broker-call [--runtime DIR] [--keep] SERVICE -- DAEMON_ARGV...\n"
		"Plays agentd's broker for one helper: listens on DIR/SERVICE.sock, spawns\n"
		"DAEMON_ARGV with AGENTD_RUNTIME_DIR=DIR, answers its hello and prints\n"
		"{\"ready\":true,\"pid\":N}. Then reads one JSON object per line:\n"
		"  {\"id\":ID,\"method\":M,\"connection\":C,\"body\":{...}}  a request; its answer\n"
		"                                 prints as {\"id\":ID,\"status\":S,\"body\":...}\n"
		"  {\"event\":M,\"connection\":C,\"body\":{...}}  an event\n"
		"  {\"credit\":true,\"connection\":C,\"body\":{...}}  a credit envelope\n"
		"  {\"spawn\":true}  start DAEMON_ARGV again once it has exited\n"
		"  optional keys: raw_body (base64 msgpack instead of body), source, destination\n"
		"Also printed: {\"event\":M,\"connection\":C,\"body\":...} for each event,\n"
		"{\"exited\":true,\"status\":N}, {\"disconnected\":true}, {\"violation\":...},\n"
		"{\"error\":...}. stdin EOF stops the daemon.\n"
		"  --runtime DIR  runtime directory (default: a new one in $TMPDIR, removed at exit)\n"
		"  --keep         keep serving after the daemon exits, until stdin closes\n";
	fputs(text, out);
}

static int parse_args(BrokerCall *bc, int argc, char **argv, const char **runtime)
{
	static const struct option options[] = {
		{ "runtime", required_argument, NULL, 'r' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	/* '+': stop at SERVICE, so the daemon's own flags after "--" are never ours. */
	while ((opt = getopt_long(argc, argv, "+r:kh", options, NULL)) != -1) {
		switch (opt) {
		case 'r':
			*runtime = optarg;
			break;
		case 'k':
			bc->is_keep = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (argc - optind < 3 || strcmp(argv[optind + 1], "--") != 0)
		return -1;
	bc->service = argv[optind];
	bc->daemon_argv = argv + optind + 2;
	if (!envelope_name_is_valid(bc->service) || strcmp(bc->service, BROKER_NAME) == 0) {
		fprintf(stderr, "broker-call: %s is not a helper's service name\n", bc->service);
		return -1;
	}
	return 0;
}

static int broker_call_start(BrokerCall *bc, const char *runtime)
{
	char url[PATH_MAX + 16];
	int rc = runtime_dir_prepare(bc, runtime);
	if (rc < 0) {
		fprintf(stderr, "broker-call: runtime directory %s: %s\n", runtime ? runtime : "(new)",
			strerror(-rc));
		return rc;
	}
	snprintf(bc->socket_path, sizeof(bc->socket_path), "%s/%s.sock", bc->runtime_dir, bc->service);
	if (setenv("AGENTD_RUNTIME_DIR", bc->runtime_dir, 1) < 0)
		return -errno;
	uv_loop_init(&bc->loop);
	uv_timer_init(&bc->loop, &bc->hello_timer);
	uv_timer_init(&bc->loop, &bc->stop_timer);
	bc->hello_timer.data = bc->stop_timer.data = bc;
	uv_signal_t *sigs[] = { &bc->sigchld, &bc->sigterm, &bc->sigint };
	const int nums[] = { SIGCHLD, SIGTERM, SIGINT };
	for (int i = 0; i < 3; i++) {
		uv_signal_init(&bc->loop, sigs[i]);
		sigs[i]->data = bc;
		/* SIGCHLD is watched before the child exists, so its exit cannot be missed. */
		if ((rc = uv_signal_start(sigs[i], nums[i] == SIGCHLD ? on_sigchld : on_stop_signal,
					  nums[i])) < 0)
			return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	static const LinkEvents events = { on_envelope, on_peer };
	if ((rc = link_url_for_service(bc->runtime_dir, bc->service, url, sizeof(url))) < 0 ||
	    (rc = link_open(&bc->loop, LINK_LISTEN, url, &events, bc, &bc->link)) < 0) {
		fprintf(stderr, "broker-call: cannot listen on %s: %s\n", bc->socket_path, strerror(-rc));
		return rc;
	}
	if ((rc = input_start(bc)) < 0) {
		fprintf(stderr, "broker-call: cannot read stdin: %s\n", uv_strerror(rc));
		return rc;
	}
	return spawn_daemon(bc);
}

int main(int argc, char **argv)
{
	static BrokerCall bc;
	const char *runtime = NULL;
	if (parse_args(&bc, argc, argv, &runtime) < 0) {
		usage(stderr);
		return 2;
	}
	if (broker_call_start(&bc, runtime) < 0) {
		if (bc.child > 0) {
			kill(bc.child, SIGKILL);
			waitpid(bc.child, NULL, 0);
		}
		runtime_dir_cleanup(&bc);
		return 1;
	}
	uv_run(&bc.loop, UV_RUN_DEFAULT);
	/* The process exits next: leave the nng socket to the kernel (see link_abandon()). */
	link_abandon(bc.link);
	runtime_dir_cleanup(&bc);
	while (bc.pending) {
		Pending *p = bc.pending;
		bc.pending = p->next;
		pending_free(p);
	}
	free(bc.in_buf);
	fflush(stdout);
	/* A read of a regular file may still be in the thread pool; it ends on its own. */
	uv_walk(&bc.loop, close_walk, NULL);
	uv_run(&bc.loop, UV_RUN_NOWAIT);
	/* A daemon that never became ready is a failure for the caller, whatever it printed. */
	return bc.has_been_ready ? bc.exit_status : 1;
}
