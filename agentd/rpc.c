/* SPDX-License-Identifier: MIT */
/* rpc.c - JSON-RPC classification: request, notification or response, and the errors for the rest. */
#include "rpc.h"

#include <string.h>

#include "log.h"
#include "proto.h"

/* Ids are strings or 64-bit integers (the schema's RequestId); anything else is not an id. */
static bool rpc_id_is_valid(const json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

static bool rpc_params_are_acceptable(const ProtoMethod *m, const json_t *params)
{
	if (m->params == PROTO_PARAMS_REQUIRED)
		return json_is_object(params);
	return !params || json_is_null(params) || json_is_object(params);
}

static void rpc_dispatch_request(Conn *conn, json_t *id, const char *method, json_t *params)
{
	const ProtoMethod *m = proto_find_method(method);
	if (!m) {
		conn_reply_error(conn, id, RPC_METHOD_NOT_FOUND, "Method not found: `%s`", method);
		return;
	}
	if (!conn->is_initialized && !m->is_allowed_before_initialize) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Not initialized");
		return;
	}
	if (!rpc_params_are_acceptable(m, params)) {
		if (!params)
			conn_reply_error(conn, id, RPC_INVALID_REQUEST,
					 "Invalid request: missing field `params`");
		else
			conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: expected an object");
		return;
	}
	m->handler(conn, id, json_is_object(params) ? params : NULL);
}

static void rpc_dispatch(Conn *conn, json_t *msg)
{
	if (!json_is_object(msg)) {
		conn_reply_error(conn, NULL, RPC_INVALID_REQUEST, "Invalid request: expected a JSON object");
		return;
	}
	json_t *id = json_object_get(msg, "id");
	json_t *method = json_object_get(msg, "method");
	json_t *params = json_object_get(msg, "params");
	json_t *jsonrpc = json_object_get(msg, "jsonrpc");
	/* The reference omits "jsonrpc"; a client that sends it must send the right one. */
	if (jsonrpc && !(json_is_string(jsonrpc) && strcmp(json_string_value(jsonrpc), "2.0") == 0)) {
		conn_reply_error(conn, rpc_id_is_valid(id) ? id : NULL, RPC_INVALID_REQUEST,
				 "Invalid request: unsupported jsonrpc version");
		return;
	}
	if (id && !rpc_id_is_valid(id)) {
		conn_reply_error(conn, NULL, RPC_INVALID_REQUEST,
				 "Invalid request: id must be a string or an integer");
		return;
	}
	if (method && !json_is_string(method)) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: method must be a string");
		return;
	}
	if (method && id) {
		rpc_dispatch_request(conn, id, json_string_value(method), params);
		return;
	}
	if (method) {
		proto_on_notification(conn, json_string_value(method), params);
		return;
	}
	if (id && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
		conn_on_response(conn, id, json_object_get(msg, "result"), json_object_get(msg, "error"));
		return;
	}
	conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: missing field `method`");
}

void rpc_handle_text(Conn *conn, const char *text, size_t len)
{
	json_error_t error;
	/* Duplicate keys would make "which id did we answer" ambiguous. */
	json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
	if (!msg) {
		log_debug("connection %llu: parse error: %s", (unsigned long long)conn->id, error.text);
		conn_reply_error(conn, NULL, RPC_PARSE_ERROR, "Parse error: %s at line %d column %d",
				 error.text, error.line, error.column);
		return;
	}
	rpc_dispatch(conn, msg);
	json_decref(msg);
}
