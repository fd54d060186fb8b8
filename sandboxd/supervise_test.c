/* SPDX-License-Identifier: MIT */
/*
 * supervise_test.c - cmocka tests for the mount-point locks: which mount points the last one out
 * removes (a sandbox's, empty; never someone's own), what a holder keeps, that a holder waits for
 * a remover and then locks the new lock file, that two spellings of one directory share a lock,
 * and that a lock directory anyone else could reach is refused, never made by a launcher.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

typedef struct Scratch {
	char dir[64];	 /* canonical */
	char locks[128]; /* the lock directory, 0700 */
} Scratch;

static int scratch_setup(void **state)
{
	Scratch *s = calloc(1, sizeof(*s));
	char tmpl[] = "/tmp/supervise_test.XXXXXX", real[PATH_MAX];
	if (!s || !mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof(s->dir)) {
		free(s);
		return -1;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", real);
	snprintf(s->locks, sizeof(s->locks), "%s/locks", s->dir);
	if (mkdir(s->locks, 0700) < 0) {
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	Scratch *s = *state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	int rc = system(cmd);
	free(s);
	return rc == 0 ? 0 : -1;
}

static void path_of(const Scratch *s, const char *rel, char *out, size_t out_len)
{
	snprintf(out, out_len, "%s/%s", s->dir, rel);
}

static void make_dir(const Scratch *s, const char *rel)
{
	char path[256];
	path_of(s, rel, path, sizeof(path));
	assert_int_equal(mkdir(path, 0755), 0);
}

static void make_file(const Scratch *s, const char *rel, const char *text)
{
	char path[256];
	path_of(s, rel, path, sizeof(path));
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool exists(const Scratch *s, const char *rel)
{
	char path[256];
	struct stat st;
	path_of(s, rel, path, sizeof(path));
	return lstat(path, &st) == 0;
}

/* How many lock files the lock directory holds. */
static int lock_files(const Scratch *s)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "exit $(ls -A '%s' | wc -l)", s->locks);
	int status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct Held {
	char paths[4][256];
	char *items[4];
	CreatedSet set;
} Held;

/* A launcher's set over @count mount points named relative to the scratch directory. */
static void held_init(Held *h, const Scratch *s, const char *const *rels, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		path_of(s, rels[i], h->paths[i], sizeof(h->paths[i]));
		h->items[i] = h->paths[i];
	}
	h->set = (CreatedSet){ .lock_dir = s->locks, .paths = h->items, .count = count };
}

/* What the launcher makes is removed when empty; what the command put something in stays. */
static void test_last_one_out_removes_empty_mount_points(void **state)
{
	Scratch *s = *state;
	const char *rels[] = { "mask-dir", "used-dir", "mask-file", "written-file" };
	Held h;
	held_init(&h, s, rels, 4);
	assert_int_equal(created_hold(&h.set), 0);
	/* bwrap makes the mount points; the command writes into two of them. */
	make_dir(s, "mask-dir");
	make_dir(s, "used-dir");
	make_file(s, "used-dir/x", "x");
	make_file(s, "mask-file", "");
	make_file(s, "written-file", "data");
	created_release(&h.set);
	assert_false(exists(s, "mask-dir"));
	assert_true(exists(s, "used-dir"));
	assert_false(exists(s, "mask-file"));
	assert_true(exists(s, "written-file"));
	assert_int_equal(lock_files(s), 0);
}

/* An empty .codex or file that was there before any sandbox is someone's own: it stays. */
static void test_own_empty_paths_are_never_removed(void **state)
{
	Scratch *s = *state;
	make_dir(s, ".codex");
	make_file(s, ".env", "");
	const char *rels[] = { ".codex", ".env" };
	Held h;
	held_init(&h, s, rels, 2);
	assert_int_equal(created_hold(&h.set), 0);
	created_release(&h.set);
	assert_true(exists(s, ".codex"));
	assert_true(exists(s, ".env"));
	assert_int_equal(lock_files(s), 0);
}

/* Two sandboxes on one workspace: the first to finish must not pull the other's mask away. */
static void test_release_keeps_mount_points_another_sandbox_holds(void **state)
{
	Scratch *s = *state;
	const char *rels[] = { ".codex" };
	Held first, second;
	held_init(&first, s, rels, 1);
	held_init(&second, s, rels, 1);
	assert_int_equal(created_hold(&first.set), 0);
	make_dir(s, ".codex"); /* the first sandbox's mount point */
	/* The second finds it there, and holds it all the same: it may be the first one's. */
	assert_int_equal(created_hold(&second.set), 0);
	created_release(&first.set);
	assert_true(exists(s, ".codex"));
	created_release(&second.set);
	assert_false(exists(s, ".codex"));
	assert_int_equal(lock_files(s), 0);
}

/* Whichever finishes first, the last one out removes the mask, though it found it made. */
static void test_later_holder_removes_what_the_first_made(void **state)
{
	Scratch *s = *state;
	const char *rels[] = { ".agents" };
	Held first, second;
	held_init(&first, s, rels, 1);
	held_init(&second, s, rels, 1);
	assert_int_equal(created_hold(&first.set), 0);
	make_dir(s, ".agents");
	assert_int_equal(created_hold(&second.set), 0);
	created_release(&second.set);
	assert_true(exists(s, ".agents"));
	created_release(&first.set);
	assert_false(exists(s, ".agents"));
}

/* A launcher killed before its release left the mount point and its lock: the next cleans up. */
static void test_stale_mount_point_of_a_killed_launcher_is_removed(void **state)
{
	Scratch *s = *state;
	const char *rels[] = { ".git" };
	Held killed, next;
	held_init(&killed, s, rels, 1);
	held_init(&next, s, rels, 1);
	assert_int_equal(created_hold(&killed.set), 0);
	make_dir(s, ".git");
	close(killed.set.lock_fds[0]); /* what the kernel does for a killed launcher */
	close(killed.set.dir_fd);
	free(killed.set.lock_fds);
	free(killed.set.lock_names);
	assert_int_equal(created_hold(&next.set), 0);
	created_release(&next.set);
	assert_false(exists(s, ".git"));
}

/*
 * A holder arriving while the last one out removes the mount point waits for it, then locks the
 * lock file made afresh (not the unlinked one), and marks the mount point as missing again.
 */
static void test_holder_waits_for_the_remover_and_relocks(void **state)
{
	Scratch *s = *state;
	char name[CREATED_LOCK_NAME_MAX], lock[256], path[256];
	path_of(s, ".codex", path, sizeof(path));
	assert_int_equal(created_lock_name(path, name, sizeof(name)), 0);
	snprintf(lock, sizeof(lock), "%s/%s", s->locks, name);
	make_dir(s, ".codex");
	int remover = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(remover >= 0);
	assert_int_equal(write(remover, "1", 1), 1);
	assert_int_equal(flock(remover, LOCK_EX), 0);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(remover); /* or its lock, shared with ours, would outlive our close() */
		const char *rels[] = { ".codex" };
		Held h;
		held_init(&h, s, rels, 1);
		int rc = created_hold(&h.set);
		char byte = rc == 0 ? 'h' : 'x';
		(void)!write(pipefd[1], &byte, 1);
		_exit(rc == 0 ? 0 : 1);
	}
	close(pipefd[1]);
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	int status;
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still waiting for the lock */
	assert_int_equal(rmdir(path), 0);		     /* the remover's work, in its order */
	assert_int_equal(unlink(lock), 0);
	close(remover);
	char byte = 0;
	assert_int_equal(read(pipefd[0], &byte, 1), 1);
	close(pipefd[0]);
	assert_int_equal(byte, 'h');
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The holder's lock file is the new one, marked: its mount point is a sandbox's. */
	struct stat st;
	assert_int_equal(stat(lock, &st), 0);
	assert_int_equal(st.st_size, 1);
}

/* The lock of a mount point is the same however its parent is spelled. */
static void test_lock_name_follows_the_directory_not_its_spelling(void **state)
{
	Scratch *s = *state;
	char real[256], linked[256], other[256], a[CREATED_LOCK_NAME_MAX], b[CREATED_LOCK_NAME_MAX],
		c[CREATED_LOCK_NAME_MAX], link_path[256];
	make_dir(s, "ws");
	path_of(s, "alias", link_path, sizeof(link_path));
	assert_int_equal(symlink("ws", link_path), 0);
	path_of(s, "ws/.codex", real, sizeof(real));
	path_of(s, "alias/.codex", linked, sizeof(linked));
	path_of(s, "ws/.agents", other, sizeof(other));
	assert_int_equal(created_lock_name(real, a, sizeof(a)), 0);
	assert_int_equal(created_lock_name(linked, b, sizeof(b)), 0);
	assert_int_equal(created_lock_name(other, c, sizeof(c)), 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	path_of(s, "gone/.codex", other, sizeof(other));
	assert_int_equal(created_lock_name(other, c, sizeof(c)), -ENOENT);
	assert_int_equal(created_lock_name("relative/.codex", c, sizeof(c)), -EINVAL);
}

/* A lock directory is ours and closed to others; a launcher never makes one, and fails closed. */
static void test_lock_directory_is_checked_and_never_made_by_a_launcher(void **state)
{
	Scratch *s = *state;
	char dir[256], target[256];
	const char *rels[] = { ".codex" };
	Held h;
	path_of(s, "fresh", dir, sizeof(dir));
	held_init(&h, s, rels, 1);
	h.set.lock_dir = dir;
	assert_int_equal(created_hold(&h.set), -ENOENT);
	created_release(&h.set);
	assert_int_equal(access(dir, F_OK), -1);
	assert_false(exists(s, ".codex"));
	assert_int_equal(created_lock_dir_check(dir, false), -ENOENT);
	assert_int_equal(created_lock_dir_check(dir, true), 0);
	struct stat st;
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* Readable by others: anyone could hold a lock against us. */
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(created_lock_dir_check(dir, true), -EACCES);
	assert_int_equal(created_hold(&h.set), -EACCES);
	created_release(&h.set);
	/* A symbolic link, even to a good directory, is not followed. */
	path_of(s, "link", dir, sizeof(dir));
	assert_int_equal(symlink(s->locks, dir), 0);
	assert_int_equal(created_lock_dir_check(dir, true), -ENOTDIR);
	path_of(s, "plain", target, sizeof(target));
	make_file(s, "plain", "");
	assert_int_equal(created_lock_dir_check(target, true), -ENOTDIR);
}

/* The shared directory's name: one per user, the same for every instance. */
static void test_lock_directory_path(void **state)
{
	(void)state;
	char out[64], want[64];
	assert_int_equal(created_lock_dir_path(out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "/tmp/agentd-locks-%u", (unsigned)geteuid());
	assert_string_equal(out, want);
	assert_int_equal(created_lock_dir_path(out, 8), -ENAMETOOLONG);
}

#define SCRATCH_TEST(fn) cmocka_unit_test_setup_teardown(fn, scratch_setup, scratch_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		SCRATCH_TEST(test_last_one_out_removes_empty_mount_points),
		SCRATCH_TEST(test_own_empty_paths_are_never_removed),
		SCRATCH_TEST(test_release_keeps_mount_points_another_sandbox_holds),
		SCRATCH_TEST(test_later_holder_removes_what_the_first_made),
		SCRATCH_TEST(test_stale_mount_point_of_a_killed_launcher_is_removed),
		SCRATCH_TEST(test_holder_waits_for_the_remover_and_relocks),
		SCRATCH_TEST(test_lock_name_follows_the_directory_not_its_spelling),
		SCRATCH_TEST(test_lock_directory_is_checked_and_never_made_by_a_launcher),
		cmocka_unit_test(test_lock_directory_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
