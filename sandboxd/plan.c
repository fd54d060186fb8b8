/* SPDX-License-Identifier: MIT */
/*
 * plan.c - the policy compiler.
 *
 * A policy is a set of (path, access) rules where the narrowest rule covering a path decides.
 * Mount namespaces express exactly that when mounts are laid shallow-first: the root (read-only
 * bind, writable bind or an empty tmpfs), then each rule that changes what its parent allows.
 * Everything the kernel cannot express that way (a read-only path reached through a symlink the
 * command could replace, a writable carve-out with nothing to bind) is refused here, so no
 * launcher ever runs a weaker sandbox than the one asked for.
 */
#include "plan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "fstree.h"
#include "glob.h"
#include "paths.h"

static const char *const protected_names[] = { ".git", ".codex", ".agents" };

/* A rule as the compiler works on it: the user's spelling and where it really is. */
typedef struct Rule {
	char *logical;
	char *canonical;
	size_t logical_len, canonical_len; /* rules_decider() compares them by the thousand */
	size_t depth; /* of the canonical path: the order mounts are laid in */
	Access access;
	bool exists;
	bool is_dir;
	bool is_protected;
	bool is_missing_protected; /* a protected name absent under a writable root: masked */
	bool is_credential_home;   /* $CODEX_HOME: an empty tmpfs, its entries bound back */
	bool is_bind_back;	   /* an entry of the credential home, as it was listed */
} Rule;

/* A symbolic link in the credential home: made again in its tmpfs, never followed from the host. */
typedef struct HomeLink {
	const char *path;
	const char *text;
} HomeLink;

typedef struct Rules {
	Rule *items;
	size_t count;
	size_t capacity;
	Arena paths; /* the rules' paths */
	HomeLink *home_links; /* sorted by path */
	size_t home_link_count, home_link_capacity;
	size_t home_entry_count; /* what the credential home held but the credential files */
	max_align_t first_block[4096 / sizeof(max_align_t)];
} Rules;


void strvec_free(StrVec *v)
{
	for (size_t i = 0; i < v->count; i++)
		free(v->items[i]);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

/* Room for @extra more items (and the NULL after them) in one allocation. */
/* Room for @extra more items and the NULL after them, in one allocation. */
static int strvec_reserve(StrVec *v, size_t extra)
{
	char **items = array_grow(v->items, &v->capacity, v->count + extra + 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	v->items = items;
	v->items[v->count] = NULL;
	return 0;
}

int strvec_push(StrVec *v, const char *s)
{
	char **items = array_grow(v->items, &v->capacity, v->count + 2, sizeof(*items)); /* + NULL */
	if (!items)
		return -ENOMEM;
	v->items = items;
	if (!(v->items[v->count] = strdup(s)))
		return -ENOMEM;
	v->items[++v->count] = NULL;
	return 0;
}

void plan_free(Plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->op_count; i++) {
		free(plan->ops[i].src);
		free(plan->ops[i].dest);
	}
	free(plan->ops);
	strvec_free(&plan->created);
	memset(plan, 0, sizeof(*plan));
}

const char *plan_op_flag(PlanOpKind kind)
{
	static const char *const flags[] = {
		[OP_RO_BIND] = "--ro-bind",   [OP_BIND] = "--bind",
		[OP_TMPFS] = "--tmpfs",	      [OP_DEV] = "--dev",
		[OP_PROC] = "--proc",	      [OP_REMOUNT_RO] = "--remount-ro",
		[OP_SYMLINK] = "--symlink",   [OP_RO_BIND_TRY] = "--ro-bind-try",
		[OP_BIND_TRY] = "--bind-try",
	};
	return flags[kind];
}

int plan_add_op(Plan *plan, PlanOpKind kind, int perms, const char *src, const char *dest)
{
	PlanOp *ops = array_grow(plan->ops, &plan->op_capacity, plan->op_count + 1, sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	plan->ops = ops;
	PlanOp *op = &plan->ops[plan->op_count];
	*op = (PlanOp){ .kind = kind, .perms = perms };
	op->dest = strdup(dest);
	op->src = src ? strdup(src) : NULL;
	if (!op->dest || (src && !op->src)) {
		free(op->dest);
		free(op->src);
		return -ENOMEM;
	}
	plan->op_count++;
	return 0;
}

/* --- paths ------------------------------------------------------------------------------------- */

/* Whether @path (@path_len bytes) is @ancestor (@len bytes) or lies below it. */
static bool path_is_within_len(const char *path, size_t path_len, const char *ancestor, size_t len)
{
	if (len == 1 && ancestor[0] == '/')
		return true;
	return len <= path_len && (path[len] == '\0' || path[len] == '/') && memcmp(path, ancestor, len) == 0;
}

static bool path_is_within(const char *path, const char *ancestor)
{
	return path_is_within_len(path, strlen(path), ancestor, strlen(ancestor));
}

static size_t path_depth(const char *path)
{
	size_t depth = 0;
	if (strcmp(path, "/") == 0)
		return 0;
	for (const char *p = path; (p = strchr(p, '/')) != NULL; p++)
		depth++;
	return depth;
}

/* --- rules ------------------------------------------------------------------------------------- */

static void rules_init(Rules *rules)
{
	rules->items = NULL;
	rules->count = rules->capacity = 0;
	rules->home_links = NULL;
	rules->home_link_count = rules->home_link_capacity = rules->home_entry_count = 0;
	arena_init(&rules->paths, rules->first_block, sizeof(rules->first_block));
}

static void rules_free(Rules *rules)
{
	arena_free(&rules->paths);
	free(rules->home_links);
	free(rules->items);
}

static Rule *rules_find_logical(Rules *rules, const char *path)
{
	size_t len = strlen(path);
	for (size_t i = 0; i < rules->count; i++)
		if (rules->items[i].logical_len == len && memcmp(rules->items[i].logical, path, len) == 0)
			return &rules->items[i];
	return NULL;
}

static int rules_add(Rules *rules, const char *path, Access access, bool is_protected)
{
	Rule *items = array_grow(rules->items, &rules->capacity, rules->count + 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	rules->items = items;
	Rule *r = &rules->items[rules->count];
	*r = (Rule){ .access = access, .is_protected = is_protected };
	r->logical_len = strlen(path);
	if (!(r->logical = arena_strdup(&rules->paths, path, r->logical_len)))
		return -ENOMEM;
	rules->count++;
	return 0;
}

/*
 * The rule that decides @path: the narrowest one at or above it, skipping @skip (a rule asking
 * about its own parent). Spelling: logical or canonical paths. NULL: nothing covers it.
 */
static const Rule *rules_decider_among(const Rule *items, size_t count, const char *path, const Rule *skip,
				       bool is_canonical)
{
	const Rule *best = NULL;
	size_t path_len = strlen(path), best_len = 0;
	for (size_t i = 0; i < count; i++) {
		const Rule *r = &items[i];
		const char *p = is_canonical ? r->canonical : r->logical;
		size_t len = is_canonical ? r->canonical_len : r->logical_len;
		if (r == skip || !p || !path_is_within_len(path, path_len, p, len))
			continue;
		if (!best || len > best_len) {
			best = r;
			best_len = len;
		}
	}
	return best;
}

static const Rule *rules_decider(const Rules *rules, const char *path, const Rule *skip, bool is_canonical)
{
	return rules_decider_among(rules->items, rules->count, path, skip, is_canonical);
}

static Access decided_access(const Rule *r)
{
	return r ? r->access : ACCESS_DENY;
}

/* A gitdir: pointer file (worktrees, submodules): its target is protected too. */
static int add_gitdir_target(Rules *rules, const char *root, const char *git_file)
{
	char line[AGENTD_PATH_MAX + 16], target[AGENTD_PATH_MAX];
	FILE *f = fopen(git_file, "r");
	if (!f)
		return 0;
	bool has_line = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	if (!has_line || strncmp(line, "gitdir:", 7) != 0)
		return 0;
	char *value = line + 7;
	value += strspn(value, " \t");
	value[strcspn(value, "\r\n")] = '\0';
	if (!*value || path_normalize(root, value, target, sizeof(target)) < 0)
		return 0;
	return rules_find_logical(rules, target) ? 0 : rules_add(rules, target, ACCESS_READ, true);
}

/*
 * A real repository at @dir: a .git directory with a HEAD, or a "gitdir:" pointer file.
 * Return: 1 or 0; -ENOMEM.
 */
static int is_repository(FsCache *fs, const char *dir)
{
	char git[AGENTD_PATH_MAX + 16], line[16] = "";
	path_concat(git, sizeof(git), strcmp(dir, "/") == 0 ? "" : dir, "/.git", "");
	FsNode *node = fs_lstat(fs, git);
	if (!node)
		return -ENOMEM;
	if (node->error)
		return 0;
	if (S_ISDIR(node->mode)) {
		strncat(git, "/HEAD", sizeof(git) - strlen(git) - 1);
		return fs_exists(fs, git);
	}
	FILE *f = S_ISREG(node->mode) ? fopen(git, "r") : NULL;
	bool is_pointer = f && fgets(line, sizeof(line), f) && strncmp(line, "gitdir:", 7) == 0;
	if (f)
		fclose(f);
	return is_pointer;
}

/*
 * Whether @root lies in a repository whose .git the command cannot have made: one in a directory
 * the policy keeps read-only, or at a writable root (where .git is protected). An empty mask of
 * another run, or a .git planted in a writable directory, does not count. Return: 1 or 0; -ENOMEM.
 */
static int has_ancestor_repository(FsCache *fs, const Rules *rules, const char *root)
{
	char dir[AGENTD_PATH_MAX];
	path_copy(dir, sizeof(dir), root);
	for (char *slash; (slash = strrchr(dir, '/')) != NULL;) {
		if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		int rc = is_repository(fs, dir);
		if (rc < 0)
			return rc;
		if (rc) {
			const Rule *decider = rules_decider(rules, dir, NULL, false);
			if (decided_access(decider) != ACCESS_WRITE || strcmp(decider->logical, dir) == 0)
				return 1;
		}
		if (strcmp(dir, "/") == 0)
			break;
	}
	return 0;
}

/* Protect @name (one of protected_names) at the top of the writable root @root. */
static int add_protected_child(FsCache *fs, Rules *rules, const char *root, const char *name)
{
	char child[AGENTD_PATH_MAX + 16];
	bool is_git = strcmp(name, ".git") == 0;
	path_concat(child, sizeof(child), root, "/", name);
	if (rules_find_logical(rules, child))
		return 0; /* the user said what this path gets */
	FsNode *node = fs_lstat(fs, child);
	if (!node)
		return -ENOMEM;
	if (node->error == 0) {
		int rc = rules_add(rules, child, ACCESS_READ, true);
		return rc == 0 && is_git && S_ISREG(node->mode) ? add_gitdir_target(rules, root, child) : rc;
	}
	/* Creatable .git stays only inside a parent repository (git discovery works). */
	int in_repository = is_git ? has_ancestor_repository(fs, rules, root) : 0;
	if (in_repository)
		return in_repository < 0 ? in_repository : 0;
	int rc = rules_add(rules, child, ACCESS_READ, true);
	if (rc == 0)
		rules->items[rules->count - 1].is_missing_protected = true;
	return rc;
}

/* .git, .codex and .agents at the top of every writable root stay read-only (or stay absent). */
static int add_protected_metadata(FsCache *fs, Rules *rules)
{
	size_t writable_count = rules->count;
	for (size_t i = 0; i < writable_count; i++) {
		char root[AGENTD_PATH_MAX];
		if (rules->items[i].access != ACCESS_WRITE || rules->items[i].is_protected ||
		    strcmp(rules->items[i].logical, "/") == 0)
			continue;
		int exists = fs_exists(fs, rules->items[i].logical);
		if (exists <= 0) {
			if (exists < 0)
				return exists;
			continue;
		}
		path_copy(root, sizeof(root), rules->items[i].logical);
		for (size_t k = 0; k < sizeof(protected_names) / sizeof(protected_names[0]); k++) {
			int rc = add_protected_child(fs, rules, root, protected_names[k]);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/*
 * Whether the symlink @link (a prefix of a rule) sits in a directory the command may write: as
 * spelled, or where it really is (a writable root named through a link). Return: 1 or 0; -ENOMEM.
 */
static int is_writable_symlink(FsCache *fs, const Rules *rules, const char *link)
{
	char parent[AGENTD_PATH_MAX], real[PATH_MAX];
	path_copy(parent, sizeof(parent), link);
	*strrchr(parent, '/') = '\0';
	const char *at = parent[0] ? parent : "/";
	if (decided_access(rules_decider(rules, at, NULL, false)) == ACCESS_WRITE)
		return 1;
	int rc = fs_realpath(fs, at, real, sizeof(real));
	if (rc < 0)
		return rc == -ENOMEM ? rc : 0;
	return decided_access(rules_decider(rules, real, NULL, true)) == ACCESS_WRITE;
}

/*
 * How many leading bytes @a and @b share as whole components: a length at which each of them
 * ends or has a slash.
 */
static size_t shared_components(const char *a, const char *b)
{
	size_t n = 0, shared = 0;
	for (; a[n] && a[n] == b[n]; n++)
		if (a[n] == '/')
			shared = n;
	if ((a[n] == '\0' || a[n] == '/') && (b[n] == '\0' || b[n] == '/'))
		shared = n;
	return shared;
}

/*
 * The symlink check of one prefix, the first @len bytes of @r's path.
 * Return: 0 (it passes), 1 (it does not exist: nothing below it to check), or an error.
 */
static int check_symlink_prefix(FsCache *fs, const Rules *rules, const Rule *r, size_t len, char *err,
				size_t err_len)
{
	char prefix[AGENTD_PATH_MAX];
	if (len >= sizeof(prefix))
		return policy_fail(err, err_len, "cannot resolve sandbox path %s", r->logical);
	memcpy(prefix, r->logical, len);
	prefix[len] = '\0';
	FsNode *node = fs_lstat(fs, prefix);
	if (!node)
		return -ENOMEM;
	if (node->error)
		return 1;
	int is_writable = S_ISLNK(node->mode) ? is_writable_symlink(fs, rules, prefix) : 0;
	if (is_writable < 0)
		return is_writable;
	if (is_writable)
		return policy_fail(err, err_len,
			    "cannot enforce sandbox %s path %s because it crosses writable symlink %s",
			    r->access == ACCESS_DENY ? "deny-read" : "read-only", r->logical, prefix);
	return 0;
}

/*
 * Read-only and deny paths must not be reachable through a symlink the command may replace: each
 * prefix of each is checked, down to the first that does not exist. A prefix's verdict depends on
 * the prefix alone, and rules come in families (a root's .git, .codex, .agents), so what a path
 * shares with the one checked just before it was decided then.
 */
static int check_writable_symlinks(FsCache *fs, const Rules *rules, char *err, size_t err_len)
{
	const char *prev = NULL; /* the path checked last */
	size_t prev_stop = 0;	 /* the length of its prefix that did not exist; 0: none */
	for (size_t i = 0; i < rules->count; i++) {
		const Rule *r = &rules->items[i];
		if (r->access == ACCESS_WRITE)
			continue;
		if (strcmp(r->logical, "/") == 0)
			continue;
		size_t done = prev ? shared_components(prev, r->logical) : 0;
		prev = r->logical;
		if (prev_stop && prev_stop <= done)
			continue; /* it stops where the one before stopped */
		prev_stop = 0;
		for (size_t n = done; r->logical[n];) {
			const char *slash = strchr(r->logical + n + 1, '/');
			n = slash ? (size_t)(slash - r->logical) : strlen(r->logical);
			int rc = check_symlink_prefix(fs, rules, r, n, err, err_len);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				prev_stop = n;
				break;
			}
		}
	}
	return 0;
}

static int resolve_rules(FsCache *fs, Rules *rules, char *err, size_t err_len)
{
	for (size_t i = 0; i < rules->count; i++) {
		Rule *r = &rules->items[i];
		char canonical[AGENTD_PATH_MAX];
		int rc = canonicalize(fs, r->logical, canonical, sizeof(canonical), &r->exists);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0)
			return policy_fail(err, err_len, "cannot resolve sandbox path %s", r->logical);
		/* Only a deny rule asks whether it is a directory (to cover it with a tmpfs). */
		bool is_dir_asked = r->exists && r->access == ACCESS_DENY;
		FsNode *node = is_dir_asked ? fs_stat_resolved(fs, canonical) : NULL;
		if (is_dir_asked && !node)
			return -ENOMEM;
		r->is_dir = node && node->error == 0 && S_ISDIR(node->mode);
		r->canonical_len = strlen(canonical);
		if (!(r->canonical = arena_strdup(&rules->paths, canonical, r->canonical_len)))
			return -ENOMEM;
		r->depth = path_depth(canonical);
	}
	/* A missing writable carve-out under an explicit read-only or deny rule has nothing to bind. */
	for (size_t i = 0; i < rules->count; i++) {
		Rule *r = &rules->items[i];
		if (r->access != ACCESS_WRITE || r->exists)
			continue;
		const Rule *parent = rules_decider(rules, r->logical, r, false);
		if (parent && strcmp(parent->logical, "/") != 0 && parent->access != ACCESS_WRITE)
			return policy_fail(err, err_len,
				    "cannot enforce sandbox writable path %s: it does not exist under %s path %s",
				    r->logical, parent->access == ACCESS_DENY ? "deny-read" : "read-only",
				    parent->logical);
	}
	return 0;
}

static int compare_depth(const void *a, const void *b)
{
	const Rule *x = a, *y = b;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	return strcmp(x->canonical, y->canonical);
}

/*
 * Which of two rules on one canonical path stays: the credential home over any other, any other over
 * an entry of its listing; else the stronger (deny > write > read), a policy's own over a hidden one.
 */
static bool is_preferred(const Rule *r, const Rule *prev)
{
	if (r->is_credential_home || prev->is_credential_home)
		return r->is_credential_home;
	if (r->is_bind_back || prev->is_bind_back)
		return prev->is_bind_back;
	int rank_r = r->access == ACCESS_DENY ? 2 : r->access == ACCESS_WRITE;
	int rank_p = prev->access == ACCESS_DENY ? 2 : prev->access == ACCESS_WRITE;
	return rank_r > rank_p || (prev->is_protected && !r->is_protected);
}

/* Two rules landing on one canonical path: keep the one is_preferred() says. */
static void drop_canonical_duplicates(Rules *rules)
{
	size_t kept = 0;
	for (size_t i = 0; i < rules->count; i++) {
		Rule *r = &rules->items[i];
		if (kept > 0 && strcmp(rules->items[kept - 1].canonical, r->canonical) == 0) {
			Rule *prev = &rules->items[kept - 1];
			if (is_preferred(r, prev)) {
				Rule tmp = *prev;
				*prev = *r;
				*r = tmp;
			}
			continue;
		}
		rules->items[kept++] = *r;
	}
	rules->count = kept;
}

/* --- the credential home ----------------------------------------------------------------------- */

/*
 * authd replaces auth.json with rename(2) at every refresh and sign-in, and a mount point renamed
 * over or unlinked in another mount namespace is detached there (Linux 3.18): a mask bound over the
 * file itself falls off in every sandbox running at the time. So CODEX_HOME is masked whole, by an
 * empty tmpfs that no rename on the host reaches into, read-only once each entry it held when the
 * plan was made is bound back in with the access the policy gives it: all but the credential files,
 * which are the store, its lock and its temporary files (see authd(8)). What is made there later
 * stays out of sight, as does an entry gone by launch time. A symbolic link is made again inside,
 * never followed from the host: it resolves in the sandbox's view, where the credentials are not.
 */
static bool is_credential_name(const char *name)
{
	static const char temp_prefix[] = ".auth.json.tmp.";
	return strcmp(name, "auth.json") == 0 || strcmp(name, "auth.json.lock") == 0 ||
	       strncmp(name, temp_prefix, sizeof(temp_prefix) - 1) == 0;
}

/* A rule at @path, canonical already: its own spelling. Return: the rule, or NULL (out of memory). */
static Rule *rules_add_canonical(Rules *rules, const char *path, Access access)
{
	size_t len = strlen(path);
	Rule *items = array_grow(rules->items, &rules->capacity, rules->count + 1, sizeof(*items));
	char *copy = items ? arena_strdup(&rules->paths, path, len) : NULL;
	if (items)
		rules->items = items;
	if (!copy)
		return NULL;
	Rule *r = &rules->items[rules->count++];
	*r = (Rule){ .logical = copy,
		     .canonical = copy,
		     .logical_len = len,
		     .canonical_len = len,
		     .depth = path_depth(copy),
		     .access = access,
		     .exists = true,
		     .is_protected = true };
	return r;
}

static int add_home_link(Rules *rules, DIR *dir, const char *path, const char *name)
{
	char text[PATH_MAX];
	ssize_t n = readlinkat(dirfd(dir), name, text, sizeof(text) - 1);
	if (n < 0)
		return 0; /* gone, or no longer a link, since it was listed: left out, so hidden */
	HomeLink *links = array_grow(rules->home_links, &rules->home_link_capacity,
				     rules->home_link_count + 1, sizeof(*links));
	if (!links)
		return -ENOMEM;
	rules->home_links = links;
	HomeLink *link = &links[rules->home_link_count];
	link->path = arena_strdup(&rules->paths, path, strlen(path));
	link->text = arena_strdup(&rules->paths, text, (size_t)n);
	if (!link->path || !link->text)
		return -ENOMEM;
	rules->home_link_count++;
	return 0;
}

/* An entry's type as the listing says, else as lstat() does; DT_UNKNOWN when that fails. */
static unsigned char entry_type(DIR *dir, const struct dirent *e)
{
	struct stat st;
	if (e->d_type != DT_UNKNOWN)
		return e->d_type;
	if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISLNK(st.st_mode) ? DT_LNK : DT_REG; /* only links are told apart */
}

/*
 * Each entry of @home (canonical, open as @dir) but the credential files: a rule of @access to bind
 * it back (one at its path already, the policy's or a protected name's, decides it instead: see
 * is_preferred()), or a link to make. Return: 0, -EINVAL with @err (too many, unlistable), -ENOMEM.
 */
static int list_credential_home(Rules *rules, DIR *dir, const char *home, Access access, char *err,
				size_t err_len)
{
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(dir);
		if (!e)
			break;
		const char *name = e->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || is_credential_name(name))
			continue;
		if (++rules->home_entry_count > PLAN_HOME_MAX_ENTRIES)
			return policy_fail(err, err_len,
					   "cannot hide the credentials in %s: it holds more than %d entries",
					   home, PLAN_HOME_MAX_ENTRIES);
		char path[AGENTD_PATH_MAX];
		if (path_concat(path, sizeof(path), home, "/", name) < 0)
			return policy_fail(err, err_len,
					   "cannot hide the credentials in %s: a path in it is too long",
					   home);
		unsigned char type = entry_type(dir, e);
		if (type == DT_LNK) {
			int rc = add_home_link(rules, dir, path, name);
			if (rc < 0)
				return rc;
		} else if (type != DT_UNKNOWN) { /* unknown: gone since, or not to be looked at; left out */
			Rule *r = rules_add_canonical(rules, path, access);
			if (!r)
				return -ENOMEM;
			r->is_bind_back = true;
		}
	}
	if (errno)
		return policy_fail(err, err_len, "cannot hide the credentials in %s: listing it: %s", home,
				   strerror(errno));
	return 0;
}

static int compare_home_links(const void *a, const void *b)
{
	return strcmp(((const HomeLink *)a)->path, ((const HomeLink *)b)->path);
}

/*
 * The credential home's rules, among @rules sorted and unique already (so that the access the policy
 * gives it is the one the plan enforces): none when the policy denies it anyway, or cannot reach it;
 * a missing one is masked where it would be (see emit_credential_home()). The rules are sorted and
 * made unique again. Return: 0, -EINVAL with @err, -ENOMEM.
 */
static int add_credential_home(FsCache *fs, Rules *rules, const PlanEnv *env, char *err, size_t err_len)
{
	char home[AGENTD_PATH_MAX];
	bool exists;
	if (!env->credential_home)
		return 0;
	int rc = canonicalize(fs, env->credential_home, home, sizeof(home), &exists);
	if (rc < 0 || strcmp(home, "/") == 0) /* "/": no mask there, the hidden auth.json's stands */
		return rc == -ENOMEM ? rc : 0;
	Access access = decided_access(rules_decider(rules, home, NULL, true));
	if (access == ACCESS_DENY)
		return 0;
	FsNode *node = exists ? fs_lstat(fs, home) : NULL;
	if (exists && !node)
		return -ENOMEM;
	if (exists && (node->error || !S_ISDIR(node->mode)))
		return 0; /* not a directory: nothing is in it */
	DIR *dir = NULL;
	if (exists) {
		int fd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		dir = fd < 0 ? NULL : fdopendir(fd);
		if (!dir) {
			int error = errno;
			if (fd >= 0)
				close(fd);
			if (error != ENOENT)
				return policy_fail(err, err_len, "cannot hide the credentials in %s: %s",
						   home, strerror(error));
			exists = false; /* removed just now */
		}
	}
	/* Spelled as the suite spells it: in an empty root, a symbolic link on the way is made again. */
	Rule *r = rules_add_canonical(rules, home, ACCESS_DENY);
	char *spelled =
		r ? arena_strdup(&rules->paths, env->credential_home, strlen(env->credential_home)) : NULL;
	if (spelled) {
		r->logical = spelled;
		r->logical_len = strlen(spelled);
		r->exists = r->is_dir = exists;
		r->is_credential_home = true;
	}
	rc = !spelled ? -ENOMEM : dir ? list_credential_home(rules, dir, home, access, err, err_len) : 0;
	if (dir)
		closedir(dir);
	if (rc < 0)
		return rc;
	if (rules->home_link_count > 1)
		qsort(rules->home_links, rules->home_link_count, sizeof(*rules->home_links),
		      compare_home_links);
	qsort(rules->items, rules->count, sizeof(*rules->items), compare_depth);
	drop_canonical_duplicates(rules);
	return 0;
}

/* --- emission ---------------------------------------------------------------------------------- */

/*
 * The first component of @missing (canonical, absent) that does not exist: what a mask covers.
 * Return: 0 or -ENOMEM.
 */
static int first_missing_component(FsCache *fs, const char *missing, char *out, size_t out_len)
{
	path_copy(out, out_len, missing);
	for (char *slash = out; (slash = strchr(slash + 1, '/')) != NULL;) {
		*slash = '\0';
		int exists = fs_exists(fs, out);
		if (exists <= 0)
			return exists;
		*slash = '/';
	}
	return 0;
}

static bool has_reopened_descendant(const Rules *rules, const Rule *deny)
{
	for (size_t i = 0; i < rules->count; i++) {
		const Rule *r = &rules->items[i];
		if (r != deny && (r->access != ACCESS_DENY || r->is_credential_home) &&
		    path_is_within(r->canonical, deny->canonical))
			return true;
	}
	return false;
}

static int emit_mask(FsCache *fs, Plan *plan, const char *source, const char *missing)
{
	char first[AGENTD_PATH_MAX];
	int rc = first_missing_component(fs, missing, first, sizeof(first));
	if (rc == 0)
		rc = plan_add_op(plan, OP_RO_BIND, -1, source, first);
	return rc < 0 ? rc : strvec_push(&plan->created, first);
}

/*
 * Whether @r, a read-only or denied path that exists under a writable parent, is empty where a
 * launcher makes a mask's mount point: an empty regular file, or an empty directory at a protected
 * name. Perhaps it is the mount point of another sandbox's mask, which that sandbox removes when it
 * is done, maybe before this one is launched or while it runs. So it is masked as a missing path
 * is (a launch never needs it as a source), and listed among the plan's created paths, so that its
 * launcher holds it while the sandbox runs (and removes it after, if a sandbox made it: see
 * supervise.h).
 */
typedef enum SharedShape { NOT_SHARED, SHARED_FILE, SHARED_DIR } SharedShape;

static SharedShape shared_mount_point(const Rule *r)
{
	const char *name = strrchr(r->canonical, '/') + 1;
	bool is_protected_name = false;
	for (size_t k = 0; k < sizeof(protected_names) / sizeof(protected_names[0]); k++)
		is_protected_name = is_protected_name || strcmp(name, protected_names[k]) == 0;
	/* Gone since the compile first looked: removed by its sandbox just now, so missing. */
	SharedShape gone = is_protected_name || r->is_dir ? SHARED_DIR : SHARED_FILE;
	struct stat st;
	if (lstat(r->canonical, &st) < 0)
		return errno == ENOENT ? gone : NOT_SHARED;
	if (S_ISREG(st.st_mode))
		return st.st_size == 0 ? SHARED_FILE : NOT_SHARED;
	if (!S_ISDIR(st.st_mode) || !is_protected_name)
		return NOT_SHARED;
	int fd = open(r->canonical, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return err == ENOENT ? gone : NOT_SHARED;
	}
	bool is_empty = true;
	for (struct dirent *e; is_empty && (e = readdir(dir)) != NULL;)
		is_empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(dir);
	return is_empty ? SHARED_DIR : NOT_SHARED;
}

/* An empty file at @path (another sandbox's mask, maybe) masked as a missing one is: held, too. */
static int emit_shared_mask(Plan *plan, const char *source, const char *path)
{
	int rc = plan_add_op(plan, OP_RO_BIND, -1, source, path);
	return rc < 0 ? rc : strvec_push(&plan->created, path);
}

/* The mounts made read-only again at the end (the rules' own paths): one per rule at most. */
typedef struct Remounts {
	const char **items;
	size_t count;
} Remounts;

/*
 * The credential home's tmpfs, made read-only at the end (the rules of its entries follow it), and
 * its symbolic links. A missing one is masked only where a mask's mount point can be made, under a
 * parent the command may write: there an empty read-only directory stands in its place, as at a
 * missing protected name, so that nothing made there while the sandbox runs shows; elsewhere no
 * mount is possible without making the directory on the host, and none is made. An empty one under
 * a writable parent may be another sandbox's mount point: held too.
 */
static int emit_credential_home(FsCache *fs, Plan *plan, const Rules *rules, const Rule *r, Access parent,
				Remounts *remounts)
{
	char first[AGENTD_PATH_MAX], above[AGENTD_PATH_MAX];
	bool is_held = parent == ACCESS_WRITE && rules->home_entry_count == 0;
	if (!r->exists) {
		int rc = first_missing_component(fs, r->canonical, first, sizeof(first));
		if (rc < 0)
			return rc;
		path_copy(above, sizeof(above), first);
		*strrchr(above, '/') = '\0';
		const Rule *decider = rules_decider_among(rules->items, (size_t)(r - rules->items),
							  above[0] ? above : "/", NULL, true);
		if (decided_access(decider) != ACCESS_WRITE)
			return 0;
		is_held = true;
	}
	int rc = plan_add_op(plan, OP_TMPFS, 0555, NULL, r->exists ? r->canonical : first);
	if (rc < 0)
		return rc;
	const char *mount_point = plan->ops[plan->op_count - 1].dest; /* lives as long as the plan */
	remounts->items[remounts->count++] = mount_point;
	if (is_held)
		rc = strvec_push(&plan->created, mount_point);
	for (size_t i = 0; rc == 0 && i < rules->home_link_count; i++)
		rc = plan_add_op(plan, OP_SYMLINK, -1, rules->home_links[i].text, rules->home_links[i].path);
	return rc;
}

/*
 * @r's mounts. Rules are sorted and unique by canonical path, so what covers @r (an ancestor: fewer
 * components) sorts before it: only those are asked for its parent's access.
 */
static int emit_rule(FsCache *fs, Plan *plan, const Rules *rules, const Rule *r, const PlanEnv *env,
		     Remounts *remounts)
{
	if (r->is_bind_back)
		return plan_add_op(plan, r->access == ACCESS_WRITE ? OP_BIND_TRY : OP_RO_BIND_TRY, -1,
				   r->canonical, r->canonical);
	size_t before = (size_t)(r - rules->items);
	const Rule *decider = rules_decider_among(rules->items, before, r->canonical, NULL, true);
	Access parent = decided_access(decider);
	if (r->is_credential_home)
		return emit_credential_home(fs, plan, rules, r, parent, remounts);
	/* Straight in the credential home's read-only tmpfs: what is gone by launch time stays absent,
	 * and nothing can be made there (so a missing protected name needs no mask). */
	bool is_in_home = decider && decider->is_credential_home;
	if (r->is_missing_protected && is_in_home)
		return 0;
	/* Hidden paths (denied, protected) are the suite's own: never a sandbox's mount point. */
	SharedShape shared = NOT_SHARED;
	if (r->exists && parent == ACCESS_WRITE && r->access != ACCESS_WRITE &&
	    !(r->access == ACCESS_DENY && r->is_protected))
		shared = shared_mount_point(r);
	if (r->is_missing_protected || (shared == SHARED_DIR && r->access == ACCESS_READ)) {
		int rc = plan_add_op(plan, OP_TMPFS, 0555, NULL, r->canonical);
		if (rc == 0)
			rc = strvec_push(&plan->created, r->canonical);
		if (rc == 0)
			remounts->items[remounts->count++] = r->canonical;
		return rc;
	}
	/* A rule that changes nothing emits nothing; but a writable root is always its own mount:
	 * a mount point cannot be renamed away from under its protected .git and .codex. */
	if (r->access == parent && r->access != ACCESS_WRITE &&
	    !(r->access == ACCESS_DENY && has_reopened_descendant(rules, r)))
		return 0;
	switch (r->access) {
	case ACCESS_WRITE:
		return r->exists ? plan_add_op(plan, is_in_home ? OP_BIND_TRY : OP_BIND, -1, r->canonical,
					       r->canonical)
				 : 0;
	case ACCESS_READ:
		if (shared == SHARED_FILE)
			return emit_shared_mask(plan, env->empty_readable_file, r->canonical);
		if (r->exists)
			return plan_add_op(plan, is_in_home ? OP_RO_BIND_TRY : OP_RO_BIND, -1, r->canonical,
					   r->canonical);
		if (parent != ACCESS_WRITE)
			return 0;
		return emit_mask(fs, plan, env->empty_readable_file, r->canonical);
	case ACCESS_DENY:
		if (r->is_dir) {
			int rc = plan_add_op(plan, OP_TMPFS, has_reopened_descendant(rules, r) ? 0111 : 0000, NULL,
					  r->canonical);
			if (rc == 0)
				remounts->items[remounts->count++] = r->canonical;
			if (rc == 0 && shared)
				rc = strvec_push(&plan->created, r->canonical);
			return rc;
		}
		if (shared)
			return emit_shared_mask(plan, env->empty_file, r->canonical);
		if (r->exists)
			return plan_add_op(plan, OP_RO_BIND, -1, env->empty_file, r->canonical);
		return parent == ACCESS_WRITE ? emit_mask(fs, plan, env->empty_file, r->canonical) : 0;
	}
	return 0;
}

/*
 * In an empty root, a readable path spelled through a symlink (/lib64 -> usr/lib64 on merged-/usr
 * hosts) is bound at its canonical place; the link itself is recreated so the spelling works.
 */
static int emit_root_symlink(FsCache *fs, Plan *plan, const Rules *rules, const Rule *r)
{
	if ((r->access == ACCESS_DENY && !r->is_credential_home) || strcmp(r->logical, r->canonical) == 0)
		return 0;
	FsNode *node = fs_lstat(fs, r->logical);
	if (!node)
		return -ENOMEM;
	if (node->error || !S_ISLNK(node->mode))
		return 0;
	char parent[AGENTD_PATH_MAX];
	path_copy(parent, sizeof(parent), r->logical);
	*strrchr(parent, '/') = '\0';
	if (decided_access(rules_decider(rules, parent[0] ? parent : "/", NULL, true)) != ACCESS_DENY)
		return 0;
	if (!node->link) /* readlink() failed */
		return 0;
	return plan_add_op(plan, OP_SYMLINK, -1, node->link, r->logical);
}

static int emit_plan(FsCache *fs, Plan *plan, const Rules *rules, const PlanEnv *env)
{
	const Rule *root = rules_decider(rules, "/", NULL, true);
	Access root_access = root && strcmp(root->canonical, "/") == 0 ? root->access : ACCESS_DENY;
	Remounts remounts = { malloc((rules->count + 1) * sizeof(*remounts.items)), 0 };
	if (!remounts.items)
		return -ENOMEM;
	int rc;
	if (root_access == ACCESS_WRITE)
		rc = plan_add_op(plan, OP_BIND, -1, "/", "/");
	else if (root_access == ACCESS_READ)
		rc = plan_add_op(plan, OP_RO_BIND, -1, "/", "/");
	else
		rc = plan_add_op(plan, OP_TMPFS, 0755, NULL, "/");
	if (rc == 0 && root_access != ACCESS_WRITE)
		rc = plan_add_op(plan, OP_DEV, -1, NULL, "/dev");
	if (rc == 0)
		rc = plan_add_op(plan, OP_PROC, -1, NULL, "/proc");
	for (size_t i = 0; rc == 0 && i < rules->count; i++)
		if (strcmp(rules->items[i].canonical, "/") != 0)
			rc = emit_rule(fs, plan, rules, &rules->items[i], env, &remounts);
	if (root_access == ACCESS_DENY)
		for (size_t i = 0; rc == 0 && i < rules->count; i++)
			rc = emit_root_symlink(fs, plan, rules, &rules->items[i]);
	for (size_t i = remounts.count; rc == 0 && i > 0; i--)
		rc = plan_add_op(plan, OP_REMOUNT_RO, -1, NULL, remounts.items[i - 1]);
	/* An empty root stays empty: nothing may be created in it either. */
	if (rc == 0 && root_access == ACCESS_DENY)
		rc = plan_add_op(plan, OP_REMOUNT_RO, -1, NULL, "/");
	free(remounts.items);
	return rc;
}

static int add_glob_match(const char *path, void *ctx)
{
	Rules *rules = ctx;
	return rules_find_logical(rules, path) ? 0 : rules_add(rules, path, ACCESS_DENY, false);
}

/* Deny globs are a snapshot: what they match now is denied in this sandbox. */
static int expand_globs(Rules *rules, const Policy *policy, char *err, size_t err_len)
{
	for (size_t i = 0; i < policy->glob_count; i++) {
		const PolicyGlob *g = &policy->globs[i];
		int rc = glob_expand(g->base, g->pattern, policy->glob_max_depth, add_glob_match, rules);
		if (rc == -E2BIG || rc == -ENAMETOOLONG)
			return policy_fail(err, err_len, "cannot enforce deny glob %s/%s: it matches more than %d paths",
					   strcmp(g->base, "/") == 0 ? "" : g->base, g->pattern, GLOB_MAX_MATCHES);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int collect_rules(FsCache *fs, Rules *rules, const Policy *policy, const PlanEnv *env)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < policy->rule_count; i++)
		rc = rules_add(rules, policy->rules[i].path, policy->rules[i].access, false);
	for (size_t i = 0; rc == 0 && i < env->hidden_count; i++) {
		const char *hidden = env->hidden_paths[i];
		int exists = fs_exists(fs, hidden);
		if (exists < 0)
			rc = exists;
		else if (exists && !rules_find_logical(rules, hidden))
			rc = rules_add(rules, hidden, ACCESS_DENY, true);
	}
	/* Under system bwrap our in-sandbox stage is exec'd inside: a policy that leaves its directory
	 * unreadable (an empty root) still lets that much be read, and nothing more. */
	if (rc == 0 && env->stage_dir && !rules_find_logical(rules, env->stage_dir) &&
	    decided_access(rules_decider(rules, env->stage_dir, NULL, false)) == ACCESS_DENY)
		rc = rules_add(rules, env->stage_dir, ACCESS_READ, true);
	return rc < 0 ? rc : add_protected_metadata(fs, rules);
}

/* The mounts of a sandboxed (not unwrapped) plan. */
static int compile_rules(FsCache *fs, Plan *plan, const Policy *policy, const PlanEnv *env, char *err,
			 size_t err_len)
{
	/* Full disk without network is still a sandbox, and hides what every sandbox hides. */
	Rules rules;
	rules_init(&rules);
	int rc = policy->is_unrestricted ? rules_add(&rules, "/", ACCESS_WRITE, false) : 0;
	if (rc == 0)
		rc = expand_globs(&rules, policy, err, err_len);
	if (rc == 0)
		rc = collect_rules(fs, &rules, policy, env);
	if (rc == 0)
		rc = resolve_rules(fs, &rules, err, err_len);
	if (rc == 0)
		rc = check_writable_symlinks(fs, &rules, err, err_len);
	if (rc == 0) {
		if (rules.count > 1) /* none at all: items is NULL, which qsort() must not be given */
			qsort(rules.items, rules.count, sizeof(*rules.items), compare_depth);
		drop_canonical_duplicates(&rules);
		rc = add_credential_home(fs, &rules, env, err, err_len);
	}
	if (rc == 0)
		rc = emit_plan(fs, plan, &rules, env);
	rules_free(&rules);
	return rc;
}

int plan_compile(Plan *plan, const Policy *policy, const char *cwd, const PlanEnv *env, char *err,
		 size_t err_len)
{
	FsCache fs;
	fs_cache_init(&fs);
	memset(plan, 0, sizeof(*plan));
	int rc = fs_realpath(&fs, cwd, plan->cwd, sizeof(plan->cwd));
	if (rc < 0) {
		fs_cache_free(&fs);
		return policy_fail(err, err_len, "sandbox cwd %s: %s", cwd, strerror(-rc));
	}
	plan->is_network_isolated = !policy->is_network_enabled;
	if (policy->is_unrestricted && policy->is_network_enabled)
		plan->is_unwrapped = true;
	else
		rc = compile_rules(&fs, plan, policy, env, err, err_len);
	fs_cache_free(&fs);
	if (rc == -ENOMEM)
		snprintf(err, err_len, "out of memory compiling the sandbox plan");
	if (rc < 0)
		plan_free(plan);
	return rc;
}

/* --- rendering --------------------------------------------------------------------------------- */

/* snprintf(@out, 16, "%04o", @mode) without printf's cost: there is one per mask. */
static void format_mode(char out[16], unsigned mode)
{
	char digits[12];
	size_t n = 0, used = 0;
	do {
		digits[n++] = (char)('0' + (mode & 7));
		mode >>= 3;
	} while (mode);
	for (; n + used < 4; used++)
		out[used] = '0';
	while (n > 0)
		out[used++] = digits[--n];
	out[used] = '\0';
}

static int render_ops(const Plan *plan, StrVec *argv)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < plan->op_count; i++) {
		const PlanOp *op = &plan->ops[i];
		if (op->kind == OP_TMPFS && op->perms >= 0) {
			char perms[16];
			format_mode(perms, (unsigned)op->perms);
			rc = strvec_push(argv, "--perms");
			if (rc == 0)
				rc = strvec_push(argv, perms);
		}
		if (rc == 0)
			rc = strvec_push(argv, plan_op_flag(op->kind));
		if (rc == 0 && op->src)
			rc = strvec_push(argv, op->src);
		if (rc == 0)
			rc = strvec_push(argv, op->dest);
	}
	return rc;
}

static int push_all(StrVec *argv, const char *const *items)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && items[i]; i++)
		rc = strvec_push(argv, items[i]);
	return rc;
}

static int push_created(const Plan *plan, StrVec *argv)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < plan->created.count; i++) {
		rc = strvec_push(argv, "--created");
		if (rc == 0)
			rc = strvec_push(argv, plan->created.items[i]);
	}
	return rc;
}

/* bwrap itself, behind the supervisor that holds and later removes the plan's mount points. */
static int push_bwrap_prefix(const Plan *plan, const LaunchTarget *target, StrVec *argv)
{
	const char *supervise[] = { target->helper_link, "--supervise", "--lock-dir", target->lock_dir, NULL };
	const char *bwrap[] = { target->bwrap, "--new-session", "--die-with-parent", "--unshare-user",
				"--unshare-pid", plan->is_network_isolated ? "--unshare-net" : NULL, NULL };
	int rc = 0;
	if (plan->created.count) {
		rc = push_all(argv, supervise);
		if (rc == 0)
			rc = push_created(plan, argv);
		if (rc == 0)
			rc = strvec_push(argv, "--");
	}
	return rc < 0 ? rc : push_all(argv, bwrap);
}

static int push_builtin_prefix(const Plan *plan, const LaunchTarget *target, StrVec *argv)
{
	const char *launch[] = { target->helper_link, "--launch", plan->is_network_isolated ? "--unshare-net" : NULL,
				 NULL };
	const char *locks[] = { "--lock-dir", target->lock_dir, NULL };
	int rc = push_all(argv, launch);
	if (rc == 0 && plan->created.count) {
		rc = push_all(argv, locks);
		if (rc == 0)
			rc = push_created(plan, argv);
	}
	return rc;
}

int plan_render(const Plan *plan, const LaunchTarget *target, char *const *command, StrVec *argv)
{
	memset(argv, 0, sizeof(*argv));
	if (plan->is_unwrapped)
		return push_all(argv, (const char *const *)command) < 0 ? (strvec_free(argv), -ENOMEM) : 0;
	const char *seccomp = plan->is_network_isolated ? "restricted" : "base";
	size_t command_count = 0;
	while (command[command_count])
		command_count++;
	/* At most: a prefix of 11 and two per mount point, five per step, 9 more, the command. */
	int rc = strvec_reserve(argv, 20 + 2 * plan->created.count + 5 * plan->op_count + command_count);
	if (rc < 0)
		return rc;
	if (target->bwrap)
		rc = push_bwrap_prefix(plan, target, argv);
	else
		rc = push_builtin_prefix(plan, target, argv);
	if (rc == 0)
		rc = render_ops(plan, argv);
	if (rc == 0) {
		const char *chdir_args[] = { "--chdir", plan->cwd, NULL };
		rc = push_all(argv, chdir_args);
	}
	if (rc == 0 && target->bwrap) {
		/* The inner stage: with --argv0, sandboxd's own path re-entered under the stage name;
		 * without (bwrap < 0.9), a link whose basename is the stage name (the compatibility path). */
		const char *with_argv0[] = { "--argv0", INNER_STAGE_NAME, "--", target->helper_exe, NULL };
		const char *compat[] = { "--", target->helper_link, NULL };
		rc = push_all(argv, target->bwrap_has_argv0 ? with_argv0 : compat);
	}
	if (rc == 0) {
		const char *inner[] = { "--seccomp", seccomp, "--", NULL };
		rc = push_all(argv, inner);
	}
	if (rc == 0)
		rc = push_all(argv, (const char *const *)command);
	if (rc < 0)
		strvec_free(argv);
	return rc;
}
