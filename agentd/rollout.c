/* SPDX-License-Identifier: MIT */
/* rollout.c - rollout files: create, append, repair, load, find, archive, names and listing. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "log.h"
#include "paths.h"
#include "rollout.h"

#define ID_LEN 36
#define TS_MAX 96 /* a formatted timestamp, with room for any int the compiler imagines */
#define READ_CHUNK (64u * 1024)
/* "rollout-" "YYYY-MM-DDThh-mm-ss" "-" <uuid> ".jsonl" */
#define NAME_PREFIX "rollout-"
#define NAME_SUFFIX ".jsonl"
#define NAME_LEN (8 + 19 + 1 + ID_LEN + 6)
/* The reference reads 10 head records, and goes on (up to ROLLOUT_HEAD_MAX_LINES) only once it
 * has seen the session_meta. */
#define HEAD_META_LINES 10

struct Rollout {
	int fd;
	char *path;
	char *dir; /* fsync'd by the first rollout_sync() after rollout_create() */
	bool needs_dir_sync;
	bool is_broken;	  /* a failed write could not be truncated away */
	bool has_ordinal; /* the file numbers its lines */
	int64_t next_ordinal;
	char *buf; /* the line being encoded */
	size_t buf_len, buf_cap;
	bool is_buf_oom;
};

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- small helpers --------------------------------------------------------------------------- */

bool rollout_thread_id_is_valid(const char *id)
{
	if (!id || strlen(id) != ID_LEN)
		return false;
	for (size_t i = 0; i < ID_LEN; i++) {
		bool is_dash_place = i == 8 || i == 13 || i == 18 || i == 23;
		if (is_dash_place ? id[i] != '-' : !isxdigit((unsigned char)id[i]))
			return false;
	}
	return true;
}

static void id_lower(const char *id, char out[ID_LEN + 1])
{
	for (size_t i = 0; i < ID_LEN; i++)
		out[i] = (char)tolower((unsigned char)id[i]);
	out[ID_LEN] = '\0';
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int64_t clock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-12-02T10:15:44.571Z" (with_ms) or "2026-12-02T10:15:44Z". */
static void format_utc(int64_t ms, bool with_ms, char out[TS_MAX])
{
	time_t secs = (time_t)floor_div(ms, 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	if (with_ms)
		snprintf(out, TS_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - (int64_t)secs * 1000));
	else
		snprintf(out, TS_MAX, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool take_digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (*p >= end || !isdigit((unsigned char)**p))
			return false;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return true;
}

static bool take_char(const char **p, const char *end, char c)
{
	if (*p >= end || (**p != c && **p != (char)tolower((unsigned char)c)))
		return false;
	(*p)++;
	return true;
}

/*
 * Unix milliseconds of RFC 3339 "YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)", or of the
 * file-name spelling "YYYY-MM-DDThh-mm-ss" (read as UTC, as the reference does).
 */
static bool parse_timestamp(const char *s, size_t len, int64_t *ms_out)
{
	const char *p = s, *end = s + len;
	int year, mon, day, hour, min, sec, frac_ms = 0;
	if (!take_digits(&p, end, 4, &year) || !take_char(&p, end, '-') || !take_digits(&p, end, 2, &mon) ||
	    !take_char(&p, end, '-') || !take_digits(&p, end, 2, &day) || !take_char(&p, end, 'T') ||
	    !take_digits(&p, end, 2, &hour))
		return false;
	bool is_file_style = p < end && *p == '-';
	char sep = is_file_style ? '-' : ':';
	if (!take_char(&p, end, sep) || !take_digits(&p, end, 2, &min) || !take_char(&p, end, sep) ||
	    !take_digits(&p, end, 2, &sec))
		return false;
	int64_t offset_s = 0;
	if (!is_file_style) {
		if (p < end && *p == '.') {
			p++;
			int digits = 0;
			while (p < end && isdigit((unsigned char)*p)) {
				if (digits < 3)
					frac_ms = frac_ms * 10 + (*p - '0');
				digits++;
				p++;
			}
			if (digits == 0 || digits > 9)
				return false;
			for (; digits < 3; digits++)
				frac_ms *= 10;
		}
		if (take_char(&p, end, 'Z')) {
			offset_s = 0;
		} else if (p < end && (*p == '+' || *p == '-')) {
			int sign = *p == '-' ? -1 : 1, oh, om;
			p++;
			if (!take_digits(&p, end, 2, &oh) || !take_char(&p, end, ':') ||
			    !take_digits(&p, end, 2, &om) || oh > 23 || om > 59)
				return false;
			offset_s = sign * (oh * 3600 + om * 60);
		} else {
			return false;
		}
	}
	if (p != end || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return false;
	struct tm tm = { .tm_year = year - 1900,
			 .tm_mon = mon - 1,
			 .tm_mday = day,
			 .tm_hour = hour,
			 .tm_min = min,
			 .tm_sec = sec };
	time_t t = timegm(&tm);
	*ms_out = ((int64_t)t - offset_s) * 1000 + frac_ms;
	return true;
}

/* Parse a rollout file name: its timestamp (as UTC) and its thread id, lowercased. */
static bool parse_rollout_name(const char *name, int64_t *created_ms, char id[ID_LEN + 1])
{
	if (strlen(name) != NAME_LEN || strncmp(name, NAME_PREFIX, 8) != 0 ||
	    strcmp(name + NAME_LEN - 6, NAME_SUFFIX) != 0 || name[8 + 19] != '-')
		return false;
	char id_text[ID_LEN + 1];
	memcpy(id_text, name + 8 + 19 + 1, ID_LEN);
	id_text[ID_LEN] = '\0';
	if (!rollout_thread_id_is_valid(id_text) || !parse_timestamp(name + 8, 19, created_ms))
		return false;
	id_lower(id_text, id);
	return true;
}

static char *xstrndup_trim(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

/* fsync a directory so the entries just made in it survive a crash. Not every file system can:
 * EINVAL there is not an error. */
static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
	close(fd);
	return rc;
}

/* Make @dir and its missing parents, 0700; each directory made here is fsync'd into its parent.
 * Existing ones are left as they are (the reference's are 0755). */
static int mkdir_private(const char *dir)
{
	char path[AGENTD_PATH_MAX];
	size_t len = strlen(dir);
	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) == 0) {
			chmod(path, 0700); /* umask may have taken bits; this is ours, so it is 0700 */
			char *slash = strrchr(path, '/');
			if (slash == path) {
				fsync_dir("/");
			} else if (slash) {
				*slash = '\0';
				fsync_dir(path);
				*slash = '/';
			}
		} else if (errno != EEXIST) {
			return -errno;
		} else {
			struct stat st;
			if (stat(path, &st) < 0)
				return -errno;
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
		}
		path[i] = saved;
	}
	return 0;
}

static int read_all_at(int fd, char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* ---- reading lines --------------------------------------------------------------------------- */

typedef struct LineReader {
	int fd;
	char *buf;
	size_t cap, start, end;
	size_t max_line;
	size_t budget; /* bytes still to read; past it the file is taken to end */
	bool is_eof;
} LineReader;

static void lr_init(LineReader *lr, int fd, size_t max_line, size_t budget)
{
	*lr = (LineReader){ .fd = fd, .max_line = max_line, .budget = budget };
}

static void lr_free(LineReader *lr)
{
	free(lr->buf);
	lr->buf = NULL;
}

/*
 * The next line, without its '\n': 1 with @line and @len set (*@is_terminated: it ended in '\n';
 * *@is_too_long: it was longer than max_line and was dropped, *@len is 0), 0 at the end, or a
 * negative errno. The line stays valid until the next call.
 */
static int lr_next(LineReader *lr, const char **line, size_t *len, bool *is_terminated, bool *is_too_long)
{
	bool is_skipping = false;
	for (;;) {
		char *nl =
			lr->end > lr->start ? memchr(lr->buf + lr->start, '\n', lr->end - lr->start) : NULL;
		if (nl || lr->is_eof) {
			if (!nl && lr->start == lr->end && !is_skipping)
				return 0;
			size_t n = nl ? (size_t)(nl - (lr->buf + lr->start)) : lr->end - lr->start;
			is_skipping = is_skipping || n > lr->max_line;
			*line = lr->buf + lr->start;
			*len = is_skipping ? 0 : n;
			*is_terminated = nl != NULL;
			*is_too_long = is_skipping;
			lr->start += nl ? n + 1 : n;
			return 1;
		}
		if (!is_skipping && lr->end - lr->start > lr->max_line)
			is_skipping = true;
		if (is_skipping)
			lr->start = lr->end = 0; /* what we have of an overlong line is dropped */
		if (lr->start > 0) {
			memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
			lr->end -= lr->start;
			lr->start = 0;
		}
		if (lr->cap - lr->end < READ_CHUNK) {
			size_t cap = lr->cap ? lr->cap * 2 : READ_CHUNK;
			while (cap - lr->end < READ_CHUNK)
				cap *= 2;
			char *buf = realloc(lr->buf, cap);
			if (!buf)
				return -ENOMEM;
			lr->buf = buf;
			lr->cap = cap;
		}
		size_t want = lr->cap - lr->end;
		if (want > lr->budget)
			want = lr->budget;
		ssize_t got = want ? read(lr->fd, lr->buf + lr->end, want) : 0;
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			lr->is_eof = true;
		lr->end += (size_t)got;
		lr->budget -= (size_t)got;
	}
}

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

/* A rollout record: an object with a string "type" and a "payload". Returns it or NULL. */
static json_t *parse_record(const char *line, size_t len)
{
	json_error_t jerr;
	json_t *v = json_loadb(line, len, 0, &jerr);
	if (!v)
		return NULL;
	if (!json_is_object(v) || !json_is_string(json_object_get(v, "type")) ||
	    !json_object_get(v, "payload")) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* ---- writing --------------------------------------------------------------------------------- */

static int dump_to_buf(const char *data, size_t size, void *ctx)
{
	Rollout *r = ctx;
	if (r->buf_len + size + 2 > r->buf_cap) {
		size_t cap = r->buf_cap ? r->buf_cap : 4096;
		while (cap < r->buf_len + size + 2)
			cap *= 2;
		char *buf = realloc(r->buf, cap);
		if (!buf) {
			r->is_buf_oom = true;
			return -1;
		}
		r->buf = buf;
		r->buf_cap = cap;
	}
	memcpy(r->buf + r->buf_len, data, size);
	r->buf_len += size;
	return 0;
}

/* Write r->buf as one line. A write that fails part-way is truncated away, so that the next line
 * starts on a line of its own; if even that fails the file is left alone from then on. */
static int write_buffered_line(Rollout *r)
{
	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return -errno;
	int rc = fd_write_all(r->fd, r->buf, r->buf_len);
	if (rc == 0) {
		r->next_ordinal++;
		return 0;
	}
	struct stat now;
	if (fstat(r->fd, &now) == 0 && now.st_size == st.st_size)
		return rc; /* nothing reached the file */
	/* Only our own partial line is cut: if the file grew by more, someone else wrote to it too. */
	if (fstat(r->fd, &now) == 0 && now.st_size > st.st_size &&
	    now.st_size < st.st_size + (off_t)r->buf_len && ftruncate(r->fd, st.st_size) == 0) {
		log_warn("rollout %s: write failed part-way (%s); truncated the partial line", r->path,
			 strerror(-rc));
		return rc;
	}
	log_error("rollout %s: write failed part-way (%s) and the partial line could not be removed; no more "
		  "lines will be appended",
		  r->path, strerror(-rc));
	r->is_broken = true;
	return -EIO;
}

static int append_at(Rollout *r, int64_t ts_ms, const char *type, json_t *payload, json_t *metadata)
{
	if (!r || !type || !*type || !payload)
		return -EINVAL;
	if (r->is_broken)
		return -EIO;
	char ts[TS_MAX];
	format_utc(ts_ms, true, ts);
	json_t *line = json_object();
	if (!line)
		return -ENOMEM;
	int bad = json_object_set_new(line, "timestamp", json_string(ts));
	if (r->has_ordinal)
		bad |= json_object_set_new(line, "ordinal", json_integer(r->next_ordinal));
	bad |= json_object_set_new(line, "type", json_string(type));
	bad |= json_object_set(line, "payload", payload);
	if (metadata)
		bad |= json_object_set(line, "metadata", metadata);
	r->buf_len = 0;
	r->is_buf_oom = false;
	if (!bad)
		bad = json_dump_callback(line, dump_to_buf, r, JSON_COMPACT);
	json_decref(line);
	if (bad)
		return r->is_buf_oom ? -ENOMEM : -EINVAL;
	r->buf[r->buf_len++] = '\n';
	return write_buffered_line(r);
}

int rollout_append(Rollout *r, const char *type, json_t *payload)
{
	return append_at(r, clock_now_ms(), type, payload, NULL);
}

int rollout_append_with_metadata(Rollout *r, const char *type, json_t *payload, json_t *metadata)
{
	if (metadata && !json_is_object(metadata))
		return -EINVAL;
	return append_at(r, clock_now_ms(), type, payload, metadata);
}

int rollout_sync(Rollout *r)
{
	if (!r)
		return -EINVAL;
	if (fsync(r->fd) < 0)
		return -errno;
	if (r->needs_dir_sync) {
		int rc = fsync_dir(r->dir);
		if (rc < 0)
			return rc;
		r->needs_dir_sync = false;
	}
	return 0;
}

const char *rollout_path(const Rollout *r)
{
	return r ? r->path : NULL;
}

void rollout_close(Rollout *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r->dir);
	free(r->buf);
	free(r);
}

static Rollout *rollout_new(int fd, const char *path)
{
	Rollout *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->fd = fd;
	r->path = strdup(path);
	const char *slash = strrchr(path, '/');
	r->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!r->path || !r->dir) {
		r->fd = -1;
		rollout_close(r);
		return NULL;
	}
	return r;
}

/* The session_meta payload to write: @given with "id" and "timestamp" filled in when missing.
 * NULL with *@rc set when @given names another thread. */
static json_t *session_meta_for(json_t *given, const char *id, int64_t now_ms, int *rc)
{
	json_t *given_id = json_object_get(given, "id");
	if (given_id && (!json_is_string(given_id) || strcasecmp(json_string_value(given_id), id) != 0)) {
		*rc = -EINVAL;
		return NULL;
	}
	if (given_id && json_object_get(given, "timestamp"))
		return json_incref(given);
	json_t *meta = json_object();
	char ts[TS_MAX];
	format_utc(now_ms, true, ts);
	if (!meta || (!given_id && json_object_set_new(meta, "id", json_string(id))) ||
	    (!json_object_get(given, "timestamp") &&
	     json_object_set_new(meta, "timestamp", json_string(ts))) ||
	    json_object_update(meta, given)) {
		json_decref(meta);
		*rc = -ENOMEM;
		return NULL;
	}
	return meta;
}

int rollout_create(const char *codex_home, const char *thread_id, int64_t now_ms,
		   json_t *session_meta_payload, Rollout **out, char *err, size_t err_len)
{
	if (out)
		*out = NULL;
	if (!out || !codex_home || codex_home[0] != '/')
		return fail(err, err_len, -EINVAL, "CODEX_HOME must be an absolute path");
	if (!rollout_thread_id_is_valid(thread_id))
		return fail(err, err_len, -EINVAL, "invalid thread id");
	if (!json_is_object(session_meta_payload))
		return fail(err, err_len, -EINVAL, "session_meta payload must be an object");
	char id[ID_LEN + 1];
	id_lower(thread_id, id);

	/* The reference names the directory and the file in local time. */
	time_t secs = (time_t)floor_div(now_ms, 1000);
	struct tm lt;
	if (!localtime_r(&secs, &lt))
		return fail(err, err_len, -EINVAL, "time %lld out of range", (long long)now_ms);
	char dir[AGENTD_PATH_MAX], path[AGENTD_PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/%s/%04d/%02d/%02d", codex_home, ROLLOUT_SESSIONS_SUBDIR,
			 lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return fail(err, err_len, -ENAMETOOLONG, "CODEX_HOME path too long");
	n = snprintf(path, sizeof(path), "%s/" NAME_PREFIX "%04d-%02d-%02dT%02d-%02d-%02d-%s" NAME_SUFFIX,
		     dir, lt.tm_year + 1900, lt.tm_mon + 1, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec, id);
	if (n < 0 || (size_t)n >= sizeof(path))
		return fail(err, err_len, -ENAMETOOLONG, "CODEX_HOME path too long");

	int rc = 0;
	json_t *meta = session_meta_for(session_meta_payload, id, now_ms, &rc);
	if (!meta)
		return fail(err, err_len, rc,
			    rc == -EINVAL ? "session_meta id is not the thread id %s" : "%s",
			    rc == -EINVAL ? id : "out of memory");
	rc = mkdir_private(dir);
	if (rc < 0) {
		json_decref(meta);
		return fail(err, err_len, rc, "cannot create %s: %s", dir, strerror(-rc));
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = -errno;
		json_decref(meta);
		return fail(err, err_len, rc, "cannot create %s: %s", path, strerror(-rc));
	}
	fchmod(fd, 0600); /* whatever the umask: a transcript is private */
	Rollout *r = rollout_new(fd, path);
	if (!r) {
		close(fd);
		unlink(path);
		json_decref(meta);
		return fail(err, err_len, -ENOMEM, "out of memory");
	}
	r->has_ordinal = true;
	r->needs_dir_sync = true;
	rc = append_at(r, now_ms, "session_meta", meta, NULL);
	json_decref(meta);
	if (rc < 0) {
		rollout_close(r);
		unlink(path);
		return fail(err, err_len, rc, "cannot write %s: %s", path, strerror(-rc));
	}
	*out = r;
	return 0;
}

/* ---- resuming -------------------------------------------------------------------------------- */

/* Offset just past the last '\n' before @end, or 0 when there is none. */
static int line_start_before(int fd, off_t end, off_t *start)
{
	char buf[8192];
	while (end > 0) {
		size_t n = end < (off_t)sizeof(buf) ? (size_t)end : sizeof(buf);
		int rc = read_all_at(fd, buf, n, end - (off_t)n);
		if (rc < 0)
			return rc;
		for (size_t i = n; i > 0; i--) {
			if (buf[i - 1] == '\n') {
				*start = end - (off_t)n + (off_t)i;
				return 0;
			}
		}
		end -= (off_t)n;
	}
	*start = 0;
	return 0;
}

/* Parse the bytes [start, end) as a record; NULL when they are not one (or too long to try). */
static json_t *record_at(int fd, off_t start, off_t end)
{
	size_t len = (size_t)(end - start);
	if (len == 0 || len > ROLLOUT_LINE_MAX_BYTES)
		return NULL;
	char *buf = malloc(len);
	if (!buf)
		return NULL;
	json_t *v = read_all_at(fd, buf, len, start) == 0 ? parse_record(buf, len) : NULL;
	free(buf);
	return v;
}

/* Make the file end in '\n': a whole record that only lacks it is terminated, anything else after
 * the last '\n' (half a line from a crash) is cut off. */
static int repair_tail(int fd, const char *path, off_t *size)
{
	if (*size == 0)
		return 0;
	char last;
	int rc = read_all_at(fd, &last, 1, *size - 1);
	if (rc < 0 || last == '\n')
		return rc;
	off_t start;
	rc = line_start_before(fd, *size, &start);
	if (rc < 0)
		return rc;
	json_t *v = record_at(fd, start, *size);
	if (v) {
		json_decref(v);
		rc = fd_write_all(fd, "\n", 1);
		if (rc < 0)
			return rc;
		*size += 1;
		log_warn("rollout %s: the last line lacked its newline; terminated it", path);
	} else {
		if (ftruncate(fd, start) < 0)
			return -errno;
		log_warn("rollout %s: cut off a truncated last line (%lld bytes)", path,
			 (long long)(*size - start));
		*size = start;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

static int count_lines(int fd, int64_t *count)
{
	char buf[READ_CHUNK];
	off_t off = 0;
	*count = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		for (ssize_t i = 0; i < n; i++)
			*count += buf[i] == '\n';
		off += n;
	}
}

/* Where the numbering goes on: after the last line's ordinal; none when the file never had them;
 * the line count when the last line does not say (the reference numbers lines from 0). */
static int resume_ordinal(Rollout *r, off_t size)
{
	r->has_ordinal = true;
	r->next_ordinal = 0;
	off_t end = size;
	while (end > 0) {
		off_t start;
		int rc = line_start_before(r->fd, end - 1, &start);
		if (rc < 0)
			return rc;
		if (end - 1 > start) {
			json_t *v = record_at(r->fd, start, end - 1);
			json_t *ordinal = json_object_get(v, "ordinal");
			if (v && json_is_integer(ordinal) && json_integer_value(ordinal) >= 0) {
				r->next_ordinal = json_integer_value(ordinal) + 1;
			} else if (v && !ordinal) {
				r->has_ordinal = false;
			} else {
				json_decref(v);
				return count_lines(r->fd, &r->next_ordinal);
			}
			json_decref(v);
			return 0;
		}
		end = start; /* a blank line: look before it */
	}
	return 0;
}

int rollout_open(const char *path, Rollout **out, char *err, size_t err_len)
{
	if (out)
		*out = NULL;
	if (!path || !out)
		return fail(err, err_len, -EINVAL, "no rollout path");
	int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int rc = errno == ELOOP || errno == EISDIR ? -EINVAL : -errno;
		return fail(err, err_len, rc, "cannot open %s: %s", path,
			    rc == -EINVAL ? "not a regular file" : strerror(-rc));
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, err_len, -EINVAL, "%s is not a regular file", path);
	}
	off_t size = st.st_size;
	int rc = repair_tail(fd, path, &size);
	if (rc < 0) {
		close(fd);
		return fail(err, err_len, rc, "cannot repair the end of %s: %s", path, strerror(-rc));
	}
	Rollout *r = rollout_new(fd, path);
	if (!r) {
		close(fd);
		return fail(err, err_len, -ENOMEM, "out of memory");
	}
	rc = resume_ordinal(r, size);
	if (rc < 0) {
		rollout_close(r);
		return fail(err, err_len, rc, "cannot read %s: %s", path, strerror(-rc));
	}
	*out = r;
	return 0;
}

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct LoadState {
	size_t line_no;
	size_t malformed;
	size_t first_malformed;
	size_t truncated_tail_bytes;
	bool has_truncated_tail;
	bool saw_meta;
} LoadState;

static void load_warning(const LoadState *s, const char *path, char *warning, size_t warning_len)
{
	if (!warning || !warning_len)
		return;
	warning[0] = '\0';
	size_t used = 0;
	if (s->malformed) {
		int n = snprintf(warning, warning_len,
				 "skipped %zu malformed line%s of %s (first at line %zu)", s->malformed,
				 s->malformed == 1 ? "" : "s", path, s->first_malformed);
		used = n < 0 ? 0 : (size_t)n < warning_len ? (size_t)n : warning_len - 1;
	}
	if (s->has_truncated_tail && used < warning_len)
		snprintf(warning + used, warning_len - used,
			 "%signored a truncated last line of %s (%zu bytes)", used ? "; " : "", path,
			 s->truncated_tail_bytes);
}

int rollout_load(const char *path, RolloutLineFn fn, void *ctx, char *warning, size_t warning_len)
{
	if (warning && warning_len)
		warning[0] = '\0';
	if (!path || !fn)
		return fail(warning, warning_len, -EINVAL, "no rollout path");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		return fail(warning, warning_len, rc, "cannot open %s: %s", path, strerror(-rc));
	}
	LineReader lr;
	lr_init(&lr, fd, ROLLOUT_LINE_MAX_BYTES, SIZE_MAX);
	LoadState s = { 0 };
	int rc = 0;
	for (;;) {
		const char *line = NULL;
		size_t len = 0;
		bool is_terminated = false, is_too_long = false;
		rc = lr_next(&lr, &line, &len, &is_terminated, &is_too_long);
		if (rc <= 0)
			break;
		s.line_no++;
		if (!is_too_long && is_blank(line, len))
			continue;
		json_t *rec = is_too_long ? NULL : parse_record(line, len);
		const char *type = rec ? json_string_value(json_object_get(rec, "type")) : NULL;
		if (!s.saw_meta && (!type || strcmp(type, "session_meta") != 0)) {
			json_decref(rec);
			rc = fail(warning, warning_len, -EINVAL, "%s does not start with session metadata",
				  path);
			break;
		}
		if (!rec) {
			if (!is_terminated && !is_too_long) {
				s.has_truncated_tail = true;
				s.truncated_tail_bytes = len;
			} else if (s.malformed++ == 0) {
				s.first_malformed = s.line_no;
			}
			continue;
		}
		s.saw_meta = true;
		json_t *ts = json_object_get(rec, "timestamp");
		json_t *ordinal = json_object_get(rec, "ordinal");
		json_t *metadata = json_object_get(rec, "metadata");
		RolloutLine rl = {
			.line_no = s.line_no,
			.timestamp = json_is_string(ts) ? json_string_value(ts) : "",
			.ordinal = json_is_integer(ordinal) ? json_integer_value(ordinal) : -1,
			.type = type,
			.payload = json_object_get(rec, "payload"),
			.metadata = json_is_object(metadata) ? metadata : NULL,
		};
		rc = fn(ctx, &rl);
		json_decref(rec);
		if (rc != 0)
			break;
	}
	lr_free(&lr);
	close(fd);
	if (rc < 0 && !s.saw_meta && warning && warning_len && !warning[0])
		fail(warning, warning_len, rc, "cannot read %s: %s", path, strerror(-rc));
	if (rc != 0)
		return rc;
	if (!s.saw_meta)
		return fail(warning, warning_len, -EINVAL, "%s is empty", path);
	load_warning(&s, path, warning, warning_len);
	return 0;
}

/* ---- walking the trees ----------------------------------------------------------------------- */

typedef struct Candidate {
	int64_t created_ms; /* from the file name */
	int64_t mtime_ms;
	int64_t key_ms; /* the sort key */
	char id[ID_LEN + 1];
	char *path;
} Candidate;

typedef struct Walk {
	Candidate *v;
	size_t n, cap;
	size_t limit;	  /* stop between day directories once this many are held (0: no limit) */
	bool is_capped;	  /* stopped with files left */
	const char *want; /* find: the id sought, lowercased; the walk stops at it */
} Walk;

static void walk_free(Walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].path);
	free(w->v);
	w->v = NULL;
	w->n = w->cap = 0;
}

/* Add @dir/@name if it is a rollout (a regular file, not a symlink). 1 when the sought id was
 * found, 0, or a negative errno. */
static int walk_visit(Walk *w, int dirfd, const char *dir, const char *name)
{
	int64_t created_ms;
	char id[ID_LEN + 1];
	if (!parse_rollout_name(name, &created_ms, id))
		return 0;
	if (w->want && strcmp(id, w->want) != 0)
		return 0;
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		Candidate *v = realloc(w->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	Candidate *c = &w->v[w->n];
	char path[AGENTD_PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	c->path = strdup(path);
	if (!c->path)
		return -ENOMEM;
	c->created_ms = created_ms;
	c->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	c->key_ms = created_ms;
	memcpy(c->id, id, sizeof(c->id));
	w->n++;
	return w->want ? 1 : 0;
}

/* Every rollout directly in @dir. A directory that is not there holds none. */
static int walk_files(Walk *w, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)))
		if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN)
			rc = walk_visit(w, dirfd(d), dir, e->d_name);
	closedir(d);
	return rc;
}

static int cmp_int_desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x < y) - (x > y);
}

/* The subdirectories of @dir named by a number of at most @max_digits digits, largest first. */
static int number_dirs(const char *dir, size_t max_digits, int **out, size_t *count)
{
	*out = NULL;
	*count = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	size_t cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len == 0 || len > max_digits || strspn(e->d_name, "0123456789") != len)
			continue;
		if (e->d_type != DT_DIR) {
			struct stat st;
			if (e->d_type != DT_UNKNOWN ||
			    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue; /* symlinks are not followed out of CODEX_HOME */
		}
		if (*count == cap) {
			cap = cap ? cap * 2 : 16;
			int *v = realloc(*out, cap * sizeof(**out));
			if (!v) {
				rc = -ENOMEM;
				break;
			}
			*out = v;
		}
		(*out)[(*count)++] = atoi(e->d_name);
	}
	closedir(d);
	if (rc == 0 && *count)
		qsort(*out, *count, sizeof(**out), cmp_int_desc);
	return rc;
}

/* sessions/YYYY/MM/DD, newest day first; stops between days once w->limit files are held. */
/* sessions/YYYY/MM/DD: @level 0 the years, 1 the months, 2 the days, whose files are walked. */
static int walk_dates(Walk *w, const char *dir, int level)
{
	static const int widths[] = { 4, 2, 2 };
	int *numbers = NULL;
	size_t count;
	int rc = number_dirs(dir, widths[level], &numbers, &count);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		if (level == 2 && w->limit && w->n >= w->limit) {
			w->is_capped = true;
			rc = 1;
			break;
		}
		char sub[AGENTD_PATH_MAX];
		int len = snprintf(sub, sizeof(sub), level == 0 ? "%s/%d" : "%s/%02d", dir, numbers[i]);
		if (len < 0 || (size_t)len >= sizeof(sub))
			rc = -ENAMETOOLONG;
		else
			rc = level == 2 ? walk_files(w, sub) : walk_dates(w, sub, level + 1);
	}
	free(numbers);
	return rc;
}

static int walk_nested(Walk *w, const char *root)
{
	return walk_dates(w, root, 0);
}

static int root_path(const char *codex_home, const char *subdir, char *out, size_t out_len)
{
	int n = snprintf(out, out_len, "%s/%s", codex_home, subdir);
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

/* The rollout of @id (lowercased) under @subdir: 0 with @path set, -ENOENT, or a negative errno. */
static int find_in(const char *codex_home, const char *subdir, const char *id, char *path, size_t path_len)
{
	char root[AGENTD_PATH_MAX];
	int rc = root_path(codex_home, subdir, root, sizeof(root));
	if (rc < 0)
		return rc;
	Walk w = { .want = id };
	rc = strcmp(subdir, ROLLOUT_ARCHIVED_SUBDIR) == 0 ? walk_files(&w, root) : walk_nested(&w, root);
	if (rc >= 0 && w.n > 0) {
		size_t len = strlen(w.v[0].path);
		if (len >= path_len)
			rc = -ENAMETOOLONG;
		else
			memcpy(path, w.v[0].path, len + 1);
	} else if (rc >= 0) {
		rc = -ENOENT;
	}
	walk_free(&w);
	return rc < 0 ? rc : 0;
}

int rollout_find(const char *codex_home, const char *thread_id, bool include_archived, char *path,
		 size_t path_len, bool *is_archived)
{
	if (!codex_home || !path || !rollout_thread_id_is_valid(thread_id))
		return -EINVAL;
	char id[ID_LEN + 1];
	id_lower(thread_id, id);
	int rc = find_in(codex_home, ROLLOUT_SESSIONS_SUBDIR, id, path, path_len);
	bool archived = false;
	if (rc == -ENOENT && include_archived) {
		rc = find_in(codex_home, ROLLOUT_ARCHIVED_SUBDIR, id, path, path_len);
		archived = rc == 0;
	}
	if (rc == 0 && is_archived)
		*is_archived = archived;
	return rc;
}

/* ---- archive / unarchive --------------------------------------------------------------------- */

/* rename(2) that never replaces @to. Falls back to link+unlink where RENAME_NOREPLACE is not
 * supported (same file system either way: both live under CODEX_HOME). */
static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (link(from, to) < 0)
		return -errno;
	if (unlink(from) < 0) {
		int rc = -errno;
		unlink(to);
		return rc;
	}
	return 0;
}

static void sync_parent(const char *path)
{
	char dir[AGENTD_PATH_MAX];
	size_t len = strlen(path);
	if (len >= sizeof(dir))
		return;
	memcpy(dir, path, len + 1);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	slash[slash == dir ? 1 : 0] = '\0';
	int rc = fsync_dir(dir);
	if (rc < 0)
		log_warn("rollout: cannot fsync %s: %s", dir, strerror(-rc));
}

/* Move @from to @to_dir/<its name>: 0 with @to set, or a negative errno with @err set. */
static int move_rollout(const char *from, const char *to_dir, char *to, size_t to_len, char *err,
			size_t err_len)
{
	int rc = mkdir_private(to_dir);
	if (rc < 0)
		return fail(err, err_len, rc, "cannot create %s: %s", to_dir, strerror(-rc));
	const char *name = strrchr(from, '/');
	int n = snprintf(to, to_len, "%s/%s", to_dir, name ? name + 1 : from);
	if (n < 0 || (size_t)n >= to_len)
		return fail(err, err_len, -ENAMETOOLONG, "path too long under %s", to_dir);
	rc = rename_noreplace(from, to);
	if (rc == -EEXIST)
		return fail(err, err_len, rc, "%s already exists", to);
	if (rc < 0)
		return fail(err, err_len, rc, "cannot move %s to %s: %s", from, to_dir, strerror(-rc));
	sync_parent(from);
	sync_parent(to);
	return 0;
}

int rollout_archive(const char *codex_home, const char *thread_id, char *err, size_t err_len)
{
	if (!codex_home || !rollout_thread_id_is_valid(thread_id))
		return fail(err, err_len, -EINVAL, "invalid thread id");
	char id[ID_LEN + 1], from[AGENTD_PATH_MAX], to[AGENTD_PATH_MAX], dir[AGENTD_PATH_MAX];
	id_lower(thread_id, id);
	int rc = find_in(codex_home, ROLLOUT_SESSIONS_SUBDIR, id, from, sizeof(from));
	if (rc == -ENOENT)
		return fail(err, err_len, rc, "no rollout found for thread id %s", id);
	if (rc < 0)
		return fail(err, err_len, rc, "failed to locate thread id %s: %s", id, strerror(-rc));
	rc = root_path(codex_home, ROLLOUT_ARCHIVED_SUBDIR, dir, sizeof(dir));
	if (rc < 0)
		return fail(err, err_len, rc, "CODEX_HOME path too long");
	return move_rollout(from, dir, to, sizeof(to), err, err_len);
}

int rollout_unarchive(const char *codex_home, const char *thread_id, char *new_path, size_t new_path_len,
		      char *err, size_t err_len)
{
	if (!codex_home || !rollout_thread_id_is_valid(thread_id))
		return fail(err, err_len, -EINVAL, "invalid thread id");
	char id[ID_LEN + 1], from[AGENTD_PATH_MAX], to[AGENTD_PATH_MAX], dir[AGENTD_PATH_MAX];
	id_lower(thread_id, id);
	int rc = find_in(codex_home, ROLLOUT_ARCHIVED_SUBDIR, id, from, sizeof(from));
	if (rc == -ENOENT)
		return fail(err, err_len, rc, "no archived rollout found for thread id %s", id);
	if (rc < 0)
		return fail(err, err_len, rc, "failed to locate archived thread id %s: %s", id,
			    strerror(-rc));
	/* The day directory comes from the name: rollout-YYYY-MM-DD... (find_in checked its form). */
	const char *name = strrchr(from, '/') + 1;
	int n = snprintf(dir, sizeof(dir), "%s/%s/%.4s/%.2s/%.2s", codex_home, ROLLOUT_SESSIONS_SUBDIR,
			 name + 8, name + 13, name + 16);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return fail(err, err_len, -ENAMETOOLONG, "CODEX_HOME path too long");
	rc = move_rollout(from, dir, to, sizeof(to), err, err_len);
	if (rc < 0)
		return rc;
	/* The reference touches it: an unarchived thread sorts as just updated. */
	if (utimensat(AT_FDCWD, to, NULL, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("rollout %s: cannot update its mtime: %s", to, strerror(errno));
	if (new_path && new_path_len) {
		if (strlen(to) >= new_path_len)
			return fail(err, err_len, -ENAMETOOLONG, "path too long");
		memcpy(new_path, to, strlen(to) + 1);
	}
	return 0;
}

/* ---- names (session_index.jsonl) ------------------------------------------------------------- */

typedef struct NameEntry {
	char id[ID_LEN + 1];
	char *name;
} NameEntry;

typedef struct NameIndex {
	NameEntry *v;
	size_t n, cap;
} NameIndex;

static void names_free(NameIndex *ix)
{
	for (size_t i = 0; i < ix->n; i++)
		free(ix->v[i].name);
	free(ix->v);
	*ix = (NameIndex){ 0 };
}

static int names_add(NameIndex *ix, const char *id, const char *name)
{
	size_t len = strlen(name);
	char *trimmed = xstrndup_trim(name, len);
	if (!trimmed)
		return -ENOMEM;
	if (!*trimmed) {
		free(trimmed); /* a blank name does not count, as in the reference's listing */
		return 0;
	}
	if (ix->n == ix->cap) {
		size_t cap = ix->cap ? ix->cap * 2 : 32;
		NameEntry *v = realloc(ix->v, cap * sizeof(*v));
		if (!v) {
			free(trimmed);
			return -ENOMEM;
		}
		ix->v = v;
		ix->cap = cap;
	}
	id_lower(id, ix->v[ix->n].id);
	ix->v[ix->n].name = trimmed;
	ix->n++;
	return 0;
}

/* Every name line of the index, oldest first. No index is an empty one. */
static int names_load(const char *codex_home, NameIndex *ix)
{
	char path[AGENTD_PATH_MAX];
	*ix = (NameIndex){ 0 };
	int rc = root_path(codex_home, ROLLOUT_SESSION_INDEX, path, sizeof(path));
	if (rc < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	LineReader lr;
	lr_init(&lr, fd, 1024 * 1024, SIZE_MAX);
	for (;;) {
		const char *line = NULL;
		size_t len = 0;
		bool is_terminated = false, is_too_long = false;
		rc = lr_next(&lr, &line, &len, &is_terminated, &is_too_long);
		if (rc <= 0)
			break;
		if (is_too_long)
			continue;
		json_error_t jerr;
		json_t *v = json_loadb(line, len, 0, &jerr);
		const char *id = json_string_value(json_object_get(v, "id"));
		const char *name = json_string_value(json_object_get(v, "thread_name"));
		if (id && name && rollout_thread_id_is_valid(id))
			rc = names_add(ix, id, name);
		json_decref(v);
		if (rc < 0)
			break;
	}
	lr_free(&lr);
	close(fd);
	if (rc < 0)
		names_free(ix);
	return rc < 0 ? rc : 0;
}

/* The newest name of @id (lowercase), or NULL. */
static const char *names_lookup(const NameIndex *ix, const char *id)
{
	for (size_t i = ix->n; i > 0; i--)
		if (strcmp(ix->v[i - 1].id, id) == 0)
			return ix->v[i - 1].name;
	return NULL;
}

int rollout_name_set(const char *codex_home, const char *thread_id, const char *name, int64_t now_ms)
{
	if (!codex_home || codex_home[0] != '/' || !name || !rollout_thread_id_is_valid(thread_id))
		return -EINVAL;
	char id[ID_LEN + 1], ts[TS_MAX], path[AGENTD_PATH_MAX];
	id_lower(thread_id, id);
	format_utc(now_ms, true, ts);
	int rc = root_path(codex_home, ROLLOUT_SESSION_INDEX, path, sizeof(path));
	if (rc < 0)
		return rc;
	json_t *jname = json_string(name);
	if (!jname)
		return -EINVAL; /* not UTF-8 */
	json_t *entry = json_object();
	if (!entry) {
		json_decref(jname);
		return -ENOMEM;
	}
	/* json_object_set_new() takes the value even when it fails. */
	int bad = json_object_set_new(entry, "id", json_string(id));
	bad |= json_object_set_new(entry, "thread_name", jname);
	bad |= json_object_set_new(entry, "updated_at", json_string(ts));
	if (bad) {
		json_decref(entry);
		return -ENOMEM;
	}
	char *text = json_dumps(entry, JSON_COMPACT);
	json_decref(entry);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return -ENOMEM;
	}
	line[len++] = '\n';
	line[len] = '\0';
	rc = mkdir_private(codex_home);
	int fd = rc < 0 ? -1 : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (rc == 0 && fd < 0)
		rc = -errno;
	struct stat st;
	bool is_new = fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0;
	if (rc == 0)
		rc = fd_write_all(fd, line, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && is_new)
		fsync_dir(codex_home);
	free(line);
	return rc;
}

int rollout_name_get(const char *codex_home, const char *thread_id, char **name)
{
	if (!name)
		return -EINVAL;
	*name = NULL;
	if (!codex_home || !rollout_thread_id_is_valid(thread_id))
		return -EINVAL;
	char id[ID_LEN + 1];
	id_lower(thread_id, id);
	NameIndex ix;
	int rc = names_load(codex_home, &ix);
	if (rc < 0)
		return rc;
	const char *found = names_lookup(&ix, id);
	if (found && !(*name = strdup(found)))
		rc = -ENOMEM;
	names_free(&ix);
	return rc;
}

/* ---- sources --------------------------------------------------------------------------------- */

static bool key_is(const char *key, const char *a, const char *b)
{
	return strcmp(key, a) == 0 || (b && strcmp(key, b) == 0);
}

RolloutSource rollout_source_classify(const json_t *source)
{
	if (!source || json_is_null(source))
		return ROLLOUT_SOURCE_VSCODE; /* the reference's default when a file has none */
	if (json_is_string(source)) {
		const char *s = json_string_value(source);
		static const struct {
			const char *name;
			RolloutSource source;
		} names[] = {
			{ "cli", ROLLOUT_SOURCE_CLI },
			{ "vscode", ROLLOUT_SOURCE_VSCODE },
			{ "exec", ROLLOUT_SOURCE_EXEC },
			{ "mcp", ROLLOUT_SOURCE_MCP },
			{ "app_server", ROLLOUT_SOURCE_APP_SERVER },
			{ "appServer", ROLLOUT_SOURCE_APP_SERVER },
			{ "desktop_app", ROLLOUT_SOURCE_APP_SERVER },
			{ "desktopApp", ROLLOUT_SOURCE_APP_SERVER },
			{ "desktopapp", ROLLOUT_SOURCE_APP_SERVER },
			{ "unknown", ROLLOUT_SOURCE_UNKNOWN },
		};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(s, names[i].name) == 0)
				return names[i].source;
		return ROLLOUT_SOURCE_UNKNOWN;
	}
	if (!json_is_object(source) || json_object_size(source) != 1)
		return ROLLOUT_SOURCE_UNKNOWN;
	const char *key = json_object_iter_key(json_object_iter((json_t *)source));
	json_t *value = json_object_iter_value(json_object_iter((json_t *)source));
	if (key_is(key, "custom", NULL))
		return ROLLOUT_SOURCE_CUSTOM;
	if (!key_is(key, "subagent", "subAgent"))
		return ROLLOUT_SOURCE_UNKNOWN;
	if (json_is_string(value)) {
		const char *v = json_string_value(value);
		if (strcmp(v, "review") == 0)
			return ROLLOUT_SOURCE_SUBAGENT_REVIEW;
		if (strcmp(v, "compact") == 0)
			return ROLLOUT_SOURCE_SUBAGENT_COMPACT;
		return ROLLOUT_SOURCE_SUBAGENT_MEMORY;
	}
	if (json_is_object(value) && json_object_get(value, "thread_spawn"))
		return ROLLOUT_SOURCE_SUBAGENT_THREAD_SPAWN;
	if (json_is_object(value) && json_object_get(value, "other"))
		return ROLLOUT_SOURCE_SUBAGENT_OTHER;
	return ROLLOUT_SOURCE_SUBAGENT_MEMORY;
}

#define SUBAGENT_BITS                                                                                        \
	(ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_REVIEW) |                                                \
	 ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_COMPACT) |                                               \
	 ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_THREAD_SPAWN) |                                          \
	 ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_OTHER) |                                                 \
	 ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_MEMORY))

unsigned rollout_source_kind_mask(const char *kind)
{
	static const struct {
		const char *kind;
		unsigned mask;
	} kinds[] = {
		{ "cli", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_CLI) },
		{ "vscode", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_VSCODE) },
		{ "exec", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_EXEC) },
		{ "appServer", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_APP_SERVER) },
		{ "subAgent", SUBAGENT_BITS },
		{ "subAgentReview", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_REVIEW) },
		{ "subAgentCompact", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_COMPACT) },
		{ "subAgentThreadSpawn", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_THREAD_SPAWN) },
		{ "subAgentOther", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_SUBAGENT_OTHER) },
		{ "unknown", ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_UNKNOWN) },
	};
	for (size_t i = 0; kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i].kind) == 0)
			return kinds[i].mask;
	return 0;
}

/* ---- the head of a file: session_meta and the preview ---------------------------------------- */

typedef struct Head {
	json_t *meta;
	char *preview;
	char *first_user_message;
} Head;

static void head_free(Head *h)
{
	json_decref(h->meta);
	free(h->preview);
	free(h->first_user_message);
	*h = (Head){ 0 };
}

static bool array_is_nonempty(const json_t *v)
{
	return json_is_array(v) && json_array_size(v) > 0;
}

/* A legacy user_message event: the text after the reference's request marker, else "[Image]". */
static char *user_message_preview(const json_t *ev)
{
	const char *text = json_string_value(json_object_get(ev, "message"));
	if (text) {
		const char *begin = strstr(text, ROLLOUT_USER_MESSAGE_BEGIN);
		if (begin)
			text = begin + strlen(ROLLOUT_USER_MESSAGE_BEGIN);
		char *s = xstrndup_trim(text, strlen(text));
		if (!s || *s)
			return s;
		free(s);
	}
	if (array_is_nonempty(json_object_get(ev, "images")) ||
	    array_is_nonempty(json_object_get(ev, "local_images")))
		return strdup("[Image]");
	return NULL;
}

/* An item_completed UserMessage (0.169): its text parts joined by newlines, else "[Image]". */
static char *user_item_preview(const json_t *item)
{
	json_t *content = json_object_get(item, "content");
	size_t i, total = 0;
	json_t *part;
	bool has_image = false;
	json_array_foreach (content, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		const char *text = json_string_value(json_object_get(part, "text"));
		if (type && strcmp(type, "text") == 0 && text)
			total += strlen(text) + 1;
		else if (type && strcasestr(type, "image"))
			has_image = true;
	}
	if (total == 0)
		return has_image ? strdup("[Image]") : NULL;
	char *joined = malloc(total);
	if (!joined)
		return NULL;
	size_t used = 0;
	json_array_foreach (content, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		const char *text = json_string_value(json_object_get(part, "text"));
		if (!type || strcmp(type, "text") != 0 || !text)
			continue;
		if (used)
			joined[used++] = '\n';
		memcpy(joined + used, text, strlen(text));
		used += strlen(text);
	}
	char *s = xstrndup_trim(joined, used);
	free(joined);
	if (s && !*s) {
		free(s);
		return has_image ? strdup("[Image]") : NULL;
	}
	return s;
}

/* The preview an event_msg payload gives, or NULL; *@is_user: it is a user message. */
static char *event_preview(const json_t *ev, bool *is_user)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	*is_user = false;
	if (!type)
		return NULL;
	if (strcmp(type, "user_message") == 0) {
		*is_user = true;
		return user_message_preview(ev);
	}
	if (strcmp(type, "item_completed") == 0) {
		json_t *item = json_object_get(ev, "item");
		const char *item_type = json_string_value(json_object_get(item, "type"));
		if (!item_type || strcmp(item_type, "UserMessage") != 0)
			return NULL;
		*is_user = true;
		return user_item_preview(item);
	}
	if (strcmp(type, "thread_goal_updated") == 0) {
		const char *objective =
			json_string_value(json_object_get(json_object_get(ev, "goal"), "objective"));
		char *s = objective ? xstrndup_trim(objective, strlen(objective)) : NULL;
		if (s && !*s) {
			free(s);
			s = NULL;
		}
		return s;
	}
	return NULL;
}

/*
 * The top-level "type" of a line in the writers' key order (timestamp, ordinal, type, payload),
 * read without parsing it, so listing skips the large response_item lines (instructions, skills)
 * at the head of a 0.169 rollout. False when the line is not in that order: then it is parsed.
 */
static bool sniff_type(const char *line, size_t len, char *out, size_t out_len)
{
	static const char key[] = "\"type\":\"";
	size_t window = len < 256 ? len : 256;
	const char *at = memmem(line, window, key, sizeof(key) - 1);
	if (!at || memmem(line, (size_t)(at - line), "\"payload\"", 9))
		return false;
	const char *value = at + sizeof(key) - 1;
	const char *end = memchr(value, '"', window - (size_t)(value - line));
	if (!end || (size_t)(end - value) >= out_len || memchr(value, '\\', (size_t)(end - value)))
		return false;
	memcpy(out, value, (size_t)(end - value));
	out[end - value] = '\0';
	return true;
}

/* Read the head of @path as the reference's listing does: the first session_meta, the first
 * preview-bearing event and the first user message, within the head bounds. */
static int read_head(const char *path, Head *h)
{
	*h = (Head){ 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	LineReader lr;
	lr_init(&lr, fd, ROLLOUT_HEAD_MAX_BYTES, ROLLOUT_HEAD_MAX_BYTES);
	size_t scanned = 0;
	int rc = 0;
	while (scanned < ROLLOUT_HEAD_MAX_LINES && (h->meta || scanned < HEAD_META_LINES)) {
		const char *line = NULL;
		size_t len = 0;
		bool is_terminated = false, is_too_long = false;
		rc = lr_next(&lr, &line, &len, &is_terminated, &is_too_long);
		if (rc <= 0)
			break;
		if (is_too_long || is_blank(line, len))
			continue;
		scanned++;
		char sniffed[32];
		if (sniff_type(line, len, sniffed, sizeof(sniffed)) && strcmp(sniffed, "event_msg") != 0 &&
		    (h->meta || strcmp(sniffed, "session_meta") != 0))
			continue;
		json_t *rec = parse_record(line, len);
		if (!rec)
			continue;
		const char *type = json_string_value(json_object_get(rec, "type"));
		json_t *payload = json_object_get(rec, "payload");
		if (strcmp(type, "session_meta") == 0 && !h->meta && json_is_object(payload)) {
			h->meta = json_incref(payload);
		} else if (strcmp(type, "event_msg") == 0) {
			bool is_user;
			char *preview = event_preview(payload, &is_user);
			if (preview && !h->preview)
				h->preview = strdup(preview);
			if (preview && is_user && !h->first_user_message) {
				h->first_user_message = preview;
				preview = NULL;
			}
			free(preview);
		}
		json_decref(rec);
		if (h->meta && h->preview && h->first_user_message)
			break;
	}
	lr_free(&lr);
	close(fd);
	return rc < 0 ? rc : 0;
}

/* ---- listing --------------------------------------------------------------------------------- */

typedef struct Cursor {
	int64_t ms;
	bool has_id;
	char id[ID_LEN + 1];
} Cursor;

static bool parse_cursor(const char *text, Cursor *c)
{
	*c = (Cursor){ 0 };
	const char *bar = strchr(text, '|');
	size_t ts_len = bar ? (size_t)(bar - text) : strlen(text);
	if (!parse_timestamp(text, ts_len, &c->ms))
		return false;
	if (bar) {
		if (!rollout_thread_id_is_valid(bar + 1))
			return false;
		id_lower(bar + 1, c->id);
		c->has_id = true;
	}
	return true;
}

static char *format_cursor(const Candidate *c, RolloutSortKey key)
{
	char ts[TS_MAX];
	format_utc(c->key_ms, key == ROLLOUT_SORT_UPDATED_AT, ts);
	size_t len = strlen(ts) + 1 + ID_LEN + 1;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s|%s", ts, c->id);
	return s;
}

static int cmp_candidate_desc(const void *a, const void *b)
{
	const Candidate *x = a, *y = b;
	if (x->key_ms != y->key_ms)
		return x->key_ms > y->key_ms ? -1 : 1;
	return -strcmp(x->id, y->id);
}

/* Whether @c sorts strictly after @cur in the listing's direction. */
static bool is_past_cursor(const Candidate *c, const Cursor *cur, bool is_ascending)
{
	int order = c->key_ms < cur->ms ? -1 : c->key_ms > cur->ms ? 1 : 0;
	if (order == 0 && cur->has_id)
		order = strcmp(c->id, cur->id);
	return is_ascending ? order > 0 : order < 0;
}

static bool is_excluded(const RolloutListQuery *q, const char *id)
{
	for (size_t i = 0; i < q->n_excluded_ids; i++)
		if (q->excluded_ids[i] && strcasecmp(q->excluded_ids[i], id) == 0)
			return true;
	return false;
}

static bool provider_matches(const RolloutListQuery *q, const char *recorded)
{
	if (q->n_model_providers == 0)
		return true;
	const char *provider = recorded ? recorded : q->default_provider;
	for (size_t i = 0; provider && i < q->n_model_providers; i++)
		if (q->model_providers[i] && strcmp(q->model_providers[i], provider) == 0)
			return true;
	return false;
}

/* The same directory spelled two ways: compared lexically normalised, then resolved. */
static bool cwd_matches(const char *cwd, const char *filter)
{
	char a[AGENTD_PATH_MAX], b[AGENTD_PATH_MAX];
	if (strcmp(cwd, filter) == 0)
		return true;
	if (path_normalize("/", cwd, a, sizeof(a)) == 0 && path_normalize("/", filter, b, sizeof(b)) == 0 &&
	    strcmp(a, b) == 0)
		return true;
	char *ra = realpath(cwd, NULL), *rb = ra ? realpath(filter, NULL) : NULL;
	bool same = ra && rb && strcmp(ra, rb) == 0;
	free(ra);
	free(rb);
	return same;
}

static bool cwd_filter_matches(const RolloutListQuery *q, const char *cwd)
{
	if (!q->has_cwd_filter)
		return true;
	for (size_t i = 0; cwd && i < q->n_cwds; i++)
		if (q->cwds[i] && cwd_matches(cwd, q->cwds[i]))
			return true;
	return false;
}

static void summary_free(RolloutSummary *s)
{
	free(s->thread_id);
	free(s->path);
	json_decref(s->session_meta);
	free(s->preview);
	free(s->first_user_message);
	free(s->name);
	free(s->model_provider);
	free(s->cwd);
	*s = (RolloutSummary){ 0 };
}

void rollout_list_page_free(RolloutListPage *page)
{
	if (!page)
		return;
	for (size_t i = 0; i < page->count; i++)
		summary_free(&page->items[i]);
	free(page->items);
	free(page->next_cursor);
	free(page->backwards_cursor);
	*page = (RolloutListPage){ 0 };
}

/*
 * The summary of candidate @c when its head passes @q's filters: 1 with @out filled, 0 when it is
 * not listed (no session_meta or preview, a filter says no, the file went away), -ENOMEM.
 */
static int summarize(const Candidate *c, const RolloutListQuery *q, const NameIndex *names,
		     RolloutSummary *out)
{
	Head h;
	if (read_head(c->path, &h) < 0 || !h.meta || !h.preview) {
		head_free(&h);
		return 0;
	}
	RolloutSource source = rollout_source_classify(json_object_get(h.meta, "source"));
	const char *provider = json_string_value(json_object_get(h.meta, "model_provider"));
	const char *cwd = json_string_value(json_object_get(h.meta, "cwd"));
	unsigned mask = q->source_mask ? q->source_mask : ROLLOUT_SOURCES_INTERACTIVE;
	if (!(mask & ROLLOUT_SOURCE_BIT(source)) || !provider_matches(q, provider) ||
	    !cwd_filter_matches(q, cwd)) {
		head_free(&h);
		return 0;
	}
	const char *id = json_string_value(json_object_get(h.meta, "id"));
	const char *ts = json_string_value(json_object_get(h.meta, "timestamp"));
	const char *name = names_lookup(names, c->id);
	int64_t created_ms = c->created_ms;
	if (ts)
		parse_timestamp(ts, strlen(ts), &created_ms);
	provider = provider ? provider : q->default_provider ? q->default_provider : "";
	*out = (RolloutSummary){
		.thread_id = strdup(id ? id : c->id),
		.path = strdup(c->path),
		.session_meta = json_incref(h.meta),
		.preview = h.preview,
		.first_user_message = h.first_user_message,
		.name = name ? strdup(name) : NULL,
		.model_provider = strdup(provider),
		.cwd = strdup(cwd ? cwd : ""),
		.source = source,
		.created_at = floor_div(created_ms, 1000),
		.updated_at = floor_div(c->mtime_ms, 1000),
		.updated_at_ms = c->mtime_ms,
		.is_archived = q->is_archived,
	};
	h.preview = h.first_user_message = NULL;
	head_free(&h);
	if (!out->thread_id || !out->path || (name && !out->name) || !out->model_provider || !out->cwd) {
		summary_free(out);
		return -ENOMEM;
	}
	return 1;
}

/* The files to consider, in listing order. */
static int gather(const char *codex_home, const RolloutListQuery *q, Walk *w)
{
	char root[AGENTD_PATH_MAX];
	int rc = root_path(codex_home, q->is_archived ? ROLLOUT_ARCHIVED_SUBDIR : ROLLOUT_SESSIONS_SUBDIR,
			   root, sizeof(root));
	if (rc < 0)
		return rc;
	w->limit = ROLLOUT_LIST_MAX_SCAN_FILES;
	rc = q->is_archived ? walk_files(w, root) : walk_nested(w, root);
	if (rc < 0)
		return rc;
	/* Keep the newest by name: the ones the reference's walk would reach first. */
	if (w->n > 1)
		qsort(w->v, w->n, sizeof(*w->v), cmp_candidate_desc);
	if (w->n > ROLLOUT_LIST_MAX_SCAN_FILES) {
		for (size_t i = ROLLOUT_LIST_MAX_SCAN_FILES; i < w->n; i++)
			free(w->v[i].path);
		w->n = ROLLOUT_LIST_MAX_SCAN_FILES;
		w->is_capped = true;
	}
	if (q->sort_key == ROLLOUT_SORT_UPDATED_AT) {
		for (size_t i = 0; i < w->n; i++)
			w->v[i].key_ms = w->v[i].mtime_ms;
		if (w->n > 1)
			qsort(w->v, w->n, sizeof(*w->v), cmp_candidate_desc);
	}
	return 0;
}

int rollout_list(const char *codex_home, const RolloutListQuery *q, RolloutListPage *page, char *err,
		 size_t err_len)
{
	if (!page)
		return -EINVAL;
	*page = (RolloutListPage){ 0 };
	if (!codex_home || !q)
		return fail(err, err_len, -EINVAL, "no CODEX_HOME or query");
	Cursor cur;
	bool has_cursor = q->cursor != NULL;
	if (has_cursor && !parse_cursor(q->cursor, &cur))
		return fail(err, err_len, -EINVAL, "invalid cursor: %s", q->cursor);
	if (q->has_cwd_filter && q->n_cwds == 0)
		return 0; /* the reference: an empty cwd list matches nothing */
	size_t limit = q->limit ? q->limit : ROLLOUT_LIST_DEFAULT_LIMIT;
	if (limit > ROLLOUT_LIST_MAX_LIMIT)
		limit = ROLLOUT_LIST_MAX_LIMIT;

	Walk w = { 0 };
	NameIndex names = { 0 };
	int rc = gather(codex_home, q, &w);
	if (rc == 0 && w.n > 0)
		rc = names_load(codex_home, &names);
	if (rc == 0 && w.n > 0 && !(page->items = calloc(limit, sizeof(*page->items))))
		rc = -ENOMEM;
	bool has_more = false;
	const Candidate *first = NULL, *last = NULL;
	for (size_t k = 0; rc == 0 && k < w.n; k++) {
		const Candidate *c = &w.v[q->is_ascending ? w.n - 1 - k : k];
		if ((has_cursor && !is_past_cursor(c, &cur, q->is_ascending)) || is_excluded(q, c->id))
			continue;
		if (page->count == limit) {
			has_more = true;
			break;
		}
		page->scanned_files++;
		if (q->search_term) {
			const char *name = names_lookup(&names, c->id);
			if (!name || !strstr(name, q->search_term))
				continue;
		}
		rc = summarize(c, q, &names, &page->items[page->count]);
		if (rc == 1) {
			page->count++;
			first = first ? first : c;
			last = c;
			rc = 0;
		}
	}
	page->reached_scan_cap = w.is_capped;
	if (rc == 0 && w.is_capped && page->count > 0)
		has_more = true;
	if (rc == 0 && last && has_more && !(page->next_cursor = format_cursor(last, q->sort_key)))
		rc = -ENOMEM;
	if (rc == 0 && first && !(page->backwards_cursor = format_cursor(first, q->sort_key)))
		rc = -ENOMEM;
	names_free(&names);
	walk_free(&w);
	if (rc < 0) {
		rollout_list_page_free(page);
		return fail(err, err_len, rc, "cannot list threads under %s: %s", codex_home, strerror(-rc));
	}
	return 0;
}
