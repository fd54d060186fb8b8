/* SPDX-License-Identifier: MIT */
/* exec.c - command/exec: latency of ["true"] unsandboxed and sandboxed, and 1 GiB of streamed output
 * with the suite's peak RSS, against raw posix_spawn, a raw pipe and the reference app-server. */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_N 200u
#define WARMUP 10u
/* The latency rows take turns in this many blocks, so a burst of background load hits them all alike. */
#define ROUNDS 10u
#define DEFAULT_STREAM_BYTES (1ull << 30)
#define DEFAULT_STREAM_RUNS 3u
/* Reads of the raw pipe, the floor of the streaming rows. */
#define RAW_READ_BYTES (64u * 1024u)
/* What the client asks of its end of a server's stdout (both servers alike): a fast client's pipe. */
#define CLIENT_PIPE_BYTES (1 << 20)
#define READ_BUF_BYTES (8u << 20)
#define RSS_SAMPLE_MS 50.0
#define TREE_MAX 64u
#define TARGET_LATENCY_SHARE 0.25 /* of the reference's p50 */
#define TARGET_PIPE_SHARE 0.40	  /* of the raw pipe's throughput */
#define TARGET_REF_SPEEDUP 2.0	  /* times the reference's throughput */
#define TRUE_BIN "/bin/true"
#define REF_VERSION "0.169.0"
#ifndef REF_PREINSTALLED /* where an earlier npm install may have put it */
#define REF_PREINSTALLED "/opt/codex-ref"
#endif
#define OUTPUT_DELTA_PREFIX "{\"method\":\"command/exec/outputDelta\","

extern char **environ;

static const char policy_full[] = "{\"type\":\"dangerFullAccess\"}";
static const char policy_read_only[] = "{\"type\":\"readOnly\"}";

typedef struct Stats {
	double p50_us, p99_us, max_us;
} Stats;

/* Lines of a server's stdout, in a buffer big enough for a 64 KiB chunk in base64 many times over. */
typedef struct Reader {
	int fd;
	const char *peer;
	char *buf;
	size_t off, len;
} Reader;

/* An app-server on stdio, agentd or the reference, driven by the same client code. */
typedef struct Server {
	const char *name;
	pid_t pid;
	int in_fd;
	Reader r;
	long next_id;
} Server;

/* The processes of a server (the server and its helpers), without the command it runs. */
typedef struct Tree {
	pid_t pids[TREE_MAX];
	char comms[TREE_MAX][16];
	size_t count;
} Tree;

/* One latency row: samples and what went wrong. */
typedef struct Row {
	const char *name;
	Server *server; /* NULL: raw posix_spawn */
	const char *policy;
	double *us;
	size_t count, failures;
	char failure[200];
	Stats stats;
} Row;

enum { ROW_SPAWN, ROW_FULL, ROW_READ_ONLY, ROW_BUILTIN, ROW_REF_FULL, ROW_REF_READ_ONLY, ROW_COUNT };

/* One streaming target over the runs. */
typedef struct Stream {
	double mbps[8];
	size_t runs;
	double best_mbps;
	long idle_rss_kib, peak_rss_kib; /* before the first run; the highest during any */
	size_t deltas;
	double secs;		/* of the best run, and its CPU seconds: */
	double cpu_s[TREE_MAX]; /* per process of the server's tree */
	char comms[TREE_MAX][16];
	size_t procs;
	double client_cpu_s;
} Stream;

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

/* ---- base64, as a fast client decodes it ---- */

/* dec[k][c]: character c at position k of a quad, already shifted; bit 24 flags a non-alphabet byte. */
static uint32_t dec[4][256];

static void base64_tables_init(void)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (int k = 0; k < 4; k++)
		for (int c = 0; c < 256; c++)
			dec[k][c] = 1u << 24;
	for (uint32_t v = 0; v < 64; v++) {
		unsigned char c = (unsigned char)alphabet[v];
		dec[0][c] = v << 18;
		dec[1][c] = v << 12;
		dec[2][c] = v << 6;
		dec[3][c] = v;
	}
}

/* Decodes @len characters of @s (padding allowed at the end only) into @out. Return the byte count,
 * or -1 when @s is not base64; *@ored collects every decoded bit (zero: only zero bytes). */
static long base64_decode(const unsigned char *s, size_t len, unsigned char *out, uint32_t *ored)
{
	if (len % 4)
		return -1;
	size_t pad = len && s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
	size_t full = pad ? len - 4 : len;
	uint32_t acc = 0;
	unsigned char *o = out;
	for (size_t i = 0; i < full; i += 4) {
		uint32_t v = dec[0][s[i]] | dec[1][s[i + 1]] | dec[2][s[i + 2]] | dec[3][s[i + 3]];
		if (v >> 24)
			return -1;
		acc |= v;
		o[0] = (unsigned char)(v >> 16);
		o[1] = (unsigned char)(v >> 8);
		o[2] = (unsigned char)v;
		o += 3;
	}
	if (pad) {
		const unsigned char *q = s + full;
		uint32_t v = dec[0][q[0]] | dec[1][q[1]] | (pad == 1 ? dec[2][q[2]] : 0);
		if (v >> 24)
			return -1;
		acc |= v;
		*o++ = (unsigned char)(v >> 16);
		if (pad == 1)
			*o++ = (unsigned char)(v >> 8);
	}
	*ored |= acc;
	return o - out;
}

/* ---- lines from a server ---- */

static void reader_init(Reader *r, int fd, const char *peer)
{
	r->fd = fd;
	r->peer = peer;
	r->buf = xcalloc(1, READ_BUF_BYTES);
	r->off = r->len = 0;
}

/* The next line (without its newline, NUL-terminated) and its length; EOF and silence are fatal. */
static char *reader_line(Reader *r, size_t *line_len)
{
	for (;;) {
		char *start = r->buf + r->off;
		char *nl = r->len > r->off ? memchr(start, '\n', r->len - r->off) : NULL;
		if (nl) {
			*nl = '\0';
			*line_len = (size_t)(nl - start);
			r->off += *line_len + 1;
			return start;
		}
		if (r->off > 0) {
			memmove(r->buf, start, r->len - r->off);
			r->len -= r->off;
			r->off = 0;
		}
		if (r->len == READ_BUF_BYTES)
			die("%s sent a line longer than %u bytes", r->peer, READ_BUF_BYTES);
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		int rc = poll(&p, 1, IO_TIMEOUT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			die("%s: nothing to read within %d ms (%s)", r->peer, IO_TIMEOUT_MS,
			    rc < 0 ? strerror(errno) : "timeout");
		ssize_t n = read(r->fd, r->buf + r->len, READ_BUF_BYTES - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("%s closed its stdout (%s)", r->peer, n < 0 ? strerror(errno) : "EOF");
		r->len += (size_t)n;
	}
}

/* ---- processes, from /proc ---- */

static bool proc_stat_read(pid_t pid, pid_t *ppid, char *comm, size_t comm_len)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren[1] == '\0')
		return false;
	snprintf(comm, comm_len, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
	int parent;
	if (sscanf(close_paren + 2, "%*c %d", &parent) != 1)
		return false;
	*ppid = parent;
	return true;
}

/* @root and its descendants, but no subtree of a process named @command (what the server runs). */
static void tree_collect(pid_t root, const char *command, Tree *t)
{
	static pid_t pids[32768], ppids[32768];
	static char comms[32768][16];
	size_t n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		die("opendir /proc: %s", strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)) && n < sizeof(pids) / sizeof(pids[0])) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		if (proc_stat_read((pid_t)pid, &ppids[n], comms[n], sizeof(comms[n])))
			pids[n++] = (pid_t)pid;
	}
	closedir(d);
	t->count = 0;
	for (size_t i = 0; i < n; i++) {
		if (pids[i] == root) {
			t->pids[t->count] = root;
			memcpy(t->comms[t->count++], comms[i], sizeof(t->comms[0]));
		}
	}
	for (size_t at = 0; at < t->count; at++) {
		for (size_t i = 0; i < n && t->count < TREE_MAX; i++) {
			if (ppids[i] == t->pids[at] && strcmp(comms[i], command) != 0) {
				t->pids[t->count] = pids[i];
				memcpy(t->comms[t->count++], comms[i], sizeof(t->comms[0]));
			}
		}
	}
}

/* utime + stime of @pid (all its threads), in clock ticks; 0 when it is gone. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long utime, stime;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return 0;
	return (long)(utime + stime);
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static long rss_kib(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strstr(buf, "\nVmRSS:");
	return p ? strtol(p + 7, NULL, 10) : 0;
}

static long tree_rss_kib(const Tree *t)
{
	long sum = 0;
	for (size_t i = 0; i < t->count; i++)
		sum += rss_kib(t->pids[i]);
	return sum;
}

/* ---- the servers ---- */

static void pipe_make(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe2: %s", strerror(errno));
}

/* The answer to @id: notifications before it are skipped; @line_len gets its length. */
static char *server_answer(Server *s, long id, size_t *line_len)
{
	char prefix[32];
	int len = snprintf(prefix, sizeof(prefix), "{\"id\":%ld,", id);
	char suffix[32];
	int suffix_len = snprintf(suffix, sizeof(suffix), ",\"id\":%ld}", id); /* the reference's errors */
	for (;;) {
		char *line = reader_line(&s->r, line_len);
		if (strncmp(line, prefix, (size_t)len) == 0)
			return line;
		if (*line_len >= (size_t)suffix_len && strcmp(line + *line_len - suffix_len, suffix) == 0 &&
		    strncmp(line, "{\"error\"", 8) == 0)
			return line;
	}
}

static void server_start(Server *s, const char *name, char *const argv[], char *const envp[])
{
	int in[2], out[2];
	pipe_make(in);
	pipe_make(out);
	/* Both servers get the pipe a fast client would make: 1 MiB instead of 64 KiB. */
	(void)fcntl(out[0], F_SETPIPE_SZ, CLIENT_PIPE_BYTES);
	s->name = name;
	s->pid = spawn(argv, envp, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	s->in_fd = in[1];
	reader_init(&s->r, out[0], name);
	s->next_id = 1;
	initialize_send(s->in_fd);
	size_t len;
	char *line = server_answer(s, 0, &len);
	if (!strstr(line, "\"result\""))
		die("%s: initialize failed: %.300s", name, line);
	static const char initialized[] = "{\"method\":\"initialized\"}\n";
	send_all(s->in_fd, initialized, sizeof(initialized) - 1);
}

static void server_stop(Server *s)
{
	if (!s->pid)
		return;
	close(s->in_fd); /* stdio servers end at end of input; SIGTERM after a grace */
	int status = child_reap(s->pid, 5000);
	child_forget(s->pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "bench/exec: %s did not exit 0 at end of input (status %#x)\n", s->name,
			status);
	close(s->r.fd);
	free(s->r.buf);
	s->pid = 0;
}

/* One command/exec of ["true"] under @policy: its wall time in us, or -1 (the line in @why). */
static double server_exec_true(Server *s, const char *policy, char *why, size_t why_len)
{
	char req[256];
	long id = s->next_id++;
	int len = snprintf(req, sizeof(req),
			   "{\"id\":%ld,\"method\":\"command/exec\",\"params\":{\"command\":[\"true\"],"
			   "\"sandboxPolicy\":%s}}\n",
			   id, policy);
	double t0 = now_us();
	send_all(s->in_fd, req, (size_t)len);
	size_t line_len;
	char *line = server_answer(s, id, &line_len);
	double us = now_us() - t0;
	if (strstr(line, "\"result\":{\"exitCode\":0,"))
		return us;
	snprintf(why, why_len, "%.190s", line);
	return -1;
}

/* One streamed command/exec of @nbytes zero bytes: every delta decoded. Return MB/s. */
static double server_stream(Server *s, uint64_t nbytes, Stream *st)
{
	static unsigned char chunk[1 << 20];
	char req[512];
	long id = s->next_id++;
	int len = snprintf(req, sizeof(req),
			   "{\"id\":%ld,\"method\":\"command/exec\",\"params\":{\"command\":[\"head\",\"-c\","
			   "\"%llu\",\"/dev/zero\"],\"processId\":\"bench-%ld\",\"streamStdoutStderr\":true,"
			   "\"disableOutputCap\":true,\"disableTimeout\":true,\"sandboxPolicy\":%s}}\n",
			   id, (unsigned long long)nbytes, id, policy_full);
	char prefix[32];
	int prefix_len = snprintf(prefix, sizeof(prefix), "{\"id\":%ld,", id);
	Tree tree;
	tree_collect(s->pid, "head", &tree);
	long idle = tree_rss_kib(&tree), peak = idle;
	long ticks0[TREE_MAX];
	for (size_t i = 0; i < tree.count; i++)
		ticks0[i] = cpu_ticks(tree.pids[i]);
	double client0 = self_cpu_s();
	uint64_t got = 0;
	uint32_t ored = 0;
	size_t deltas = 0;
	double t0 = now_us(), next_sample = now_ms() + RSS_SAMPLE_MS;
	send_all(s->in_fd, req, (size_t)len);
	for (;;) {
		size_t line_len;
		char *line = reader_line(&s->r, &line_len);
		if (now_ms() >= next_sample) {
			long rss = tree_rss_kib(&tree);
			peak = rss > peak ? rss : peak;
			next_sample = now_ms() + RSS_SAMPLE_MS;
		}
		if (strncmp(line, OUTPUT_DELTA_PREFIX, sizeof(OUTPUT_DELTA_PREFIX) - 1) == 0) {
			static const char key[] = "\"deltaBase64\":\"";
			char *b64 = memmem(line, line_len < 256 ? line_len : 256, key, sizeof(key) - 1);
			char *end = b64 ? strchr(b64 + sizeof(key) - 1, '"') : NULL;
			if (!end || !memmem(line, (size_t)(b64 - line), "\"stream\":\"stdout\"", 17))
				die("%s: unexpected outputDelta %.200s", s->name, line);
			b64 += sizeof(key) - 1;
			if ((size_t)(end - b64) > sizeof(chunk) / 3 * 4)
				die("%s: a delta of %zu base64 characters", s->name, (size_t)(end - b64));
			long n = base64_decode((const unsigned char *)b64, (size_t)(end - b64), chunk, &ored);
			if (n < 0)
				die("%s: a delta that is not base64", s->name);
			got += (uint64_t)n;
			deltas++;
			continue;
		}
		if (strncmp(line, prefix, (size_t)prefix_len) != 0)
			continue;
		if (!strstr(line, "\"result\":{\"exitCode\":0,"))
			die("%s: the stream failed: %.300s", s->name, line);
		break;
	}
	double secs = (now_us() - t0) / 1e6;
	if (got != nbytes || ored != 0)
		die("%s: streamed %llu bytes (%s), wanted %llu zero bytes", s->name, (unsigned long long)got,
		    ored ? "not all zero" : "all zero", (unsigned long long)nbytes);
	double mbps = (double)nbytes / secs / 1e6;
	st->mbps[st->runs++] = mbps;
	if (mbps > st->best_mbps) {
		st->secs = secs;
		st->client_cpu_s = self_cpu_s() - client0;
		st->procs = tree.count;
		for (size_t i = 0; i < tree.count; i++) {
			st->cpu_s[i] =
				(double)(cpu_ticks(tree.pids[i]) - ticks0[i]) / (double)sysconf(_SC_CLK_TCK);
			memcpy(st->comms[i], tree.comms[i], sizeof(st->comms[i]));
		}
	}
	st->best_mbps = mbps > st->best_mbps ? mbps : st->best_mbps;
	st->idle_rss_kib = st->runs == 1 || idle < st->idle_rss_kib ? idle : st->idle_rss_kib;
	st->peak_rss_kib = peak > st->peak_rss_kib ? peak : st->peak_rss_kib;
	st->deltas = deltas;
	return mbps;
}

/* ---- the floors ---- */

static double raw_spawn_true(void)
{
	char *argv[] = { TRUE_BIN, NULL };
	pid_t pid;
	double t0 = now_us();
	int rc = posix_spawn(&pid, TRUE_BIN, NULL, NULL, argv, environ);
	if (rc != 0)
		die("posix_spawn %s: %s", TRUE_BIN, strerror(rc));
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	double us = now_us() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s exited with status %#x", TRUE_BIN, status);
	return us;
}

/* head -c @nbytes /dev/zero into a pipe of the default size, read in RAW_READ_BYTES reads. */
static double raw_pipe_stream(uint64_t nbytes, Stream *st)
{
	static char buf[RAW_READ_BYTES];
	char count[32];
	snprintf(count, sizeof(count), "%llu", (unsigned long long)nbytes);
	char *argv[] = { "/usr/bin/head", "-c", count, "/dev/zero", NULL };
	int fds[2];
	pipe_make(fds);
	double t0 = now_us();
	pid_t pid = spawn(argv, environ, -1, fds[1]);
	close(fds[1]);
	uint64_t got = 0;
	for (;;) {
		ssize_t n = read(fds[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read the raw pipe: %s", strerror(errno));
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	double secs = (now_us() - t0) / 1e6;
	close(fds[0]);
	int status = child_reap(pid, 5000);
	child_forget(pid);
	if (got != nbytes || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("raw pipe: %llu bytes, head status %#x", (unsigned long long)got, status);
	double mbps = (double)nbytes / secs / 1e6;
	st->mbps[st->runs++] = mbps;
	st->best_mbps = mbps > st->best_mbps ? mbps : st->best_mbps;
	return mbps;
}

/* ---- the reference ---- */

typedef struct Reference {
	bool is_available;
	char bin[PATH_MAX];
	char home[PATH_MAX]; /* its CODEX_HOME: outside /tmp, where it makes no sandbox helper links */
	char version[64];
	char skip_reason[256];
} Reference;

static Reference ref;

static void ref_bin_under(const char *prefix, char *out, size_t len)
{
	struct utsname u;
	bool arm = uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0;
	snprintf(out, len, "%s/node_modules/@openai/codex-linux-%s/vendor/%s-unknown-linux-musl/bin/codex",
		 prefix, arm ? "arm64" : "x64", arm ? "aarch64" : "x86_64");
}

/* mkdir -p @path, mode 0700 for what it creates. */
static int dir_make_all(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		if (c == '\0')
			return 0;
		*p = c;
	}
}

static void cache_dir(char *out, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		snprintf(out, len, "%s/agentd-bench", xdg);
	else
		snprintf(out, len, "%s/.cache/agentd-bench", home && *home == '/' ? home : "/root");
}

/* npm and the package, installed as the brief for the reference says: apt-get for npm when missing
 * (as root), then `npm install @openai/codex@VERSION` into the cache. Exit codes name the failure. */
static const char install_script[] =
	"dir=$1 version=$2\n"
	"if ! command -v npm >/dev/null 2>&1; then\n"
	"  [ \"$(id -u)\" = 0 ] || exit 3\n"
	"  echo \"bench/exec: apt-get install -y nodejs npm\" >&2\n"
	"  export DEBIAN_FRONTEND=noninteractive\n"
	"  apt-get install -y -qq nodejs npm >/dev/null 2>&1 ||\n"
	"    { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; } || exit 4\n"
	"fi\n"
	"mkdir -p \"$dir\" && cd \"$dir\" || exit 5\n"
	"echo \"bench/exec: npm install @openai/codex@$version into $dir\" >&2\n"
	"timeout 600 npm install --no-audit --no-fund --loglevel=error --fetch-retries=2 "
	"\"@openai/codex@$version\" >&2 || "
	"exit 6\n";

static int ref_install(const char *dir)
{
	char *argv[] = { "/bin/sh", "-c", (char *)install_script, "install", (char *)dir, REF_VERSION, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, 2, 1); /* its chatter to stderr: stdout is the report */
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The version line of `codex --version`, to print beside the numbers. */
static void ref_version_read(void)
{
	int fds[2];
	pipe_make(fds);
	char *argv[] = { ref.bin, "--version", NULL };
	pid_t pid = spawn(argv, environ, -1, fds[1]);
	close(fds[1]);
	ssize_t n = read(fds[0], ref.version, sizeof(ref.version) - 1);
	close(fds[0]);
	child_reap(pid, 5000);
	child_forget(pid);
	ref.version[n > 0 ? n : 0] = '\0';
	ref.version[strcspn(ref.version, "\n")] = '\0';
}

static void ref_locate(const char *arg)
{
	char cache[PATH_MAX - 64], install_dir[PATH_MAX];
	cache_dir(cache, sizeof(cache));
	snprintf(install_dir, sizeof(install_dir), "%s/codex-%s", cache, REF_VERSION);
	const char *env_bin = getenv("CODEX_REF_BIN");
	if (arg || (env_bin && *env_bin)) {
		snprintf(ref.bin, sizeof(ref.bin), "%s", arg ? arg : env_bin);
	} else {
		ref_bin_under(REF_PREINSTALLED, ref.bin, sizeof(ref.bin));
		if (access(ref.bin, X_OK) < 0)
			ref_bin_under(install_dir, ref.bin, sizeof(ref.bin));
		if (access(ref.bin, X_OK) < 0) {
			static const char *const reasons[] = {
				[3] = "npm is missing and installing it (apt-get) needs root",
				[4] = "apt-get install nodejs npm failed",
				[5] = "cannot create the cache directory",
				[6] = "npm install @openai/codex@" REF_VERSION
				      " failed (registry unreachable?)",
			};
			int rc = ref_install(install_dir);
			const char *why = rc >= 3 && rc <= 6 ? reasons[rc] : "the installer failed";
			if (rc != 0) {
				snprintf(ref.skip_reason, sizeof(ref.skip_reason), "%s", why);
				return;
			}
		}
	}
	if (access(ref.bin, X_OK) < 0) {
		snprintf(ref.skip_reason, sizeof(ref.skip_reason), "%.200s is not executable", ref.bin);
		return;
	}
	if ((size_t)snprintf(ref.home, sizeof(ref.home), "%s/codex-home-XXXXXX", cache) >= sizeof(ref.home) ||
	    dir_make_all(cache) < 0 || !mkdtemp(ref.home)) {
		snprintf(ref.skip_reason, sizeof(ref.skip_reason), "cannot create a CODEX_HOME under %.200s",
			 cache);
		ref.home[0] = '\0';
		return;
	}
	ref_version_read();
	ref.is_available = true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* atexit: die() exits too, and the reference's home is not in the temp dir. */
static void ref_home_remove(void)
{
	if (ref.home[0])
		nftw(ref.home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	ref.home[0] = '\0';
}

/* ---- latency ---- */

static void row_run(Row *row, size_t n, bool measured)
{
	for (size_t i = 0; i < n; i++) {
		double us;
		char why[200];
		if (!row->server) {
			us = raw_spawn_true();
		} else if ((us = server_exec_true(row->server, row->policy, why, sizeof(why))) < 0) {
			if (row->failures++ == 0)
				snprintf(row->failure, sizeof(row->failure), "%s", why);
			continue;
		}
		if (measured)
			row->us[row->count++] = us;
	}
}

static void measure_latency(Row *rows, size_t n)
{
	for (int k = 0; k < ROW_COUNT; k++) {
		if (rows[k].name)
			rows[k].us = xcalloc(n, sizeof(double));
	}
	for (int k = 0; k < ROW_COUNT; k++) {
		if (rows[k].name)
			row_run(&rows[k], WARMUP, false);
	}
	size_t block = (n + ROUNDS - 1) / ROUNDS;
	for (size_t off = 0; off < n; off += block) {
		size_t count = n - off < block ? n - off : block;
		for (int k = 0; k < ROW_COUNT; k++) {
			if (rows[k].name)
				row_run(&rows[k], count, true);
		}
	}
	for (int k = 0; k < ROW_COUNT; k++) {
		if (!rows[k].name)
			continue;
		if (k == ROW_FULL || k == ROW_READ_ONLY || k == ROW_BUILTIN) {
			if (rows[k].failures)
				die("agentd: %zu of %zu runs of %s failed: %s", rows[k].failures, n + WARMUP,
				    rows[k].name, rows[k].failure);
		}
		if (rows[k].count)
			rows[k].stats = stats_of(rows[k].us, rows[k].count);
	}
}

/* ---- report ---- */

static bool row_ok(const Row *row)
{
	return row->name && row->count > 0 && row->failures == 0;
}

static void report_latency(const Row *rows, size_t n)
{
	printf("command/exec [\"true\"] latency: N=%zu sequential requests per row (after %u warm-up), rows "
	       "interleaved in %u blocks; request written -> response read, over stdio\n",
	       n, WARMUP, ROUNDS);
	printf("%-58s %10s %10s %10s\n", "path", "p50 us", "p99 us", "max us");
	for (int k = 0; k < ROW_COUNT; k++) {
		const Row *row = &rows[k];
		if (!row->name)
			continue;
		if (row->count)
			printf("%-58s %10.0f %10.0f %10.0f", row->name, row->stats.p50_us, row->stats.p99_us,
			       row->stats.max_us);
		else
			printf("%-58s %10s %10s %10s", row->name, "-", "-", "-");
		if (row->failures)
			printf("   %zu failed: %s", row->failures, row->failure);
		printf("\n");
	}
	static const struct {
		int ours, theirs;
		const char *what;
	} pairs[] = { { ROW_FULL, ROW_REF_FULL, "unsandboxed (dangerFullAccess)" },
		      { ROW_READ_ONLY, ROW_REF_READ_ONLY, "sandboxed (readOnly)" } };
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		const Row *ours = &rows[pairs[i].ours], *theirs = &rows[pairs[i].theirs];
		if (!row_ok(theirs)) {
			printf("target: %s p50 <= %.2fx the reference ... skipped (%s)\n", pairs[i].what,
			       TARGET_LATENCY_SHARE,
			       theirs->name ? "the reference's runs failed" : ref.skip_reason);
			continue;
		}
		double share = ours->stats.p50_us / theirs->stats.p50_us;
		printf("target: %s p50 <= %.2fx the reference ... %s (%.3fx; p99 %.2fx)\n", pairs[i].what,
		       TARGET_LATENCY_SHARE, verdict(share <= TARGET_LATENCY_SHARE), share,
		       ours->stats.p99_us / theirs->stats.p99_us);
	}
}

/* Where the best run's CPU went: every process of the server's tree, and this client. */
static void stream_cpu_report(const char *name, const Stream *st)
{
	double total = st->client_cpu_s;
	printf("  %s, CPU seconds of the best run (%.2f s wall):", name, st->secs);
	for (size_t i = 0; i < st->procs; i++) {
		if (st->cpu_s[i] >= 0.005)
			printf(" %s %.2f", st->comms[i], st->cpu_s[i]);
		total += st->cpu_s[i];
	}
	printf(", client %.2f; %.2f in all\n", st->client_cpu_s, total);
}

static void report_stream(uint64_t nbytes, const Stream *raw, const Stream *ours, const Stream *theirs)
{
	printf("\nstreamed output: head -c %llu /dev/zero, %zu runs per row (best shown, all listed), "
	       "streamStdoutStderr + disableOutputCap, dangerFullAccess;\n"
	       "the client reads its stdout pipe (%d KiB) in big reads and decodes every delta's base64\n",
	       (unsigned long long)nbytes, raw->runs, CLIENT_PIPE_BYTES >> 10);
	printf("%-58s %10s %12s %12s  %s\n", "path", "MB/s", "idle RSS MB", "peak RSS MB", "runs MB/s");
	const struct {
		const char *name;
		const Stream *st;
	} rows[] = { { "raw pipe, read() in 64 KiB chunks", raw },
		     { "agentd: outputDelta over stdio, every process of the suite", ours },
		     { "reference codex app-server, its process tree", theirs } };
	for (size_t i = 0; i < 3; i++) {
		const Stream *st = rows[i].st;
		if (!st->runs)
			continue;
		printf("%-58s %10.0f", rows[i].name, st->best_mbps);
		if (i == 0)
			printf(" %12s %12s ", "-", "-");
		else
			printf(" %12.1f %12.1f ", (double)st->idle_rss_kib / 1024.0,
			       (double)st->peak_rss_kib / 1024.0);
		for (size_t r = 0; r < st->runs; r++)
			printf(" %.0f", st->mbps[r]);
		printf("\n");
	}
	if (ours->deltas)
		printf("  agentd: %zu deltas, %.0f bytes each on average\n", ours->deltas,
		       (double)nbytes / (double)ours->deltas);
	stream_cpu_report("agentd", ours);
	if (theirs->runs)
		stream_cpu_report("reference", theirs);
	double pipe_share = ours->best_mbps / raw->best_mbps;
	printf("target: throughput >= %.0f%% of the raw pipe ... %s (%.0f%%)\n", TARGET_PIPE_SHARE * 100,
	       verdict(pipe_share >= TARGET_PIPE_SHARE), pipe_share * 100);
	if (theirs->runs) {
		double speedup = ours->best_mbps / theirs->best_mbps;
		printf("target: throughput >= %.0fx the reference ... %s (%.3fx)\n", TARGET_REF_SPEEDUP,
		       verdict(speedup >= TARGET_REF_SPEEDUP), speedup);
	} else {
		printf("target: throughput >= %.0fx the reference ... skipped (%s)\n", TARGET_REF_SPEEDUP,
		       ref.skip_reason);
	}
	printf("  peak RSS of the suite while streaming: %.1f MB (idle %.1f MB, +%.1f MB)\n",
	       (double)ours->peak_rss_kib / 1024.0, (double)ours->idle_rss_kib / 1024.0,
	       (double)(ours->peak_rss_kib - ours->idle_rss_kib) / 1024.0);
}

/* A second agentd's runtime dir and CODEX_HOME, its config choosing the built-in launcher. */
static char **builtin_env(void)
{
	char runtime_dir[80], codex_home[80], config[96];
	tmpdir_sub("rt-builtin", runtime_dir, sizeof(runtime_dir));
	tmpdir_sub("home-builtin", codex_home, sizeof(codex_home));
	snprintf(config, sizeof(config), "%s/config.toml", codex_home);
	FILE *f = fopen(config, "w");
	if (!f || fputs("[sandboxd]\nlauncher = \"builtin\"\n", f) < 0 || fclose(f) != 0)
		die("cannot write %s", config);
	return env_with(runtime_dir, codex_home);
}

/* ---- driver ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: exec [-n N] [-b BYTES] [-s RUNS] [-r CODEX | -R] [AGENTD]\n"
		"  -n N       latency samples per row (default %u)\n"
		"  -b BYTES   bytes per streamed command (default %llu)\n"
		"  -s RUNS    streamed commands per row (default %u, at most 8)\n"
		"  -r CODEX   the reference binary (default: $CODEX_REF_BIN, " REF_PREINSTALLED
		", the cache, else npm install)\n"
		"  -R         no reference\n"
		"AGENTD defaults to ../agentd/agentd beside this binary\n",
		DEFAULT_N, (unsigned long long)DEFAULT_STREAM_BYTES, DEFAULT_STREAM_RUNS);
	exit(2);
}

int main(int argc, char **argv)
{
	die_prefix_set("bench/exec");
	size_t n = DEFAULT_N, runs = DEFAULT_STREAM_RUNS;
	uint64_t nbytes = DEFAULT_STREAM_BYTES;
	const char *ref_arg = NULL;
	bool no_ref = false;
	int opt;
	while ((opt = getopt(argc, argv, "n:b:s:r:Rh")) != -1) {
		if (opt == 'n' && (n = strtoul(optarg, NULL, 10)) > 0)
			continue;
		if (opt == 'b' && (nbytes = strtoull(optarg, NULL, 10)) > 0)
			continue;
		if (opt == 's' && (runs = strtoul(optarg, NULL, 10)) > 0 && runs <= 8)
			continue;
		if (opt == 'r') {
			ref_arg = optarg;
			continue;
		}
		if (opt == 'R') {
			no_ref = true;
			continue;
		}
		usage();
	}
	if (argc - optind > 1)
		usage();
	char agentd[PATH_MAX + 32];
	agentd_locate(optind < argc ? argv[optind] : NULL, agentd, sizeof(agentd));
	signal(SIGPIPE, SIG_IGN);
	base64_tables_init();
	atexit(ref_home_remove);
	if (no_ref)
		snprintf(ref.skip_reason, sizeof(ref.skip_reason), "-R: no reference");
	else
		ref_locate(ref_arg);

	tmpdir_create();
	static Server ours, theirs;
	char **envp = agentd_env();
	char *agentd_argv[] = { agentd, NULL };
	server_start(&ours, "agentd", agentd_argv, envp);
	env_free(envp);
	/* The same with sandboxd's own launcher: the default ("auto") takes system bubblewrap if any. */
	static Server builtin;
	envp = builtin_env();
	server_start(&builtin, "agentd (builtin launcher)", agentd_argv, envp);
	env_free(envp);
	char **ref_envp = NULL;
	if (ref.is_available) {
		ref_envp = env_with(NULL, ref.home);
		char *ref_argv[] = { ref.bin, "app-server", NULL };
		server_start(&theirs, "reference", ref_argv, ref_envp);
	}

	static Row rows[ROW_COUNT] = {
		[ROW_SPAWN] = { "raw posix_spawn(" TRUE_BIN ") + waitpid, in this process" },
		[ROW_FULL] = { "agentd, dangerFullAccess", .policy = policy_full },
		[ROW_READ_ONLY] = { "agentd, readOnly (sandboxed), default launcher",
				    .policy = policy_read_only },
		[ROW_BUILTIN] = { "agentd, readOnly, [sandboxd] launcher = \"builtin\"",
				  .policy = policy_read_only },
		[ROW_REF_FULL] = { "reference app-server, dangerFullAccess", .policy = policy_full },
		[ROW_REF_READ_ONLY] = { "reference app-server, readOnly (sandboxed)",
					.policy = policy_read_only },
	};
	rows[ROW_FULL].server = rows[ROW_READ_ONLY].server = &ours;
	rows[ROW_BUILTIN].server = &builtin;
	rows[ROW_REF_FULL].server = rows[ROW_REF_READ_ONLY].server = &theirs;
	if (!ref.is_available)
		rows[ROW_REF_FULL].name = rows[ROW_REF_READ_ONLY].name = NULL;
	measure_latency(rows, n);
	server_stop(&builtin);

	static Stream raw, ours_stream, theirs_stream;
	for (size_t r = 0; r < runs; r++) {
		raw_pipe_stream(nbytes, &raw);
		server_stream(&ours, nbytes, &ours_stream);
		if (ref.is_available)
			server_stream(&theirs, nbytes, &theirs_stream);
	}
	server_stop(&ours);
	if (ref.is_available)
		server_stop(&theirs);
	if (ref_envp)
		env_free(ref_envp);
	tmpdir_remove();

	if (ref.is_available)
		printf("reference: %s (%s), CODEX_HOME under %s\n", ref.version, ref.bin, ref.home);
	else
		printf("reference: skipped (%s)\n", ref.skip_reason);
	report_latency(rows, n);
	report_stream(nbytes, &raw, &ours_stream, &theirs_stream);
	printf("RESULT exec full_p50_us=%.0f full_p99_us=%.0f ro_p50_us=%.0f ro_p99_us=%.0f "
	       "spawn_p50_us=%.0f "
	       "builtin_p50_us=%.0f ref_full_p50_us=%.0f ref_ro_p50_us=%.0f stream_mbps=%.0f pipe_mbps=%.0f "
	       "ref_stream_mbps=%.0f "
	       "peak_rss_mb=%.1f\n",
	       rows[ROW_FULL].stats.p50_us, rows[ROW_FULL].stats.p99_us, rows[ROW_READ_ONLY].stats.p50_us,
	       rows[ROW_READ_ONLY].stats.p99_us, rows[ROW_SPAWN].stats.p50_us, rows[ROW_BUILTIN].stats.p50_us,
	       rows[ROW_REF_FULL].stats.p50_us, rows[ROW_REF_READ_ONLY].stats.p50_us, ours_stream.best_mbps,
	       raw.best_mbps, theirs_stream.best_mbps, (double)ours_stream.peak_rss_kib / 1024.0);
	return 0;
}
