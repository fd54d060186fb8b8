/* SPDX-License-Identifier: MIT */
/*
 * builtin.c - the built-in launcher, for hosts without a usable system bwrap.
 *
 * It reads the same plan vocabulary bwrap does and builds the sandbox itself:
 *   launcher (outside)  unshare user+pid[+net] namespaces, map our uid/gid, fork, wait, clean up
 *   init (pid 1)        new mount namespace, every mount of the plan on a staging tmpfs through
 *                       the new mount API (open_tree/move_mount/mount_setattr), pivot_root, fork
 *   command             setsid, inner_restrict(), exec
 * Each mount target is resolved with RESOLVE_IN_ROOT, so a symlink inside the tree being built
 * can never point a mount outside it.
 */
#include "builtin.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inner.h"
#include "plan.h"
#include "supervise.h"

/*
 * Any directory every host has. A tmpfs mounted over it becomes a scratch root holding the old
 * root (sources are looked up there) and the new root being assembled.
 */
#define STAGING_DIR "/tmp"
#define OLD_ROOT "/oldroot"
#define NEW_ROOT "/newroot"

typedef struct LaunchArgs {
	Plan plan;
	bool is_network_restricted;
	const char *lock_dir;
	char *const *command;
} LaunchArgs;

static int die(const char *what, int err)
{
	fprintf(stderr, "agentd-sandbox: %s: %s\n", what, strerror(err));
	return -err;
}

/* --- arguments --------------------------------------------------------------------------------- */

static int parse_op(LaunchArgs *a, char **argv, int argc, int *i, int *perms)
{
	static const PlanOpKind kinds[] = { OP_RO_BIND,	   OP_BIND,    OP_TMPFS,       OP_DEV,	   OP_PROC,
					    OP_REMOUNT_RO, OP_SYMLINK, OP_RO_BIND_TRY, OP_BIND_TRY };
	const char *flag = argv[*i];
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (strcmp(flag, plan_op_flag(kinds[k])) != 0)
			continue;
		bool has_src = kinds[k] != OP_TMPFS && kinds[k] != OP_DEV && kinds[k] != OP_PROC &&
			       kinds[k] != OP_REMOUNT_RO;
		if (*i + 1 + has_src >= argc)
			return -EINVAL;
		const char *src = has_src ? argv[++*i] : NULL;
		const char *dest = argv[++*i];
		if (dest[0] != '/' || (has_src && kinds[k] != OP_SYMLINK && src[0] != '/'))
			return -EINVAL;
		int rc = plan_add_op(&a->plan, kinds[k], kinds[k] == OP_TMPFS ? *perms : -1, src, dest);
		*perms = -1;
		return rc;
	}
	return -EINVAL;
}

static int parse_args(LaunchArgs *a, int argc, char **argv)
{
	int perms = -1;
	for (int i = 2; i < argc; i++) {
		const char *flag = argv[i];
		if (strcmp(flag, "--") == 0) {
			a->command = argv + i + 1;
			return argv[i + 1] ? 0 : -EINVAL;
		}
		if (strcmp(flag, "--unshare-net") == 0) {
			a->plan.is_network_isolated = true;
		} else if (strcmp(flag, "--perms") == 0 && i + 1 < argc) {
			char *end;
			perms = (int)strtol(argv[++i], &end, 8);
			if (*end || perms < 0 || perms > 07777)
				return -EINVAL;
		} else if (strcmp(flag, "--lock-dir") == 0 && i + 1 < argc) {
			a->lock_dir = argv[++i];
		} else if (strcmp(flag, "--created") == 0 && i + 1 < argc) {
			if (argv[++i][0] != '/' || strvec_push(&a->plan.created, argv[i]) < 0)
				return -EINVAL;
		} else if (strcmp(flag, "--chdir") == 0 && i + 1 < argc) {
			snprintf(a->plan.cwd, sizeof(a->plan.cwd), "%s", argv[++i]);
		} else if (strcmp(flag, "--seccomp") == 0 && i + 1 < argc) {
			a->is_network_restricted = strcmp(argv[++i], "restricted") == 0;
			if (!a->is_network_restricted && strcmp(argv[i], "base") != 0)
				return -EINVAL;
		} else if (parse_op(a, argv, argc, &i, &perms) < 0) {
			return -EINVAL;
		}
	}
	return -EINVAL;
}

/* --- namespaces -------------------------------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	int rc = n == (ssize_t)strlen(text) ? 0 : n < 0 ? -errno : -EIO;
	close(fd);
	return rc;
}

/* Inside, we are who we were outside: one uid and one gid mapped to themselves. */
static int map_identity(uid_t uid, gid_t gid)
{
	char map[64];
	int rc = write_file("/proc/self/setgroups", "deny");
	if (rc < 0 && rc != -ENOENT)
		return rc;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if ((rc = write_file("/proc/self/uid_map", map)) < 0)
		return rc;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	return write_file("/proc/self/gid_map", map);
}

/* bwrap brings loopback up in a fresh network namespace; so do we, for programs that expect it. */
static int bring_loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	int rc = 0;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		rc = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* --- mounts ------------------------------------------------------------------------------------ */

static int open_in_root(int root, const char *path, int flags)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	const char *rel = path[1] ? path + 1 : ".";
	int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* The mount point for @dest inside @root, created (parents as directories) when missing. */
static int mount_point(int root, const char *dest, bool is_dir)
{
	int fd = open_in_root(root, dest, O_PATH);
	if (fd != -ENOENT)
		return fd;
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", dest);
	char *slash = strrchr(parent, '/');
	const char *name = dest + (slash - parent) + 1;
	*slash = '\0';
	int dir = open_in_root(root, parent[0] ? parent : "/", O_PATH | O_DIRECTORY);
	if (dir == -ENOENT && parent[0]) {
		dir = mount_point(root, parent, true);
		if (dir >= 0) {
			close(dir);
			dir = open_in_root(root, parent, O_PATH | O_DIRECTORY);
		}
	}
	if (dir < 0)
		return dir;
	int rc;
	if (is_dir)
		rc = mkdirat(dir, name, 0755) < 0 && errno != EEXIST ? -errno : 0;
	else {
		int f = openat(dir, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
		rc = f < 0 ? -errno : close(f);
	}
	close(dir);
	return rc < 0 ? rc : open_in_root(root, dest, O_PATH);
}

static int attach(int tree, int target)
{
	int rc = move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0 ? -errno : 0;
	close(tree);
	return rc;
}

static int bind_tree(int host, const char *src, int target, bool is_read_only)
{
	int tree = open_tree(host, src[1] ? src + 1 : "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
							       (src[1] ? 0 : AT_EMPTY_PATH));
	if (tree < 0)
		return -errno;
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | (is_read_only ? MOUNT_ATTR_RDONLY : 0) };
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
		int err = errno;
		close(tree);
		return -err;
	}
	return attach(tree, target);
}

/* A fresh filesystem of @type (options: name, value pairs), detached until attach(). */
static int new_fs(const char *type, const char *const *options, unsigned int attrs)
{
	int fs = fsopen(type, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -errno;
	for (size_t i = 0; options && options[i]; i += 2)
		if (fsconfig(fs, FSCONFIG_SET_STRING, options[i], options[i + 1], 0) < 0)
			goto fail;
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto fail;
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
	if (mnt < 0)
		goto fail;
	close(fs);
	return mnt;
fail:;
	int err = errno;
	close(fs);
	return -err;
}

static int mount_tmpfs(int target, int perms)
{
	char mode[16];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(perms < 0 ? 0755 : perms));
	const char *options[] = { "mode", mode, NULL };
	int mnt = new_fs("tmpfs", options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	return mnt < 0 ? mnt : attach(mnt, target);
}

/* A minimal /dev: the harmless character devices bound from the host, a private devpts. */
static int populate_dev(int root, int host, const char *dest)
{
	static const char *const devices[] = { "null", "zero", "full", "random", "urandom", "tty" };
	static const char *const links[][2] = {
		{ "fd", "/proc/self/fd" },    { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
		{ "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" },
	};
	char path[4200], src[64];
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(devices) / sizeof(devices[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dest, devices[i]);
		snprintf(src, sizeof(src), "/dev/%s", devices[i]);
		int target = mount_point(root, path, false);
		rc = target < 0 ? target : bind_tree(host, src, target, false);
		if (target >= 0)
			close(target);
	}
	int dir = rc == 0 ? open_in_root(root, dest, O_PATH | O_DIRECTORY) : rc;
	if (dir < 0)
		return dir;
	for (size_t i = 0; rc == 0 && i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][1], dir, links[i][0]) < 0)
			rc = -errno;
	if (rc == 0 && (mkdirat(dir, "shm", 01777) < 0 || mkdirat(dir, "pts", 0755) < 0))
		rc = -errno;
	close(dir);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/pts", dest);
	static const char *const options[] = { "ptmxmode", "0666", "mode", "620", NULL };
	int pts = open_in_root(root, path, O_PATH | O_DIRECTORY);
	int mnt = pts < 0 ? pts : new_fs("devpts", options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	rc = mnt < 0 ? mnt : attach(mnt, pts);
	if (pts >= 0)
		close(pts);
	return rc;
}

static int open_new_root(void)
{
	int fd = open(NEW_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int apply_op(int *root, int host, const PlanOp *op)
{
	bool is_dir = true, is_try = op->kind == OP_RO_BIND_TRY || op->kind == OP_BIND_TRY;
	if (op->kind == OP_RO_BIND || op->kind == OP_BIND || is_try) {
		struct stat st;
		/* A -try source gone by now: nothing to bind, as bwrap does. */
		if (fstatat(host, op->src[1] ? op->src + 1 : "", &st, op->src[1] ? 0 : AT_EMPTY_PATH) < 0)
			return is_try && errno == ENOENT ? 0 : -errno;
		is_dir = S_ISDIR(st.st_mode);
	}
	int target = strcmp(op->dest, "/") == 0 ? open_new_root() : mount_point(*root, op->dest, is_dir);
	if (target < 0)
		return target;
	int rc;
	switch (op->kind) {
	case OP_RO_BIND:
	case OP_BIND:
	case OP_RO_BIND_TRY:
	case OP_BIND_TRY:
		rc = bind_tree(host, op->src, target, op->kind == OP_RO_BIND || op->kind == OP_RO_BIND_TRY);
		break;
	case OP_TMPFS:
		rc = mount_tmpfs(target, op->perms);
		break;
	case OP_DEV:
		rc = mount_tmpfs(target, 0755);
		if (rc == 0)
			rc = populate_dev(*root, host, op->dest);
		break;
	case OP_PROC: {
		int mnt = new_fs("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
		rc = mnt < 0 ? mnt : attach(mnt, target);
		break;
	}
	case OP_REMOUNT_RO: {
		struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
		rc = mount_setattr(target, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ? -errno : 0;
		break;
	}
	default:
		rc = -EINVAL;
	}
	close(target);
	/* What sits at the staging directory changed: later targets resolve in the new top mount. */
	if (rc == 0 && strcmp(op->dest, "/") == 0 && op->kind != OP_REMOUNT_RO) {
		int fresh = open_new_root();
		if (fresh < 0)
			return fresh;
		close(*root);
		*root = fresh;
	}
	return rc;
}

static int apply_symlink(int root, const PlanOp *op)
{
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", op->dest);
	char *slash = strrchr(parent, '/');
	*slash = '\0';
	int dir = open_in_root(root, parent[0] ? parent : "/", O_PATH | O_DIRECTORY);
	if (dir < 0)
		return dir;
	int rc = symlinkat(op->src, dir, slash + 1) < 0 && errno != EEXIST ? -errno : 0;
	close(dir);
	return rc;
}

/* The scratch root: a tmpfs with the host's root under OLD_ROOT and an empty NEW_ROOT. */
static int enter_scratch_root(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return die("making mounts private", errno);
	if (mount("tmpfs", STAGING_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		return die("scratch tmpfs", errno);
	if (mkdir(STAGING_DIR OLD_ROOT, 0755) < 0 || mkdir(STAGING_DIR NEW_ROOT, 0755) < 0 ||
	    mount(STAGING_DIR NEW_ROOT, STAGING_DIR NEW_ROOT, NULL, MS_BIND, NULL) < 0)
		return die("scratch directories", errno);
	if (chdir(STAGING_DIR) < 0 || syscall(SYS_pivot_root, ".", "." OLD_ROOT) < 0 || chdir("/") < 0)
		return die("pivot_root to the scratch root", errno);
	return 0;
}

static int build_root(const Plan *plan)
{
	int rc = enter_scratch_root();
	if (rc < 0)
		return rc;
	int host = open(OLD_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int root = open(NEW_ROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (host < 0 || root < 0)
		rc = die("scratch root", errno);
	for (size_t i = 0; rc == 0 && i < plan->op_count; i++) {
		const PlanOp *op = &plan->ops[i];
		rc = op->kind == OP_SYMLINK ? apply_symlink(root, op) : apply_op(&root, host, op);
		if (rc < 0)
			fprintf(stderr, "agentd-sandbox: %s %s: %s\n", plan_op_flag(op->kind), op->dest, strerror(-rc));
	}
	if (host >= 0)
		close(host);
	if (root >= 0)
		close(root);
	/* Into the new root; the scratch root (and the host's under it) stacked below and detached. */
	if (rc == 0 && (chdir(NEW_ROOT) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0))
		rc = die("pivot_root", errno);
	if (rc == 0 && chdir(plan->cwd[0] ? plan->cwd : "/") < 0)
		rc = die(plan->cwd, errno);
	return rc;
}

/* --- processes --------------------------------------------------------------------------------- */

/* pid 1 of the sandbox: runs the command, reaps every orphan, exits with the command's status. */
static int run_init(const LaunchArgs *a)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || unshare(CLONE_NEWNS) < 0)
		return 126;
	if (build_root(&a->plan) < 0)
		return 126;
	if (a->plan.is_network_isolated && bring_loopback_up() < 0)
		fprintf(stderr, "agentd-sandbox: loopback stays down: %s\n", strerror(errno));
	pid_t command = fork();
	if (command < 0)
		return 126;
	if (command == 0) {
		setsid();
		int rc = inner_restrict(a->is_network_restricted);
		if (rc < 0) {
			die("restricting the sandbox", -rc);
			_exit(126);
		}
		execvp(a->command[0], a->command);
		int err = errno;
		fprintf(stderr, "agentd-sandbox: %s: %s\n", a->command[0], strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}
	supervise_forward_signals(command);
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid == command)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (pid < 0 && errno != EINTR)
			return 126;
	}
}

/* Outside: the namespaces, then pid 1 forked into them; we wait, and clean up after it. */
static int launch(LaunchArgs *a)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int flags = CLONE_NEWUSER | CLONE_NEWPID | (a->plan.is_network_isolated ? CLONE_NEWNET : 0);
	if (unshare(flags) < 0) {
		die("creating namespaces", errno);
		return 126;
	}
	int rc = map_identity(uid, gid);
	if (rc < 0) {
		die("setting up uid map", -rc);
		return 126;
	}
	pid_t init = fork();
	if (init < 0)
		return 126;
	if (init == 0)
		_exit(run_init(a));
	supervise_forward_signals(init);
	return supervise_wait(init);
}

int builtin_launch_main(int argc, char **argv)
{
	LaunchArgs a = { 0 };
	if (parse_args(&a, argc, argv) < 0 || (a.plan.created.count && !a.lock_dir)) {
		fprintf(stderr, "usage: " INNER_STAGE_NAME " --launch [--unshare-net] [--lock-dir DIR [--created PATH]...] "
				"OPS... --chdir DIR --seccomp restricted|base -- COMMAND [ARG...]\n");
		plan_free(&a.plan);
		return 2;
	}
	CreatedSet created = { .lock_dir = a.lock_dir, .paths = a.plan.created.items, .count = a.plan.created.count };
	int status = 126;
	int rc = created_hold(&created);
	if (rc < 0)
		die("locking the sandbox's mount points", -rc);
	else
		status = launch(&a);
	created_release(&created);
	plan_free(&a.plan);
	/*
	 * We unshared a pid namespace whose init has exited: this process can fork no more, and a
	 * normal exit may want to (LeakSanitizer forks a tracer at exit). Everything is released.
	 */
	fflush(NULL);
	_exit(status);
}
