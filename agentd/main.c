/* SPDX-License-Identifier: MIT */
/* agentd - the Codex app-server front door, broker and supervisor of the helper daemons. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agentd.h"
#include "conn.h"
#include "exec_cli.h"
#include "daemon.h"
#include "seccomp_filter.h"
#include "log.h"
#include "mp.h"
#include "proto.h"
#include "remote.h"
#include "model_client.h"
#include "thread.h"
#include "tool_exec.h"
#include "transport.h"

#ifndef LIBEXECDIR
#define LIBEXECDIR "/usr/local/libexec"
#endif

const char *const agentd_services[] = { "execd", "sandboxd", "authd", "watchd" };
const size_t agentd_service_count = sizeof(agentd_services) / sizeof(agentd_services[0]);

/* How long clients wait for the helpers at start-up before being served regardless. */
#define AGENTD_READY_TIMEOUT_MS 5000u

#define AGENTD_MAX_OVERRIDES 32

typedef struct AgentdFlags {
	const char *listen[AGENTD_MAX_LISTENERS];
	size_t listen_count;
	/* -c key=value, --enable F, --disable F: codex's configuration overrides, in order. */
	const char *overrides[AGENTD_MAX_OVERRIDES];
	char feature_overrides[AGENTD_MAX_OVERRIDES][160];
	size_t override_count;
	/* --ws-auth and its companions, as given; ws_auth_configure() judges them. */
	WsAuthOptions ws_auth;
	bool allows_unauthenticated_remote;
	bool is_debug;
	bool is_check_only;
	bool is_no_spawn;
} AgentdFlags;

/* Long options without a short letter. */
enum {
	OPT_WS_AUTH = 256,
	OPT_WS_TOKEN_FILE,
	OPT_WS_TOKEN_SHA256,
	OPT_WS_SHARED_SECRET_FILE,
	OPT_WS_ISSUER,
	OPT_WS_AUDIENCE,
	OPT_WS_MAX_CLOCK_SKEW,
	OPT_WS_ALLOW_UNAUTHENTICATED_REMOTE,
};

static void agentd_usage(FILE *out)
{
	fprintf(out,
		"usage: agentd [app-server] [--listen URL]... [-c key=value]... [--enable F] [--disable F]\n"
		"              [--ws-auth MODE [ws auth options]] [--no-spawn] [-d] [-n] [--version]\n"
		"       agentd exec [options] [PROMPT | -]  (one prompt, one turn: agentd exec --help)\n"
		"  --listen URL  stdio:// (default), unix://PATH or ws://IP:PORT; may repeat\n"
		"  -c key=value  override a config.toml value (TOML value, else a string), as codex -c\n"
		"  --enable F    same as -c features.F=true; --disable F: features.F=false\n"
		"  --no-spawn    do not start the helpers (systemd units run them)\n"
		"  -d            log at debug level\n"
		"  -n            check the configuration and exit\n"
		"  --version     print the version and exit\n"
		"ws:// client authentication (checked at the upgrade; required off loopback):\n"
		"  --ws-auth MODE                     capability-token | signed-bearer-token\n"
		"  --ws-token-file PATH               absolute path of the capability token (hashed)\n"
		"  --ws-token-sha256 HEX              or the token's SHA-256 digest (64 hex digits)\n"
		"  --ws-shared-secret-file PATH       absolute path of the HS256 secret (>= 32 bytes)\n"
		"  --ws-issuer ISSUER                 the `iss` signed tokens must carry\n"
		"  --ws-audience AUDIENCE             the `aud` signed tokens must carry\n"
		"  --ws-max-clock-skew-seconds N      leeway for `exp` and `nbf` (default 30)\n"
		"  --ws-allow-unauthenticated-remote  let a non-loopback ws:// listener start without\n"
		"                                     --ws-auth (unsafe: whoever reaches it runs code)\n");
}

static int agentd_add_override(AgentdFlags *flags, int opt, const char *arg)
{
	if (flags->override_count == AGENTD_MAX_OVERRIDES) {
		fprintf(stderr, "agentd: at most %d -c/--enable/--disable values\n", AGENTD_MAX_OVERRIDES);
		return -EINVAL;
	}
	size_t i = flags->override_count++;
	if (opt == 'c') {
		flags->overrides[i] = arg;
		return 0;
	}
	/* --enable F is -c features.F=true, as in codex. */
	snprintf(flags->feature_overrides[i], sizeof(flags->feature_overrides[i]), "features.%s=%s", arg,
		 opt == 'E' ? "true" : "false");
	flags->overrides[i] = flags->feature_overrides[i];
	return 0;
}

static int agentd_parse_flags(int argc, char **argv, AgentdFlags *flags)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "no-spawn", no_argument, NULL, 'N' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "analytics-default-enabled", no_argument, NULL, 'A' },
		{ "config", required_argument, NULL, 'c' },
		{ "enable", required_argument, NULL, 'E' },
		{ "disable", required_argument, NULL, 'D' },
		{ "ws-auth", required_argument, NULL, OPT_WS_AUTH },
		{ "ws-token-file", required_argument, NULL, OPT_WS_TOKEN_FILE },
		{ "ws-token-sha256", required_argument, NULL, OPT_WS_TOKEN_SHA256 },
		{ "ws-shared-secret-file", required_argument, NULL, OPT_WS_SHARED_SECRET_FILE },
		{ "ws-issuer", required_argument, NULL, OPT_WS_ISSUER },
		{ "ws-audience", required_argument, NULL, OPT_WS_AUDIENCE },
		{ "ws-max-clock-skew-seconds", required_argument, NULL, OPT_WS_MAX_CLOCK_SKEW },
		{ "ws-allow-unauthenticated-remote", no_argument, NULL, OPT_WS_ALLOW_UNAUTHENTICATED_REMOTE },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	/* `agentd app-server …` runs as `codex app-server …`, so agentd can stand in for codex. */
	if (argc > 1 && strcmp(argv[1], "app-server") == 0) {
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	while ((opt = getopt_long(argc, argv, "dnhc:", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
		case 'E':
		case 'D':
			if (agentd_add_override(flags, opt, optarg) < 0)
				return -EINVAL;
			break;
		case 'l':
			if (flags->listen_count == AGENTD_MAX_LISTENERS) {
				fprintf(stderr, "agentd: at most %d --listen values\n", AGENTD_MAX_LISTENERS);
				return -EINVAL;
			}
			flags->listen[flags->listen_count++] = optarg;
			break;
		case 'N':
			flags->is_no_spawn = true;
			break;
		case OPT_WS_AUTH:
			flags->ws_auth.mode = optarg;
			break;
		case OPT_WS_TOKEN_FILE:
			flags->ws_auth.token_file = optarg;
			break;
		case OPT_WS_TOKEN_SHA256:
			flags->ws_auth.token_sha256 = optarg;
			break;
		case OPT_WS_SHARED_SECRET_FILE:
			flags->ws_auth.shared_secret_file = optarg;
			break;
		case OPT_WS_ISSUER:
			flags->ws_auth.issuer = optarg;
			break;
		case OPT_WS_AUDIENCE:
			flags->ws_auth.audience = optarg;
			break;
		case OPT_WS_MAX_CLOCK_SKEW:
			flags->ws_auth.max_clock_skew_s = optarg;
			break;
		case OPT_WS_ALLOW_UNAUTHENTICATED_REMOTE:
			flags->allows_unauthenticated_remote = true;
			break;
		case 'A':
			/* IDE extensions pass it to `codex app-server`; agentd collects no analytics. */
			break;
		case 'd':
			flags->is_debug = true;
			break;
		case 'n':
			flags->is_check_only = true;
			break;
		case 'V':
			printf("agentd %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			agentd_usage(stdout);
			exit(0);
		default:
			agentd_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		agentd_usage(stderr);
		return -EINVAL;
	}
	if (flags->listen_count == 0)
		flags->listen[flags->listen_count++] = "stdio://";
	/* As codex app-server: its flags name absolute paths; relative ones are refused. */
	flags->ws_auth.requires_absolute_paths = true;
	return 0;
}

static const char *const agentd_config_keys[] = { "max_message_bytes", "max_write_queue_bytes", "log_level" };

/* A typo in [agentd] would otherwise be silently ignored: clients are told, as configWarning. */
static json_t *agentd_config_warnings(const Config *fresh)
{
	json_t *warnings = json_array();
	json_t *table = config_lookup(fresh, "agentd");
	const char *key;
	json_t *value;
	if (!warnings || !json_is_object(table))
		return warnings;
	json_object_foreach (table, key, value) {
		bool is_known = false;
		for (size_t i = 0; i < sizeof(agentd_config_keys) / sizeof(agentd_config_keys[0]); i++)
			is_known = is_known || strcmp(key, agentd_config_keys[i]) == 0;
		if (is_known)
			continue;
		char summary[512];
		snprintf(summary, sizeof(summary), "Unknown key `%s` in [agentd] is ignored", key);
		log_warn("%s: %s", fresh->path, summary);
		json_array_append_new(
			warnings,
			json_pack("{s:s,s:s,s:s,s:n}", "summary", summary, "details",
				  "[agentd] accepts max_message_bytes, max_write_queue_bytes and log_level",
				  "path", fresh->path, "range"));
	}
	return warnings;
}

/* Validates [agentd] in @fresh and only then puts its values to use (start-up and SIGHUP). */
static int agentd_adopt_config(const Config *fresh, void *ctx)
{
	Agentd *server = ctx;
	int64_t max_message, max_queue;
	const char *level_text;
	LogLevel level;
	if (config_get_int(fresh, "agentd.max_message_bytes", 1024, 1 << 30, AGENTD_DEFAULT_MAX_MESSAGE_BYTES,
			   &max_message) < 0 ||
	    config_get_int(fresh, "agentd.max_write_queue_bytes", 1 << 20, (int64_t)1 << 34,
			   AGENTD_DEFAULT_MAX_WRITE_QUEUE_BYTES, &max_queue) < 0 ||
	    config_get_string(fresh, "agentd.log_level", NULL, &level_text) < 0 ||
	    (level_text && log_level_parse(level_text, &level) < 0)) {
		log_error("%s: invalid [agentd] value: max_message_bytes must be an integer in 1024..2^30, "
			  "max_write_queue_bytes in 2^20..2^34, log_level one of error|warn|info|debug",
			  fresh->path);
		return -EINVAL;
	}
	json_t *warnings = agentd_config_warnings(fresh);
	if (!warnings)
		return -ENOMEM;
	json_decref(server->config_warnings);
	server->config_warnings = warnings;
	if (level_text && !server->is_debug)
		log_set_level(level);
	server->max_message_bytes = (size_t)max_message;
	server->max_write_queue_bytes = (size_t)max_queue;
	return 0;
}

static void agentd_start_listeners(Agentd *server, const AgentdFlags *flags);

/*
 * With --no-spawn, once its listeners are bound agentd needs only its loop, nng, accepting
 * clients, configuration reads and removing its sockets at exit: it confines itself to that.
 * When it supervises the helpers it cannot, because a seccomp filter is inherited by every child
 * (the helpers, and through execd the commands they run); the helpers install their own.
 */
static void agentd_confine(Agentd *server)
{
	/* inet sockets and the resolver's batched calls: the model client reaches the model API;
	 * rollouts are created, synced, repaired, archived and renamed. */
	static const char *const extra[] = { "accept",	 "accept4",   "unlink",	   "unlinkat", "sendmmsg",
					     "recvmmsg", "mkdir",     "mkdirat",   "rename",   "renameat",
					     "renameat2", "fsync",    "fdatasync", "ftruncate", "utimensat" };
	const SeccompProfile profile = { extra, sizeof(extra) / sizeof(extra[0]), true, false };
	if (seccomp_filter_apply("agentd", &profile) < 0) {
		server->exit_status = 1;
		agentd_shutdown(server);
	}
}

static const AgentdFlags *agentd_pending_flags;

static void agentd_become_ready(Agentd *server)
{
	if (server->is_ready || server->is_stopping)
		return;
	server->is_ready = true;
	uv_timer_stop(&server->ready_timer);
	agentd_start_listeners(server, agentd_pending_flags);
	if (!server->is_stopping && !server->supervisor)
		agentd_confine(server);
	malloc_trim(0); /* what start-up freed goes back; the trim threshold keeps it otherwise */
}

/* Ready once every helper said hello and sandboxd's probe (its warnings) is in hand. */
static void agentd_check_ready(Agentd *server)
{
	size_t registered = 0;
	for (size_t i = 0; i < agentd_service_count; i++)
		registered += broker_is_registered(server->broker, agentd_services[i]);
	if (registered == agentd_service_count && server->has_sandbox_probe)
		agentd_become_ready(server);
}

/* The reference warns only when commands would run in a platform sandbox at all. */
static bool agentd_is_sandboxed_by_default(const Config *cfg)
{
	const char *profile = NULL, *mode = NULL;
	config_get_string(cfg, "default_permissions", NULL, &profile);
	config_get_string(cfg, "sandbox_mode", NULL, &mode);
	return !(profile ? strcmp(profile, ":danger-full-access") == 0
			 : mode && strcmp(mode, "danger-full-access") == 0);
}

/* sandboxd's health carries its host probe: its warnings become configWarning notifications. */
static json_t *agentd_sandbox_warnings_from(const uint8_t *body, size_t len)
{
	json_t *warnings = json_array();
	MpBody parsed;
	if (!warnings || mp_body_parse(body, len, &parsed) < 0)
		return warnings;
	const msgpack_object *probe = mp_map_find(parsed.map, "probe");
	const msgpack_object *list = probe ? mp_map_find(probe, "warnings") : NULL;
	for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
		const msgpack_object *item = &list->via.array.ptr[i];
		if (item->type != MSGPACK_OBJECT_STR)
			continue;
		json_array_append_new(warnings, json_pack("{s:s%,s:n,s:n,s:n}", "summary", item->via.str.ptr,
							  (size_t)item->via.str.size, "details", "path", "range"));
	}
	mp_body_free(&parsed);
	return warnings;
}

static void agentd_on_sandbox_probe(void *ctx, int32_t status, const uint8_t *body, size_t body_len)
{
	Agentd *server = ctx;
	json_t *warnings = status == 0 ? agentd_sandbox_warnings_from(body, body_len) : json_array();
	if (status != 0)
		log_warn("sandboxd: no host probe (status %d): no sandbox warnings for clients", (int)status);
	json_decref(server->sandbox_warnings);
	server->sandbox_warnings = warnings;
	server->has_sandbox_probe = true;
	agentd_check_ready(server);
}

static void agentd_on_registered(void *ctx, const char *service, int pid)
{
	Agentd *server = ctx;
	server->helpers_registered++;
	if (strcmp(service, "sandboxd") == 0 && agentd_is_sandboxed_by_default(&server->config)) {
		/* Asked again after each restart: a re-probed host may warn differently. */
		if (broker_call(server->broker, "sandboxd", "health", 0, NULL, 0, 5000, agentd_on_sandbox_probe,
				server) < 0)
			server->has_sandbox_probe = true;
	} else if (strcmp(service, "sandboxd") == 0) {
		server->has_sandbox_probe = true;
	}
	agentd_check_ready(server);
}

static void agentd_on_unregistered(void *ctx, const char *service)
{
	Agentd *server = ctx;
	if (strcmp(service, "execd") == 0) {
		proto_exec_on_execd_lost(server);
		tool_exec_on_execd_lost(server);
	}
	if (server->is_stopping)
		return;
	log_warn("%s is down: its clients get errors until it is back", service);
}

/* Events the helpers may send agentd: anything else is a sibling's violation, logged and dropped. */
static void agentd_on_broker_event(void *ctx, const Envelope *env)
{
	Agentd *server = ctx;
	if (env->kind == ENVELOPE_EVENT && strcmp(env->source, "watchd") == 0 &&
	    strcmp(env->method, "fs.changed") == 0) {
		proto_fs_on_changed(server, env);
		return;
	}
	if (env->kind == ENVELOPE_EVENT && strcmp(env->source, "execd") == 0 &&
	    (strcmp(env->method, "exec.output") == 0 || strcmp(env->method, "exec.closed") == 0)) {
		if (tool_exec_is_tool_conn(env->connection_id))
			tool_exec_on_event(server, env);
		else
			proto_exec_on_event(server, env);
		return;
	}
	if (env->kind == ENVELOPE_EVENT && strcmp(env->source, "authd") == 0 &&
	    (strcmp(env->method, "auth.updated") == 0 || strcmp(env->method, "auth.login.completed") == 0)) {
		proto_account_on_event(server, env);
		return;
	}
	if (env->kind == ENVELOPE_EVENT && strcmp(env->source, "sandboxd") == 0 &&
	    strcmp(env->method, "sandbox.probe") == 0) {
		/* Re-probed (SIGHUP): connections from now on get the new warnings. */
		json_decref(server->sandbox_warnings);
		server->sandbox_warnings = agentd_is_sandboxed_by_default(&server->config)
						   ? agentd_sandbox_warnings_from(env->body, env->body_len)
						   : json_array();
		return;
	}
	log_error("%s %s from %s is not in the allow-list: cutting the peer off", envelope_kind_name(env->kind),
		  env->method, env->source);
	broker_cut_off(server->broker, env->source);
}

static void agentd_on_helper_exit(void *ctx, const char *service, int64_t status, int term_signal)
{
	Agentd *server = ctx;
	if (server->broker)
		broker_mark_down(server->broker, service);
	if (strcmp(service, "execd") == 0) {
		proto_exec_on_execd_lost(server);
		tool_exec_on_execd_lost(server);
	}
}

static void agentd_close_walk(uv_handle_t *handle, void *arg)
{
	if (!uv_is_closing(handle))
		uv_close(handle, NULL);
}

static void agentd_on_helpers_stopped(void *ctx)
{
	Agentd *server = ctx;
	/* Clients had the helpers' stop time to read their last answers; now they are cut off. */
	for (Conn *c = server->conns; c; c = c->next)
		conn_close(c, "server stopped");
	broker_free(server->broker);
	server->broker = NULL;
	uv_stop(server->loop);
}

void agentd_shutdown(Agentd *server)
{
	remote_free(server->exec_server); /* fails its calls: their clients get errors now */
	server->exec_server = NULL;
	if (server->is_stopping)
		return;
	server->is_stopping = true;
	log_info("shutting down");
	thread_free_all(server); /* their turns end; their commands die with the owners' pseudo connections */
	uv_timer_stop(&server->ready_timer);
	for (size_t i = 0; i < server->listener_count; i++)
		listener_free(server->listeners[i]);
	server->listener_count = 0;
	for (Conn *c = server->conns; c; c = c->next)
		conn_finish(c, "server shutting down");
	if (server->supervisor)
		supervisor_stop(server->supervisor);
	else
		agentd_on_helpers_stopped(server);
}

void agentd_on_stdio_closed(Agentd *server)
{
	if (server->is_stdio_only)
		agentd_shutdown(server);
}

static void agentd_on_signal(uv_signal_t *sig, int signum)
{
	log_info("%s received", strsignal(signum));
	agentd_shutdown(sig->data);
}

static void agentd_on_hup(uv_signal_t *sig, int signum)
{
	Agentd *server = sig->data;
	config_reload(&server->config, agentd_adopt_config, server);
	/* The helpers it spawned reload with it (sandboxd also probes the host again). */
	if (server->supervisor)
		supervisor_signal(server->supervisor, SIGHUP);
}

static void agentd_on_conn_sweep(uv_timer_t *timer)
{
	conn_sweep(timer->data);
}

static void agentd_on_ready_timeout(uv_timer_t *timer)
{
	Agentd *server = timer->data;
	log_warn("helpers not all registered after %u ms: serving clients anyway", AGENTD_READY_TIMEOUT_MS);
	agentd_become_ready(server);
}

/* Refuse bad --listen values, and remote ones without client auth, before any helper is spawned. */
static int agentd_check_listen(const Agentd *server, const AgentdFlags *flags)
{
	for (size_t i = 0; i < flags->listen_count; i++) {
		ListenSpec spec;
		char err[256];
		if (listen_spec_parse(flags->listen[i], server->runtime_dir, &spec, err, sizeof(err)) < 0) {
			log_error("%s", err);
			return -EINVAL;
		}
		if (spec.kind == LISTEN_WS &&
		    transport_ws_check_listener(server, &spec, err, sizeof(err)) < 0) {
			log_error("%s", err);
			return -EACCES;
		}
	}
	return 0;
}

/*
 * --ws-auth and its companions, judged as the reference does: the secret files are read once,
 * here, and the messages are its own. Nothing read is ever logged.
 */
static int agentd_configure_ws_auth(Agentd *server, const AgentdFlags *flags)
{
	char err[2 * AGENTD_PATH_MAX + 256];
	if (ws_auth_configure(&flags->ws_auth, &server->ws_auth, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	server->allows_unauthenticated_remote = flags->allows_unauthenticated_remote;
	return 0;
}

static void agentd_start_listeners(Agentd *server, const AgentdFlags *flags)
{
	for (size_t i = 0; i < flags->listen_count; i++) {
		ListenSpec spec;
		char err[256];
		Listener *listener;
		int rc = listen_spec_parse(flags->listen[i], server->runtime_dir, &spec, err, sizeof(err));
		if (rc == 0)
			rc = listener_start(server, &spec, &listener);
		else
			log_error("%s", err);
		if (rc < 0) {
			log_error("cannot listen on %s: %s", flags->listen[i], strerror(-rc));
			server->exit_status = 1;
			agentd_shutdown(server);
			return;
		}
		server->listeners[server->listener_count++] = listener;
	}
}

static int agentd_start_signals(Agentd *server)
{
	uv_signal_t *sigs[] = { &server->sigterm, &server->sigint, &server->sighup };
	int nums[] = { SIGTERM, SIGINT, SIGHUP };
	for (int i = 0; i < 3; i++) {
		uv_signal_init(server->loop, sigs[i]);
		sigs[i]->data = server;
		int rc = uv_signal_start(sigs[i], nums[i] == SIGHUP ? agentd_on_hup : agentd_on_signal,
					 nums[i]);
		if (rc < 0)
			return rc;
	}
	/* A client closing its socket must be an error return, never a process kill. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int agentd_start_helpers(Agentd *server, const AgentdFlags *flags)
{
	static const BrokerEvents broker_events = { agentd_on_registered, agentd_on_unregistered,
						    agentd_on_broker_event };
	static const SupervisorEvents supervisor_events = { agentd_on_helper_exit,
							    agentd_on_helpers_stopped };
	int rc = paths_runtime_dir(server->runtime_dir, sizeof(server->runtime_dir));
	if (rc == 0)
		rc = paths_ensure_private_dir(server->runtime_dir);
	if (rc < 0) {
		log_error("runtime directory %s: %s", server->runtime_dir, strerror(-rc));
		return rc;
	}
	/* Helpers first: their exec and library loading overlap with the broker's set-up, and
	 * they dial until the broker listens. */
	if (!flags->is_no_spawn) {
		rc = supervisor_new(server->loop, agentd_services, agentd_service_count, LIBEXECDIR,
				    flags->is_debug, &supervisor_events, server, &server->supervisor);
		if (rc == 0)
			rc = supervisor_start(server->supervisor);
		if (rc < 0)
			return rc;
	}
	return broker_new(server->loop, server->runtime_dir, agentd_services, agentd_service_count,
			  &broker_events, server, &server->broker);
}

static bool agentd_is_stdio_only(const AgentdFlags *flags)
{
	for (size_t i = 0; i < flags->listen_count; i++) {
		if (strncmp(flags->listen[i], "stdio", 5) != 0)
			return false;
	}
	return true;
}

/* The remote environment's client; it connects on the first command. */
static int agentd_start_exec_server_client(Agentd *server)
{
	static const RemoteEvents events = {
		.on_notification = proto_exec_remote_on_notification,
		.on_disconnected = proto_exec_remote_on_disconnected,
	};
	if (server->environment != AGENTD_ENV_REMOTE)
		return 0;
	int rc = remote_new(server->loop, server->exec_server_url, "agentd", &events, server, &server->exec_server);
	if (rc < 0)
		log_error("CODEX_EXEC_SERVER_URL %s: %s", server->exec_server_url,
			  rc == -EPROTONOSUPPORT ? "wss:// is not supported" : strerror(-rc));
	else
		log_info("environment: the exec-server at %s", server->exec_server_url);
	return rc;
}

/* CODEX_EXEC_SERVER_URL: unset or empty = the local execd, "none" = no environment, ws:// = remote. */
static int agentd_choose_environment(Agentd *server)
{
	const char *url = getenv("CODEX_EXEC_SERVER_URL");
	while (url && (*url == ' ' || *url == '\t'))
		url++;
	size_t len = url ? strlen(url) : 0;
	while (len && (url[len - 1] == ' ' || url[len - 1] == '\t' || url[len - 1] == '\n'))
		len--;
	if (len == 0) {
		server->environment = AGENTD_ENV_LOCAL;
	} else if (len == 4 && strncasecmp(url, "none", 4) == 0) {
		server->environment = AGENTD_ENV_NONE;
	} else if ((len > 5 && strncmp(url, "ws://", 5) == 0) || (len > 6 && strncmp(url, "wss://", 6) == 0)) {
		server->environment = AGENTD_ENV_REMOTE;
		server->exec_server_url = strndup(url, len);
		if (!server->exec_server_url)
			return -ENOMEM;
	} else {
		log_error("CODEX_EXEC_SERVER_URL must be unset, \"none\" or a ws:// URL, not \"%.*s\"", (int)len, url);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static Agentd server;
	static AgentdFlags flags;
	uv_loop_t loop;
	char err[512];
	int status = 1;

	/* `agentd exec` is a client of a child agentd, not a server: none of what follows applies. */
	if (argc > 1 && strcmp(argv[1], "exec") == 0)
		return exec_cli_main(argc, argv);
	/* Single-threaded loop; nng's workers allocate little: one malloc arena is enough. */
	mallopt(M_ARENA_MAX, 1);
	/* Output moves in 64-87 KiB buffers: keep freed memory for the next one instead of
	 * returning it to the kernel and faulting it back in, chunk after chunk. */
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	if (agentd_parse_flags(argc, argv, &flags) < 0)
		return 2;
	log_init("agentd", log_start_level(flags.is_debug));
	server.is_debug = flags.is_debug;
	if (config_set_overrides(flags.overrides, flags.override_count, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 2;
	}
	if (config_load(&server.config, err, sizeof(err)) < 0) {
		log_error("%s", err);
		config_free(&server.config);
		return 1;
	}
	if (agentd_adopt_config(&server.config, &server) < 0) {
		config_free(&server.config);
		return 1;
	}
	if (agentd_choose_environment(&server) < 0) {
		config_free(&server.config);
		return 2;
	}
	if (agentd_configure_ws_auth(&server, &flags) < 0) {
		config_free(&server.config);
		free(server.exec_server_url);
		return 1;
	}
	if (flags.is_check_only) {
		printf("agentd: configuration %s OK\n", server.config.path);
		ws_auth_clear(&server.ws_auth);
		config_free(&server.config);
		free(server.exec_server_url);
		return 0;
	}
	/*
	 * agentd keeps no capability: it talks to clients and the model API and reads its
	 * configuration. Spawning helpers needs none, and they drop their own.
	 */
	if (daemon_keep_capabilities("agentd", NULL, 0) < 0)
		goto out_config;
	if (paths_runtime_dir(server.runtime_dir, sizeof(server.runtime_dir)) < 0 ||
	    agentd_check_listen(&server, &flags) < 0)
		goto out_config;
	uv_loop_init(&loop);
	server.loop = &loop;
	server.is_stdio_only = agentd_is_stdio_only(&flags);
	agentd_pending_flags = &flags;
	uv_timer_init(&loop, &server.ready_timer);
	server.ready_timer.data = &server;
	uv_timer_init(&loop, &server.conn_sweep_timer);
	server.conn_sweep_timer.data = &server;
	uv_timer_start(&server.conn_sweep_timer, agentd_on_conn_sweep, 500, 500);
	uv_unref((uv_handle_t *)&server.conn_sweep_timer);
	if (model_client_new(&loop, &server.model_client) < 0) {
		log_error("out of memory");
		goto out_loop;
	}
	if (agentd_start_signals(&server) < 0 || agentd_start_helpers(&server, &flags) < 0) {
		server.exit_status = 1;
		agentd_shutdown(&server);
		uv_run(&loop, UV_RUN_DEFAULT);
		goto out_loop;
	}
	if (agentd_start_exec_server_client(&server) < 0) {
		server.exit_status = 1;
		agentd_shutdown(&server);
		uv_run(&loop, UV_RUN_DEFAULT);
		goto out_loop;
	}
	log_info("started (pid %ld), runtime directory %s", (long)getpid(), server.runtime_dir);
	if (flags.is_no_spawn)
		agentd_become_ready(&server);
	else
		uv_timer_start(&server.ready_timer, agentd_on_ready_timeout, AGENTD_READY_TIMEOUT_MS, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	status = server.exit_status;
out_loop:
	thread_free_all(&server);
	proto_catalog_stop(&server);
	model_client_free(server.model_client);
	supervisor_free(server.supervisor);
	broker_free(server.broker);
	uv_walk(&loop, agentd_close_walk, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
out_config:
	ws_auth_clear(&server.ws_auth); /* wipes the secret, or the token's digest */
	config_free(&server.config);
	free(server.exec_server_url);
	json_decref(server.config_warnings);
	json_decref(server.sandbox_warnings);
	log_info("stopped");
	return status;
}
