/* SPDX-License-Identifier: MIT */
/* broker.c - round-trip latency and pipelined throughput: raw nng ipc pair0 against the agentd suite. */
#include "bench_util.h"

#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_N 5000u
#define WARMUP 200u
#define DEPTH 16u
#define MSG_BYTES 100u
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

/* The two systems under test, both running at once. */
typedef struct Peers {
	nng_socket raw;
	pid_t echo_pid, agentd_pid;
	LineReader *client;
	long next_id;
} Peers;

static Stats stats_of(double *v, size_t n)
{
	doubles_sort(v, n);
	return (Stats){ percentile_sorted(v, n, 50), percentile_sorted(v, n, 99) };
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
	snprintf(url, sizeof(url), "ipc://%s/echo.sock", tmpdir_path());
	*s = pair_open();
	nng_check(nng_listen(*s, url, NULL, 0), "nng_listen");
	char *argv[] = { (char *)self, "--echo", url, NULL };
	return spawn(argv, environ, -1, -1);
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
	int len = snprintf(req, sizeof(req),
			   "{\"id\":%ld,\"method\":\"agentd/health\",\"params\":{\"service\":\"execd\"}}\n",
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

static void agentd_initialize(LineReader *r)
{
	initialize_send(r->fd);
	if (response_id(line_next(r)) != 0)
		die("initialize answered with another id");
}

static LineReader *suite_start(const char *agentd, pid_t *pid)
{
	char sock_path[96];
	tmpdir_join("agentd.sock", sock_path, sizeof(sock_path));
	char **envp = agentd_env();
	*pid = agentd_spawn(agentd, sock_path, envp);
	env_free(envp);
	LineReader *r = calloc(1, sizeof(*r));
	if (!r)
		die("out of memory");
	line_reader_init(r, agentd_connect(*pid, sock_path), "agentd");
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

/* The upper median of ROUNDS block rates. */
static double median_rate(double *rps)
{
	doubles_sort(rps, ROUNDS);
	return percentile_sorted(rps, ROUNDS, 50);
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
	raw->rps = median_rate(raw_rps);
	suite->rps = median_rate(suite_rps);
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

static void report(size_t n, const Figures *raw, const Figures *suite)
{
	double ratio = suite->lat.p50_us / raw->lat.p50_us;
	printf("broker round trips: N=%zu sequential (after %u warm-up), pipelined with %u in flight;\n"
	       "raw and suite interleaved in %u blocks; pipelined rate = median block\n",
	       n, WARMUP, DEPTH, ROUNDS);
	printf("%-44s %10s %10s %14s\n", "path", "p50 us", "p99 us", "pipelined/s");
	printf("%-44s %10.1f %10.1f %14.0f\n", "raw nng ipc pair0 (100 B echo, 2 procs)", raw->lat.p50_us,
	       raw->lat.p99_us, raw->rps);
	printf("%-44s %10.1f %10.1f %14.0f\n", "suite: client->agentd->execd->agentd->client",
	       suite->lat.p50_us, suite->lat.p99_us, suite->rps);
	printf("ratio suite/raw: p50 %.2fx, p99 %.2fx, throughput %.2fx\n", ratio,
	       suite->lat.p99_us / raw->lat.p99_us, suite->rps / raw->rps);
	printf("target: within %.0fx of raw nng at p50 ... %s (%.2fx)\n", TARGET_RATIO,
	       ratio <= TARGET_RATIO ? "PASS" : "MISS", ratio);
	printf("RESULT broker p50_us=%.1f p99_us=%.1f raw_p50_us=%.1f raw_p99_us=%.1f ratio_p50=%.2f "
	       "pipelined_rps=%.0f raw_pipelined_rps=%.0f\n",
	       suite->lat.p50_us, suite->lat.p99_us, raw->lat.p50_us, raw->lat.p99_us, ratio, suite->rps,
	       raw->rps);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: broker [-n N] [AGENTD]   (AGENTD defaults to ../agentd/agentd beside this binary)\n"
		"       broker --echo URL      (internal: the raw nng echo peer)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	die_prefix_set("bench/broker");
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
	agentd_locate(optind < argc ? argv[optind] : NULL, agentd, sizeof(agentd));
	signal(SIGPIPE, SIG_IGN);
	Figures raw, suite;
	bench(self, agentd, n, &raw, &suite);
	report(n, &raw, &suite);
	return 0;
}
