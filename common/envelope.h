/* SPDX-License-Identifier: MIT */
/* envelope.h - the one internal message format: a msgpack array routed by the broker. */
#ifndef AGENTD_ENVELOPE_H
#define AGENTD_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Wire layout (agentd-ipc(7)): a msgpack array of exactly 10 elements
 *   [version, kind, id, correlation_id, source, destination, method, connection_id, status, body]
 * version uint (== ENVELOPE_VERSION), kind uint (EnvelopeKind), id uint64 (> 0, unique per
 * source), correlation_id uint64 (id of the request a response answers, else 0), source and
 * destination str (service names: 1..31 chars of [a-z0-9_]), method str (0..63 chars of
 * [A-Za-z0-9_/.-]; empty only for responses and credit), connection_id uint64 (client
 * connection concerned, 0 for none), status int (responses: 0 ok, else an error code),
 * body bin (<= ENVELOPE_MAX_BODY_BYTES, itself msgpack or empty).
 */
#define ENVELOPE_VERSION 1u
#define ENVELOPE_FIELDS 10u
#define ENVELOPE_MAX_BODY_BYTES (8u * 1024u * 1024u)
#define ENVELOPE_MAX_BYTES (ENVELOPE_MAX_BODY_BYTES + 512u)
#define ENVELOPE_NAME_MAX 31u
#define ENVELOPE_METHOD_MAX 63u

typedef enum EnvelopeKind {
	ENVELOPE_REQUEST = 0,
	ENVELOPE_RESPONSE = 1,
	ENVELOPE_EVENT = 2,
	ENVELOPE_CREDIT = 3,
} EnvelopeKind;

/* Response status codes beyond 0 (negative errno values are also allowed). */
enum {
	ENVELOPE_STATUS_OK = 0,
	ENVELOPE_STATUS_UNAVAILABLE = -113, /* -EHOSTUNREACH: destination service is down */
};

typedef struct Envelope {
	uint32_t version;
	EnvelopeKind kind;
	uint64_t id;
	uint64_t correlation_id;
	char source[ENVELOPE_NAME_MAX + 1];
	char destination[ENVELOPE_NAME_MAX + 1];
	char method[ENVELOPE_METHOD_MAX + 1];
	uint64_t connection_id;
	int32_t status;
	const uint8_t *body; /* borrowed: points into the decoded buffer or the caller's data */
	size_t body_len;
} Envelope;

/* Sink for encoded bytes; msgpack-c's packer write signature. Return 0 or -1. */
typedef int (*EnvelopeWriteFn)(void *ctx, const char *data, size_t len);

/**
 * envelope_validate() - check every field against the limits above.
 * Return: 0, or -EINVAL (bad name/method/kind/id), -EMSGSIZE (body too large),
 * -EPROTONOSUPPORT (other version).
 */
int envelope_validate(const Envelope *env);

/**
 * envelope_encode() - validate @env and write its msgpack form through @write.
 * Return: 0, a negative code from envelope_validate(), or -ENOMEM when @write fails.
 */
int envelope_encode(const Envelope *env, EnvelopeWriteFn write, void *ctx);

/**
 * envelope_decode() - strictly decode one envelope occupying exactly @len bytes of @data.
 * @out->body points into @data. Trailing bytes, wrong element count or types, and any
 * field outside its limits are rejected.
 * Return: 0; -EMSGSIZE (too large), -EBADMSG (not a well-formed envelope),
 * -EPROTONOSUPPORT (version mismatch), -EINVAL (field outside its limits).
 */
int envelope_decode(const uint8_t *data, size_t len, Envelope *out);

/** envelope_kind_name() - "request", "response", "event", "credit" or "?" for logs. */
const char *envelope_kind_name(EnvelopeKind kind);

/** envelope_name_is_valid() - a service name: 1..31 of [a-z0-9_]. */
int envelope_name_is_valid(const char *name);

#endif
