/* SPDX-License-Identifier: MIT */
/* exec_call.h - one client's command/exec run inside agentd, shared by the local path (proto_exec.c:
 * sandboxd plan, execd) and the remote one (proto_exec_remote.c: an exec-server over websocket). */
#ifndef AGENTD_EXEC_CALL_H
#define AGENTD_EXEC_CALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agentd.h"
#include "conn.h"
#include "paths.h"

typedef struct ExecRemote ExecRemote;

typedef struct ExecBuffer {
	char *data;
	size_t len, capacity;
} ExecBuffer;

typedef struct ExecControl ExecControl;

/* A write, resize or terminate that came before execd started the process: sent once it has. */
typedef struct ExecDeferred {
	struct ExecDeferred *next;
	ExecControl *ctl;
	const char *method;
	size_t len;
	char body[];
} ExecDeferred;

struct ExecCall {
	ExecCall *prev, *next;
	Agentd *server;
	uint64_t conn_id;
	uint64_t exec_id;
	json_t *rpc_id;
	char *process_id; /* client-supplied, or NULL */
	char *process_id_json; /* the id as the messages quote it */
	bool streams_output;
	bool streams_stdin;
	bool is_tty;
	bool is_started;     /* execd spawned it */
	bool stdin_closed;   /* a closeStdin was sent */
	bool is_awaiting;    /* a broker call (plan or exec.start) carries this call as its context */
	bool is_orphaned;    /* its connection closed while is_awaiting: freed when the answer comes */
	char cwd[AGENTD_PATH_MAX];
	json_t *env;	     /* array of "KEY=VALUE" */
	int64_t timeout_ms;  /* -1: none */
	uint64_t cap_bytes;  /* UINT64_MAX: none */
	uint16_t rows, cols;
	bool has_profile; /* a permissionProfile, not a sandboxPolicy, is what sandboxd may refuse */
	ExecBuffer out[2];
	ExecDeferred *deferred, *deferred_tail;
	ExecRemote *remote;	/* the run on a remote exec-server (proto_exec_remote.c), or NULL */
};

/** exec_call_free() - unlink and free @call (a remote run is terminated and let go). */
void exec_call_free(ExecCall *call);
/** exec_finish_call() - the client's request is over: end its bracket and free @call. */
void exec_finish_call(ExecCall *call);
/** exec_fail() - answer the client with @code and @fmt (one %s: @detail), then free @call. */
void exec_fail(ExecCall *call, int code, const char *fmt, const char *detail);
/** exec_is_still_wanted() - an answer for @call came: false (and @call freed) when its connection went. */
bool exec_is_still_wanted(ExecCall *call);
/** exec_buffer_append() - keep buffered output for the response. Return 0 or -ENOMEM. */
int exec_buffer_append(ExecBuffer *b, const void *data, size_t len);
/** exec_reply_exited() - the response {exitCode, stdout, stderr}, then free @call. */
void exec_reply_exited(ExecCall *call, int64_t exit_code);
/**
 * exec_send_delta() - a command/exec/outputDelta of @len bytes of @stream (0 stdout, 1 stderr);
 * @fn (may be NULL) runs once it is written, as conn_notify_tracked() says.
 */
void exec_send_delta(Conn *conn, ExecCall *call, int stream, const uint8_t *data, size_t len, bool cap_reached,
		     ConnFlushedFn fn, void *ctx);

/** exec_remote_start() - run @call's @command on the remote exec-server (agentd->exec_server). */
void exec_remote_start(ExecCall *call, json_t *command, bool is_unsandboxed);
/** exec_remote_write() - stdin bytes and/or its close; answers the client request @id. */
void exec_remote_write(Conn *conn, json_t *id, ExecCall *call, const uint8_t *data, size_t len, bool close_stdin);
/** exec_remote_terminate() - kill the remote run; answers @id. */
void exec_remote_terminate(Conn *conn, json_t *id, ExecCall *call);
/** exec_remote_file_uri() - the file:// URI of absolute @path, as the exec-server takes paths (malloc'd). */
char *exec_remote_file_uri(const char *path);
/** exec_remote_release() - @call is being freed: stop its timer, terminate a run still going. */
void exec_remote_release(ExecCall *call);

#endif
