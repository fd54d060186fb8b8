/* SPDX-License-Identifier: MIT */
/* fsops.c - read, write, mkdir, stat, list, remove and copy for clients, with an optional sandbox scope. */
#include "fsops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"

#define FS_MAX_SYMLINKS 40		   /* the kernel's own limit on one lookup */
#define FS_COPY_BUFFER_BYTES (64u * 1024u) /* on a worker thread's stack */

typedef enum FsAccess {
	FS_READ,
	FS_WRITE,
} FsAccess;

/*
 * One path an operation works on. Every operation ends in an *at() call on the parent
 * directory's descriptor and the last component, so that under a scope what was checked is
 * what is touched (see fs_target_open()).
 */
typedef struct FsTarget {
	char shown[AGENTD_PATH_MAX]; /* normalised as the caller spelled it: what messages name */
	char real[AGENTD_PATH_MAX];  /* what is operated on: shown, or its resolution under a scope */
	char dir[AGENTD_PATH_MAX];   /* real's parent */
	const char *name;	     /* real's last component; "." for "/" */
	int dir_fd;		     /* -1 until fs_target_open() */
	int nofollow;		     /* O_NOFOLLOW under a scope (real has no symlink left), else 0 */
	int at_nofollow;	     /* AT_SYMLINK_NOFOLLOW likewise */
	bool is_scoped;
} FsTarget;

/* --- errors ----------------------------------------------------------------------------------- */

/* Rust's io::Error Display, which is what the reference's clients read. Return: -@errnum. */
static int fs_os_error(FsError *err, int errnum)
{
	char buf[128];
	const char *text = strerror_r(errnum, buf, sizeof(buf));
	err->is_refusal = false;
	snprintf(err->message, sizeof(err->message), "%s (os error %d)", text, errnum);
	return -errnum;
}

__attribute__((format(printf, 3, 4))) static int fs_refuse(FsError *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err->is_refusal = true;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -errnum;
}

/* --- resolution under a scope ----------------------------------------------------------------- */

/* Next component of @*p into @comp. Return: 1, 0 at the end, -ENAMETOOLONG. */
static int fs_component(const char **p, char comp[NAME_MAX + 1])
{
	const char *s = *p;
	while (*s == '/')
		s++;
	if (*s == '\0')
		return 0;
	size_t n = strcspn(s, "/");
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(comp, s, n);
	comp[n] = '\0';
	*p = s + n;
	return 1;
}

static bool fs_is_last_component(const char *p)
{
	return p[strspn(p, "/")] == '\0';
}

/*
 * fs_resolve() - the real location of absolute @path: each existing symlink replaced by its
 * target (a dangling one too: where it points is where a write would land), components that do
 * not exist kept as spelled. With @follow_final false a final symlink stays itself.
 * Return: 0, -ELOOP, -ENAMETOOLONG.
 */
static int fs_resolve(const char *path, bool follow_final, char *out, size_t out_len)
{
	char rest[2 * AGENTD_PATH_MAX], target[AGENTD_PATH_MAX], spliced[2 * AGENTD_PATH_MAX + 2];
	char comp[NAME_MAX + 1];
	size_t out_n = 1, links = 0;
	bool is_missing = false;
	if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest) || out_len < 2)
		return -ENAMETOOLONG;
	strcpy(out, "/");
	const char *p = rest;
	int rc;
	while ((rc = fs_component(&p, comp)) > 0) {
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) { /* only from a symlink's target: the path was normalised */
			while (out_n > 1 && out[out_n - 1] != '/')
				out_n--;
			if (out_n > 1)
				out_n--;
			out[out_n] = '\0';
			continue;
		}
		size_t base_n = out_n, comp_n = strlen(comp);
		if (out_n + 1 + comp_n >= out_len)
			return -ENAMETOOLONG;
		if (out_n > 1)
			out[out_n++] = '/';
		memcpy(out + out_n, comp, comp_n + 1);
		out_n += comp_n;
		if (is_missing || (!follow_final && fs_is_last_component(p)))
			continue;
		struct stat st;
		if (lstat(out, &st) < 0) {
			is_missing = true; /* nothing below exists either; the operation reports why */
			continue;
		}
		if (!S_ISLNK(st.st_mode))
			continue;
		if (++links > FS_MAX_SYMLINKS)
			return -ELOOP;
		ssize_t n = readlink(out, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = '\0';
		out_n = base_n;
		out[out_n] = '\0';
		if (target[0] == '/') {
			out_n = 1;
			out[1] = '\0';
		}
		if (snprintf(spliced, sizeof(spliced), "%s/%s", target, p) >= (int)sizeof(rest))
			return -ENAMETOOLONG;
		strcpy(rest, spliced);
		p = rest;
	}
	return rc;
}

static bool fs_is_under(const char *path, const char *root)
{
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1 && root[0] == '/')
		return true;
	return n > 0 && strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool fs_scope_allows(const FsScope *scope, const char *real, FsAccess access)
{
	for (size_t i = 0; i < scope->writable_count; i++)
		if (fs_is_under(real, scope->writable_roots[i]))
			return true;
	for (size_t i = 0; access == FS_READ && i < scope->readable_count; i++)
		if (fs_is_under(real, scope->readable_roots[i]))
			return true;
	return false;
}

/* --- targets ---------------------------------------------------------------------------------- */

/* Normalise @path, resolve and check it under @scope, split it into parent and name. */
static int fs_target_prepare(FsTarget *t, const FsScope *scope, const char *path, FsAccess access,
			     bool follow_final, FsError *err)
{
	t->dir_fd = -1;
	t->is_scoped = scope != NULL;
	t->nofollow = scope ? O_NOFOLLOW : 0;
	t->at_nofollow = scope ? AT_SYMLINK_NOFOLLOW : 0;
	if (!path || path[0] != '/')
		return fs_refuse(err, EINVAL, "path `%s` is not absolute", path ? path : "");
	int rc = path_normalize(NULL, path, t->shown, sizeof(t->shown));
	if (rc < 0)
		return fs_os_error(err, -rc);
	if (scope) {
		rc = fs_resolve(t->shown, follow_final, t->real, sizeof(t->real));
		if (rc < 0)
			return fs_os_error(err, -rc);
		if (!fs_scope_allows(scope, t->real, access)) {
			const char *kind = access == FS_WRITE ? "writable" : "readable";
			if (strcmp(t->shown, t->real) == 0)
				return fs_refuse(err, EACCES, "path `%s` is outside the sandbox's %s roots",
						 t->shown, kind);
			return fs_refuse(err, EACCES,
					 "path `%s` resolves through a symlink to `%s`, outside the "
					 "sandbox's %s roots",
					 t->shown, t->real, kind);
		}
	} else {
		strcpy(t->real, t->shown);
	}
	char *slash = strrchr(t->real, '/');
	if (slash[1] == '\0') { /* "/" itself */
		strcpy(t->dir, "/");
		t->name = ".";
	} else {
		size_t n = slash == t->real ? 1 : (size_t)(slash - t->real);
		memcpy(t->dir, t->real, n);
		t->dir[n] = '\0';
		t->name = slash + 1;
	}
	return 0;
}

/* Open directory @path one component at a time, refusing to follow any symlink. Return fd or -errno. */
static int fs_open_dir_strictly(const char *path)
{
	char comp[NAME_MAX + 1];
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	const char *p = path;
	int rc;
	while ((rc = fs_component(&p, comp)) > 0) {
		int next = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (next < 0)
			return -e;
		fd = next;
	}
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/*
 * Open @t's parent. Without a scope the kernel resolves it as usual. Under a scope t->real was
 * checked and contains no symlink (but perhaps the last component): opening it strictly means a
 * symlink planted since then fails the operation rather than leading outside the roots.
 */
static int fs_target_open(FsTarget *t, FsError *err)
{
	t->dir_fd =
		t->is_scoped ? fs_open_dir_strictly(t->dir) : open(t->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (t->dir_fd < 0) {
		int e = t->is_scoped ? -t->dir_fd : errno;
		t->dir_fd = -1;
		return fs_os_error(err, e);
	}
	return 0;
}

static void fs_target_close(FsTarget *t)
{
	if (t->dir_fd >= 0)
		close(t->dir_fd);
	t->dir_fd = -1;
}

static int fs_target_begin(FsTarget *t, const FsScope *scope, const char *path, FsAccess access,
			   bool follow_final, FsError *err)
{
	int rc = fs_target_prepare(t, scope, path, access, follow_final, err);
	return rc < 0 ? rc : fs_target_open(t, err);
}

/* --- read and write --------------------------------------------------------------------------- */

static int fs_not_a_file(FsError *err, const FsTarget *t)
{
	return fs_refuse(err, EINVAL, "path `%s` is not a file", t->shown);
}

int fsops_read_file(const FsScope *scope, const char *path, size_t max_bytes, uint8_t **data, size_t *len,
		    FsError *err)
{
	FsTarget t;
	struct stat st;
	uint8_t *buf = NULL;
	int fd = -1;
	if (max_bytes == 0 || max_bytes > FSOPS_READ_MAX_BYTES)
		max_bytes = FSOPS_READ_MAX_BYTES;
	int rc = fs_target_begin(&t, scope, path, FS_READ, true, err);
	if (rc < 0)
		return rc;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below. */
	fd = openat(t.dir_fd, t.name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | t.nofollow);
	if (fd < 0) {
		int e = errno;
		/* The reference looks at the type first: a directory it cannot open is still "not a file". */
		if (fstatat(t.dir_fd, t.name, &st, t.at_nofollow) == 0 && !S_ISREG(st.st_mode))
			rc = fs_not_a_file(err, &t);
		else
			rc = fs_os_error(err, e);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = fs_os_error(err, errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fs_not_a_file(err, &t);
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		rc = fs_refuse(err, EFBIG,
			       "path `%s` is too large to read: %llu bytes, the limit is %zu bytes", t.shown,
			       (unsigned long long)st.st_size, max_bytes);
		goto out;
	}
	/* One byte past the size notices a file that grows (or, like /proc, reports 0). */
	size_t cap = (size_t)st.st_size + 1, n = 0;
	if (cap < 4096)
		cap = 4096;
	if (cap > max_bytes + 1)
		cap = max_bytes + 1;
	buf = malloc(cap);
	if (!buf) {
		rc = fs_os_error(err, ENOMEM);
		goto out;
	}
	for (;;) {
		if (n == cap) {
			size_t grown = cap > (max_bytes + 1) / 2 ? max_bytes + 1 : cap * 2;
			uint8_t *bigger = grown > cap ? realloc(buf, grown) : NULL;
			if (!bigger) {
				rc = grown > cap ? fs_os_error(err, ENOMEM) : -EFBIG;
				break;
			}
			buf = bigger;
			cap = grown;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = fs_os_error(err, errno);
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max_bytes) {
			rc = -EFBIG;
			break;
		}
	}
	if (rc == -EFBIG)
		rc = fs_refuse(err, EFBIG, "path `%s` is too large to read: more than %zu bytes", t.shown,
			       max_bytes);
	if (rc == 0) {
		*data = buf;
		*len = n;
		buf = NULL;
	}
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	fs_target_close(&t);
	return rc;
}

int fsops_write_file(const FsScope *scope, const char *path, const uint8_t *data, size_t len, FsError *err)
{
	FsTarget t;
	int rc = fs_target_begin(&t, scope, path, FS_WRITE, true, err);
	if (rc < 0)
		return rc;
	/* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of stalling every later operation. */
	int fd = openat(t.dir_fd, t.name, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC | t.nofollow,
			0666);
	if (fd < 0) {
		rc = fs_os_error(err, errno);
	} else {
		rc = fd_write_all(fd, data, len);
		if (close(fd) < 0 && rc == 0 && errno != EINTR)
			rc = -errno;
		if (rc < 0)
			rc = fs_os_error(err, -rc);
	}
	fs_target_close(&t);
	return rc;
}

/* --- directories ------------------------------------------------------------------------------ */

/* `mkdir -p` of @path, from "/" down, each component opened with @nofollow. */
static int fs_mkdir_all(const char *path, int nofollow, FsError *err)
{
	char comp[NAME_MAX + 1];
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fs_os_error(err, errno);
	const char *p = path;
	int rc;
	while ((rc = fs_component(&p, comp)) > 0) {
		int next = openat(fd, comp, O_PATH | O_DIRECTORY | O_CLOEXEC | nofollow);
		if (next < 0 && errno == ENOENT) {
			if (mkdirat(fd, comp, 0777) < 0 && errno != EEXIST) {
				rc = -errno;
				break;
			}
			next = openat(fd, comp, O_PATH | O_DIRECTORY | O_CLOEXEC | nofollow);
			if (next < 0 && errno == ENOENT)
				errno = EEXIST; /* a dangling symlink is in the way */
		}
		if (next < 0) {
			struct stat st;
			rc = -errno;
			/* The last component exists but is no directory: that is "File exists". */
			if (fs_is_last_component(p) && (rc == -ENOTDIR || rc == -ELOOP) &&
			    fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0)
				rc = -EEXIST;
			break;
		}
		close(fd);
		fd = next;
	}
	close(fd);
	return rc < 0 ? fs_os_error(err, -rc) : 0;
}

int fsops_create_directory(const FsScope *scope, const char *path, bool recursive, FsError *err)
{
	FsTarget t;
	/* mkdir never follows a final symlink; `mkdir -p` accepts one that leads to a directory. */
	int rc = fs_target_prepare(&t, scope, path, FS_WRITE, recursive, err);
	if (rc < 0)
		return rc;
	if (recursive) {
		struct stat st;
		/* Under a scope t.real went through a dangling symlink: unscoped, that is "File exists". */
		if (t.is_scoped && strcmp(t.shown, t.real) != 0 && lstat(t.shown, &st) == 0 &&
		    S_ISLNK(st.st_mode) && stat(t.shown, &st) < 0 && errno == ENOENT)
			return fs_os_error(err, EEXIST);
		return fs_mkdir_all(t.real, t.nofollow, err);
	}
	rc = fs_target_open(&t, err);
	if (rc == 0 && mkdirat(t.dir_fd, t.name, 0777) < 0)
		rc = fs_os_error(err, errno);
	fs_target_close(&t);
	return rc;
}

static int64_t fs_ms(const struct statx_timestamp *ts)
{
	return ts->tv_sec < 0 ? 0 : ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

int fsops_get_metadata(const FsScope *scope, const char *path, FsMetadata *md, FsError *err)
{
	FsTarget resolved, link;
	struct statx stx;
	int rc = fs_target_begin(&resolved, scope, path, FS_READ, true, err);
	if (rc < 0)
		return rc;
	if (statx(resolved.dir_fd, resolved.name, resolved.at_nofollow, STATX_BASIC_STATS | STATX_BTIME,
		  &stx) < 0) {
		rc = fs_os_error(err, errno);
		goto out;
	}
	memset(md, 0, sizeof(*md));
	md->is_directory = S_ISDIR(stx.stx_mode);
	md->is_file = S_ISREG(stx.stx_mode);
	md->size = stx.stx_size;
	md->modified_at_ms = fs_ms(&stx.stx_mtime);
	md->created_at_ms = (stx.stx_mask & STATX_BTIME) ? fs_ms(&stx.stx_btime) : 0;
	/* Whether the path itself is a symlink: under a scope, the link's own (checked) location. */
	if (!scope) {
		rc = statx(resolved.dir_fd, resolved.name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) < 0
			     ? fs_os_error(err, errno)
			     : 0;
	} else if ((rc = fs_target_begin(&link, scope, path, FS_READ, false, err)) == 0) {
		if (statx(link.dir_fd, link.name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) < 0)
			rc = fs_os_error(err, errno);
		fs_target_close(&link);
	}
	if (rc == 0)
		md->is_symlink = S_ISLNK(stx.stx_mode);
out:
	fs_target_close(&resolved);
	return rc;
}

/* Under @scope, whether entry @name of directory @dir (a symlink) resolves somewhere readable. */
static bool fs_entry_is_visible(const FsScope *scope, const char *dir, const char *name)
{
	char path[AGENTD_PATH_MAX], real[AGENTD_PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name) >=
	    (int)sizeof(path))
		return false;
	return fs_resolve(path, true, real, sizeof(real)) == 0 && fs_scope_allows(scope, real, FS_READ);
}

void fsops_dir_entries_free(FsDirEntry *entries, size_t count)
{
	for (size_t i = 0; entries && i < count; i++)
		free(entries[i].file_name);
	free(entries);
}

int fsops_read_directory(const FsScope *scope, const char *path, FsDirEntry **entries, size_t *count,
			 FsError *err)
{
	FsTarget t;
	FsDirEntry *list = NULL;
	size_t n = 0, cap = 0;
	int rc = fs_target_begin(&t, scope, path, FS_READ, true, err);
	if (rc < 0)
		return rc;
	int fd = openat(t.dir_fd, t.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | t.nofollow);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		rc = fs_os_error(err, errno);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	for (;;) {
		errno = 0;
		struct dirent *ent = readdir(d);
		if (!ent) {
			if (errno)
				rc = fs_os_error(err, errno);
			break;
		}
		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		struct stat st;
		bool is_link = ent->d_type == DT_LNK;
		if (scope && ent->d_type == DT_UNKNOWN)
			is_link = fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				  S_ISLNK(st.st_mode);
		if (scope && is_link && !fs_entry_is_visible(scope, t.real, ent->d_name))
			continue;
		if (fstatat(dirfd(d), ent->d_name, &st, 0) < 0)
			continue; /* a dangling symlink, or gone meanwhile: the reference leaves it out too */
		if (n == FSOPS_MAX_DIR_ENTRIES) {
			rc = fs_refuse(err, E2BIG, "directory `%s` has more than %u entries", t.shown,
				       FSOPS_MAX_DIR_ENTRIES);
			break;
		}
		if (n == cap) {
			size_t grown = cap ? cap * 2 : 64;
			FsDirEntry *bigger = realloc(list, grown * sizeof(*list));
			if (!bigger) {
				rc = fs_os_error(err, ENOMEM);
				break;
			}
			list = bigger;
			cap = grown;
		}
		list[n].file_name = strdup(ent->d_name);
		if (!list[n].file_name) {
			rc = fs_os_error(err, ENOMEM);
			break;
		}
		list[n].is_directory = S_ISDIR(st.st_mode);
		list[n].is_file = S_ISREG(st.st_mode);
		n++;
	}
	closedir(d);
	if (rc == 0) {
		*entries = list;
		*count = n;
		list = NULL;
	}
out:
	fsops_dir_entries_free(list, n);
	fs_target_close(&t);
	return rc;
}

/* --- trees ------------------------------------------------------------------------------------ */

/* The names in directory @fd (without "." and ".."), read in full before the caller changes it. */
static int fs_list_names(int fd, char ***names, size_t *count)
{
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
	char **list = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (!d) {
		rc = -errno;
		if (dup_fd >= 0)
			close(dup_fd);
		return rc;
	}
	rewinddir(d); /* the duplicate shares the offset */
	for (;;) {
		errno = 0;
		struct dirent *ent = readdir(d);
		if (!ent) {
			rc = -errno;
			break;
		}
		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		if (n == cap) {
			size_t grown = cap ? cap * 2 : 32;
			char **bigger = realloc(list, grown * sizeof(*list));
			if (!bigger) {
				rc = -ENOMEM;
				break;
			}
			list = bigger;
			cap = grown;
		}
		if (!(list[n] = strdup(ent->d_name))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(list[i]);
		free(list);
		return rc;
	}
	*names = list;
	*count = n;
	return 0;
}

static void fs_names_free(char **names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

static int fs_too_deep(FsError *err, const char *shown)
{
	return fs_refuse(err, ELOOP, "path `%s` nests directories more than %u deep", shown, FSOPS_MAX_DEPTH);
}

/* Empty directory @name of @parent_fd, depth first. Entries that vanish meanwhile are fine. */
static int fs_remove_tree(int parent_fd, const char *name, unsigned depth, const char *shown, FsError *err)
{
	char **names = NULL;
	size_t count = 0;
	if (depth >= FSOPS_MAX_DEPTH)
		return fs_too_deep(err, shown);
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : fs_os_error(err, errno);
	int rc = fs_list_names(fd, &names, &count);
	if (rc < 0)
		rc = fs_os_error(err, -rc);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		struct stat st;
		if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				rc = fs_os_error(err, errno);
			continue;
		}
		int flags = 0;
		if (S_ISDIR(st.st_mode)) {
			rc = fs_remove_tree(fd, names[i], depth + 1, shown, err);
			flags = AT_REMOVEDIR;
		}
		if (rc == 0 && unlinkat(fd, names[i], flags) < 0 && errno != ENOENT)
			rc = fs_os_error(err, errno);
	}
	fs_names_free(names, count);
	close(fd);
	return rc;
}

int fsops_remove(const FsScope *scope, const char *path, bool recursive, bool force, FsError *err)
{
	FsTarget t;
	struct stat st;
	int rc = fs_target_prepare(&t, scope, path, FS_WRITE, false, err);
	if (rc < 0)
		return rc;
	if (strcmp(t.real, "/") == 0)
		return fs_refuse(err, EPERM, "refusing to remove `/`");
	rc = fs_target_open(&t, err);
	if (rc == 0 && fstatat(t.dir_fd, t.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = fs_os_error(err, errno);
	if (rc == 0) {
		int flags = 0;
		if (S_ISDIR(st.st_mode)) {
			flags = AT_REMOVEDIR;
			if (recursive)
				rc = fs_remove_tree(t.dir_fd, t.name, 0, t.shown, err);
		}
		if (rc == 0 && unlinkat(t.dir_fd, t.name, flags) < 0)
			rc = fs_os_error(err, errno);
	}
	fs_target_close(&t);
	return rc == -ENOENT && force ? 0 : rc;
}

/* --- copy ------------------------------------------------------------------------------------- */

static int fs_copy_data(int in, int out)
{
	bool can_copy_range = true;
	for (;;) {
		if (can_copy_range) {
			ssize_t n = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
			if (n > 0)
				continue;
			if (n == 0)
				return 0;
			if (errno == EINTR)
				continue;
			if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP &&
			    errno != EPERM && errno != EBADF)
				return -errno;
			can_copy_range = false; /* across file systems, or not for these files: plain copy */
		}
		uint8_t buf[FS_COPY_BUFFER_BYTES];
		ssize_t r = read(in, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : 0;
		int rc = fd_write_all(out, buf, (size_t)r);
		if (rc < 0)
			return rc;
	}
}

static int fs_copy_file(int src_dir, const char *src_name, int dst_dir, const char *dst_name, int nofollow,
			FsError *err)
{
	struct stat st, dst_st;
	int out = -1, rc = 0;
	int in = openat(src_dir, src_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0)
		return fs_os_error(err, errno);
	if (fstat(in, &st) < 0) {
		rc = fs_os_error(err, errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) { /* replaced since it was looked at */
		rc = fs_refuse(err, EOPNOTSUPP,
			       "fs/copy only supports regular files, directories, and symlinks");
		goto out;
	}
	/* Onto itself: opening the destination would truncate the source (the reference empties it). */
	if (fstatat(dst_dir, dst_name, &dst_st, nofollow ? AT_SYMLINK_NOFOLLOW : 0) == 0 &&
	    dst_st.st_dev == st.st_dev && dst_st.st_ino == st.st_ino)
		goto out;
	out = openat(dst_dir, dst_name, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC | nofollow,
		     st.st_mode & 0777);
	if (out < 0) {
		rc = fs_os_error(err, errno);
		goto out;
	}
	rc = fs_copy_data(in, out);
	/* Permission bits follow the source, on a regular destination (not onto /dev/null). */
	if (rc == 0 && fstat(out, &dst_st) == 0 && S_ISREG(dst_st.st_mode) &&
	    fchmod(out, st.st_mode & 0777) < 0)
		rc = -errno;
	if (close(out) < 0 && rc == 0 && errno != EINTR)
		rc = -errno;
	if (rc < 0)
		rc = fs_os_error(err, -rc);
out:
	close(in);
	return rc;
}

static int fs_copy_symlink(int src_dir, const char *src_name, int dst_dir, const char *dst_name, FsError *err)
{
	char target[AGENTD_PATH_MAX];
	ssize_t n = readlinkat(src_dir, src_name, target, sizeof(target));
	if (n < 0)
		return fs_os_error(err, errno);
	if ((size_t)n == sizeof(target))
		return fs_os_error(err, ENAMETOOLONG);
	target[n] = '\0';
	return symlinkat(target, dst_dir, dst_name) < 0 ? fs_os_error(err, errno) : 0;
}

/* Merge directory @src_name of @src_dir into @dst_name of @dst_dir (created when missing). */
static int fs_copy_tree(int src_dir, const char *src_name, int dst_dir, const char *dst_name, int nofollow,
			unsigned depth, const char *shown, FsError *err)
{
	char **names = NULL;
	size_t count = 0;
	if (depth >= FSOPS_MAX_DEPTH)
		return fs_too_deep(err, shown);
	int src = openat(src_dir, src_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return fs_os_error(err, errno);
	int dst = -1, rc = 0;
	if (mkdirat(dst_dir, dst_name, 0777) < 0 && errno != EEXIST) {
		rc = fs_os_error(err, errno);
		goto out;
	}
	dst = openat(dst_dir, dst_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | nofollow);
	if (dst < 0) {
		/* Something that is no directory is in the way. */
		rc = fs_os_error(err, errno == ENOTDIR || errno == ELOOP ? EEXIST : errno);
		goto out;
	}
	rc = fs_list_names(src, &names, &count);
	if (rc < 0)
		rc = fs_os_error(err, -rc);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		struct stat st;
		if (fstatat(src, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				rc = fs_os_error(err, errno);
		} else if (S_ISDIR(st.st_mode)) {
			rc = fs_copy_tree(src, names[i], dst, names[i], nofollow, depth + 1, shown, err);
		} else if (S_ISLNK(st.st_mode)) {
			rc = fs_copy_symlink(src, names[i], dst, names[i], err);
		} else if (S_ISREG(st.st_mode)) {
			rc = fs_copy_file(src, names[i], dst, names[i], nofollow, err);
		}
		/* FIFOs, sockets and devices inside a tree are skipped, as the reference does. */
	}
out:
	fs_names_free(names, count);
	if (dst >= 0)
		close(dst);
	close(src);
	return rc;
}

int fsops_copy(const FsScope *scope, const char *source, const char *destination, bool recursive,
	       FsError *err)
{
	FsTarget src, dst;
	struct stat st;
	dst.dir_fd = -1;
	int rc = fs_target_begin(&src, scope, source, FS_READ, false, err);
	if (rc < 0)
		return rc;
	if (fstatat(src.dir_fd, src.name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = fs_os_error(err, errno);
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		/* The link is copied, not followed: where it is created is what must be writable. */
		rc = fs_target_begin(&dst, scope, destination, FS_WRITE, false, err);
		if (rc == 0)
			rc = fs_copy_symlink(src.dir_fd, src.name, dst.dir_fd, dst.name, err);
	} else if (S_ISDIR(st.st_mode)) {
		char src_real[AGENTD_PATH_MAX], dst_real[AGENTD_PATH_MAX];
		if (!recursive) {
			rc = fs_refuse(err, EISDIR,
				       "fs/copy requires recursive: true when sourcePath is a directory");
			goto out;
		}
		rc = fs_target_prepare(&dst, scope, destination, FS_WRITE, true, err);
		if (rc < 0)
			goto out;
		/* Where both really are, so that a symlinked spelling cannot hide a copy into itself. */
		if (scope) {
			strcpy(src_real, src.real);
			strcpy(dst_real, dst.real);
		} else if ((rc = fs_resolve(src.real, true, src_real, sizeof(src_real))) < 0 ||
			   (rc = fs_resolve(dst.real, true, dst_real, sizeof(dst_real))) < 0) {
			rc = fs_os_error(err, -rc);
			goto out;
		}
		if (fs_is_under(dst_real, src_real)) {
			rc = fs_refuse(err, EINVAL,
				       "fs/copy cannot copy a directory to itself or one of its descendants");
			goto out;
		}
		rc = fs_target_open(&dst, err);
		if (rc == 0)
			rc = fs_copy_tree(src.dir_fd, src.name, dst.dir_fd, dst.name, dst.nofollow, 0,
					  src.shown, err);
	} else if (S_ISREG(st.st_mode)) {
		rc = fs_target_begin(&dst, scope, destination, FS_WRITE, true, err);
		if (rc == 0)
			rc = fs_copy_file(src.dir_fd, src.name, dst.dir_fd, dst.name, dst.nofollow, err);
	} else {
		rc = fs_refuse(err, EOPNOTSUPP,
			       "fs/copy only supports regular files, directories, and symlinks");
	}
out:
	fs_target_close(&dst);
	fs_target_close(&src);
	return rc;
}
