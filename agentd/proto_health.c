/* SPDX-License-Identifier: MIT */
/* proto_health.c - agentd/health: the suite's own status, or one helper's answer through the broker. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mp.h"
#include "mpjson.h"
#include "proto.h"
#include "rpc.h"

/* Everything a deferred answer needs: the connection is found again by id, it may be gone. */
typedef struct HealthCall {
	Agentd *server;
	uint64_t conn_id;
	json_t *id;
	char service[32];
} HealthCall;

static json_t *health_suite_status(Agentd *server)
{
	json_t *services = json_array();
	for (size_t i = 0; i < agentd_service_count; i++) {
		const char *name = agentd_services[i];
		json_t *entry = json_pack(
			"{s:s,s:b,s:i,s:i}", "name", name, "registered",
			broker_is_registered(server->broker, name), "pid",
			broker_service_pid(server->broker, name), "restarts",
			server->supervisor ? (int)supervisor_restarts(server->supervisor, name) : 0);
		json_array_append_new(services, entry);
	}
	return json_pack("{s:s,s:o,s:i}", "status", server->is_stopping ? "stopping" : "ok", "services",
			 services, "connections", (int)server->conn_count);
}

static void health_on_reply(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	HealthCall *call = ctx;
	Conn *conn = conn_find(call->server, call->conn_id);
	MpBody parsed;
	if (!conn)
		goto out;
	if (status == ENVELOPE_STATUS_UNAVAILABLE) {
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "service %s is unavailable",
				 call->service);
	} else if (status != 0) {
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "service %s failed: %s", call->service,
				 strerror(status < 0 ? -status : status));
	} else if (mp_body_parse(body, body_len, &parsed) < 0) {
		conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR, "service %s sent a malformed answer",
				 call->service);
	} else {
		json_t *result = mpjson_from_object(parsed.map);
		mp_body_free(&parsed);
		if (result)
			conn_reply(conn, call->id, result);
		else
			conn_reply_error(conn, call->id, RPC_INTERNAL_ERROR,
					 "service %s sent a malformed answer", call->service);
	}
	conn_call_finished(conn);
out:
	json_decref(call->id);
	free(call);
}

void proto_health(Conn *conn, json_t *id, json_t *params)
{
	Agentd *server = conn->server;
	json_t *service = params ? json_object_get(params, "service") : NULL;
	if (!service || json_is_null(service)) {
		conn_reply(conn, id, health_suite_status(server));
		return;
	}
	const char *name = json_is_string(service) ? json_string_value(service) : "";
	bool is_known = false;
	for (size_t i = 0; i < agentd_service_count; i++)
		is_known = is_known || strcmp(agentd_services[i], name) == 0;
	if (!is_known) {
		conn_reply_error(conn, id, RPC_INVALID_REQUEST, "Invalid request: unknown service `%s`", name);
		return;
	}
	HealthCall *call = calloc(1, sizeof(*call));
	if (!call) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	call->server = server;
	call->conn_id = conn->id;
	call->id = json_incref(id);
	snprintf(call->service, sizeof(call->service), "%s", name);
	conn_call_started(conn);
	int rc = broker_call(server->broker, name, "health", conn->id, NULL, 0, 5000, health_on_reply, call);
	if (rc < 0) {
		conn_reply_error(conn, id, RPC_INTERNAL_ERROR, "cannot reach service %s: %s", name,
				 strerror(-rc));
		conn_call_finished(conn);
		json_decref(call->id);
		free(call);
	}
}
