/* SPDX-License-Identifier: MIT */
/*
 * thread.h - agent threads: what each holds (settings, the model's history, its turns), who
 * hears of it (subscribed connections), and how it is persisted (a rollout file).
 *
 * A thread lives in agentd while loaded: from thread/start or thread/resume until agentd stops
 * (the reference keeps threads loaded after their last subscriber leaves, and so do we). Its
 * history is the Responses input the next model request resends in full; its turns are the v2
 * Turn objects thread/read and thread/turns/list return. The turn engine (turn.c) runs at most one
 * turn per thread at a time.
 */
#ifndef AGENTD_THREAD_H
#define AGENTD_THREAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd.h"
#include "conn.h"
#include "uuid.h"

typedef struct Rollout Rollout;
typedef struct UnifiedExec UnifiedExec;
typedef struct Turn Turn;
typedef struct Thread Thread;

/* AskForApproval values, as the wire spells them. */
typedef enum ApprovalPolicy {
	APPROVAL_UNTRUSTED,
	APPROVAL_ON_FAILURE,
	APPROVAL_ON_REQUEST,
	APPROVAL_NEVER,
} ApprovalPolicy;

struct Thread {
	Thread *prev, *next;
	Agentd *server;
	uint64_t owner; /* tool_exec's owner id: its processes die with the thread */
	char id[UUID_TEXT_LEN + 1];
	char *cwd;	      /* absolute */
	char *model;	      /* never NULL */
	char *model_provider; /* the provider id */
	char *reasoning_effort; /* or NULL */
	char *reasoning_summary; /* or NULL */
	ApprovalPolicy approval;
	json_t *sandbox;   /* v2 SandboxPolicy object */
	char *base_instructions;      /* or NULL: agentd's own */
	char *developer_instructions; /* or NULL */
	char *name;    /* or NULL */
	char *preview; /* the first user message, "" before it */
	char *source;  /* session source: "vscode", "cli", "exec", … */
	char *originator; /* recorded when the thread was created */
	int64_t created_at, updated_at; /* unix seconds */
	bool is_ephemeral;		/* no rollout */
	bool is_archived;
	char *path; /* the rollout file, or NULL */
	Rollout *rollout;
	json_t *history; /* array of Responses input items */
	json_t *turns;	 /* array of finished v2 Turn objects, oldest first */
	json_t *approved_commands; /* object used as a set: acceptForSession */
	json_t *usage_total;	   /* TokenUsageBreakdown of the whole thread */
	Turn *turn;		   /* the running turn, or NULL */
	uint64_t *subscribers;	   /* connection ids */
	size_t subscriber_count, subscriber_capacity;
	UnifiedExec *ux; /* exec_command sessions, made on first use */
	struct ToolRun *runs; /* tool calls not yet done with (tools.c) */
	bool has_context; /* the permissions / environment messages are in the history */
	/* Read state (thread/readState/update): none until a turn ends; kept in memory, not in the rollout. */
	char read_revision[UUID_TEXT_LEN + 1]; /* "" while there is none */
	json_t *first_unread;		       /* ThreadUnreadPosition, or NULL when read */
};

/** thread_new() - a loaded thread with @id registered in @server (settings filled by the caller). */
Thread *thread_new(Agentd *server, const char *id);
/** thread_free() - unregister, stop its turn and processes, close its rollout. */
void thread_free(Thread *thread);
/** thread_find() - the loaded thread @id, or NULL. */
Thread *thread_find(Agentd *server, const char *id);
/** thread_free_all() - at shutdown. */
void thread_free_all(Agentd *server);

/** thread_subscribe() / thread_unsubscribe() - whether connection @conn_id hears the thread's events. */
int thread_subscribe(Thread *thread, uint64_t conn_id);
bool thread_unsubscribe(Thread *thread, uint64_t conn_id);
bool thread_is_subscribed(const Thread *thread, uint64_t conn_id);
/** thread_on_conn_closed() - the connection went: drop it from every thread. */
void thread_on_conn_closed(Agentd *server, uint64_t conn_id);

/** thread_notify() - send notification @method with @params (stolen) to every subscriber. */
void thread_notify(Thread *thread, const char *method, json_t *params);

/** thread_status_json() - {"type":"idle"} or {"type":"active","activeFlags":[…]}. */
json_t *thread_status_json(const Thread *thread);
/** thread_json() - the v2 Thread object; @with_turns adds "turns" (else []). */
json_t *thread_json(const Thread *thread, bool with_turns);
/** thread_settings_json() - the fields thread/start and thread/resume answer besides "thread". */
json_t *thread_response_json(const Thread *thread, bool with_turns);

/** thread_read_state_json() - the ThreadReadState, or NULL before the first finished turn. */
json_t *thread_read_state_json(const Thread *thread);
/**
 * thread_set_unread() - @position (stolen; NULL: read) becomes the first unread position, under a
 * new revision, and subscribers hear thread/readState/changed. @only_if_read keeps an earlier
 * unread position. Ephemeral threads have no read state.
 */
void thread_set_unread(Thread *thread, json_t *position, bool only_if_read);

/** approval_policy_parse() / approval_policy_name() - the AskForApproval wire strings. */
int approval_policy_parse(const char *text, ApprovalPolicy *out);
const char *approval_policy_name(ApprovalPolicy policy);

/** thread_record() - append a rollout line (no-op for ephemeral threads); logs a failure. */
void thread_record(Thread *thread, const char *type, json_t *payload);
/** thread_sync() - fsync the rollout (turn boundaries). */
void thread_sync(Thread *thread);

/** thread_now_ms() - wall-clock milliseconds. */
int64_t thread_now_ms(void);

#endif
