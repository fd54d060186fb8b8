/* SPDX-License-Identifier: MIT */
/* sandbox.c - launch latency of `true` through each sandbox launcher against plain fork+exec and raw
 * bwrap, and the cost of compiling one policy into a launch plan. */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plan.h"
#include "policy.h"

#define DEFAULT_RUNS 200u
#define MAX_RUNS 100000u
#define WARMUP 10u
/* The rows take turns in this many blocks, so a burst of background load hits them all alike. */
#define ROUNDS 10u
#define DEFAULT_PLANS 2000u
#define PLAN_WARMUP 100u
#define TARGET_RATIO 1.5
#define TARGET_PLAN_US 100.0
/* How long an orphan may run on after its launcher exited before the next launch goes ahead anyway. */
#define ORPHAN_WAIT_MS 1000
/* Orphans still running after the last launch get this long to exit before SIGKILL. */
#define LEFTOVER_MS 2000
#define BWRAP "/usr/bin/bwrap"
#define TRUE_BIN "/bin/true"
#define HIDDEN_PROBE "socket"

extern char **environ;

typedef struct Stats {
	double p50_us, p99_us, max_us;
} Stats;

/* One way of running TRUE_BIN, and what its launches cost. */
typedef struct Row {
	const char *name;
	char **argv;
	double *us;
	size_t count;
	double cpu_us;	/* user+system of the reaped tree, over all measured launches */
	size_t orphans; /* processes reparented to us (we are a subreaper) and reaped here */
	Stats stats;
} Row;

enum { ROW_SPAWN, ROW_BWRAP_PLAIN, ROW_BWRAP_EQUIV, ROW_SYSTEM, ROW_BUILTIN, ROW_COUNT };

/* Everything the launches share: the plan's inputs and where the launchers' stderr goes. */
typedef struct Setup {
	char build[PATH_MAX];
	char helper_exe[PATH_MAX + 32];
	char helper_link[PATH_MAX + 32];
	char cwd[PATH_MAX];
	char runtime_dir[PATH_MAX];
	char lock_dir[PATH_MAX + 8];
	char empty_file[PATH_MAX];
	char empty_readable_file[PATH_MAX];
	char tmp[PATH_MAX];
	char roots[3][PATH_MAX];
	char stderr_path[PATH_MAX];
	const char *hidden[1];
	PlanEnv env;
	int devnull;
	int stderr_fd;
	bool has_bwrap;
} Setup;

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p)
		die("out of memory");
	return p;
}

static Stats stats_of(double *v, size_t n)
{
	doubles_sort(v, n);
	return (Stats){ percentile_sorted(v, n, 50), percentile_sorted(v, n, 99), v[n - 1] };
}

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "MISS";
}

static void path_join(const char *dir, const char *name, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
		die("path too long: %s/%s", dir, name);
}

static void file_create(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	if (fchmod(fd, mode) < 0) /* past the umask */
		die("chmod %s: %s", path, strerror(errno));
	close(fd);
}

static void dir_create(const char *path)
{
	if (mkdir(path, 0755) < 0)
		die("mkdir %s: %s", path, strerror(errno));
}

static double rusage_children_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- the temp tree: cwd, runtime dir, mask files ---- */

static void setup_tree(Setup *s)
{
	char dir[PATH_MAX];
	tmpdir_create();
	/* /tmp may be a symlink somewhere: the plan speaks canonical paths, so do we. */
	if (!realpath(tmpdir_path(), dir))
		die("realpath %s: %s", tmpdir_path(), strerror(errno));
	path_join(dir, "cwd", s->cwd, sizeof(s->cwd));
	path_join(dir, "rt", s->runtime_dir, sizeof(s->runtime_dir));
	snprintf(s->lock_dir, sizeof(s->lock_dir), "%s/locks", dir);
	path_join(dir, "empty-0000", s->empty_file, sizeof(s->empty_file));
	path_join(dir, "empty-0444", s->empty_readable_file, sizeof(s->empty_readable_file));
	path_join(dir, "tmp", s->tmp, sizeof(s->tmp));
	path_join(dir, "stderr.log", s->stderr_path, sizeof(s->stderr_path));
	dir_create(s->cwd);
	dir_create(s->runtime_dir);
	dir_create(s->tmp);
	for (unsigned i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "root%u", i);
		path_join(dir, name, s->roots[i], sizeof(s->roots[i]));
		dir_create(s->roots[i]);
	}
	/* A workspace as codex sees one: a repository with a few things the policies single out. */
	char path[PATH_MAX + 16];
	path_join(s->cwd, ".git", path, sizeof(path));
	dir_create(path);
	path_join(s->cwd, "secret", path, sizeof(path));
	dir_create(path);
	path_join(s->cwd, "vendor", path, sizeof(path));
	dir_create(path);
	path_join(s->runtime_dir, HIDDEN_PROBE, path, sizeof(path));
	file_create(path, 0600);
	file_create(s->empty_file, 0000);
	file_create(s->empty_readable_file, 0444);
	s->hidden[0] = s->runtime_dir;
	s->env = (PlanEnv){ .empty_file = s->empty_file,
			    .empty_readable_file = s->empty_readable_file,
			    .hidden_paths = s->hidden,
			    .hidden_count = 1 };
	s->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	s->stderr_fd = open(s->stderr_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (s->devnull < 0 || s->stderr_fd < 0)
		die("open /dev/null or %s: %s", s->stderr_path, strerror(errno));
}

/* ---- launching ---- */

static void stderr_show(const Setup *s, size_t max_bytes)
{
	char buf[2048];
	int fd = open(s->stderr_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, max_bytes < sizeof(buf) - 1 ? max_bytes : sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(stderr, "%s%s", buf, buf[n - 1] == '\n' ? "" : "\n");
	}
}

/*
 * Processes reparented to us (bwrap's monitor exits before its pid 1 does): reaped, counted. Waits
 * up to ORPHAN_WAIT_MS for the ones still running, so the next launch has the CPUs to itself and
 * every orphan is counted against the launcher that left it.
 */
static size_t orphans_reap(void)
{
	size_t count = 0;
	int status;
	double deadline = now_ms() + ORPHAN_WAIT_MS;
	for (;;) {
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid > 0) {
			count++;
			continue;
		}
		if ((pid < 0 && errno == ECHILD) || now_ms() > deadline)
			return count;
		usleep(50);
	}
}

/* Run @argv to completion (stdin, stdout /dev/null; stderr to the log). Return its wait status. */
static int launch(const Setup *s, char *const *argv, double *us)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, s->devnull, 0);
	posix_spawn_file_actions_adddup2(&fa, s->devnull, 1);
	posix_spawn_file_actions_adddup2(&fa, s->stderr_fd, 2);
	pid_t pid;
	int status;
	double t0 = now_us();
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	if (rc == 0)
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				die("waitpid %d: %s", (int)pid, strerror(errno));
	*us = now_us() - t0;
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die("posix_spawn %s: %s", argv[0], strerror(rc));
	return status;
}

static void launch_ok(const Setup *s, const char *name, char *const *argv, double *us)
{
	int status = launch(s, argv, us);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench/sandbox: %s: ", name);
		for (size_t i = 0; argv[i]; i++)
			fprintf(stderr, "%s%s", argv[i], argv[i + 1] ? " " : "\n");
		stderr_show(s, 2000);
		die("%s exited with status %#x", name, status);
	}
}

static void row_block(const Setup *s, Row *row, size_t count, bool is_measured)
{
	for (size_t i = 0; i < count; i++) {
		double us, cpu0 = rusage_children_us();
		launch_ok(s, row->name, row->argv, &us);
		size_t orphans = orphans_reap();
		if (is_measured) {
			row->us[row->count++] = us;
			row->cpu_us += rusage_children_us() - cpu0;
			row->orphans += orphans;
		}
	}
}

/* Wait for any descendant that outlived its launcher; SIGKILL what is left after LEFTOVER_MS. */
static size_t leftovers_reap(size_t *killed)
{
	size_t reaped = 0;
	int status;
	*killed = 0;
	for (int waited = 0; waited < LEFTOVER_MS; waited++) {
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0)
			return reaped; /* ECHILD: nobody left */
		if (pid > 0) {
			reaped++;
			continue;
		}
		sleep_ms(1);
	}
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[300], buf[512];
		int pid = atoi(e->d_name), ppid = 0;
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == (int)getpid()) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			(*killed)++;
		}
	}
	if (d)
		closedir(d);
	return reaped + *killed + orphans_reap();
}

/* ---- the plan under test ---- */

static json_t *json_parse(const char *text)
{
	json_error_t jerr;
	json_t *json = json_loads(text, 0, &jerr);
	if (!json)
		die("policy JSON: %s: %s", jerr.text, text);
	return json;
}

static void plan_for(const Setup *s, const char *policy_text, const char *tmpdir, Plan *plan)
{
	char err[1024];
	Policy policy;
	PolicyContext pc = { .cwd = s->cwd, .tmpdir = tmpdir, .home = NULL };
	json_t *json = json_parse(policy_text);
	policy_init(&policy);
	if (policy_from_json(&policy, &pc, json, err, sizeof(err)) < 0)
		die("policy_from_json %s: %s", policy_text, err);
	json_decref(json);
	if (plan_compile(plan, &policy, s->cwd, &s->env, err, sizeof(err)) < 0)
		die("plan_compile %s: %s", policy_text, err);
	policy_free(&policy);
}

static LaunchTarget target_system(const Setup *s)
{
	return (LaunchTarget){ BWRAP, false, s->helper_exe, s->helper_link, s->lock_dir };
}

static LaunchTarget target_builtin(const Setup *s)
{
	return (LaunchTarget){ NULL, false, s->helper_exe, s->helper_link, s->lock_dir };
}

static void render(const Plan *plan, const LaunchTarget *t, char *const *command, StrVec *argv)
{
	if (plan_render(plan, t, command, argv) < 0)
		die("plan_render: out of memory");
}

/*
 * Before timing anything, one launch per launcher proves the sandbox is one: the cwd is the plan's,
 * / is read-only, the hidden runtime dir is empty and only loopback is there.
 */
static void sandbox_check(const Setup *s, const Plan *plan, const LaunchTarget *t, const char *name)
{
	char script[3 * PATH_MAX + 256];
	snprintf(script, sizeof(script),
		 "test \"$(pwd)\" = '%s' || { echo cwd is $(pwd); exit 11; }; "
		 "test ! -w / || { echo / is writable; exit 12; }; "
		 "test ! -e '%s/" HIDDEN_PROBE "' || { echo %s is visible; exit 13; }; "
		 "test \"$(grep -c : /proc/net/dev)\" = 1 || { echo network is shared; exit 14; }",
		 s->cwd, s->runtime_dir, s->runtime_dir);
	char *command[] = { "/bin/sh", "-c", script, NULL };
	StrVec argv;
	double us;
	render(plan, t, command, &argv);
	int status = launch(s, argv.items, &us);
	orphans_reap();
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		stderr_show(s, 2000);
		die("%s: the sandbox check failed (status %#x)", name, status);
	}
	strvec_free(&argv);
}

/* ---- launch latency ---- */

typedef struct Launch {
	Row rows[ROW_COUNT];
	size_t n;
	size_t leftovers, killed;
	long stderr_bytes;
	size_t op_count;
} Launch;

static bool row_is_on(const Setup *s, int k)
{
	return s->has_bwrap || (k != ROW_BWRAP_PLAIN && k != ROW_BWRAP_EQUIV && k != ROW_SYSTEM);
}

static void measure_launch(Setup *s, size_t n, Launch *lat)
{
	static char *spawn_argv[] = { TRUE_BIN, NULL };
	static char *plain_argv[] = { BWRAP, "--ro-bind", "/", "/", TRUE_BIN, NULL };
	/* What a read-only plan asks of bwrap, less --new-session, --die-with-parent, the hidden runtime
	 * dir and the inner stage. */
	static char *equiv_argv[] = {
		BWRAP,	 "--unshare-user", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
		"--dev", "/dev",	   "--proc",	    "/proc",	     TRUE_BIN,	  NULL
	};
	char *command[] = { TRUE_BIN, NULL };
	Plan plan;
	StrVec system_argv = { 0 }, builtin_argv;
	plan_for(s, "{\"type\":\"readOnly\"}", NULL, &plan);
	lat->op_count = plan.op_count;
	LaunchTarget sys = target_system(s), builtin = target_builtin(s);
	if (s->has_bwrap) {
		render(&plan, &sys, command, &system_argv);
		sandbox_check(s, &plan, &sys, "system launcher");
	}
	render(&plan, &builtin, command, &builtin_argv);
	sandbox_check(s, &plan, &builtin, "built-in launcher");
	Row *rows = lat->rows;
	rows[ROW_SPAWN] = (Row){ .name = "floor: posix_spawn+waitpid " TRUE_BIN, .argv = spawn_argv };
	rows[ROW_BWRAP_PLAIN] = (Row){ .name = "floor: bwrap --ro-bind / / " TRUE_BIN, .argv = plain_argv };
	rows[ROW_BWRAP_EQUIV] =
		(Row){ .name = "floor: bwrap user+pid+net ns, ro /, dev, proc", .argv = equiv_argv };
	rows[ROW_SYSTEM] =
		(Row){ .name = "system launcher: bwrap + agentd-sandbox stage", .argv = system_argv.items };
	rows[ROW_BUILTIN] =
		(Row){ .name = "built-in launcher: agentd-sandbox --launch", .argv = builtin_argv.items };
	for (int k = 0; k < ROW_COUNT; k++) {
		rows[k].us = xcalloc(n, sizeof(double));
		if (row_is_on(s, k))
			row_block(s, &rows[k], WARMUP, false);
	}
	size_t block = (n + ROUNDS - 1) / ROUNDS;
	for (size_t off = 0; off < n; off += block) {
		size_t count = n - off < block ? n - off : block;
		for (int k = 0; k < ROW_COUNT; k++)
			if (row_is_on(s, k))
				row_block(s, &rows[k], count, true);
	}
	lat->n = n;
	for (int k = 0; k < ROW_COUNT; k++)
		if (rows[k].count)
			rows[k].stats = stats_of(rows[k].us, rows[k].count);
	lat->leftovers = leftovers_reap(&lat->killed);
	struct stat st;
	lat->stderr_bytes = stat(s->stderr_path, &st) == 0 ? (long)st.st_size : -1;
	strvec_free(&system_argv);
	strvec_free(&builtin_argv);
	plan_free(&plan);
}

/* ---- the compiler ---- */

/* json_loads, policy_from_json, plan_compile, plan_render, frees. */
enum { PH_PARSE, PH_POLICY, PH_COMPILE, PH_RENDER, PH_FREE, PH_COUNT };

typedef struct Compile {
	const char *name;
	char *text;
	const char *tmpdir;
	double *us;
	double phase_us[PH_COUNT]; /* sums over the measured iterations */
	size_t n;
	size_t op_count, argc;
	double mean_us;
	Stats stats;
} Compile;

static double compile_once(const Setup *s, Compile *c, bool is_measured)
{
	static char *command[] = { TRUE_BIN, NULL };
	char err[1024];
	double t[PH_COUNT + 1];
	json_error_t jerr;
	Policy policy;
	Plan plan;
	StrVec argv;
	PolicyContext pc = { .cwd = s->cwd, .tmpdir = c->tmpdir, .home = NULL };
	LaunchTarget target = target_system(s);
	t[0] = now_us();
	json_t *json = json_loads(c->text, 0, &jerr);
	t[1] = now_us();
	policy_init(&policy);
	int rc = json ? policy_from_json(&policy, &pc, json, err, sizeof(err)) : -EINVAL;
	json_decref(json);
	t[2] = now_us();
	if (rc == 0)
		rc = plan_compile(&plan, &policy, s->cwd, &s->env, err, sizeof(err));
	t[3] = now_us();
	if (rc == 0)
		rc = plan_render(&plan, &target, command, &argv);
	t[4] = now_us();
	if (rc < 0)
		die("%s: %s", c->name, json ? err : jerr.text);
	size_t op_count = plan.op_count, argc = argv.count;
	strvec_free(&argv);
	plan_free(&plan);
	policy_free(&policy);
	t[5] = now_us();
	if (is_measured) {
		for (int p = 0; p < PH_COUNT; p++)
			c->phase_us[p] += t[p + 1] - t[p];
		c->op_count = op_count;
		c->argc = argc;
	}
	return t[PH_COUNT] - t[0];
}

static void measure_compile(const Setup *s, Compile *c, size_t n)
{
	c->us = xcalloc(n, sizeof(double));
	for (size_t i = 0; i < PLAN_WARMUP; i++)
		compile_once(s, c, false);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += c->us[i] = compile_once(s, c, true);
	c->n = n;
	c->mean_us = sum / (double)n;
	c->stats = stats_of(c->us, n);
}

/* The request's text of the policy @json (taken). */
static char *policy_text(json_t *json)
{
	char *text = json ? json_dumps(json, JSON_COMPACT) : NULL;
	if (!text)
		die("out of memory");
	json_decref(json);
	return text;
}

static json_t *entry_special(const char *kind, const char *subpath, const char *access)
{
	json_t *value = subpath ? json_pack("{s:s, s:s}", "kind", kind, "subpath", subpath)
				: json_pack("{s:s}", "kind", kind);
	return json_pack("{s:{s:s, s:o}, s:s}", "path", "type", "special", "value", value, "access", access);
}

static json_t *entry_path(const char *dir, const char *name, const char *access)
{
	char path[PATH_MAX + 32];
	if (name)
		path_join(dir, name, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s", dir);
	return json_pack("{s:{s:s, s:s}, s:s}", "path", "type", "path", "path", path, "access", access);
}

static void compile_cases(const Setup *s, Compile cases[3])
{
	cases[0] =
		(Compile){ .name = "readOnly", .text = policy_text(json_pack("{s:s}", "type", "readOnly")) };
	cases[1] = (Compile){
		.name = "workspaceWrite, 3 writableRoots, TMPDIR",
		.text = policy_text(json_pack("{s:s, s:[s, s, s], s:b}", "type", "workspaceWrite",
					      "writableRoots", s->roots[0], s->roots[1], s->roots[2],
					      "networkAccess", 0)),
		.tmpdir = s->tmp,
	};
	/* The split form: a root, carve-outs both ways, and a deny over a file that does not exist. */
	json_t *entries =
		json_pack("[o, o, o, o, o, o, o, o]", entry_special("root", NULL, "read"),
			  entry_special("current_working_directory", NULL, "write"),
			  entry_special("slash_tmp", NULL, "write"), entry_special("tmpdir", NULL, "write"),
			  entry_special("current_working_directory", "secret", "deny"),
			  entry_path(s->cwd, "vendor", "read"), entry_path(s->roots[0], NULL, "write"),
			  entry_path(s->cwd, "missing.env", "deny"));
	cases[2] = (Compile){
		.name = "restricted, 8 split entries",
		.text = policy_text(json_pack("{s:s, s:s, s:o}", "kind", "restricted", "network",
					      "restricted", "entries", entries)),
		.tmpdir = s->tmp,
	};
}

/* ---- report ---- */

static void report_launch(const Setup *s, const Launch *lat)
{
	const Row *rows = lat->rows;
	printf("launch latency: N=%zu launches of %s per row (after %u warm-up), posix_spawn -> exit 0 "
	       "reaped;\n"
	       "rows take turns in %u blocks; the plan is readOnly for a temp cwd (%zu ops, runtime dir "
	       "hidden);\n"
	       "cpu: user+system of the whole reaped tree per launch; orphans: launcher descendants left "
	       "to us\n",
	       lat->n, TRUE_BIN, WARMUP, ROUNDS, lat->op_count);
	printf("%-52s %10s %10s %10s %10s %7s\n", "launcher", "p50 us", "p99 us", "max us", "cpu us",
	       "orphans");
	for (int k = 0; k < ROW_COUNT; k++) {
		if (!rows[k].count) {
			printf("%-52s %10s   (no %s)\n", rows[k].name, "-", BWRAP);
			continue;
		}
		printf("%-52s %10.1f %10.1f %10.1f %10.1f %7zu\n", rows[k].name, rows[k].stats.p50_us,
		       rows[k].stats.p99_us, rows[k].stats.max_us, rows[k].cpu_us / (double)rows[k].count,
		       rows[k].orphans);
	}
	const Stats *builtin = &rows[ROW_BUILTIN].stats, *fork_exec = &rows[ROW_SPAWN].stats;
	if (s->has_bwrap) {
		const Stats *equiv = &rows[ROW_BWRAP_EQUIV].stats, *plain = &rows[ROW_BWRAP_PLAIN].stats;
		const Stats *sys = &rows[ROW_SYSTEM].stats;
		double ratio = builtin->p50_us / equiv->p50_us;
		printf("target: built-in p50 within %.1fx of raw bwrap (same namespaces and mounts) ... %s "
		       "(%.2fx; p99 %.2fx)\n",
		       TARGET_RATIO, verdict(ratio <= TARGET_RATIO), ratio, builtin->p99_us / equiv->p99_us);
		printf("  built-in vs bwrap --ro-bind / / alone: %.2fx p50, %.2fx p99\n",
		       builtin->p50_us / plain->p50_us, builtin->p99_us / plain->p99_us);
		printf("  system launcher vs raw bwrap (same namespaces and mounts): %.2fx p50, %.2fx p99; "
		       "vs "
		       "bwrap --ro-bind / / alone: %.2fx p50\n",
		       sys->p50_us / equiv->p50_us, sys->p99_us / equiv->p99_us, sys->p50_us / plain->p50_us);
		printf("  over plain posix_spawn: raw bwrap +%.0f us, system +%.0f us, built-in +%.0f us "
		       "(p50)\n",
		       equiv->p50_us - fork_exec->p50_us, sys->p50_us - fork_exec->p50_us,
		       builtin->p50_us - fork_exec->p50_us);
	} else {
		printf("target: built-in p50 within %.1fx of raw bwrap ... n/a (no %s); built-in is +%.0f us "
		       "over plain posix_spawn\n",
		       TARGET_RATIO, BWRAP, builtin->p50_us - fork_exec->p50_us);
	}
	size_t orphans = 0;
	for (int k = 0; k < ROW_COUNT; k++)
		orphans += rows[k].orphans;
	printf("  children: every launch reaped; %zu orphans reparented to this subreaper (reaped between "
	       "launches, untimed), %zu left after the last launch (%zu killed) ... %s\n",
	       orphans, lat->leftovers, lat->killed, verdict(lat->leftovers == 0));
	if (lat->stderr_bytes > 0) {
		printf("  the launchers wrote %ld bytes to stderr; the first of them:\n", lat->stderr_bytes);
		fflush(stdout);
		stderr_show(s, 600);
	}
}

static void report_compile(const Compile *cases, size_t count)
{
	static const char *const phases[] = { "parse", "policy", "compile", "render", "free" };
	printf("\npolicy compiler: %zu plans per policy (after %u warm-up), from the request's JSON text to "
	       "bwrap's argv and back to free memory\n",
	       cases[0].n, PLAN_WARMUP);
	printf("%-42s %8s %8s %8s %8s %4s %4s  mean us per phase:", "policy", "mean us", "p50 us", "p99 us",
	       "max us", "ops", "argc");
	for (int p = 0; p < PH_COUNT; p++)
		printf(" %s", phases[p]);
	printf("\n");
	bool ok = true;
	for (size_t i = 0; i < count; i++) {
		const Compile *c = &cases[i];
		printf("%-42s %8.1f %8.1f %8.1f %8.1f %4zu %4zu  ", c->name, c->mean_us, c->stats.p50_us,
		       c->stats.p99_us, c->stats.max_us, c->op_count, c->argc);
		for (int p = 0; p < PH_COUNT; p++)
			printf(" %.1f", c->phase_us[p] / (double)c->n);
		printf("\n");
		ok = ok && c->mean_us < TARGET_PLAN_US;
	}
	double worst = 0, worst_p99 = 0;
	for (size_t i = 0; i < count; i++) {
		worst = cases[i].mean_us > worst ? cases[i].mean_us : worst;
		worst_p99 = cases[i].stats.p99_us > worst_p99 ? cases[i].stats.p99_us : worst_p99;
	}
	/* "Under 100 us per plan": the time a plan takes on average, request JSON included. */
	printf("target: every policy under %.0f us per plan (mean) ... %s (worst mean %.1f us, worst p99 %.1f us)\n",
	       TARGET_PLAN_US, verdict(ok), worst, worst_p99);
}

/* ---- driver ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: sandbox [-n RUNS] [-c PLANS] [BUILD_DIR]   (BUILD_DIR holds sandboxd/sandboxd "
		"and sandboxd/agentd-sandbox;\n"
		"       it defaults to the directory above this binary's)\n");
	exit(2);
}

static void locate(Setup *s, const char *arg)
{
	char dir[PATH_MAX];
	if (arg) {
		snprintf(dir, sizeof(dir), "%s", arg);
	} else {
		self_path(dir, sizeof(dir));
		for (int up = 0; up < 2; up++) {
			char *slash = strrchr(dir, '/');
			if (slash)
				*slash = '\0';
		}
	}
	if (!realpath(dir[0] ? dir : "/", s->build))
		die("%s: %s", dir, strerror(errno));
	path_join(s->build, "sandboxd/sandboxd", s->helper_exe, sizeof(s->helper_exe));
	path_join(s->build, "sandboxd/" INNER_STAGE_NAME, s->helper_link, sizeof(s->helper_link));
	if (access(s->helper_exe, X_OK) < 0 || access(s->helper_link, X_OK) < 0)
		die("%s or %s: %s (run make first)", s->helper_exe, s->helper_link, strerror(errno));
	s->has_bwrap = access(BWRAP, X_OK) == 0;
}

int main(int argc, char **argv)
{
	die_prefix_set("bench/sandbox");
	size_t runs = DEFAULT_RUNS, plans = DEFAULT_PLANS;
	int opt;
	while ((opt = getopt(argc, argv, "n:c:h")) != -1) {
		if (opt == 'n' && (runs = strtoul(optarg, NULL, 10)) > 0 && runs <= MAX_RUNS)
			continue;
		if (opt == 'c' && (plans = strtoul(optarg, NULL, 10)) > 0 && plans <= MAX_RUNS)
			continue;
		usage();
	}
	if (argc - optind > 1)
		usage();
	static Setup s;
	locate(&s, optind < argc ? argv[optind] : NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A launcher's descendants that outlive it come to us, not to a pid 1 that may never reap. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	setup_tree(&s);
	static Launch lat;
	measure_launch(&s, runs, &lat);
	Compile cases[3];
	compile_cases(&s, cases);
	for (size_t i = 0; i < 3; i++)
		measure_compile(&s, &cases[i], plans);
	report_launch(&s, &lat);
	report_compile(cases, 3);
	const Row *rows = lat.rows;
	double worst_p99 = 0;
	for (size_t i = 0; i < 3; i++)
		worst_p99 = cases[i].stats.p99_us > worst_p99 ? cases[i].stats.p99_us : worst_p99;
	printf("RESULT sandbox spawn_p50_us=%.1f bwrap_plain_p50_us=%.1f bwrap_p50_us=%.1f "
	       "system_p50_us=%.1f "
	       "builtin_p50_us=%.1f builtin_ratio=%.2f system_ratio=%.2f plan_readonly_mean_us=%.1f "
	       "plan_worst_p99_us=%.1f\n",
	       rows[ROW_SPAWN].stats.p50_us, rows[ROW_BWRAP_PLAIN].stats.p50_us,
	       rows[ROW_BWRAP_EQUIV].stats.p50_us, rows[ROW_SYSTEM].stats.p50_us,
	       rows[ROW_BUILTIN].stats.p50_us,
	       s.has_bwrap ? rows[ROW_BUILTIN].stats.p50_us / rows[ROW_BWRAP_EQUIV].stats.p50_us : 0.0,
	       s.has_bwrap ? rows[ROW_SYSTEM].stats.p50_us / rows[ROW_BWRAP_EQUIV].stats.p50_us : 0.0,
	       cases[0].mean_us, worst_p99);
	for (int k = 0; k < ROW_COUNT; k++)
		free(lat.rows[k].us);
	for (size_t i = 0; i < 3; i++) {
		free(cases[i].text);
		free(cases[i].us);
	}
	close(s.devnull);
	close(s.stderr_fd);
	tmpdir_remove();
	return 0;
}
