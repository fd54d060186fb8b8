/* SPDX-License-Identifier: MIT */
/* watch.c - fs/watch: write-to-fs/changed latency against a raw inotify reader, and burst coalescing. */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_N 2000u
#define WARMUP 50u
/* Raw and suite alternate in this many blocks, so both see the same background load. */
#define ROUNDS 10u
/* A write's stray events (the close after the first notification) must be over before the next. */
#define QUIET_MS 2
/* Past this a write counts as having no notification at all. */
#define EVENT_TIMEOUT_MS 1000
#define TARGET_DELTA_US 1000.0
#define BURST_FILES 100u
#define BURST_ROUNDS 100u
#define BURST_QUIET_MS 1000
#define WATCH_ID "w"
#define RAW_MASK (IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)
#define OUTLIERS_SHOWN 5u

static const char payload[] = "bench-01";

typedef struct Stats {
	double p50_us, p99_us, max_us;
} Stats;

/* The agentd suite with one connection watching @dir as WATCH_ID. */
typedef struct Suite {
	pid_t pid;
	LineReader *r;
	char dir[PATH_MAX];
	long next_id;
	size_t other_lines; /* lines that were neither fs/changed for WATCH_ID nor expected answers */
} Suite;

/* What the latency phase saw besides the numbers. */
typedef struct Anomalies {
	size_t missing;	      /* writes without any fs/changed within EVENT_TIMEOUT_MS */
	size_t notifications; /* fs/changed received in measured iterations, stray ones included */
	size_t stray;	      /* fs/changed after the first one of an iteration */
	size_t wrong_paths;   /* first fs/changed whose changedPaths was not exactly the written file */
	size_t raw_events;    /* inotify events the raw reader got, stray ones included */
	size_t raw_stray_reads;
} Anomalies;

/* One latency sample in order, to tell where outliers happened. */
typedef struct Sample {
	double us;
	size_t index;
	unsigned notifications;
} Sample;

static Stats stats_of(double *v, size_t n)
{
	doubles_sort(v, n);
	return (Stats){ percentile_sorted(v, n, 50), percentile_sorted(v, n, 99), v[n - 1] };
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p)
		die("out of memory");
	return p;
}

/* ---- files ---- */

static void file_write(const char *path, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	ssize_t n = write(fd, payload, sizeof(payload) - 1);
	if (n != (ssize_t)(sizeof(payload) - 1))
		die("write %s: %s", path, n < 0 ? strerror(errno) : "short write");
	if (close(fd) < 0)
		die("close %s: %s", path, strerror(errno));
}

static void path_join(const char *dir, const char *name, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
		die("path too long: %s/%s", dir, name);
}

/* ---- lines from agentd ---- */

/* @ms rounded up to a whole poll() timeout; nothing left is 0. */
static int ms_ceil(double ms)
{
	if (ms <= 0)
		return 0;
	int whole = (int)ms;
	return whole + (ms > whole);
}

/* The next line within @timeout_ms, or NULL when none came; EOF and errors are fatal. */
static char *line_next_within(LineReader *r, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	for (;;) {
		char *line = line_take(r);
		if (line)
			return line;
		double left = deadline - now_ms();
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		int rc = poll(&p, 1, ms_ceil(left));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			die("poll: %s", strerror(errno));
		if (rc == 0)
			return NULL;
		ssize_t got = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			die("%s closed the connection (%s)", r->peer, got < 0 ? strerror(errno) : "EOF");
		r->len += (size_t)got;
	}
}

static bool is_changed_for_watch(const char *line)
{
	return strncmp(line, "{\"method\":\"fs/changed\"", 22) == 0 &&
	       strstr(line, "\"params\":{\"watchId\":\"" WATCH_ID "\"") != NULL;
}

typedef void (*PathFn)(void *ctx, const char *path, size_t len);

/* Calls @fn for every string of "changedPaths" in @line. Return how many, or -1 when malformed. */
static long changed_paths_each(const char *line, PathFn fn, void *ctx)
{
	static const char key[] = "\"changedPaths\":[";
	const char *p = strstr(line, key);
	if (!p)
		return -1;
	p += sizeof(key) - 1;
	long count = 0;
	while (*p == '"') {
		const char *end = p + 1;
		while (*end && *end != '"')
			end += end[0] == '\\' && end[1] ? 2 : 1;
		if (!*end)
			return -1;
		fn(ctx, p + 1, (size_t)(end - p - 1));
		count++;
		p = end + 1;
		if (*p == ',')
			p++;
	}
	return *p == ']' ? count : -1;
}

/* The answer to @id: notifications before it are skipped; an error answer is fatal. */
static char *answer_await(Suite *s, long id)
{
	char prefix[32];
	int len = snprintf(prefix, sizeof(prefix), "{\"id\":%ld,", id);
	for (;;) {
		char *line = line_next_within(s->r, IO_TIMEOUT_MS);
		if (!line)
			die("agentd did not answer request %ld within %d ms", id, IO_TIMEOUT_MS);
		if (strncmp(line, prefix, (size_t)len) != 0) {
			s->other_lines++;
			continue;
		}
		if (strncmp(line + len, "\"result\"", 8) != 0)
			die("request %ld failed: %.300s", id, line);
		return line;
	}
}

/* ---- the agentd suite ---- */

static void config_write(const char *text)
{
	char path[PATH_MAX];
	tmpdir_join("home/config.toml", path, sizeof(path));
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die("cannot write %s", path);
}

/* A fresh temp dir, runtime dir and CODEX_HOME; agentd started with @config (NULL: none). */
static void suite_start(Suite *s, const char *agentd, const char *config)
{
	char sock_path[96];
	tmpdir_create();
	tmpdir_join("agentd.sock", sock_path, sizeof(sock_path));
	tmpdir_sub("watched", s->dir, sizeof(s->dir));
	char **envp = agentd_env();
	if (config)
		config_write(config);
	s->pid = agentd_spawn(agentd, sock_path, envp);
	env_free(envp);
	s->r = xcalloc(1, sizeof(*s->r));
	s->next_id = 1;
	s->other_lines = 0;
	line_reader_init(s->r, agentd_connect(s->pid, sock_path), "agentd");
	initialize_send(s->r->fd);
	answer_await(s, 0);
}

static void suite_watch(Suite *s)
{
	char req[PATH_MAX + 128], expect[PATH_MAX + 32];
	long id = s->next_id++;
	int len = snprintf(req, sizeof(req),
			   "{\"id\":%ld,\"method\":\"fs/watch\",\"params\":{\"watchId\":\"" WATCH_ID
			   "\",\"path\":\"%s\"}}\n",
			   id, s->dir);
	send_all(s->r->fd, req, (size_t)len);
	const char *line = answer_await(s, id);
	snprintf(expect, sizeof(expect), "\"result\":{\"path\":\"%s\"}", s->dir);
	if (!strstr(line, expect))
		die("fs/watch answered %.300s", line);
}

/* Close the connection, SIGTERM agentd (its helpers follow it) and remove the temp dir. */
static void suite_stop(Suite *s)
{
	close(s->r->fd);
	free(s->r);
	s->r = NULL;
	int status = child_stop(s->pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "bench/watch: agentd did not exit 0 on SIGTERM (status %#x)\n", status);
	tmpdir_remove();
}

/* ---- latency: one write, the first fs/changed for it ---- */

typedef struct PathCheck {
	const char *want;
	size_t count;
	bool is_match;
} PathCheck;

static void path_check(void *ctx, const char *path, size_t len)
{
	PathCheck *c = ctx;
	c->count++;
	c->is_match = c->count == 1 && strlen(c->want) == len && memcmp(c->want, path, len) == 0;
}

/* Read until nothing arrives for QUIET_MS; return the fs/changed among what came. */
static unsigned suite_drain(Suite *s)
{
	unsigned changed = 0;
	const char *line;
	while ((line = line_next_within(s->r, QUIET_MS))) {
		if (is_changed_for_watch(line))
			changed++;
		else
			s->other_lines++;
	}
	return changed;
}

/* One write and the wait for its notification; the sample is negative when none came. */
static double suite_once(Suite *s, const char *file, Anomalies *an, unsigned *notifications)
{
	double t0 = now_us();
	file_write(file, O_TRUNC);
	double deadline = now_ms() + EVENT_TIMEOUT_MS, us = -1;
	*notifications = 0;
	for (;;) {
		double left = deadline - now_ms();
		const char *line = left > 0 ? line_next_within(s->r, ms_ceil(left)) : NULL;
		if (!line)
			break;
		if (!is_changed_for_watch(line)) {
			s->other_lines++;
			continue;
		}
		us = now_us() - t0;
		(*notifications)++;
		PathCheck c = { .want = file };
		if (an && (changed_paths_each(line, path_check, &c) != 1 || !c.is_match))
			an->wrong_paths++;
		break;
	}
	unsigned stray = suite_drain(s);
	*notifications += stray;
	if (an) {
		an->missing += us < 0;
		an->stray += stray;
		an->notifications += *notifications;
	}
	return us;
}

static void suite_latency(Suite *s, const char *file, Sample *out, size_t first, size_t n, Anomalies *an)
{
	for (size_t i = 0; i < n; i++) {
		unsigned notes;
		double us = suite_once(s, file, an, &notes);
		if (out)
			out[i] = (Sample){ us, first + i, notes };
	}
}

/* ---- latency: the floor, a raw inotify reader in this process ---- */

typedef struct Raw {
	int fd;
	char dir[PATH_MAX];
	char file[PATH_MAX];
} Raw;

static void raw_open(Raw *raw)
{
	tmpdir_sub("raw", raw->dir, sizeof(raw->dir));
	path_join(raw->dir, "f", raw->file, sizeof(raw->file));
	file_write(raw->file, O_CREAT | O_TRUNC);
	raw->fd = inotify_init1(IN_CLOEXEC);
	if (raw->fd < 0)
		die("inotify_init1: %s", strerror(errno));
	if (inotify_add_watch(raw->fd, raw->dir, RAW_MASK) < 0)
		die("inotify_add_watch %s: %s", raw->dir, strerror(errno));
}

static size_t raw_count(const char *buf, ssize_t n)
{
	size_t events = 0;
	for (const char *p = buf; p < buf + n; events++)
		p += sizeof(struct inotify_event) + ((const struct inotify_event *)p)->len;
	return events;
}

static double raw_once(Raw *raw, Anomalies *an)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	double t0 = now_us();
	file_write(raw->file, O_TRUNC);
	ssize_t n;
	while ((n = read(raw->fd, buf, sizeof(buf))) < 0 && errno == EINTR)
		;
	double us = now_us() - t0;
	if (n <= 0)
		die("read inotify: %s", n < 0 ? strerror(errno) : "EOF");
	size_t events = raw_count(buf, n);
	/* The same quiet wait as the suite gets, so both loops have the same rhythm. */
	struct pollfd p = { .fd = raw->fd, .events = POLLIN };
	while (poll(&p, 1, QUIET_MS) > 0) {
		if ((n = read(raw->fd, buf, sizeof(buf))) <= 0)
			break;
		events += raw_count(buf, n);
		if (an)
			an->raw_stray_reads++;
	}
	if (an)
		an->raw_events += events;
	return us;
}

static void raw_latency(Raw *raw, double *out, size_t n, Anomalies *an)
{
	for (size_t i = 0; i < n; i++) {
		double us = raw_once(raw, an);
		if (out)
			out[i] = us;
	}
}

/* ---- phase 1+2: latency with debounce 0, raw and suite interleaved ---- */

typedef struct Latency {
	Stats suite, raw;
	size_t n;
	size_t over_1ms, over_10ms;
	size_t raw_over_1ms, raw_over_10ms;
	Sample worst[OUTLIERS_SHOWN];
	size_t worst_count;
	Anomalies an;
	size_t other_lines;
} Latency;

static int cmp_sample_desc(const void *a, const void *b)
{
	double x = ((const Sample *)a)->us, y = ((const Sample *)b)->us;
	return (x < y) - (x > y);
}

static void latency_summarize(Latency *lat, Sample *samples, double *raw_us, size_t n)
{
	double *suite_us = xcalloc(n, sizeof(*suite_us));
	size_t got = 0;
	for (size_t i = 0; i < n; i++) {
		if (samples[i].us < 0)
			continue;
		suite_us[got++] = samples[i].us;
		lat->over_1ms += samples[i].us > 1000;
		lat->over_10ms += samples[i].us > 10000;
	}
	if (got == 0)
		die("no write was ever notified");
	for (size_t i = 0; i < n; i++) {
		lat->raw_over_1ms += raw_us[i] > 1000;
		lat->raw_over_10ms += raw_us[i] > 10000;
	}
	lat->suite = stats_of(suite_us, got);
	lat->raw = stats_of(raw_us, n);
	qsort(samples, n, sizeof(*samples), cmp_sample_desc);
	lat->worst_count = n < OUTLIERS_SHOWN ? n : OUTLIERS_SHOWN;
	memcpy(lat->worst, samples, lat->worst_count * sizeof(*samples));
	free(suite_us);
}

static void measure_latency(const char *agentd, size_t n, Latency *lat)
{
	Suite s = { 0 };
	Raw raw;
	char file[PATH_MAX];
	suite_start(&s, agentd, "[watchd]\ndebounce_ms = 0\n");
	path_join(s.dir, "f", file, sizeof(file));
	file_write(file, O_CREAT | O_TRUNC); /* before the watch: its creation is no event */
	raw_open(&raw);
	suite_watch(&s);
	suite_drain(&s);
	Sample *samples = xcalloc(n, sizeof(*samples));
	double *raw_us = xcalloc(n, sizeof(*raw_us));
	raw_latency(&raw, NULL, WARMUP, NULL);
	suite_latency(&s, file, NULL, 0, WARMUP, NULL);
	size_t block = (n + ROUNDS - 1) / ROUNDS;
	for (size_t off = 0; off < n; off += block) {
		size_t count = n - off < block ? n - off : block;
		raw_latency(&raw, raw_us + off, count, &lat->an);
		suite_latency(&s, file, samples + off, off, count, &lat->an);
	}
	lat->n = n;
	lat->other_lines = s.other_lines;
	latency_summarize(lat, samples, raw_us, n);
	free(samples);
	free(raw_us);
	close(raw.fd);
	suite_stop(&s);
}

/* ---- phase 3: a burst with the default debounce ---- */

typedef struct Burst {
	size_t writes;
	double write_ms;      /* the write loop alone */
	double first_ms;      /* burst start -> first notification read */
	double last_ms;	      /* burst start -> last notification read */
	double emitted_ms[8]; /* burst start -> emittedAtMs of the first notifications (wall clock, ms) */
	size_t notifications;
	size_t path_entries; /* changedPaths entries over all notifications */
	size_t distinct;     /* distinct files of the burst named */
	size_t root_entries; /* entries naming the watched directory itself (a collapsed batch) */
	size_t foreign;	     /* entries naming neither */
	size_t sizes[8];     /* changedPaths length of the first notifications */
	size_t other_lines;
} Burst;

typedef struct BurstSeen {
	const char *dir;
	size_t dir_len;
	bool seen[BURST_FILES];
	Burst *b;
} BurstSeen;

static void burst_path(void *ctx, const char *path, size_t len)
{
	BurstSeen *bs = ctx;
	bs->b->path_entries++;
	if (len == bs->dir_len && memcmp(path, bs->dir, len) == 0) {
		bs->b->root_entries++;
		return;
	}
	unsigned k;
	char name[16];
	if (len == bs->dir_len + 5 && memcmp(path, bs->dir, bs->dir_len) == 0 && path[bs->dir_len] == '/') {
		memcpy(name, path + bs->dir_len + 1, 4);
		name[4] = '\0';
		if (name[0] == 'f' && sscanf(name + 1, "%3u", &k) == 1 && k < BURST_FILES) {
			bs->seen[k] = true;
			return;
		}
	}
	bs->b->foreign++;
}

static double wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The emittedAtMs of a notification line, or -1. */
static double emitted_at_ms(const char *line)
{
	const char *p = strstr(line, "\"emittedAtMs\":");
	return p ? strtod(p + 14, NULL) : -1;
}

static void measure_burst(const char *agentd, Burst *b)
{
	Suite s = { 0 };
	static char files[BURST_FILES][PATH_MAX];
	suite_start(&s, agentd, NULL);
	for (unsigned k = 0; k < BURST_FILES; k++) {
		char name[16];
		snprintf(name, sizeof(name), "f%03u", k);
		path_join(s.dir, name, files[k], sizeof(files[k]));
		file_write(files[k],
			   O_CREAT | O_TRUNC); /* created before the watch: only modifications count */
	}
	suite_watch(&s);
	suite_drain(&s);
	/* Round robin: file k's 100 writes are spread over the whole burst. */
	double t0 = now_us(), wall0 = wall_ms();
	for (unsigned round = 0; round < BURST_ROUNDS; round++) {
		for (unsigned k = 0; k < BURST_FILES; k++)
			file_write(files[k], O_TRUNC);
	}
	b->writes = (size_t)BURST_ROUNDS * BURST_FILES;
	b->write_ms = (now_us() - t0) / 1e3;
	BurstSeen bs = { .dir = s.dir, .dir_len = strlen(s.dir), .b = b };
	const char *line;
	while ((line = line_next_within(s.r, BURST_QUIET_MS))) {
		if (!is_changed_for_watch(line)) {
			s.other_lines++;
			continue;
		}
		double at = (now_us() - t0) / 1e3;
		if (b->notifications == 0)
			b->first_ms = at;
		b->last_ms = at;
		size_t before = b->path_entries;
		if (changed_paths_each(line, burst_path, &bs) < 0)
			die("malformed fs/changed: %.300s", line);
		if (b->notifications < sizeof(b->sizes) / sizeof(b->sizes[0])) {
			b->sizes[b->notifications] = b->path_entries - before;
			b->emitted_ms[b->notifications] = emitted_at_ms(line) - wall0;
		}
		b->notifications++;
	}
	for (unsigned k = 0; k < BURST_FILES; k++)
		b->distinct += bs.seen[k];
	b->other_lines = s.other_lines;
	suite_stop(&s);
}

/* ---- report ---- */

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "MISS";
}

static void report_latency(const Latency *lat)
{
	double delta = lat->suite.p50_us - lat->raw.p50_us;
	printf("fs/watch latency: N=%zu writes per side (after %u warm-up), open(O_TRUNC)+write(%zu B)+close "
	       "of one file;\n"
	       "raw and suite interleaved in %u blocks; %d ms of quiet after each; debounce_ms = 0\n",
	       lat->n, WARMUP, sizeof(payload) - 1, ROUNDS, QUIET_MS);
	printf("%-52s %10s %10s %10s\n", "path", "p50 us", "p99 us", "max us");
	printf("%-52s %10.1f %10.1f %10.1f\n", "raw inotify, blocking read() in this process",
	       lat->raw.p50_us, lat->raw.p99_us, lat->raw.max_us);
	printf("%-52s %10.1f %10.1f %10.1f\n", "suite: inotify->watchd->agentd->client fs/changed",
	       lat->suite.p50_us, lat->suite.p99_us, lat->suite.max_us);
	printf("target: suite p50 within %.0f us of raw inotify ... %s (delta p50 %.1f us, p99 %.1f us)\n",
	       TARGET_DELTA_US, verdict(delta <= TARGET_DELTA_US), delta,
	       lat->suite.p99_us - lat->raw.p99_us);
	const Anomalies *an = &lat->an;
	printf("  suite: %zu/%zu writes notified (%zu missing after %d ms), %zu fs/changed in all (%.2f per "
	       "write, "
	       "%zu stray), %zu first notifications with other paths than the file, %zu other lines\n",
	       lat->n - an->missing, lat->n, an->missing, EVENT_TIMEOUT_MS, an->notifications,
	       (double)an->notifications / (double)lat->n, an->stray, an->wrong_paths, lat->other_lines);
	printf("  suite: %zu writes over 1 ms, %zu over 10 ms; slowest:", lat->over_1ms, lat->over_10ms);
	for (size_t i = 0; i < lat->worst_count; i++)
		printf(" %.0f us (#%zu, %u fs/changed)", lat->worst[i].us, lat->worst[i].index,
		       lat->worst[i].notifications);
	printf("\n  raw: %zu writes over 1 ms, %zu over 10 ms; %.2f inotify events per write, %zu writes "
	       "with events "
	       "after the first read\n",
	       lat->raw_over_1ms, lat->raw_over_10ms, (double)an->raw_events / (double)lat->n,
	       an->raw_stray_reads);
}

static void report_burst(const Burst *b)
{
	printf("\nburst: %zu writes (open O_TRUNC+write+close) round robin over %u files in %.1f ms; default "
	       "debounce "
	       "(200 ms); collected until %d ms of quiet\n",
	       b->writes, BURST_FILES, b->write_ms, BURST_QUIET_MS);
	printf("  notifications %zu, changedPaths entries %zu, events per notification %.1f, distinct paths "
	       "%zu/%u ... %s\n",
	       b->notifications, b->path_entries,
	       b->notifications ? (double)b->writes / (double)b->notifications : 0, b->distinct, BURST_FILES,
	       verdict(b->distinct == BURST_FILES));
	printf("  first notification %.1f ms and last %.1f ms after the burst began; entries naming the "
	       "directory "
	       "itself %zu, others %zu; other lines %zu\n",
	       b->first_ms, b->last_ms, b->root_entries, b->foreign, b->other_lines);
	size_t shown = b->notifications < sizeof(b->sizes) / sizeof(b->sizes[0])
			       ? b->notifications
			       : sizeof(b->sizes) / sizeof(b->sizes[0]);
	const char *more = b->notifications > shown ? " ..." : "";
	printf("  changedPaths per notification:");
	for (size_t i = 0; i < shown; i++)
		printf(" %zu", b->sizes[i]);
	printf("%s\n  emittedAtMs after the burst began (wall clock, ms):", more);
	for (size_t i = 0; i < shown; i++)
		printf(" %.0f", b->emitted_ms[i]);
	printf("%s\n", more);
}

/* ---- driver ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: watch [-n N] [AGENTD]   (AGENTD defaults to ../agentd/agentd beside this binary)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	die_prefix_set("bench/watch");
	size_t n = DEFAULT_N;
	int opt;
	while ((opt = getopt(argc, argv, "n:h")) != -1) {
		if (opt != 'n' || (n = strtoul(optarg, NULL, 10)) == 0)
			usage();
	}
	if (argc - optind > 1)
		usage();
	char agentd[PATH_MAX + 32];
	agentd_locate(optind < argc ? argv[optind] : NULL, agentd, sizeof(agentd));
	signal(SIGPIPE, SIG_IGN);
	static Latency lat;
	static Burst burst;
	measure_latency(agentd, n, &lat);
	measure_burst(agentd, &burst);
	report_latency(&lat);
	report_burst(&burst);
	printf("RESULT watch p50_us=%.1f p99_us=%.1f raw_p50_us=%.1f raw_p99_us=%.1f delta_p50_us=%.1f "
	       "burst_notifications=%zu burst_events_per_notification=%.1f\n",
	       lat.suite.p50_us, lat.suite.p99_us, lat.raw.p50_us, lat.raw.p99_us,
	       lat.suite.p50_us - lat.raw.p50_us, burst.notifications,
	       burst.notifications ? (double)burst.writes / (double)burst.notifications : 0.0);
	return 0;
}
