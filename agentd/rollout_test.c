/* SPDX-License-Identifier: MIT */
/* rollout_test.c - cmocka tests for rollout files on a real file system (a mkdtemp CODEX_HOME):
 * create/append/load round trips in the reference's line format, crash repair (half a last line,
 * a write cut short by RLIMIT_FSIZE), malformed lines, find/archive/unarchive, thread names,
 * listing order, paging across threads that share a second, every filter, the refusals (hostile
 * ids, bad cursors), modes 0600/0700, and the time it takes to list 1,000 threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rollout.h"

/* 2026-12-02T10:15:44.571Z, the reference capture's first line. */
#define T0_MS INT64_C(1796206544571)

static char home[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int make_home(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/rollout_test.XXXXXX");
	return mkdtemp(home) ? 0 : -1;
}

static int remove_home(void **state)
{
	(void)state;
	return nftw(home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *grown = realloc(buf, cap);
			assert_non_null(grown);
			buf = grown;
		}
		size_t n = fread(buf + len, 1, 4096, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

static void append_raw(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void make_id(unsigned n, char out[37])
{
	snprintf(out, 37, "01a23641-0000-7000-8000-%012x", n);
}

static json_t *meta_payload(const char *cwd)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "cwd", cwd, "originator", "agentd", "cli_version",
			 "0.169.0", "source", "vscode", "model_provider", "openai");
}

/* ---- collecting loaded lines ---------------------------------------------------------------- */

typedef struct Loaded {
	size_t count;
	char types[32][32];
	int64_t ordinals[32];
	json_t *payloads[32];
	json_t *metadata[32];
	int stop_at; /* return 7 from this line (1-based); 0: never */
} Loaded;

static int collect(void *ctx, const RolloutLine *line)
{
	Loaded *l = ctx;
	if (l->count < 32) {
		snprintf(l->types[l->count], sizeof(l->types[0]), "%s", line->type);
		l->ordinals[l->count] = line->ordinal;
		l->payloads[l->count] = json_incref(line->payload);
		l->metadata[l->count] = line->metadata ? json_incref(line->metadata) : NULL;
		assert_int_equal(strlen(line->timestamp), strlen("2026-12-02T10:15:44.571Z"));
		assert_int_equal(line->timestamp[23], 'Z');
	}
	l->count++;
	return l->stop_at && (int)l->count == l->stop_at ? 7 : 0;
}

static void loaded_free(Loaded *l)
{
	for (size_t i = 0; i < l->count && i < 32; i++) {
		json_decref(l->payloads[i]);
		json_decref(l->metadata[i]);
	}
	memset(l, 0, sizeof(*l));
}

/* Every line of @path is a JSON object (the file is clean), and there are @lines of them. */
static void assert_clean_file(const char *path, size_t lines)
{
	size_t len;
	char *text = slurp(path, &len);
	assert_true(len > 0);
	assert_int_equal(text[len - 1], '\n');
	size_t n = 0;
	for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		json_error_t jerr;
		json_t *v = json_loadb(line, (size_t)(nl - line), 0, &jerr);
		if (!v)
			fail_msg("line %zu of %s does not parse: %s", n + 1, path, jerr.text);
		json_decref(v);
		n++;
	}
	assert_int_equal(n, lines);
	free(text);
}

static Rollout *create_ok(const char *id, int64_t now_ms)
{
	Rollout *r = NULL;
	char err[256] = "";
	json_t *meta = meta_payload("/work/a");
	int rc = rollout_create(home, id, now_ms, meta, &r, err, sizeof(err));
	json_decref(meta);
	if (rc < 0)
		fail_msg("rollout_create: %d %s", rc, err);
	return r;
}

/* ---- create / append / load ------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
	(void)state;
	char id[37];
	make_id(1, id);
	Rollout *r = create_ok(id, T0_MS);
	char path[1024];
	snprintf(path, sizeof(path), "%s", rollout_path(r));

	/* The name is the reference's, in local time. */
	time_t secs = (time_t)(T0_MS / 1000);
	struct tm lt;
	localtime_r(&secs, &lt);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%s/sessions/%04d/%02d/%02d/rollout-%04d-%02d-%02dT%02d-%02d-%02d-%s.jsonl", home,
		 lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday, lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday,
		 lt.tm_hour, lt.tm_min, lt.tm_sec, id);
	assert_string_equal(path, want);

	json_t *msg = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "type", "message", "role", "user", "content",
				"type", "input_text", "text", "hi ☃");
	json_t *md = json_pack("{s:i}", "history_sequence", 3);
	json_t *ev = json_pack("{s:s, s:s}", "type", "task_complete", "turn_id", "t1");
	assert_int_equal(rollout_append_with_metadata(r, "response_item", msg, md), 0);
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	assert_int_equal(rollout_sync(r), 0);
	assert_int_equal(rollout_sync(r), 0);
	rollout_close(r);

	/* The reference's line layout, key order included. */
	char *text = slurp(path, NULL);
	assert_memory_equal(
		text,
		"{\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"ordinal\":0,\"type\":\"session_meta\","
		"\"payload\":{\"id\":\"",
		strlen("{\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"ordinal\":0,\"type\":\"session_meta\","
		       "\"payload\":{\"id\":\""));
	assert_non_null(strstr(text, "\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"cwd\":\"/work/a\""));
	assert_non_null(
		strstr(text, ",\"ordinal\":1,\"type\":\"response_item\",\"payload\":{\"type\":\"message\""));
	assert_non_null(strstr(text, "},\"metadata\":{\"history_sequence\":3}}\n"));
	assert_non_null(strstr(text, "\"hi ☃\"")); /* UTF-8 as is, like serde_json */
	free(text);

	Loaded l = { 0 };
	char warning[256] = "x";
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_string_equal(warning, "");
	assert_int_equal(l.count, 3);
	assert_string_equal(l.types[0], "session_meta");
	assert_string_equal(l.types[1], "response_item");
	assert_string_equal(l.types[2], "event_msg");
	for (int i = 0; i < 3; i++)
		assert_int_equal(l.ordinals[i], i);
	assert_string_equal(json_string_value(json_object_get(l.payloads[0], "id")), id);
	assert_string_equal(json_string_value(json_object_get(l.payloads[0], "timestamp")),
			    "2026-12-02T10:15:44.571Z");
	assert_string_equal(json_string_value(json_object_get(l.payloads[0], "originator")), "agentd");
	assert_true(json_equal(l.payloads[1], msg));
	assert_true(json_equal(l.metadata[1], md));
	assert_true(json_equal(l.payloads[2], ev));
	assert_null(l.metadata[2]);
	loaded_free(&l);
	json_decref(msg);
	json_decref(md);
	json_decref(ev);

	/* Private: the file 0600, every directory this made 0700. */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", path);
	for (int i = 0; i < 4; i++) {
		*strrchr(dir, '/') = '\0';
		assert_int_equal(stat(dir, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	assert_string_equal(strrchr(dir, '/'), "/sessions");
}

static void test_create_refusals(void **state)
{
	(void)state;
	static const char *const hostile[] = {
		"../../../../etc/passwd",
		"01a23641-0000-7000-8000-00000000000/",
		"01a23641/0000-7000-8000-000000000001",
		"..",
		"",
		"01a23641-0000-7000-8000-0000000000011",
		"01a23641-0000-7000-8000-00000000000g",
		"01a23641_0000_7000_8000_000000000001",
	};
	json_t *meta = meta_payload("/w");
	Rollout *r = (Rollout *)&r;
	char err[256];
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		assert_false(rollout_thread_id_is_valid(hostile[i]));
		assert_int_equal(rollout_create(home, hostile[i], T0_MS, meta, &r, err, sizeof(err)),
				 -EINVAL);
		assert_null(r);
		char path[1024];
		bool archived;
		assert_int_equal(rollout_find(home, hostile[i], true, path, sizeof(path), &archived),
				 -EINVAL);
		assert_int_equal(rollout_archive(home, hostile[i], err, sizeof(err)), -EINVAL);
		assert_int_equal(rollout_unarchive(home, hostile[i], path, sizeof(path), err, sizeof(err)),
				 -EINVAL);
		assert_int_equal(rollout_name_set(home, hostile[i], "x", T0_MS), -EINVAL);
	}
	assert_int_equal(rollout_create(home, NULL, T0_MS, meta, &r, err, sizeof(err)), -EINVAL);
	assert_true(rollout_thread_id_is_valid("01A23641-0000-7000-8000-00000000000F"));

	char id[37];
	make_id(2, id);
	assert_int_equal(rollout_create("relative/home", id, T0_MS, meta, &r, err, sizeof(err)), -EINVAL);
	json_t *array = json_array();
	assert_int_equal(rollout_create(home, id, T0_MS, array, &r, err, sizeof(err)), -EINVAL);
	json_decref(array);
	char other[37];
	make_id(3, other);
	json_t *wrong = json_pack("{s:s}", "id", other);
	assert_int_equal(rollout_create(home, id, T0_MS, wrong, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not the thread id"));
	json_decref(wrong);

	/* O_EXCL: the same thread in the same second is refused and the first file kept. */
	assert_int_equal(rollout_create(home, id, T0_MS, meta, &r, err, sizeof(err)), 0);
	char path[1024];
	snprintf(path, sizeof(path), "%s", rollout_path(r));
	rollout_close(r);
	assert_int_equal(rollout_create(home, id, T0_MS, meta, &r, err, sizeof(err)), -EEXIST);
	assert_null(r);
	assert_clean_file(path, 1);
	json_decref(meta);

	/* Nothing was created by the refusals: one directory of sessions, one file. */
	char sessions[1024];
	snprintf(sessions, sizeof(sessions), "%s/etc", home);
	struct stat st;
	assert_int_equal(stat(sessions, &st), -1);

	Rollout *ok = create_ok(other, T0_MS);
	json_t *arr = json_array();
	json_t *obj = json_object();
	assert_int_equal(rollout_append(ok, "", obj), -EINVAL);
	assert_int_equal(rollout_append(ok, NULL, NULL), -EINVAL);
	assert_int_equal(rollout_append(ok, "event_msg", NULL), -EINVAL);
	assert_int_equal(rollout_append_with_metadata(ok, "response_item", obj, arr), -EINVAL);
	json_decref(arr);
	json_decref(obj);
	assert_clean_file(rollout_path(ok), 1);
	rollout_close(ok);
	rollout_close(NULL);
}

/* ---- crash repair ----------------------------------------------------------------------------- */

static void test_truncated_last_line(void **state)
{
	(void)state;
	char id[37];
	make_id(10, id);
	Rollout *r = create_ok(id, T0_MS);
	char path[1024];
	snprintf(path, sizeof(path), "%s", rollout_path(r));
	json_t *ev = json_pack("{s:s}", "type", "task_started");
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	rollout_close(r);
	/* A crash in the middle of the next line. */
	append_raw(path,
		   "{\"timestamp\":\"2026-12-02T10:15:45.000Z\",\"ordinal\":3,\"type\":\"event_msg\",\"payl");

	Loaded l = { 0 };
	char warning[512];
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_int_equal(l.count, 3);
	assert_non_null(strstr(warning, "ignored a truncated last line"));
	assert_non_null(strstr(warning, path));
	loaded_free(&l);

	/* Resuming cuts it off; what is appended next is clean and numbered on. */
	char err[256];
	assert_int_equal(rollout_open(path, &r, err, sizeof(err)), 0);
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	assert_int_equal(rollout_sync(r), 0);
	rollout_close(r);
	assert_clean_file(path, 4);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_string_equal(warning, "");
	assert_int_equal(l.count, 4);
	assert_int_equal(l.ordinals[3], 3);
	loaded_free(&l);

	/* A whole record that only lost its newline is kept, and terminated on resume. */
	append_raw(path, "{\"timestamp\":\"2026-12-02T10:15:46.000Z\",\"ordinal\":4,\"type\":\"event_msg\","
			 "\"payload\":{}}");
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_string_equal(warning, "");
	assert_int_equal(l.count, 5);
	loaded_free(&l);
	assert_int_equal(rollout_open(path, &r, err, sizeof(err)), 0);
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	rollout_close(r);
	assert_clean_file(path, 6);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_int_equal(l.count, 6);
	assert_int_equal(l.ordinals[5], 5);
	loaded_free(&l);

	/* Half a line with no newline anywhere before it in its chunk, and a file that never had
	 * ordinals: the appended lines have none either. */
	char old_path[1024];
	snprintf(old_path, sizeof(old_path), "%s/old.jsonl", home);
	FILE *f = fopen(old_path, "w");
	assert_non_null(f);
	fprintf(f,
		"{\"timestamp\":\"2025-01-01T00:00:00.000Z\",\"type\":\"session_meta\",\"payload\":{\"id\":"
		"\"%s\"}}\n",
		id);
	fprintf(f, "{\"timestamp\":\"2025-01-01T00:00:01.000Z\",\"type\":\"event_msg\",\"payload\":{}}\n");
	fputs("{\"timestamp\":\"2025", f);
	fclose(f);
	assert_int_equal(rollout_open(old_path, &r, err, sizeof(err)), 0);
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	rollout_close(r);
	assert_clean_file(old_path, 3);
	char *text = slurp(old_path, NULL);
	assert_null(strstr(text, "ordinal"));
	free(text);
	json_decref(ev);

	/* Not a regular file, or not there. */
	assert_int_equal(rollout_open(home, &r, err, sizeof(err)), -EINVAL);
	char missing[1024];
	snprintf(missing, sizeof(missing), "%s/missing.jsonl", home);
	assert_int_equal(rollout_open(missing, &r, err, sizeof(err)), -ENOENT);
	char link_path[1024];
	snprintf(link_path, sizeof(link_path), "%s/link.jsonl", home);
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(rollout_open(link_path, &r, err, sizeof(err)), -EINVAL);
	assert_null(r);
}

/* A write cut short (here by RLIMIT_FSIZE, as a full disk would) leaves no half line behind. */
static void test_short_write_is_undone(void **state)
{
	(void)state;
	char id[37];
	make_id(11, id);
	Rollout *r = create_ok(id, T0_MS);
	char path[1024];
	snprintf(path, sizeof(path), "%s", rollout_path(r));
	struct stat before;
	assert_int_equal(stat(path, &before), 0);

	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	struct rlimit old_limit, limit;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
	limit = old_limit;
	limit.rlim_cur = (rlim_t)before.st_size + 40;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &limit), 0);
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_t *ev = json_pack("{s:s, s:s}", "type", "agent_message", "message", big);
	int rc = rollout_append(r, "event_msg", ev);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(rc, -EFBIG);

	struct stat after;
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(rollout_append(r, "event_msg", ev), 0);
	rollout_close(r);
	json_decref(ev);
	assert_clean_file(path, 2);
	Loaded l = { 0 };
	char warning[256];
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_int_equal(l.ordinals[1], 1); /* the failed line took no number */
	loaded_free(&l);
}

static void test_malformed_lines(void **state)
{
	(void)state;
	char id[37];
	make_id(12, id);
	Rollout *r = create_ok(id, T0_MS);
	char path[1024];
	snprintf(path, sizeof(path), "%s", rollout_path(r));
	rollout_close(r);
	append_raw(
		path,
		"not json at all\n"
		"{\"timestamp\":\"2026-12-02T10:15:45.000Z\",\"type\":\"event_msg\",\"payload\":{\"n\":1}}\n"
		"\n"
		"   \n"
		"[1,2,3]\n"
		"{\"type\":\"event_msg\"}\n"
		"{\"type\":7,\"payload\":{}}\n"
		"{\"timestamp\":\"2026-12-02T10:15:46.000Z\",\"type\":\"event_msg\",\"payload\":{\"n\":2}} "
		"trailing\n"
		"{\"timestamp\":\"2026-12-02T10:15:47.000Z\",\"type\":\"event_msg\",\"payload\":{\"n\":3}}"
		"\r\n");
	Loaded l = { 0 };
	char warning[512];
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(json_integer_value(json_object_get(l.payloads[1], "n")), 1);
	assert_int_equal(json_integer_value(json_object_get(l.payloads[2], "n")), 3);
	assert_int_equal(l.ordinals[1], -1);
	char want[1200];
	snprintf(want, sizeof(want), "skipped 5 malformed lines of %s (first at line 2)", path);
	assert_string_equal(warning, want);
	loaded_free(&l);

	/* Both kinds at once. */
	append_raw(path, "{\"timestamp\":");
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_non_null(strstr(warning, "skipped 5 malformed lines"));
	assert_non_null(strstr(warning, "; ignored a truncated last line"));
	loaded_free(&l);

	/* The callback stops the read with its value. */
	l.stop_at = 2;
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 7);
	assert_int_equal(l.count, 2);
	loaded_free(&l);
}

static void test_load_fatal(void **state)
{
	(void)state;
	Loaded l = { 0 };
	char warning[512], path[1024];
	snprintf(path, sizeof(path), "%s/nothing.jsonl", home);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), -ENOENT);
	assert_non_null(strstr(warning, "cannot open"));

	FILE *f = fopen(path, "w");
	fclose(f);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), -EINVAL);
	assert_non_null(strstr(warning, "is empty"));

	f = fopen(path, "w");
	fputs("{\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"type\":\"event_msg\",\"payload\":{}}\n", f);
	fputs("{\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"type\":\"session_meta\",\"payload\":{}}\n", f);
	fclose(f);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), -EINVAL);
	assert_non_null(strstr(warning, "does not start with session metadata"));
	assert_int_equal(l.count, 0);

	f = fopen(path, "w");
	fputs("garbage\n{\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"type\":\"session_meta\",\"payload\":{}}"
	      "\n",
	      f);
	fclose(f);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), -EINVAL);

	f = fopen(path, "w");
	/* blank lines are nothing */
	fputs("\n{\"timestamp\":\"2026-12-02T10:15:44.571Z\",\"type\":\"session_meta\",\"payload\":{}}\n", f);
	fclose(f);
	assert_int_equal(rollout_load(path, collect, &l, warning, sizeof(warning)), 0);
	assert_int_equal(l.count, 1);
	loaded_free(&l);
}

/* ---- find / archive / unarchive --------------------------------------------------------------- */

static void test_find_archive_unarchive(void **state)
{
	(void)state;
	char id[37], absent[37], path[1024], found[1024], err[256];
	make_id(20, id);
	make_id(21, absent);
	Rollout *r = create_ok(id, T0_MS);
	snprintf(path, sizeof(path), "%s", rollout_path(r));
	rollout_close(r);
	const char *name = strrchr(path, '/') + 1;

	bool archived = true;
	assert_int_equal(rollout_find(home, id, false, found, sizeof(found), &archived), 0);
	assert_string_equal(found, path);
	assert_false(archived);
	char upper[37];
	for (int i = 0; i < 37; i++)
		upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
	assert_int_equal(rollout_find(home, upper, false, found, sizeof(found), NULL), 0);
	assert_int_equal(rollout_find(home, absent, true, found, sizeof(found), &archived), -ENOENT);
	assert_int_equal(rollout_find(home, id, false, found, 10, &archived), -ENAMETOOLONG);

	assert_int_equal(rollout_archive(home, id, err, sizeof(err)), 0);
	char archived_path[1024];
	snprintf(archived_path, sizeof(archived_path), "%s/archived_sessions/%s", home, name);
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(stat(archived_path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/archived_sessions", home);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	assert_int_equal(rollout_find(home, id, false, found, sizeof(found), &archived), -ENOENT);
	assert_int_equal(rollout_find(home, id, true, found, sizeof(found), &archived), 0);
	assert_string_equal(found, archived_path);
	assert_true(archived);
	assert_int_equal(rollout_archive(home, id, err, sizeof(err)), -ENOENT);
	char want[256];
	snprintf(want, sizeof(want), "no rollout found for thread id %s", id);
	assert_string_equal(err, want);

	/* Unarchive: back to the day directory of its name, touched. */
	struct timespec old_times[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
	assert_int_equal(utimensat(AT_FDCWD, archived_path, old_times, 0), 0);
	char restored[1024];
	assert_int_equal(rollout_unarchive(home, id, restored, sizeof(restored), err, sizeof(err)), 0);
	assert_string_equal(restored, path);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_mtime > time(NULL) - 60);
	assert_int_equal(rollout_unarchive(home, id, restored, sizeof(restored), err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "no archived rollout found for thread id %s", id);
	assert_string_equal(err, want);
	assert_int_equal(rollout_archive(home, absent, err, sizeof(err)), -ENOENT);

	/* Never over another file. */
	assert_int_equal(rollout_archive(home, id, err, sizeof(err)), 0);
	r = create_ok(id, T0_MS);
	rollout_close(r);
	assert_int_equal(rollout_archive(home, id, err, sizeof(err)), -EEXIST);
	assert_int_equal(rollout_unarchive(home, id, NULL, 0, err, sizeof(err)), -EEXIST);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(stat(archived_path, &st), 0);

	/* A symlinked rollout is not one. */
	char id2[37], link_path[1200];
	make_id(22, id2);
	snprintf(link_path, sizeof(link_path), "%s/rollout-2026-12-02T10-15-44-%s.jsonl", dir, id2);
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(rollout_find(home, id2, true, found, sizeof(found), NULL), -ENOENT);
}

/* ---- names ------------------------------------------------------------------------------------ */

static void test_names(void **state)
{
	(void)state;
	char id[37], other[37], upper[37];
	make_id(30, id);
	make_id(31, other);
	char *name = (char *)"unset";
	assert_int_equal(rollout_name_get(home, id, &name), 0); /* no index yet */
	assert_null(name);
	assert_int_equal(rollout_name_set(home, id, "First name", T0_MS), 0);
	assert_int_equal(rollout_name_set(home, other, "Other", T0_MS + 1), 0);
	for (int i = 0; i < 37; i++)
		upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
	assert_int_equal(rollout_name_set(home, upper, "  Second name ", T0_MS + 2), 0);
	assert_int_equal(rollout_name_set(home, id, "   ", T0_MS + 3), 0); /* blank: ignored */
	assert_int_equal(rollout_name_get(home, id, &name), 0);
	assert_string_equal(name, "Second name");
	free(name);
	assert_int_equal(rollout_name_get(home, other, &name), 0);
	assert_string_equal(name, "Other");
	free(name);
	assert_int_equal(rollout_name_set(home, id, "\xff\xfe", T0_MS), -EINVAL);
	assert_int_equal(rollout_name_get(home, "../x", &name), -EINVAL);

	char path[1024];
	snprintf(path, sizeof(path), "%s/session_index.jsonl", home);
	char *text = slurp(path, NULL);
	char want[256];
	snprintf(want, sizeof(want),
		 "{\"id\":\"%s\",\"thread_name\":\"First "
		 "name\",\"updated_at\":\"2026-12-02T10:15:44.571Z\"}\n",
		 id);
	assert_memory_equal(text, want, strlen(want));
	free(text);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* ---- listing ---------------------------------------------------------------------------------- */

typedef struct Fake {
	const char *ts_file; /* "2025-01-02T12-00-00" */
	size_t id_n;
	const char *provider; /* NULL: none recorded */
	const char *source;   /* JSON text; NULL: "vscode" */
	const char *cwd;
	const char *preview; /* the user's message; NULL: none yet */
	const char *event;   /* "item" (0.169 item_completed), "legacy" (user_message), "image" */
	bool is_archived;
	size_t instructions_bytes; /* base_instructions padding, as the reference's ~22 KiB */
} Fake;

/* A rollout as the reference writes it, placed by its file-name timestamp. */
static char *write_fake(const char *codex_home, const Fake *fk)
{
	char id[37], dir[1024], path[1100];
	make_id((unsigned)fk->id_n, id);
	if (fk->is_archived)
		snprintf(dir, sizeof(dir), "%s/archived_sessions", codex_home);
	else
		snprintf(dir, sizeof(dir), "%s/sessions/%.4s/%.2s/%.2s", codex_home, fk->ts_file,
			 fk->ts_file + 5, fk->ts_file + 8);
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/rollout-%s-%s.jsonl", dir, fk->ts_file, id);
	char rfc[40];
	snprintf(rfc, sizeof(rfc), "%.10sT%.2s:%.2s:%.2s.500Z", fk->ts_file, fk->ts_file + 11,
		 fk->ts_file + 14, fk->ts_file + 17);
	json_error_t jerr;
	json_t *source = json_loads(fk->source ? fk->source : "\"vscode\"", JSON_DECODE_ANY, &jerr);
	assert_non_null(source);
	json_t *meta =
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "session_id", id, "id", id, "timestamp", rfc,
			  "cwd", fk->cwd ? fk->cwd : "/work/a", "cli_version", "0.169.0", "source", source);
	if (fk->provider)
		json_object_set_new(meta, "model_provider", json_string(fk->provider));
	if (fk->instructions_bytes) {
		char *pad = malloc(fk->instructions_bytes + 1);
		memset(pad, 'i', fk->instructions_bytes);
		pad[fk->instructions_bytes] = '\0';
		json_object_set_new(meta, "base_instructions", json_pack("{s:s}", "text", pad));
		free(pad);
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	json_t *line = json_pack("{s:s, s:i, s:s, s:o}", "timestamp", rfc, "ordinal", 0, "type",
				 "session_meta", "payload", meta);
	char *text = json_dumps(line, JSON_COMPACT);
	fprintf(f, "%s\n", text);
	free(text);
	json_decref(line);
	/* What precedes the user's message in 0.169: context injected as response items. */
	fprintf(f,
		"{\"timestamp\":\"%s\",\"ordinal\":1,\"type\":\"event_msg\",\"payload\":{\"type\":\"task_"
		"started\"}}\n",
		rfc);
	fprintf(f,
		"{\"timestamp\":\"%s\",\"ordinal\":2,\"type\":\"response_item\",\"payload\":{\"type\":"
		"\"message\","
		"\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"<environment_context>\\n<"
		"/environment_context>\"}]}}\n",
		rfc);
	if (fk->preview || (fk->event && strcmp(fk->event, "image") == 0)) {
		json_t *ev;
		const char *kind = fk->event ? fk->event : "item";
		if (strcmp(kind, "legacy") == 0)
			ev = json_pack("{s:s, s:s, s:[]}", "type", "user_message", "message", fk->preview,
				       "images");
		else if (strcmp(kind, "image") == 0)
			ev = json_pack("{s:s, s:{s:s, s:[{s:s, s:s}]}}", "type", "item_completed", "item",
				       "type", "UserMessage", "content", "type", "image", "url",
				       "data:image/png;base64,AAAA");
		else
			ev = json_pack("{s:s, s:{s:s, s:s, s:[{s:s, s:s, s:[]}]}}", "type", "item_completed",
				       "item", "type", "UserMessage", "id", "u1", "content", "type", "text",
				       "text", fk->preview, "text_elements");
		line = json_pack("{s:s, s:i, s:s, s:o}", "timestamp", rfc, "ordinal", 3, "type", "event_msg",
				 "payload", ev);
		text = json_dumps(line, JSON_COMPACT);
		fprintf(f, "%s\n", text);
		free(text);
		json_decref(line);
	}
	fclose(f);
	chmod(path, 0600);
	return strdup(path);
}

static RolloutListQuery query(void)
{
	return (RolloutListQuery){ .default_provider = "openai" };
}

static int list_ok(const RolloutListQuery *q, RolloutListPage *page)
{
	char err[256] = "";
	int rc = rollout_list(home, q, page, err, sizeof(err));
	if (rc < 0)
		fail_msg("rollout_list: %d %s", rc, err);
	return rc;
}

/* The ids of a page's items as their numbers, for comparing orders. */
static void page_ids(const RolloutListPage *page, unsigned *out)
{
	for (size_t i = 0; i < page->count; i++)
		out[i] = (unsigned)strtoul(page->items[i].thread_id + 24, NULL, 16);
}

/* Seven threads, several in the same second. */
static const Fake order_fakes[] = {
	{ "2025-01-01T10-00-00", 1, "openai", NULL, NULL, "a", NULL, false, 0 },
	{ "2025-01-01T10-00-00", 2, "openai", NULL, NULL, "b", NULL, false, 0 },
	{ "2025-01-01T10-00-00", 3, "openai", NULL, NULL, "c", NULL, false, 0 },
	{ "2025-01-02T09-00-00", 4, "openai", NULL, NULL, "d", NULL, false, 0 },
	{ "2025-01-02T09-00-00", 5, "openai", NULL, NULL, "e", NULL, false, 0 },
	{ "2025-02-01T00-00-00", 6, "openai", NULL, NULL, "f", NULL, false, 0 },
	{ "2024-12-31T23-59-59", 7, "openai", NULL, NULL, "g", NULL, false, 0 },
};
static const unsigned order_desc[] = { 6, 5, 4, 3, 2, 1, 7 };

/* Page through everything with @limit in @q's direction: the ids in order, each once. */
static size_t page_all(RolloutListQuery q, size_t limit, unsigned *ids, size_t max)
{
	size_t n = 0, pages = 0;
	char *cursor = NULL;
	q.limit = limit;
	for (;;) {
		RolloutListPage page;
		q.cursor = cursor;
		list_ok(&q, &page);
		assert_true(page.count <= limit);
		assert_true(n + page.count <= max);
		page_ids(&page, ids + n);
		n += page.count;
		free(cursor);
		cursor = page.next_cursor ? strdup(page.next_cursor) : NULL;
		rollout_list_page_free(&page);
		assert_true(++pages < 100);
		if (!cursor)
			break;
	}
	return n;
}

static void test_list_order_and_paging(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(order_fakes) / sizeof(order_fakes[0]); i++)
		free(write_fake(home, &order_fakes[i]));
	RolloutListQuery q = query();
	RolloutListPage page;
	list_ok(&q, &page);
	assert_int_equal(page.count, 7);
	unsigned ids[16];
	page_ids(&page, ids);
	assert_memory_equal(ids, order_desc, sizeof(order_desc));
	assert_null(page.next_cursor);
	assert_non_null(page.backwards_cursor);
	/* Fields from the head: created_at from session_meta's timestamp, the 0.169 preview. */
	const RolloutSummary *f = &page.items[0];
	assert_string_equal(f->preview, "f");
	assert_string_equal(f->first_user_message, "f");
	assert_int_equal(f->created_at, 1738368000); /* 2025-02-01T00:00:00.500Z */
	assert_string_equal(f->model_provider, "openai");
	assert_string_equal(f->cwd, "/work/a");
	assert_int_equal(f->source, ROLLOUT_SOURCE_VSCODE);
	assert_false(f->is_archived);
	assert_null(f->name);
	assert_non_null(strstr(f->path, "/sessions/2025/02/01/rollout-2025-02-01T00-00-00-"));
	assert_string_equal(json_string_value(json_object_get(f->session_meta, "cli_version")), "0.169.0");
	assert_true(f->updated_at > 0 && f->updated_at == f->updated_at_ms / 1000);
	rollout_list_page_free(&page);

	/* The reference's cursor spelling: the last item's file-name second and id. */
	q.limit = 2;
	list_ok(&q, &page);
	assert_string_equal(page.next_cursor, "2025-01-02T09:00:00Z|01a23641-0000-7000-8000-000000000005");
	assert_string_equal(page.backwards_cursor,
			    "2025-02-01T00:00:00Z|01a23641-0000-7000-8000-000000000006");
	rollout_list_page_free(&page);

	/* Every page size gives the same order, no thread twice or missing, even where a page ends
	 * inside a second that three threads share. */
	for (size_t limit = 1; limit <= 8; limit++) {
		unsigned got[16];
		size_t n = page_all(query(), limit, got, 16);
		assert_int_equal(n, 7);
		assert_memory_equal(got, order_desc, sizeof(order_desc));
		RolloutListQuery asc = query();
		asc.is_ascending = true;
		n = page_all(asc, limit, got, 16);
		assert_int_equal(n, 7);
		for (size_t i = 0; i < 7; i++)
			assert_int_equal(got[i], order_desc[6 - i]);
	}

	/* The backwards cursor of a page, with the direction reversed, gives what came before it. */
	q = query();
	q.limit = 2;
	q.cursor = "2025-01-02T09:00:00Z|01a23641-0000-7000-8000-000000000005";
	list_ok(&q, &page);
	page_ids(&page, ids);
	assert_int_equal(page.count, 2);
	assert_int_equal(ids[0], 4);
	assert_int_equal(ids[1], 3);
	char *back = strdup(page.backwards_cursor);
	rollout_list_page_free(&page);
	q.cursor = back;
	q.is_ascending = true;
	list_ok(&q, &page);
	page_ids(&page, ids);
	assert_int_equal(page.count, 2);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], 6);
	assert_null(page.next_cursor);
	rollout_list_page_free(&page);
	free(back);

	/* A bare timestamp (the reference's backwardsCursor and file-name spellings): strictly past it. */
	q = query();
	q.cursor = "2025-01-02T09:00:00.000Z";
	list_ok(&q, &page);
	page_ids(&page, ids);
	assert_int_equal(page.count, 4);
	assert_int_equal(ids[0], 3);
	rollout_list_page_free(&page);
	q.cursor = "2025-01-01T10-00-00";
	list_ok(&q, &page);
	assert_int_equal(page.count, 1);
	rollout_list_page_free(&page);
	q.cursor = "2025-01-02T10:00:00+01:00|01a23641-0000-7000-8000-000000000005"; /* 09:00Z */
	list_ok(&q, &page);
	assert_int_equal(page.count, 5);
	rollout_list_page_free(&page);

	/* Cursors that are not ours. */
	static const char *const bad[] = {
		"",
		"garbage",
		"2025-01-02T09:00:00Z|",
		"2025-01-02T09:00:00Z|../../etc",
		"2025-13-02T09:00:00Z",
		"2025-01-02T09:00:00",
		"2025-01-02 09:00:00Z",
		"2025-01-02T09:00:00Zjunk",
		"|01a23641-0000-7000-8000-000000000005",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256];
		q.cursor = bad[i];
		assert_int_equal(rollout_list(home, &q, &page, err, sizeof(err)), -EINVAL);
		char want[300];
		snprintf(want, sizeof(want), "invalid cursor: %s", bad[i]);
		assert_string_equal(err, want);
		assert_int_equal(page.count, 0);
		assert_null(page.items);
	}

	/* updated_at: the mtime orders, to the millisecond, then the id. */
	for (size_t i = 0; i < sizeof(order_fakes) / sizeof(order_fakes[0]); i++) {
		char id[37], path[1024];
		make_id((unsigned)order_fakes[i].id_n, id);
		assert_int_equal(rollout_find(home, id, false, path, sizeof(path), NULL), 0);
		/* 1 and 2 share an mtime; 7, the oldest by name, was updated last. */
		long ms = order_fakes[i].id_n == 7   ? 9000
			  : order_fakes[i].id_n <= 2 ? 5123
						     : (long)order_fakes[i].id_n * 100;
		struct timespec times[2] = {
			{ .tv_sec = 1800000000 + ms / 1000, .tv_nsec = (ms % 1000) * 1000000 },
			{ .tv_sec = 1800000000 + ms / 1000, .tv_nsec = (ms % 1000) * 1000000 }
		};
		assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	}
	static const unsigned by_update[] = { 7, 2, 1, 6, 5, 4, 3 };
	for (size_t limit = 1; limit <= 7; limit++) {
		RolloutListQuery uq = query();
		uq.sort_key = ROLLOUT_SORT_UPDATED_AT;
		unsigned got[16];
		size_t n = page_all(uq, limit, got, 16);
		assert_int_equal(n, 7);
		assert_memory_equal(got, by_update, sizeof(by_update));
	}
	q = query();
	q.sort_key = ROLLOUT_SORT_UPDATED_AT;
	q.limit = 1;
	list_ok(&q, &page);
	assert_string_equal(page.next_cursor,
			    "2027-01-15T08:00:09.000Z|01a23641-0000-7000-8000-000000000007");
	assert_int_equal(page.items[0].updated_at, 1800000009);
	assert_int_equal(page.items[0].updated_at_ms, INT64_C(1800000009000));
	rollout_list_page_free(&page);

	/* Limits: 0 is the default, more than the most is the most. */
	q = query();
	q.limit = 100000;
	list_ok(&q, &page);
	assert_int_equal(page.count, 7);
	rollout_list_page_free(&page);
	rollout_list_page_free(NULL);
}

static void test_list_filters(void **state)
{
	(void)state;
	const char *spawn = "{\"subagent\":{\"thread_spawn\":{\"parent_thread_id\":\"01a23641-0000-7000-8000-"
			    "000000000001\","
			    "\"depth\":1}}}";
	const Fake fakes[] = {
		{ "2025-03-01T10-00-08", 1, "openai", NULL, "/work/a", "alpha", NULL, false, 0 },
		{ "2025-03-01T10-00-07", 2, "mock", "\"cli\"", "/work/b/", "beta", NULL, false, 0 },
		{ "2025-03-01T10-00-06", 3, NULL, "\"exec\"", "/work/a", "gamma", NULL, false, 0 },
		{ "2025-03-01T10-00-05", 4, "openai", "{\"subagent\":\"review\"}", "/work/a", "review it",
		  NULL, false, 0 },
		{ "2025-03-01T10-00-04", 5, "openai", spawn, "/work/a", "spawned", NULL, false, 0 },
		{ "2025-03-01T10-00-03", 6, "openai", NULL, "/work/a", NULL, NULL, false, 0 },
		{ "2025-03-01T10-00-02", 7, "openai", NULL, "/work/c",
		  "<ctx>\n## My request for Codex:\n  do the thing  ", "legacy", false, 0 },
		{ "2025-03-01T10-00-01", 8, "openai", NULL, "/work/c", NULL, "image", false, 0 },
		{ "2025-03-01T10-00-00", 9, "openai", "{\"subagent\":\"memory_consolidation\"}", "/work/a",
		  "mem", NULL, false, 0 },
		{ "2025-02-01T10-00-00", 10, "openai", "\"mcp\"", "/work/a", "mcp", NULL, false, 0 },
		{ "2025-02-01T09-00-00", 11, "openai", "{\"subagent\":{\"other\":\"x\"}}", "/work/a", "other",
		  NULL, false, 0 },
		{ "2025-02-01T08-00-00", 12, "openai", "\"unknown\"", "/work/a", "unknown", NULL, false, 0 },
		{ "2025-02-01T07-00-00", 13, "openai", "{\"subagent\":\"compact\"}", "/work/a", "compact",
		  NULL, false, 0 },
	};
	for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++)
		free(write_fake(home, &fakes[i]));
	char id1[37], id2[37], id7[37];
	make_id(1, id1);
	make_id(2, id2);
	make_id(7, id7);
	assert_int_equal(rollout_name_set(home, id1, "Alpha project", T0_MS), 0);
	assert_int_equal(rollout_name_set(home, id2, "beta build", T0_MS), 0);

	struct {
		const char *what;
		RolloutListQuery q;
		unsigned want[16];
	} cases[] = {
		/* Interactive sources by default; no user message yet, not listed. */
		{ "default", query(), { 1, 2, 7, 8 } },
		{ "cli",
		  { .default_provider = "openai", .source_mask = rollout_source_kind_mask("cli") },
		  { 2 } },
		{ "exec",
		  { .default_provider = "openai", .source_mask = rollout_source_kind_mask("exec") },
		  { 3 } },
		{ "subAgentReview",
		  { .default_provider = "openai", .source_mask = rollout_source_kind_mask("subAgentReview") },
		  { 4 } },
		{ "subAgentCompact",
		  { .default_provider = "openai",
		    .source_mask = rollout_source_kind_mask("subAgentCompact") },
		  { 13 } },
		{ "subAgentThreadSpawn",
		  { .default_provider = "openai",
		    .source_mask = rollout_source_kind_mask("subAgentThreadSpawn") },
		  { 5 } },
		{ "subAgentOther",
		  { .default_provider = "openai", .source_mask = rollout_source_kind_mask("subAgentOther") },
		  { 11 } },
		{ "subAgent",
		  { .default_provider = "openai", .source_mask = rollout_source_kind_mask("subAgent") },
		  { 4, 5, 9, 11, 13 } },
		{ "unknown",
		  { .default_provider = "openai", .source_mask = rollout_source_kind_mask("unknown") },
		  { 12 } },
		{ "exec+cli",
		  { .default_provider = "openai",
		    .source_mask = rollout_source_kind_mask("exec") | rollout_source_kind_mask("cli") },
		  { 2, 3 } },
		/* A session with no provider recorded counts as the default one. */
		{ "provider openai (default)",
		  { .default_provider = "openai",
		    .source_mask = rollout_source_kind_mask("exec"),
		    .model_providers = (const char *const[]){ "openai" },
		    .n_model_providers = 1 },
		  { 3 } },
		{ "provider other default",
		  { .default_provider = "mock",
		    .source_mask = rollout_source_kind_mask("exec"),
		    .model_providers = (const char *const[]){ "openai" },
		    .n_model_providers = 1 },
		  { 0 } },
		{ "provider mock",
		  { .default_provider = "openai",
		    .model_providers = (const char *const[]){ "mock", "x" },
		    .n_model_providers = 2 },
		  { 2 } },
		{ "cwd /work/a",
		  { .default_provider = "openai",
		    .has_cwd_filter = true,
		    .cwds = (const char *const[]){ "/work/a" },
		    .n_cwds = 1 },
		  { 1 } },
		{ "cwd /work/b (spelled differently)",
		  { .default_provider = "openai",
		    .has_cwd_filter = true,
		    .cwds = (const char *const[]){ "/work/./b" },
		    .n_cwds = 1 },
		  { 2 } },
		{ "cwd either",
		  { .default_provider = "openai",
		    .has_cwd_filter = true,
		    .cwds = (const char *const[]){ "/work/b", "/work/c" },
		    .n_cwds = 2 },
		  { 2, 7, 8 } },
		{ "cwd empty list", { .default_provider = "openai", .has_cwd_filter = true }, { 0 } },
		{ "search", { .default_provider = "openai", .search_term = "project" }, { 1 } },
		{ "search is case-sensitive",
		  { .default_provider = "openai", .search_term = "Beta" },
		  { 0 } },
		{ "search b", { .default_provider = "openai", .search_term = "b" }, { 2 } },
		{ "search unnamed", { .default_provider = "openai", .search_term = "thing" }, { 0 } },
		{ "excluded",
		  { .default_provider = "openai",
		    .excluded_ids = (const char *const[]){ id1, id7 },
		    .n_excluded_ids = 2 },
		  { 2, 8 } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		RolloutListPage page;
		list_ok(&cases[i].q, &page);
		unsigned got[16] = { 0 };
		page_ids(&page, got);
		size_t want_n = 0;
		while (want_n < 16 && cases[i].want[want_n])
			want_n++;
		if (page.count != want_n || memcmp(got, cases[i].want, want_n * sizeof(unsigned)) != 0)
			fail_msg("%s: got %zu items (first %u), want %zu (first %u)", cases[i].what,
				 page.count, got[0], want_n, cases[i].want[0]);
		rollout_list_page_free(&page);
	}

	/* Previews: after the legacy marker, "[Image]" for an image alone; names from the index. */
	RolloutListQuery q = query();
	RolloutListPage page;
	list_ok(&q, &page);
	assert_int_equal(page.count, 4);
	assert_string_equal(page.items[0].name, "Alpha project");
	assert_string_equal(page.items[1].name, "beta build");
	assert_string_equal(page.items[1].model_provider, "mock");
	assert_int_equal(page.items[1].source, ROLLOUT_SOURCE_CLI);
	assert_string_equal(page.items[2].preview, "do the thing");
	assert_string_equal(page.items[3].preview, "[Image]");
	assert_null(page.items[3].name);
	rollout_list_page_free(&page);
	q.source_mask = rollout_source_kind_mask("exec");
	list_ok(&q, &page);
	assert_string_equal(page.items[0].model_provider, "openai"); /* none recorded: the default */
	rollout_list_page_free(&page);

	/* Archived threads are listed only when asked for, flagged. */
	char err[256];
	assert_int_equal(rollout_archive(home, id1, err, sizeof(err)), 0);
	q = query();
	list_ok(&q, &page);
	assert_int_equal(page.count, 3);
	rollout_list_page_free(&page);
	q.is_archived = true;
	list_ok(&q, &page);
	assert_int_equal(page.count, 1);
	assert_string_equal(page.items[0].thread_id, id1);
	assert_true(page.items[0].is_archived);
	assert_string_equal(page.items[0].name, "Alpha project");
	assert_non_null(strstr(page.items[0].path, "/archived_sessions/rollout-2025-03-01T10-00-08-"));
	rollout_list_page_free(&page);
	assert_int_equal(rollout_unarchive(home, id1, NULL, 0, err, sizeof(err)), 0);
	list_ok(&q, &page);
	assert_int_equal(page.count, 0);
	assert_null(page.next_cursor);
	assert_null(page.backwards_cursor);
	rollout_list_page_free(&page);

	/* Kinds the schema does not define admit nothing. */
	assert_int_equal(rollout_source_kind_mask("desktop"), 0);
	assert_int_equal(rollout_source_kind_mask(NULL), 0);
}

static void test_list_empty_home(void **state)
{
	(void)state;
	RolloutListQuery q = query();
	RolloutListPage page;
	list_ok(&q, &page);
	assert_int_equal(page.count, 0);
	assert_null(page.next_cursor);
	q.is_archived = true;
	list_ok(&q, &page);
	assert_int_equal(page.count, 0);
	char err[256];
	assert_int_equal(rollout_list(home, NULL, &page, err, sizeof(err)), -EINVAL);
}

static void test_source_classify(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		RolloutSource want;
	} cases[] = {
		{ "\"cli\"", ROLLOUT_SOURCE_CLI },
		{ "\"vscode\"", ROLLOUT_SOURCE_VSCODE },
		{ "\"exec\"", ROLLOUT_SOURCE_EXEC },
		{ "\"mcp\"", ROLLOUT_SOURCE_MCP },
		{ "\"appServer\"", ROLLOUT_SOURCE_APP_SERVER },
		{ "\"something new\"", ROLLOUT_SOURCE_UNKNOWN },
		{ "{\"custom\":\"x\"}", ROLLOUT_SOURCE_CUSTOM },
		{ "{\"subagent\":\"review\"}", ROLLOUT_SOURCE_SUBAGENT_REVIEW },
		{ "{\"subAgent\":\"compact\"}", ROLLOUT_SOURCE_SUBAGENT_COMPACT },
		{ "{\"subagent\":{\"thread_spawn\":{}}}", ROLLOUT_SOURCE_SUBAGENT_THREAD_SPAWN },
		{ "{\"subagent\":{\"other\":\"x\"}}", ROLLOUT_SOURCE_SUBAGENT_OTHER },
		{ "{\"subagent\":\"memory_consolidation\"}", ROLLOUT_SOURCE_SUBAGENT_MEMORY },
		{ "{\"a\":1,\"b\":2}", ROLLOUT_SOURCE_UNKNOWN },
		{ "42", ROLLOUT_SOURCE_UNKNOWN },
		{ "null", ROLLOUT_SOURCE_VSCODE },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
		assert_non_null(v);
		assert_int_equal(rollout_source_classify(v), cases[i].want);
		json_decref(v);
	}
	assert_int_equal(rollout_source_classify(NULL), ROLLOUT_SOURCE_VSCODE);
}

/* 1,000 threads over ten days, each with a reference-sized session_meta: list them all. */
static void test_list_1000_timing(void **state)
{
	(void)state;
	enum { N = 1000 };
	for (unsigned i = 0; i < N; i++) {
		char ts[32], preview[32];
		snprintf(ts, sizeof(ts), "2025-04-%02uT%02u-%02u-%02u", 1 + i / 100, (i / 60) % 24, i % 60,
			 (i * 7) % 60);
		snprintf(preview, sizeof(preview), "message %u", i);
		Fake fk = { ts, 100 + i, "openai", NULL, "/work/a", preview, NULL, false, 22 * 1024 };
		free(write_fake(home, &fk));
	}
	double t0 = now_s();
	RolloutListQuery q = query();
	RolloutListPage page;
	list_ok(&q, &page);
	double t_first = now_s() - t0;
	assert_int_equal(page.count, ROLLOUT_LIST_DEFAULT_LIMIT);
	assert_non_null(page.next_cursor);
	rollout_list_page_free(&page);

	t0 = now_s();
	static unsigned ids[N + 1];
	q.limit = ROLLOUT_LIST_MAX_LIMIT;
	size_t n = page_all(q, ROLLOUT_LIST_MAX_LIMIT, ids, N + 1);
	double t_all = now_s() - t0;
	assert_int_equal(n, N);
	static bool seen[N];
	for (size_t i = 0; i < n; i++) {
		assert_true(ids[i] >= 100 && ids[i] < 100 + N);
		assert_false(seen[ids[i] - 100]);
		seen[ids[i] - 100] = true;
	}

	t0 = now_s();
	q = query();
	q.sort_key = ROLLOUT_SORT_UPDATED_AT;
	list_ok(&q, &page);
	double t_updated = now_s() - t0;
	rollout_list_page_free(&page);

	t0 = now_s();
	q = query();
	q.search_term = "nothing is named this";
	list_ok(&q, &page);
	double t_search = now_s() - t0;
	assert_int_equal(page.count, 0);
	rollout_list_page_free(&page);

	printf("rollout_list over %d threads (22 KiB session_meta each): first page of %d %.1f ms; all %d in "
	       "pages of "
	       "%d %.1f ms; first page by updated_at %.1f ms; a search matching none %.1f ms\n",
	       N, ROLLOUT_LIST_DEFAULT_LIMIT, t_first * 1e3, N, ROLLOUT_LIST_MAX_LIMIT, t_all * 1e3,
	       t_updated * 1e3, t_search * 1e3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_create_refusals, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_truncated_last_line, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_short_write_is_undone, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_malformed_lines, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_load_fatal, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_find_archive_unarchive, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_names, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_list_order_and_paging, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_list_filters, make_home, remove_home),
		cmocka_unit_test_setup_teardown(test_list_empty_home, make_home, remove_home),
		cmocka_unit_test(test_source_classify),
		cmocka_unit_test_setup_teardown(test_list_1000_timing, make_home, remove_home),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
