/* SPDX-License-Identifier: MIT */
/* unified_exec.c - exec_command / write_stdin sessions and the one-shot shell tools of one agent
 * thread, as the reference runs them: an early-exit grace after spawn, yield windows, 64 kept
 * sessions with LRU pruning, output held head-and-tail between calls. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "tool_exec.h"
#include "unified_exec.h"

/* A process that exits this soon after it started is a short command, not a session. */
#define UX_EARLY_EXIT_GRACE_MS 150
/* After writing to a session the reference gives the process this long before it collects. */
#define UX_AFTER_WRITE_MS 100
#define UX_PROTECTED_RECENT 8
#define UX_FIRST_ID 1000
#define UX_ID_SPAN 99000 /* ids are 1000 … 99999 */

/* The reference's environment for model commands (process_manager.rs UNIFIED_EXEC_ENV). */
static const char *const ux_env_overlay[][2] = {
	{ "NO_COLOR", "1" },	 { "TERM", "dumb" },  { "LANG", "C.UTF-8" }, { "LC_CTYPE", "C.UTF-8" },
	{ "LC_ALL", "C.UTF-8" }, { "COLORTERM", "" }, { "PAGER", "cat" },    { "GIT_PAGER", "cat" },
	{ "GH_PAGER", "cat" },	 { "CODEX_CI", "1" },
};

/* Output kept between calls: the first half of the budget, then a rolling tail (the middle goes). */
typedef struct UxHeadTail {
	XfBuf head, tail;
	size_t cap;
	bool is_head_only; /* keep the first cap bytes, drop the rest (one-shot commands) */
} UxHeadTail;

typedef enum UxCallKind { UX_CALL_EXEC, UX_CALL_WRITE, UX_CALL_ONCE } UxCallKind;

typedef enum UxPhase {
	UX_PHASE_QUEUED,  /* behind another call on the same session */
	UX_PHASE_SPAWN,	  /* waiting for execd to start it */
	UX_PHASE_GRACE,	  /* started: the early-exit grace */
	UX_PHASE_SLEEP,	  /* wrote input: the process gets a moment */
	UX_PHASE_COLLECT, /* the yield window */
	UX_PHASE_DONE,	  /* answered (on the ready queue) */
} UxPhase;

typedef struct UxProc UxProc;

typedef struct UxCall {
	struct UxCall *next; /* the process's queue, then the ready queue */
	UnifiedExec *ux;
	UxProc *proc;
	UxCallKind kind;
	UxCallbacks cb;
	void *ctx;
	bool is_cancelled;
	bool is_structured;
	UxPhase phase;
	uint64_t start_ns;
	uint64_t yield_ms;
	int64_t max_output_tokens;
	XfPolicy policy;
	uint8_t *input;
	size_t input_len;
	XfBuf text, output;
	char warning[320];
	UxResult result;
} UxCall;

struct UxProc {
	UxProc *next;
	UnifiedExec *ux;
	int64_t id; /* the session id; -1 for a one-shot run */
	ToolExec *x;
	char *command_line;
	bool is_tty, is_once, is_structured;
	bool is_spawned, has_exited, is_over, is_stored, is_timed_out, is_killed, is_released;
	bool is_cb_cancelled; /* the exec_command's ctx went: no on_output / on_end */
	int64_t exit_code;
	uint64_t start_ns; /* after the grace (a one-shot run: at spawn); 0 before */
	uint64_t last_used_ns;
	int64_t timeout_ms;
	UxHeadTail pending;    /* not yet returned to the model */
	UxHeadTail transcript; /* everything, for the item's aggregated output */
	uint8_t carry[4];      /* an incomplete UTF-8 sequence held for the next chunk */
	size_t carry_len;
	UxCallbacks cb;
	void *ctx;
	UxCall *calls, *calls_tail;
	uv_timer_t timer;
};

struct UnifiedExec {
	Agentd *server;
	uint64_t owner;
	UxProc *procs;
	UxCall *ready, *ready_tail;
	uv_timer_t defer;
	bool is_deterministic;
	uint64_t rng;
};

static void ux_proc_on_timer(uv_timer_t *timer);
static void ux_call_activate(UxCall *call);
static void ux_proc_release(UxProc *p);

/* --- small pieces ---------------------------------------------------------------------------------- */

static uint64_t ux_now_ns(void)
{
	return uv_hrtime();
}

static uint64_t ux_random(UnifiedExec *ux)
{
	/* xorshift64*, seeded from getrandom(): ids and chunk ids only need to look random. */
	ux->rng ^= ux->rng >> 12;
	ux->rng ^= ux->rng << 25;
	ux->rng ^= ux->rng >> 27;
	return ux->rng * UINT64_C(2685821657736338717);
}

static void ux_chunk_id(UnifiedExec *ux, char out[7])
{
	uint64_t r = ux_random(ux);
	for (int i = 0; i < 6; i++, r >>= 4)
		out[i] = "0123456789abcdef"[r & 15];
	out[6] = '\0';
}

static int64_t ux_clamp(int64_t value, int64_t lo, int64_t hi)
{
	return value < lo ? lo : value > hi ? hi : value;
}

static void ux_head_tail_push(UxHeadTail *b, const uint8_t *data, size_t len)
{
	size_t head_cap = b->is_head_only ? b->cap : b->cap / 2, tail_cap = b->cap - b->cap / 2;
	size_t to_head = b->head.len < head_cap ? head_cap - b->head.len : 0;
	if (to_head > len)
		to_head = len;
	if (to_head && xf_buf_append(&b->head, data, to_head) < 0)
		return;
	data += to_head;
	len -= to_head;
	if (!len || b->is_head_only)
		return;
	if (len >= tail_cap) {
		b->tail.len = 0;
		xf_buf_append(&b->tail, data + len - tail_cap, tail_cap);
		return;
	}
	if (b->tail.len + len > tail_cap) {
		size_t drop = b->tail.len + len - tail_cap;
		memmove(b->tail.data, b->tail.data + drop, b->tail.len - drop);
		b->tail.len -= drop;
	}
	xf_buf_append(&b->tail, data, len);
}

/* The kept bytes as lossy UTF-8 into @out; @b is emptied. */
static int ux_head_tail_drain(UxHeadTail *b, XfBuf *out)
{
	XfBuf raw = { 0 };
	int rc = xf_buf_append(&raw, b->head.data, b->head.len);
	if (rc == 0)
		rc = xf_buf_append(&raw, b->tail.data, b->tail.len);
	if (rc == 0)
		rc = xf_utf8_lossy((const uint8_t *)raw.data, raw.len, out);
	xf_buf_free(&raw);
	b->head.len = b->tail.len = 0;
	return rc;
}

static void ux_head_tail_free(UxHeadTail *b)
{
	xf_buf_free(&b->head);
	xf_buf_free(&b->tail);
}

/* The user's login shell (the reference's default_user_shell), else $SHELL, else /bin/sh. */
static const char *ux_user_shell(void)
{
	struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_shell && pw->pw_shell[0] == '/' && access(pw->pw_shell, X_OK) == 0)
		return pw->pw_shell;
	const char *env = getenv("SHELL");
	if (env && env[0] == '/' && access(env, X_OK) == 0)
		return env;
	return "/bin/sh";
}

static int ux_resolve_cwd(const UxRequest *req, char *out, size_t size)
{
	char here[AGENTD_PATH_MAX];
	const char *base = req->cwd;
	if (!base) {
		if (!getcwd(here, sizeof(here)))
			return -errno;
		base = here;
	}
	if (!req->workdir || !req->workdir[0])
		return path_normalize(NULL, base, out, size);
	return path_normalize(req->workdir[0] == '/' ? NULL : base, req->workdir, out, size);
}

/* --- calls and answers ------------------------------------------------------------------------------- */

static void ux_call_free(UxCall *call)
{
	xf_buf_free(&call->text);
	xf_buf_free(&call->output);
	free(call->input);
	free(call);
}

static void ux_deliver_ready(uv_timer_t *timer)
{
	UnifiedExec *ux = timer->data;
	while (ux->ready) {
		UxCall *call = ux->ready;
		ux->ready = call->next;
		if (!ux->ready)
			ux->ready_tail = NULL;
		if (!call->is_cancelled && call->cb.on_result)
			call->cb.on_result(call->ctx, &call->result);
		ux_call_free(call);
	}
}

/* @call's answer is ready: it reaches the caller from the loop, never from inside a ux_* call. */
static void ux_call_answer(UxCall *call)
{
	UnifiedExec *ux = call->ux;
	call->phase = UX_PHASE_DONE;
	call->result.text = xf_buf_text(&call->text);
	call->result.output = xf_buf_text(&call->output);
	call->result.output_len = call->output.len;
	call->result.warning = call->warning[0] ? call->warning : NULL;
	call->next = NULL;
	if (ux->ready_tail)
		ux->ready_tail->next = call;
	else
		ux->ready = call;
	ux->ready_tail = call;
	uv_timer_start(&ux->defer, ux_deliver_ready, 0, 0);
}

static void ux_call_fail(UxCall *call, const char *text)
{
	call->result.is_error = true;
	call->result.success = false;
	if (xf_buf_printf(&call->text, "%s", text) < 0)
		log_warn("unified exec: out of memory for an error answer");
	ux_call_answer(call);
}

/* The process's head call is answered: the next one on it (if any) starts. */
static void ux_proc_pop_call(UxProc *p, UxCall *call)
{
	if (p->calls != call)
		return;
	p->calls = call->next;
	if (!p->calls)
		p->calls_tail = NULL;
	call->next = NULL;
	call->proc = NULL;
	if (p->calls)
		ux_call_activate(p->calls);
}

/* --- the session store -------------------------------------------------------------------------------- */

static size_t ux_stored_count(const UnifiedExec *ux)
{
	size_t n = 0;
	for (const UxProc *p = ux->procs; p; p = p->next)
		n += p->is_stored;
	return n;
}

static bool ux_is_protected(const UnifiedExec *ux, const UxProc *candidate)
{
	/* One of the UX_PROTECTED_RECENT most recently used stays whatever happens. */
	size_t newer = 0;
	for (const UxProc *p = ux->procs; p; p = p->next)
		if (p->is_stored && p != candidate && p->last_used_ns > candidate->last_used_ns)
			newer++;
	return newer < UX_PROTECTED_RECENT;
}

/* At UX_MAX_PROCESSES: drop the least recently used exited session, else the least recently used one. */
static void ux_prune_if_needed(UnifiedExec *ux)
{
	if (ux_stored_count(ux) < UX_MAX_PROCESSES)
		return;
	UxProc *victim = NULL;
	for (int pass = 0; pass < 2 && !victim; pass++)
		for (UxProc *p = ux->procs; p; p = p->next)
			if (p->is_stored && (pass == 1 || p->has_exited) && !ux_is_protected(ux, p) &&
			    (!victim || p->last_used_ns < victim->last_used_ns))
				victim = p;
	if (!victim)
		return;
	victim->is_stored = false;
	if (!victim->has_exited) {
		victim->is_killed = true;
		tool_exec_kill(victim->x);
	}
	ux_proc_release(victim);
}

static UxProc *ux_find_stored(UnifiedExec *ux, int64_t id)
{
	for (UxProc *p = ux->procs; p; p = p->next)
		if (p->is_stored && p->id == id)
			return p;
	return NULL;
}

static bool ux_id_in_use(const UnifiedExec *ux, int64_t id)
{
	for (const UxProc *p = ux->procs; p; p = p->next)
		if (p->id == id)
			return true;
	return false;
}

static int64_t ux_allocate_id(UnifiedExec *ux)
{
	if (ux->is_deterministic) {
		int64_t next = UX_FIRST_ID - 1;
		for (const UxProc *p = ux->procs; p; p = p->next)
			if (p->id > next)
				next = p->id;
		return next + 1;
	}
	for (;;) {
		int64_t id = UX_FIRST_ID + (int64_t)(ux_random(ux) % UX_ID_SPAN);
		if (!ux_id_in_use(ux, id))
			return id;
	}
}

/* --- collecting -------------------------------------------------------------------------------------- */

/* The yield window of @call is over (or the process exited): its answer, in the reference's words. */
static void ux_call_finish_collect(UxCall *call)
{
	UxProc *p = call->proc;
	UnifiedExec *ux = call->ux;
	uint64_t now = ux_now_ns();
	uint64_t wall_ns = call->start_ns && now > call->start_ns ? now - call->start_ns : 0;
	uv_timer_stop(&p->timer);
	if (ux_head_tail_drain(&p->pending, &call->output) < 0)
		log_warn("unified exec: out of memory for the output of session %lld", (long long)p->id);
	bool is_running = !p->has_exited;
	if (call->kind == UX_CALL_EXEC && is_running && !p->is_killed) {
		ux_prune_if_needed(ux);
		p->is_stored = true;
		p->last_used_ns = p->start_ns ? p->start_ns : now;
		size_t stored = ux_stored_count(ux);
		if (stored >= UX_WARNING_PROCESSES)
			snprintf(call->warning, sizeof(call->warning),
				 "The maximum number of unified exec processes you can keep open is %d and "
				 "you currently "
				 "have %zu processes open. Reuse older processes or close them to prevent "
				 "automatic "
				 "pruning of old processes",
				 UX_WARNING_PROCESSES, stored);
	} else if (!is_running) {
		p->is_stored = false; /* observed exited: the id is free again */
	}
	char chunk_id[7];
	ux_chunk_id(ux, chunk_id);
	XfUnifiedExec r = {
		.chunk_id = chunk_id,
		.wall_time_ns = wall_ns,
		.has_exit_code = !is_running,
		.exit_code = p->exit_code,
		.has_session_id = is_running,
		.session_id = p->id,
		.output = xf_buf_text(&call->output),
		.output_len = call->output.len,
		.max_output_tokens = call->max_output_tokens,
		.policy = call->policy,
	};
	if (xf_unified_exec_text(&r, &call->text) < 0)
		log_warn("unified exec: out of memory for an answer");
	call->result.success = true;
	call->result.session_id = p->id;
	call->result.is_running = is_running;
	call->result.has_exit_code = !is_running;
	call->result.exit_code = p->exit_code;
	call->result.wall_time_ms = wall_ns / 1000000u;
	ux_proc_pop_call(p, call);
	ux_call_answer(call);
	ux_proc_release(p);
}

static void ux_call_start_collect(UxCall *call)
{
	UxProc *p = call->proc;
	call->phase = UX_PHASE_COLLECT;
	uv_update_time(p->timer.loop);
	call->start_ns = ux_now_ns();
	if (p->has_exited || p->is_over) {
		ux_call_finish_collect(call);
		return;
	}
	uv_timer_start(&p->timer, ux_proc_on_timer, call->yield_ms, 0);
}

/* A one-shot run ended: its answer (freeform or structured) and the aggregated output. */
static void ux_call_finish_once(UxCall *call)
{
	UxProc *p = call->proc;
	uint64_t now = ux_now_ns();
	uint64_t duration_ns = p->start_ns && now > p->start_ns ? now - p->start_ns : 0;
	uv_timer_stop(&p->timer);
	XfBuf all = { 0 };
	if (ux_head_tail_drain(&p->pending, &all) < 0)
		log_warn("unified exec: out of memory for the output of a command");
	int64_t exit_code = p->is_timed_out ? 124 : p->exit_code;
	XfExecOutput r = {
		.exit_code = exit_code,
		.duration_ns = duration_ns,
		.is_timed_out = p->is_timed_out,
		.output = xf_buf_text(&all),
		.output_len = all.len,
		.policy = call->policy,
	};
	int rc =
		call->is_structured ? xf_structured_text(&r, &call->text) : xf_freeform_text(&r, &call->text);
	if (rc < 0)
		log_warn("unified exec: out of memory for an answer");
	call->output = all;
	call->result.success = exit_code == 0 && !p->is_timed_out;
	call->result.session_id = -1;
	call->result.has_exit_code = true;
	call->result.exit_code = exit_code;
	call->result.wall_time_ms = duration_ns / 1000000u;
	ux_proc_pop_call(p, call);
	ux_call_answer(call);
	ux_proc_release(p);
}

static void ux_proc_on_timer(uv_timer_t *timer)
{
	UxProc *p = timer->data;
	UxCall *call = p->calls;
	if (p->is_once) {
		/* The timeout: kill it; the exit that follows answers as timed out. */
		if (!p->has_exited && !p->is_timed_out) {
			p->is_timed_out = true;
			tool_exec_kill(p->x);
		}
		return;
	}
	if (!call)
		return;
	if (call->phase == UX_PHASE_GRACE) {
		p->start_ns = ux_now_ns();
		ux_call_start_collect(call);
	} else if (call->phase == UX_PHASE_SLEEP) {
		ux_call_start_collect(call);
	} else if (call->phase == UX_PHASE_COLLECT) {
		/* libuv's timers run on the loop's cached millisecond clock: never answer before the
		 * deadline (the reference's wall time is never below yield_time_ms). */
		uint64_t elapsed_ns = ux_now_ns() - call->start_ns, yield_ns = call->yield_ms * 1000000u;
		if (elapsed_ns < yield_ns)
			uv_timer_start(&p->timer, ux_proc_on_timer,
				       (yield_ns - elapsed_ns + 999999u) / 1000000u, 0);
		else
			ux_call_finish_collect(call);
	}
}

static void ux_call_activate(UxCall *call)
{
	UxProc *p = call->proc;
	if (call->kind != UX_CALL_WRITE)
		return; /* exec and one-shot calls start with their process */
	if (!call->input_len) {
		ux_call_start_collect(call);
		return;
	}
	if (p->has_exited || p->is_over || tool_exec_write(p->x, call->input, call->input_len, false) < 0) {
		ux_proc_pop_call(p, call);
		ux_call_fail(call, "write_stdin failed: failed to write to stdin");
		return;
	}
	call->phase = UX_PHASE_SLEEP;
	uv_timer_start(&p->timer, ux_proc_on_timer, UX_AFTER_WRITE_MS, 0);
}

/* --- the process's events --------------------------------------------------------------------------- */

static bool ux_proc_wants_events(const UxProc *p)
{
	return p->ux && !p->is_cb_cancelled;
}

static void ux_on_started(void *ctx, int pid)
{
	UxProc *p = ctx;
	UxCall *call = p->calls;
	p->is_spawned = true;
	if (ux_proc_wants_events(p) && p->cb.on_started)
		p->cb.on_started(p->ctx, p->id, p->command_line);
	if (!p->ux)
		return; /* on_started freed the UnifiedExec */
	call = p->calls;
	if (p->is_once) {
		p->start_ns = ux_now_ns();
		if (p->timeout_ms >= 0)
			uv_timer_start(&p->timer, ux_proc_on_timer, (uint64_t)p->timeout_ms, 0);
		return;
	}
	if (call && call->phase == UX_PHASE_SPAWN) {
		call->phase = UX_PHASE_GRACE;
		uv_timer_start(&p->timer, ux_proc_on_timer, UX_EARLY_EXIT_GRACE_MS, 0);
	}
}

/* Output to the outputDelta stream in whole characters (invalid bytes as U+FFFD). */
static void ux_stream(UxProc *p, const uint8_t *data, size_t len, bool is_last)
{
	if (!ux_proc_wants_events(p) || !p->cb.on_output)
		return;
	uint8_t *joined = malloc(p->carry_len + len);
	if (!joined)
		return;
	memcpy(joined, p->carry, p->carry_len);
	if (len)
		memcpy(joined + p->carry_len, data, len);
	size_t total = p->carry_len + len;
	size_t complete = is_last ? total : xf_utf8_complete_len(joined, total);
	p->carry_len = total - complete;
	memcpy(p->carry, joined + complete, p->carry_len);
	XfBuf text = { 0 };
	if (complete && xf_utf8_lossy(joined, complete, &text) == 0)
		p->cb.on_output(p->ctx, xf_buf_text(&text), text.len);
	xf_buf_free(&text);
	free(joined);
}

static void ux_on_output(void *ctx, int stream, const uint8_t *data, size_t len)
{
	UxProc *p = ctx;
	ux_head_tail_push(&p->pending, data, len);
	if (!p->is_once)
		ux_head_tail_push(&p->transcript, data, len);
	/* The reference streams deltas from the end of the early-exit grace on. */
	if (p->is_once || p->start_ns)
		ux_stream(p, data, len, false);
}

static void ux_deliver_end(UxProc *p)
{
	if (p->carry_len)
		ux_stream(p, NULL, 0, true);
	if (!ux_proc_wants_events(p) || !p->cb.on_end)
		return;
	uint64_t now = ux_now_ns();
	XfBuf aggregated = { 0 };
	UxHeadTail *source = p->is_once ? &p->pending : &p->transcript;
	XfBuf raw = { 0 };
	if (xf_buf_append(&raw, source->head.data, source->head.len) == 0 &&
	    xf_buf_append(&raw, source->tail.data, source->tail.len) == 0)
		xf_utf8_lossy((const uint8_t *)raw.data, raw.len, &aggregated);
	xf_buf_free(&raw);
	UxEnd end = {
		.session_id = p->is_once ? -1 : p->id,
		.exit_code = p->is_once && p->is_timed_out ? 124 : p->exit_code,
		.aggregated_output = xf_buf_text(&aggregated),
		.aggregated_len = aggregated.len,
		.duration_ms = p->start_ns && now > p->start_ns ? (now - p->start_ns) / 1000000u : 0,
	};
	p->cb.on_end(p->ctx, &end);
	xf_buf_free(&aggregated);
}

static void ux_on_exit(void *ctx, int64_t exit_code)
{
	UxProc *p = ctx;
	UxCall *call = p->calls;
	p->has_exited = true;
	p->is_over = true;
	p->exit_code = exit_code;
	ux_deliver_end(p);
	if (!p->ux)
		return; /* on_end freed the UnifiedExec: its calls are gone */
	call = p->calls;
	if (p->is_once && call) {
		ux_call_finish_once(call);
		return;
	}
	if (call && (call->phase == UX_PHASE_GRACE || call->phase == UX_PHASE_COLLECT))
		ux_call_finish_collect(call);
	else
		ux_proc_release(p);
}

static void ux_on_error(void *ctx, const char *message, bool is_sandbox_refusal)
{
	UxProc *p = ctx;
	UxCall *call = p->calls;
	p->is_over = true;
	if (p->is_spawned) {
		/* execd went away under it: it ended, how is unknown; the model and the item say why. */
		XfBuf why = { 0 };
		if (xf_buf_printf(&why, "%s\n", message) == 0) {
			ux_head_tail_push(&p->pending, (const uint8_t *)why.data, why.len);
			if (!p->is_once)
				ux_head_tail_push(&p->transcript, (const uint8_t *)why.data, why.len);
		}
		xf_buf_free(&why);
		ux_on_exit(ctx, -1);
		return;
	}
	while (call) {
		XfBuf text = { 0 }, quoted = { 0 };
		ux_proc_pop_call(p, call);
		if (xf_rust_debug_str(message, &quoted) == 0 && call->kind == UX_CALL_EXEC)
			xf_buf_printf(&text, "exec_command failed for `%s`: CreateProcess { message: %s }",
				      p->command_line, xf_buf_text(&quoted));
		else
			xf_buf_printf(&text, "execution error: %s", message);
		ux_call_fail(call, xf_buf_text(&text));
		xf_buf_free(&text);
		xf_buf_free(&quoted);
		call = p->calls;
	}
	ux_proc_release(p);
}

static const ToolExecEvents ux_tool_events = {
	.on_started = ux_on_started,
	.on_output = ux_on_output,
	.on_exit = ux_on_exit,
	.on_error = ux_on_error,
};

/* --- processes ------------------------------------------------------------------------------------- */

static void ux_proc_closed(uv_handle_t *handle)
{
	UxProc *p = handle->data;
	ux_head_tail_free(&p->pending);
	ux_head_tail_free(&p->transcript);
	free(p->command_line);
	free(p);
}

static void ux_proc_unlink(UxProc *p)
{
	UnifiedExec *ux = p->ux;
	if (!ux)
		return;
	for (UxProc **at = &ux->procs; *at; at = &(*at)->next)
		if (*at == p) {
			*at = p->next;
			break;
		}
	p->ux = NULL;
}

/* Frees @p once it is over, not kept as a session and no call waits on it. */
static void ux_proc_release(UxProc *p)
{
	if (!p->is_over || p->is_stored || p->calls || p->is_released)
		return;
	p->is_released = true;
	ux_proc_unlink(p);
	tool_exec_detach(p->x);
	p->x = NULL;
	uv_close((uv_handle_t *)&p->timer, ux_proc_closed);
}

static UxProc *ux_proc_new(UnifiedExec *ux, int64_t id, bool is_once)
{
	UxProc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (uv_timer_init(ux->server->loop, &p->timer) < 0) {
		free(p);
		return NULL;
	}
	p->timer.data = p;
	p->ux = ux;
	p->id = id;
	p->is_once = is_once;
	p->exit_code = -1;
	p->pending.cap = UX_OUTPUT_MAX_BYTES;
	p->transcript.cap = UX_OUTPUT_MAX_BYTES;
	p->pending.is_head_only = is_once;
	p->next = ux->procs;
	ux->procs = p;
	return p;
}

/* A process that never got a ToolExec: no callback will come, so it goes now. */
static void ux_proc_abandon(UxProc *p)
{
	p->is_over = true;
	p->is_released = true;
	ux_proc_unlink(p);
	uv_close((uv_handle_t *)&p->timer, ux_proc_closed);
}

static UxCall *ux_call_new(UnifiedExec *ux, UxCallKind kind, const UxRequest *req, const UxCallbacks *cb,
			   void *ctx)
{
	UxCall *call = calloc(1, sizeof(*call));
	if (!call)
		return NULL;
	call->ux = ux;
	call->kind = kind;
	call->cb = *cb;
	call->ctx = ctx;
	call->max_output_tokens = req->max_output_tokens;
	call->policy = req->truncation.limit || req->truncation.kind == XF_POLICY_TOKENS ? req->truncation
											 : XF_DEFAULT_POLICY;
	call->result.session_id = -1;
	return call;
}

/* The merged environment: agentd's, the request's variables, then (exec_command) the reference's overlay. */
static json_t *ux_environment(const UxRequest *req, bool has_overlay)
{
	json_t *overrides = req->env ? json_deep_copy(req->env) : json_object();
	if (!overrides)
		return NULL;
	for (size_t i = 0; has_overlay && i < sizeof(ux_env_overlay) / sizeof(ux_env_overlay[0]); i++)
		json_object_set_new(overrides, ux_env_overlay[i][0], json_string(ux_env_overlay[i][1]));
	json_t *env = tool_exec_environment(overrides);
	json_decref(overrides);
	return env;
}

/* Starts @p's process for @call; on failure @call is answered with the reference's error. */
static int ux_proc_start(UnifiedExec *ux, UxProc *p, UxCall *call, const UxRequest *req, json_t *argv,
			 bool has_overlay)
{
	char cwd[AGENTD_PATH_MAX];
	size_t argc = json_array_size(argv);
	const char **args = calloc(argc + 1, sizeof(*args));
	XfBuf line = { 0 };
	if (!args)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++)
		args[i] = json_string_value(json_array_get(argv, i));
	int rc = xf_shlex_join(args, argc, &line);
	free(args);
	p->command_line = rc == 0 ? strdup(xf_buf_text(&line)) : NULL;
	xf_buf_free(&line);
	json_t *env = p->command_line ? ux_environment(req, has_overlay) : NULL;
	if (!env)
		return -ENOMEM;
	p->calls = p->calls_tail = call;
	call->proc = p;
	call->phase = UX_PHASE_SPAWN;
	rc = ux_resolve_cwd(req, cwd, sizeof(cwd));
	if (rc < 0) {
		json_decref(env);
		p->calls = p->calls_tail = NULL;
		call->proc = NULL;
		XfBuf text = { 0 };
		xf_buf_printf(&text, "%s failed: workdir: %s",
			      call->kind == UX_CALL_EXEC ? "exec_command" : "exec", strerror(-rc));
		ux_call_fail(call, xf_buf_text(&text));
		xf_buf_free(&text);
		ux_proc_abandon(p);
		return 0;
	}
	ToolExecSpec spec = {
		.argv = argv,
		.cwd = cwd,
		.sandbox_policy = req->sandbox_policy,
		.env = env,
		.timeout_ms = -1, /* the yield and timeout logic is ours; execd only enforces cap and kill */
		.cap_bytes = UINT64_MAX,
		.tty = p->is_tty,
		.pipe_stdin = false, /* the reference gives a pipe command no stdin */
		.tmpdir = req->tmpdir,
		.workspace = req->workspace,
	};
	p->x = tool_exec_start(ux->server, ux->owner, &spec, &ux_tool_events, p);
	json_decref(env);
	if (!p->x) {
		p->calls = p->calls_tail = NULL;
		call->proc = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* --- the tools ------------------------------------------------------------------------------------- */

static json_t *ux_shell_argv(const UxRequest *req, const char *script)
{
	const char *shell = req->shell && req->shell[0] ? req->shell : ux_user_shell();
	return json_pack("[s,s,s]", shell, req->login == 0 ? "-c" : "-lc", script ? script : "");
}

int ux_exec_command(UnifiedExec *ux, const UxRequest *req, const UxCallbacks *cb, void *ctx)
{
	UxCall *call = ux_call_new(ux, UX_CALL_EXEC, req, cb, ctx);
	if (!call)
		return -ENOMEM;
	int64_t yield = req->yield_time_ms < 0 ? UX_DEFAULT_EXEC_YIELD_TIME_MS : req->yield_time_ms;
	call->yield_ms = (uint64_t)ux_clamp(yield, UX_MIN_YIELD_TIME_MS, UX_MAX_YIELD_TIME_MS);
	UxProc *p = ux_proc_new(ux, ux_allocate_id(ux), false);
	json_t *argv = p ? ux_shell_argv(req, req->cmd) : NULL;
	if (p) {
		p->is_tty = req->tty;
		p->cb = *cb;
		p->ctx = ctx;
	}
	int rc = argv ? ux_proc_start(ux, p, call, req, argv, true) : -ENOMEM;
	json_decref(argv);
	if (rc < 0) {
		if (p)
			ux_proc_abandon(p);
		ux_call_free(call);
	}
	return rc;
}

int ux_write_stdin(UnifiedExec *ux, const UxRequest *req, const UxCallbacks *cb, void *ctx)
{
	UxCall *call = ux_call_new(ux, UX_CALL_WRITE, req, cb, ctx);
	if (!call)
		return -ENOMEM;
	size_t len = req->chars ? req->chars_len : 0;
	int64_t yield = req->yield_time_ms < 0 ? UX_DEFAULT_WRITE_YIELD_TIME_MS : req->yield_time_ms;
	call->yield_ms =
		len ? (uint64_t)ux_clamp(yield, UX_MIN_YIELD_TIME_MS, UX_MAX_YIELD_TIME_MS)
		    : (uint64_t)ux_clamp(yield, UX_MIN_EMPTY_YIELD_TIME_MS, UX_MAX_EMPTY_YIELD_TIME_MS);
	UxProc *p = ux_find_stored(ux, req->session_id);
	char text[160];
	if (!p) {
		snprintf(text, sizeof(text), "write_stdin failed: Unknown process id %lld",
			 (long long)req->session_id);
		ux_call_fail(call, text);
		return 0;
	}
	p->last_used_ns = ux_now_ns();
	if (len && !p->is_tty) {
		ux_call_fail(call,
			     "write_stdin failed: stdin is closed for this session; rerun exec_command with "
			     "tty=true to keep stdin open");
		return 0;
	}
	if (len && !(call->input = malloc(len))) {
		ux_call_free(call);
		return -ENOMEM;
	}
	if (len)
		memcpy(call->input, req->chars, len);
	call->input_len = len;
	call->proc = p;
	call->phase = UX_PHASE_QUEUED;
	if (p->calls_tail)
		p->calls_tail->next = call;
	else
		p->calls = call;
	p->calls_tail = call;
	if (p->calls == call)
		ux_call_activate(call);
	return 0;
}

int ux_run_once(UnifiedExec *ux, const UxRequest *req, bool is_structured, const UxCallbacks *cb, void *ctx)
{
	UxCall *call = ux_call_new(ux, UX_CALL_ONCE, req, cb, ctx);
	if (!call)
		return -ENOMEM;
	call->is_structured = is_structured;
	UxProc *p = ux_proc_new(ux, -1, true);
	json_t *argv = NULL;
	if (p) {
		p->cb = *cb;
		p->ctx = ctx;
		p->is_structured = is_structured;
		p->timeout_ms = req->timeout_ms < 0 ? UX_DEFAULT_TIMEOUT_MS : req->timeout_ms;
		argv = is_structured ? json_incref(req->argv) : ux_shell_argv(req, req->cmd);
	}
	if (p && is_structured && (!json_is_array(argv) || json_array_size(argv) == 0)) {
		json_decref(argv);
		ux_call_fail(
			call,
			"failed to parse function arguments: command must be a non-empty array of strings");
		ux_proc_abandon(p);
		return 0;
	}
	int rc = argv ? ux_proc_start(ux, p, call, req, argv, false) : -ENOMEM;
	json_decref(argv);
	if (rc < 0) {
		if (p)
			ux_proc_abandon(p);
		ux_call_free(call);
	}
	return rc;
}

void ux_cancel(UnifiedExec *ux, void *ctx)
{
	for (UxCall *c = ux->ready; c; c = c->next)
		if (c->ctx == ctx)
			c->is_cancelled = true;
	for (UxProc *p = ux->procs, *next; p; p = next) {
		next = p->next;
		bool is_first_call_cancelled = false;
		for (UxCall *c = p->calls; c; c = c->next)
			if (c->ctx == ctx) {
				c->is_cancelled = true;
				is_first_call_cancelled |= c->kind != UX_CALL_WRITE;
			}
		if (p->ctx == ctx)
			p->is_cb_cancelled = true;
		/* A process only the abandoned call wanted (no session yet, or a one-shot run) goes too. */
		if (is_first_call_cancelled && !p->is_stored && !p->has_exited && !p->is_killed) {
			p->is_killed = true;
			tool_exec_kill(p->x);
		}
	}
}

void ux_kill_all(UnifiedExec *ux)
{
	tool_exec_kill_owner(ux->server, ux->owner);
	for (UxProc *p = ux->procs, *next; p; p = next) {
		next = p->next;
		p->is_killed = true;
		if (p->is_stored) {
			p->is_stored = false;
			ux_proc_release(p);
		}
	}
}

static void ux_closed(uv_handle_t *handle)
{
	free(handle->data);
}

void ux_free(UnifiedExec *ux)
{
	if (!ux)
		return;
	while (ux->ready) {
		UxCall *call = ux->ready;
		ux->ready = call->next;
		ux_call_free(call);
	}
	tool_exec_kill_owner(ux->server, ux->owner);
	while (ux->procs) {
		UxProc *p = ux->procs;
		while (p->calls) {
			UxCall *call = p->calls;
			p->calls = call->next;
			ux_call_free(call);
		}
		p->calls_tail = NULL;
		p->is_stored = false;
		p->is_over = true;
		ux_proc_release(p); /* detaches: no more callbacks */
	}
	uv_close((uv_handle_t *)&ux->defer, ux_closed);
}

UnifiedExec *ux_new(Agentd *server, uint64_t owner)
{
	UnifiedExec *ux = calloc(1, sizeof(*ux));
	if (!ux)
		return NULL;
	if (uv_timer_init(server->loop, &ux->defer) < 0) {
		free(ux);
		return NULL;
	}
	ux->defer.data = ux;
	ux->server = server;
	ux->owner = owner;
	if (getrandom(&ux->rng, sizeof(ux->rng), 0) != (ssize_t)sizeof(ux->rng))
		ux->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32);
	ux->rng |= 1; /* xorshift never leaves 0 */
	return ux;
}

void ux_set_deterministic_ids(UnifiedExec *ux, bool is_deterministic)
{
	ux->is_deterministic = is_deterministic;
}
