/* SPDX-License-Identifier: MIT */
/* rpc.h - JSON-RPC message classification and the error codes agentd answers with. */
#ifndef AGENTD_RPC_H
#define AGENTD_RPC_H

#include <jansson.h>

#include "conn.h"

enum {
	RPC_PARSE_ERROR = -32700,
	RPC_INVALID_REQUEST = -32600,
	RPC_METHOD_NOT_FOUND = -32601,
	RPC_INVALID_PARAMS = -32602,
	RPC_INTERNAL_ERROR = -32603,
	RPC_SERVER_OVERLOADED = -32001,
};

/** rpc_handle_text() - parse one client message and dispatch it; every failure is answered. */
void rpc_handle_text(Conn *conn, const char *text, size_t len);

#endif
