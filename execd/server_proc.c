/* SPDX-License-Identifier: MIT */
/* server_proc.c - the exec-server's process methods: event log, long-poll reads, back-pressure. */
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "log.h"
#include "paths.h"
#include "server.h"
#include "spawner.h"

/*
 * Every process of a session has one event counter, shared by its output chunks, its exit and
 * its close (seq 1, 2, ...), and a log of its output chunks for process/read and for a client
 * that resumes a detached session.
 *
 * Flow control: a chunk that arrives is logged and, when a client is attached, sent as a
 * process/output notification; the stream reads its next chunk only after proc_grant(). We
 * grant when the log has room and the client's output queue is below ES_OUTPUT_HIGH_BYTES.
 * Chunks the client has seen (notified, or returned by process/read) may be dropped from the
 * head of the log to make room; chunks it has not seen never are. So a client that neither
 * reads nor is attached stops the process's output at ES_LOG_MAX_BYTES: the child blocks on
 * its pipe, and memory stays bounded (log + one chunk per stream per process).
 */

/* Output kept per process for replay (the reference retains 1 MiB too). */
#define ES_LOG_MAX_BYTES (1024u * 1024u)
/* After process/closed, the process stays readable (and its id taken) this long. */
#define ES_EXITED_RETENTION_MS 30000u
/* Bytes written with process/write and not yet taken by the child: past this, the reply waits. */
#define ES_STDIN_MAX_QUEUED_BYTES (8u * 1024u * 1024u)
/* Processes one session may hold (running or retained). */
#define ES_MAX_PROCESSES 1024u

typedef struct EsChunk {
	struct EsChunk *next;
	uint64_t seq;
	int stream;
	size_t len;
	uint8_t data[];
} EsChunk;

/* A process/read waiting for an event or its deadline. */
typedef struct EsReadWait {
	EsRequest *req;
	EsProcess *process;
	uint64_t after_seq;
	uint64_t max_bytes;
	uv_timer_t *timer;
} EsReadWait;

/* One proc_write() in flight; @process is cleared if the process entry goes first. */
typedef struct EsStdinWrite {
	struct EsStdinWrite *prev, *next;
	EsProcess *process;
	size_t len;
} EsStdinWrite;

struct EsProcess {
	EsProcess *prev, *next; /* the session's processes */
	EsProcess *work_prev, *work_next;
	EsProcess **work_list; /* the list this entry is queued on, or NULL */
	EsSession *session;
	char *id;
	Proc *proc;
	EsRequest *start_req; /* answered by on_started */
	bool is_started;
	bool has_tty;
	bool has_pipe_stdin;
	uint64_t next_seq;
	EsChunk *log_head, *log_tail;
	size_t log_bytes;
	uint64_t consumed_seq;		/* the client has seen every event up to this one */
	bool is_held[PROC_STREAMS];	/* a chunk is out, its grant waits for room */
	bool wants_grant[PROC_STREAMS]; /* granted, to be handed to proc in the next work pass */
	bool has_exited;		/* reaped */
	bool is_exit_pending;		/* reaped, process/exited not yet sent */
	bool is_exit_sent;
	uint64_t exit_pass; /* the work pass during whose poll phase the exit was seen */
	int exit_code;
	bool is_closed;
	EsReadWait *wait;
	EsStdinWrite *writes;
	size_t stdin_queued;
	EsRequest *write_req; /* a process/write whose answer waits for stdin to drain */
	uv_timer_t *retention;
};

static EsProcess *es_proc_find(EsSession *session, const char *id)
{
	for (EsProcess *p = session->processes; p; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static size_t es_proc_count(EsSession *session)
{
	size_t n = 0;
	for (EsProcess *p = session->processes; p; p = p->next)
		n++;
	return n;
}

static const char *es_stream_name(const EsProcess *p, int stream)
{
	if (p->has_tty)
		return "pty";
	return stream == PROC_STDERR ? "stderr" : "stdout";
}

static void es_on_handle_freed(uv_handle_t *handle)
{
	free(handle);
}

static json_t *es_notification(const char *method, json_t *params)
{
	json_t *msg = json_object();
	json_object_set_new(msg, "method", json_string(method));
	json_object_set_new(msg, "params", params);
	return msg;
}

static json_t *es_chunk_json(const uint8_t *data, size_t len)
{
	char *text = malloc(base64_encoded_len(len) + 1);
	if (!text)
		return NULL;
	base64_encode(data, len, text);
	json_t *v = json_stringn_nocheck(text, base64_encoded_len(len));
	free(text);
	return v;
}

/* --- deferred work: grants and exits, after the poll phase ------------------------------------------- */

static void es_work_unlink(EsProcess *p)
{
	if (!p->work_list)
		return;
	if (p->work_prev)
		p->work_prev->work_next = p->work_next;
	else
		*p->work_list = p->work_next;
	if (p->work_next)
		p->work_next->work_prev = p->work_prev;
	p->work_prev = p->work_next = NULL;
	p->work_list = NULL;
}

static void es_on_work_idle(uv_idle_t *handle);

static void es_work_schedule(EsProcess *p)
{
	EsServer *s = p->session->server;
	if (p->work_list || s->is_stopping)
		return;
	p->work_next = s->work_head;
	p->work_prev = NULL;
	if (s->work_head)
		s->work_head->work_prev = p;
	s->work_head = p;
	p->work_list = &s->work_head;
	if (!s->is_work_scheduled) {
		s->is_work_scheduled = true;
		/* The idle handle keeps the loop from blocking while work is queued; the check
		 * handle does the work right after the poll phase has read what was ready. */
		uv_idle_start(&s->work_idle, es_on_work_idle);
	}
}

static void es_proc_emit_exited(EsProcess *p);
static void es_proc_wake(EsProcess *p);

static void es_work_run(EsServer *s)
{
	/* One pass over what is queued now: a grant reads at most one chunk per stream, and
	 * whatever that queues again waits for the next pass (fairness between processes). */
	EsProcess *batch = s->work_head;
	s->work_head = NULL;
	s->work_pass++;
	for (EsProcess *p = batch; p; p = p->work_next)
		p->work_list = &batch;
	while (batch) {
		EsProcess *p = batch;
		es_work_unlink(p);
		for (int i = 0; i < PROC_STREAMS; i++) {
			if (p->wants_grant[i] && p->proc) {
				p->wants_grant[i] = false;
				proc_grant(p->proc, i);
			}
		}
		/*
		 * The exit waits until the output that was there with it has been sent: for at least
		 * one poll phase after it was seen (the spawner's report can arrive before the pipes
		 * were ever polled), and while grants still find output.
		 */
		if (p->is_exit_pending) {
			bool is_reading = p->exit_pass == s->work_pass;
			for (int i = 0; i < PROC_STREAMS; i++)
				is_reading = is_reading || p->wants_grant[i];
			if (!is_reading)
				es_proc_emit_exited(p);
			else
				es_work_schedule(p);
		}
	}
	if (!s->work_head && s->is_work_scheduled) {
		s->is_work_scheduled = false;
		uv_idle_stop(&s->work_idle);
	}
}

static void es_on_work_check(uv_check_t *handle)
{
	es_work_run(handle->data);
}

static void es_on_work_idle(uv_idle_t *handle)
{
	(void)handle; /* only there to make the poll phase non-blocking */
}

void es_proc_init(EsServer *s)
{
	uv_check_init(s->loop, &s->work_check);
	uv_idle_init(s->loop, &s->work_idle);
	s->work_check.data = s->work_idle.data = s;
	uv_check_start(&s->work_check, es_on_work_check);
	uv_unref((uv_handle_t *)&s->work_check);
}

void es_proc_shutdown(EsServer *s)
{
	if (!uv_is_closing((uv_handle_t *)&s->work_check)) {
		uv_close((uv_handle_t *)&s->work_check, NULL);
		uv_close((uv_handle_t *)&s->work_idle, NULL);
	}
}

/* --- the log and its flow control -------------------------------------------------------------------- */

static void es_proc_evict(EsProcess *p)
{
	while (p->log_bytes >= ES_LOG_MAX_BYTES && p->log_head && p->log_head->seq <= p->consumed_seq) {
		EsChunk *c = p->log_head;
		p->log_head = c->next;
		if (!p->log_head)
			p->log_tail = NULL;
		p->log_bytes -= c->len;
		free(c);
	}
}

static void es_proc_try_grant(EsProcess *p, int stream)
{
	if (!p->is_held[stream] || !p->proc)
		return;
	es_proc_evict(p);
	EsClient *c = p->session->client;
	if (p->log_bytes >= ES_LOG_MAX_BYTES || (c && !es_client_can_take_output(c)))
		return;
	p->is_held[stream] = false;
	p->wants_grant[stream] = true;
	es_work_schedule(p);
}

static void es_proc_consumed(EsProcess *p, uint64_t seq)
{
	if (seq <= p->consumed_seq)
		return;
	p->consumed_seq = seq;
	for (int i = 0; i < PROC_STREAMS; i++)
		es_proc_try_grant(p, i);
}

/* A notification to the attached client, if any; what it was sent, it has seen. */
static void es_proc_notify(EsProcess *p, uint64_t seq, const char *method, json_t *params)
{
	if (es_session_notify(p->session, es_notification(method, params)))
		es_proc_consumed(p, seq);
}

void es_proc_session_changed(EsSession *session)
{
	for (EsProcess *p = session->processes; p; p = p->next)
		for (int i = 0; i < PROC_STREAMS; i++)
			es_proc_try_grant(p, i);
}

/* --- process/read ------------------------------------------------------------------------------------- */

static bool es_proc_exit_is_known(const EsProcess *p)
{
	return p->is_exit_sent;
}

static json_t *es_proc_read_result(EsProcess *p, uint64_t after_seq, uint64_t max_bytes, uint64_t *last_seq)
{
	json_t *chunks = json_array();
	uint64_t total = 0, next_seq = p->next_seq, last_returned = 0;
	for (EsChunk *c = p->log_head; c; c = c->next) {
		if (c->seq <= after_seq)
			continue;
		/* At least one whole chunk, then whole chunks while they fit. Cut short, nextSeq is
		 * where to go on; otherwise it is past every event so far. */
		if (json_array_size(chunks) > 0 && (total + c->len > max_bytes || total >= max_bytes)) {
			next_seq = json_array_size(chunks) ? last_returned + 1 : next_seq;
			break;
		}
		total += c->len;
		last_returned = c->seq;
		json_t *item = json_object();
		json_object_set_new(item, "seq", json_integer((json_int_t)c->seq));
		json_object_set_new(item, "stream", json_string(es_stream_name(p, c->stream)));
		json_object_set_new(item, "chunk", es_chunk_json(c->data, c->len));
		json_array_append_new(chunks, item);
	}
	*last_seq = next_seq - 1;
	bool is_exited = es_proc_exit_is_known(p);
	json_t *result = json_object();
	json_object_set_new(result, "chunks", chunks);
	json_object_set_new(result, "nextSeq", json_integer((json_int_t)next_seq));
	json_object_set_new(result, "exited", json_boolean(is_exited));
	json_object_set_new(result, "exitCode", is_exited ? json_integer(p->exit_code) : json_null());
	json_object_set_new(result, "closed", json_boolean(p->is_closed));
	json_object_set_new(result, "failure", json_null());
	json_object_set_new(result, "sandboxDenied", json_false());
	return result;
}

/* Whether a read after @after_seq has something to say now. */
static bool es_proc_read_is_ready(EsProcess *p, uint64_t after_seq)
{
	if (p->is_closed)
		return true;
	if (es_proc_exit_is_known(p) && after_seq < p->next_seq - 1)
		return true;
	for (EsChunk *c = p->log_head; c; c = c->next)
		if (c->seq > after_seq)
			return true;
	return false;
}

static void es_read_wait_free(EsReadWait *w)
{
	if (w->process && w->process->wait == w)
		w->process->wait = NULL;
	if (w->timer)
		uv_close((uv_handle_t *)w->timer, es_on_handle_freed);
	free(w);
}

static void es_read_answer(EsRequest *req, EsProcess *p, uint64_t after_seq, uint64_t max_bytes)
{
	uint64_t last_seq;
	json_t *result = es_proc_read_result(p, after_seq, max_bytes, &last_seq);
	/* What the answer carries (and what the client says it has) counts as seen. */
	es_proc_consumed(p, last_seq > after_seq ? last_seq : after_seq);
	es_reply_result(req, result);
}

static void es_read_wait_finish(EsReadWait *w)
{
	EsRequest *req = w->req;
	EsProcess *p = w->process;
	uint64_t after_seq = w->after_seq, max_bytes = w->max_bytes;
	es_read_wait_free(w);
	es_read_answer(req, p, after_seq, max_bytes);
}

static void es_read_on_deadline(uv_timer_t *timer)
{
	es_read_wait_finish(timer->data);
}

static void es_read_cancel(EsRequest *req)
{
	es_read_wait_free(req->pending);
}

/* An event happened: a waiting read answers if it now has something to say. */
static void es_proc_wake(EsProcess *p)
{
	if (p->wait && es_proc_read_is_ready(p, p->wait->after_seq))
		es_read_wait_finish(p->wait);
}

static const EsField es_read_fields[] = {
	{ .name = "processId", .type = ES_T_STRING, .is_required = true },
	{ .name = "afterSeq", .type = ES_T_U64, .is_nullable = true },
	{ .name = "maxBytes", .type = ES_T_USIZE, .is_nullable = true },
	{ .name = "waitMs", .type = ES_T_U64, .is_nullable = true },
};
static const EsStruct es_read_params = { "struct ReadParams", es_read_fields, 4 };

void es_method_process_read(EsRequest *req, json_t *params)
{
	json_t *v[4];
	char err[512];
	if (es_params_decode(&es_read_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req))
		return;
	const char *id = json_string_value(v[0]);
	EsProcess *p = es_proc_find(req->client->session, id);
	if (!p) {
		es_reply_error(req, ES_INVALID_REQUEST, "unknown process id %s", id);
		return;
	}
	uint64_t after_seq = v[1] ? (uint64_t)json_integer_value(v[1]) : 0;
	uint64_t max_bytes = v[2] ? (uint64_t)json_integer_value(v[2]) : UINT64_MAX;
	uint64_t wait_ms = v[3] ? (uint64_t)json_integer_value(v[3]) : 0;
	if (wait_ms == 0 || es_proc_read_is_ready(p, after_seq)) {
		es_read_answer(req, p, after_seq, max_bytes);
		return;
	}
	EsReadWait *w = calloc(1, sizeof(*w));
	uv_timer_t *timer = malloc(sizeof(*timer));
	if (!w || !timer) {
		free(w);
		free(timer);
		es_reply_error(req, ES_INTERNAL_ERROR, "out of memory");
		return;
	}
	uv_timer_init(req->client->server->loop, timer);
	timer->data = w;
	*w = (EsReadWait){
		.req = req, .process = p, .after_seq = after_seq, .max_bytes = max_bytes, .timer = timer
	};
	p->wait = w;
	req->pending = w;
	req->cancel = es_read_cancel;
	uv_timer_start(timer, es_read_on_deadline, wait_ms, 0);
}

/* --- the process sink ----------------------------------------------------------------------------------- */

static void es_proc_remove(EsProcess *p);

static void es_proc_on_retention_over(uv_timer_t *timer)
{
	es_proc_remove(timer->data);
}

static void es_proc_on_started(Proc *proc, int status, void *ctx)
{
	EsProcess *p = ctx;
	EsRequest *req = p->start_req;
	p->start_req = NULL;
	if (status < 0) {
		/* Gone before the answer: a retry with the same id must find the id free. */
		es_proc_remove(p);
		if (req) {
			req->cancel = NULL;
			es_reply_error(req, ES_INTERNAL_ERROR, "%s (os error %d)", strerror(-status),
				       -status);
		}
		return;
	}
	p->is_started = true;
	if (req) {
		req->cancel = NULL;
		json_t *result = json_object();
		json_object_set_new(result, "processId", json_string(p->id));
		json_object_set_new(result, "sandboxType", json_string("none"));
		es_reply_result(req, result);
	}
}

static void es_proc_on_output(Proc *proc, int stream, const uint8_t *data, size_t len, bool cap_reached,
			      void *ctx)
{
	EsProcess *p = ctx;
	p->is_held[stream] = true;
	if (len > 0) {
		EsChunk *c = malloc(sizeof(*c) + len);
		if (!c) {
			log_error("process %s: out of memory for %zu bytes of output: dropped", p->id, len);
		} else {
			c->next = NULL;
			c->seq = p->next_seq++;
			c->stream = stream;
			c->len = len;
			memcpy(c->data, data, len);
			if (p->log_tail)
				p->log_tail->next = c;
			else
				p->log_head = c;
			p->log_tail = c;
			p->log_bytes += len;
			json_t *params = json_object();
			json_object_set_new(params, "processId", json_string(p->id));
			json_object_set_new(params, "seq", json_integer((json_int_t)c->seq));
			json_object_set_new(params, "stream", json_string(es_stream_name(p, stream)));
			json_object_set_new(params, "chunk", es_chunk_json(data, len));
			es_proc_notify(p, c->seq, "process/output", params);
			es_proc_wake(p);
		}
	}
	es_proc_try_grant(p, stream);
}

static void es_proc_emit_exited(EsProcess *p)
{
	if (!p->is_exit_pending)
		return;
	p->is_exit_pending = false;
	p->is_exit_sent = true;
	uint64_t seq = p->next_seq++;
	json_t *params = json_object();
	json_object_set_new(params, "processId", json_string(p->id));
	json_object_set_new(params, "seq", json_integer((json_int_t)seq));
	json_object_set_new(params, "exitCode", json_integer(p->exit_code));
	json_object_set_new(params, "sandboxDenied", json_false());
	es_proc_notify(p, seq, "process/exited", params);
	es_proc_wake(p);
}

static void es_proc_on_exited(Proc *proc, int exit_code, void *ctx)
{
	EsProcess *p = ctx;
	p->has_exited = true;
	p->exit_code = exit_code;
	p->is_exit_pending = true;
	p->exit_pass = p->session->server->work_pass + 1;
	es_work_schedule(p);
}

static void es_proc_on_closed(Proc *proc, int exit_code, void *ctx)
{
	EsProcess *p = ctx;
	EsServer *s = p->session->server;
	if (!p->has_exited) {
		p->has_exited = true;
		p->exit_code = exit_code;
		p->is_exit_pending = true;
	}
	es_proc_emit_exited(p);
	p->is_closed = true;
	uint64_t seq = p->next_seq++;
	json_t *params = json_object();
	json_object_set_new(params, "processId", json_string(p->id));
	json_object_set_new(params, "seq", json_integer((json_int_t)seq));
	es_proc_notify(p, seq, "process/closed", params);
	proc_free(p->proc);
	p->proc = NULL;
	for (int i = 0; i < PROC_STREAMS; i++)
		p->is_held[i] = p->wants_grant[i] = false;
	es_proc_wake(p);
	p->retention = malloc(sizeof(*p->retention));
	if (p->retention && uv_timer_init(s->loop, p->retention) == 0) {
		p->retention->data = p;
		uv_timer_start(p->retention, es_proc_on_retention_over, ES_EXITED_RETENTION_MS, 0);
	} else {
		free(p->retention);
		p->retention = NULL;
	}
}

static const ProcSink es_proc_sink = {
	.on_started = es_proc_on_started,
	.on_output = es_proc_on_output,
	.on_exited = es_proc_on_exited,
	.on_closed = es_proc_on_closed,
};

/* Forget @p: its process group is killed if it still runs. */
static void es_proc_remove(EsProcess *p)
{
	EsSession *session = p->session;
	if (p->prev)
		p->prev->next = p->next;
	else
		session->processes = p->next;
	if (p->next)
		p->next->prev = p->prev;
	es_work_unlink(p);
	if (p->wait) {
		/* Answered with what is known: the entry goes, the request must not hang. */
		es_read_wait_finish(p->wait);
	}
	if (p->start_req) {
		EsRequest *req = p->start_req;
		p->start_req = NULL;
		req->cancel = NULL;
		es_reply_error(req, ES_INTERNAL_ERROR, "the process was removed before it started");
	}
	for (EsStdinWrite *w = p->writes; w; w = w->next)
		w->process = NULL;
	if (p->write_req) {
		EsRequest *req = p->write_req;
		p->write_req = NULL;
		req->cancel = NULL;
		json_t *result = json_object();
		json_object_set_new(result, "status", json_string("accepted"));
		es_reply_result(req, result);
	}
	proc_free(p->proc);
	if (p->retention)
		uv_close((uv_handle_t *)p->retention, es_on_handle_freed);
	while (p->log_head) {
		EsChunk *c = p->log_head;
		p->log_head = c->next;
		free(c);
	}
	free(p->id);
	free(p);
}

void es_proc_session_free(EsSession *session)
{
	while (session->processes)
		es_proc_remove(session->processes);
}

/* --- process/start
 * ------------------------------------------------------------------------------------------ */

static const char *const es_inherit_variants[] = { "core", "all", "none", NULL };
static const EsField es_env_policy_fields[] = {
	{ .name = "inherit", .type = ES_T_ENUM, .is_required = true, .variants = es_inherit_variants },
	{ .name = "ignoreDefaultExcludes", .type = ES_T_BOOL, .is_required = true },
	{ .name = "exclude", .type = ES_T_STRINGS, .is_required = true },
	{ .name = "set", .type = ES_T_STRING_MAP, .is_required = true },
	{ .name = "includeOnly", .type = ES_T_STRINGS, .is_required = true },
};
static const EsStruct es_env_policy = { "struct ExecEnvPolicy", es_env_policy_fields, 5 };

enum {
	START_ID,
	START_ARGV,
	START_CWD,
	START_ENV_POLICY,
	START_ENV,
	START_TTY,
	START_PIPE_STDIN,
	START_ARG0,
	START_SANDBOX,
	START_FIELDS
};
static const EsField es_start_fields[START_FIELDS] = {
	[START_ID] = { .name = "processId", .type = ES_T_STRING, .is_required = true },
	[START_ARGV] = { .name = "argv", .type = ES_T_STRINGS, .is_required = true },
	[START_CWD] = { .name = "cwd", .type = ES_T_PATH, .is_required = true },
	[START_ENV_POLICY] = { .name = "envPolicy",
			       .type = ES_T_STRUCT,
			       .is_nullable = true,
			       .nested = &es_env_policy },
	[START_ENV] = { .name = "env", .type = ES_T_STRING_MAP, .is_required = true },
	[START_TTY] = { .name = "tty", .type = ES_T_BOOL, .is_required = true },
	[START_PIPE_STDIN] = { .name = "pipeStdin", .type = ES_T_BOOL },
	[START_ARG0] = { .name = "arg0", .type = ES_T_STRING, .is_nullable = true },
	[START_SANDBOX] = { .name = "sandbox",
			    .type = ES_T_STRUCT,
			    .is_nullable = true,
			    .nested = &es_sandbox_context_spec },
};
static const EsStruct es_start_params = { "struct WireExecParams", es_start_fields, START_FIELDS };

/* The variables a "core" policy inherits (the reference's list). */
static const char *const es_core_vars[] = { "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME",  "PATH", "SHELL",
					    "TEMP", "TMP",  "TMPDIR", "USER",	  "USERNAME", NULL };

static bool es_matches_any(const char *name, json_t *patterns)
{
	size_t i;
	json_t *pattern;
	json_array_foreach (patterns, i, pattern)
		if (fnmatch(json_string_value(pattern), name, FNM_CASEFOLD) == 0)
			return true;
	return false;
}

static bool es_is_core_var(const char *name)
{
	for (const char *const *v = es_core_vars; *v; v++)
		if (strcmp(*v, name) == 0)
			return true;
	return false;
}

/*
 * The child's environment: exactly @env, or with an envPolicy the server's own environment
 * filtered as the reference's shell_environment::create_env does (inherit, default excludes of
 * *KEY*, *SECRET*, *TOKEN*, excludes, set, includeOnly) and then @env on top.
 */
static json_t *es_child_env(json_t *policy, json_t *env)
{
	extern char **environ;
	json_t *out = json_object();
	if (policy) {
		const char *inherit = json_string_value(json_object_get(policy, "inherit"));
		if (!inherit) /* the map form {"all": null} */
			inherit = json_object_iter_key(json_object_iter(json_object_get(policy, "inherit")));
		if (strcmp(inherit, "none") != 0) {
			for (char **e = environ; *e; e++) {
				const char *eq = strchr(*e, '=');
				if (!eq)
					continue;
				char name[256];
				size_t len = (size_t)(eq - *e);
				if (len == 0 || len >= sizeof(name))
					continue;
				memcpy(name, *e, len);
				name[len] = '\0';
				if (strcmp(inherit, "core") == 0 && !es_is_core_var(name))
					continue;
				json_t *value = json_string(eq + 1);
				if (value)
					json_object_set_new(out, name, value);
			}
		}
		static const char *const default_excludes[] = { "*KEY*", "*SECRET*", "*TOKEN*" };
		json_t *excludes = json_array();
		if (!json_is_true(json_object_get(policy, "ignoreDefaultExcludes")))
			for (size_t i = 0; i < 3; i++)
				json_array_append_new(excludes, json_string(default_excludes[i]));
		json_array_extend(excludes, json_object_get(policy, "exclude"));
		const char *key;
		json_t *value;
		void *tmp;
		json_object_foreach_safe(out, tmp, key, value) if (es_matches_any(key, excludes))
			json_object_del(out, key);
		json_decref(excludes);
		json_object_update(out, json_object_get(policy, "set"));
		json_t *include_only = json_object_get(policy, "includeOnly");
		if (json_array_size(include_only) > 0)
			json_object_foreach_safe(out, tmp, key, value) if (!es_matches_any(key, include_only))
				json_object_del(out, key);
	}
	json_object_update(out, env);
	return out;
}

static int es_compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void es_proc_start_cancel(EsRequest *req)
{
	EsProcess *p = req->pending;
	if (p->start_req == req)
		p->start_req = NULL;
}

void es_method_process_start(EsRequest *req, json_t *params)
{
	json_t *v[START_FIELDS];
	char err[2 * AGENTD_PATH_MAX];
	if (es_params_decode(&es_start_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req))
		return;
	EsSession *session = req->client->session;
	EsServer *s = req->client->server;
	const char *id = json_string_value(v[START_ID]);
	size_t argc = json_array_size(v[START_ARGV]);
	if (argc == 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "argv must not be empty");
		return;
	}
	if (es_proc_find(session, id)) {
		es_reply_error(req, ES_INVALID_REQUEST, "process %s already exists", id);
		return;
	}
	if (es_proc_count(session) >= ES_MAX_PROCESSES || argc > SPAWN_MAX_ARGS) {
		es_reply_error(req, ES_INVALID_REQUEST, "too many processes in this session (at most %u)",
			       ES_MAX_PROCESSES);
		return;
	}
	char cwd[AGENTD_PATH_MAX];
	const char *cwd_uri = json_string_value(v[START_CWD]);
	if (es_path_from_uri(cwd_uri, cwd, sizeof(cwd), err, sizeof(err)) != ES_PATH_OK) {
		es_reply_error(req, ES_INVALID_PARAMS,
			       "cwd URI `%s` is not valid on this exec-server host: %s", cwd_uri, err);
		return;
	}
	if (!es_sandbox_is_unconfined(v[START_SANDBOX])) {
		es_reply_error(req, ES_INTERNAL_ERROR,
			       "this exec-server does not enforce sandboxes: refusing to run `%s` unconfined "
			       "under a "
			       "restricted sandbox policy",
			       json_string_value(json_array_get(v[START_ARGV], 0)));
		return;
	}
	json_t *env = es_child_env(v[START_ENV_POLICY], v[START_ENV]);
	bool is_tty = json_is_true(v[START_TTY]);
	const char *program = json_string_value(json_array_get(v[START_ARGV], 0));
	/* On a PTY the reference resolves the program itself, and needs a PATH for it. */
	if (is_tty && !strchr(program, '/') && !json_object_get(env, "PATH")) {
		json_decref(env);
		es_reply_error(req, ES_INTERNAL_ERROR,
			       "Unable to spawn %s because:\nUnable to resolve the PATH", program);
		return;
	}
	size_t envc = json_object_size(env);
	const char **argv = calloc(argc + 1, sizeof(*argv));
	char **envp = calloc(envc + 1, sizeof(*envp));
	EsProcess *p = calloc(1, sizeof(*p));
	char *id_copy = strdup(id);
	int rc = argv && envp && p && id_copy && envc <= SPAWN_MAX_ENV ? 0 : -ENOMEM;
	size_t n = 0;
	if (rc == 0) {
		for (size_t i = 0; i < argc; i++)
			argv[i] = json_string_value(json_array_get(v[START_ARGV], i));
		const char *key;
		json_t *value;
		json_object_foreach (env, key, value) {
			if (asprintf(&envp[n], "%s=%s", key, json_string_value(value)) < 0) {
				envp[n] = NULL;
				rc = -ENOMEM;
				break;
			}
			n++;
		}
		qsort(envp, n, sizeof(*envp), es_compare_strings);
	}
	if (rc == 0) {
		p->session = session;
		p->id = id_copy;
		p->next_seq = 1;
		p->has_tty = is_tty;
		p->has_pipe_stdin = json_is_true(v[START_PIPE_STDIN]);
		ProcSpec spec = {
			.argv = argv,
			.argc = (uint32_t)argc,
			.envp = (const char *const *)envp,
			.envc = (uint32_t)n,
			.cwd = cwd,
			.tty = is_tty,
			.pipe_stdin = p->has_pipe_stdin,
			.timeout_ms = PROC_NO_TIMEOUT,
			.cap_bytes = PROC_NO_CAP,
		};
		rc = proc_start(s->procs, &spec, &es_proc_sink, p, &p->proc);
	}
	for (size_t i = 0; i < n; i++)
		free(envp[i]);
	free(envp);
	free(argv);
	json_decref(env);
	if (rc < 0) {
		free(p);
		free(id_copy);
		es_reply_error(req, ES_INTERNAL_ERROR, "%s (os error %d)", strerror(-rc), -rc);
		return;
	}
	p->next = session->processes;
	if (session->processes)
		session->processes->prev = p;
	session->processes = p;
	/* Answered once the spawner has run it (or failed to): see es_proc_on_started(). */
	p->start_req = req;
	req->pending = p;
	req->cancel = es_proc_start_cancel;
}

/* --- process/write, process/signal, process/terminate ------------------------------------------------------
 */

static void es_write_reply_status(EsRequest *req, const char *status)
{
	json_t *result = json_object();
	json_object_set_new(result, "status", json_string(status));
	es_reply_result(req, result);
}

static void es_write_cancel(EsRequest *req)
{
	EsProcess *p = req->pending;
	if (p->write_req == req)
		p->write_req = NULL;
}

static void es_on_stdin_written(void *ctx, int status)
{
	EsStdinWrite *w = ctx;
	EsProcess *p = w->process;
	if (p) {
		if (w->prev)
			w->prev->next = w->next;
		else
			p->writes = w->next;
		if (w->next)
			w->next->prev = w->prev;
		p->stdin_queued -= w->len;
		if (p->write_req && p->stdin_queued <= ES_STDIN_MAX_QUEUED_BYTES) {
			EsRequest *req = p->write_req;
			p->write_req = NULL;
			req->cancel = NULL;
			es_write_reply_status(req, "accepted");
		}
	}
	free(w);
}

static const EsField es_write_fields[] = {
	{ .name = "processId", .type = ES_T_STRING, .is_required = true },
	{ .name = "chunk", .type = ES_T_STRING, .is_required = true },
	{ .name = "writeId", .type = ES_T_STRING, .is_required = true },
	/* Our extension (agentd's command/exec/write closeStdin): close stdin after the chunk. */
	{ .name = "closeStdin", .type = ES_T_BOOL, .is_required = false },
};
static const EsStruct es_write_params = { "struct WriteParams", es_write_fields, 4 };

void es_method_process_write(EsRequest *req, json_t *params)
{
	json_t *v[4];
	char err[512];
	if (es_params_decode(&es_write_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	const char *text = json_string_value(v[1]);
	size_t text_len = json_string_length(v[1]);
	uint8_t *data = malloc(base64_decoded_max(text_len) + 1);
	size_t len = 0;
	if (!data) {
		es_reply_error(req, ES_INTERNAL_ERROR, "out of memory");
		return;
	}
	/* The chunk is decoded with the params: a bad one is a params error, as in the reference. */
	if (base64_decode(text, text_len, data, &len) < 0) {
		base64_describe_error(text, text_len, err, sizeof(err));
		free(data);
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req)) {
		free(data);
		return;
	}
	EsProcess *p = es_proc_find(req->client->session, json_string_value(v[0]));
	const char *status = NULL;
	if (!p)
		status = "unknownProcess";
	else if (!p->is_started)
		status = "starting";
	else if (!p->has_tty && !p->has_pipe_stdin)
		status = "stdinClosed";
	if (status) {
		free(data);
		es_write_reply_status(req, status);
		return;
	}
	EsStdinWrite *w = calloc(1, sizeof(*w));
	if (!w || !p->proc) {
		free(w);
		free(data);
		es_write_reply_status(req, "accepted");
		return;
	}
	/* Linked before the write: its completion may run inside proc_write(). */
	w->process = p;
	w->len = len;
	w->next = p->writes;
	if (p->writes)
		p->writes->prev = w;
	p->writes = w;
	p->stdin_queued += len;
	int rc = proc_write(p->proc, data, len, json_is_true(v[3]), es_on_stdin_written, w);
	free(data);
	if (rc < 0) {
		/* No completion follows a refused write. Gone or closed: the reference still answers
		 * "accepted" (the bytes go nowhere). */
		es_on_stdin_written(w, rc);
		es_write_reply_status(req, rc == -EBADF ? "stdinClosed" : "accepted");
		return;
	}
	if (p->stdin_queued <= ES_STDIN_MAX_QUEUED_BYTES) {
		es_write_reply_status(req, "accepted");
		return;
	}
	/* A child that does not read its stdin holds the client's next request, not our memory. */
	p->write_req = req;
	req->pending = p;
	req->cancel = es_write_cancel;
}

static const char *const es_signal_variants[] = { "interrupt", NULL };
static const EsField es_signal_fields[] = {
	{ .name = "processId", .type = ES_T_STRING, .is_required = true },
	{ .name = "signal", .type = ES_T_ENUM, .is_required = true, .variants = es_signal_variants },
};
static const EsStruct es_signal_params = { "struct SignalParams", es_signal_fields, 2 };

void es_method_process_signal(EsRequest *req, json_t *params)
{
	json_t *v[2];
	char err[512];
	if (es_params_decode(&es_signal_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req))
		return;
	EsProcess *p = es_proc_find(req->client->session, json_string_value(v[0]));
	/* SIGINT to the whole group, as a terminal's ^C reaches it; unknown ids are no error. */
	if (p && p->proc && p->is_started && !p->has_exited)
		proc_signal(p->proc, SIGINT);
	es_reply_result(req, json_object());
}

static const EsField es_terminate_fields[] = {
	{ .name = "processId", .type = ES_T_STRING, .is_required = true },
};
static const EsStruct es_terminate_params = { "struct TerminateParams", es_terminate_fields, 1 };

void es_method_process_terminate(EsRequest *req, json_t *params)
{
	json_t *v[1];
	char err[512];
	if (es_params_decode(&es_terminate_params, params, v, err, sizeof(err)) < 0) {
		es_reply_error(req, ES_INVALID_PARAMS, "%s", err);
		return;
	}
	if (!es_request_is_allowed(req))
		return;
	EsProcess *p = es_proc_find(req->client->session, json_string_value(v[0]));
	bool is_running = p && p->proc && p->is_started && !p->has_exited;
	if (is_running)
		proc_kill(p->proc);
	json_t *result = json_object();
	json_object_set_new(result, "running", json_boolean(is_running));
	es_reply_result(req, result);
}
