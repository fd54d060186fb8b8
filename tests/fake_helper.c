/* SPDX-License-Identifier: MIT */
/* fake_helper.c - a misbehaving sibling for the broker's cut-off tests: says hello, then breaks a rule. */
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"

static atomic_bool pipe_removed;

static void on_pipe_removed(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	atomic_store(&pipe_removed, true);
}

static int append(void *ctx, const char *data, size_t len)
{
	return nng_msg_append(ctx, data, len) == 0 ? 0 : -1;
}

static int send_envelope(nng_socket sock, EnvelopeKind kind, uint64_t id, const char *source, const char *destination,
			 const char *method, const void *body, size_t body_len)
{
	Envelope env = { .version = ENVELOPE_VERSION, .kind = kind, .id = id, .body = body, .body_len = body_len };
	snprintf(env.source, sizeof(env.source), "%s", source);
	snprintf(env.destination, sizeof(env.destination), "%s", destination);
	snprintf(env.method, sizeof(env.method), "%s", method);
	nng_msg *msg;
	if (nng_msg_alloc(&msg, 0) != 0 || envelope_encode(&env, append, msg) != 0)
		return -1;
	return nng_sendmsg(sock, msg, 0) == 0 ? 0 : -1;
}

/* hello with a one-entry map body {"service": name}, hand-packed msgpack. */
static int say_hello(nng_socket sock, const char *service)
{
	unsigned char body[64];
	size_t len = strlen(service), n = 0;
	body[n++] = 0x81;
	body[n++] = 0xa7;
	memcpy(body + n, "service", 7);
	n += 7;
	body[n++] = (unsigned char)(0xa0 | len);
	memcpy(body + n, service, len);
	n += len;
	if (send_envelope(sock, ENVELOPE_REQUEST, 1, service, "agentd", "hello", body, n) < 0)
		return -1;
	nng_msg *msg;
	if (nng_recvmsg(sock, &msg, 0) != 0)
		return -1;
	Envelope env;
	int ok = envelope_decode(nng_msg_body(msg), nng_msg_len(msg), &env) == 0 && env.kind == ENVELOPE_RESPONSE &&
		 env.correlation_id == 1 && env.status == 0;
	nng_msg_free(msg);
	return ok ? 0 : -1;
}

static int misbehave(nng_socket sock, const char *service, const char *mode)
{
	if (strcmp(mode, "quiet") == 0)
		return 0;
	if (strcmp(mode, "spoof") == 0)
		return send_envelope(sock, ENVELOPE_EVENT, 2, "authd", "agentd", "fs.changed", "\x80", 1);
	if (strcmp(mode, "unknown-request") == 0)
		return send_envelope(sock, ENVELOPE_REQUEST, 2, service, "agentd", "steal", "\x80", 1);
	if (strcmp(mode, "unknown-service") == 0)
		return send_envelope(sock, ENVELOPE_REQUEST, 2, service, "nosuch", "health", "\x80", 1);
	if (strcmp(mode, "bad-event") == 0)
		return send_envelope(sock, ENVELOPE_EVENT, 2, service, "agentd", "fs.changed", "\x80", 1);
	return -1;
}

/* Exit 0: the broker cut us off within 2 s; 2: still connected; 1: could not even say hello. */
int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fake_helper URL SERVICE quiet|spoof|unknown-request|unknown-service|bad-event\n");
		return 1;
	}
	nng_socket sock;
	if (nng_pair0_open(&sock) != 0 || nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, on_pipe_removed, NULL) != 0 ||
	    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 2000) != 0 || nng_dial(sock, argv[1], NULL, 0) != 0 ||
	    say_hello(sock, argv[2]) < 0 || misbehave(sock, argv[2], argv[3]) < 0) {
		fprintf(stderr, "fake_helper: could not connect, say hello or send\n");
		return 1;
	}
	for (int i = 0; i < 200 && !atomic_load(&pipe_removed); i++)
		usleep(10000);
	return atomic_load(&pipe_removed) ? 0 : 2;
}
