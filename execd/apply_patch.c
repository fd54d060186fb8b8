/* SPDX-License-Identifier: MIT */
/* apply_patch.c - agentd-apply-patch: apply a Codex apply_patch patch to the files under the
 * current directory, printing what the reference's apply_patch prints.
 *
 * It runs inside the command sandbox, so it uses nothing but plain file system calls: what the
 * sandbox forbids fails here with the reference's message. Hunks apply in order, one file at a
 * time, as the reference does: a failure stops the run and leaves earlier hunks applied (its
 * fixture 015). Each file is written whole to a temporary file beside it and renamed into place,
 * so a failed write never leaves a half-written file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "patch.h"

#define USAGE                                                                                                \
	"Usage: apply_patch [--preserve-crlf] 'PATCH'\n       echo 'PATCH' | apply_patch [--preserve-crlf]"

/* ---- small helpers ---------------------------------------------------------------------------- */

/* Rust's io::Error display, which the reference appends to some messages. */
static void put_os_error(FILE *f, int err)
{
	fprintf(f, "%s (os error %d)", strerror(err), err);
}

static bool is_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t len;
		uint32_t v, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, v = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, v = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, v = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			v = (v << 6) | (p[i + k] & 0x3f);
		}
		if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Read all of @fd into a malloc'd, NUL-terminated buffer. Return 0 or a negative errno. */
static int read_all(int fd, char **out, size_t *out_len)
{
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	if (!p)
		return -ENOMEM;
	for (;;) {
		if (n + 1 >= cap) {
			char *np = realloc(p, cap * 2);
			if (!np) {
				free(p);
				return -ENOMEM;
			}
			p = np;
			cap *= 2;
		}
		ssize_t r = read(fd, p + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			free(p);
			return -err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = '\0';
	*out = p;
	*out_len = n;
	return 0;
}

static int read_file(const char *path, char **out, size_t *out_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = read_all(fd, out, out_len);
	close(fd);
	return rc;
}

/* The directory part of a normalised absolute path ("/" for "/x"), into @out. */
static void parent_of(const char *path, char *out, size_t out_len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash && slash != path ? (size_t)(slash - path) : 1;
	if (n >= out_len)
		n = out_len - 1;
	memcpy(out, path, n);
	out[n] = '\0';
}

/* mkdir -p. Return 0 or a negative errno. */
static int make_dirs(const char *dir)
{
	char buf[PATH_MAX];
	size_t n = strlen(dir);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return -errno;
		*p = saved;
		if (saved == '\0')
			break;
	}
	struct stat st;
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_whole(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Replace @path's content with @data: a temporary file in the same directory, renamed over it.
 * A symlink is written through (its target is replaced), as the reference follows symlinks; an
 * existing file keeps its permission bits. Return 0 or a negative errno.
 */
static int write_file_atomic(const char *path, const char *data, size_t len)
{
	char target[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX + 32];
	struct stat st;
	mode_t mode;
	int rc;

	if (strlen(path) >= sizeof(target))
		return -ENAMETOOLONG;
	strcpy(target, path);
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
		char *resolved = realpath(path, NULL);
		if (!resolved) {
			/* A dangling link: create its target through it, as a plain write would. */
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
			if (fd < 0)
				return -errno;
			rc = write_whole(fd, data, len);
			if (close(fd) < 0 && rc == 0)
				rc = -errno;
			return rc;
		}
		snprintf(target, sizeof(target), "%s", resolved);
		free(resolved);
	}
	if (stat(target, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return -EISDIR;
		if (!S_ISREG(st.st_mode)) {
			/* A device or fifo is written in place; renaming over it would replace it. */
			int fd = open(target, O_WRONLY | O_TRUNC | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			rc = write_whole(fd, data, len);
			if (close(fd) < 0 && rc == 0)
				rc = -errno;
			return rc;
		}
		mode = st.st_mode & 07777;
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}

	parent_of(target, dir, sizeof(dir));
	const char *base = strrchr(target, '/') + 1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", strcmp(dir, "/") ? dir : "", base) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = write_whole(fd, data, len);
	if (rc == 0 && fchmod(fd, mode) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, target) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* A write that creates missing parent directories (for adds and moves), as the reference does:
 * try, and on ENOENT create the parents and try once more. Prints the failure on stderr. */
static int write_creating_parents(const char *path, const char *data, size_t len)
{
	int rc = write_file_atomic(path, data, len);
	if (rc == -ENOENT) {
		char dir[PATH_MAX];
		parent_of(path, dir, sizeof(dir));
		if (make_dirs(dir) < 0) {
			fprintf(stderr, "Failed to create parent directories for %s\n", path);
			return -1;
		}
		rc = write_file_atomic(path, data, len);
	}
	if (rc < 0) {
		fprintf(stderr, "Failed to write file %s\n", path);
		return -1;
	}
	return 0;
}

/* Unlink @path, refusing directories. @what is the reference's context ("Failed to delete file"). */
static int remove_file(const char *path, const char *what)
{
	struct stat st;
	if (stat(path, &st) < 0 || S_ISDIR(st.st_mode) || unlink(path) < 0) {
		fprintf(stderr, "%s %s\n", what, path);
		return -1;
	}
	return 0;
}

/* ---- applying -------------------------------------------------------------------------------- */

static int apply_update(const struct patch_hunk *h)
{
	char *old = NULL, *updated = NULL, *err_msg = NULL;
	size_t old_len = 0, updated_len = 0;
	int rc = read_file(h->abs_path, &old, &old_len);
	if (rc < 0) {
		fprintf(stderr, "Failed to read file to update %s: ", h->abs_path);
		put_os_error(stderr, -rc);
		fputc('\n', stderr);
		return -1;
	}
	if (!is_utf8((const unsigned char *)old, old_len)) {
		fprintf(stderr, "Failed to read file to update %s: stream did not contain valid UTF-8\n",
			h->abs_path);
		free(old);
		return -1;
	}
	rc = patch_derive_update(h, old, old_len, &updated, &updated_len, &err_msg);
	free(old);
	if (rc < 0) {
		fprintf(stderr, "%s\n", err_msg ? err_msg : strerror(-rc));
		free(err_msg);
		return -1;
	}
	if (h->abs_move_path) {
		rc = write_creating_parents(h->abs_move_path, updated, updated_len);
		if (rc == 0)
			rc = remove_file(h->abs_path, "Failed to remove original");
	} else {
		rc = write_file_atomic(h->abs_path, updated, updated_len);
		if (rc < 0)
			fprintf(stderr, "Failed to write file %s\n", h->abs_path);
	}
	free(updated);
	return rc < 0 ? -1 : 0;
}

/* Apply every hunk in order; the added, modified and deleted lists are printed on success. */
static int apply_hunks(const struct patch *patch)
{
	char **added = calloc(patch->n_hunks, sizeof(char *));
	char **modified = calloc(patch->n_hunks, sizeof(char *));
	char **deleted = calloc(patch->n_hunks, sizeof(char *));
	size_t n_added = 0, n_modified = 0, n_deleted = 0;
	int rc = 0;
	if (!added || !modified || !deleted) {
		fprintf(stderr, "%s\n", strerror(ENOMEM));
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < patch->n_hunks && rc == 0; i++) {
		const struct patch_hunk *h = &patch->hunks[i];
		switch (h->kind) {
		case PATCH_HUNK_ADD:
			rc = write_creating_parents(h->abs_path, h->contents, h->contents_len);
			if (rc == 0)
				added[n_added++] = h->path;
			break;
		case PATCH_HUNK_DELETE:
			rc = remove_file(h->abs_path, "Failed to delete file");
			if (rc == 0)
				deleted[n_deleted++] = h->path;
			break;
		case PATCH_HUNK_UPDATE:
			rc = apply_update(h);
			if (rc == 0)
				modified[n_modified++] = h->move_path ? h->move_path : h->path;
			break;
		}
	}
	if (rc == 0) {
		printf("Success. Updated the following files:\n");
		for (size_t i = 0; i < n_added; i++)
			printf("A %s\n", added[i]);
		for (size_t i = 0; i < n_modified; i++)
			printf("M %s\n", modified[i]);
		for (size_t i = 0; i < n_deleted; i++)
			printf("D %s\n", deleted[i]);
		if (fflush(stdout) != 0)
			rc = -1;
	}
out:
	free(added);
	free(modified);
	free(deleted);
	return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	char *text = NULL;
	size_t len = 0;
	bool from_stdin = argc < 2;

	/* The patch: argv[1], else all of stdin (the reference's two forms). */
	if (!from_stdin) {
		if (!is_utf8((const unsigned char *)argv[1], strlen(argv[1]))) {
			fprintf(stderr, "Error: apply_patch requires a UTF-8 PATCH argument.\n");
			return 1;
		}
		text = argv[1];
		len = strlen(text);
	} else {
		int rc = read_all(STDIN_FILENO, &text, &len);
		if (rc < 0) {
			fprintf(stderr, "Error: Failed to read PATCH from stdin.\n");
			put_os_error(stderr, -rc);
			fputc('\n', stderr);
			return 1;
		}
		if (!is_utf8((const unsigned char *)text, len)) {
			fprintf(stderr, "Error: Failed to read PATCH from stdin.\nstream did not contain "
					"valid UTF-8\n");
			free(text);
			return 1;
		}
		if (len == 0) {
			fprintf(stderr, "%s\n", USAGE);
			free(text);
			return 2;
		}
	}
	if (argc > 2) {
		fprintf(stderr, "Error: apply_patch accepts exactly one PATCH argument.\n");
		return 2;
	}

	char *cwd = getcwd(NULL, 0);
	if (!cwd) {
		int err = errno;
		fprintf(stderr, "Error: Failed to determine current directory.\n");
		put_os_error(stderr, err);
		fputc('\n', stderr);
		if (from_stdin)
			free(text);
		return 1;
	}

	struct patch *patch = NULL;
	struct patch_error perr;
	int status = 1;
	int rc = patch_parse(text, len, cwd, &patch, &perr);
	if (rc == -EINVAL && perr.message) {
		char *msg = patch_error_format_cli(&perr);
		fprintf(stderr, "%s\n", msg ? msg : perr.message);
		free(msg);
	} else if (rc < 0) {
		fprintf(stderr, "%s\n", strerror(-rc));
	} else if (patch->n_hunks == 0) {
		fprintf(stderr, "No files were modified.\n");
	} else if (apply_hunks(patch) == 0) {
		status = 0;
	}
	patch_error_clear(&perr);
	patch_free(patch);
	free(cwd);
	if (from_stdin)
		free(text);
	return status;
}
