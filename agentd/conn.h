/* SPDX-License-Identifier: MIT */
/* conn.h - one client connection, whatever its transport: state, sending, and its id. */
#ifndef AGENTD_CONN_H
#define AGENTD_CONN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentd.h"

typedef enum ConnCloseMode {
	CONN_CLOSE_NOW,	  /* drop queued output and close */
	CONN_CLOSE_FLUSH, /* stop reading, let queued output reach the client, then close */
} ConnCloseMode;

/* How long a flushing close may wait for a client to read what is queued. */
#define CONN_FLUSH_DEADLINE_MS 2000u

typedef struct ConnOps {
	const char *kind; /* "stdio", "unix", "ws" for logs */
	/* Queue @len bytes of one serialized message; the transport adds its framing. */
	int (*write)(Conn *conn, const char *data, size_t len);
	/* Begin closing the transport; it calls conn_free() once its handles are closed. A NOW
	 * close may follow a FLUSH close that has not finished. */
	void (*close)(Conn *conn, ConnCloseMode mode);
} ConnOps;

/* Runs once the message it was attached to left for the client's socket (or the connection died). */
typedef void (*ConnFlushedFn)(void *ctx, bool is_written);

/*
 * The client's answer to a server request: @result (the "result" member) or, when the client
 * answered an error or the request could not be delivered or the connection went first,
 * @result NULL and @error (the "error" member, NULL when there is none to show). Runs exactly
 * once, never from inside conn_request(); the values live only during the call.
 */
typedef void (*ConnResponseFn)(void *ctx, json_t *result, json_t *error);

typedef struct ConnServerRequest {
	struct ConnServerRequest *next;
	int64_t id;
	ConnResponseFn fn;
	void *ctx;
} ConnServerRequest;

typedef struct ConnFlushWaiter {
	struct ConnFlushWaiter *next;
	uint64_t seq;
	ConnFlushedFn fn;
	void *ctx;
} ConnFlushWaiter;

struct Conn {
	Conn *prev, *next;
	Agentd *server;
	uint64_t id; /* never reused; helpers refer to connections by it */
	const ConnOps *ops;
	void *transport;
	bool is_initialized;
	bool is_closing;
	bool is_flushing;	    /* closing with CONN_CLOSE_FLUSH, not yet done */
	uint64_t flush_deadline_ms; /* loop time after which a flushing close becomes NOW */
	json_t *opted_out;	    /* object used as a set of notification methods */
	char client_name[128];
	char client_version[64];
	size_t queued_bytes;			 /* written to the transport, not yet flushed to the socket */
	unsigned pending_calls;			 /* requests answered later (through the broker) */
	uint64_t sent_messages;			 /* handed to the transport */
	uint64_t written_messages;		 /* reported written by the transport, in order */
	ConnFlushWaiter *waiters, *waiters_tail; /* FIFO by seq */
	bool has_watches;   /* watchd holds watches for it: tell it when the connection goes */
	bool has_execs;	    /* it ran command/exec: execd kills its process groups when it goes */
	bool is_input_done; /* the client finished sending; close once pending_calls drain */
	ConnServerRequest *server_requests; /* sent to the client, not yet answered */
	int64_t next_server_request_id;
};

/** conn_new() - register a connection for @transport. Return it, or NULL on allocation failure. */
Conn *conn_new(Agentd *server, const ConnOps *ops, void *transport);
/** conn_free() - unregister and free; only the transport calls this, after its handles closed. */
void conn_free(Conn *conn);
/** conn_find() - the live connection with @id, or NULL (it may have closed meanwhile). */
Conn *conn_find(Agentd *server, uint64_t id);
/** conn_close() - close now: a transport failure, a client that is not reading, shutdown. */
void conn_close(Conn *conn, const char *why);
/** conn_finish() - close once what is queued reached the client (or the flush deadline passed). */
void conn_finish(Conn *conn, const char *why);
/** conn_sweep() - force the flushing closes whose deadline passed; called periodically. */
void conn_sweep(Agentd *server);

/** conn_send() - serialize @msg (reference stolen) and queue it. Return 0 or negative errno. */
int conn_send(Conn *conn, json_t *msg);
/**
 * conn_notify_tracked() - conn_notify(), then @fn once the notification is written to the socket
 * (is_written true), or at once when the client opted out of @method (true), or when the
 * connection closes first or the send fails (false): always exactly once. This is how streams
 * return credit to their producer.
 */
int conn_notify_tracked(Conn *conn, const char *method, json_t *params, ConnFlushedFn fn, void *ctx);
/**
 * conn_notify_text_tracked() - conn_notify_tracked() with @params already serialized as a JSON
 * object (the bulk path: output deltas are built as text, never as jansson trees).
 */
int conn_notify_text_tracked(Conn *conn, const char *method, const char *params, size_t params_len,
			     ConnFlushedFn fn, void *ctx);
/**
 * conn_notify_message_tracked() - as conn_notify_text_tracked() for a whole notification already
 * serialized by the caller ({"method":…,"params":…,"emittedAtMs":…}); takes @message (malloc'd).
 */
int conn_notify_message_tracked(Conn *conn, const char *method, char *message, size_t len, ConnFlushedFn fn,
				void *ctx);
/** conn_now_ms() - wall-clock milliseconds, the emittedAtMs of notifications. */
int64_t conn_now_ms(void);
/** conn_reply() - {"id":…,"result":…}; steals @result. */
int conn_reply(Conn *conn, json_t *id, json_t *result);
/** conn_reply_error() - {"error":{"code":…,"message":…},"id":…}; @id may be NULL for null. */
int conn_reply_error(Conn *conn, json_t *id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/** conn_notify() - {"method":…,"params":…} unless the client opted out of @method; steals @params. */
int conn_notify(Conn *conn, const char *method, json_t *params);

/**
 * conn_request() - send the server request {"id":N,"method":…,"params":…} (@params stolen) and
 * run @fn with the client's answer. Return the request id (>= 0), or a negative errno when it
 * could not be sent (then @fn does not run).
 */
int64_t conn_request(Conn *conn, const char *method, json_t *params, ConnResponseFn fn, void *ctx);
/** conn_request_forget() - stop waiting for request @id: its @fn does not run. True if it was pending. */
bool conn_request_forget(Conn *conn, int64_t id);
/** conn_on_response() - the client answered server request @id (rpc.c). */
void conn_on_response(Conn *conn, json_t *id, json_t *result, json_t *error);

/** conn_on_message() - a complete client message arrived (JSON text). */
void conn_on_message(Conn *conn, const char *text, size_t len);
/**
 * conn_on_oversize() - a client message over the limit was skipped. @head (may be empty) is its
 * start: when it opens with an "id" member, the error answers that id so the client is not left
 * waiting; otherwise the id is null.
 */
void conn_on_oversize(Conn *conn, size_t len, const char *head, size_t head_len);
/** conn_on_input_end() - the client closed its sending side: answer what is pending, then close. */
void conn_on_input_end(Conn *conn);
/** conn_call_started() / conn_call_finished() - bracket a request answered asynchronously. */
void conn_call_started(Conn *conn);
void conn_call_finished(Conn *conn);
/** conn_on_written() - the transport flushed one message of @len bytes (messages complete in order). */
void conn_on_written(Conn *conn, size_t len);

#endif
