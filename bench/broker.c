/* SPDX-License-Identifier: MIT */
/* broker.c - round-trip latency and pipelined throughput: raw nng ipc pair0 against the agentd suite. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_N 5000u
#define WARMUP 200u
#define DEPTH 16u
#define MSG_BYTES 100u
#define IO_TIMEOUT_MS 10000
#define TARGET_RATIO 2.0
/* Raw and suite alternate in this many blocks, so both see the same background load. */
#define ROUNDS 10u

extern char **environ;

typedef struct Stats {
	double p50_us, p99_us;
} Stats;

typedef struct Figures {
	Stats lat;
	double rps;
} Figures;

typedef struct LineReader {
	int fd;
	size_t off, len;
	char buf[1 << 16];
} LineReader;

/* The two systems under test, both running at once. */
typedef struct Peers {
	nng_socket raw;
	pid_t echo_pid, agentd_pid;
	LineReader *client;
	long next_id;
} Peers;

/* Everything that must be undone on any exit path, error or not. */
static struct {
	pid_t children[2];
	size_t child_count;
	char tmpdir[64];
} cleanup_state;

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void tmpdir_remove(void)
{
	if (cleanup_state.tmpdir[0])
		nftw(cleanup_state.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cleanup_state.tmpdir[0] = '\0';
}

/* Waits up to @ms for @pid, then SIGKILLs and reaps it. Return its wait status. */
static int child_reap(pid_t pid, int ms)
{
	int status = 0;
	for (int waited = 0; waited < ms; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return status;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

static void child_forget(pid_t pid)
{
	for (size_t i = 0; i < cleanup_state.child_count; i++) {
		if (cleanup_state.children[i] == pid)
			cleanup_state.children[i] = cleanup_state.children[--cleanup_state.child_count];
	}
}

/* SIGTERM and reap @pid. Return its wait status. */
static int child_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	int status = child_reap(pid, 5000);
	child_forget(pid);
	return status;
}

static void children_stop(void)
{
	while (cleanup_state.child_count > 0)
		child_stop(cleanup_state.children[cleanup_state.child_count - 1]);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench/broker: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	children_stop();
	tmpdir_remove();
	exit(1);
}

static void tmpdir_create(void)
{
	snprintf(cleanup_state.tmpdir, sizeof(cleanup_state.tmpdir), "/tmp/agentd-bench-XXXXXX");
	if (!mkdtemp(cleanup_state.tmpdir)) {
		cleanup_state.tmpdir[0] = '\0';
		die("mkdtemp: %s", strerror(errno));
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static Stats stats_of(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return (Stats){ v[n / 2], v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] };
}

static pid_t spawn(char *const argv[], char *const envp[])
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die("posix_spawn %s: %s", argv[0], strerror(rc));
	cleanup_state.children[cleanup_state.child_count++] = pid;
	return pid;
}

/* ---- raw nng floor ---- */

static void nng_check(int rv, const char *what)
{
	if (rv != 0)
		die("%s: %s", what, nng_strerror(rv));
}

static nng_socket pair_open(void)
{
	nng_socket s;
	nng_check(nng_pair0_open(&s), "nng_pair0_open");
	nng_check(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, IO_TIMEOUT_MS), "recv-timeout");
	nng_check(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, IO_TIMEOUT_MS), "send-timeout");
	nng_check(nng_socket_set_int(s, NNG_OPT_SENDBUF, 128), "send-buffer");
	nng_check(nng_socket_set_int(s, NNG_OPT_RECVBUF, 128), "recv-buffer");
	return s;
}

/* Child mode: echo every message back; an empty message or a timeout ends it. */
static int echo_main(const char *url)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	nng_socket s = pair_open();
	nng_check(nng_dial(s, url, NULL, 0), "nng_dial");
	for (;;) {
		nng_msg *m;
		if (nng_recvmsg(s, &m, 0) != 0)
			break;
		if (nng_msg_len(m) == 0 || nng_sendmsg(s, m, 0) != 0) {
			nng_msg_free(m);
			break;
		}
	}
	nng_close(s);
	return 0;
}

static void raw_roundtrip(nng_socket s, const char *msg)
{
	char in[MSG_BYTES];
	size_t size = sizeof(in);
	nng_check(nng_send(s, (void *)msg, MSG_BYTES, 0), "nng_send");
	nng_check(nng_recv(s, in, &size, 0), "nng_recv");
	if (size != MSG_BYTES)
		die("echo returned %zu bytes", size);
}

static void raw_latency(nng_socket s, double *samples, size_t n)
{
	char msg[MSG_BYTES];
	memset(msg, 'x', sizeof(msg));
	for (size_t i = 0; i < n; i++) {
		double t0 = now_us();
		raw_roundtrip(s, msg);
		if (samples)
			samples[i] = now_us() - t0;
	}
}

/* pair0 keeps order, so DEPTH sends ahead and one send per receive keeps DEPTH in flight. */
static double raw_pipelined(nng_socket s, size_t n)
{
	char msg[MSG_BYTES], in[MSG_BYTES];
	memset(msg, 'y', sizeof(msg));
	size_t sent = 0;
	double t0 = now_us();
	for (; sent < DEPTH && sent < n; sent++)
		nng_check(nng_send(s, msg, MSG_BYTES, 0), "nng_send");
	for (size_t got = 0; got < n; got++) {
		size_t size = sizeof(in);
		nng_check(nng_recv(s, in, &size, 0), "nng_recv");
		if (sent < n) {
			nng_check(nng_send(s, msg, MSG_BYTES, 0), "nng_send");
			sent++;
		}
	}
	return (double)n / ((now_us() - t0) / 1e6);
}

static pid_t raw_start(const char *self, nng_socket *s)
{
	char url[96];
	snprintf(url, sizeof(url), "ipc://%s/echo.sock", cleanup_state.tmpdir);
	*s = pair_open();
	nng_check(nng_listen(*s, url, NULL, 0), "nng_listen");
	char *argv[] = { (char *)self, "--echo", url, NULL };
	return spawn(argv, environ);
}

/* An empty message tells the echo child to exit on its own. */
static void raw_stop(nng_socket s, pid_t pid)
{
	nng_check(nng_send(s, "", 0, 0), "nng_send quit");
	int status = child_reap(pid, 5000);
	child_forget(pid);
	nng_close(s);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("echo child failed (status %#x)", status);
}

/* ---- the agentd suite ---- */

static void line_wait(LineReader *r)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	int rc;
	while ((rc = poll(&p, 1, IO_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (rc == 0)
		die("agentd did not answer within %d ms", IO_TIMEOUT_MS);
}

/* Return the next line (NUL-terminated, without its newline) from the socket. */
static char *line_next(LineReader *r)
{
	for (;;) {
		char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
		if (nl) {
			char *line = r->buf + r->off;
			*nl = '\0';
			r->off = (size_t)(nl - r->buf) + 1;
			return line;
		}
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
		if (r->len == sizeof(r->buf))
			die("response line longer than %zu bytes", sizeof(r->buf));
		line_wait(r);
		ssize_t got = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (got <= 0)
			die("agentd closed the connection (%s)", got < 0 ? strerror(errno) : "EOF");
		r->len += (size_t)got;
	}
}

static void send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write to agentd: %s", strerror(errno));
		data += n;
		len -= (size_t)n;
	}
}

/* Responses start with {"id":K, and carry "result" right after; anything else is a failure. */
static long response_id(const char *line)
{
	static const char prefix[] = "{\"id\":";
	if (strncmp(line, prefix, sizeof(prefix) - 1) != 0)
		die("unexpected line from agentd: %.200s", line);
	char *end;
	long id = strtol(line + sizeof(prefix) - 1, &end, 10);
	if (strncmp(end, ",\"result\"", 9) != 0)
		die("agentd answered with an error: %.300s", line);
	return id;
}

static void health_send(int fd, long id)
{
	char req[128];
	int len = snprintf(req, sizeof(req), "{\"id\":%ld,\"method\":\"agentd/health\",\"params\":{\"service\":\"execd\"}}\n",
			   id);
	send_all(fd, req, (size_t)len);
}

static void health_roundtrip(LineReader *r, long id)
{
	health_send(r->fd, id);
	long got = response_id(line_next(r));
	if (got != id)
		die("answer to id %ld while waiting for %ld", got, id);
}

static void suite_latency(LineReader *r, long *next_id, double *samples, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double t0 = now_us();
		health_roundtrip(r, (*next_id)++);
		if (samples)
			samples[i] = now_us() - t0;
	}
}

/* DEPTH requests stay outstanding; answers may come in any order and are matched by id. */
static double suite_pipelined(LineReader *r, long *next_id, size_t n)
{
	const long base = *next_id;
	bool *is_outstanding = calloc(n, sizeof(*is_outstanding));
	if (!is_outstanding)
		die("out of memory");
	size_t sent = 0;
	double t0 = now_us();
	for (; sent < DEPTH && sent < n; sent++) {
		is_outstanding[sent] = true;
		health_send(r->fd, base + (long)sent);
	}
	for (size_t got = 0; got < n; got++) {
		long id = response_id(line_next(r)) - base;
		if (id < 0 || (size_t)id >= n || !is_outstanding[id])
			die("answer to unknown id %ld", id + base);
		is_outstanding[id] = false;
		if (sent < n) {
			is_outstanding[sent] = true;
			health_send(r->fd, base + (long)sent++);
		}
	}
	double rps = (double)n / ((now_us() - t0) / 1e6);
	free(is_outstanding);
	*next_id += (long)n;
	return rps;
}

static char **env_with(const char *runtime_dir, const char *codex_home)
{
	size_t count = 0;
	while (environ[count])
		count++;
	char **envp = calloc(count + 3, sizeof(*envp));
	if (!envp)
		die("out of memory");
	size_t k = 0;
	for (size_t i = 0; i < count; i++) {
		if (strncmp(environ[i], "AGENTD_RUNTIME_DIR=", 19) != 0 && strncmp(environ[i], "CODEX_HOME=", 11) != 0)
			envp[k++] = environ[i];
	}
	if (asprintf(&envp[k++], "AGENTD_RUNTIME_DIR=%s", runtime_dir) < 0 ||
	    asprintf(&envp[k++], "CODEX_HOME=%s", codex_home) < 0)
		die("out of memory");
	return envp;
}

static void env_free(char **envp)
{
	size_t k = 0;
	while (envp[k])
		k++;
	free(envp[k - 1]);
	free(envp[k - 2]);
	free(envp);
}

static pid_t agentd_spawn(const char *agentd, const char *sock_path)
{
	char runtime_dir[80], codex_home[80], listen[112];
	snprintf(runtime_dir, sizeof(runtime_dir), "%s/rt", cleanup_state.tmpdir);
	snprintf(codex_home, sizeof(codex_home), "%s/home", cleanup_state.tmpdir);
	snprintf(listen, sizeof(listen), "unix://%s", sock_path);
	if (mkdir(runtime_dir, 0700) < 0 || mkdir(codex_home, 0700) < 0)
		die("mkdir: %s", strerror(errno));
	char **envp = env_with(runtime_dir, codex_home);
	char *argv[] = { (char *)agentd, "--listen", listen, NULL };
	pid_t pid = spawn(argv, envp);
	env_free(envp);
	return pid;
}

/* agentd listens only once every helper registered: retry until it accepts. */
static int agentd_connect(pid_t pid, const char *sock_path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	double deadline = now_us() + IO_TIMEOUT_MS * 1000.0;
	while (now_us() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return fd;
		close(fd);
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			child_forget(pid);
			die("agentd exited before listening");
		}
		usleep(250);
	}
	die("agentd did not listen on %s within %d ms", sock_path, IO_TIMEOUT_MS);
	return -1;
}

static void agentd_initialize(LineReader *r)
{
	static const char init[] = "{\"id\":0,\"method\":\"initialize\",\"params\":{\"clientInfo\":"
				   "{\"name\":\"bench\",\"version\":\"1\"}}}\n";
	send_all(r->fd, init, sizeof(init) - 1);
	if (response_id(line_next(r)) != 0)
		die("initialize answered with another id");
}

static LineReader *suite_start(const char *agentd, pid_t *pid)
{
	char sock_path[96];
	snprintf(sock_path, sizeof(sock_path), "%s/agentd.sock", cleanup_state.tmpdir);
	*pid = agentd_spawn(agentd, sock_path);
	LineReader *r = calloc(1, sizeof(*r));
	if (!r)
		die("out of memory");
	r->fd = agentd_connect(*pid, sock_path);
	agentd_initialize(r);
	return r;
}

static void suite_stop(LineReader *r, pid_t pid)
{
	close(r->fd);
	free(r);
	child_stop(pid);
}

/* ---- driver ---- */

static double median_of(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static void measure_latency(Peers *p, size_t n, Figures *raw, Figures *suite)
{
	double *raw_us = calloc(n, sizeof(*raw_us)), *suite_us = calloc(n, sizeof(*suite_us));
	if (!raw_us || !suite_us)
		die("out of memory");
	raw_latency(p->raw, NULL, WARMUP);
	suite_latency(p->client, &p->next_id, NULL, WARMUP);
	size_t block = (n + ROUNDS - 1) / ROUNDS;
	for (size_t off = 0; off < n; off += block) {
		size_t count = n - off < block ? n - off : block;
		raw_latency(p->raw, raw_us + off, count);
		suite_latency(p->client, &p->next_id, suite_us + off, count);
	}
	raw->lat = stats_of(raw_us, n);
	suite->lat = stats_of(suite_us, n);
	free(raw_us);
	free(suite_us);
}

/* Each side runs ROUNDS blocks of n/ROUNDS requests; the figure is the median block rate. */
static void measure_pipelined(Peers *p, size_t n, Figures *raw, Figures *suite)
{
	double raw_rps[ROUNDS], suite_rps[ROUNDS];
	size_t block = n / ROUNDS > DEPTH ? n / ROUNDS : DEPTH;
	for (size_t i = 0; i < ROUNDS; i++) {
		raw_rps[i] = raw_pipelined(p->raw, block);
		suite_rps[i] = suite_pipelined(p->client, &p->next_id, block);
	}
	raw->rps = median_of(raw_rps, ROUNDS);
	suite->rps = median_of(suite_rps, ROUNDS);
}

static void bench(const char *self, const char *agentd, size_t n, Figures *raw, Figures *suite)
{
	Peers p = { .next_id = 1 };
	tmpdir_create();
	p.echo_pid = raw_start(self, &p.raw);
	p.client = suite_start(agentd, &p.agentd_pid);
	measure_latency(&p, n, raw, suite);
	measure_pipelined(&p, n, raw, suite);
	raw_stop(p.raw, p.echo_pid);
	suite_stop(p.client, p.agentd_pid);
	tmpdir_remove();
}

static void self_path(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	if (n < 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	out[n] = '\0';
}

static void default_agentd(const char *self, char *out, size_t len)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", self);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, len, "%s/../agentd/agentd", dir);
}

static void report(size_t n, const Figures *raw, const Figures *suite)
{
	double ratio = suite->lat.p50_us / raw->lat.p50_us;
	printf("broker round trips: N=%zu sequential (after %u warm-up), pipelined with %u in flight;\n"
	       "raw and suite interleaved in %u blocks; pipelined rate = median block\n",
	       n, WARMUP, DEPTH, ROUNDS);
	printf("%-44s %10s %10s %14s\n", "path", "p50 us", "p99 us", "pipelined/s");
	printf("%-44s %10.1f %10.1f %14.0f\n", "raw nng ipc pair0 (100 B echo, 2 procs)", raw->lat.p50_us,
	       raw->lat.p99_us, raw->rps);
	printf("%-44s %10.1f %10.1f %14.0f\n", "suite: client->agentd->execd->agentd->client", suite->lat.p50_us,
	       suite->lat.p99_us, suite->rps);
	printf("ratio suite/raw: p50 %.2fx, p99 %.2fx, throughput %.2fx\n", ratio,
	       suite->lat.p99_us / raw->lat.p99_us, suite->rps / raw->rps);
	printf("target: within %.0fx of raw nng at p50 ... %s (%.2fx)\n", TARGET_RATIO,
	       ratio <= TARGET_RATIO ? "PASS" : "MISS", ratio);
	printf("RESULT broker p50_us=%.1f p99_us=%.1f raw_p50_us=%.1f raw_p99_us=%.1f ratio_p50=%.2f "
	       "pipelined_rps=%.0f raw_pipelined_rps=%.0f\n",
	       suite->lat.p50_us, suite->lat.p99_us, raw->lat.p50_us, raw->lat.p99_us, ratio, suite->rps, raw->rps);
}

static void usage(void)
{
	fprintf(stderr, "usage: broker [-n N] [AGENTD]   (AGENTD defaults to ../agentd/agentd beside this binary)\n"
			"       broker --echo URL      (internal: the raw nng echo peer)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--echo") == 0)
		return echo_main(argv[2]);
	size_t n = DEFAULT_N;
	int opt;
	while ((opt = getopt(argc, argv, "n:h")) != -1) {
		if (opt != 'n' || (n = strtoul(optarg, NULL, 10)) == 0)
			usage();
	}
	if (argc - optind > 1)
		usage();
	char self[PATH_MAX], agentd[PATH_MAX + 32];
	self_path(self, sizeof(self));
	if (optind < argc)
		snprintf(agentd, sizeof(agentd), "%s", argv[optind]);
	else
		default_agentd(self, agentd, sizeof(agentd));
	if (access(agentd, X_OK) < 0)
		die("%s: %s (build it first, or pass its path)", agentd, strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	Figures raw, suite;
	bench(self, agentd, n, &raw, &suite);
	report(n, &raw, &suite);
	return 0;
}
