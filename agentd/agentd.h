/* SPDX-License-Identifier: MIT */
/* agentd.h - the server: configuration, broker, supervisor, transports and connections. */
#ifndef AGENTD_AGENTD_H
#define AGENTD_AGENTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "broker.h"
#include "config.h"
#include "paths.h"
#include "supervisor.h"
#include "ws_auth.h"

typedef struct Conn Conn;
typedef struct Listener Listener;
typedef struct ExecCall ExecCall;

/* Where commands and file operations run (CODEX_EXEC_SERVER_URL). */
typedef enum AgentdEnvironment {
	AGENTD_ENV_LOCAL,  /* unset or empty: the local execd, through the broker */
	AGENTD_ENV_NONE,   /* "none": no environment; command/exec and the fs methods fail */
	AGENTD_ENV_REMOTE, /* ws://…: a remote exec-server */
} AgentdEnvironment;

/* Default bound on one client message (a JSON line or a websocket message). */
#define AGENTD_DEFAULT_MAX_MESSAGE_BYTES (16u * 1024u * 1024u)
/* Bytes queued towards one client before it counts as not reading and is disconnected. */
#define AGENTD_DEFAULT_MAX_WRITE_QUEUE_BYTES (64u * 1024u * 1024u)
#define AGENTD_MAX_LISTENERS 8

typedef struct Agentd {
	uv_loop_t *loop;
	Config config;
	char runtime_dir[AGENTD_PATH_MAX];
	Broker *broker;
	Supervisor *supervisor;
	Listener *listeners[AGENTD_MAX_LISTENERS];
	size_t listener_count;
	Conn *conns; /* doubly linked list of live connections */
	size_t conn_count;
	uint64_t next_conn_id;
	size_t max_message_bytes;
	size_t max_write_queue_bytes;
	/* The first initializing client names the process (the reference's originator rule). */
	char originator[128];
	bool has_originator;
	bool is_ready;
	bool is_stopping;
	bool is_stdio_only;
	int exit_status; /* non-zero once start-up failed */
	bool is_debug;	 /* -d: wins over [agentd] log_level */
	/* configWarning params sent to every connection right after its initialize response. */
	json_t *config_warnings;
	json_t *sandbox_warnings; /* from sandboxd's host probe: bwrap missing or old, no user namespaces */
	bool has_sandbox_probe;
	unsigned helpers_registered;
	ExecCall *exec_calls; /* command/exec runs of every connection */
	struct Thread *threads; /* loaded agent threads (thread.h) */
	uint64_t next_thread_owner;
	struct ModelClient *model_client; /* the Responses API client every turn streams through */
	struct CatalogFetch *catalog_fetches; /* model/list calls waiting for a provider's /models */
	uint64_t next_exec_id;
	struct ToolExecTable *tool_execs; /* the agent's own commands (tool_exec.c), created on first use */
	/* --ws-auth: what ws:// clients must present at the upgrade (unix:// clients are vouched
	 * for by the socket's permissions). Holds the secret or the token's digest: cleared at exit. */
	WsAuth ws_auth;
	/* --ws-allow-unauthenticated-remote: a non-loopback ws:// listener may start without auth. */
	bool allows_unauthenticated_remote;
	AgentdEnvironment environment;
	char *exec_server_url; /* AGENTD_ENV_REMOTE */
	struct Remote *exec_server; /* its client, connected on first use */
	uv_timer_t ready_timer;
	uv_timer_t conn_sweep_timer; /* forces flushing closes past their deadline */
	uv_signal_t sigterm, sigint, sighup;
} Agentd;

/* Services agentd supervises and routes to, in start order. */
extern const char *const agentd_services[];
extern const size_t agentd_service_count;

/** agentd_shutdown() - begin an orderly stop (helpers, listeners, connections, sockets). */
void agentd_shutdown(Agentd *server);

/** agentd_on_last_stdio_closed() - the stdio client went away; the reference exits then. */
void agentd_on_stdio_closed(Agentd *server);

#endif
