/* SPDX-License-Identifier: MIT */
/* startup.c - time from exec to the initialize response, and idle RSS of the suite, against codex app-server.
 */
#include "bench_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_RUNS 10u
#define MAX_RUNS 1000u
#define IDLE_MS 300
#define MAX_PROCS 32u
#define TARGET_STARTUP_MS 50.0
#define TARGET_RSS_MB 15.0
#define REF_NOTE_STARTUP_MS 200.0
#define REF_NOTE_RSS_MB 90.0
#define REF_CODEX                                                                                            \
	"/opt/codex-ref/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"

typedef struct Proc {
	pid_t pid;
	unsigned long long start_time; /* clock ticks since boot: tells a reused pid apart */
	char comm[16];
	long rss_kb;
	long pss_kb; /* shared pages split among their users: what the process really costs */
} Proc;

/* One start: the time to the first answer and the process tree at idle. */
typedef struct Sample {
	double startup_ms;
	double cpu_ms; /* user+system CPU of the whole tree over start, idle and stop */
	long total_kb, total_pss_kb;
	Proc procs[MAX_PROCS];
	size_t proc_count;
	size_t leaked;	 /* descendants still alive after agentd exited */
	bool is_unclean; /* agentd did not exit 0 on SIGTERM */
} Sample;

typedef struct Summary {
	double p50_ms, min_ms, max_ms, rss_mb, pss_mb, cpu_ms;
} Summary;

/* Reads the answers of the agentd suite and of the reference in turn. */
static LineReader reader;

static double median_of(double *v, size_t n)
{
	doubles_sort(v, n);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- /proc ---- */

/* ppid, start time and state from /proc/<pid>/stat. Return false when the process is gone. */
static bool proc_stat(pid_t pid, pid_t *ppid, unsigned long long *start_time, char *state)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	int parent = 0;
	/* Fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime. */
	if (!p ||
	    sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   state, &parent, start_time) != 3)
		return false;
	*ppid = parent;
	return true;
}

/* The "@key %ld kB" line of /proc/<pid>/<file>, or -1. */
static long proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256], format[64];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	snprintf(format, sizeof(format), "%s %%ld kB", key);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, format, &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static void proc_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	snprintf(out, len, "?");
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

static bool proc_is_alive(const Proc *p)
{
	pid_t ppid;
	unsigned long long start;
	char state;
	return proc_stat(p->pid, &ppid, &start, &state) && start == p->start_time && state != 'Z';
}

static void sample_add(Sample *s, pid_t pid)
{
	if (s->proc_count == MAX_PROCS)
		return;
	Proc *p = &s->procs[s->proc_count];
	pid_t ppid;
	char state;
	if (!proc_stat(pid, &ppid, &p->start_time, &state))
		return;
	p->pid = pid;
	proc_comm(pid, p->comm, sizeof(p->comm));
	p->rss_kb = proc_kb(pid, "status", "VmRSS:");
	p->pss_kb = proc_kb(pid, "smaps_rollup", "Pss:");
	if (p->rss_kb < 0)
		return;
	s->total_kb += p->rss_kb;
	s->total_pss_kb += p->pss_kb > 0 ? p->pss_kb : 0;
	s->proc_count++;
}

static bool sample_has(const Sample *s, pid_t pid)
{
	for (size_t i = 0; i < s->proc_count; i++) {
		if (s->procs[i].pid == pid)
			return true;
	}
	return false;
}

/* One pass over /proc adding children of processes already in @s. Return how many were added. */
static size_t sample_add_children(Sample *s)
{
	DIR *dir = opendir("/proc");
	if (!dir)
		die("opendir /proc: %s", strerror(errno));
	size_t added = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name), ppid;
		unsigned long long start;
		char state;
		if (sample_has(s, pid) || !proc_stat(pid, &ppid, &start, &state) || !sample_has(s, ppid))
			continue;
		sample_add(s, pid);
		added++;
	}
	closedir(dir);
	return added;
}

/* @root and all its descendants with their VmRSS. */
static void sample_tree(Sample *s, pid_t root)
{
	s->proc_count = 0;
	s->total_kb = s->total_pss_kb = 0;
	sample_add(s, root);
	while (s->proc_count > 0 && sample_add_children(s) > 0)
		;
}

/* Reads lines until the one answering id 0 (notifications may come first). */
static void await_init_response(LineReader *r)
{
	for (;;) {
		const char *line = line_next(r);
		if (strncmp(line, "{\"id\":0,\"result\"", 16) == 0)
			return;
		if (strncmp(line, "{\"id\":0,", 8) == 0)
			die("initialize failed: %.300s", line);
	}
}

/* CPU time of reaped descendants so far, in ms. */
static double children_cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* ---- agentd ---- */

/* SIGTERM the suite and confirm every helper went with agentd; leftovers are killed and counted. */
static void agentd_stop(Sample *s, pid_t pid)
{
	int status = child_stop(pid);
	s->is_unclean = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	for (size_t i = 1; i < s->proc_count; i++) {
		const Proc *p = &s->procs[i];
		for (int waited = 0; waited < 1000 && proc_is_alive(p); waited++)
			sleep_ms(1);
		if (proc_is_alive(p)) {
			fprintf(stderr, "bench/startup: %s (pid %d) outlived agentd: killing it\n", p->comm,
				(int)p->pid);
			kill(p->pid, SIGKILL);
			s->leaked++;
		}
	}
}

static void agentd_run(const char *agentd, Sample *s)
{
	char sock_path[96];
	tmpdir_create();
	char **envp = agentd_env();
	tmpdir_join("a.sock", sock_path, sizeof(sock_path));
	double cpu0 = children_cpu_ms();
	double t0 = now_ms();
	pid_t pid = agentd_spawn(agentd, sock_path, envp);
	line_reader_init(&reader, agentd_connect(pid, sock_path), "agentd");
	initialize_send(reader.fd);
	await_init_response(&reader);
	s->startup_ms = now_ms() - t0;
	env_free(envp);
	sleep_ms(IDLE_MS);
	sample_tree(s, pid);
	close(reader.fd);
	agentd_stop(s, pid);
	s->cpu_ms = children_cpu_ms() - cpu0;
	tmpdir_remove();
}

/* ---- the reference: codex app-server over stdio ---- */

static void pipe_cloexec(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe2: %s", strerror(errno));
}

static void ref_run(const char *codex, Sample *s)
{
	char codex_home[80];
	int in[2], out[2];
	tmpdir_create();
	tmpdir_sub("home", codex_home, sizeof(codex_home));
	pipe_cloexec(in);
	pipe_cloexec(out);
	char **envp = env_with(NULL, codex_home);
	char *argv[] = { (char *)codex, "app-server", NULL };
	double cpu0 = children_cpu_ms();
	double t0 = now_ms();
	pid_t pid = spawn(argv, envp, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	line_reader_init(&reader, out[0], "codex app-server");
	initialize_send(in[1]);
	await_init_response(&reader);
	s->startup_ms = now_ms() - t0;
	env_free(envp);
	sleep_ms(IDLE_MS);
	sample_tree(s, pid);
	/* End of input is how a stdio app-server is told to stop; SIGTERM follows if it lingers. */
	close(in[1]);
	int status;
	if (child_exited_within(pid, 2000, &status))
		child_forget(pid);
	else
		child_stop(pid);
	s->cpu_ms = children_cpu_ms() - cpu0;
	close(out[0]);
	tmpdir_remove();
}

/* ---- report ---- */

static Summary summarize(Sample *samples, size_t runs)
{
	double ms[MAX_RUNS], kb[MAX_RUNS], pss[MAX_RUNS], cpu[MAX_RUNS];
	Summary sum = { .min_ms = samples[0].startup_ms, .max_ms = samples[0].startup_ms };
	for (size_t i = 0; i < runs; i++) {
		ms[i] = samples[i].startup_ms;
		kb[i] = (double)samples[i].total_kb;
		pss[i] = (double)samples[i].total_pss_kb;
		cpu[i] = samples[i].cpu_ms;
		sum.min_ms = ms[i] < sum.min_ms ? ms[i] : sum.min_ms;
		sum.max_ms = ms[i] > sum.max_ms ? ms[i] : sum.max_ms;
	}
	sum.p50_ms = median_of(ms, runs);
	sum.rss_mb = median_of(kb, runs) / 1024.0;
	sum.pss_mb = median_of(pss, runs) / 1024.0;
	sum.cpu_ms = median_of(cpu, runs);
	return sum;
}

/* Median RSS of the process named @comm across runs (0 when never seen). */
static double median_rss_of(const Sample *samples, size_t runs, const char *comm, size_t *count)
{
	double kb[MAX_RUNS];
	size_t n = 0;
	for (size_t i = 0; i < runs; i++) {
		for (size_t j = 0; j < samples[i].proc_count; j++) {
			if (strcmp(samples[i].procs[j].comm, comm) == 0 && n < MAX_RUNS)
				kb[n++] = (double)samples[i].procs[j].rss_kb;
		}
	}
	*count = n;
	return n ? median_of(kb, n) / 1024.0 : 0;
}

static void print_per_process(const Sample *samples, size_t runs)
{
	printf("  per process (median VmRSS):");
	for (size_t j = 0; j < samples[0].proc_count; j++) {
		size_t count;
		const char *comm = samples[0].procs[j].comm;
		double mb = median_rss_of(samples, runs, comm, &count);
		printf(" %s %.1f MB%s", comm, count > runs ? mb * (double)count / (double)runs : mb,
		       count > runs ? " (total of several)" : "");
	}
	printf("  [%zu processes]\n", samples[0].proc_count);
}

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "MISS";
}

static void report_agentd(const Summary *a, const Sample *samples, size_t runs)
{
	printf("agentd suite, %zu cold starts (exec -> initialize response over unix socket; RSS after %d ms "
	       "idle)\n",
	       runs, IDLE_MS);
	printf("  startup ms: p50 %.1f  min %.1f  max %.1f   target < %.0f ms ... %s\n", a->p50_ms, a->min_ms,
	       a->max_ms, TARGET_STARTUP_MS, verdict(a->p50_ms < TARGET_STARTUP_MS));
	printf("  idle RSS total: %.1f MB (median sum of VmRSS)   target < %.0f MB ... %s\n", a->rss_mb,
	       TARGET_RSS_MB, verdict(a->rss_mb < TARGET_RSS_MB));
	print_per_process(samples, runs);
	printf("  info: PSS total %.1f MB (shared library pages counted once); CPU per start+idle+stop %.1f "
	       "ms\n",
	       a->pss_mb, a->cpu_ms);
	size_t leaked = 0, unclean = 0;
	for (size_t i = 0; i < runs; i++) {
		leaked += samples[i].leaked;
		unclean += samples[i].is_unclean;
	}
	printf("  shutdown on SIGTERM: %zu/%zu runs exited 0, %zu helper(s) outlived agentd ... %s\n",
	       runs - unclean, runs, leaked, verdict(leaked == 0 && unclean == 0));
}

static void report_reference(const Summary *a, const Summary *r, const Sample *samples, size_t runs,
			     bool is_skipped)
{
	if (!r) {
		printf("reference codex app-server: %s; documented figures ~%.0f ms, ~%.0f MB\n",
		       is_skipped ? "skipped (-R)" : "not installed at " REF_CODEX, REF_NOTE_STARTUP_MS,
		       REF_NOTE_RSS_MB);
		return;
	}
	printf("reference codex app-server, %zu cold starts (exec -> initialize response over stdio)\n",
	       runs);
	printf("  startup ms: p50 %.1f  min %.1f  max %.1f   idle RSS total: %.1f MB\n", r->p50_ms, r->min_ms,
	       r->max_ms, r->rss_mb);
	print_per_process(samples, runs);
	printf("  info: PSS total %.1f MB; CPU per start+idle+stop %.1f ms\n", r->pss_mb, r->cpu_ms);
	printf("  agentd vs reference: startup %.1fx faster, RSS %.1fx smaller\n", r->p50_ms / a->p50_ms,
	       r->rss_mb / a->rss_mb);
}

/* ---- driver ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: startup [-r RUNS] [-R] [AGENTD]   (-R: skip the reference codex; AGENTD defaults to\n"
		"       ../agentd/agentd beside this binary)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	die_prefix_set("bench/startup");
	size_t runs = DEFAULT_RUNS;
	bool is_ref_wanted = true;
	int opt;
	while ((opt = getopt(argc, argv, "r:Rh")) != -1) {
		if (opt == 'R')
			is_ref_wanted = false;
		else if (opt != 'r' || (runs = strtoul(optarg, NULL, 10)) == 0 || runs > MAX_RUNS)
			usage();
	}
	if (argc - optind > 1)
		usage();
	char agentd[PATH_MAX + 32];
	agentd_locate(optind < argc ? argv[optind] : NULL, agentd, sizeof(agentd));
	signal(SIGPIPE, SIG_IGN);
	static Sample agentd_samples[MAX_RUNS], ref_samples[MAX_RUNS];
	bool has_ref = is_ref_wanted && access(REF_CODEX, X_OK) == 0;
	/* Alternate the two, so a burst of background load hits both alike. */
	for (size_t i = 0; i < runs; i++) {
		agentd_run(agentd, &agentd_samples[i]);
		if (has_ref)
			ref_run(REF_CODEX, &ref_samples[i]);
	}
	Summary a = summarize(agentd_samples, runs), r;
	report_agentd(&a, agentd_samples, runs);
	if (has_ref)
		r = summarize(ref_samples, runs);
	report_reference(&a, has_ref ? &r : NULL, ref_samples, runs, !is_ref_wanted);
	printf("RESULT startup p50_ms=%.1f rss_mb=%.1f\n", a.p50_ms, a.rss_mb);
	return 0;
}
