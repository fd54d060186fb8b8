/* SPDX-License-Identifier: MIT */
/* execd - runs commands for agentd's clients (process table, pipes, PTYs). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "execd.h"
#include "log.h"
#include "paths.h"
#include "proc.h"
#include "spawner.h"

/* One command/exec of one client connection; agentd names it by execId. */
typedef struct ExecEntry {
	struct ExecEntry *prev, *next;
	Execd *execd;
	uint64_t conn_id;
	uint64_t exec_id;
	Envelope start; /* the exec.start request, answered once the spawner did (body not kept) */
	Proc *proc;
	bool is_started;
	bool is_detached; /* the connection is gone: nothing more goes to agentd */
} ExecEntry;

static Execd execd;

static ExecEntry *execd_find(Execd *x, uint64_t conn_id, uint64_t exec_id)
{
	for (ExecEntry *e = x->entries; e; e = e->next)
		if (e->exec_id == exec_id && e->conn_id == conn_id)
			return e;
	return NULL;
}

static void execd_unlink(ExecEntry *e)
{
	Execd *x = e->execd;
	if (e->prev)
		e->prev->next = e->next;
	else
		x->entries = e->next;
	if (e->next)
		e->next->prev = e->prev;
}

static void execd_entry_free(ExecEntry *e)
{
	execd_unlink(e);
	proc_free(e->proc);
	free(e);
}

/* exec.start fails with a message agentd passes on ("failed to spawn command: …"). */
static void execd_reply_status(Daemon *d, const Envelope *req, int status)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "message", strerror(status < 0 ? -status : status));
	daemon_reply(d, req, status, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* --- the process sink: events to agentd --------------------------------------------------------- */

static void execd_on_started(Proc *p, int status, void *ctx)
{
	ExecEntry *e = ctx;
	Execd *x = e->execd;
	if (status < 0) {
		execd_reply_status(x->daemon, &e->start, status);
		execd_entry_free(e);
		return;
	}
	e->is_started = true;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_u64(&pk, "pid", (uint64_t)proc_pid(p));
	daemon_reply(x->daemon, &e->start, 0, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

/* exec.output {execId, stream, data, capReached}: one chunk, answered by one credit. */
static void execd_on_output(Proc *p, int stream, const uint8_t *data, size_t len, bool cap_reached, void *ctx)
{
	ExecEntry *e = ctx;
	/* One buffer for every chunk: grown once to a chunk's size, never freed in between. */
	static msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_clear(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	mp_pack_kv_u64(&pk, "execId", e->exec_id);
	mp_pack_kv_u64(&pk, "stream", (uint64_t)stream);
	mp_pack_cstr(&pk, "data");
	msgpack_pack_bin(&pk, len);
	msgpack_pack_bin_body(&pk, data, len);
	mp_pack_kv_bool(&pk, "capReached", cap_reached);
	int rc = daemon_send_event(e->execd->daemon, e->conn_id, "exec.output", sbuf.data, sbuf.size);
	if (rc < 0)
		proc_grant(p, stream); /* agentd is gone: its loss handler kills the process */
}

static void execd_on_closed(Proc *p, int exit_code, void *ctx)
{
	ExecEntry *e = ctx;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_u64(&pk, "execId", e->exec_id);
	mp_pack_cstr(&pk, "exitCode");
	msgpack_pack_int64(&pk, exit_code);
	daemon_send_event(e->execd->daemon, e->conn_id, "exec.closed", sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
	execd_entry_free(e);
}

static const ProcSink execd_sink = {
	.on_started = execd_on_started,
	.on_output = execd_on_output,
	.on_closed = execd_on_closed,
};

/* --- exec.start ---------------------------------------------------------------------------------- */

/* A msgpack array of strings as a NULL-terminated vector pointing into @arr (NUL-free, bounded). */
static int execd_strings(const msgpack_object *arr, size_t max_count, bool need_one, char ***out, uint32_t *count)
{
	if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size > max_count ||
	    (need_one && arr->via.array.size == 0))
		return -EINVAL;
	uint32_t n = arr->via.array.size;
	char **vec = calloc((size_t)n + 1, sizeof(*vec));
	if (!vec)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *item = &arr->via.array.ptr[i];
		if (item->type != MSGPACK_OBJECT_STR || memchr(item->via.str.ptr, '\0', item->via.str.size) ||
		    !(vec[i] = strndup(item->via.str.ptr, item->via.str.size))) {
			for (uint32_t j = 0; j < i; j++)
				free(vec[j]);
			free(vec);
			return -EINVAL;
		}
	}
	*out = vec;
	*count = n;
	return 0;
}

static void execd_strings_free(char **vec, uint32_t count)
{
	for (uint32_t i = 0; vec && i < count; i++)
		free(vec[i]);
	free(vec);
}

static int execd_get_u16(const msgpack_object *params, const char *key, uint16_t *out)
{
	uint64_t value = 0;
	if (mp_map_find(params, key) && (mp_get_u64(params, key, &value) < 0 || value > UINT16_MAX))
		return -EINVAL;
	*out = (uint16_t)value;
	return 0;
}

/* The typed parts of exec.start; strings are copies owned by the caller. */
static int execd_parse_spec(const msgpack_object *params, ProcSpec *spec, char ***argv, char ***envp, char *cwd)
{
	const char *text;
	size_t len;
	uint64_t value;
	bool flag = false;
	memset(spec, 0, sizeof(*spec));
	if (mp_get_str(params, "cwd", AGENTD_PATH_MAX - 1, &text, &len) < 0 || len == 0 || text[0] != '/' ||
	    memchr(text, '\0', len))
		return -EINVAL;
	memcpy(cwd, text, len);
	cwd[len] = '\0';
	spec->cwd = cwd;
	spec->timeout_ms = PROC_NO_TIMEOUT;
	if (mp_map_find(params, "timeoutMs")) {
		if (mp_get_u64(params, "timeoutMs", &value) < 0 || value > INT64_MAX)
			return -EINVAL;
		spec->timeout_ms = (int64_t)value;
	}
	spec->cap_bytes = PROC_NO_CAP;
	if (mp_map_find(params, "capBytes") && mp_get_u64(params, "capBytes", &spec->cap_bytes) < 0)
		return -EINVAL;
	if (mp_map_find(params, "tty") && mp_get_bool(params, "tty", &flag) < 0)
		return -EINVAL;
	spec->tty = flag;
	flag = false;
	if (mp_map_find(params, "pipeStdin") && mp_get_bool(params, "pipeStdin", &flag) < 0)
		return -EINVAL;
	spec->pipe_stdin = flag;
	if (execd_get_u16(params, "rows", &spec->rows) < 0 || execd_get_u16(params, "cols", &spec->cols) < 0)
		return -EINVAL;
	int rc = execd_strings(mp_map_find(params, "argv"), SPAWN_MAX_ARGS, true, argv, &spec->argc);
	if (rc == 0) {
		rc = execd_strings(mp_map_find(params, "env"), SPAWN_MAX_ENV, false, envp, &spec->envc);
		if (rc < 0) {
			execd_strings_free(*argv, spec->argc);
			*argv = NULL;
		}
	}
	spec->argv = (const char *const *)*argv;
	spec->envp = (const char *const *)*envp;
	return rc;
}

static int execd_start(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Execd *x = ctx;
	uint64_t exec_id;
	ProcSpec spec;
	char **argv = NULL, **envp = NULL;
	char cwd[AGENTD_PATH_MAX];
	if (!x->procs)
		return -EHOSTDOWN;
	if (mp_get_u64(params, "execId", &exec_id) < 0)
		return -EINVAL;
	if (execd_find(x, req->connection_id, exec_id))
		return -EEXIST;
	int rc = execd_parse_spec(params, &spec, &argv, &envp, cwd);
	if (rc < 0)
		return rc;
	ExecEntry *e = calloc(1, sizeof(*e));
	if (!e) {
		rc = -ENOMEM;
		goto out;
	}
	e->execd = x;
	e->conn_id = req->connection_id;
	e->exec_id = exec_id;
	e->start = *req;
	e->start.body = NULL;
	e->start.body_len = 0;
	rc = proc_start(x->procs, &spec, &execd_sink, e, &e->proc);
	if (rc < 0) {
		free(e);
		goto out;
	}
	e->next = x->entries;
	if (x->entries)
		x->entries->prev = e;
	x->entries = e;
out:
	execd_strings_free(argv, spec.argc);
	execd_strings_free(envp, spec.envc);
	if (rc < 0 && rc != -EINVAL && rc != -EEXIST) {
		execd_reply_status(d, req, rc);
		return 0;
	}
	return rc;
}

/* --- exec.write, exec.resize, exec.terminate ----------------------------------------------------- */

typedef struct ExecWrite {
	Execd *execd;
	Envelope req;
} ExecWrite;

static void execd_on_written(void *ctx, int status)
{
	ExecWrite *w = ctx;
	daemon_reply(w->execd->daemon, &w->req, status, status == 0 ? "\x80" : NULL, status == 0 ? 1 : 0);
	free(w);
}

/* The running entry an exec.* request names, or NULL with *status set. */
static ExecEntry *execd_target(Execd *x, const Envelope *req, const msgpack_object *params, int *status)
{
	uint64_t exec_id;
	if (mp_get_u64(params, "execId", &exec_id) < 0) {
		*status = -EINVAL;
		return NULL;
	}
	ExecEntry *e = execd_find(x, req->connection_id, exec_id);
	*status = e ? 0 : -ENOENT;
	if (e && !e->is_started) {
		e = NULL;
		*status = -EAGAIN;
	}
	return e;
}

static int execd_write(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Execd *x = ctx;
	int rc;
	ExecEntry *e = execd_target(x, req, params, &rc);
	if (!e)
		return rc;
	const msgpack_object *data = mp_map_find(params, "data");
	bool close_stdin = false;
	if ((data && data->type != MSGPACK_OBJECT_BIN) ||
	    (mp_map_find(params, "closeStdin") && mp_get_bool(params, "closeStdin", &close_stdin) < 0))
		return -EINVAL;
	ExecWrite *w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->execd = x;
	w->req = *req;
	w->req.body = NULL;
	w->req.body_len = 0;
	rc = proc_write(e->proc, data ? data->via.bin.ptr : NULL, data ? data->via.bin.size : 0, close_stdin,
			execd_on_written, w);
	if (rc < 0)
		free(w);
	return rc;
}

static int execd_resize(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Execd *x = ctx;
	int rc;
	uint16_t rows, cols;
	ExecEntry *e = execd_target(x, req, params, &rc);
	if (!e)
		return rc;
	if (execd_get_u16(params, "rows", &rows) < 0 || execd_get_u16(params, "cols", &cols) < 0 || !rows || !cols)
		return -EINVAL;
	rc = proc_resize(e->proc, rows, cols);
	return rc < 0 ? rc : daemon_reply(d, req, 0, "\x80", 1);
}

static int execd_terminate(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	Execd *x = ctx;
	int rc;
	ExecEntry *e = execd_target(x, req, params, &rc);
	if (!e)
		return rc;
	rc = proc_kill(e->proc);
	return rc < 0 ? rc : daemon_reply(d, req, 0, "\x80", 1);
}

/* --- connections and credit ------------------------------------------------------------------------ */

/* Event: the client connection is gone; its commands go with it (the whole process group). */
static int execd_conn_closed(Daemon *d, const Envelope *env, const msgpack_object *params, void *ctx)
{
	Execd *x = ctx;
	ExecEntry *e = x->entries;
	while (e) {
		ExecEntry *next = e->next;
		if (e->conn_id == env->connection_id)
			execd_entry_free(e);
		e = next;
	}
	return 0;
}

static void execd_on_credit(Daemon *d, const Envelope *env, const msgpack_object *params, void *ctx)
{
	Execd *x = ctx;
	uint64_t exec_id, stream;
	if (mp_get_u64(params, "execId", &exec_id) < 0 || mp_get_u64(params, "stream", &stream) < 0 ||
	    stream >= PROC_STREAMS)
		return;
	ExecEntry *e = execd_find(x, env->connection_id, exec_id);
	if (e)
		proc_grant(e->proc, (int)stream);
}

static void execd_drop_all(Execd *x)
{
	while (x->entries)
		execd_entry_free(x->entries);
}

static void execd_on_broker_lost(Daemon *d, void *ctx)
{
	/* Whoever connects next has new client connections: nothing of the old ones survives. */
	execd_drop_all(ctx);
}

static int execd_health(Daemon *d, msgpack_packer *pk, void *ctx)
{
	Execd *x = ctx;
	mp_pack_kv_u64(pk, "processes", x->procs ? proc_table_count(x->procs) : 0);
	return 0;
}

/* --- start and stop --------------------------------------------------------------------------------- */

static void execd_drop_all(Execd *x);

static void execd_on_spawner_lost(void *ctx)
{
	Execd *x = ctx;
	/* Nothing can run without it: kill what it started (their spawner cannot any more), and
	 * stop; the supervisor starts a fresh execd and spawner, and agentd fails the clients' runs. */
	execd_drop_all(x);
	uv_stop(daemon_loop(x->daemon));
}

static int execd_setup(Daemon *d, void *ctx)
{
	Execd *x = ctx;
	x->daemon = d;
	/* The spawner is forked first: it must not inherit the seccomp list installed after setup. */
	int rc = spawner_start(&x->spawner_sock, &x->spawner_pid);
	if (rc < 0) {
		log_error("cannot start the spawner: %s", strerror(-rc));
		return rc;
	}
	/* execd spawns nothing itself and needs no capability (commands inherit no_new_privs too). */
	rc = daemon_drop_privileges("execd");
	if (rc == 0)
		rc = proc_table_new(daemon_loop(d), x->spawner_sock, &x->procs);
	if (rc < 0)
		return rc;
	proc_table_set_on_spawner_lost(x->procs, execd_on_spawner_lost, x);
	signal(SIGPIPE, SIG_IGN); /* a command that closed its stdin is an error to report, not our death */
	return 0;
}

static void execd_teardown(Daemon *d, void *ctx)
{
	Execd *x = ctx;
	execd_drop_all(x);
	proc_table_free(x->procs); /* closes the spawner's socket: it kills and reaps what is left */
	x->procs = NULL;
	if (x->spawner_pid > 0) {
		while (waitpid(x->spawner_pid, NULL, 0) < 0 && errno == EINTR)
			;
		x->spawner_pid = 0;
	}
}

static const DaemonMethod execd_methods[] = {
	{ "exec.start", SPAWN_MAX_PAYLOAD + 65536, execd_start },
	{ "exec.write", EXECD_MAX_WRITE_BYTES + 1024, execd_write },
	{ "exec.resize", 256, execd_resize },
	{ "exec.terminate", 256, execd_terminate },
	{ "conn.closed", 64, execd_conn_closed },
};

/*
 * Beyond the common base: signalling process groups, reaping the spawner, the file operations of
 * the fs methods, and the sockets of the remote listener.
 */
static const char *const execd_syscalls[] = {
	"kill",	    "wait4",	 "getdents64", "mkdir",	    "mkdirat",	 "unlink",    "unlinkat",  "rmdir",
	"rename",   "renameat",	 "renameat2",  "fchmod",    "fchmodat",	 "ftruncate", "fsync",	   "fdatasync",
	"copy_file_range", "sendfile", "utimensat", "symlink", "symlinkat", "bind",	  "listen", "accept",
	"accept4",  "fchown",
};

#define EXECD_METHOD_COUNT (sizeof(execd_methods) / sizeof(execd_methods[0]))

static DaemonSpec execd_spec = {
	.name = "execd",
	.summary = "runs commands for agentd's clients (process table, pipes, PTYs)",
	.ctx = &execd,
	.health_fields = execd_health,
	.health_field_count = 1,
	.setup = execd_setup,
	.teardown = execd_teardown,
	.on_credit = execd_on_credit,
	.on_broker_lost = execd_on_broker_lost,
	.seccomp = { execd_syscalls, sizeof(execd_syscalls) / sizeof(execd_syscalls[0]), true, false },
};

static bool execd_is_exec_server(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--listen") == 0 || strncmp(argv[i], "--listen=", 9) == 0)
			return true;
	return false;
}

/* `execd --listen …` is the exec-server, a program of its own beside execd (same arguments). */
static int execd_exec_server(char **argv)
{
	char self[4096], path[4096 + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		perror("execd: /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/execd-server", self);
	execv(path, argv);
	fprintf(stderr, "execd: cannot run %s: %s\n", path, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	if (execd_is_exec_server(argc, argv))
		return execd_exec_server(argv);
	/* One allow-list: the exec.* rows here and the fs.* rows of fs_methods.c. */
	DaemonMethod *methods = calloc(EXECD_METHOD_COUNT + execd_fs_method_count, sizeof(*methods));
	if (!methods)
		return 1;
	memcpy(methods, execd_methods, sizeof(execd_methods));
	memcpy(methods + EXECD_METHOD_COUNT, execd_fs_methods, execd_fs_method_count * sizeof(*methods));
	execd_spec.methods = methods;
	execd_spec.method_count = EXECD_METHOD_COUNT + execd_fs_method_count;
	int status = daemon_main(&execd_spec, argc, argv);
	free(methods);
	return status;
}
