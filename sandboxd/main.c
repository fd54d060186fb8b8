/* SPDX-License-Identifier: MIT */
/*
 * sandboxd - probes the host and compiles sandbox policies into launch plans.
 *
 * One binary, four faces, chosen by argv:
 *   agentd-sandbox ...        the in-sandbox stage (basename dispatch; see inner.c, builtin.c)
 *   sandboxd --probe          print what the host offers, as JSON
 *   sandboxd run ... -- CMD   run one command under a policy, for people trying policies by hand
 *   sandboxd [-d] [-n] ...    the daemon: answers "plan" for execd/agentd over the broker
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtin.h"
#include "daemon.h"
#include "inner.h"
#include "log.h"
#include "mpjson.h"
#include "paths.h"
#include "plan.h"
#include "policy.h"
#include "probe.h"
#include "supervise.h"

/* A plan request: cwd, command and policy text are bounded well below the envelope limit. */
#define PLAN_MAX_BODY (256 * 1024)
#define PLAN_MAX_ARGS 4096

typedef struct Sandboxd {
	Probe probe;
	bool is_refusing; /* the configured launcher cannot be had: every plan is refused */
	char launcher_setting[16];
	char bwrap_path[PATH_MAX]; /* tried before PATH: [sandboxd] bwrap_path, else /usr/bin/bwrap */
	bool has_probed;
	char exe[PATH_MAX];  /* our own full path: re-entered with --argv0 */
	char link[PATH_MAX]; /* <dir>/agentd-sandbox: the compatibility path and the built-in launcher */
	char mask_dir[AGENTD_PATH_MAX];
	char lock_dir[AGENTD_PATH_MAX]; /* shared by every instance of ours: see supervise.h */
	char empty_file[AGENTD_PATH_MAX];
	char empty_readable_file[AGENTD_PATH_MAX];
	char runtime_dir[AGENTD_PATH_MAX];
	char codex_home[AGENTD_PATH_MAX]; /* masked whole, but for what it holds: see plan.c */
	char auth_json[AGENTD_PATH_MAX];
	const char *hidden[2]; /* and, per plan, the lock directory: see usable_lock_dir() */
	size_t hidden_count;
} Sandboxd;

/* --- set-up shared by every face --------------------------------------------------------------- */

static int locate_self(Sandboxd *s)
{
	char dir[PATH_MAX];
	if (!realpath("/proc/self/exe", s->exe))
		return -errno;
	snprintf(dir, sizeof(dir), "%s", s->exe);
	snprintf(s->link, sizeof(s->link), "%s/%s", dirname(dir), INNER_STAGE_NAME);
	if (access(s->link, X_OK) < 0) {
		fprintf(stderr, "sandboxd: the inner-stage link %s is missing (make and make install create it)\n",
			s->link);
		return -ENOENT;
	}
	return 0;
}

/*
 * An empty file of @mode that masks are bound from. Made once; later runs only check it, by path:
 * a mode-0000 file cannot be opened by its (unprivileged) owner.
 */
static int ensure_empty_file(const char *path, mode_t mode)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return errno == EEXIST ? ensure_empty_file(path, mode) : -errno;
		int rc = fchmod(fd, mode) < 0 ? -errno : 0;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != 0 || st.st_uid != geteuid())
		return -EEXIST; /* not ours, or not empty: never mount it over anything */
	if ((st.st_mode & 07777) != mode && chmod(path, mode) < 0)
		return -errno;
	return 0;
}

static const char *lock_dir_problem(int rc)
{
	if (rc == -EPERM)
		return "it belongs to another user";
	if (rc == -EACCES)
		return "it is open to other users";
	if (rc == -ENOTDIR)
		return "it is not a directory";
	return strerror(-rc);
}

/*
 * The lock directory, checked for each plan (and made again if someone removed it) before the plan
 * is made, so that the plan hides it. Without a usable one, plans that make mount points on the
 * host are refused: they could not be shared safely. Return: 0 or a negative errno.
 */
static int usable_lock_dir(const Sandboxd *s, PlanEnv *env, const char **hidden)
{
	int rc = created_lock_dir_check(s->lock_dir, true);
	memcpy(hidden, s->hidden, s->hidden_count * sizeof(*hidden));
	env->hidden_paths = hidden;
	env->hidden_count = s->hidden_count;
	if (rc == 0)
		hidden[env->hidden_count++] = s->lock_dir;
	return rc;
}

/* The files masks are bound from, and the paths every sandbox hides. */
static int prepare_masks(Sandboxd *s)
{
	int rc = paths_runtime_dir(s->runtime_dir, sizeof(s->runtime_dir));
	if (rc == 0)
		rc = paths_ensure_private_dir(s->runtime_dir);
	if (rc == 0)
		rc = paths_join(s->runtime_dir, "sandbox", s->mask_dir, sizeof(s->mask_dir));
	if (rc == 0 && mkdir(s->mask_dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (rc == 0)
		rc = created_lock_dir_path(s->lock_dir, sizeof(s->lock_dir));
	if (rc == 0)
		rc = paths_join(s->mask_dir, "empty-0000", s->empty_file, sizeof(s->empty_file));
	if (rc == 0)
		rc = paths_join(s->mask_dir, "empty-0444", s->empty_readable_file, sizeof(s->empty_readable_file));
	if (rc == 0)
		rc = ensure_empty_file(s->empty_file, 0000);
	if (rc == 0)
		rc = ensure_empty_file(s->empty_readable_file, 0444);
	if (rc < 0) {
		fprintf(stderr, "sandboxd: mask files in %s: %s\n", s->runtime_dir, strerror(-rc));
		return rc;
	}
	/*
	 * Sibling daemons' sockets and the credentials are nothing a sandboxed command may touch. The
	 * credentials are hidden with the directory they are replaced in (authd renames a new auth.json
	 * over the old one, which would shed a mask bound over the file); auth.json itself stays hidden
	 * too, for a symbolic link that leads out of CODEX_HOME.
	 */
	s->hidden[s->hidden_count++] = s->runtime_dir;
	if (paths_codex_home(s->codex_home, sizeof(s->codex_home)) < 0)
		s->codex_home[0] = '\0';
	else if (paths_join(s->codex_home, "auth.json", s->auth_json, sizeof(s->auth_json)) == 0)
		s->hidden[s->hidden_count++] = s->auth_json;
	/* Made now, before any plan: one made later would be visible in the sandboxes planned before. */
	if ((rc = created_lock_dir_check(s->lock_dir, true)) < 0)
		fprintf(stderr, "sandboxd: the mount-point locks' directory %s: %s\n", s->lock_dir,
			lock_dir_problem(rc));
	return 0;
}

/* [sandboxd] launcher and bwrap_path, checked before any of it is used. */
static int read_settings(const Config *cfg, Sandboxd *s)
{
	const char *launcher = NULL, *bwrap = NULL;
	if (config_get_string(cfg, "sandboxd.launcher", "auto", &launcher) < 0 ||
	    (strcmp(launcher, "auto") != 0 && strcmp(launcher, "system") != 0 && strcmp(launcher, "builtin") != 0)) {
		log_error("%s: [sandboxd] launcher must be one of auto|system|builtin", cfg->path);
		return -EINVAL;
	}
	if (config_get_string(cfg, "sandboxd.bwrap_path", "/usr/bin/bwrap", &bwrap) < 0 || bwrap[0] != '/' ||
	    strlen(bwrap) >= sizeof(s->bwrap_path)) {
		log_error("%s: [sandboxd] bwrap_path must be an absolute path", cfg->path);
		return -EINVAL;
	}
	snprintf(s->launcher_setting, sizeof(s->launcher_setting), "%s", launcher);
	snprintf(s->bwrap_path, sizeof(s->bwrap_path), "%s", bwrap);
	return 0;
}

/* What the probe searches with: the configured bwrap, our PATH, and our cwd (never searched). */
static ProbeOptions probe_options(const Sandboxd *s, char *cwd, size_t cwd_len)
{
	return (ProbeOptions){
		.fixed_bwrap = s->bwrap_path,
		.path_env = getenv("PATH"),
		.cwd = getcwd(cwd, cwd_len),
		.forced = s->launcher_setting,
	};
}

static void run_probe(Sandboxd *s)
{
	char cwd[PATH_MAX];
	ProbeOptions opts = probe_options(s, cwd, sizeof(cwd));
	s->is_refusing = probe_run(&s->probe, &opts) < 0;
}

/* --- plans ------------------------------------------------------------------------------------- */

typedef struct PlanRequest {
	const char *cwd;
	const char *workspace; /* what the policy's cwd grants name (workspace-write, :cwd); NULL: cwd */
	const char *policy_json; /* a SandboxPolicy or filesystem policy, or NULL */
	const char *profile;	 /* a permission profile name, or NULL (the configured default) */
	const char *tmpdir;
	char *const *command;
} PlanRequest;

/* The profile a request without a policy gets: default_permissions, legacy sandbox_mode, read-only. */
static const char *default_profile(const Config *cfg)
{
	const char *name = NULL, *mode = NULL;
	config_get_string(cfg, "default_permissions", NULL, &name);
	if (name)
		return name;
	config_get_string(cfg, "sandbox_mode", NULL, &mode);
	if (mode && strcmp(mode, "workspace-write") == 0)
		return ":workspace";
	if (mode && strcmp(mode, "danger-full-access") == 0)
		return ":danger-full-access";
	return ":read-only";
}

static int build_policy(const Config *cfg, const PlanRequest *req, Policy *policy, char *err, size_t err_len)
{
	const char *home = getenv("HOME");
	PolicyContext pc = { .cwd = req->workspace ? req->workspace : req->cwd, .tmpdir = req->tmpdir, .home = home };
	if (req->policy_json) {
		json_error_t jerr;
		json_t *json = json_loads(req->policy_json, 0, &jerr);
		if (!json) {
			snprintf(err, err_len, "sandbox policy is not JSON: %s", jerr.text);
			return -EINVAL;
		}
		int rc = policy_from_json(policy, &pc, json, err, err_len);
		json_decref(json);
		return rc;
	}
	return policy_from_profile(policy, &pc, cfg->root, req->profile ? req->profile : default_profile(cfg), err,
				   err_len);
}

/*
 * A bwrap inside the command's own tree could have been put there by what the command works on:
 * such a plan goes to the built-in launcher instead (the probe skipped bwraps under its own cwd).
 */
static bool is_under_cwd(const char *bwrap, const char *cwd)
{
	char real[PATH_MAX];
	if (!realpath(cwd, real) || strcmp(real, "/") == 0)
		return false;
	size_t n = strlen(real);
	return strncmp(bwrap, real, n) == 0 && bwrap[n] == '/';
}

static int compile_request(Sandboxd *s, const Config *cfg, const PlanRequest *req, Plan *plan, StrVec *argv,
			   char *err, size_t err_len)
{
	Policy policy;
	policy_init(&policy);
	memset(plan, 0, sizeof(*plan));
	int rc = build_policy(cfg, req, &policy, err, err_len);
	bool is_system = s->probe.launcher == LAUNCHER_SYSTEM && !is_under_cwd(s->probe.bwrap, req->cwd);
	if (rc == 0 && s->probe.launcher == LAUNCHER_SYSTEM && !is_system && strcmp(s->launcher_setting, "system") == 0)
		rc = policy_fail(err, err_len, "the system bwrap %s lies under the command's cwd %s: not used",
				 s->probe.bwrap, req->cwd);
	char stage_dir[PATH_MAX];
	snprintf(stage_dir, sizeof(stage_dir), "%s", s->link);
	PlanEnv env = { .empty_file = s->empty_file,
			.empty_readable_file = s->empty_readable_file,
			.stage_dir = is_system ? dirname(stage_dir) : NULL,
			.credential_home = s->codex_home[0] ? s->codex_home : NULL };
	const char *hidden[sizeof(s->hidden) / sizeof(s->hidden[0]) + 1];
	int lock_rc = usable_lock_dir(s, &env, hidden);
	if (rc == 0)
		rc = plan_compile(plan, &policy, req->cwd, &env, err, err_len);
	policy_free(&policy);
	if (rc < 0)
		return rc;
	if (plan->created.count && lock_rc < 0) {
		snprintf(err, err_len,
			 "cannot share the sandbox's mount points (%.600s): the lock directory %.200s: %s",
			 plan->created.items[0], s->lock_dir, lock_dir_problem(lock_rc));
		plan_free(plan);
		return -EINVAL;
	}
	if (!plan->is_unwrapped && s->is_refusing) {
		snprintf(err, err_len, "%.900s", s->probe.warnings[0]);
		plan_free(plan);
		return -EINVAL;
	}
	LaunchTarget target = { is_system ? s->probe.bwrap : NULL, s->probe.bwrap_has_argv0, s->exe, s->link,
				s->lock_dir };
	rc = plan_render(plan, &target, req->command, argv);
	if (rc < 0)
		plan_free(plan);
	return rc;
}

/* --- sandboxd run ------------------------------------------------------------------------------ */

static int run_usage(void)
{
	fprintf(stderr, "usage: sandboxd run [--policy JSON | --profile NAME] [-C DIR] [--print] -- COMMAND [ARG...]\n");
	return 2;
}

static int run_main(Sandboxd *s, int argc, char **argv)
{
	log_init("sandboxd", LOG_LEVEL_WARN);
	static const struct option options[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "profile", required_argument, NULL, 'P' },
		{ "print", no_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	char cwd_buf[AGENTD_PATH_MAX], here[PATH_MAX], err[1024] = "";
	PlanRequest req = { .tmpdir = getenv("TMPDIR") };
	bool is_print_only = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "+C:", options, NULL)) != -1) {
		if (opt == 'p')
			req.policy_json = optarg;
		else if (opt == 'P')
			req.profile = optarg;
		else if (opt == 'C')
			req.cwd = optarg;
		else if (opt == 'x')
			is_print_only = true;
		else
			return run_usage();
	}
	if (optind >= argc || (req.policy_json && req.profile))
		return run_usage();
	req.command = argv + optind;
	if (!getcwd(here, sizeof(here)) ||
	    path_normalize(here, req.cwd ? req.cwd : here, cwd_buf, sizeof(cwd_buf)) < 0) {
		fprintf(stderr, "sandboxd: bad working directory\n");
		return 2;
	}
	req.cwd = cwd_buf;
	Config cfg = { 0 };
	if (config_load(&cfg, err, sizeof(err)) < 0 || read_settings(&cfg, s) < 0) {
		fprintf(stderr, "sandboxd: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	if (locate_self(s) < 0 || prepare_masks(s) < 0) {
		config_free(&cfg);
		return 126;
	}
	run_probe(s);
	Plan plan;
	StrVec plan_argv;
	int rc = compile_request(s, &cfg, &req, &plan, &plan_argv, err, sizeof(err));
	config_free(&cfg);
	if (rc < 0) {
		fprintf(stderr, "sandboxd: %s\n", err);
		return 1;
	}
	plan_free(&plan);
	if (is_print_only) {
		for (size_t i = 0; i < plan_argv.count; i++)
			printf("%s%c", plan_argv.items[i], i + 1 < plan_argv.count ? ' ' : '\n');
		strvec_free(&plan_argv);
		return 0;
	}
	/* The launcher (or, unwrapped, the command: a bare name is looked up on PATH) takes over,
	 * in the directory asked for either way. */
	if (chdir(req.cwd) < 0) {
		fprintf(stderr, "sandboxd: %s: %s\n", req.cwd, strerror(errno));
		strvec_free(&plan_argv);
		return 126;
	}
	execvp(plan_argv.items[0], plan_argv.items);
	int saved = errno;
	fprintf(stderr, "sandboxd: %s: %s\n", plan_argv.items[0], strerror(saved));
	strvec_free(&plan_argv);
	return saved == ENOENT ? 127 : 126;
}

/* --- sandboxd --probe -------------------------------------------------------------------------- */

static int probe_main(Sandboxd *s)
{
	log_init("sandboxd", LOG_LEVEL_WARN);
	Config cfg = { 0 };
	char err[512] = "";
	if (config_load(&cfg, err, sizeof(err)) < 0 || read_settings(&cfg, s) < 0) {
		fprintf(stderr, "sandboxd: %s\n", err);
		config_free(&cfg);
		return 2;
	}
	config_free(&cfg);
	run_probe(s);
	json_t *json = probe_to_json(&s->probe);
	json_object_set_new(json, "launcherSetting", json_string(s->launcher_setting));
	char *text = json_dumps(json, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(json);
	if (!text)
		return 1;
	puts(text);
	free(text);
	return s->is_refusing ? 1 : 0;
}

/* --- the daemon -------------------------------------------------------------------------------- */

/*
 * The probe runs bwrap, which needs system calls (exec, mount, namespaces, netlink) the daemon's
 * allow-list refuses. So at start a child forked before the filter goes on probes once and hands
 * the result back; later probes (SIGHUP) run nothing: see probe_refresh().
 */
static int probe_in_child(Sandboxd *s)
{
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(pair[0]);
		close(pair[1]);
		return -errno;
	}
	if (pid == 0) {
		/*
		 * Unprivileged user namespaces are all the trial runs need. Run as root, bwrap maps
		 * uid 0 into its namespace, which the kernel allows only with CAP_SETFCAP: that one
		 * capability stays, nothing else.
		 */
		static const cap_value_t root_keep[] = { CAP_SETFCAP };
		close(pair[0]);
		if (daemon_confine("sandboxd prober", root_keep, geteuid() == 0 ? 1 : 0) < 0)
			_exit(1);
		run_probe(s);
		bool sent = send(pair[1], &s->probe, sizeof(s->probe), MSG_NOSIGNAL) == (ssize_t)sizeof(s->probe) &&
			    send(pair[1], &s->is_refusing, sizeof(s->is_refusing), MSG_NOSIGNAL) ==
				    (ssize_t)sizeof(s->is_refusing);
		_exit(sent ? 0 : 1);
	}
	close(pair[1]);
	Probe fresh;
	bool is_refusing;
	int rc = recv(pair[0], &fresh, sizeof(fresh), 0) == (ssize_t)sizeof(fresh) &&
				 recv(pair[0], &is_refusing, sizeof(is_refusing), 0) == (ssize_t)sizeof(is_refusing)
			 ? 0
			 : -EIO;
	close(pair[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (rc == 0) {
		s->probe = fresh;
		s->is_refusing = is_refusing;
	}
	return rc;
}

static void log_probe(const Sandboxd *s)
{
	log_info("probe: launcher %s, bwrap %s%s, user namespaces %s, landlock ABI %d",
		 probe_launcher_name(s->probe.launcher), s->probe.has_bwrap ? s->probe.bwrap : "none",
		 s->probe.has_bwrap && !s->probe.bwrap_has_argv0 ? " (no --argv0)" : "",
		 s->probe.has_user_namespaces ? "yes" : "no", s->probe.landlock_abi);
	for (size_t i = 0; i < s->probe.warning_count; i++)
		log_warn("%s", s->probe.warnings[i]);
}

/* SIGHUP: the configuration may name another launcher or bwrap, or the host may have changed. */
static void refresh_probe(Sandboxd *s)
{
	char cwd[PATH_MAX];
	ProbeOptions opts = probe_options(s, cwd, sizeof(cwd));
	s->is_refusing = probe_refresh(&s->probe, &opts) < 0;
	log_probe(s);
}

static int copy_text(const msgpack_object *params, const char *key, size_t max, char **out)
{
	const char *text;
	size_t len;
	int rc = mp_get_str(params, key, max, &text, &len);
	if (rc < 0)
		return rc;
	if (memchr(text, '\0', len))
		return -EINVAL;
	*out = strndup(text, len);
	return *out ? 0 : -ENOMEM;
}

static void free_command(char **command)
{
	for (size_t i = 0; command && command[i]; i++)
		free(command[i]);
	free(command);
}

static int copy_command(const msgpack_object *params, char ***out)
{
	const msgpack_object *array = mp_map_find(params, "command");
	if (!array || array->type != MSGPACK_OBJECT_ARRAY || array->via.array.size == 0 ||
	    array->via.array.size > PLAN_MAX_ARGS)
		return -EINVAL;
	char **command = calloc(array->via.array.size + 1, sizeof(*command));
	if (!command)
		return -ENOMEM;
	for (uint32_t i = 0; i < array->via.array.size; i++) {
		const msgpack_object *item = &array->via.array.ptr[i];
		if (item->type != MSGPACK_OBJECT_STR || memchr(item->via.str.ptr, '\0', item->via.str.size) ||
		    !(command[i] = strndup(item->via.str.ptr, item->via.str.size))) {
			free_command(command);
			return -EINVAL;
		}
	}
	*out = command;
	return 0;
}

static int reply_error(Daemon *d, const Envelope *req, int32_t status, const char *message)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "message", message);
	int rc = daemon_reply(d, req, status, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	return rc;
}

static int reply_plan(Daemon *d, const Envelope *req, const Plan *plan, const StrVec *argv, const Probe *probe)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	mp_pack_kv_str(&pk, "launcher", plan->is_unwrapped ? "none" : probe_launcher_name(probe->launcher));
	mp_pack_kv_str(&pk, "cwd", plan->cwd);
	mp_pack_cstr(&pk, "argv");
	msgpack_pack_array(&pk, argv->count);
	for (size_t i = 0; i < argv->count; i++)
		mp_pack_cstr(&pk, argv->items[i]);
	int rc = daemon_reply(d, req, 0, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	return rc;
}

/* "plan" {cwd, command, policy? (JSON text), profile?, tmpdir?, workspace?} -> {launcher, cwd, argv} */
static int sandboxd_plan(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Sandboxd *s = ctx;
	char *cwd = NULL, *policy = NULL, *profile = NULL, *tmpdir = NULL, *workspace = NULL, **command = NULL;
	int rc = copy_text(params, "cwd", AGENTD_PATH_MAX - 1, &cwd);
	if (rc == -ENOENT)
		rc = -EINVAL; /* cwd and command are required */
	if (rc == 0)
		rc = copy_command(params, &command);
	if (rc == 0 && (rc = copy_text(params, "policy", PLAN_MAX_BODY, &policy)) == -ENOENT)
		rc = 0;
	if (rc == 0 && (rc = copy_text(params, "profile", 256, &profile)) == -ENOENT)
		rc = 0;
	if (rc == 0 && (rc = copy_text(params, "tmpdir", AGENTD_PATH_MAX - 1, &tmpdir)) == -ENOENT)
		rc = 0;
	if (rc == 0 && (rc = copy_text(params, "workspace", AGENTD_PATH_MAX - 1, &workspace)) == -ENOENT)
		rc = 0;
	if (rc == 0 && (!path_is_normal_absolute(cwd) || (workspace && !path_is_normal_absolute(workspace))))
		rc = -EINVAL;
	if (rc == 0) {
		PlanRequest request = { cwd, workspace, policy, profile, tmpdir, command };
		Plan plan;
		StrVec argv;
		char err[1024] = "";
		rc = compile_request(s, daemon_config(d), &request, &plan, &argv, err, sizeof(err));
		if (rc == 0) {
			rc = reply_plan(d, req, &plan, &argv, &s->probe);
			strvec_free(&argv);
			plan_free(&plan);
		} else if (err[0]) {
			/* A refused policy (-EINVAL) or an unknown profile (-ENOENT): say which, and why. */
			rc = reply_error(d, req, rc, err);
		}
	}
	free(cwd);
	free(policy);
	free(profile);
	free(tmpdir);
	free(workspace);
	free_command(command);
	return rc;
}

static int sandboxd_health(Daemon *d, msgpack_packer *pk, void *ctx)
{
	Sandboxd *s = ctx;
	json_t *json = probe_to_json(&s->probe);
	if (!json)
		return -ENOMEM;
	json_object_set_new(json, "refusing", json_boolean(s->is_refusing));
	int rc = mp_pack_cstr(pk, "probe") == 0 && mpjson_pack(pk, json) == 0 ? 0 : -ENOMEM;
	json_decref(json);
	return rc;
}

static void announce_probe(Daemon *d, Sandboxd *s)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	if (sandboxd_health(d, &pk, s) == 0 && daemon_send_event(d, 0, "sandbox.probe", sbuf.data, sbuf.size) < 0)
		log_warn("could not tell agentd about the new probe");
	msgpack_sbuffer_destroy(&sbuf);
}

static int sandboxd_adopt_config(Daemon *d, const Config *fresh, void *ctx)
{
	Sandboxd *s = ctx;
	if (read_settings(fresh, s) < 0)
		return -EINVAL;
	/* SIGHUP lands here (start-up too, before the first probe): the host is probed again, and
	 * agentd told, so that new connections get the warnings of today's host. */
	if (s->has_probed) {
		refresh_probe(s);
		announce_probe(d, s);
	}
	return 0;
}

static int sandboxd_setup(Daemon *d, void *ctx)
{
	Sandboxd *s = ctx;
	if (locate_self(s) < 0 || prepare_masks(s) < 0)
		return -ENOENT;
	int rc = probe_in_child(s);
	if (rc < 0) {
		log_error("probing the host: %s", strerror(-rc));
		return rc;
	}
	s->has_probed = true;
	log_probe(s);
	/*
	 * The daemon itself only reads the filesystem and answers requests: plans are run by execd,
	 * probes by the prober child. Nothing of root's is needed here.
	 */
	return daemon_drop_privileges("sandboxd");
}

static void sandboxd_teardown(Daemon *d, void *ctx)
{
	Sandboxd *s = ctx;
	/* Running sandboxes hold their masks by inode already; a stopped suite leaves nothing behind. */
	unlink(s->empty_file);
	unlink(s->empty_readable_file);
	/* The lock directory stays: other instances' sandboxes use it, and every sandbox hides it
	 * (removing it would uncover it in those). */
	rmdir(s->mask_dir);
}

static const DaemonMethod sandboxd_methods[] = {
	{ "plan", PLAN_MAX_BODY, sandboxd_plan },
};

/* Removing the mask files at shutdown; asking for the landlock ABI on SIGHUP; making the lock
 * directory again when someone removed it (see usable_lock_dir()); listing directories for each
 * plan (CODEX_HOME's entries, what deny globs match, whether a mask's place is empty). */
static const char *const sandboxd_syscalls[] = { "unlink", "unlinkat", "rmdir",	    "landlock_create_ruleset",
						 "mkdir",  "mkdirat",  "getdents64" };

static Sandboxd sandboxd = { .launcher_setting = "auto", .bwrap_path = "/usr/bin/bwrap" };

static const DaemonSpec sandboxd_spec = {
	.name = "sandboxd",
	.summary = "probes the host and compiles sandbox policies into launch plans",
	.methods = sandboxd_methods,
	.method_count = sizeof(sandboxd_methods) / sizeof(sandboxd_methods[0]),
	.ctx = &sandboxd,
	.health_fields = sandboxd_health,
	.health_field_count = 1,
	.setup = sandboxd_setup,
	/* Compiling plans only reads the filesystem, which the base list allows but for listing
	 * directories; removing the mask files at shutdown is the one write. */
	.seccomp = { .extra_syscalls = sandboxd_syscalls,
		     .extra_count = sizeof(sandboxd_syscalls) / sizeof(sandboxd_syscalls[0]) },
	.adopt_config = sandboxd_adopt_config,
	.teardown = sandboxd_teardown,
};

int main(int argc, char **argv)
{
	char name[PATH_MAX];
	snprintf(name, sizeof(name), "%s", argv[0]);
	if (strcmp(basename(name), INNER_STAGE_NAME) == 0) {
		if (argc > 1 && strcmp(argv[1], "--launch") == 0)
			return builtin_launch_main(argc, argv);
		if (argc > 1 && strcmp(argv[1], "--supervise") == 0)
			return supervise_main(argc, argv);
		return inner_stage_main(argc, argv);
	}
	if (argc > 1 && strcmp(argv[1], "--probe") == 0)
		return probe_main(&sandboxd);
	if (argc > 1 && strcmp(argv[1], "run") == 0)
		return run_main(&sandboxd, argc - 1, argv + 1);
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		printf("usage: sandboxd run [--policy JSON | --profile NAME] [-C DIR] [--print] -- COMMAND [ARG...]\n"
		       "       sandboxd --probe\n"); /* the daemon's own usage follows */
	return daemon_main(&sandboxd_spec, argc, argv);
}
