/* SPDX-License-Identifier: MIT */
/* broker.c - routing by destination, registration by hello, and calls that always get an answer. */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "mp.h"
#include "paths.h"

#define BROKER_SELF "agentd"
#define BROKER_BUCKETS 256u
#define BROKER_SWEEP_MS 500u

/* An outstanding request: agentd's own call (reply set) or one helper's request to another. */
typedef struct BrokerPending {
	struct BrokerPending *next;
	uint64_t id; /* the id the destination will correlate on */
	uint64_t deadline_ms;
	size_t destination; /* index of the service answering */
	BrokerReplyFn reply;
	void *ctx;
	/* Forwarded helper requests: who asked, so a dead destination can be answered for. */
	int source; /* service index, -1 for agentd's own calls */
	uint64_t connection_id;
} BrokerPending;

typedef struct BrokerService {
	Broker *broker;
	char name[ENVELOPE_NAME_MAX + 1];
	char socket_path[AGENTD_PATH_MAX];
	Link *link;
	bool is_registered;
	int pid;
} BrokerService;

struct Broker {
	uv_loop_t *loop;
	BrokerService *services;
	size_t service_count;
	BrokerEvents events;
	void *ctx;
	uint64_t next_id;
	BrokerPending *buckets[BROKER_BUCKETS];
	size_t pending_count;
	uv_timer_t sweep;
};

static BrokerPending **broker_bucket(Broker *b, uint64_t id, int source)
{
	uint64_t key = id * 0x9e3779b97f4a7c15ull + (uint64_t)(source + 1);
	return &b->buckets[(key >> 32) % BROKER_BUCKETS];
}

static void broker_pending_add(Broker *b, BrokerPending *p)
{
	BrokerPending **head = broker_bucket(b, p->id, p->source);
	p->next = *head;
	*head = p;
	b->pending_count++;
}

static BrokerPending *broker_pending_take(Broker *b, uint64_t id, int source, size_t destination)
{
	for (BrokerPending **pp = broker_bucket(b, id, source); *pp; pp = &(*pp)->next) {
		BrokerPending *p = *pp;
		if (p->id == id && p->source == source && p->destination == destination) {
			*pp = p->next;
			b->pending_count--;
			return p;
		}
	}
	return NULL;
}

static int broker_find(const Broker *b, const char *name)
{
	for (size_t i = 0; i < b->service_count; i++) {
		if (strcmp(b->services[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static void broker_fill(Envelope *env, EnvelopeKind kind, uint64_t id, const char *source,
			const char *destination)
{
	memset(env, 0, sizeof(*env));
	env->version = ENVELOPE_VERSION;
	env->kind = kind;
	env->id = id;
	snprintf(env->source, sizeof(env->source), "%s", source);
	snprintf(env->destination, sizeof(env->destination), "%s", destination);
}

/* Answer a helper's request on behalf of a destination that cannot. */
static void broker_answer_for(Broker *b, BrokerService *to, uint64_t request_id, const char *from,
			      uint64_t connection_id, int32_t status)
{
	Envelope resp;
	broker_fill(&resp, ENVELOPE_RESPONSE, ++b->next_id, from, to->name);
	resp.correlation_id = request_id;
	resp.connection_id = connection_id;
	resp.status = status;
	if (to->is_registered && link_send(to->link, &resp) < 0)
		log_warn("cannot answer %s for %s", to->name, from);
}

static void broker_complete(Broker *b, BrokerPending *p, int32_t status, const uint8_t *body, size_t len)
{
	if (p->reply)
		p->reply(p->ctx, status, body, len);
	else if (p->source >= 0)
		broker_answer_for(b, &b->services[p->source], p->id, b->services[p->destination].name,
				  p->connection_id, status);
	free(p);
}

/* Fails every call waiting on @destination (or every call at all when @destination is -1). */
static void broker_fail_pending(Broker *b, int destination, int32_t status)
{
	for (size_t i = 0; i < BROKER_BUCKETS; i++) {
		BrokerPending **pp = &b->buckets[i];
		while (*pp) {
			BrokerPending *p = *pp;
			if (destination >= 0 && p->destination != (size_t)destination) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			b->pending_count--;
			broker_complete(b, p, status, NULL, 0);
		}
	}
}

static void broker_service_lost(Broker *b, BrokerService *s)
{
	bool was_registered = s->is_registered;
	s->is_registered = false;
	s->pid = 0;
	broker_fail_pending(b, (int)(s - b->services), ENVELOPE_STATUS_UNAVAILABLE);
	if (was_registered && b->events.on_unregistered)
		b->events.on_unregistered(b->ctx, s->name);
}

static void broker_on_hello(Broker *b, BrokerService *s, const Envelope *env)
{
	MpBody body;
	const char *name = NULL;
	size_t name_len = 0;
	int32_t status = 0;
	if (mp_body_parse(env->body, env->body_len, &body) < 0) {
		status = -EBADMSG;
	} else {
		if (mp_get_str(body.map, "service", ENVELOPE_NAME_MAX, &name, &name_len) < 0 ||
		    name_len != strlen(s->name) || memcmp(name, s->name, name_len) != 0)
			status = -EPERM;
		mp_body_free(&body);
	}
	Envelope resp;
	broker_fill(&resp, ENVELOPE_RESPONSE, ++b->next_id, BROKER_SELF, s->name);
	resp.correlation_id = env->id;
	resp.status = status;
	link_send(s->link, &resp);
	if (status < 0) {
		log_error("%s: refusing hello that names another service: cutting the peer off", s->name);
		link_cut_off(s->link);
		return;
	}
	s->is_registered = true;
	s->pid = link_peer_pid(s->link);
	log_info("%s registered (pid %d)", s->name, s->pid);
	if (b->events.on_registered)
		b->events.on_registered(b->ctx, s->name, s->pid);
}

static void broker_on_response(Broker *b, BrokerService *s, const Envelope *env, int destination_source)
{
	BrokerPending *p =
		broker_pending_take(b, env->correlation_id, destination_source, (size_t)(s - b->services));
	if (!p) {
		log_debug("%s: response to unknown or expired request %llu", s->name,
			  (unsigned long long)env->correlation_id);
		return;
	}
	if (p->reply) {
		broker_complete(b, p, env->status, env->body, env->body_len);
		return;
	}
	BrokerService *to = &b->services[p->source];
	free(p);
	if (!to->is_registered || link_send(to->link, env) < 0)
		log_warn("%s: cannot deliver response to %s", s->name, to->name);
}

static void broker_handle_local(Broker *b, BrokerService *s, const Envelope *env)
{
	switch (env->kind) {
	case ENVELOPE_REQUEST:
		if (strcmp(env->method, "hello") == 0) {
			broker_on_hello(b, s, env);
			return;
		}
		log_error("%s: request %s to agentd is not in the allow-list: cutting the peer off", s->name,
			  env->method);
		link_cut_off(s->link);
		return;
	case ENVELOPE_RESPONSE:
		broker_on_response(b, s, env, -1);
		return;
	case ENVELOPE_EVENT:
	case ENVELOPE_CREDIT:
		if (b->events.on_event)
			b->events.on_event(b->ctx, env);
		return;
	}
}

static void broker_forward(Broker *b, BrokerService *from, const Envelope *env)
{
	int to_index = broker_find(b, env->destination);
	if (to_index < 0) {
		log_error("%s: %s for unknown service %s: cutting the peer off", from->name,
			  envelope_kind_name(env->kind), env->destination);
		link_cut_off(from->link);
		return;
	}
	BrokerService *to = &b->services[to_index];
	if (env->kind == ENVELOPE_RESPONSE) {
		broker_on_response(b, from, env, to_index);
		return;
	}
	if (!to->is_registered) {
		if (env->kind == ENVELOPE_REQUEST)
			broker_answer_for(b, from, env->id, to->name, env->connection_id,
					  ENVELOPE_STATUS_UNAVAILABLE);
		return;
	}
	if (env->kind == ENVELOPE_REQUEST) {
		BrokerPending *p = calloc(1, sizeof(*p));
		if (!p) {
			broker_answer_for(b, from, env->id, to->name, env->connection_id, -ENOMEM);
			return;
		}
		p->id = env->id;
		p->source = (int)(from - b->services);
		p->destination = (size_t)to_index;
		p->connection_id = env->connection_id;
		p->deadline_ms = uv_now(b->loop) + BROKER_CALL_TIMEOUT_MS;
		broker_pending_add(b, p);
	}
	if (link_send(to->link, env) < 0 && env->kind == ENVELOPE_REQUEST) {
		BrokerPending *p =
			broker_pending_take(b, env->id, (int)(from - b->services), (size_t)to_index);
		if (p)
			broker_complete(b, p, -EAGAIN, NULL, 0);
	}
}

static void broker_on_envelope(Link *link, const Envelope *env, void *ctx)
{
	BrokerService *s = ctx;
	Broker *b = s->broker;
	/* A helper speaks only for itself; anything else is a broken or hostile sibling. */
	if (strcmp(env->source, s->name) != 0) {
		log_error("%s: envelope claiming to come from %s: cutting the peer off", s->name, env->source);
		link_cut_off(link);
		return;
	}
	if (!s->is_registered && !(env->kind == ENVELOPE_REQUEST && strcmp(env->method, "hello") == 0)) {
		log_error("%s: %s before hello: cutting the peer off", s->name, envelope_kind_name(env->kind));
		link_cut_off(link);
		return;
	}
	if (strcmp(env->destination, BROKER_SELF) == 0)
		broker_handle_local(b, s, env);
	else
		broker_forward(b, s, env);
}

static void broker_on_peer(Link *link, bool is_connected, void *ctx)
{
	BrokerService *s = ctx;
	if (is_connected) {
		log_debug("%s: peer connected (pid %d)", s->name, link_peer_pid(link));
		return;
	}
	log_warn("%s: link dropped", s->name);
	broker_service_lost(s->broker, s);
}

static void broker_on_sweep(uv_timer_t *timer)
{
	Broker *b = timer->data;
	uint64_t now = uv_now(b->loop);
	for (size_t i = 0; i < BROKER_BUCKETS; i++) {
		BrokerPending **pp = &b->buckets[i];
		while (*pp) {
			BrokerPending *p = *pp;
			if (p->deadline_ms > now) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			b->pending_count--;
			log_warn("%s: request %llu timed out", b->services[p->destination].name,
				 (unsigned long long)p->id);
			broker_complete(b, p, -ETIMEDOUT, NULL, 0);
		}
	}
}

int broker_call(Broker *b, const char *service, const char *method, uint64_t connection_id, const void *body,
		size_t body_len, uint32_t timeout_ms, BrokerReplyFn reply, void *ctx)
{
	int index = broker_find(b, service);
	if (index < 0 || !reply)
		return -EINVAL;
	BrokerService *s = &b->services[index];
	if (!s->is_registered) {
		reply(ctx, ENVELOPE_STATUS_UNAVAILABLE, NULL, 0);
		return 0;
	}
	Envelope req;
	broker_fill(&req, ENVELOPE_REQUEST, ++b->next_id, BROKER_SELF, s->name);
	snprintf(req.method, sizeof(req.method), "%s", method);
	req.connection_id = connection_id;
	req.body = body;
	req.body_len = body_len;
	BrokerPending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	int rc = link_send(s->link, &req);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->id = req.id;
	p->source = -1;
	p->destination = (size_t)index;
	p->reply = reply;
	p->ctx = ctx;
	p->deadline_ms = uv_now(b->loop) + (timeout_ms ? timeout_ms : BROKER_CALL_TIMEOUT_MS);
	broker_pending_add(b, p);
	return 0;
}

static int broker_send_unanswered(Broker *b, EnvelopeKind kind, const char *service, const char *method,
				  uint64_t connection_id, const void *body, size_t body_len)
{
	int index = broker_find(b, service);
	if (index < 0)
		return -EINVAL;
	if (!b->services[index].is_registered)
		return ENVELOPE_STATUS_UNAVAILABLE;
	Envelope env;
	broker_fill(&env, kind, ++b->next_id, BROKER_SELF, service);
	snprintf(env.method, sizeof(env.method), "%s", method);
	env.connection_id = connection_id;
	env.body = body;
	env.body_len = body_len;
	return link_send(b->services[index].link, &env);
}

int broker_send_credit(Broker *b, const char *service, uint64_t connection_id, const void *body,
		       size_t body_len)
{
	return broker_send_unanswered(b, ENVELOPE_CREDIT, service, "", connection_id, body, body_len);
}

int broker_send_event(Broker *b, const char *service, const char *method, uint64_t connection_id,
		      const void *body, size_t body_len)
{
	return broker_send_unanswered(b, ENVELOPE_EVENT, service, method, connection_id, body, body_len);
}

bool broker_is_registered(const Broker *b, const char *service)
{
	int index = broker_find(b, service);
	return index >= 0 && b->services[index].is_registered;
}

int broker_service_pid(const Broker *b, const char *service)
{
	int index = broker_find(b, service);
	return index >= 0 ? b->services[index].pid : 0;
}

size_t broker_service_count(const Broker *b)
{
	return b->service_count;
}

const char *broker_service_name(const Broker *b, size_t index)
{
	return index < b->service_count ? b->services[index].name : NULL;
}

void broker_mark_down(Broker *b, const char *service)
{
	int index = broker_find(b, service);
	if (index >= 0)
		broker_service_lost(b, &b->services[index]);
}

static int broker_open_service(Broker *b, BrokerService *s, const char *runtime_dir, const char *name)
{
	static const LinkEvents events = { broker_on_envelope, broker_on_peer };
	char url[AGENTD_PATH_MAX + 16];
	s->broker = b;
	snprintf(s->name, sizeof(s->name), "%s", name);
	int rc = link_url_for_service(runtime_dir, name, url, sizeof(url));
	if (rc == 0)
		rc = snprintf(s->socket_path, sizeof(s->socket_path), "%s/%s.sock", runtime_dir, name) <
				     (int)sizeof(s->socket_path)
			     ? 0
			     : -ENAMETOOLONG;
	if (rc == 0)
		rc = link_open(b->loop, LINK_LISTEN, url, &events, s, &s->link);
	return rc;
}

int broker_new(uv_loop_t *loop, const char *runtime_dir, const char *const *services, size_t service_count,
	       const BrokerEvents *events, void *ctx, Broker **out)
{
	Broker *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = loop;
	b->events = *events;
	b->ctx = ctx;
	b->services = calloc(service_count, sizeof(*b->services));
	if (!b->services) {
		free(b);
		return -ENOMEM;
	}
	uv_timer_init(loop, &b->sweep);
	b->sweep.data = b;
	uv_timer_start(&b->sweep, broker_on_sweep, BROKER_SWEEP_MS, BROKER_SWEEP_MS);
	uv_unref((uv_handle_t *)&b->sweep);
	for (size_t i = 0; i < service_count; i++) {
		if (!envelope_name_is_valid(services[i])) {
			broker_free(b);
			return -EINVAL;
		}
		b->service_count = i + 1;
		int rc = broker_open_service(b, &b->services[i], runtime_dir, services[i]);
		if (rc < 0) {
			broker_free(b);
			return rc;
		}
	}
	*out = b;
	return 0;
}

static void broker_on_timer_closed(uv_handle_t *handle)
{
	free(handle->data);
}

void broker_free(Broker *b)
{
	if (!b)
		return;
	broker_fail_pending(b, -1, ENVELOPE_STATUS_UNAVAILABLE);
	/* Only called on the way out: the kernel closes the sockets (see link_abandon()). */
	for (size_t i = 0; i < b->service_count; i++) {
		link_abandon(b->services[i].link);
		if (b->services[i].socket_path[0])
			unlink(b->services[i].socket_path);
	}
	free(b->services);
	b->services = NULL;
	b->service_count = 0;
	uv_timer_stop(&b->sweep);
	uv_close((uv_handle_t *)&b->sweep, broker_on_timer_closed);
}

void broker_cut_off(Broker *b, const char *service)
{
	int index = broker_find(b, service);
	if (index >= 0)
		link_cut_off(b->services[index].link);
}
