/* SPDX-License-Identifier: MIT */
/* broker.h - routes envelopes between agentd and its helpers, one nng pair link per helper. */
#ifndef AGENTD_BROKER_H
#define AGENTD_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "envelope.h"

typedef struct Broker Broker;

/*
 * Called exactly once per broker_call(): with the helper's status and body, or with
 * ENVELOPE_STATUS_UNAVAILABLE when the service is down or goes down, or -ETIMEDOUT.
 * The body lives only during the call.
 */
typedef void (*BrokerReplyFn)(void *ctx, int32_t status, const uint8_t *body, size_t body_len);

typedef struct BrokerEvents {
	/* A helper completed its hello (first start or restart). */
	void (*on_registered)(void *ctx, const char *service, int pid);
	/* A helper's link dropped. */
	void (*on_unregistered)(void *ctx, const char *service);
	/* An event or credit envelope addressed to agentd (for a client connection). */
	void (*on_event)(void *ctx, const Envelope *env);
} BrokerEvents;

/* Default deadline of a call; a helper that hangs costs a client this long at most. */
#define BROKER_CALL_TIMEOUT_MS 30000u

/**
 * broker_new() - listen on ipc://<runtime_dir>/<service>.sock for each service.
 * Return: 0 and *out, or a negative errno.
 */
int broker_new(uv_loop_t *loop, const char *runtime_dir, const char *const *services, size_t service_count,
	       const BrokerEvents *events, void *ctx, Broker **out);

/** broker_free() - at exit: fail every pending call, abandon the links, remove the socket files. NULL-safe.
 */
void broker_free(Broker *broker);

/**
 * broker_call() - send request @method to @service on behalf of client @connection_id.
 * @reply runs exactly once; when the service is not registered it runs before this returns.
 * Return: 0, or a negative errno for a call that could not even be formed (then @reply does not run).
 */
int broker_call(Broker *broker, const char *service, const char *method, uint64_t connection_id,
		const void *body, size_t body_len, uint32_t timeout_ms, BrokerReplyFn reply, void *ctx);

/** broker_send_credit() - grant @body (the stream's credit record) to @service. Return 0 or negative errno.
 */
int broker_send_credit(Broker *broker, const char *service, uint64_t connection_id, const void *body,
		       size_t body_len);

/** broker_send_event() - tell @service something about client @connection_id (never answered). Return 0 or
 * negative errno. */
int broker_send_event(Broker *broker, const char *service, const char *method, uint64_t connection_id,
		      const void *body, size_t body_len);

/** broker_cut_off() - disconnect @service's peer for the envelope being handled (a violation). */
void broker_cut_off(Broker *broker, const char *service);

/** broker_is_registered() - whether @service has said hello on its current link. */
bool broker_is_registered(const Broker *broker, const char *service);

/** broker_service_pid() - pid the kernel reports for @service's peer, or 0. */
int broker_service_pid(const Broker *broker, const char *service);

/** broker_service_count() / broker_service_name() - enumerate the configured services. */
size_t broker_service_count(const Broker *broker);
const char *broker_service_name(const Broker *broker, size_t index);

/** broker_mark_down() - the supervisor saw @service exit: fail its calls now rather than at link drop. */
void broker_mark_down(Broker *broker, const char *service);

#endif
