/* SPDX-License-Identifier: MIT */
/* daemon.c - the common helper skeleton: flags, config, privileges, broker link, dispatch, signals. */
#include "daemon.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "paths.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

#define DAEMON_HEALTH_BASE_FIELDS 5

struct Daemon {
	const DaemonSpec *spec;
	uv_loop_t loop;
	Link *link;
	Config config;
	char runtime_dir[AGENTD_PATH_MAX];
	uv_signal_t sigterm, sigint, sighup;
	uint64_t next_id;
	uint64_t hello_id;
	uint64_t started_ms;
	bool is_registered;
	bool is_supervised;
	bool is_debug;
	bool is_stopping; /* torn down: what the loop still delivers is not dispatched */
};

typedef struct DaemonFlags {
	bool is_debug;
	bool is_check_only;
	bool is_supervised;
} DaemonFlags;

uv_loop_t *daemon_loop(Daemon *d)
{
	return &d->loop;
}

static uint64_t daemon_next_id(Daemon *d)
{
	return ++d->next_id;
}

static int daemon_pack_write(void *data, const char *buf, size_t len)
{
	return msgpack_sbuffer_write(data, buf, len);
}

int daemon_reply(Daemon *d, const Envelope *req, int32_t status, const void *body, size_t body_len)
{
	if (!d->link)
		return -ENOTCONN; /* shutting down: work that finishes now has nobody to answer */
	Envelope resp = {
		.version = ENVELOPE_VERSION,
		.kind = ENVELOPE_RESPONSE,
		.id = daemon_next_id(d),
		.correlation_id = req->id,
		.connection_id = req->connection_id,
		.status = status,
		.body = body,
		.body_len = body_len,
	};
	snprintf(resp.source, sizeof(resp.source), "%s", d->spec->name);
	snprintf(resp.destination, sizeof(resp.destination), "%s", req->source);
	int rc = link_send(d->link, &resp);
	if (rc < 0)
		log_warn("cannot answer %s from %s: %s", req->method, req->source, strerror(-rc));
	return rc;
}

static int daemon_health(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, daemon_pack_write);
	msgpack_pack_map(&pk, DAEMON_HEALTH_BASE_FIELDS + d->spec->health_field_count);
	mp_pack_kv_str(&pk, "service", d->spec->name);
	mp_pack_kv_str(&pk, "status", "ok");
	mp_pack_kv_u64(&pk, "pid", (uint64_t)getpid());
	mp_pack_kv_u64(&pk, "uptimeMs", uv_now(&d->loop) - d->started_ms);
	mp_pack_kv_str(&pk, "version", PACKAGE_VERSION);
	int rc = 0;
	if (d->spec->health_fields)
		rc = d->spec->health_fields(d, &pk, d->spec->ctx);
	if (rc == 0)
		rc = daemon_reply(d, req, 0, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	return rc;
}

static const DaemonMethod daemon_builtin_health = { "health", 64, daemon_health };

static const DaemonMethod *daemon_find_method(const Daemon *d, const char *name)
{
	if (strcmp(name, daemon_builtin_health.name) == 0)
		return &daemon_builtin_health;
	for (size_t i = 0; i < d->spec->method_count; i++) {
		if (strcmp(d->spec->methods[i].name, name) == 0)
			return &d->spec->methods[i];
	}
	return NULL;
}

/* An event from agentd: allow-listed like requests, never answered. */
static void daemon_dispatch_event(Daemon *d, const Envelope *env)
{
	const DaemonMethod *m = daemon_find_method(d, env->method);
	MpBody body;
	if (!m || env->body_len > m->max_body_bytes || mp_body_parse(env->body, env->body_len, &body) < 0) {
		log_warn("dropping event %s from %s: not in the allow-list or malformed", env->method,
			 env->source);
		return;
	}
	m->handler(d, env, body.map, d->spec->ctx);
	mp_body_free(&body);
}

static void daemon_dispatch_credit(Daemon *d, const Envelope *env)
{
	MpBody body;
	if (!d->spec->on_credit || mp_body_parse(env->body, env->body_len, &body) < 0) {
		log_warn("dropping credit from %s: unexpected or malformed", env->source);
		return;
	}
	d->spec->on_credit(d, env, body.map, d->spec->ctx);
	mp_body_free(&body);
}

static void daemon_dispatch_request(Daemon *d, const Envelope *req)
{
	const DaemonMethod *m = daemon_find_method(d, req->method);
	if (!m) {
		/* Only agentd talks to us, and it knows our allow-list: say so loudly. */
		log_warn("refusing method %s from %s: not in the allow-list", req->method, req->source);
		daemon_reply(d, req, -ENOSYS, NULL, 0);
		return;
	}
	if (req->body_len > m->max_body_bytes) {
		log_warn("refusing %s from %s: body of %zu bytes exceeds %zu", req->method, req->source,
			 req->body_len, m->max_body_bytes);
		daemon_reply(d, req, -EMSGSIZE, NULL, 0);
		return;
	}
	MpBody body;
	if (mp_body_parse(req->body, req->body_len, &body) < 0) {
		log_warn("refusing %s from %s: body is not a msgpack map", req->method, req->source);
		daemon_reply(d, req, -EBADMSG, NULL, 0);
		return;
	}
	int rc = m->handler(d, req, body.map, d->spec->ctx);
	mp_body_free(&body);
	if (rc < 0)
		daemon_reply(d, req, rc, NULL, 0);
}

static void daemon_on_envelope(Link *link, const Envelope *env, void *ctx)
{
	Daemon *d = ctx;
	/* uv_stop() lets the rest of this poll's events run: none may reach a torn-down handler. */
	if (d->is_stopping)
		return;
	if (strcmp(env->destination, d->spec->name) != 0) {
		log_warn("dropping %s for %s: not addressed to us", envelope_kind_name(env->kind),
			 env->destination);
		return;
	}
	switch (env->kind) {
	case ENVELOPE_REQUEST:
		daemon_dispatch_request(d, env);
		break;
	case ENVELOPE_RESPONSE:
		if (env->correlation_id == d->hello_id) {
			d->is_registered = env->status == 0;
			if (d->is_registered)
				log_info("registered with the broker");
			else
				log_error("broker refused registration: status %d", env->status);
		}
		break;
	case ENVELOPE_EVENT:
		daemon_dispatch_event(d, env);
		break;
	case ENVELOPE_CREDIT:
		daemon_dispatch_credit(d, env);
		break;
	}
}

int daemon_send_event(Daemon *d, uint64_t connection_id, const char *method, const void *body,
		      size_t body_len)
{
	Envelope env = {
		.version = ENVELOPE_VERSION,
		.kind = ENVELOPE_EVENT,
		.id = daemon_next_id(d),
		.destination = "agentd",
		.connection_id = connection_id,
		.body = body,
		.body_len = body_len,
	};
	snprintf(env.source, sizeof(env.source), "%s", d->spec->name);
	snprintf(env.method, sizeof(env.method), "%s", method);
	if (!d->link || !d->is_registered)
		return -ENOTCONN;
	return link_send(d->link, &env);
}

const Config *daemon_config(const Daemon *d)
{
	return &d->config;
}

static void daemon_send_hello(Daemon *d)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, daemon_pack_write);
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "service", d->spec->name);
	mp_pack_kv_u64(&pk, "pid", (uint64_t)getpid());
	mp_pack_kv_str(&pk, "version", PACKAGE_VERSION);
	Envelope hello = {
		.version = ENVELOPE_VERSION,
		.kind = ENVELOPE_REQUEST,
		.id = daemon_next_id(d),
		.method = "hello",
		.destination = "agentd",
		.body = (const uint8_t *)sbuf.data,
		.body_len = sbuf.size,
	};
	snprintf(hello.source, sizeof(hello.source), "%s", d->spec->name);
	d->hello_id = hello.id;
	int rc = link_send(d->link, &hello);
	if (rc < 0)
		log_error("cannot send hello: %s", strerror(-rc));
	msgpack_sbuffer_destroy(&sbuf);
}

static void daemon_on_peer(Link *link, bool is_connected, void *ctx)
{
	Daemon *d = ctx;
	if (is_connected) {
		log_info("connected to the broker at %s", link_url(link));
		daemon_send_hello(d);
		return;
	}
	d->is_registered = false;
	log_warn("lost the broker at %s; reconnecting", link_url(link));
	if (d->spec->on_broker_lost)
		d->spec->on_broker_lost(d, d->spec->ctx);
}

static void daemon_on_stop_signal(uv_signal_t *sig, int signum)
{
	Daemon *d = sig->data;
	if (d->is_stopping)
		return;
	log_info("%s: shutting down", strsignal(signum));
	d->is_stopping = true;
	if (d->spec->teardown)
		d->spec->teardown(d, d->spec->ctx);
	uv_stop(&d->loop);
}

/* The helpers use one key of their own today: [agentd] log_level (-d wins over it). */
static int daemon_adopt_config(const Config *fresh, void *ctx)
{
	const Daemon *d = ctx;
	const char *level_text = NULL;
	LogLevel level;
	if (config_get_string(fresh, "agentd.log_level", NULL, &level_text) < 0 ||
	    (level_text && log_level_parse(level_text, &level) < 0)) {
		log_error("%s: [agentd] log_level must be one of error|warn|info|debug", fresh->path);
		return -EINVAL;
	}
	if (d->spec->adopt_config && d->spec->adopt_config((Daemon *)d, fresh, d->spec->ctx) < 0)
		return -EINVAL;
	if (level_text && !d->is_debug)
		log_set_level(level);
	return 0;
}

static void daemon_on_hup(uv_signal_t *sig, int signum)
{
	Daemon *d = sig->data;
	config_reload(&d->config, daemon_adopt_config, d);
}

int daemon_keep_capabilities(const char *name, const cap_value_t *keep, size_t keep_count)
{
	cap_t caps = cap_get_proc();
	if (!caps)
		return -errno;
	int rc = 0;
	for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; cap++) {
		bool is_kept = false;
		for (size_t i = 0; i < keep_count; i++)
			is_kept = is_kept || keep[i] == cap;
		if (!is_kept && (cap_set_flag(caps, CAP_EFFECTIVE, 1, &cap, CAP_CLEAR) < 0 ||
				 cap_set_flag(caps, CAP_PERMITTED, 1, &cap, CAP_CLEAR) < 0 ||
				 cap_set_flag(caps, CAP_INHERITABLE, 1, &cap, CAP_CLEAR) < 0)) {
			rc = -errno;
			break;
		}
	}
	if (rc == 0 && cap_set_proc(caps) < 0)
		rc = -errno;
	cap_free(caps);
	if (rc < 0)
		log_error("%s: cannot drop capabilities: %s", name, strerror(-rc));
	return rc;
}

static bool daemon_cap_is_in(cap_value_t cap, const cap_value_t *set, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (set[i] == cap)
			return true;
	return false;
}

int daemon_confine(const char *name, const cap_value_t *keep, size_t keep_count)
{
	/*
	 * no_new_privs makes setuid binaries and file capabilities inert for everything we exec;
	 * the bounding and ambient sets go too, so nothing exec'd can win a capability back.
	 * Without CAP_SETPCAP (an unprivileged service user) the bounding set cannot shrink, and
	 * need not: such a user has nothing to regain.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		int rc = -errno;
		log_error("%s: prctl(PR_SET_NO_NEW_PRIVS): %s", name, strerror(errno));
		return rc;
	}
	for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (CAP_IS_SUPPORTED(cap) && !daemon_cap_is_in(cap, keep, keep_count) && cap_get_bound(cap) == 1 &&
		    cap_drop_bound(cap) < 0 && errno != EPERM) {
			int rc = -errno;
			log_error("%s: cannot drop capability %d from the bounding set: %s", name, cap, strerror(errno));
			return rc;
		}
	if (cap_reset_ambient() < 0 && errno != EINVAL) {
		int rc = -errno;
		log_error("%s: cannot clear the ambient capabilities: %s", name, strerror(errno));
		return rc;
	}
	return daemon_keep_capabilities(name, keep, keep_count);
}

int daemon_drop_privileges(const char *name)
{
	/* A helper whose duty needs no privilege keeps the plain rights of the service user. */
	return daemon_confine(name, NULL, 0);
}

static void daemon_usage(const DaemonSpec *spec, FILE *out)
{
	fprintf(out,
		"usage: %s [-d] [-n] [--supervised] [--version]\n"
		"  %s\n"
		"  -d            log at debug level\n"
		"  -n            check the configuration and exit\n"
		"  --supervised  started by agentd: exit when agentd exits\n"
		"  --version     print the version and exit\n",
		spec->name, spec->summary);
}

static int daemon_parse_flags(const DaemonSpec *spec, int argc, char **argv, DaemonFlags *flags)
{
	static const struct option options[] = {
		{ "version", no_argument, NULL, 'V' },
		{ "supervised", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "dnh", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			flags->is_debug = true;
			break;
		case 'n':
			flags->is_check_only = true;
			break;
		case 'S':
			flags->is_supervised = true;
			break;
		case 'V':
			printf("%s %s\n", spec->name, PACKAGE_VERSION);
			exit(0);
		case 'h':
			daemon_usage(spec, stdout);
			exit(0);
		default:
			daemon_usage(spec, stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		daemon_usage(spec, stderr);
		return -EINVAL;
	}
	return 0;
}

static int daemon_start_signals(Daemon *d)
{
	uv_signal_t *sigs[] = { &d->sigterm, &d->sigint, &d->sighup };
	int nums[] = { SIGTERM, SIGINT, SIGHUP };
	for (int i = 0; i < 3; i++) {
		uv_signal_init(&d->loop, sigs[i]);
		sigs[i]->data = d;
		int rc = uv_signal_start(sigs[i], nums[i] == SIGHUP ? daemon_on_hup : daemon_on_stop_signal,
					 nums[i]);
		if (rc < 0)
			return rc;
		uv_unref((uv_handle_t *)sigs[i]);
	}
	/* A peer closing a socket must be an error return, never a process kill. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int daemon_connect(Daemon *d)
{
	char url[AGENTD_PATH_MAX + 16];
	int rc = paths_runtime_dir(d->runtime_dir, sizeof(d->runtime_dir));
	if (rc == 0)
		rc = link_url_for_service(d->runtime_dir, d->spec->name, url, sizeof(url));
	if (rc < 0) {
		log_error("runtime directory: %s", strerror(-rc));
		return rc;
	}
	static const LinkEvents events = { daemon_on_envelope, daemon_on_peer };
	return link_open(&d->loop, LINK_DIAL, url, &events, d, &d->link);
}

static void daemon_close_walk(uv_handle_t *handle, void *arg)
{
	if (!uv_is_closing(handle))
		uv_close(handle, NULL);
}

static void daemon_shutdown(Daemon *d)
{
	/* The process exits next: the kernel closes the socket (see link_abandon()). */
	link_abandon(d->link);
	d->link = NULL;
	uv_walk(&d->loop, daemon_close_walk, NULL);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	uv_loop_close(&d->loop);
	config_free(&d->config);
}

int daemon_main(const DaemonSpec *spec, int argc, char **argv)
{
	Daemon d = { .spec = spec };
	DaemonFlags flags = { 0 };
	char err[512];

	/* One loop thread does the work and nng's workers allocate little: one malloc arena
	 * instead of one per thread keeps an idle helper small. */
	mallopt(M_ARENA_MAX, 1);
	/* Output moves in 64-87 KiB buffers: keep freed memory for the next one instead of
	 * returning it to the kernel and faulting it back in, chunk after chunk. */
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	if (daemon_parse_flags(spec, argc, argv, &flags) < 0)
		return 2;
	log_init(spec->name, log_start_level(flags.is_debug));
	if (config_load(&d.config, err, sizeof(err)) < 0) {
		log_error("%s", err);
		config_free(&d.config);
		return 1;
	}
	d.is_debug = flags.is_debug;
	if (daemon_adopt_config(&d.config, &d) < 0) {
		config_free(&d.config);
		return 1;
	}
	if (flags.is_check_only) {
		printf("%s: configuration %s OK\n", spec->name, d.config.path);
		config_free(&d.config);
		return 0;
	}
	/* Spawned by agentd: die with it rather than linger as an orphan nobody reaps. */
	if (flags.is_supervised && prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		log_warn("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	d.is_supervised = flags.is_supervised;
	if (uv_loop_init(&d.loop) < 0) {
		config_free(&d.config);
		return 1;
	}
	d.started_ms = uv_now(&d.loop);
	int status = 1;
	if (spec->setup && spec->setup(&d, spec->ctx) < 0)
		goto out;
	if (seccomp_filter_apply(spec->name, &spec->seccomp) < 0)
		goto out;
	if (daemon_start_signals(&d) < 0 || daemon_connect(&d) < 0)
		goto out;
	/* Start-up (configuration, the seccomp compiler) freed what it used: give it back now, since
	 * the trim threshold set above keeps freed memory for the streams that come later. */
	malloc_trim(0);
	log_info("started (pid %ld), runtime directory %s", (long)getpid(), d.runtime_dir);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	status = 0;
out:
	daemon_shutdown(&d);
	log_info("stopped");
	return status;
}
