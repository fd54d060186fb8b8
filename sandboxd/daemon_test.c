/* SPDX-License-Identifier: MIT */
/*
 * daemon_test.c - sandboxd's internal methods over a real nng link: this test plays the broker
 * (listens on sandboxd's socket in a scratch runtime directory), starts the real daemon, and
 * sends it "plan" and "health" requests, good and bad; SIGHUP must bring a "sandbox.probe" event.
 * Run from the build tree (sandboxd/sandboxd), or with AGENTD_BUILDDIR set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envelope.h"
#include "link.h"
#include "mp.h"
#include "mpjson.h"

extern char **environ;

#define WAIT_MS 10000

typedef struct Broker {
	uv_loop_t loop;
	uv_timer_t deadline;
	Link *link;
	pid_t pid;
	char dir[64];
	bool is_registered;
	bool is_expired;
	/* The last response (by correlation id) or event (by method) we waited for. */
	uint64_t awaited_id;
	const char *awaited_event;
	bool has_answer;
	int32_t status;
	json_t *body;
	uint64_t next_id;
} Broker;

static void on_envelope(Link *link, const Envelope *env, void *ctx)
{
	Broker *b = ctx;
	if (env->kind == ENVELOPE_REQUEST && strcmp(env->method, "hello") == 0) {
		Envelope resp = { .version = ENVELOPE_VERSION, .kind = ENVELOPE_RESPONSE, .id = ++b->next_id,
				  .correlation_id = env->id, .source = "agentd", .destination = "sandboxd" };
		assert_int_equal(link_send(link, &resp), 0);
		b->is_registered = true;
		return;
	}
	bool is_awaited = (env->kind == ENVELOPE_RESPONSE && env->correlation_id == b->awaited_id) ||
			  (env->kind == ENVELOPE_EVENT && b->awaited_event && strcmp(env->method, b->awaited_event) == 0);
	if (!is_awaited)
		return;
	MpBody body;
	json_decref(b->body);
	b->body = NULL;
	if (env->body_len && mp_body_parse(env->body, env->body_len, &body) == 0) {
		msgpack_object map = { .type = MSGPACK_OBJECT_MAP, .via.map = body.map->via.map };
		b->body = mpjson_from_object(&map);
		mp_body_free(&body);
	}
	b->status = env->status;
	b->has_answer = true;
}

static void on_peer(Link *link, bool is_connected, void *ctx)
{
}

static void on_deadline(uv_timer_t *timer)
{
	((Broker *)timer->data)->is_expired = true;
}

static bool run_until(Broker *b, const bool *flag)
{
	b->is_expired = false;
	uv_timer_start(&b->deadline, on_deadline, WAIT_MS, 0);
	while (!*flag && !b->is_expired)
		uv_run(&b->loop, UV_RUN_ONCE);
	uv_timer_stop(&b->deadline);
	return *flag;
}

static const char *sandboxd_path(void)
{
	static char path[PATH_MAX];
	const char *builddir = getenv("AGENTD_BUILDDIR");
	snprintf(path, sizeof(path), "%s/sandboxd/sandboxd", builddir ? builddir : ".");
	return path;
}

static int broker_setup(void **state)
{
	Broker *b = calloc(1, sizeof(*b));
	char url[256], home[128];
	snprintf(b->dir, sizeof(b->dir), "/tmp/sbd-test.XXXXXX");
	if (!mkdtemp(b->dir))
		return -1;
	snprintf(home, sizeof(home), "%s/home", b->dir);
	mkdir(home, 0700);
	setenv("AGENTD_RUNTIME_DIR", b->dir, 1);
	setenv("CODEX_HOME", home, 1);
	uv_loop_init(&b->loop);
	uv_timer_init(&b->loop, &b->deadline);
	b->deadline.data = b;
	static const LinkEvents events = { on_envelope, on_peer };
	if (link_url_for_service(b->dir, "sandboxd", url, sizeof(url)) < 0 ||
	    link_open(&b->loop, LINK_LISTEN, url, &events, b, &b->link) < 0)
		return -1;
	char *argv[] = { (char *)sandboxd_path(), NULL };
	if (posix_spawn(&b->pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	*state = b;
	return run_until(b, &b->is_registered) ? 0 : -1;
}

static int broker_teardown(void **state)
{
	Broker *b = *state;
	int status = -1;
	kill(b->pid, SIGTERM);
	waitpid(b->pid, &status, 0);
	link_free(b->link);
	uv_close((uv_handle_t *)&b->deadline, NULL);
	uv_run(&b->loop, UV_RUN_DEFAULT);
	uv_loop_close(&b->loop);
	json_decref(b->body);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
	int rc = system(cmd);
	free(b);
	/* A clean stop: exit 0, and the mask files it made are gone with it. */
	return rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Send @method with @body (JSON, packed as msgpack) and wait for its answer. */
static void call(Broker *b, const char *method, const char *body_json)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	json_t *json = json_loads(body_json, 0, NULL);
	assert_non_null(json);
	assert_int_equal(mpjson_pack(&pk, json), 0);
	json_decref(json);
	Envelope req = { .version = ENVELOPE_VERSION, .kind = ENVELOPE_REQUEST, .id = ++b->next_id,
			 .source = "agentd", .destination = "sandboxd", .body = (const uint8_t *)sbuf.data,
			 .body_len = sbuf.size };
	snprintf(req.method, sizeof(req.method), "%s", method);
	b->awaited_id = req.id;
	b->has_answer = false;
	assert_int_equal(link_send(b->link, &req), 0);
	msgpack_sbuffer_destroy(&sbuf);
	assert_true(run_until(b, &b->has_answer));
}

static const char *body_string(const Broker *b, const char *key)
{
	return json_string_value(json_object_get(b->body, key));
}

static void test_plan_read_only(void **state)
{
	Broker *b = *state;
	char body[512];
	snprintf(body, sizeof(body), "{\"cwd\":\"%s\",\"command\":[\"/bin/true\"],\"policy\":\"{\\\"type\\\":\\\"readOnly\\\"}\"}",
		 b->dir);
	call(b, "plan", body);
	assert_int_equal(b->status, 0);
	const char *launcher = body_string(b, "launcher");
	assert_true(strcmp(launcher, "system") == 0 || strcmp(launcher, "builtin") == 0);
	json_t *argv = json_object_get(b->body, "argv");
	size_t n = json_array_size(argv);
	assert_true(n > 8);
	/* The user's command is last, untouched; the runtime directory is hidden. */
	assert_string_equal(json_string_value(json_array_get(argv, n - 1)), "/bin/true");
	assert_string_equal(json_string_value(json_array_get(argv, n - 2)), "--");
	bool hides_runtime = false;
	for (size_t i = 1; i < n; i++)
		hides_runtime = hides_runtime || (strcmp(json_string_value(json_array_get(argv, i)), b->dir) == 0 &&
						  strcmp(json_string_value(json_array_get(argv, i - 1)), "--tmpfs") == 0);
	assert_true(hides_runtime);
}

static void test_plan_full_access_is_the_command(void **state)
{
	Broker *b = *state;
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"cwd\":\"%s\",\"command\":[\"ls\",\"-l\"],\"policy\":\"{\\\"type\\\":\\\"dangerFullAccess\\\"}\"}", b->dir);
	call(b, "plan", body);
	assert_int_equal(b->status, 0);
	assert_string_equal(body_string(b, "launcher"), "none");
	assert_int_equal(json_array_size(json_object_get(b->body, "argv")), 2);
}

/* Refusals come back as -EINVAL with a message saying why. */
static void test_plan_refusals_say_why(void **state)
{
	Broker *b = *state;
	static const struct {
		const char *policy;
		const char *message;
	} cases[] = {
		{ "not json", "sandbox policy is not JSON" },
		{ "{\\\"type\\\":\\\"bogus\\\"}", "unknown sandboxPolicy type" },
		{ "{\\\"kind\\\":\\\"restricted\\\",\\\"entries\\\":[{\\\"path\\\":{\\\"type\\\":\\\"glob_pattern\\\","
		  "\\\"pattern\\\":\\\"/a/*\\\"},\\\"access\\\":\\\"read\\\"}]}",
		  "can only deny" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[1024];
		snprintf(body, sizeof(body), "{\"cwd\":\"%s\",\"command\":[\"true\"],\"policy\":\"%s\"}", b->dir,
			 cases[i].policy);
		call(b, "plan", body);
		assert_int_equal(b->status, -EINVAL);
		const char *message = body_string(b, "message");
		if (!message || !strstr(message, cases[i].message))
			fail_msg("case %zu: message %s", i, message ? message : "(none)");
	}
	call(b, "plan", "{\"cwd\":\"/\",\"command\":[\"true\"],\"profile\":\"nobody\"}");
	assert_int_equal(b->status, -ENOENT);
	assert_non_null(strstr(body_string(b, "message"), "\"nobody\" is not defined"));
}

static void test_plan_bad_params(void **state)
{
	Broker *b = *state;
	static const char *const bodies[] = {
		"{\"cwd\":\"relative\",\"command\":[\"true\"]}",
		"{\"cwd\":\"/tmp/../tmp\",\"command\":[\"true\"]}",
		"{\"cwd\":\"/\",\"command\":[]}",
		"{\"cwd\":\"/\",\"command\":\"true\"}",
		"{\"cwd\":\"/\",\"command\":[1]}",
		"{\"command\":[\"true\"]}",
		"{\"cwd\":\"/\",\"command\":[\"true\"],\"policy\":7}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		call(b, "plan", bodies[i]);
		if (b->status != -EINVAL)
			fail_msg("%s: status %d", bodies[i], b->status);
	}
	/* Still answering after all that. */
	call(b, "health", "{}");
	assert_int_equal(b->status, 0);
}

static void test_unknown_method_is_refused(void **state)
{
	Broker *b = *state;
	call(b, "run", "{}");
	assert_int_equal(b->status, -ENOSYS);
}

static void test_health_has_the_probe_and_sighup_announces_it_again(void **state)
{
	Broker *b = *state;
	call(b, "health", "{}");
	assert_int_equal(b->status, 0);
	json_t *probe = json_object_get(b->body, "probe");
	assert_non_null(json_string_value(json_object_get(probe, "launcher")));
	assert_true(json_is_array(json_object_get(probe, "warnings")));
	/* Force the built-in launcher and reload: the fresh probe is announced to agentd. */
	char config[256];
	snprintf(config, sizeof(config), "%s/home/config.toml", b->dir);
	FILE *f = fopen(config, "w");
	assert_non_null(f);
	fputs("[sandboxd]\nlauncher = \"builtin\"\n", f);
	fclose(f);
	b->awaited_event = "sandbox.probe";
	b->has_answer = false;
	kill(b->pid, SIGHUP);
	assert_true(run_until(b, &b->has_answer));
	b->awaited_event = NULL;
	assert_string_equal(json_string_value(json_object_get(json_object_get(b->body, "probe"), "launcher")),
			    "builtin");
}

#define DAEMON_TEST(fn) cmocka_unit_test_setup_teardown(fn, broker_setup, broker_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		DAEMON_TEST(test_plan_read_only),
		DAEMON_TEST(test_plan_full_access_is_the_command),
		DAEMON_TEST(test_plan_refusals_say_why),
		DAEMON_TEST(test_plan_bad_params),
		DAEMON_TEST(test_unknown_method_is_refused),
		DAEMON_TEST(test_health_has_the_probe_and_sighup_announces_it_again),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
