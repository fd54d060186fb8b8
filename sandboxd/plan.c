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

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"

static const char *const protected_names[] = { ".git", ".codex", ".agents" };

/* A rule as the compiler works on it: the user's spelling and where it really is. */
typedef struct Rule {
	char *logical;
	char *canonical;
	Access access;
	bool exists;
	bool is_dir;
	bool is_protected;
	bool is_missing_protected; /* a protected name absent under a writable root: masked */
} Rule;

typedef struct Rules {
	Rule *items;
	size_t count;
	size_t capacity;
} Rules;

static int fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void strvec_free(StrVec *v)
{
	for (size_t i = 0; i < v->count; i++)
		free(v->items[i]);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

int strvec_push(StrVec *v, const char *s)
{
	if (v->count + 1 >= v->capacity) {
		size_t capacity = v->capacity ? v->capacity * 2 : 16;
		char **items = realloc(v->items, capacity * sizeof(*items));
		if (!items)
			return -ENOMEM;
		v->items = items;
		v->capacity = capacity;
	}
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
		[OP_RO_BIND] = "--ro-bind", [OP_BIND] = "--bind",   [OP_TMPFS] = "--tmpfs",
		[OP_DEV] = "--dev",	    [OP_PROC] = "--proc",   [OP_REMOUNT_RO] = "--remount-ro",
		[OP_SYMLINK] = "--symlink",
	};
	return flags[kind];
}

int plan_add_op(Plan *plan, PlanOpKind kind, int perms, const char *src, const char *dest)
{
	if (plan->op_count == plan->op_capacity) {
		size_t capacity = plan->op_capacity ? plan->op_capacity * 2 : 16;
		PlanOp *ops = realloc(plan->ops, capacity * sizeof(*ops));
		if (!ops)
			return -ENOMEM;
		plan->ops = ops;
		plan->op_capacity = capacity;
	}
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

/* Whether @path is @ancestor or lies below it. */
static bool path_is_within(const char *path, const char *ancestor)
{
	size_t n = strlen(ancestor);
	if (strcmp(ancestor, "/") == 0)
		return true;
	return strncmp(path, ancestor, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static size_t path_depth(const char *path)
{
	size_t depth = 0;
	if (strcmp(path, "/") == 0)
		return 0;
	for (const char *p = path; *p; p++)
		depth += *p == '/';
	return depth;
}

/*
 * The canonical spelling of @path: realpath() when it exists, else the realpath() of its longest
 * existing prefix with the missing rest appended.
 */
static int canonicalize(const char *path, char *out, size_t out_len, bool *exists)
{
	char prefix[AGENTD_PATH_MAX], resolved[PATH_MAX];
	if (realpath(path, resolved)) {
		*exists = true;
		return snprintf(out, out_len, "%s", resolved) < (int)out_len ? 0 : -ENAMETOOLONG;
	}
	*exists = false;
	snprintf(prefix, sizeof(prefix), "%s", path);
	for (;;) {
		char *slash = strrchr(prefix, '/');
		if (!slash)
			return -EINVAL;
		if (slash == prefix) {
			snprintf(resolved, sizeof(resolved), "/");
		} else {
			*slash = '\0';
			if (!realpath(prefix, resolved))
				continue;
		}
		const char *rest = path + strlen(slash == prefix ? "" : prefix);
		int n = snprintf(out, out_len, "%s%s", strcmp(resolved, "/") == 0 ? "" : resolved, rest);
		return n < (int)out_len ? 0 : -ENAMETOOLONG;
	}
}

/* --- rules ------------------------------------------------------------------------------------- */

static void rules_free(Rules *rules)
{
	for (size_t i = 0; i < rules->count; i++) {
		free(rules->items[i].logical);
		free(rules->items[i].canonical);
	}
	free(rules->items);
}

static Rule *rules_find_logical(Rules *rules, const char *path)
{
	for (size_t i = 0; i < rules->count; i++)
		if (strcmp(rules->items[i].logical, path) == 0)
			return &rules->items[i];
	return NULL;
}

static int rules_add(Rules *rules, const char *path, Access access, bool is_protected)
{
	if (rules->count == rules->capacity) {
		size_t capacity = rules->capacity ? rules->capacity * 2 : 16;
		Rule *items = realloc(rules->items, capacity * sizeof(*items));
		if (!items)
			return -ENOMEM;
		rules->items = items;
		rules->capacity = capacity;
	}
	Rule *r = &rules->items[rules->count];
	*r = (Rule){ .access = access, .is_protected = is_protected };
	if (!(r->logical = strdup(path)))
		return -ENOMEM;
	rules->count++;
	return 0;
}

/*
 * The rule that decides @path: the narrowest one at or above it, skipping @skip (a rule asking
 * about its own parent). Spelling: logical or canonical paths. NULL: nothing covers it.
 */
static const Rule *rules_decider(const Rules *rules, const char *path, const Rule *skip, bool is_canonical)
{
	const Rule *best = NULL;
	for (size_t i = 0; i < rules->count; i++) {
		const Rule *r = &rules->items[i];
		const char *p = is_canonical ? r->canonical : r->logical;
		if (r == skip || !p || !path_is_within(path, p))
			continue;
		if (!best || strlen(p) > strlen(is_canonical ? best->canonical : best->logical))
			best = r;
	}
	return best;
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

/* A real repository at @dir: a .git directory with a HEAD, or a "gitdir:" pointer file. */
static bool is_repository(const char *dir)
{
	char git[AGENTD_PATH_MAX + 16], line[16] = "";
	struct stat st;
	snprintf(git, sizeof(git), "%s/.git", strcmp(dir, "/") == 0 ? "" : dir);
	if (lstat(git, &st) < 0)
		return false;
	if (S_ISDIR(st.st_mode)) {
		strncat(git, "/HEAD", sizeof(git) - strlen(git) - 1);
		return access(git, F_OK) == 0;
	}
	FILE *f = S_ISREG(st.st_mode) ? fopen(git, "r") : NULL;
	bool is_pointer = f && fgets(line, sizeof(line), f) && strncmp(line, "gitdir:", 7) == 0;
	if (f)
		fclose(f);
	return is_pointer;
}

/*
 * Whether @root lies in a repository whose .git the command cannot have made: one in a directory
 * the policy keeps read-only, or at a writable root (where .git is protected). An empty mask of
 * another run, or a .git planted in a writable directory, does not count.
 */
static bool has_ancestor_repository(const Rules *rules, const char *root)
{
	char dir[AGENTD_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", root);
	for (char *slash; (slash = strrchr(dir, '/')) != NULL;) {
		if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		if (is_repository(dir)) {
			const Rule *decider = rules_decider(rules, dir, NULL, false);
			if (decided_access(decider) != ACCESS_WRITE || strcmp(decider->logical, dir) == 0)
				return true;
		}
		if (strcmp(dir, "/") == 0)
			break;
	}
	return false;
}

/* .git, .codex and .agents at the top of every writable root stay read-only (or stay absent). */
static int add_protected_metadata(Rules *rules)
{
	size_t writable_count = rules->count;
	for (size_t i = 0; i < writable_count; i++) {
		char root[AGENTD_PATH_MAX];
		struct stat st;
		if (rules->items[i].access != ACCESS_WRITE || rules->items[i].is_protected ||
		    strcmp(rules->items[i].logical, "/") == 0 || stat(rules->items[i].logical, &st) < 0)
			continue;
		snprintf(root, sizeof(root), "%s", rules->items[i].logical);
		for (size_t k = 0; k < sizeof(protected_names) / sizeof(protected_names[0]); k++) {
			char child[AGENTD_PATH_MAX + 16];
			snprintf(child, sizeof(child), "%s/%s", root, protected_names[k]);
			if (rules_find_logical(rules, child))
				continue; /* the user said what this path gets */
			int rc = 0;
			if (lstat(child, &st) == 0) {
				rc = rules_add(rules, child, ACCESS_READ, true);
				if (rc == 0 && k == 0 && S_ISREG(st.st_mode))
					rc = add_gitdir_target(rules, root, child);
			} else if (k != 0 || !has_ancestor_repository(rules, root)) {
				/* Creatable .git stays only inside a parent repository (git discovery works). */
				rc = rules_add(rules, child, ACCESS_READ, true);
				if (rc == 0)
					rules->items[rules->count - 1].is_missing_protected = true;
			}
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Read-only and deny paths must not be reachable through a symlink the command may replace. */
static int check_writable_symlinks(const Rules *rules, char *err, size_t err_len)
{
	for (size_t i = 0; i < rules->count; i++) {
		const Rule *r = &rules->items[i];
		if (r->access == ACCESS_WRITE)
			continue;
		if (strcmp(r->logical, "/") == 0)
			continue;
		for (const char *next = r->logical + 1;;) {
			const char *slash = strchr(next, '/');
			size_t n = slash ? (size_t)(slash - r->logical) : strlen(r->logical);
			char prefix[AGENTD_PATH_MAX], parent[AGENTD_PATH_MAX];
			struct stat st;
			memcpy(prefix, r->logical, n);
			prefix[n] = '\0';
			if (lstat(prefix, &st) < 0)
				break;
			if (S_ISLNK(st.st_mode)) {
				snprintf(parent, sizeof(parent), "%s", prefix);
				*strrchr(parent, '/') = '\0';
				const char *at = parent[0] ? parent : "/";
				/* Writable as spelled, or where it really is (a writable root named through a link). */
				char real[PATH_MAX];
				bool is_writable = decided_access(rules_decider(rules, at, NULL, false)) == ACCESS_WRITE ||
						   (realpath(at, real) &&
						    decided_access(rules_decider(rules, real, NULL, true)) == ACCESS_WRITE);
				if (is_writable)
					return fail(err, err_len,
						    "cannot enforce sandbox %s path %s because it crosses writable symlink %s",
						    r->access == ACCESS_DENY ? "deny-read" : "read-only", r->logical,
						    prefix);
			}
			if (!slash)
				break;
			next = slash + 1;
		}
	}
	return 0;
}

static int resolve_rules(Rules *rules, char *err, size_t err_len)
{
	for (size_t i = 0; i < rules->count; i++) {
		Rule *r = &rules->items[i];
		char canonical[AGENTD_PATH_MAX];
		int rc = canonicalize(r->logical, canonical, sizeof(canonical), &r->exists);
		if (rc < 0)
			return fail(err, err_len, "cannot resolve sandbox path %s", r->logical);
		struct stat st;
		r->is_dir = r->exists && stat(canonical, &st) == 0 && S_ISDIR(st.st_mode);
		if (!(r->canonical = strdup(canonical)))
			return -ENOMEM;
	}
	/* A missing writable carve-out under an explicit read-only or deny rule has nothing to bind. */
	for (size_t i = 0; i < rules->count; i++) {
		Rule *r = &rules->items[i];
		if (r->access != ACCESS_WRITE || r->exists)
			continue;
		const Rule *parent = rules_decider(rules, r->logical, r, false);
		if (parent && strcmp(parent->logical, "/") != 0 && parent->access != ACCESS_WRITE)
			return fail(err, err_len,
				    "cannot enforce sandbox writable path %s: it does not exist under %s path %s",
				    r->logical, parent->access == ACCESS_DENY ? "deny-read" : "read-only",
				    parent->logical);
	}
	return 0;
}

static int compare_depth(const void *a, const void *b)
{
	const Rule *x = a, *y = b;
	size_t dx = path_depth(x->canonical), dy = path_depth(y->canonical);
	if (dx != dy)
		return dx < dy ? -1 : 1;
	return strcmp(x->canonical, y->canonical);
}

/* Two rules landing on one canonical path: keep the stronger one (deny > write > read). */
static void drop_canonical_duplicates(Rules *rules)
{
	size_t kept = 0;
	for (size_t i = 0; i < rules->count; i++) {
		Rule *r = &rules->items[i];
		if (kept > 0 && strcmp(rules->items[kept - 1].canonical, r->canonical) == 0) {
			Rule *prev = &rules->items[kept - 1];
			int rank_r = r->access == ACCESS_DENY ? 2 : r->access == ACCESS_WRITE;
			int rank_p = prev->access == ACCESS_DENY ? 2 : prev->access == ACCESS_WRITE;
			if (rank_r > rank_p || (prev->is_protected && !r->is_protected)) {
				Rule tmp = *prev;
				*prev = *r;
				*r = tmp;
			}
			free(r->logical);
			free(r->canonical);
			continue;
		}
		rules->items[kept++] = *r;
	}
	rules->count = kept;
}

/* --- emission ---------------------------------------------------------------------------------- */

/* The first component of @missing (canonical, absent) that does not exist: what a mask covers. */
static void first_missing_component(const char *missing, char *out, size_t out_len)
{
	snprintf(out, out_len, "%s", missing);
	for (char *slash = out; (slash = strchr(slash + 1, '/')) != NULL;) {
		*slash = '\0';
		if (access(out, F_OK) < 0)
			return;
		*slash = '/';
	}
}

static bool has_reopened_descendant(const Rules *rules, const Rule *deny)
{
	for (size_t i = 0; i < rules->count; i++) {
		const Rule *r = &rules->items[i];
		if (r != deny && r->access != ACCESS_DENY && path_is_within(r->canonical, deny->canonical))
			return true;
	}
	return false;
}

static int emit_mask(Plan *plan, const char *source, const char *missing)
{
	char first[AGENTD_PATH_MAX];
	first_missing_component(missing, first, sizeof(first));
	int rc = plan_add_op(plan, OP_RO_BIND, -1, source, first);
	return rc < 0 ? rc : strvec_push(&plan->created, first);
}

static int emit_rule(Plan *plan, const Rules *rules, const Rule *r, const PlanEnv *env, StrVec *remounts)
{
	Access parent = decided_access(rules_decider(rules, r->canonical, r, true));
	if (r->is_missing_protected) {
		int rc = plan_add_op(plan, OP_TMPFS, 0555, NULL, r->canonical);
		if (rc == 0)
			rc = strvec_push(&plan->created, r->canonical);
		return rc < 0 ? rc : strvec_push(remounts, r->canonical);
	}
	/* A rule that changes nothing emits nothing; but a writable root is always its own mount:
	 * a mount point cannot be renamed away from under its protected .git and .codex. */
	if (r->access == parent && r->access != ACCESS_WRITE &&
	    !(r->access == ACCESS_DENY && has_reopened_descendant(rules, r)))
		return 0;
	switch (r->access) {
	case ACCESS_WRITE:
		return r->exists ? plan_add_op(plan, OP_BIND, -1, r->canonical, r->canonical) : 0;
	case ACCESS_READ:
		if (r->exists)
			return plan_add_op(plan, OP_RO_BIND, -1, r->canonical, r->canonical);
		return parent == ACCESS_WRITE ? emit_mask(plan, env->empty_readable_file, r->canonical) : 0;
	case ACCESS_DENY:
		if (r->is_dir) {
			int rc = plan_add_op(plan, OP_TMPFS, has_reopened_descendant(rules, r) ? 0111 : 0000, NULL,
					  r->canonical);
			return rc < 0 ? rc : strvec_push(remounts, r->canonical);
		}
		if (r->exists)
			return plan_add_op(plan, OP_RO_BIND, -1, env->empty_file, r->canonical);
		return parent == ACCESS_WRITE ? emit_mask(plan, env->empty_file, r->canonical) : 0;
	}
	return 0;
}

/*
 * In an empty root, a readable path spelled through a symlink (/lib64 -> usr/lib64 on merged-/usr
 * hosts) is bound at its canonical place; the link itself is recreated so the spelling works.
 */
static int emit_root_symlink(Plan *plan, const Rules *rules, const Rule *r)
{
	char target[AGENTD_PATH_MAX];
	struct stat st;
	if (r->access == ACCESS_DENY || strcmp(r->logical, r->canonical) == 0 || lstat(r->logical, &st) < 0 ||
	    !S_ISLNK(st.st_mode))
		return 0;
	char parent[AGENTD_PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", r->logical);
	*strrchr(parent, '/') = '\0';
	if (decided_access(rules_decider(rules, parent[0] ? parent : "/", NULL, true)) != ACCESS_DENY)
		return 0;
	ssize_t n = readlink(r->logical, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return plan_add_op(plan, OP_SYMLINK, -1, target, r->logical);
}

static int emit_plan(Plan *plan, const Rules *rules, const PlanEnv *env)
{
	const Rule *root = rules_decider(rules, "/", NULL, true);
	Access root_access = root && strcmp(root->canonical, "/") == 0 ? root->access : ACCESS_DENY;
	StrVec remounts = { 0 };
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
			rc = emit_rule(plan, rules, &rules->items[i], env, &remounts);
	if (root_access == ACCESS_DENY)
		for (size_t i = 0; rc == 0 && i < rules->count; i++)
			rc = emit_root_symlink(plan, rules, &rules->items[i]);
	for (size_t i = remounts.count; rc == 0 && i > 0; i--)
		rc = plan_add_op(plan, OP_REMOUNT_RO, -1, NULL, remounts.items[i - 1]);
	/* An empty root stays empty: nothing may be created in it either. */
	if (rc == 0 && root_access == ACCESS_DENY)
		rc = plan_add_op(plan, OP_REMOUNT_RO, -1, NULL, "/");
	strvec_free(&remounts);
	return rc;
}

static int collect_rules(Rules *rules, const Policy *policy, const PlanEnv *env)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < policy->rule_count; i++)
		rc = rules_add(rules, policy->rules[i].path, policy->rules[i].access, false);
	for (size_t i = 0; rc == 0 && i < env->hidden_count; i++)
		if (access(env->hidden_paths[i], F_OK) == 0 && !rules_find_logical(rules, env->hidden_paths[i]))
			rc = rules_add(rules, env->hidden_paths[i], ACCESS_DENY, true);
	return rc < 0 ? rc : add_protected_metadata(rules);
}

int plan_compile(Plan *plan, const Policy *policy, const char *cwd, const PlanEnv *env, char *err,
		 size_t err_len)
{
	char canonical_cwd[PATH_MAX];
	memset(plan, 0, sizeof(*plan));
	if (!realpath(cwd, canonical_cwd))
		return fail(err, err_len, "sandbox cwd %s: %s", cwd, strerror(errno));
	snprintf(plan->cwd, sizeof(plan->cwd), "%s", canonical_cwd);
	plan->is_network_isolated = !policy->is_network_enabled;
	if (policy->is_unrestricted && policy->is_network_enabled) {
		plan->is_unwrapped = true;
		return 0;
	}
	/* Full disk without network is still a sandbox, and hides what every sandbox hides. */
	Rules rules = { 0 };
	int rc = policy->is_unrestricted ? rules_add(&rules, "/", ACCESS_WRITE, false) : 0;
	if (rc == 0)
		rc = collect_rules(&rules, policy, env);
	if (rc == 0)
		rc = resolve_rules(&rules, err, err_len);
	if (rc == 0)
		rc = check_writable_symlinks(&rules, err, err_len);
	if (rc == 0) {
		qsort(rules.items, rules.count, sizeof(*rules.items), compare_depth);
		drop_canonical_duplicates(&rules);
		rc = emit_plan(plan, &rules, env);
	}
	rules_free(&rules);
	if (rc == -ENOMEM)
		snprintf(err, err_len, "out of memory compiling the sandbox plan");
	if (rc < 0)
		plan_free(plan);
	return rc;
}

/* --- rendering --------------------------------------------------------------------------------- */

static int render_ops(const Plan *plan, StrVec *argv)
{
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < plan->op_count; i++) {
		const PlanOp *op = &plan->ops[i];
		if (op->kind == OP_TMPFS && op->perms >= 0) {
			char perms[16];
			snprintf(perms, sizeof(perms), "%04o", (unsigned)op->perms);
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
	int rc;
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
