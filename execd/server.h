/* SPDX-License-Identifier: MIT */
/* server.h - execd's standalone exec-server: connections, sessions, the JSON-RPC core and its methods. */
#ifndef EXECD_SERVER_H
#define EXECD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "proc.h"
#include "ws_auth.h"

/*
 * `execd --listen ws://IP:PORT | stdio://` serves the reference's exec-server protocol
 * (codex-behaviour.md §4) to one remote client at a time per session: JSON-RPC without a
 * "jsonrpc" member, one message per websocket frame or stdio line. The pieces:
 *
 *   server.c         main, the client core (message queue, allow-list dispatch, replies), sessions
 *   server_ws.c      the websocket listener: our own HTTP upgrade (Origin, /readyz, auth), frames
 *   server_stdio.c   newline-delimited JSON on stdin/stdout
 *   server_params.c  parameter decoding with the reference's (serde's) error words, file URIs
 *   server_proc.c    the process methods: the per-process event log, long-poll reads, back-pressure
 *   server_fs.c      the fs methods on fsops.h, run on libuv's worker threads
 *
 * A connection's requests run one at a time, in arrival order, as the reference runs them (its
 * --concurrent-requests defaults to 1): a long-polling process/read holds the requests behind it.
 */

/* The protocol version we speak (the reference release the wire was recorded from). */
#define ES_PROTOCOL_VERSION "0.169.0"

/* JSON-RPC error codes the reference answers with. */
#define ES_INVALID_REQUEST (-32600)
#define ES_METHOD_NOT_FOUND (-32601)
#define ES_INVALID_PARAMS (-32602)
#define ES_INTERNAL_ERROR (-32603)
#define ES_NOT_FOUND (-32004)
#define ES_SESSION_ATTACHED (-32010)

/*
 * A detached session (its connection gone) keeps its processes this long for a resume, as the
 * reference does. $EXECD_DETACHED_SESSION_TTL_MS overrides it (100 ms to 1 h; for tests).
 */
#define ES_DETACHED_SESSION_TTL_MS 30000u
#define ES_DETACHED_SESSION_TTL_MIN_MS 100u
#define ES_DETACHED_SESSION_TTL_MAX_MS 3600000u
/* Messages waiting behind a connection's running request; past either bound it is not read. */
#define ES_INPUT_MAX_MESSAGES 256u
#define ES_INPUT_MAX_BYTES (64u * 1024u * 1024u)
/* Largest message a client may send (a websocket message or a stdio line). */
#define ES_MESSAGE_MAX_BYTES (64u * 1024u * 1024u)
/*
 * Output queued for a client that is not reading: above the high mark no process of its session
 * reads more output (the children block on their pipes); below the low mark they go on.
 */
#define ES_OUTPUT_HIGH_BYTES (4u * 1024u * 1024u)
#define ES_OUTPUT_LOW_BYTES (1u * 1024u * 1024u)

typedef struct EsServer EsServer;
typedef struct EsClient EsClient;
typedef struct EsSession EsSession;
typedef struct EsRequest EsRequest;
typedef struct EsProcess EsProcess;
typedef struct EsInput EsInput;

/* What a transport does for the core. */
typedef struct EsClientOps {
	/* Queue one message (not NUL-terminated) for the client. Return 0 or a negative errno. */
	int (*write)(EsClient *c, const char *data, size_t len);
	/* Cut the connection now; the transport calls es_client_gone() once it is closed. */
	void (*close)(EsClient *c);
	/* Stop or resume reading from the client. */
	void (*set_reading)(EsClient *c, bool is_reading);
} EsClientOps;

struct EsClient {
	EsClient *prev, *next;
	EsServer *server;
	const EsClientOps *ops;
	void *transport;
	/* "failed to parse websocket JSON-RPC message from exec-server websocket 127.0.0.1:5000" */
	char parse_error_prefix[160];
	bool has_initialize;  /* initialize answered */
	bool has_initialized; /* the initialized notification arrived */
	bool is_closing;
	bool is_reading_paused;
	bool is_pumping;
	bool is_over_high_water;
	EsSession *session;
	size_t queued_bytes; /* written, not yet taken by the socket */
	EsInput *input_head, *input_tail;
	size_t input_count, input_bytes;
	EsRequest *current; /* the request being served */
};

struct EsSession {
	EsSession *prev, *next;
	EsServer *server;
	char id[37];
	EsClient *client; /* NULL while detached */
	uv_timer_t *expiry;
	EsProcess *processes;
};

typedef enum EsFamily {
	ES_FAMILY_LIFECYCLE,
	ES_FAMILY_EXEC,
	ES_FAMILY_FS,
	ES_FAMILY_ENVIRONMENT,
} EsFamily;

typedef struct EsMethod {
	const char *name;
	EsFamily family;
	/* Decode the params (answering their errors), then es_request_is_allowed(), then serve. */
	void (*handler)(EsRequest *req, json_t *params);
} EsMethod;

struct EsRequest {
	EsClient *client;
	json_t *id;
	const EsMethod *method;
	/* The connection went away before the answer: drop whatever refers to @req (may be NULL). */
	void (*cancel)(EsRequest *req);
	void *pending;
};

struct EsServer {
	uv_loop_t *loop;
	ProcTable *procs;
	WsAuth auth;
	bool is_stdio;
	bool is_stopping;
	uint64_t detached_ttl_ms;
	EsClient *clients;
	EsSession *sessions;
	json_t *environment_info;
	/* Deferred process work (grants, exit notifications), run after each poll phase. */
	uv_check_t work_check;
	uv_idle_t work_idle;
	bool is_work_scheduled;
	uint64_t work_pass;
	EsProcess *work_head;
	uv_signal_t sigterm, sigint;
	void *listener; /* the websocket listener, or NULL */
};

/* --- the client core (server.c) ------------------------------------------------------------ */

/** es_client_new() - a connection the transport accepted; @peer names it in parse errors. */
EsClient *es_client_new(EsServer *s, const EsClientOps *ops, void *transport, const char *parse_error_prefix);
/** es_client_on_message() - one complete message arrived (copied; queued behind the running request). */
void es_client_on_message(EsClient *c, const char *data, size_t len);
/** es_client_on_oversize() - a message over ES_MESSAGE_MAX_BYTES arrived and was dropped. */
void es_client_on_oversize(EsClient *c, size_t len);
/** es_client_on_written() - the transport handed @len queued bytes to the socket. */
void es_client_on_written(EsClient *c, size_t len);
/** es_client_gone() - the transport closed: the session detaches, the client is freed. */
void es_client_gone(EsClient *c);
/** es_client_send() - queue @msg (consumed) for @c. Return 0 or a negative errno. */
int es_client_send(EsClient *c, json_t *msg);
/** es_client_can_take_output() - whether @c's queue is below the high mark. */
bool es_client_can_take_output(const EsClient *c);

/** es_request_is_allowed() - the initialize rules for @req's family; answers the error when not. */
bool es_request_is_allowed(EsRequest *req);
/** es_reply_result() - answer @req with @result (consumed) and go on with the next message. */
void es_reply_result(EsRequest *req, json_t *result);
/** es_reply_error() - answer @req with a JSON-RPC error and go on with the next message. */
void es_reply_error(EsRequest *req, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** es_session_notify() - send @msg (consumed) to the session's client if one is attached. */
bool es_session_notify(EsSession *s, json_t *msg);

/** es_json_string_lossy() - a JSON string of raw bytes, invalid UTF-8 replaced by U+FFFD. */
json_t *es_json_string_lossy(const char *bytes, size_t len);

/* --- parameters (server_params.c) ------------------------------------------------------------------ */

typedef enum EsType {
	ES_T_ANY,
	ES_T_STRING,
	ES_T_BOOL,
	ES_T_U64,
	ES_T_USIZE,
	ES_T_STRINGS,	 /* [string] */
	ES_T_STRING_MAP, /* {string: string} */
	ES_T_PATH,	 /* a file:// URI, checked as the reference's PathUri deserializer does */
	ES_T_STRUCT,	 /* a nested struct, described by .nested */
	ES_T_ENUM,	 /* a unit variant of .variants (a string, or {"variant": null}) */
	ES_T_TAGGED,	 /* an object whose "type" is one of .variants (an internally tagged enum) */
} EsType;

typedef struct EsStruct EsStruct;

typedef struct EsField {
	const char *name;
	EsType type;
	bool is_required; /* missing: "missing field `name`" */
	bool is_nullable; /* null is None */
	const EsStruct *nested;
	const char *const *variants; /* NULL-terminated */
	const char *enum_name;	     /* ES_T_TAGGED: "ExecPermissionProfile" */
} EsField;

struct EsStruct {
	const char *name; /* as serde names it: "struct WireExecParams" */
	const EsField *fields;
	size_t count;
};

/**
 * es_params_decode() - check @params against @spec as serde would: the first bad field in the
 * order the client sent them, else the first missing required field in @spec's order.
 * @out: receives, per field of @spec, the value (borrowed) or NULL when absent or null.
 * Return: 0, or -EINVAL with the message for a -32602 answer in @err.
 */
int es_params_decode(const EsStruct *spec, json_t *params, json_t **out, char *err, size_t err_len);
/** es_params_unit() - params of a method that takes none: absent, null or {}. Return 0 or -EINVAL. */
int es_params_unit(json_t *params, char *err, size_t err_len);

/* The `sandbox` parameter of process/start and the fs methods (a FileSystemSandboxContext). */
extern const EsStruct es_sandbox_context_spec;
/**
 * es_sandbox_is_unconfined() - whether a decoded `sandbox` (or NULL) asks for nothing this
 * exec-server would have to enforce: none, a disabled profile, an external one with network
 * enabled, or a managed one with unrestricted files and network. It enforces no sandbox of its
 * own, so the methods refuse anything else rather than run it unconfined.
 */
bool es_sandbox_is_unconfined(json_t *sandbox);

/* How a file URI failed to become a local path. */
typedef enum EsPathError {
	ES_PATH_OK = 0,
	ES_PATH_INVALID, /* -32602 at decoding: "invalid URI: ...", "unsupported path URI scheme `x`", ... */
	ES_PATH_FOREIGN, /* a host other than localhost: "'file://h/x' is invalid on 'linux'" */
} EsPathError;

/**
 * es_path_from_uri() - the absolute, lexically normalised local path of file URI @uri.
 * Return: ES_PATH_OK with @path filled, or the kind of failure with its message in @err.
 */
EsPathError es_path_from_uri(const char *uri, char *path, size_t path_size, char *err, size_t err_len);
/** es_path_to_uri() - "file://" and @path, percent-encoded as the reference's URL writer does. */
char *es_path_to_uri(const char *path);

/* --- methods ----------------------------------------------------------------------------------- */

/** es_proc_init() / es_proc_shutdown() - process work scheduling (server_proc.c). */
void es_proc_init(EsServer *s);
void es_proc_shutdown(EsServer *s);
/** es_proc_session_changed() - attached, detached or drained: held output may move again. */
void es_proc_session_changed(EsSession *s);
/** es_proc_session_free() - the session ends: kill and forget its processes. */
void es_proc_session_free(EsSession *s);

void es_method_process_start(EsRequest *req, json_t *params);
void es_method_process_read(EsRequest *req, json_t *params);
void es_method_process_write(EsRequest *req, json_t *params);
void es_method_process_signal(EsRequest *req, json_t *params);
void es_method_process_terminate(EsRequest *req, json_t *params);

void es_method_fs_read_file(EsRequest *req, json_t *params);
void es_method_fs_write_file(EsRequest *req, json_t *params);
void es_method_fs_create_directory(EsRequest *req, json_t *params);
void es_method_fs_get_metadata(EsRequest *req, json_t *params);
void es_method_fs_read_directory(EsRequest *req, json_t *params);
void es_method_fs_remove(EsRequest *req, json_t *params);
void es_method_fs_copy(EsRequest *req, json_t *params);
void es_method_fs_canonicalize(EsRequest *req, json_t *params);
void es_method_fs_join(EsRequest *req, json_t *params);
void es_method_fs_parent(EsRequest *req, json_t *params);

/* --- transports --------------------------------------------------------------------------------- */

/* A parsed --listen value. */
typedef struct EsListen {
	bool is_stdio;
	char host[64]; /* numeric IPv4 or IPv6, without brackets */
	int port;
	char addr[80]; /* as written after ws:// */
} EsListen;

/** es_ws_start() - listen on @listen; prints the bound URL on stdout. Return 0 or a negative errno. */
int es_ws_start(EsServer *s, const EsListen *listen);
/** es_ws_stop() - stop accepting and close every websocket connection. */
void es_ws_stop(EsServer *s);
/** es_stdio_start() - serve one client on stdin/stdout; the server stops at end of input. */
int es_stdio_start(EsServer *s);
/** es_server_stop() - orderly shutdown: stop listening, end every session, leave the loop. */
void es_server_stop(EsServer *s);

#endif
