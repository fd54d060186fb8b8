/* SPDX-License-Identifier: MIT */
/* exec_cli.c - `agentd exec`: one prompt, one turn, over a child agentd's app-server protocol. */
#include "exec_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "lines.h"

extern char **environ;

/* -c/--enable/--disable passed through: as many as agentd takes. */
#define EXEC_MAX_OVERRIDES 32
/* One message from the child; a longer one is a violation, not something to wait out. */
#define EXEC_MAX_LINE_BYTES (256u * 1024u * 1024u)
#define EXEC_MAX_PROMPT_BYTES (16u * 1024u * 1024u)
#define EXEC_READ_CHUNK_BYTES 65536u
/* Once its input closes, agentd stops its helpers (each gets 3 s before SIGKILL) and exits. */
#define EXEC_STOP_GRACE_MS 10000
#define EXEC_TERM_GRACE_MS 5000
/* A child that exited while its output stays open (it should not): how long to drain it. */
#define EXEC_DRAIN_AFTER_EXIT_MS 1000
/* Lines of a command's output shown in the human progress, as codex exec. */
#define EXEC_SHOWN_OUTPUT_LINES 20

#define JSONRPC_METHOD_NOT_FOUND (-32601)

typedef struct ExecOptions {
	/* "-c", "key=value", "--enable", "F", ...: the child's configuration flags, in order. */
	const char *child_args[2 * EXEC_MAX_OVERRIDES];
	size_t child_arg_count;
	const char *model;
	const char *sandbox;
	const char *approval;
	const char *output_path;
	const char *remote_path; /* --remote unix://PATH: a running agentd instead of a child */
	json_t *output_schema;	 /* --output-schema FILE: the JSON Schema the final answer must follow */
	/* `agentd exec resume [--last [--all] | ID] [PROMPT]`: a turn on a thread of before. */
	bool is_resume;
	bool is_resume_last; /* the thread updated last (of this directory unless --all) */
	bool is_resume_all;
	const char *resume_id;
	char *cwd;    /* absolute */
	char *prompt; /* from the command line or standard input */
	bool is_json;
	bool is_ephemeral;
} ExecOptions;

typedef struct ExecChild {
	pid_t pid;
	int to_fd;   /* the child's standard input */
	int from_fd; /* the child's standard output */
	bool is_reaped;
	int wait_status;
	char runtime_dir[PATH_MAX]; /* private to the child: its broker sockets; removed at the end */
} ExecChild;

typedef struct ExecSession {
	const ExecOptions *opts;
	ExecChild child;
	LineReader reader;
	int signal_fd; /* SIGINT, SIGTERM, SIGCHLD, read in the loop */
	int64_t next_id;
	int64_t waiting_id; /* the request exec_call() waits on, 0 for none */
	json_t *response;   /* its answer, once in */
	char *thread_id;
	char *turn_id;
	char *last_message; /* the text of the turn's last agentMessage item */
	char *turn_status;  /* turn/completed's status */
	char *turn_error;   /* and its error message, if any */
	int64_t tokens_used;
	bool has_tokens;
	bool has_initialize_answer;
	bool is_turn_requested;
	bool is_turn_done;
	bool is_interrupt_sent;
	unsigned denied_count; /* approvals declined because nobody can give them */
	int err;	       /* the first failure, a negative errno; reason says what it was */
	char reason[1024];
} ExecSession;

/* --- helpers --------------------------------------------------------------------------------- */

static int64_t exec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *exec_strdup_or_null(const char *text)
{
	return text ? strdup(text) : NULL;
}

/* Records the session's first failure; later ones are its consequences. Return: the first. */
static int exec_fail(ExecSession *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int exec_fail(ExecSession *s, int err, const char *fmt, ...)
{
	if (s->err != 0)
		return s->err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	s->err = err;
	return err;
}

static const char *exec_string(const json_t *object, const char *key)
{
	return json_string_value(json_object_get(object, key));
}

/* @object's string @key, or @fallback when it is absent or not a string: for what is shown. */
static const char *exec_text_or(const json_t *object, const char *key, const char *fallback)
{
	const char *text = exec_string(object, key);
	return text ? text : fallback;
}

/* --- flags and prompt ------------------------------------------------------------------------ */

static void exec_usage(FILE *out)
{
	fprintf(out,
		"usage: agentd exec [options] [PROMPT | -]\n"
		"       agentd exec [options] resume [--last [--all] | THREAD_ID] [PROMPT | -]\n"
		"  Run PROMPT (absent or -: stdin) as one turn of a child `agentd --listen stdio://`;\n"
		"  progress goes to stderr, the final answer to stdout.\n"
		"  -m, --model MODEL               the thread's model\n"
		"  -s, --sandbox MODE              read-only | workspace-write | danger-full-access\n"
		"  -a, --ask-for-approval POLICY   untrusted | on-failure (default) | on-request | never;\n"
		"                                  nobody can approve: every approval asked is declined\n"
		"      --full-auto                 -s workspace-write -a on-request (unless given)\n"
		"      --dangerously-bypass-approvals-and-sandbox\n"
		"                                  -s danger-full-access -a never\n"
		"  -C, --cd DIR                    the thread's working directory (default: this one)\n"
		"      --output-schema FILE        a JSON Schema the final answer must follow\n"
		"      --skip-git-repo-check       accepted for codex exec's sake (agentd checks none)\n"
		"      --ephemeral                 keep no rollout of the thread\n"
		"      --json                      print every notification on stdout, one JSON a line\n"
		"  -o, --output-last-message FILE  also write the final answer to FILE\n"
		"  -c key=value, --enable F, --disable F\n"
		"                                  configuration overrides, passed to the child agentd\n"
		"      --remote unix://PATH        use the agentd listening there instead of a child\n"
		"resume: THREAD_ID, or --last: the thread of this directory updated last (--all: of any)\n"
		"exit status: 0 completed, 1 failed, interrupted or agentd error, 2 usage error,\n"
		"             3 completed but a command or patch was denied\n");
}

static bool exec_is_one_of(const char *value, const char *const *allowed)
{
	for (; *allowed; allowed++) {
		if (strcmp(value, *allowed) == 0)
			return true;
	}
	return false;
}

static int exec_add_child_flag(ExecOptions *opts, const char *flag, const char *value)
{
	if (opts->child_arg_count == 2 * EXEC_MAX_OVERRIDES) {
		fprintf(stderr, "agentd exec: at most %d -c/--enable/--disable values\n", EXEC_MAX_OVERRIDES);
		return -EINVAL;
	}
	opts->child_args[opts->child_arg_count++] = flag;
	opts->child_args[opts->child_arg_count++] = value;
	return 0;
}

/* Checks the values getopt cannot: the sandbox mode, the approval policy, the directory. */
static int exec_check_options(ExecOptions *opts, const char *cd)
{
	static const char *const sandboxes[] = { "read-only", "workspace-write", "danger-full-access", NULL };
	static const char *const policies[] = { "untrusted", "on-failure", "on-request", "never", NULL };
	if (opts->sandbox && !exec_is_one_of(opts->sandbox, sandboxes)) {
		fprintf(stderr, "agentd exec: -s %s: not read-only, workspace-write or danger-full-access\n",
			opts->sandbox);
		return -EINVAL;
	}
	if (!exec_is_one_of(opts->approval, policies)) {
		fprintf(stderr, "agentd exec: -a %s: not untrusted, on-failure, on-request or never\n",
			opts->approval);
		return -EINVAL;
	}
	opts->cwd = cd ? realpath(cd, NULL) : getcwd(NULL, 0);
	if (!opts->cwd) {
		fprintf(stderr, "agentd exec: %s: %s\n", cd ? cd : "the current directory", strerror(errno));
		return -EINVAL;
	}
	if (opts->output_path && !*opts->output_path) {
		fprintf(stderr, "agentd exec: --output-last-message needs a file name\n");
		return -EINVAL;
	}
	if (opts->remote_path && opts->child_arg_count > 0) {
		fprintf(stderr,
			"agentd exec: -c, --enable and --disable configure a child agentd; with --remote "
			"the server's own configuration applies\n");
		return -EINVAL;
	}
	return 0;
}

/* --remote's URL: only unix://PATH (the listener tells a JSON-lines client by its first byte). */
static int exec_take_remote(ExecOptions *opts, const char *url)
{
	static const char scheme[] = "unix://";
	struct sockaddr_un addr;
	size_t len = strlen(url) - (sizeof(scheme) - 1);
	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0 || len == 0 || len >= sizeof(addr.sun_path)) {
		fprintf(stderr, "agentd exec: --remote %s: expected unix://PATH (at most %zu bytes)\n", url,
			sizeof(addr.sun_path) - 1);
		return -EINVAL;
	}
	opts->remote_path = url + sizeof(scheme) - 1;
	return 0;
}

/* Unknown flags are named as `agentd exec` sees them; getopt would name "exec". */
static void exec_bad_flag(int optopt_value, const char *arg)
{
	if (optopt_value > 0 && optopt_value < 256)
		fprintf(stderr, "agentd exec: -%c: unknown option or missing value\n", optopt_value);
	else
		fprintf(stderr, "agentd exec: %s: unknown option or missing value\n", arg);
	fprintf(stderr, "agentd exec: see agentd exec --help\n");
}

/* The shortcuts for a sandbox and an approval policy together, as codex exec has them. */
typedef struct ExecModes {
	bool is_full_auto;
	bool is_bypass;
} ExecModes;

static int exec_apply_modes(ExecOptions *opts, const ExecModes *modes)
{
	if (modes->is_bypass) {
		if (modes->is_full_auto || opts->sandbox || opts->approval) {
			fprintf(stderr,
				"agentd exec: --dangerously-bypass-approvals-and-sandbox goes with none of "
				"--full-auto, -s and -a\n");
			return -EINVAL;
		}
		opts->sandbox = "danger-full-access";
		opts->approval = "never";
	}
	if (modes->is_full_auto) {
		opts->sandbox = opts->sandbox ? opts->sandbox : "workspace-write";
		opts->approval = opts->approval ? opts->approval : "on-request";
	}
	/* By default agentd itself notices a sandbox denial and asks (then declined: exit 3). */
	opts->approval = opts->approval ? opts->approval : "on-failure";
	return 0;
}

/* [PROMPT], or `resume` [THREAD_ID] [PROMPT]; an absent PROMPT is standard input ("-"). */
static int exec_take_positionals(int argc, char **argv, ExecOptions *opts, const char **prompt_arg)
{
	int at = 0;
	if (argc > 0 && strcmp(argv[0], "resume") == 0) {
		opts->is_resume = true;
		at = 1;
		if (!opts->is_resume_last) {
			if (at == argc) {
				fprintf(stderr, "agentd exec: resume needs a THREAD_ID or --last\n");
				return -EINVAL;
			}
			opts->resume_id = argv[at++];
		}
	} else if (opts->is_resume_last || opts->is_resume_all) {
		fprintf(stderr, "agentd exec: --last and --all go with resume\n");
		return -EINVAL;
	}
	if (opts->is_resume_all && !opts->is_resume_last) {
		fprintf(stderr, "agentd exec: --all goes with --last\n");
		return -EINVAL;
	}
	if (argc - at > 1) {
		fprintf(stderr, "agentd exec: one PROMPT only (quote it), not %d arguments\n", argc - at);
		return -EINVAL;
	}
	*prompt_arg = at < argc ? argv[at] : "-";
	return 0;
}

/* --output-schema FILE: a JSON object, checked here so that a bad file costs no agentd. */
static int exec_load_output_schema(ExecOptions *opts, const char *path)
{
	if (!path)
		return 0;
	json_error_t err;
	opts->output_schema = json_load_file(path, 0, &err);
	if (!json_is_object(opts->output_schema)) {
		fprintf(stderr, "agentd exec: --output-schema %s: %s\n", path,
			opts->output_schema ? "not a JSON object" : err.text);
		json_decref(opts->output_schema);
		opts->output_schema = NULL;
		return -EINVAL;
	}
	return 0;
}

/* Parses everything after "exec". Return: 0, 1 when --help was answered, or -EINVAL. */
static int exec_parse_flags(int argc, char **argv, ExecOptions *opts, const char **prompt_arg)
{
	enum {
		OPT_EPHEMERAL = 256,
		OPT_JSON,
		OPT_ENABLE,
		OPT_DISABLE,
		OPT_REMOTE,
		OPT_OUTPUT_SCHEMA,
		OPT_FULL_AUTO,
		OPT_BYPASS,
		OPT_SKIP_GIT_CHECK,
		OPT_LAST,
		OPT_ALL,
	};
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "enable", required_argument, NULL, OPT_ENABLE },
		{ "disable", required_argument, NULL, OPT_DISABLE },
		{ "model", required_argument, NULL, 'm' },
		{ "sandbox", required_argument, NULL, 's' },
		{ "ask-for-approval", required_argument, NULL, 'a' },
		{ "cd", required_argument, NULL, 'C' },
		{ "ephemeral", no_argument, NULL, OPT_EPHEMERAL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "output-last-message", required_argument, NULL, 'o' },
		{ "remote", required_argument, NULL, OPT_REMOTE },
		{ "output-schema", required_argument, NULL, OPT_OUTPUT_SCHEMA },
		{ "full-auto", no_argument, NULL, OPT_FULL_AUTO },
		{ "dangerously-bypass-approvals-and-sandbox", no_argument, NULL, OPT_BYPASS },
		{ "skip-git-repo-check", no_argument, NULL, OPT_SKIP_GIT_CHECK },
		{ "last", no_argument, NULL, OPT_LAST },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cd = NULL, *schema_path = NULL;
	ExecModes modes = { 0 };
	int opt, rc = 0;
	opterr = 0;
	while (rc == 0 && (opt = getopt_long(argc, argv, ":c:m:s:a:C:o:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			rc = exec_add_child_flag(opts, "-c", optarg);
			break;
		case OPT_ENABLE:
			rc = exec_add_child_flag(opts, "--enable", optarg);
			break;
		case OPT_DISABLE:
			rc = exec_add_child_flag(opts, "--disable", optarg);
			break;
		case 'm':
			opts->model = optarg;
			break;
		case 's':
			opts->sandbox = optarg;
			break;
		case 'a':
			opts->approval = optarg;
			break;
		case 'C':
			cd = optarg;
			break;
		case 'o':
			opts->output_path = optarg;
			break;
		case OPT_EPHEMERAL:
			opts->is_ephemeral = true;
			break;
		case OPT_JSON:
			opts->is_json = true;
			break;
		case OPT_REMOTE:
			rc = exec_take_remote(opts, optarg);
			break;
		case OPT_OUTPUT_SCHEMA:
			schema_path = optarg;
			break;
		case OPT_FULL_AUTO:
			modes.is_full_auto = true;
			break;
		case OPT_BYPASS:
			modes.is_bypass = true;
			break;
		case OPT_SKIP_GIT_CHECK: /* codex exec refuses to run outside a git repository; agentd never
					    does */
			break;
		case OPT_LAST:
			opts->is_resume_last = true;
			break;
		case OPT_ALL:
			opts->is_resume_all = true;
			break;
		case 'h':
			exec_usage(stdout);
			return 1;
		default:
			exec_bad_flag(optopt, argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (rc < 0 || (rc = exec_take_positionals(argc - optind, argv + optind, opts, prompt_arg)) < 0 ||
	    (rc = exec_apply_modes(opts, &modes)) < 0 ||
	    (rc = exec_load_output_schema(opts, schema_path)) < 0)
		return rc;
	return exec_check_options(opts, cd);
}

/* All of standard input as a string, or NULL with @err set. */
static char *exec_read_stdin(int *err)
{
	size_t len = 0, cap = 8192;
	char *text = malloc(cap);
	*err = -ENOMEM;
	if (!text)
		return NULL;
	if (isatty(STDIN_FILENO))
		fprintf(stderr, "Reading prompt from stdin...\n");
	for (;;) {
		if (len + 1 == cap) {
			char *grown = cap <= EXEC_MAX_PROMPT_BYTES ? realloc(text, 2 * cap) : NULL;
			if (!grown) {
				*err = cap > EXEC_MAX_PROMPT_BYTES ? -EFBIG : -ENOMEM;
				free(text);
				return NULL;
			}
			text = grown;
			cap *= 2;
		}
		ssize_t n = read(STDIN_FILENO, text + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err = -errno;
			free(text);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	return text;
}

static bool exec_is_blank(const char *text)
{
	for (; *text; text++) {
		if (*text != ' ' && *text != '\t' && *text != '\n' && *text != '\r')
			return false;
	}
	return true;
}

/* The prompt: @arg itself, or standard input for "-". A blank one is a usage error. */
static int exec_take_prompt(ExecOptions *opts, const char *arg)
{
	if (strcmp(arg, "-") != 0) {
		opts->prompt = strdup(arg);
		if (!opts->prompt)
			return -ENOMEM;
	} else {
		int rc;
		opts->prompt = exec_read_stdin(&rc);
		if (!opts->prompt) {
			fprintf(stderr, "agentd exec: cannot read the prompt from stdin: %s\n",
				strerror(-rc));
			return rc;
		}
	}
	if (exec_is_blank(opts->prompt)) {
		fprintf(stderr, "agentd exec: the prompt is empty\n");
		return -EINVAL;
	}
	return 0;
}

static void exec_options_free(ExecOptions *opts)
{
	json_decref(opts->output_schema);
	free(opts->cwd);
	free(opts->prompt);
}

/* --- the child ------------------------------------------------------------------------------- */

/* A runtime directory of its own: the child's broker must not meet a running agentd's sockets. */
static int exec_runtime_dir_make(ExecChild *c)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	/* Short: nng's ipc socket paths must fit in 107 bytes. */
	if (!base || !*base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode))
		base = "/tmp";
	if (snprintf(c->runtime_dir, sizeof(c->runtime_dir), "%s/agentd-exec.XXXXXX", base) >=
	    (int)sizeof(c->runtime_dir))
		return -ENAMETOOLONG;
	if (!mkdtemp(c->runtime_dir)) {
		int err = -errno;
		c->runtime_dir[0] = '\0';
		return err;
	}
	return 0;
}

static int exec_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	/* A positive errno stops the walk; nftw() itself fails with -1. */
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? errno : 0;
}

/* The directory and what the child left in it (sandboxd's sandbox/, sockets of a killed child). */
static void exec_runtime_dir_remove(ExecChild *c)
{
	if (!c->runtime_dir[0])
		return;
	/* Depth first, never following a link: only what is inside goes. */
	int rc = nftw(c->runtime_dir, exec_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	if (rc != 0)
		fprintf(stderr, "agentd exec: cannot remove %s: %s\n", c->runtime_dir,
			strerror(rc > 0 ? rc : errno));
	c->runtime_dir[0] = '\0';
}

/* This binary: /proc/self/exe, else argv[0] (found in PATH by posix_spawnp when it has no '/'). */
static void exec_self_path(const char *argv0, char *out, size_t out_len, bool *is_path_search)
{
	ssize_t n = readlink("/proc/self/exe", out, out_len - 1);
	*is_path_search = false;
	if (n > 0) {
		out[n] = '\0';
		return;
	}
	snprintf(out, out_len, "%s", argv0);
	*is_path_search = strchr(argv0, '/') == NULL;
}

/* environ with AGENTD_RUNTIME_DIR replaced by @runtime_var; the strings stay environ's. */
static char **exec_child_env(char *runtime_var)
{
	/* The daemons' info lines would drown the progress: only errors, unless the caller chose a
	 * level (AGENTD_LOG_LEVEL, or -c agentd.log_level for agentd itself). */
	static char quiet[] = "AGENTD_LOG_LEVEL=error";
	size_t count = 0, n = 0;
	while (environ[count])
		count++;
	char **env = calloc(count + 3, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		if (strncmp(environ[i], "AGENTD_RUNTIME_DIR=", 19) != 0)
			env[n++] = environ[i];
	}
	env[n++] = runtime_var;
	if (!getenv("AGENTD_LOG_LEVEL"))
		env[n] = quiet;
	return env;
}

static int exec_spawn_attr(posix_spawnattr_t *attr)
{
	sigset_t none, defaults;
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGCHLD);
	int rc = posix_spawnattr_init(attr);
	if (rc != 0)
		return -rc;
	/* Its own process group: a terminal's ^C reaches only us, and we turn it into turn/interrupt. */
	rc = posix_spawnattr_setflags(attr,
				      POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (rc == 0)
		rc = posix_spawnattr_setpgroup(attr, 0);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(attr, &none);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(attr, &defaults);
	if (rc != 0)
		posix_spawnattr_destroy(attr);
	return -rc;
}

static void exec_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Starts `agentd --listen stdio:// [overrides]` with its stdin and stdout on pipes to us. */
static int exec_child_spawn(ExecChild *c, const ExecOptions *opts, const char *argv0)
{
	static const char *const head[] = { "--listen", "stdio://" };
	const size_t head_count = sizeof(head) / sizeof(head[0]);
	char exe[PATH_MAX], runtime_var[PATH_MAX + 32];
	const char *argv[1 + sizeof(head) / sizeof(head[0]) + 2 * EXEC_MAX_OVERRIDES + 1];
	int to_child[2] = { -1, -1 }, from_child[2] = { -1, -1 };
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	bool is_path_search;
	char **env = NULL;
	size_t argc = 0;
	int rc = exec_runtime_dir_make(c);
	if (rc < 0)
		return rc;
	exec_self_path(argv0, exe, sizeof(exe), &is_path_search);
	argv[argc++] = exe;
	for (size_t i = 0; i < head_count; i++)
		argv[argc++] = head[i];
	for (size_t i = 0; i < opts->child_arg_count; i++)
		argv[argc++] = opts->child_args[i];
	argv[argc] = NULL;
	snprintf(runtime_var, sizeof(runtime_var), "AGENTD_RUNTIME_DIR=%s", c->runtime_dir);
	env = exec_child_env(runtime_var);
	if (!env)
		return -ENOMEM;
	if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out_pipes;
	}
	rc = exec_spawn_attr(&attr);
	if (rc < 0)
		goto out_pipes;
	rc = -posix_spawn_file_actions_init(&actions);
	if (rc == 0) {
		/* dup2 clears close-on-exec on 0 and 1; the pipes' other ends close at exec. */
		rc = -posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
		if (rc == 0)
			rc = -posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
		if (rc == 0)
			rc = -(is_path_search ? posix_spawnp : posix_spawn)(&c->pid, exe, &actions, &attr,
									    (char *const *)argv, env);
		posix_spawn_file_actions_destroy(&actions);
	}
	posix_spawnattr_destroy(&attr);
	if (rc == 0) {
		c->to_fd = to_child[1];
		c->from_fd = from_child[0];
		to_child[1] = from_child[0] = -1;
	}
out_pipes:
	exec_close_fd(&to_child[0]);
	exec_close_fd(&to_child[1]);
	exec_close_fd(&from_child[0]);
	exec_close_fd(&from_child[1]);
	free(env);
	return rc;
}

/* Return: true once the child is reaped (now or before). */
static bool exec_child_try_reap(ExecChild *c)
{
	if (c->is_reaped || c->pid <= 0)
		return true;
	pid_t got = waitpid(c->pid, &c->wait_status, WNOHANG);
	if (got == c->pid || (got < 0 && errno == ECHILD))
		c->is_reaped = true;
	return c->is_reaped;
}

/* Waits up to @timeout_ms for the child to be reaped, woken by SIGCHLD; SIGINT/SIGTERM end it early. */
static void exec_child_wait(ExecChild *c, int signal_fd, int timeout_ms)
{
	int64_t deadline = exec_now_ms() + timeout_ms;
	bool is_asked_to_hurry = false;
	while (!is_asked_to_hurry && !exec_child_try_reap(c)) {
		int64_t left = deadline - exec_now_ms();
		if (left <= 0)
			return;
		struct pollfd pfd = { signal_fd, POLLIN, 0 };
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		struct signalfd_siginfo info;
		while (read(signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info))
			is_asked_to_hurry |= info.ssi_signo != SIGCHLD;
	}
}

/*
 * Ends the child: its input closes (agentd stops its helpers and exits), its output closes (it
 * cannot block writing to us). One that is slow gets SIGTERM, then its process group SIGKILL;
 * a signal to us skips the wait at hand. The child is always reaped.
 */
static void exec_child_stop(ExecChild *c, int signal_fd)
{
	exec_close_fd(&c->to_fd);
	exec_close_fd(&c->from_fd);
	if (c->pid > 0 && !c->is_reaped) {
		exec_child_wait(c, signal_fd, EXEC_STOP_GRACE_MS);
		if (!exec_child_try_reap(c)) {
			fprintf(stderr, "agentd exec: agentd (pid %ld) is slow to stop: SIGTERM\n",
				(long)c->pid);
			kill(c->pid, SIGTERM);
			exec_child_wait(c, signal_fd, EXEC_TERM_GRACE_MS);
		}
		if (!exec_child_try_reap(c)) {
			fprintf(stderr, "agentd exec: agentd (pid %ld) did not stop: SIGKILL\n",
				(long)c->pid);
			kill(-c->pid, SIGKILL);
			while (waitpid(c->pid, &c->wait_status, 0) < 0 && errno == EINTR)
				;
			c->is_reaped = true;
		}
	}
	exec_runtime_dir_remove(c);
}

/* " (agentd exited with status 1)" and the like, for a child that went away early. */
static void exec_child_describe_end(const ExecChild *c, char *out, size_t out_len)
{
	out[0] = '\0';
	if (!c->is_reaped || c->pid <= 0)
		return;
	if (WIFEXITED(c->wait_status))
		snprintf(out, out_len, " (agentd exited with status %d)", WEXITSTATUS(c->wait_status));
	else if (WIFSIGNALED(c->wait_status))
		snprintf(out, out_len, " (agentd killed by signal %d, %s)", WTERMSIG(c->wait_status),
			 strsignal(WTERMSIG(c->wait_status)));
}

/* --- JSON-RPC over the pipes --------------------------------------------------------------- */

static int exec_send(ExecSession *s, const json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return exec_fail(s, -ENOMEM, "out of memory");
	int rc = s->child.to_fd < 0 ? -EPIPE : fd_write_all(s->child.to_fd, text, strlen(text));
	if (rc == 0)
		rc = fd_write_all(s->child.to_fd, "\n", 1);
	free(text);
	if (rc < 0)
		return exec_fail(s, rc, "cannot write to agentd: %s", strerror(-rc));
	return 0;
}

/* Sends request @method with @params (taken, may be NULL). Return: its id, or a negative errno. */
static int64_t exec_send_request(ExecSession *s, const char *method, json_t *params)
{
	int64_t id = s->next_id++;
	json_t *msg = json_object();
	if (!msg || json_object_set_new(msg, "id", json_integer(id)) < 0 ||
	    json_object_set_new(msg, "method", json_string(method)) < 0 ||
	    (params && json_object_set_new(msg, "params", params) < 0)) {
		json_decref(msg);
		return exec_fail(s, -ENOMEM, "out of memory");
	}
	int rc = exec_send(s, msg);
	json_decref(msg);
	return rc < 0 ? rc : id;
}

static int exec_send_notification(ExecSession *s, const char *method)
{
	json_t *msg = json_pack("{s:s}", "method", method);
	if (!msg)
		return exec_fail(s, -ENOMEM, "out of memory");
	int rc = exec_send(s, msg);
	json_decref(msg);
	return rc;
}

static void exec_reply(ExecSession *s, json_t *id, json_t *result, json_t *error)
{
	json_t *msg = json_object();
	if (msg && json_object_set(msg, "id", id) == 0 &&
	    json_object_set_new(msg, result ? "result" : "error", result ? result : error) == 0)
		exec_send(s, msg);
	else
		exec_fail(s, -ENOMEM, "out of memory");
	json_decref(msg);
}

/* --- human progress (stderr) ------------------------------------------------------------------ */

/* The sandbox policy's type as the -s flag spells it. */
static const char *exec_sandbox_name(const json_t *policy)
{
	static const char *const names[][2] = {
		{ "readOnly", "read-only" },
		{ "workspaceWrite", "workspace-write" },
		{ "dangerFullAccess", "danger-full-access" },
		{ "externalSandbox", "external-sandbox" },
	};
	const char *type = exec_text_or(policy, "type", "?");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(type, names[i][0]) == 0)
			return names[i][1];
	}
	return type;
}

/* A policy is a name, or an object for the granular one. */
static const char *exec_approval_name(const json_t *approval)
{
	if (json_is_string(approval))
		return json_string_value(approval);
	return json_is_object(approval) ? "granular" : "?";
}

static void exec_show_header(const ExecSession *s, const json_t *started)
{
	fprintf(stderr, "agentd exec %s\n--------\n", PACKAGE_VERSION);
	fprintf(stderr, "workdir: %s\n", exec_text_or(started, "cwd", s->opts->cwd));
	fprintf(stderr, "model: %s\n", exec_text_or(started, "model", "?"));
	fprintf(stderr, "provider: %s\n", exec_text_or(started, "modelProvider", "?"));
	fprintf(stderr, "approval: %s\n", exec_approval_name(json_object_get(started, "approvalPolicy")));
	fprintf(stderr, "sandbox: %s\n", exec_sandbox_name(json_object_get(started, "sandbox")));
	fprintf(stderr, "thread id: %s\n--------\n", s->thread_id);
}

/* @text, at most EXEC_SHOWN_OUTPUT_LINES lines of it, then how many were left out. */
static void exec_show_lines(const char *text)
{
	size_t shown = 0, left_out = 0;
	const char *p = text;
	while (*p) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (shown < EXEC_SHOWN_OUTPUT_LINES) {
			fprintf(stderr, "%.*s\n", (int)len, p);
			shown++;
		} else {
			left_out++;
		}
		p += len + (end ? 1 : 0);
	}
	if (left_out)
		fprintf(stderr, "... (%zu more lines)\n", left_out);
}

static void exec_show_command(const json_t *item)
{
	const char *status = exec_text_or(item, "status", "ended");
	const char *output = exec_text_or(item, "aggregatedOutput", "");
	json_t *exit_code = json_object_get(item, "exitCode");
	json_t *duration = json_object_get(item, "durationMs");
	fprintf(stderr, "exec\n%s in %s\n", exec_text_or(item, "command", "?"),
		exec_text_or(item, "cwd", "?"));
	if (strcmp(status, "declined") == 0)
		fprintf(stderr, " declined");
	else if (json_is_integer(exit_code) && json_integer_value(exit_code) == 0)
		fprintf(stderr, " succeeded");
	else if (json_is_integer(exit_code))
		fprintf(stderr, " exited %lld", (long long)json_integer_value(exit_code));
	else
		fprintf(stderr, " %s", status);
	if (json_is_integer(duration))
		fprintf(stderr, " in %lldms", (long long)json_integer_value(duration));
	fprintf(stderr, ":\n");
	exec_show_lines(output);
}

/* A, D or M, as git status shows an added, deleted or updated file. */
static char exec_change_letter(const json_t *change)
{
	const char *kind = exec_text_or(json_object_get(change, "kind"), "type", "?");
	if (strcmp(kind, "add") == 0)
		return 'A';
	return strcmp(kind, "delete") == 0 ? 'D' : 'M';
}

static void exec_show_file_change(const json_t *item)
{
	size_t i;
	json_t *change;
	fprintf(stderr, "file update (%s)\n", exec_text_or(item, "status", "?"));
	json_array_foreach (json_object_get(item, "changes"), i, change)
		fprintf(stderr, "%c %s\n", exec_change_letter(change), exec_text_or(change, "path", "?"));
}

static void exec_show_user_message(const json_t *item)
{
	size_t i;
	json_t *part;
	fprintf(stderr, "user\n");
	json_array_foreach (json_object_get(item, "content"), i, part) {
		if (exec_string(part, "text"))
			fprintf(stderr, "%s\n", exec_string(part, "text"));
	}
}

static void exec_show_reasoning(const json_t *item)
{
	size_t i;
	json_t *summary;
	json_array_foreach (json_object_get(item, "summary"), i, summary) {
		if (json_is_string(summary))
			fprintf(stderr, "thinking\n%s\n", json_string_value(summary));
	}
}

static void exec_show_item(const json_t *item)
{
	const char *type = exec_string(item, "type");
	if (!type)
		return;
	if (strcmp(type, "userMessage") == 0)
		exec_show_user_message(item);
	else if (strcmp(type, "agentMessage") == 0)
		fprintf(stderr, "codex\n%s\n", exec_text_or(item, "text", ""));
	else if (strcmp(type, "commandExecution") == 0)
		exec_show_command(item);
	else if (strcmp(type, "fileChange") == 0)
		exec_show_file_change(item);
	else if (strcmp(type, "reasoning") == 0)
		exec_show_reasoning(item);
}

static void exec_show_error(const json_t *params)
{
	const char *message = exec_text_or(json_object_get(params, "error"), "message", "?");
	if (json_is_true(json_object_get(params, "willRetry")))
		fprintf(stderr, "stream error: %s; retrying\n", message);
	else
		fprintf(stderr, "ERROR: %s\n", message);
}

/* --- what the child sends -------------------------------------------------------------------- */

static void exec_on_item_completed(ExecSession *s, const json_t *params)
{
	const json_t *item = json_object_get(params, "item");
	const char *type = exec_string(item, "type");
	if (type && strcmp(type, "agentMessage") == 0) {
		char *text = strdup(exec_text_or(item, "text", ""));
		if (!text) {
			exec_fail(s, -ENOMEM, "out of memory");
			return;
		}
		free(s->last_message);
		s->last_message = text;
	}
	if (!s->opts->is_json)
		exec_show_item(item);
}

static void exec_on_turn_completed(ExecSession *s, const json_t *params)
{
	const json_t *turn = json_object_get(params, "turn");
	const char *id = exec_string(turn, "id");
	if (s->turn_id && id && strcmp(id, s->turn_id) != 0)
		return; /* not ours: exec starts one turn only */
	free(s->turn_status);
	free(s->turn_error);
	s->turn_status = exec_strdup_or_null(exec_string(turn, "status"));
	s->turn_error = exec_strdup_or_null(exec_string(json_object_get(turn, "error"), "message"));
	s->is_turn_done = true;
}

static void exec_on_notification(ExecSession *s, const char *method, const json_t *params, const char *line,
				 size_t len)
{
	if (s->opts->is_json) {
		/* Exactly as received: one notification, one line. */
		int rc = fd_write_all(STDOUT_FILENO, line, len);
		if (rc == 0)
			rc = fd_write_all(STDOUT_FILENO, "\n", 1);
		if (rc < 0)
			exec_fail(s, rc, "cannot write to stdout: %s", strerror(-rc));
	}
	if (strcmp(method, "item/completed") == 0) {
		exec_on_item_completed(s, params);
	} else if (strcmp(method, "turn/completed") == 0) {
		exec_on_turn_completed(s, params);
	} else if (strcmp(method, "thread/tokenUsage/updated") == 0) {
		json_t *total = json_object_get(
			json_object_get(json_object_get(params, "tokenUsage"), "total"), "totalTokens");
		s->has_tokens = json_is_integer(total);
		s->tokens_used = json_integer_value(total);
	} else if (strcmp(method, "error") == 0 && !s->opts->is_json) {
		exec_show_error(params);
	} else if (strcmp(method, "configWarning") == 0 && !s->opts->is_json) {
		fprintf(stderr, "warning: %s\n", exec_text_or(params, "summary", "?"));
	}
}

/* Nobody is there to approve: approvals are declined (and counted), anything else is unknown. */
static void exec_on_server_request(ExecSession *s, const char *method, const json_t *params, json_t *id)
{
	bool is_command = strcmp(method, "item/commandExecution/requestApproval") == 0;
	if (is_command || strcmp(method, "item/fileChange/requestApproval") == 0) {
		s->denied_count++;
		if (!s->opts->is_json && is_command)
			fprintf(stderr,
				"approval asked to run `%s`: denied (nobody can approve in exec mode)\n",
				exec_text_or(params, "command", "?"));
		else if (!s->opts->is_json)
			fprintf(stderr, "approval asked to apply a patch: denied (nobody can approve in exec "
					"mode)\n");
		exec_reply(s, id, json_pack("{s:s}", "decision", "decline"), NULL);
		return;
	}
	char message[256];
	snprintf(message, sizeof(message), "agentd exec cannot answer %s", method);
	exec_reply(s, id, NULL, json_pack("{s:i,s:s}", "code", JSONRPC_METHOD_NOT_FOUND, "message", message));
}

static void exec_on_response(ExecSession *s, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	if (!json_is_integer(id) || (!json_object_get(msg, "result") && !json_object_get(msg, "error"))) {
		exec_fail(s, -EPROTO, "agentd sent neither a request, a notification nor a response");
		return;
	}
	if (s->waiting_id == 0 || json_integer_value(id) != s->waiting_id)
		return; /* turn/interrupt's answer: nothing waits on it */
	json_decref(s->response);
	s->response = json_incref(msg);
}

static void exec_on_line(void *ctx, const char *line, size_t len)
{
	ExecSession *s = ctx;
	json_error_t error;
	if (s->err)
		return;
	json_t *msg = json_loadb(line, len, 0, &error);
	if (!json_is_object(msg)) {
		exec_fail(s, -EPROTO, "agentd sent a line that is not a JSON object (%s)", error.text);
		json_decref(msg);
		return;
	}
	const char *method = exec_string(msg, "method");
	json_t *id = json_object_get(msg, "id");
	json_t *params = json_object_get(msg, "params");
	if (method && id && !s->is_turn_done)
		exec_on_server_request(s, method, params, id);
	else if (method && !id && !s->is_turn_done) /* what follows turn/completed is not read */
		exec_on_notification(s, method, params, line, len);
	else if (!method)
		exec_on_response(s, msg);
	json_decref(msg);
}

static void exec_on_oversize(void *ctx, size_t len, const char *head, size_t head_len)
{
	(void)head;
	(void)head_len;
	exec_fail(ctx, -EMSGSIZE, "agentd sent a message of %zu bytes, more than %u", len,
		  EXEC_MAX_LINE_BYTES);
}

static bool exec_should_stop(void *ctx)
{
	const ExecSession *s = ctx;
	return s->err != 0;
}

/* --- the loop ----------------------------------------------------------------------------------- */

static void exec_on_interrupt_signal(ExecSession *s, uint32_t signo)
{
	if (!s->turn_id || s->is_interrupt_sent) {
		/* Nothing to interrupt yet, or asked twice: give up now. */
		exec_fail(s, -EINTR, "interrupted by %s", strsignal((int)signo));
		return;
	}
	json_t *params = json_pack("{s:s,s:s}", "threadId", s->thread_id, "turnId", s->turn_id);
	if (!params) {
		exec_fail(s, -ENOMEM, "out of memory");
		return;
	}
	s->is_interrupt_sent = true;
	if (!s->opts->is_json)
		fprintf(stderr, "%s: interrupting the turn (again to give up)\n", strsignal((int)signo));
	exec_send_request(s, "turn/interrupt", params);
}

static void exec_on_signals(ExecSession *s)
{
	struct signalfd_siginfo info;
	while (read(s->signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		if (info.ssi_signo == SIGCHLD)
			exec_child_try_reap(&s->child); /* its output's end is what counts; see exec_pump() */
		else
			exec_on_interrupt_signal(s, info.ssi_signo);
	}
}

static void exec_fail_child_gone(ExecSession *s)
{
	const char *stage = !s->has_initialize_answer ? "answering initialize"
			    : !s->is_turn_requested   ? "the turn started"
						      : "the turn completed";
	exec_fail(s, -EPIPE, "agentd closed the connection before %s", stage);
}

static int exec_read_child(ExecSession *s)
{
	char buf[EXEC_READ_CHUNK_BYTES];
	ssize_t n = read(s->child.from_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n < 0)
		return exec_fail(s, -errno, "cannot read from agentd: %s", strerror(errno));
	if (n == 0) {
		exec_fail_child_gone(s);
		return s->err;
	}
	if (line_reader_feed(&s->reader, buf, (size_t)n, exec_should_stop) < 0)
		return exec_fail(s, -ENOMEM, "out of memory");
	return s->err;
}

/* One round: what the child sent, the signals that came. Return: 0 or the session's failure. */
static int exec_pump(ExecSession *s)
{
	struct pollfd fds[2] = { { s->child.from_fd, POLLIN, 0 }, { s->signal_fd, POLLIN, 0 } };
	/* A child gone keeps us only while its output drains: never wait on it for ever. */
	int timeout_ms = s->child.is_reaped ? EXEC_DRAIN_AFTER_EXIT_MS : -1;
	int n = poll(fds, 2, timeout_ms);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0)
		return exec_fail(s, -errno, "poll: %s", strerror(errno));
	if (n == 0) {
		exec_fail_child_gone(s);
		return s->err;
	}
	if (fds[1].revents & POLLIN)
		exec_on_signals(s);
	if (s->err == 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
		exec_read_child(s);
	return s->err;
}

/* Request @method and wait for its answer. Return: 0 with @result (owned), or the failure. */
static int exec_call(ExecSession *s, const char *method, json_t *params, json_t **result)
{
	int64_t id = exec_send_request(s, method, params);
	if (id < 0)
		return (int)id;
	s->waiting_id = id;
	while (!s->response && s->err == 0)
		exec_pump(s);
	s->waiting_id = 0;
	if (s->err)
		return s->err;
	json_t *response = s->response;
	s->response = NULL;
	json_t *error = json_object_get(response, "error");
	if (error) {
		exec_fail(s, -EPROTO, "%s: %s", method, exec_text_or(error, "message", "error"));
	} else {
		*result = json_incref(json_object_get(response, "result"));
	}
	json_decref(response);
	return s->err;
}

/* --- the recipe ------------------------------------------------------------------------------- */

static int exec_initialize(ExecSession *s)
{
	json_t *result = NULL;
	json_t *params =
		json_pack("{s:{s:s,s:s}}", "clientInfo", "name", "agentd_exec", "version", PACKAGE_VERSION);
	if (!params)
		return exec_fail(s, -ENOMEM, "out of memory");
	int rc = exec_call(s, "initialize", params, &result);
	json_decref(result);
	if (rc < 0)
		return rc;
	s->has_initialize_answer = true;
	return exec_send_notification(s, "initialized");
}

/*
 * resume --last: the thread updated last, of this directory unless --all, from thread/list.
 * Return: 0 with *@out (the caller frees it), or the failure.
 */
static int exec_find_last_thread(ExecSession *s, char **out)
{
	json_t *result = NULL;
	json_t *params =
		json_pack("{s:i,s:s,s:s}", "limit", 1, "sortKey", "updated_at", "sortDirection", "desc");
	if (!params ||
	    (!s->opts->is_resume_all && json_object_set_new(params, "cwd", json_string(s->opts->cwd)) < 0)) {
		json_decref(params);
		return exec_fail(s, -ENOMEM, "out of memory");
	}
	int rc = exec_call(s, "thread/list", params, &result);
	if (rc < 0)
		return rc;
	*out = exec_strdup_or_null(exec_string(json_array_get(json_object_get(result, "data"), 0), "id"));
	json_decref(result);
	if (!*out)
		return exec_fail(s, -ENOENT, "resume --last: no thread to resume%s%s",
				 s->opts->is_resume_all ? "" : " in ",
				 s->opts->is_resume_all ? "" : s->opts->cwd);
	return 0;
}

/* thread/start, or thread/resume of the thread `resume` names, with the same settings. */
static int exec_start_thread(ExecSession *s)
{
	const ExecOptions *opts = s->opts;
	const char *method = opts->is_resume ? "thread/resume" : "thread/start";
	char *resume_id = NULL;
	json_t *result = NULL;
	if (opts->is_resume_last && exec_find_last_thread(s, &resume_id) < 0)
		return s->err;
	const char *thread_id = resume_id ? resume_id : opts->resume_id;
	json_t *params = json_pack("{s:s,s:s}", "cwd", opts->cwd, "approvalPolicy", opts->approval);
	if (!params || (opts->model && json_object_set_new(params, "model", json_string(opts->model)) < 0) ||
	    (opts->sandbox && json_object_set_new(params, "sandbox", json_string(opts->sandbox)) < 0) ||
	    (opts->is_ephemeral && json_object_set_new(params, "ephemeral", json_true()) < 0) ||
	    (thread_id && json_object_set_new(params, "threadId", json_string(thread_id)) < 0)) {
		json_decref(params);
		free(resume_id);
		return exec_fail(s, -ENOMEM, "out of memory");
	}
	free(resume_id);
	int rc = exec_call(s, method, params, &result);
	if (rc < 0)
		return rc;
	s->thread_id = exec_strdup_or_null(exec_string(json_object_get(result, "thread"), "id"));
	if (!s->thread_id)
		rc = exec_fail(s, -EPROTO, "%s: agentd answered no thread id", method);
	else if (!opts->is_json)
		exec_show_header(s, result);
	json_decref(result);
	return rc;
}

static int exec_start_turn(ExecSession *s)
{
	json_t *result = NULL;
	json_t *params = json_pack("{s:s,s:[{s:s,s:s,s:[]}]}", "threadId", s->thread_id, "input", "type",
				   "text", "text", s->opts->prompt, "text_elements");
	if (!params ||
	    (s->opts->output_schema && json_object_set(params, "outputSchema", s->opts->output_schema) < 0)) {
		json_decref(params);
		return exec_fail(s, -ENOMEM, "out of memory");
	}
	s->is_turn_requested = true;
	int rc = exec_call(s, "turn/start", params, &result);
	if (rc < 0)
		return rc;
	s->turn_id = exec_strdup_or_null(exec_string(json_object_get(result, "turn"), "id"));
	json_decref(result);
	if (!s->turn_id)
		return exec_fail(s, -EPROTO, "turn/start: agentd answered no turn id");
	return 0;
}

static int exec_run_turn(ExecSession *s)
{
	int rc = exec_initialize(s);
	if (rc == 0)
		rc = exec_start_thread(s);
	if (rc == 0)
		rc = exec_start_turn(s);
	while (rc == 0 && !s->is_turn_done)
		rc = exec_pump(s);
	return rc;
}

/* -o FILE: a temporary file beside it, renamed over it, so a reader sees all or nothing. */
static int exec_write_last_message(const char *path, const char *text)
{
	size_t path_len = strlen(path);
	char *tmp = malloc(path_len + sizeof(".XXXXXX"));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, path_len);
	memcpy(tmp + path_len, ".XXXXXX", sizeof(".XXXXXX"));
	int rc = 0, fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		free(tmp);
		return rc;
	}
	rc = fd_write_all(fd, text, strlen(text));
	if (rc == 0 && fchmod(fd, 0644) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int exec_print_answer(const char *answer)
{
	int rc = fd_write_all(STDOUT_FILENO, answer, strlen(answer));
	return rc < 0 ? rc : fd_write_all(STDOUT_FILENO, "\n", 1);
}

/* The turn's end in the open: the token count, the answer on stdout and in -o FILE. */
static int exec_deliver(ExecSession *s)
{
	const char *answer = s->last_message ? s->last_message : "";
	int rc;
	if (!s->opts->is_json && s->has_tokens)
		fprintf(stderr, "tokens used %lld\n", (long long)s->tokens_used);
	if (!s->opts->is_json && s->last_message && (rc = exec_print_answer(answer)) < 0)
		exec_fail(s, rc, "cannot write to stdout: %s", strerror(-rc));
	if (s->opts->output_path && (rc = exec_write_last_message(s->opts->output_path, answer)) < 0)
		exec_fail(s, rc, "cannot write %s: %s", s->opts->output_path, strerror(-rc));
	return s->err;
}

static int exec_conclude_failure(const ExecSession *s)
{
	char end[128];
	exec_child_describe_end(&s->child, end, sizeof(end));
	fprintf(stderr, "agentd exec: %s%s\n", s->reason, s->err == -EPIPE ? end : "");
	/* A child that refused its flags (-c, --enable) exits 2 before it answers: a usage error. */
	bool is_bad_flags = s->err == -EPIPE && !s->has_initialize_answer && s->child.is_reaped &&
			    WIFEXITED(s->child.wait_status) && WEXITSTATUS(s->child.wait_status) == 2;
	return is_bad_flags ? EXEC_STATUS_USAGE : EXEC_STATUS_FAILED;
}

/* The exit status, with the reason printed for any but 0. */
static int exec_conclude(const ExecSession *s)
{
	if (s->err)
		return exec_conclude_failure(s);
	if (!s->turn_status || strcmp(s->turn_status, "completed") != 0) {
		fprintf(stderr, "agentd exec: the turn %s%s%s\n", s->turn_status ? s->turn_status : "ended",
			s->turn_error ? ": " : "", s->turn_error ? s->turn_error : "");
		return EXEC_STATUS_FAILED;
	}
	if (s->denied_count > 0) {
		/* A command the sandbox refused, or a patch: agentd asked, and nobody can approve. */
		fprintf(stderr, "agentd exec: the turn completed, but %u approval%s denied\n",
			s->denied_count, s->denied_count == 1 ? " was" : "s were");
		return EXEC_STATUS_DENIED;
	}
	return EXEC_STATUS_COMPLETED;
}

/* SIGINT and SIGTERM become turn/interrupt, SIGCHLD notes the child's end: all read in the loop. */
static int exec_signals_open(sigset_t *previous)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, previous) < 0)
		return -errno;
	int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		int err = -errno;
		sigprocmask(SIG_SETMASK, previous, NULL);
		return err;
	}
	return fd;
}

static void exec_session_free(ExecSession *s)
{
	line_reader_free(&s->reader);
	json_decref(s->response);
	free(s->thread_id);
	free(s->turn_id);
	free(s->last_message);
	free(s->turn_status);
	free(s->turn_error);
}

/* --remote: one stream socket, read and written through the child's two descriptors. */
static int exec_connect(ExecChild *c, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	c->to_fd = fd;
	c->from_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (c->from_fd < 0) {
		int err = -errno;
		exec_close_fd(&c->to_fd);
		return err;
	}
	return 0;
}

static int exec_session_run(const ExecOptions *opts, const char *argv0)
{
	static const LineReaderEvents reader_events = { exec_on_line, exec_on_oversize };
	ExecSession s = { .opts = opts, .next_id = 1, .signal_fd = -1 };
	sigset_t previous;
	int status;
	s.child.to_fd = s.child.from_fd = -1;
	line_reader_init(&s.reader, EXEC_MAX_LINE_BYTES, &reader_events, &s);
	/* A child gone mid-write is an error return (EPIPE), never our death. */
	signal(SIGPIPE, SIG_IGN);
	s.signal_fd = exec_signals_open(&previous);
	if (s.signal_fd < 0) {
		fprintf(stderr, "agentd exec: signalfd: %s\n", strerror(-s.signal_fd));
		exec_session_free(&s);
		return EXEC_STATUS_FAILED;
	}
	int rc = opts->remote_path ? exec_connect(&s.child, opts->remote_path)
				   : exec_child_spawn(&s.child, opts, argv0);
	if (rc < 0 && opts->remote_path)
		exec_fail(&s, rc, "cannot connect to unix://%s: %s", opts->remote_path, strerror(-rc));
	else if (rc < 0)
		exec_fail(&s, rc, "cannot start agentd: %s", strerror(-rc));
	else
		exec_run_turn(&s);
	exec_child_stop(&s.child, s.signal_fd);
	if (s.err == 0)
		exec_deliver(&s);
	status = exec_conclude(&s);
	close(s.signal_fd);
	sigprocmask(SIG_SETMASK, &previous, NULL);
	exec_session_free(&s);
	return status;
}

int exec_cli_main(int argc, char **argv)
{
	ExecOptions opts = { 0 };
	const char *prompt_arg = NULL;
	/* getopt sees "exec" as the program name; argv[0] stays ours, to find this binary. */
	int rc = exec_parse_flags(argc - 1, argv + 1, &opts, &prompt_arg);
	if (rc == 0)
		rc = exec_take_prompt(&opts, prompt_arg);
	if (rc != 0) {
		exec_options_free(&opts);
		return rc > 0	       ? EXEC_STATUS_COMPLETED
		       : rc == -EINVAL ? EXEC_STATUS_USAGE
				       : EXEC_STATUS_FAILED;
	}
	int status = exec_session_run(&opts, argv[0]);
	exec_options_free(&opts);
	return status;
}
