/* SPDX-License-Identifier: MIT */
/* tool_exec.c - the agent's own commands: sandboxd's plan, then execd's exec.start under the owner's
 * pseudo connection id; output on credit, writes and kills held until the process exists. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_ipc.h"
#include "log.h"
#include "mp.h"
#include "paths.h"
#include "tool_exec.h"

extern char **environ;

/* Largest stdin piece per exec.write (execd's EXECD_MAX_WRITE_BYTES). */
#define TOOL_EXEC_WRITE_PIECE (1024u * 1024u)
#define TOOL_EXEC_MESSAGE_MAX 1200u

/* A write or kill asked for before execd answered exec.start: sent once it has. */
typedef struct ToolExecHeld {
	struct ToolExecHeld *next;
	const char *method;
	size_t len;
	uint8_t body[];
} ToolExecHeld;

typedef enum ToolExecEnding {
	TOOL_EXEC_ENDING_NONE,
	TOOL_EXEC_ENDING_EXIT,
	TOOL_EXEC_ENDING_ERROR,
} ToolExecEnding;

struct ToolExec {
	ToolExec *prev, *next; /* the table's list of live runs */
	ToolExec *ready_next;  /* the table's queue of endings to deliver */
	struct ToolExecTable *table;
	Agentd *server;
	uint64_t owner, conn_id, exec_id;
	ToolExecEvents ev;
	void *ctx;
	json_t *argv, *env, *policy;
	char cwd[AGENTD_PATH_MAX];
	char *tmpdir;
	char *workspace;
	int64_t timeout_ms;
	uint64_t cap_bytes;
	bool is_tty, has_stdin;
	unsigned calls_in_flight; /* broker calls carrying this run as their context */
	bool is_started;	  /* execd answered exec.start */
	bool is_over;		  /* exec.closed, an error, or killed with its owner: no more events */
	bool is_detached;	  /* the caller let go */
	bool is_queued;		  /* on the ready queue */
	bool is_kill_asked;
	bool stdin_closed;
	ToolExecEnding ending; /* what the ready queue delivers */
	int64_t exit_code;
	char *message;
	bool is_refusal;
	ToolExecHeld *held, *held_tail;
};

/* Behind Agentd.tool_execs: the live runs and one timer that delivers endings outside the call that
 * caused them (a broker call to a helper that is down answers before it returns). */
typedef struct ToolExecTable {
	ToolExec *runs;
	ToolExec *ready, *ready_tail;
	uv_timer_t defer;
	bool has_timer;
} ToolExecTable;

static void tool_exec_deliver_ready(uv_timer_t *timer);

static ToolExecTable *tool_exec_table(Agentd *server)
{
	if (server->tool_execs)
		return server->tool_execs;
	ToolExecTable *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (uv_timer_init(server->loop, &t->defer) == 0) {
		t->has_timer = true;
		t->defer.data = t;
		uv_unref((uv_handle_t *)&t->defer); /* pending endings alone do not keep agentd up */
	}
	server->tool_execs = t;
	return t;
}

static ToolExec *tool_exec_find(Agentd *server, uint64_t conn_id, uint64_t exec_id)
{
	ToolExecTable *t = server->tool_execs;
	for (ToolExec *x = t ? t->runs : NULL; x; x = x->next)
		if (x->conn_id == conn_id && x->exec_id == exec_id)
			return x;
	return NULL;
}

static void tool_exec_drop_held(ToolExec *x)
{
	while (x->held) {
		ToolExecHeld *h = x->held;
		x->held = h->next;
		free(h);
	}
	x->held_tail = NULL;
}

/* Frees @x once nothing refers to it any more: the caller, a broker call, the ready queue. */
static void tool_exec_maybe_free(ToolExec *x)
{
	if (!x->is_detached || x->calls_in_flight || x->is_queued || !x->is_over)
		return;
	ToolExecTable *t = x->table;
	if (x->prev)
		x->prev->next = x->next;
	else
		t->runs = x->next;
	if (x->next)
		x->next->prev = x->prev;
	tool_exec_drop_held(x);
	json_decref(x->argv);
	json_decref(x->env);
	json_decref(x->policy);
	free(x->tmpdir);
	free(x->workspace);
	free(x->message);
	free(x);
}

/* Ends @x: no execd event about it counts any more; the ending reaches the caller from the loop. */
static void tool_exec_end(ToolExec *x, ToolExecEnding ending, int64_t exit_code, const char *message,
			  bool is_refusal)
{
	if (x->is_over)
		return;
	x->is_over = true;
	tool_exec_drop_held(x);
	x->ending = ending;
	x->exit_code = exit_code;
	x->is_refusal = is_refusal;
	if (message)
		x->message = strdup(message);
	ToolExecTable *t = x->table;
	if (x->is_detached)
		return;
	x->is_queued = true;
	x->ready_next = NULL;
	if (t->ready_tail)
		t->ready_tail->ready_next = x;
	else
		t->ready = x;
	t->ready_tail = x;
	if (t->has_timer)
		uv_timer_start(&t->defer, tool_exec_deliver_ready, 0, 0);
}

static void tool_exec_deliver_ready(uv_timer_t *timer)
{
	ToolExecTable *t = timer->data;
	while (t->ready) {
		ToolExec *x = t->ready;
		t->ready = x->ready_next;
		if (!t->ready)
			t->ready_tail = NULL;
		/* Still queued during the callback, so a detach from inside it does not free @x under us. */
		if (!x->is_detached && x->ending == TOOL_EXEC_ENDING_EXIT && x->ev.on_exit)
			x->ev.on_exit(x->ctx, x->exit_code);
		else if (!x->is_detached && x->ending == TOOL_EXEC_ENDING_ERROR && x->ev.on_error)
			x->ev.on_error(x->ctx, x->message ? x->message : "out of memory", x->is_refusal);
		x->is_queued = false;
		tool_exec_maybe_free(x);
	}
}

/* --- calls to the helpers -------------------------------------------------------------------------- */

static void tool_exec_on_control_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	ToolExec *x = ctx;
	x->calls_in_flight--;
	/* A write into a process that is gone is no news: its exit (or execd's loss) tells. */
	if (status != 0 && status != -ESRCH && status != -ENOENT && status != -EPIPE)
		log_warn("tool exec %llu: exec control failed: %s", (unsigned long long)x->exec_id,
			 strerror(status < 0 ? -status : EIO));
	tool_exec_maybe_free(x);
}

static int tool_exec_call(ToolExec *x, const char *service, const char *method, const void *body, size_t len,
			  uint32_t timeout_ms, BrokerReplyFn reply)
{
	if (!x->server->broker)
		return -EHOSTUNREACH;
	x->calls_in_flight++;
	int rc = broker_call(x->server->broker, service, method, x->conn_id, body, len, timeout_ms, reply, x);
	if (rc < 0)
		x->calls_in_flight--;
	return rc;
}

/* exec.write or exec.terminate now, or held until exec.start is answered. */
static int tool_exec_control(ToolExec *x, const char *method, const msgpack_sbuffer *sbuf)
{
	if (!x->is_started) {
		ToolExecHeld *h = malloc(sizeof(*h) + sbuf->size);
		if (!h)
			return -ENOMEM;
		*h = (ToolExecHeld){ .method = method, .len = sbuf->size };
		memcpy(h->body, sbuf->data, sbuf->size);
		if (x->held_tail)
			x->held_tail->next = h;
		else
			x->held = h;
		x->held_tail = h;
		return 0;
	}
	int rc = tool_exec_call(x, "execd", method, sbuf->data, sbuf->size, 0, tool_exec_on_control_reply);
	if (rc < 0)
		log_warn("tool exec %llu: %s not sent: %s", (unsigned long long)x->exec_id, method,
			 strerror(-rc));
	return rc;
}

static void tool_exec_send_held(ToolExec *x)
{
	while (x->held && !x->is_over) {
		ToolExecHeld *h = x->held;
		x->held = h->next;
		if (!x->held)
			x->held_tail = NULL;
		int rc =
			tool_exec_call(x, "execd", h->method, h->body, h->len, 0, tool_exec_on_control_reply);
		if (rc < 0)
			log_warn("tool exec %llu: %s not sent: %s", (unsigned long long)x->exec_id, h->method,
				 strerror(-rc));
		free(h);
	}
}

static void tool_exec_send_terminate(ToolExec *x)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_u64(&pk, "execId", x->exec_id);
	tool_exec_control(x, "exec.terminate", &sbuf);
	msgpack_sbuffer_destroy(&sbuf);
}

/* The message of a failed helper answer: its body's "message", else the errno's text. */
static void tool_exec_reply_message(int32_t status, const uint8_t *body, size_t body_len, const char *service,
				    char *out, size_t size, bool with_os_error)
{
	MpBody parsed;
	const char *text;
	size_t len;
	out[0] = '\0';
	if (status == ENVELOPE_STATUS_UNAVAILABLE) {
		snprintf(out, size, "service %s is unavailable", service);
		return;
	}
	int err = status < 0 ? -status : EIO;
	if (mp_body_parse(body, body_len, &parsed) == 0) {
		if (mp_get_str(parsed.map, "message", 1024, &text, &len) == 0 && with_os_error)
			snprintf(out, size, "%.*s (os error %d)", (int)len, text, err);
		else if (mp_get_str(parsed.map, "message", 1024, &text, &len) == 0)
			snprintf(out, size, "%.*s", (int)len, text);
		mp_body_free(&parsed);
	}
	if (!out[0] && with_os_error)
		snprintf(out, size, "%s (os error %d)", strerror(err), err);
	else if (!out[0])
		snprintf(out, size, "%s", strerror(err));
}

static void tool_exec_on_started(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	ToolExec *x = ctx;
	x->calls_in_flight--;
	if (x->is_over) {
		/* Killed with its owner meanwhile: execd had the start before the conn.closed. */
		tool_exec_maybe_free(x);
		return;
	}
	if (status != 0) {
		char message[TOOL_EXEC_MESSAGE_MAX];
		tool_exec_reply_message(status, body, body_len, "execd", message, sizeof(message), true);
		tool_exec_end(x, TOOL_EXEC_ENDING_ERROR, -1, message, false);
		tool_exec_maybe_free(x);
		return;
	}
	x->is_started = true;
	uint64_t pid = 0;
	MpBody parsed;
	if (mp_body_parse(body, body_len, &parsed) == 0) {
		mp_get_u64(parsed.map, "pid", &pid);
		mp_body_free(&parsed);
	}
	if (!x->is_detached && x->ev.on_started)
		x->ev.on_started(x->ctx, (int)pid);
	if (x->is_detached && !x->is_kill_asked) {
		x->is_kill_asked = true;
		tool_exec_send_terminate(x);
	}
	tool_exec_send_held(x);
	tool_exec_maybe_free(x);
}


static void tool_exec_start_process(ToolExec *x, const msgpack_object *plan_argv, const char *cwd)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	/* A tty's rows and cols go as 0: execd's default size, 24x80. */
	exec_ipc_pack_start(&pk, &(ExecStartBody){ .exec_id = x->exec_id,
						  .argv = plan_argv,
						  .cwd = cwd,
						  .env = x->env,
						  .tty = x->is_tty,
						  .pipe_stdin = x->has_stdin && !x->is_tty,
						  .timeout_ms = x->timeout_ms,
						  .cap_bytes = x->cap_bytes });
	int rc = tool_exec_call(x, "execd", "exec.start", sbuf.data, sbuf.size, BROKER_CALL_TIMEOUT_MS,
				tool_exec_on_started);
	msgpack_sbuffer_destroy(&sbuf);
	if (rc < 0) {
		char message[256];
		snprintf(message, sizeof(message), "%s (os error %d)", strerror(-rc), -rc);
		tool_exec_end(x, TOOL_EXEC_ENDING_ERROR, -1, message, false);
	}
}

/* sandboxd's answer: {launcher, cwd, argv}, or why the policy cannot be enforced. */
static void tool_exec_on_plan(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	ToolExec *x = ctx;
	x->calls_in_flight--;
	if (x->is_over || x->is_detached || x->is_kill_asked) {
		/* Killed or let go before it ran: nothing to start, it ends as killed. */
		tool_exec_end(x, TOOL_EXEC_ENDING_EXIT, 137, NULL, false);
		tool_exec_maybe_free(x);
		return;
	}
	if (status != 0) {
		char message[TOOL_EXEC_MESSAGE_MAX];
		tool_exec_reply_message(status, body, body_len, "sandboxd", message, sizeof(message), false);
		bool is_refusal = status != ENVELOPE_STATUS_UNAVAILABLE && status != -ENOMEM &&
				  strncmp(message, "sandbox cwd ", 12) != 0;
		tool_exec_end(x, TOOL_EXEC_ENDING_ERROR, -1, message, is_refusal);
		tool_exec_maybe_free(x);
		return;
	}
	MpBody parsed;
	const char *text;
	size_t len;
	char cwd[AGENTD_PATH_MAX];
	const msgpack_object *argv = NULL;
	bool has_body = mp_body_parse(body, body_len, &parsed) == 0;
	if (has_body)
		argv = mp_map_find(parsed.map, "argv");
	if (!argv || argv->type != MSGPACK_OBJECT_ARRAY || argv->via.array.size == 0 ||
	    mp_get_str(parsed.map, "cwd", sizeof(cwd) - 1, &text, &len) < 0) {
		tool_exec_end(x, TOOL_EXEC_ENDING_ERROR, -1, "sandboxd sent a malformed plan", false);
	} else {
		memcpy(cwd, text, len);
		cwd[len] = '\0';
		tool_exec_start_process(x, argv, cwd);
	}
	if (has_body)
		mp_body_free(&parsed);
	tool_exec_maybe_free(x);
}

static int tool_exec_ask_plan(ToolExec *x)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	char *policy_text = x->policy ? json_dumps(x->policy, JSON_COMPACT) : NULL;
	if (x->policy && !policy_text)
		return -ENOMEM;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	exec_ipc_pack_plan(&pk, &(ExecPlanBody){ .cwd = x->cwd, .command = x->argv, .policy_text = policy_text,
						.tmpdir = x->tmpdir, .workspace = x->workspace });
	free(policy_text);
	int rc = tool_exec_call(x, "sandboxd", "plan", sbuf.data, sbuf.size, 0, tool_exec_on_plan);
	msgpack_sbuffer_destroy(&sbuf);
	return rc;
}

/* --- the public face --------------------------------------------------------------------------------- */

json_t *tool_exec_environment(json_t *overrides)
{
	json_t *env = json_array();
	for (char **e = environ; env && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		if (overrides) {
			char name[256];
			size_t len = (size_t)(eq - *e);
			if (len < sizeof(name)) {
				memcpy(name, *e, len);
				name[len] = '\0';
				if (json_object_get(overrides, name))
					continue;
			}
		}
		if (json_array_append_new(env, json_string(*e)) < 0) {
			json_decref(env);
			return NULL;
		}
	}
	const char *key;
	json_t *value;
	json_object_foreach (overrides, key, value) {
		if (!json_is_string(value))
			continue;
		char *pair = NULL;
		if (asprintf(&pair, "%s=%s", key, json_string_value(value)) < 0 ||
		    json_array_append_new(env, json_string(pair)) < 0) {
			free(pair);
			json_decref(env);
			return NULL;
		}
		free(pair);
	}
	return env;
}

static bool tool_exec_is_string_array(json_t *array)
{
	size_t i;
	json_t *item;
	if (!json_is_array(array) || json_array_size(array) == 0)
		return false;
	json_array_foreach (array, i, item)
		if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item))
			return false;
	return true;
}

ToolExec *tool_exec_start(Agentd *server, uint64_t owner, const ToolExecSpec *spec, const ToolExecEvents *ev,
			  void *ctx)
{
	ToolExecTable *t = tool_exec_table(server);
	ToolExec *x = t ? calloc(1, sizeof(*x)) : NULL;
	if (!x)
		return NULL;
	x->table = t;
	x->server = server;
	x->owner = owner & ~TOOL_EXEC_CONN_BIT;
	x->conn_id = TOOL_EXEC_CONN_BIT | x->owner;
	x->exec_id = ++server->next_exec_id;
	x->ev = *ev;
	x->ctx = ctx;
	x->timeout_ms = spec->timeout_ms;
	x->cap_bytes = spec->cap_bytes;
	x->is_tty = spec->tty;
	x->has_stdin = spec->tty || spec->pipe_stdin;
	x->next = t->runs;
	if (t->runs)
		t->runs->prev = x;
	t->runs = x;

	char here[AGENTD_PATH_MAX];
	const char *why = NULL;
	int rc = 0;
	if (!tool_exec_is_string_array(spec->argv))
		why = "the command must be a non-empty array of strings";
	else if (!spec->cwd && !getcwd(here, sizeof(here)))
		rc = -errno;
	else if ((rc = path_normalize(NULL, spec->cwd ? spec->cwd : here, x->cwd, sizeof(x->cwd))) < 0 ||
		 x->cwd[0] != '/')
		why = "the working directory must be an absolute path";
	if (!why && rc == 0) {
		x->argv = json_deep_copy(spec->argv);
		x->env = spec->env ? json_deep_copy(spec->env) : tool_exec_environment(NULL);
		x->policy = spec->sandbox_policy ? json_deep_copy(spec->sandbox_policy) : NULL;
		x->tmpdir = spec->tmpdir ? strdup(spec->tmpdir) : NULL;
		x->workspace = spec->workspace ? strdup(spec->workspace) : NULL;
		if (!x->argv || !x->env || (spec->sandbox_policy && !x->policy) ||
		    (spec->tmpdir && !x->tmpdir) || (spec->workspace && !x->workspace))
			rc = -ENOMEM;
	}
	if (!why && rc == 0)
		rc = tool_exec_ask_plan(x);
	if (why || rc < 0) {
		char message[256];
		snprintf(message, sizeof(message), "%s", why ? why : strerror(-rc));
		tool_exec_end(x, TOOL_EXEC_ENDING_ERROR, -1, message, false);
	}
	return x;
}

int tool_exec_write(ToolExec *x, const uint8_t *data, size_t len, bool close_stdin)
{
	if (x->is_over || x->is_kill_asked)
		return -ESRCH;
	if (!x->has_stdin)
		return -EBADF;
	if (x->stdin_closed)
		return -EPIPE;
	size_t offset = 0;
	do {
		size_t piece = len - offset > TOOL_EXEC_WRITE_PIECE ? TOOL_EXEC_WRITE_PIECE : len - offset;
		bool is_last = offset + piece >= len;
		msgpack_sbuffer sbuf;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sbuf);
		msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 2 + (piece > 0));
		mp_pack_kv_u64(&pk, "execId", x->exec_id);
		if (piece > 0) {
			mp_pack_cstr(&pk, "data");
			msgpack_pack_bin(&pk, piece);
			msgpack_pack_bin_body(&pk, data + offset, piece);
		}
		mp_pack_kv_bool(&pk, "closeStdin", is_last && close_stdin);
		int rc = tool_exec_control(x, "exec.write", &sbuf);
		msgpack_sbuffer_destroy(&sbuf);
		if (rc == -ENOMEM)
			return rc;
		offset += piece;
	} while (offset < len);
	x->stdin_closed = close_stdin;
	return 0;
}

void tool_exec_kill(ToolExec *x)
{
	if (!x || x->is_over || x->is_kill_asked)
		return;
	x->is_kill_asked = true;
	if (!x->is_started && x->calls_in_flight == 0)
		return; /* it never got as far as a helper: it is over already */
	tool_exec_send_terminate(x);
}

void tool_exec_detach(ToolExec *x)
{
	if (!x)
		return;
	x->is_detached = true;
	if (!x->is_over && x->is_started)
		tool_exec_kill(x);
	/* Not started yet: the plan or exec.start answer sees the flag (and terminates what started). */
	tool_exec_maybe_free(x);
}

void tool_exec_kill_owner(Agentd *server, uint64_t owner)
{
	ToolExecTable *t = server->tool_execs;
	uint64_t conn_id = TOOL_EXEC_CONN_BIT | (owner & ~TOOL_EXEC_CONN_BIT);
	if (server->broker)
		broker_send_event(server->broker, "execd", "conn.closed", conn_id, "\x80", 1);
	/* execd forgets them without a word: they end here as execd's kill would end them. */
	for (ToolExec *x = t ? t->runs : NULL; x; x = x->next) {
		if (x->conn_id != conn_id || x->is_over)
			continue;
		/* One still being planned or started ends now too; its answer finds it over. */
		tool_exec_end(x, TOOL_EXEC_ENDING_EXIT, 137, NULL, false);
	}
}

static void tool_exec_send_credit(Agentd *server, uint64_t conn_id, uint64_t exec_id, uint64_t stream)
{
	if (!server->broker)
		return;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_u64(&pk, "execId", exec_id);
	mp_pack_kv_u64(&pk, "stream", stream);
	broker_send_credit(server->broker, "execd", conn_id, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

void tool_exec_on_event(Agentd *server, const Envelope *env)
{
	MpBody body;
	uint64_t exec_id, stream;
	if (mp_body_parse(env->body, env->body_len, &body) < 0) {
		log_warn("execd: malformed %s dropped", env->method);
		return;
	}
	const msgpack_object *map = body.map;
	if (mp_get_u64(map, "execId", &exec_id) < 0) {
		log_warn("execd: malformed %s dropped", env->method);
		mp_body_free(&body);
		return;
	}
	ToolExec *x = tool_exec_find(server, env->connection_id, exec_id);
	if (strcmp(env->method, "exec.output") == 0) {
		const msgpack_object *data = mp_map_find(map, "data");
		bool cap_reached = false;
		if (mp_get_u64(map, "stream", &stream) < 0 || stream > 1 || !data ||
		    data->type != MSGPACK_OBJECT_BIN || mp_get_bool(map, "capReached", &cap_reached) < 0) {
			log_warn("execd: malformed exec.output dropped");
		} else {
			if (x && !x->is_over && !x->is_detached && x->ev.on_output && data->via.bin.size)
				x->ev.on_output(x->ctx, (int)stream, (const uint8_t *)data->via.bin.ptr,
						data->via.bin.size);
			/* Credit even for a run that is gone: execd sends exec.closed only once all are back.
			 */
			tool_exec_send_credit(server, env->connection_id, exec_id, stream);
		}
	} else {
		const msgpack_object *code = mp_map_find(map, "exitCode");
		if (!code || (code->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
			      code->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
			log_warn("execd: malformed exec.closed dropped");
		else if (x)
			tool_exec_end(x, TOOL_EXEC_ENDING_EXIT,
				      code->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)code->via.u64
										    : code->via.i64,
				      NULL, false);
		if (x)
			tool_exec_maybe_free(x);
	}
	mp_body_free(&body);
}

void tool_exec_on_execd_lost(Agentd *server)
{
	ToolExecTable *t = server->tool_execs;
	for (ToolExec *x = t ? t->runs : NULL, *next; x; x = next) {
		next = x->next;
		/* Runs still waiting on sandboxd or on exec.start get their broker error instead. */
		if (x->is_started && !x->is_over) {
			tool_exec_end(x, TOOL_EXEC_ENDING_ERROR, -1,
				      "execd exited while the command was running", false);
			tool_exec_maybe_free(x);
		}
	}
}
