/* SPDX-License-Identifier: MIT */
/* store.c - auth.json in the reference's format: parse, claims, atomic replace, advisory lock. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "fdio.h"

#define STORE_FILE_NAME "auth.json"
#define STORE_LOCK_NAME "auth.json.lock"
#define STORE_TEMP_PREFIX ".auth.json.tmp."
#define STORE_LOCK_POLL_MS 5

int store_paths(const char *codex_home, StorePaths *out)
{
	int a = snprintf(out->dir, sizeof(out->dir), "%s", codex_home);
	int b = snprintf(out->file, sizeof(out->file), "%s/" STORE_FILE_NAME, codex_home);
	int c = snprintf(out->lock, sizeof(out->lock), "%s/" STORE_LOCK_NAME, codex_home);
	if (a < 0 || b < 0 || c < 0 || (size_t)b >= sizeof(out->file) || (size_t)c >= sizeof(out->lock))
		return -ENAMETOOLONG;
	return 0;
}

const char *store_mode_name(AuthMode mode)
{
	switch (mode) {
	case AUTH_MODE_APIKEY:
		return "apikey";
	case AUTH_MODE_CHATGPT:
		return "chatgpt";
	case AUTH_MODE_PERSONAL_ACCESS_TOKEN:
		return "personalAccessToken";
	case AUTH_MODE_AGENT_IDENTITY:
		return "agentIdentity";
	case AUTH_MODE_NONE:
		break;
	}
	return NULL;
}

json_t *store_jwt_claims(const char *jwt)
{
	if (!jwt)
		return NULL;
	const char *dot1 = strchr(jwt, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2)
		return NULL;
	size_t len = (size_t)(dot2 - dot1 - 1);
	while (len > 0 && dot1[len] == '=') /* tolerate padding some issuers add */
		len--;
	uint8_t *buf = malloc(len * 3 / 4 + 1);
	size_t n;
	json_t *claims = NULL;
	if (buf && base64url_decode(dot1 + 1, len, buf, &n) == 0)
		claims = json_loadb((const char *)buf, n, 0, NULL);
	free(buf);
	if (claims && !json_is_object(claims)) {
		json_decref(claims);
		claims = NULL;
	}
	return claims;
}

static char *store_claim_string(json_t *obj, const char *key)
{
	const char *text = json_string_value(json_object_get(obj, key));
	return text ? strdup(text) : NULL;
}

/* The id token's display claims, as the reference's token_data reads them. */
static void store_read_id_claims(AuthSnapshot *snap)
{
	json_t *claims = store_jwt_claims(snap->id_token);
	if (!claims)
		return;
	json_t *profile = json_object_get(claims, "https://api.openai.com/profile");
	json_t *auth = json_object_get(claims, "https://api.openai.com/auth");
	snap->email = store_claim_string(claims, "email");
	if (!snap->email)
		snap->email = store_claim_string(profile, "email");
	snap->plan_type = store_claim_string(auth, "chatgpt_plan_type");
	snap->user_id = store_claim_string(auth, "chatgpt_user_id");
	if (!snap->user_id)
		snap->user_id = store_claim_string(auth, "user_id");
	if (!snap->account_id) {
		snap->claim_account_id = store_claim_string(auth, "chatgpt_account_id");
		snap->account_id = snap->claim_account_id;
	}
	json_decref(claims);
}

static void store_read_access_exp(AuthSnapshot *snap)
{
	json_t *claims = store_jwt_claims(snap->access_token);
	json_t *exp = json_object_get(claims, "exp");
	if (json_is_integer(exp))
		snap->access_exp_s = json_integer_value(exp);
	else if (json_is_real(exp))
		snap->access_exp_s = (int64_t)json_real_value(exp);
	json_decref(claims);
}

/* A string field, null, or absent; anything else is a format error. */
static int store_optional_string(json_t *obj, const char *key, const char **out, char *err, size_t err_len,
				 const char *where)
{
	json_t *value = json_object_get(obj, key);
	*out = NULL;
	if (!value || json_is_null(value))
		return 0;
	if (!json_is_string(value)) {
		snprintf(err, err_len, "%s%s must be a string", where, key);
		return -EINVAL;
	}
	*out = json_string_value(value);
	return 0;
}

/* auth_mode as written, else inferred as the reference infers it (§6.1). */
static int store_mode(json_t *doc, const char *api_key, AuthMode *mode, char *err, size_t err_len)
{
	json_t *tag = json_object_get(doc, "auth_mode");
	if (tag && !json_is_null(tag)) {
		static const struct {
			const char *name;
			AuthMode mode;
		} modes[] = { { "apikey", AUTH_MODE_APIKEY },
			      { "chatgpt", AUTH_MODE_CHATGPT },
			      { "personalAccessToken", AUTH_MODE_PERSONAL_ACCESS_TOKEN },
			      { "agentIdentity", AUTH_MODE_AGENT_IDENTITY } };
		const char *text = json_string_value(tag);
		for (size_t i = 0; text && i < sizeof(modes) / sizeof(modes[0]); i++) {
			if (strcmp(text, modes[i].name) == 0) {
				*mode = modes[i].mode;
				return 0;
			}
		}
		snprintf(err, err_len, "unknown auth_mode %s", text ? text : "(not a string)");
		return -EINVAL;
	}
	if (json_object_get(doc, "personal_access_token"))
		*mode = AUTH_MODE_PERSONAL_ACCESS_TOKEN;
	else if (api_key)
		*mode = AUTH_MODE_APIKEY;
	else if (json_object_get(doc, "tokens"))
		*mode = AUTH_MODE_CHATGPT;
	else
		*mode = AUTH_MODE_NONE;
	return 0;
}

static int store_read_tokens(AuthSnapshot *snap, char *err, size_t err_len)
{
	json_t *tokens = json_object_get(snap->doc, "tokens");
	if (!tokens || json_is_null(tokens)) {
		if (snap->mode == AUTH_MODE_CHATGPT) {
			snprintf(err, err_len, "auth_mode chatgpt without tokens");
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_object(tokens)) {
		snprintf(err, err_len, "tokens must be an object");
		return -EINVAL;
	}
	if (store_optional_string(tokens, "id_token", &snap->id_token, err, err_len, "tokens.") < 0 ||
	    store_optional_string(tokens, "access_token", &snap->access_token, err, err_len, "tokens.") < 0 ||
	    store_optional_string(tokens, "refresh_token", &snap->refresh_token, err, err_len, "tokens.") < 0 ||
	    store_optional_string(tokens, "account_id", &snap->account_id, err, err_len, "tokens.") < 0)
		return -EINVAL;
	if (snap->mode == AUTH_MODE_CHATGPT && !snap->access_token) {
		snprintf(err, err_len, "tokens.access_token is missing");
		return -EINVAL;
	}
	return 0;
}

int store_snapshot_from_doc(json_t *doc, AuthSnapshot *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	out->doc = doc;
	if (!json_is_object(doc)) {
		snprintf(err, err_len, "not a JSON object");
		store_snapshot_clear(out);
		return -EINVAL;
	}
	const char *last_refresh = NULL;
	if (store_optional_string(doc, "OPENAI_API_KEY", &out->api_key, err, err_len, "") < 0 ||
	    store_optional_string(doc, "personal_access_token", &out->personal_access_token, err, err_len, "") <
		    0 ||
	    store_mode(doc, out->api_key, &out->mode, err, err_len) < 0 ||
	    store_read_tokens(out, err, err_len) < 0 ||
	    store_optional_string(doc, "last_refresh", &last_refresh, err, err_len, "") < 0)
		goto fail;
	if (out->mode == AUTH_MODE_APIKEY && !out->api_key) {
		snprintf(err, err_len, "auth_mode apikey without OPENAI_API_KEY");
		goto fail;
	}
	if (last_refresh && store_parse_time(last_refresh, &out->last_refresh_s) < 0)
		out->last_refresh_s = 0; /* unreadable: treated as unknown, as the reference does */
	store_read_id_claims(out);
	store_read_access_exp(out);
	out->identity = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!out->identity) {
		snprintf(err, err_len, "out of memory");
		goto fail;
	}
	return 0;
fail:
	store_snapshot_clear(out);
	return -EINVAL;
}

void store_snapshot_clear(AuthSnapshot *snap)
{
	if (!snap)
		return;
	json_decref(snap->doc);
	free(snap->identity);
	free(snap->email);
	free(snap->plan_type);
	free(snap->user_id);
	free(snap->claim_account_id);
	memset(snap, 0, sizeof(*snap));
}

int store_snapshot_copy(const AuthSnapshot *src, AuthSnapshot *dst)
{
	char err[64];
	memset(dst, 0, sizeof(*dst));
	if (!src->doc)
		return 0;
	json_t *doc = json_deep_copy(src->doc);
	if (!doc)
		return -ENOMEM;
	return store_snapshot_from_doc(doc, dst, err, sizeof(err)) < 0 ? -ENOMEM : 0;
}

bool store_snapshot_equal(const AuthSnapshot *a, const AuthSnapshot *b)
{
	if (!a->identity || !b->identity)
		return !a->identity && !b->identity;
	return strcmp(a->identity, b->identity) == 0;
}

static int store_read_file(const char *path, char **out, size_t *out_len, struct stat *st)
{
	/* O_NONBLOCK: a FIFO planted at the path must not hang the loop before the S_ISREG check. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	int rc = fstat(fd, st) < 0 ? -errno : 0;
	if (rc == 0 && !S_ISREG(st->st_mode))
		rc = -EINVAL;
	if (rc == 0 && (size_t)st->st_size > STORE_MAX_FILE_BYTES)
		rc = -EFBIG;
	char *buf = rc == 0 ? malloc((size_t)st->st_size + 1) : NULL;
	size_t len = 0;
	if (rc == 0 && !buf)
		rc = -ENOMEM;
	while (rc == 0 && len < (size_t)st->st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st->st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* shrank meanwhile: parse what is there */
		len += (size_t)n;
	}
	close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

int store_load(const StorePaths *paths, AuthSnapshot *out, struct stat *st, char *err, size_t err_len)
{
	char *text = NULL;
	size_t len = 0;
	char why[256];
	memset(out, 0, sizeof(*out));
	memset(st, 0, sizeof(*st));
	int rc = store_read_file(paths->file, &text, &len, st);
	if (rc == -ENOENT) {
		memset(st, 0, sizeof(*st));
		return 0;
	}
	if (rc < 0) {
		snprintf(err, err_len, "cannot read %s: %s", paths->file,
			 rc == -EINVAL ? "not a regular file" : strerror(-rc));
		return rc;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!doc) {
		/* Line and column only: jansson's text quotes the file near the error, and the file
		 * holds secrets. */
		snprintf(err, err_len, "cannot parse %s: invalid JSON at line %d column %d", paths->file,
			 jerr.line, jerr.column);
		return -EINVAL;
	}
	if (store_snapshot_from_doc(doc, out, why, sizeof(why)) < 0) {
		snprintf(err, err_len, "cannot parse %s: %s", paths->file, why);
		return -EINVAL;
	}
	return 0;
}

static int store_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int store_temp_path(const StorePaths *paths, char *out, size_t out_len)
{
	/* getrandom(), not OpenSSL: this runs on worker threads, where OpenSSL's per-thread
	 * generator state would outlive the thread. */
	unsigned long long suffix;
	if (getrandom(&suffix, sizeof(suffix), 0) != (ssize_t)sizeof(suffix))
		return -EIO;
	int n = snprintf(out, out_len, "%s/" STORE_TEMP_PREFIX "%d.%016llx", paths->dir, (int)getpid(), suffix);
	return n < 0 || (size_t)n >= out_len ? -ENAMETOOLONG : 0;
}

int store_write(const StorePaths *paths, json_t *doc)
{
	char temp[4200];
	char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	int rc = store_temp_path(paths, temp, sizeof(temp));
	int fd = rc == 0 ? open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
	if (rc == 0 && fd < 0)
		rc = -errno;
	if (rc == 0)
		rc = fd_write_all(fd, text, strlen(text));
	if (rc == 0 && fchmod(fd, 0600) < 0) /* O_CREAT's mode went through the umask */
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(temp, paths->file) < 0)
		rc = -errno;
	if (rc < 0 && fd >= 0)
		unlink(temp);
	/* Renamed: the new content is what every reader sees. A directory that cannot be synced
	 * only weakens its durability across a power cut; the write itself succeeded. */
	if (rc == 0)
		(void)store_fsync_dir(paths->dir);
	free(text);
	return rc;
}

int store_remove(const StorePaths *paths)
{
	if (unlink(paths->file) < 0 && errno != ENOENT)
		return -errno;
	/* The unlink is done; a directory that cannot be synced only weakens its durability. */
	(void)store_fsync_dir(paths->dir);
	return 0;
}

void store_remove_stale_temps(const StorePaths *paths)
{
	DIR *dir = opendir(paths->dir);
	if (!dir)
		return;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (strncmp(entry->d_name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)) == 0)
			unlinkat(dirfd(dir), entry->d_name, 0);
	}
	closedir(dir);
}

int store_lock(const StorePaths *paths, int timeout_ms, const volatile bool *cancel)
{
	int fd = open(paths->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	for (int waited = 0;; waited += STORE_LOCK_POLL_MS) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if ((cancel && *cancel) || waited >= timeout_ms) {
			errno = cancel && *cancel ? ECANCELED : ETIMEDOUT;
			break;
		}
		struct timespec pause = { 0, STORE_LOCK_POLL_MS * 1000000L };
		nanosleep(&pause, NULL);
	}
	int rc = -errno;
	close(fd);
	return rc;
}

void store_unlock(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

void store_format_time(int64_t ns, char *out, size_t out_len)
{
	time_t s = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char date[32];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, out_len, "%s.%09lldZ", date, (long long)(ns % 1000000000));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t store_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int store_parse_time(const char *text, int64_t *out_s)
{
	int y, mo, d, h, mi, s, used = 0;
	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6 || used != 19)
		return -EINVAL;
	const char *p = text + used;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	int64_t offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
			return -EINVAL;
		offset = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -EINVAL;
	*out_s = store_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s - offset;
	return 0;
}
