/* SPDX-License-Identifier: MIT */
/*
 * plan_test.c - cmocka tests for the policy compiler: the mount plan of each policy shape on a
 * real scratch tree (split carve-outs, narrower wins, missing paths, protected metadata, the
 * symlink fail-closed cases) and the launcher command lines (argv0 handling).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan.h"
#include "policy.h"

typedef struct Tree {
	char root[64]; /* a scratch directory, canonical */
	char empty[128];
	char empty_readable[128];
	PlanEnv env;
} Tree;

static void make_dir(const Tree *t, const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void make_file(const Tree *t, const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A .git, .codex or .agents someone made: not empty, so never taken for a mask's mount point. */
static void make_metadata(const Tree *t, const char *rel)
{
	char file[512];
	make_dir(t, rel);
	snprintf(file, sizeof(file), "%s/config", rel);
	make_file(t, file, "[core]\n");
}

static void make_link(const Tree *t, const char *target, const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	assert_int_equal(symlink(target, path), 0);
}

static int tree_setup(void **state)
{
	Tree *t = calloc(1, sizeof(*t));
	char tmpl[] = "/tmp/plan_test.XXXXXX";
	if (!t || !mkdtemp(tmpl) || !realpath(tmpl, t->root)) {
		free(t);
		return -1;
	}
	snprintf(t->empty, sizeof(t->empty), "/masks/empty-0000");
	snprintf(t->empty_readable, sizeof(t->empty_readable), "/masks/empty-0444");
	t->env = (PlanEnv){ .empty_file = t->empty, .empty_readable_file = t->empty_readable };
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	Tree *t = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	int rc = system(cmd);
	free(t);
	return rc == 0 ? 0 : -1;
}

/* The plan as one line: "ro-bind / /; dev /dev; ..." with the scratch root spelled "T". */
static void plan_text(const Tree *t, const Plan *plan, char *out, size_t out_len)
{
	size_t n = 0, root_len = strlen(t->root);
	out[0] = '\0';
	for (size_t i = 0; i < plan->op_count; i++) {
		const PlanOp *op = &plan->ops[i];
		const char *fields[] = { op->src, op->dest };
		n += (size_t)snprintf(out + n, out_len - n, "%s%s", i ? "; " : "", plan_op_flag(op->kind) + 2);
		if (op->kind == OP_TMPFS && op->perms >= 0)
			n += (size_t)snprintf(out + n, out_len - n, "(%o)", (unsigned)op->perms);
		for (int f = 0; f < 2; f++) {
			const char *v = fields[f];
			if (!v)
				continue;
			if (strncmp(v, t->root, root_len) == 0)
				n += (size_t)snprintf(out + n, out_len - n, " T%s", v + root_len);
			else
				n += (size_t)snprintf(out + n, out_len - n, " %s", v);
		}
	}
}

/* Compile @json (with "T" in it standing for the scratch root) for cwd T/@cwd_rel. */
static int compile(const Tree *t, const char *json_template, const char *cwd_rel, Plan *plan, char *err,
		   size_t err_len)
{
	char json_text[4096], cwd[256];
	size_t n = 0;
	for (const char *p = json_template; *p && n + 64 < sizeof(json_text); p++) {
		if (*p == 'T' && (p[1] == '/' || p[1] == '"'))
			n += (size_t)snprintf(json_text + n, sizeof(json_text) - n, "%s", t->root);
		else
			json_text[n++] = *p;
	}
	json_text[n] = '\0';
	snprintf(cwd, sizeof(cwd), "%s%s%s", t->root, cwd_rel[0] ? "/" : "", cwd_rel);
	json_error_t jerr;
	json_t *json = json_loads(json_text, 0, &jerr);
	if (!json)
		fail_msg("bad test JSON %s: %s", json_text, jerr.text);
	Policy policy;
	policy_init(&policy);
	PolicyContext pc = { .cwd = cwd, .tmpdir = NULL, .home = NULL };
	int rc = policy_from_json(&policy, &pc, json, err, err_len);
	json_decref(json);
	if (rc == 0)
		rc = plan_compile(plan, &policy, cwd, &t->env, err, err_len);
	policy_free(&policy);
	return rc;
}

static void expect_plan(const Tree *t, const char *json, const char *cwd_rel, const char *expected)
{
	Plan plan;
	char err[512] = "", text[4096];
	int rc = compile(t, json, cwd_rel, &plan, err, sizeof(err));
	if (rc < 0)
		fail_msg("refused: %s", err);
	plan_text(t, &plan, text, sizeof(text));
	if (strcmp(text, expected) != 0)
		fail_msg("\n  got:  %s\n  want: %s", text, expected);
	plan_free(&plan);
}

static void expect_refusal(const Tree *t, const char *json, const char *cwd_rel, const char *message)
{
	Plan plan;
	char err[512] = "", want[512];
	snprintf(want, sizeof(want), message, t->root, t->root);
	assert_int_equal(compile(t, json, cwd_rel, &plan, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("\n  got:  %s\n  want: %s", err, want);
}

#define RESTRICTED(entries) "{\"kind\":\"restricted\",\"entries\":[" entries "]}"
#define ENTRY(path, access) "{\"path\":{\"type\":\"path\",\"path\":\"" path "\"},\"access\":\"" access "\"}"
#define ROOT_READ "{\"path\":{\"type\":\"special\",\"value\":{\"kind\":\"root\"}},\"access\":\"read\"}"
#define PROTECTED_MASKS(w)                                                                                    \
	"tmpfs(555) " w "/.agents; tmpfs(555) " w "/.codex; tmpfs(555) " w "/.git"
#define PROTECTED_REMOUNTS(w) "remount-ro " w "/.git; remount-ro " w "/.codex; remount-ro " w "/.agents"

static void test_read_only(void **state)
{
	Tree *t = *state;
	expect_plan(t, "{\"type\":\"readOnly\"}", "", "ro-bind / /; dev /dev; proc /proc");
}

static void test_full_access_is_unwrapped(void **state)
{
	Tree *t = *state;
	Plan plan;
	char err[256];
	assert_int_equal(compile(t, "{\"type\":\"dangerFullAccess\"}", "", &plan, err, sizeof(err)), 0);
	assert_true(plan.is_unwrapped);
	assert_int_equal(plan.op_count, 0);
	plan_free(&plan);
	/* Full disk but no network: the whole root stays writable, only the namespace changes. */
	assert_int_equal(compile(t, "{\"kind\":\"unrestricted\",\"network\":\"restricted\"}", "", &plan, err,
				 sizeof(err)),
			 0);
	assert_false(plan.is_unwrapped);
	assert_true(plan.is_network_isolated);
	char text[256];
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(text, "bind / /; proc /proc");
	plan_free(&plan);
}

/* Workspace-write in a plain directory: its protected names do not exist and are masked. */
static void test_workspace_write_masks_missing_metadata(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	Plan plan;
	char err[256], text[4096];
	assert_int_equal(compile(t, "{\"type\":\"workspaceWrite\",\"excludeSlashTmp\":true}", "ws", &plan, err,
				 sizeof(err)),
			 0);
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(text, "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; " PROTECTED_MASKS("T/ws")
					  "; " PROTECTED_REMOUNTS("T/ws"));
	assert_true(plan.is_network_isolated);
	/* The masks' mount points are made on the host: the caller removes them afterwards. */
	assert_int_equal(plan.created.count, 3);
	plan_free(&plan);
}

/* Existing metadata is bound read-only; a gitdir: pointer protects its target as well. */
static void test_existing_metadata_and_gitdir_pointer(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	make_metadata(t, "ws/.codex");
	make_metadata(t, "ws/.agents");
	make_dir(t, "ws/store");
	make_dir(t, "ws/store/wt");
	make_file(t, "ws/.git", "gitdir: store/wt\n");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write")), "ws",
		    "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; ro-bind T/ws/.agents T/ws/.agents; "
		    "ro-bind T/ws/.codex T/ws/.codex; ro-bind T/ws/.git T/ws/.git; ro-bind T/ws/store/wt T/ws/store/wt");
}

/* Inside a parent repository a missing child .git stays creatable (git's discovery works). */
static void test_parent_repository_leaves_git_creatable(void **state)
{
	Tree *t = *state;
	make_dir(t, ".git");
	make_file(t, ".git/HEAD", "ref: refs/heads/main\n");
	make_dir(t, "sub");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/sub", "write")), "sub",
		    "ro-bind / /; dev /dev; proc /proc; bind T/sub T/sub; tmpfs(555) T/sub/.agents; "
		    "tmpfs(555) T/sub/.codex; remount-ro T/sub/.codex; remount-ro T/sub/.agents");
}

/*
 * What does not make a parent repository: an empty .git (another run's mask), or a .git in a
 * directory the command could write (it may have planted it there).
 */
static void test_fake_parent_repositories_do_not_count(void **state)
{
	Tree *t = *state;
	make_dir(t, ".git"); /* empty: a mask */
	make_dir(t, "w");
	make_dir(t, "w/p");
	make_metadata(t, "w/p/.git");
	make_file(t, "w/p/.git/HEAD", "ref: refs/heads/main\n");
	make_dir(t, "w/p/ws");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/w", "write") "," ENTRY("T/w/p/ws", "write")), "w/p/ws",
		    "ro-bind / /; dev /dev; proc /proc; bind T/w T/w; " PROTECTED_MASKS("T/w") "; bind T/w/p/ws T/w/p/ws; "
		    PROTECTED_MASKS("T/w/p/ws") "; " PROTECTED_REMOUNTS("T/w/p/ws") "; " PROTECTED_REMOUNTS("T/w"));
}

/* A writable root inside another stays a mount point: renaming it away would shed its masks. */
static void test_nested_writable_root_is_its_own_mount(void **state)
{
	Tree *t = *state;
	make_dir(t, "p");
	make_metadata(t, "p/.git");
	make_metadata(t, "p/.codex");
	make_metadata(t, "p/.agents");
	make_dir(t, "p/ws");
	make_metadata(t, "p/ws/.git");
	make_metadata(t, "p/ws/.codex");
	make_metadata(t, "p/ws/.agents");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/p", "write") "," ENTRY("T/p/ws", "write")), "p/ws",
		    "ro-bind / /; dev /dev; proc /proc; bind T/p T/p; ro-bind T/p/.agents T/p/.agents; "
		    "ro-bind T/p/.codex T/p/.codex; ro-bind T/p/.git T/p/.git; bind T/p/ws T/p/ws; "
		    "ro-bind T/p/ws/.agents T/p/ws/.agents; ro-bind T/p/ws/.codex T/p/ws/.codex; "
		    "ro-bind T/p/ws/.git T/p/ws/.git");
}

/* A writable root named through a symlink still covers its real path for the symlink rule. */
static void test_symlinked_writable_root_still_fails_closed(void **state)
{
	Tree *t = *state;
	make_dir(t, "real");
	make_dir(t, "target");
	make_link(t, "real", "link");
	make_link(t, "../target", "real/l2");
	expect_refusal(t, RESTRICTED(ROOT_READ "," ENTRY("T/link", "write") "," ENTRY("T/real/l2/x", "read")), "",
		       "cannot enforce sandbox read-only path %s/real/l2/x because it crosses writable symlink %s/real/l2");
}

/* /repo=write, /repo/a=none, /repo/a/b=write: a is denied, a/b writable again (111 to reach it). */
static void test_narrower_rule_wins(void **state)
{
	Tree *t = *state;
	make_dir(t, "repo");
	make_metadata(t, "repo/.git");
	make_file(t, "repo/.git/HEAD", "ref: refs/heads/main\n");
	make_metadata(t, "repo/.codex");
	make_metadata(t, "repo/.agents");
	make_dir(t, "repo/a");
	make_dir(t, "repo/a/b");
	make_dir(t, "repo/c");
	expect_plan(t,
		    RESTRICTED(ROOT_READ "," ENTRY("T/repo", "write") "," ENTRY("T/repo/a", "deny") "," ENTRY(
			    "T/repo/a/b", "write") "," ENTRY("T/repo/c", "deny")),
		    "repo",
		    "ro-bind / /; dev /dev; proc /proc; bind T/repo T/repo; ro-bind T/repo/.agents T/repo/.agents; "
		    "ro-bind T/repo/.codex T/repo/.codex; ro-bind T/repo/.git T/repo/.git; tmpfs(111) T/repo/a; "
		    "tmpfs(0) T/repo/c; bind T/repo/a/b T/repo/a/b; tmpfs(555) T/repo/a/b/.agents; "
		    "tmpfs(555) T/repo/a/b/.codex; remount-ro T/repo/a/b/.codex; remount-ro T/repo/a/b/.agents; "
		    "remount-ro T/repo/c; remount-ro T/repo/a");
}

/* Rules that change nothing emit nothing: read under read, write under write. */
static void test_redundant_rules_are_dropped(void **state)
{
	Tree *t = *state;
	make_dir(t, "r");
	make_dir(t, "r/s");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/r", "read") "," ENTRY("T/r/s", "read")), "",
		    "ro-bind / /; dev /dev; proc /proc");
}

/* A write re-opened under a read-only parent, and a read-only path under a writable one. */
static void test_write_reopened_under_read_only_parent(void **state)
{
	Tree *t = *state;
	make_dir(t, "w");
	make_dir(t, "w/out");
	make_metadata(t, "w/out/.git");
	make_metadata(t, "w/out/.codex");
	make_metadata(t, "w/out/.agents");
	make_dir(t, "w/out/keep");
	expect_plan(t,
		    RESTRICTED(ROOT_READ "," ENTRY("T/w", "read") "," ENTRY("T/w/out", "write") "," ENTRY(
			    "T/w/out/keep", "read")),
		    "w",
		    "ro-bind / /; dev /dev; proc /proc; bind T/w/out T/w/out; ro-bind T/w/out/.agents T/w/out/.agents; "
		    "ro-bind T/w/out/.codex T/w/out/.codex; ro-bind T/w/out/.git T/w/out/.git; "
		    "ro-bind T/w/out/keep T/w/out/keep");
}

/* Denied files are covered by an empty mode-0000 file; missing paths under writable roots by masks. */
static void test_denied_file_and_missing_paths(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	make_metadata(t, "ws/.git");
	make_metadata(t, "ws/.codex");
	make_metadata(t, "ws/.agents");
	make_file(t, "ws/.env", "SECRET=1\n");
	Plan plan;
	char err[256], text[4096];
	assert_int_equal(compile(t,
				 RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write") "," ENTRY("T/ws/.env", "deny") "," ENTRY(
					 "T/ws/gen/deep/file", "read") "," ENTRY("T/ws/nope", "deny") "," ENTRY("T/gone",
													      "deny")),
				 "ws", &plan, err, sizeof(err)),
			 0);
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(text, "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; "
				  "ro-bind T/ws/.agents T/ws/.agents; ro-bind T/ws/.codex T/ws/.codex; "
				  "ro-bind /masks/empty-0000 T/ws/.env; ro-bind T/ws/.git T/ws/.git; "
				  "ro-bind /masks/empty-0000 T/ws/nope; ro-bind /masks/empty-0444 T/ws/gen");
	/* Only the masks of missing paths leave mount points on the host. */
	assert_int_equal(plan.created.count, 2);
	assert_non_null(strstr(plan.created.items[0], "/ws/nope"));
	assert_non_null(strstr(plan.created.items[1], "/ws/gen"));
	plan_free(&plan);
}

/* A writable root that does not exist is skipped, as the reference does. */
static void test_missing_writable_root_is_skipped(void **state)
{
	Tree *t = *state;
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/absent", "write")), "", "ro-bind / /; dev /dev; proc /proc");
}

/* ... but a missing writable carve-out under an explicit read-only rule cannot be made writable. */
static void test_missing_write_under_read_only_rule_is_refused(void **state)
{
	Tree *t = *state;
	make_dir(t, "w");
	expect_refusal(t, RESTRICTED(ROOT_READ "," ENTRY("T/w", "read") "," ENTRY("T/w/out", "write")), "",
		       "cannot enforce sandbox writable path %s/w/out: it does not exist under read-only path %s/w");
}

/* A read-only path reached through a symlink in a writable root: the command could re-point it. */
static void test_read_only_path_through_writable_symlink_fails_closed(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	make_dir(t, "ws/real");
	make_link(t, "real", "ws/link");
	expect_refusal(t, RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write") "," ENTRY("T/ws/link/x", "read")), "ws",
		       "cannot enforce sandbox read-only path %s/ws/link/x because it crosses writable symlink %s/ws/link");
	expect_refusal(t, RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write") "," ENTRY("T/ws/link", "deny")), "ws",
		       "cannot enforce sandbox deny-read path %s/ws/link because it crosses writable symlink %s/ws/link");
}

/* .codex as a symlink in the workspace is the replacement attack: refused, not followed. */
static void test_protected_symlink_fails_closed(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	make_dir(t, "elsewhere");
	make_link(t, "../elsewhere", "ws/.codex");
	expect_refusal(t, "{\"type\":\"workspaceWrite\",\"excludeSlashTmp\":true}", "ws",
		       "cannot enforce sandbox read-only path %s/ws/.codex because it crosses writable symlink %s/ws/.codex");
}

/* A symlink in a read-only area cannot be replaced: it is followed, and bound where it leads. */
static void test_symlink_in_read_only_area_is_followed(void **state)
{
	Tree *t = *state;
	make_dir(t, "ro");
	make_dir(t, "ro/target");
	make_link(t, "target", "ro/alias");
	make_dir(t, "ws");
	make_metadata(t, "ws/.git");
	make_metadata(t, "ws/.codex");
	make_metadata(t, "ws/.agents");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write") "," ENTRY("T/ro/alias", "deny")), "ws",
		    "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; tmpfs(0) T/ro/target; "
		    "ro-bind T/ws/.agents T/ws/.agents; ro-bind T/ws/.codex T/ws/.codex; ro-bind T/ws/.git T/ws/.git; "
		    "remount-ro T/ro/target");
}

/* No :root read: an empty root, readable roots bound in, symlinked spellings recreated. */
static void test_restricted_read_builds_an_empty_root(void **state)
{
	Tree *t = *state;
	make_dir(t, "usr");
	make_link(t, "usr", "lib64");
	expect_plan(t, RESTRICTED(ENTRY("T/lib64", "read")), "",
		    "tmpfs(755) /; dev /dev; proc /proc; ro-bind T/usr T/usr; symlink usr T/lib64; remount-ro /");
}

/* Paths every sandbox hides (the runtime directory, auth.json) are denied even under write. */
static void test_hidden_paths_are_denied(void **state)
{
	Tree *t = *state;
	make_dir(t, "run");
	make_file(t, "auth.json", "{}");
	char run[128], auth[128];
	snprintf(run, sizeof(run), "%s/run", t->root);
	snprintf(auth, sizeof(auth), "%s/auth.json", t->root);
	const char *hidden[] = { run, auth, "/nonexistent/agentd-hidden" };
	t->env.hidden_paths = hidden;
	t->env.hidden_count = 3;
	expect_plan(t, "{\"type\":\"readOnly\"}", "",
		    "ro-bind / /; dev /dev; proc /proc; ro-bind /masks/empty-0000 T/auth.json; tmpfs(0) T/run; "
		    "remount-ro T/run");
	t->env.hidden_count = 0;
}

/* Under system bwrap the in-sandbox stage must be readable inside, even from an empty root. */
static void test_stage_dir_is_readable_in_an_empty_root_only(void **state)
{
	Tree *t = *state;
	char stage[128];
	make_dir(t, "libexec");
	make_dir(t, "ws");
	snprintf(stage, sizeof(stage), "%s/libexec", t->root);
	t->env.stage_dir = stage;
	expect_plan(t, RESTRICTED(ENTRY("T/ws", "read")), "ws",
		    "tmpfs(755) /; dev /dev; proc /proc; ro-bind T/libexec T/libexec; ro-bind T/ws T/ws; remount-ro /");
	/* Readable anyway: nothing to add; denied on purpose: the user's word stands. */
	expect_plan(t, "{\"type\":\"readOnly\"}", "", "ro-bind / /; dev /dev; proc /proc");
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/libexec", "deny")), "",
		    "ro-bind / /; dev /dev; proc /proc; tmpfs(0) T/libexec; remount-ro T/libexec");
	t->env.stage_dir = NULL;
}

#define GLOB(pattern) "{\"path\":{\"type\":\"glob_pattern\",\"pattern\":\"" pattern "\"},\"access\":\"deny\"}"

/* A deny glob is what it matches now, as deep as glob_scan_max_depth lets it look. */
static void test_deny_glob_is_expanded_to_its_matches(void **state)
{
	Tree *t = *state;
	const char *dirs[] = { "ws", "ws/a", "ws/a/b", "ws/a/b/c" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		make_dir(t, dirs[i]);
	make_metadata(t, "ws/.git");
	make_metadata(t, "ws/.codex");
	make_metadata(t, "ws/.agents");
	make_file(t, "ws/.env", "A=1");
	make_file(t, "ws/a/prod.env", "B=2");
	make_file(t, "ws/a/b/c/.env", "C=3");
	make_file(t, "ws/notes.envy", "");
	const char *json = "{\"kind\":\"restricted\",\"glob_scan_max_depth\":2,\"entries\":[" ROOT_READ ","
			   ENTRY("T/ws", "write") "," GLOB("T/ws/**/*.env") "]}";
	expect_plan(t, json, "ws",
		    "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; ro-bind T/ws/.agents T/ws/.agents; "
		    "ro-bind T/ws/.codex T/ws/.codex; ro-bind /masks/empty-0000 T/ws/.env; ro-bind T/ws/.git T/ws/.git; "
		    "ro-bind /masks/empty-0000 T/ws/a/prod.env");
}

/* A glob matching more than the reference's 8192 paths cannot be enforced: refused. */
static void test_deny_glob_with_too_many_matches_is_refused(void **state)
{
	Tree *t = *state;
	char name[64];
	make_dir(t, "many");
	for (int i = 0; i <= 8192; i++) {
		snprintf(name, sizeof(name), "many/%d.env", i);
		make_file(t, name, "");
	}
	expect_refusal(t, RESTRICTED(ROOT_READ "," GLOB("T/many/*.env")), "",
		       "cannot enforce deny glob %s/many/*.env: it matches more than 8192 paths");
}

static void test_missing_cwd_is_refused(void **state)
{
	Tree *t = *state;
	expect_refusal(t, "{\"type\":\"readOnly\"}", "no-such-dir", "sandbox cwd %s/no-such-dir");
}

/* --- rendering --------------------------------------------------------------------------------- */

static const char *const command[] = { "/usr/bin/env", "--", "/opt/sandboxd", "/opt/agentd-sandbox", NULL };

static size_t index_of(const StrVec *argv, const char *item, size_t from)
{
	for (size_t i = from; i < argv->count; i++)
		if (strcmp(argv->items[i], item) == 0)
			return i;
	return (size_t)-1;
}

static void render_read_only(const Tree *t, const LaunchTarget *target, StrVec *argv)
{
	Plan plan;
	char err[256];
	assert_int_equal(compile(t, "{\"type\":\"readOnly\"}", "", &plan, err, sizeof(err)), 0);
	assert_int_equal(plan_render(&plan, target, (char *const *)command, argv), 0);
	plan_free(&plan);
}

/* The command after the inner "--" is the user's, untouched, whatever it contains. */
static void assert_command_tail(const StrVec *argv, size_t inner_dashes)
{
	assert_int_equal(argv->count - inner_dashes - 1, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(argv->items[inner_dashes + 1 + i], command[i]);
	assert_null(argv->items[argv->count]);
}

static void test_render_bwrap_with_argv0(void **state)
{
	Tree *t = *state;
	LaunchTarget target = { "/usr/bin/bwrap", true, "/opt/sandboxd", "/opt/agentd-sandbox", "/run/l" };
	StrVec argv;
	render_read_only(t, &target, &argv);
	assert_string_equal(argv.items[0], "/usr/bin/bwrap");
	size_t dashes = index_of(&argv, "--", 0);
	assert_true(dashes != (size_t)-1 && dashes >= 2);
	assert_string_equal(argv.items[dashes - 2], "--argv0");
	assert_string_equal(argv.items[dashes - 1], INNER_STAGE_NAME);
	assert_string_equal(argv.items[dashes + 1], "/opt/sandboxd");
	assert_string_equal(argv.items[dashes + 2], "--seccomp");
	assert_string_equal(argv.items[dashes + 3], "restricted");
	assert_command_tail(&argv, dashes + 4);
	assert_true(index_of(&argv, "--unshare-net", 0) < dashes);
	assert_true(index_of(&argv, "--die-with-parent", 0) < dashes);
	strvec_free(&argv);
}

/* Without --argv0 only the helper right after bwrap's "--" changes, never the user's arguments. */
static void test_render_bwrap_compat_path(void **state)
{
	Tree *t = *state;
	LaunchTarget target = { "/usr/bin/bwrap", false, "/opt/sandboxd", "/opt/agentd-sandbox", "/run/l" };
	StrVec argv;
	render_read_only(t, &target, &argv);
	size_t dashes = index_of(&argv, "--", 0);
	assert_true(index_of(&argv, "--argv0", 0) == (size_t)-1);
	assert_string_equal(argv.items[dashes + 1], "/opt/agentd-sandbox");
	assert_true(index_of(&argv, "/opt/sandboxd", 0) > dashes + 4); /* only in the user's command */
	assert_command_tail(&argv, dashes + 4);
	strvec_free(&argv);
}

static void test_render_builtin(void **state)
{
	Tree *t = *state;
	LaunchTarget target = { NULL, false, "/opt/sandboxd", "/opt/agentd-sandbox", "/run/l" };
	StrVec argv;
	render_read_only(t, &target, &argv);
	assert_string_equal(argv.items[0], "/opt/agentd-sandbox");
	assert_string_equal(argv.items[1], "--launch");
	assert_string_equal(argv.items[2], "--unshare-net");
	assert_string_equal(argv.items[3], "--ro-bind");
	size_t dashes = index_of(&argv, "--", 0);
	assert_string_equal(argv.items[dashes - 2], "--seccomp");
	assert_string_equal(argv.items[dashes - 1], "restricted");
	assert_command_tail(&argv, dashes);
	strvec_free(&argv);
}

static void test_render_network_enabled_and_unwrapped(void **state)
{
	Tree *t = *state;
	LaunchTarget target = { "/usr/bin/bwrap", false, "/opt/sandboxd", "/opt/agentd-sandbox", "/run/l" };
	Plan plan;
	StrVec argv;
	char err[256];
	assert_int_equal(compile(t, "{\"type\":\"readOnly\",\"networkAccess\":true}", "", &plan, err, sizeof(err)), 0);
	assert_int_equal(plan_render(&plan, &target, (char *const *)command, &argv), 0);
	assert_true(index_of(&argv, "--unshare-net", 0) == (size_t)-1);
	assert_string_equal(argv.items[index_of(&argv, "--seccomp", 0) + 1], "base");
	strvec_free(&argv);
	plan_free(&plan);
	assert_int_equal(compile(t, "{\"type\":\"dangerFullAccess\"}", "", &plan, err, sizeof(err)), 0);
	assert_int_equal(plan_render(&plan, &target, (char *const *)command, &argv), 0);
	assert_int_equal(argv.count, 4);
	assert_string_equal(argv.items[0], "/usr/bin/env");
	strvec_free(&argv);
	plan_free(&plan);
}

/*
 * An empty .codex or .agents directory, an empty .git or read-only file, at a mask's place: maybe
 * another sandbox's mount point, which it may remove at any time. Each is masked as a missing one
 * is (never bound from itself) and held; what is not empty is bound as it is.
 */
static void test_empty_paths_at_masks_are_held_and_masked_as_missing(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	make_dir(t, "ws/.codex");
	make_dir(t, "ws/.agents");
	make_file(t, "ws/.git", "");
	make_file(t, "ws/gen", "");
	make_file(t, "ws/.env", "");
	make_file(t, "ws/real.env", "A=1");
	make_dir(t, "ws/docs");
	Plan plan;
	char err[256], text[4096];
	assert_int_equal(compile(t,
				 RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write") "," ENTRY("T/ws/gen", "read") "," ENTRY(
					 "T/ws/.env", "deny") "," ENTRY("T/ws/real.env", "deny") "," ENTRY("T/ws/docs", "read")),
				 "ws", &plan, err, sizeof(err)),
			 0);
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(text, "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; tmpfs(555) T/ws/.agents; "
				  "tmpfs(555) T/ws/.codex; ro-bind /masks/empty-0000 T/ws/.env; "
				  "ro-bind /masks/empty-0444 T/ws/.git; ro-bind T/ws/docs T/ws/docs; "
				  "ro-bind /masks/empty-0444 T/ws/gen; ro-bind /masks/empty-0000 T/ws/real.env; "
				  "remount-ro T/ws/.codex; remount-ro T/ws/.agents");
	const char *held[] = { "/ws/.agents", "/ws/.codex", "/ws/.env", "/ws/.git", "/ws/gen" };
	assert_int_equal(plan.created.count, 5);
	for (size_t i = 0; i < 5; i++)
		assert_non_null(strstr(plan.created.items[i], held[i]));
	plan_free(&plan);
}

/* Under a read-only parent nothing is mounted there, so nothing is held; an empty .git stays
 * protected in a parent repository too (it is never taken for a missing, creatable one). */
static void test_empty_paths_held_only_where_masks_are_made(void **state)
{
	Tree *t = *state;
	make_dir(t, ".git");
	make_file(t, ".git/HEAD", "ref: refs/heads/main\n");
	make_dir(t, "sub");
	make_dir(t, "sub/.git");
	make_file(t, "gen", "");
	Plan plan;
	char err[256], text[4096];
	assert_int_equal(compile(t, RESTRICTED(ROOT_READ "," ENTRY("T/sub", "write") "," ENTRY("T/gen", "deny")), "sub",
				 &plan, err, sizeof(err)),
			 0);
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(text, "ro-bind / /; dev /dev; proc /proc; ro-bind /masks/empty-0000 T/gen; "
				  "bind T/sub T/sub; tmpfs(555) T/sub/.agents; tmpfs(555) T/sub/.codex; "
				  "tmpfs(555) T/sub/.git; remount-ro T/sub/.git; remount-ro T/sub/.codex; "
				  "remount-ro T/sub/.agents");
	assert_int_equal(plan.created.count, 3);
	for (size_t i = 0; i < plan.created.count; i++)
		assert_null(strstr(plan.created.items[i], "/gen"));
	plan_free(&plan);
}

/* The paths every sandbox hides are the suite's own, empty or not: never held. */
static void test_hidden_empty_directory_is_not_held(void **state)
{
	Tree *t = *state;
	make_dir(t, "ws");
	make_metadata(t, "ws/.git");
	make_metadata(t, "ws/.codex");
	make_metadata(t, "ws/.agents");
	make_dir(t, "ws/.codex-locks");
	char locks[128];
	snprintf(locks, sizeof(locks), "%s/ws/.codex-locks", t->root);
	const char *hidden[] = { locks };
	t->env.hidden_paths = hidden;
	t->env.hidden_count = 1;
	Plan plan;
	char err[256];
	assert_int_equal(compile(t, RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write")), "ws", &plan, err, sizeof(err)), 0);
	assert_int_equal(plan.created.count, 0);
	plan_free(&plan);
}

/* --- the credential home ----------------------------------------------------------------------- */

/* A CODEX_HOME as authd leaves it: the store, its lock, a temporary file, and the rest. */
static void make_codex_home(Tree *t, const char *rel)
{
	char path[256];
	make_dir(t, rel);
	const char *files[][2] = { { "auth.json", "{\"OPENAI_API_KEY\":\"sk-x\"}" },
				   { "auth.json.lock", "" },
				   { ".auth.json.tmp.7.0123456789abcdef", "{}" },
				   { "config.toml", "model = \"m\"\n" } };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", rel, files[i][0]);
		make_file(t, path, files[i][1]);
	}
	snprintf(path, sizeof(path), "%s/sessions", rel);
	make_dir(t, path);
}

/* Point the compile at T/@rel as CODEX_HOME, hiding T/@rel/auth.json too (as sandboxd does). */
static void use_codex_home(Tree *t, const char *rel, char home[128], char auth[160], const char *hidden[1])
{
	snprintf(home, 128, "%s/%s", t->root, rel);
	snprintf(auth, 160, "%s/auth.json", home);
	hidden[0] = auth;
	t->env.hidden_paths = hidden;
	t->env.hidden_count = 1;
	t->env.credential_home = home;
}

static void forget_codex_home(Tree *t)
{
	t->env.hidden_count = 0;
	t->env.credential_home = NULL;
}

/*
 * CODEX_HOME is an empty read-only tmpfs with its entries bound back but the credential files: a
 * rename on the host inside it (authd's every write of auth.json) reaches no mount of the sandbox.
 * Links are made again inside, so one to auth.json leads nowhere.
 */
static void test_credential_home_is_masked_whole(void **state)
{
	Tree *t = *state;
	char home[128], auth[160];
	const char *hidden[1];
	make_codex_home(t, "home");
	make_link(t, "auth.json", "home/alias");
	make_link(t, ".", "home/self");
	use_codex_home(t, "home", home, auth, hidden);
	Plan plan;
	char err[256], text[4096];
	assert_int_equal(compile(t, "{\"type\":\"readOnly\"}", "", &plan, err, sizeof(err)), 0);
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(
		text, "ro-bind / /; dev /dev; proc /proc; tmpfs(555) T/home; symlink auth.json T/home/alias; "
		      "symlink . T/home/self; ro-bind-try T/home/config.toml T/home/config.toml; "
		      "ro-bind-try T/home/sessions T/home/sessions; remount-ro T/home");
	assert_int_equal(plan.created.count, 0);
	plan_free(&plan);
	/* The same from an empty root that reads only CODEX_HOME. */
	expect_plan(t, RESTRICTED(ENTRY("T/home", "read")), "home",
		    "tmpfs(755) /; dev /dev; proc /proc; tmpfs(555) T/home; symlink auth.json T/home/alias; "
		    "symlink . T/home/self; ro-bind-try T/home/config.toml T/home/config.toml; "
		    "ro-bind-try T/home/sessions T/home/sessions; remount-ro T/home; remount-ro /");
	forget_codex_home(t);
}

/*
 * A writable CODEX_HOME (here the cwd) keeps its entries writable, its .git read-only; the top
 * stays read-only, so nothing new can be made there, and its missing protected names need no mask.
 */
static void test_writable_credential_home_keeps_entries_writable(void **state)
{
	Tree *t = *state;
	char home[128], auth[160];
	const char *hidden[1];
	make_codex_home(t, "home");
	make_metadata(t, "home/.git");
	use_codex_home(t, "home", home, auth, hidden);
	Plan plan;
	char err[256], text[4096];
	assert_int_equal(compile(t, "{\"type\":\"workspaceWrite\",\"excludeSlashTmp\":true}", "home", &plan,
				 err, sizeof(err)),
			 0);
	plan_text(t, &plan, text, sizeof(text));
	assert_string_equal(
		text, "ro-bind / /; dev /dev; proc /proc; tmpfs(555) T/home; "
		      "ro-bind-try T/home/.git T/home/.git; bind-try T/home/config.toml T/home/config.toml; "
		      "bind-try T/home/sessions T/home/sessions; remount-ro T/home");
	assert_int_equal(plan.created.count, 0);
	plan_free(&plan);
	forget_codex_home(t);
}

/* The policy's own rules inside CODEX_HOME decide their paths (a writable root there is one as any
 * other), auth.json named on purpose too. */
static void test_rules_inside_the_credential_home_decide_their_entries(void **state)
{
	Tree *t = *state;
	char home[128], auth[160];
	const char *hidden[1];
	make_codex_home(t, "home");
	make_file(t, "home/notes.txt", "n");
	make_dir(t, "home/sessions/old");
	use_codex_home(t, "home", home, auth, hidden);
	const char *policy = RESTRICTED(ROOT_READ "," ENTRY("T/home/sessions", "write") "," ENTRY(
		"T/home/sessions/old", "deny") "," ENTRY("T/home/config.toml",
							 "deny") "," ENTRY("T/home/auth.json", "read"));
	const char *masks = PROTECTED_MASKS("T/home/sessions");
	const char *remounts = PROTECTED_REMOUNTS("T/home/sessions");
	char want[1024];
	snprintf(want, sizeof(want),
		 "ro-bind / /; dev /dev; proc /proc; tmpfs(555) T/home; "
		 "ro-bind-try T/home/auth.json T/home/auth.json; "
		 "ro-bind-try T/home/notes.txt T/home/notes.txt; "
		 "bind-try T/home/sessions T/home/sessions; %s; tmpfs(0) T/home/sessions/old; "
		 "remount-ro T/home/sessions/old; %s; remount-ro T/home",
		 masks, remounts);
	expect_plan(t, policy, "", want);
	forget_codex_home(t);
}

/* Denied by the policy, or outside what an empty root reads: nothing to add. */
static void test_denied_credential_home_is_left_alone(void **state)
{
	Tree *t = *state;
	char home[128], auth[160];
	const char *hidden[1];
	make_codex_home(t, "home");
	make_dir(t, "ws");
	use_codex_home(t, "home", home, auth, hidden);
	expect_plan(t, RESTRICTED(ROOT_READ "," ENTRY("T/home", "deny")), "",
		    "ro-bind / /; dev /dev; proc /proc; tmpfs(0) T/home; remount-ro T/home");
	expect_plan(t, RESTRICTED(ENTRY("T/ws", "read")), "ws",
		    "tmpfs(755) /; dev /dev; proc /proc; ro-bind T/ws T/ws; remount-ro /");
	forget_codex_home(t);
}

/*
 * A missing CODEX_HOME under a writable parent is an empty read-only directory held in its place
 * (at its first missing component), so that one made meanwhile on the host shows nothing; under a
 * read-only parent no mount point can be made, and nothing is. An empty one under a writable
 * parent may be another sandbox's mount point: held too.
 */
static void test_missing_or_empty_credential_home(void **state)
{
	Tree *t = *state;
	char home[128], auth[160];
	const char *hidden[1];
	make_dir(t, "ws");
	make_metadata(t, "ws/.git");
	make_metadata(t, "ws/.codex");
	make_metadata(t, "ws/.agents");
	use_codex_home(t, "ws/deep/home", home, auth, hidden);
	Plan plan;
	char err[256], text[4096];
	const char *ws_write = RESTRICTED(ROOT_READ "," ENTRY("T/ws", "write"));
	const char *metadata = "ro-bind T/ws/.agents T/ws/.agents; ro-bind T/ws/.codex T/ws/.codex; "
			       "ro-bind T/ws/.git T/ws/.git";
	assert_int_equal(compile(t, ws_write, "ws", &plan, err, sizeof(err)), 0);
	plan_text(t, &plan, text, sizeof(text));
	char want[1024];
	snprintf(want, sizeof(want),
		 "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; %s; tmpfs(555) T/ws/deep; "
		 "remount-ro T/ws/deep",
		 metadata);
	assert_string_equal(text, want);
	assert_int_equal(plan.created.count, 1);
	assert_non_null(strstr(plan.created.items[0], "/ws/deep"));
	plan_free(&plan);
	use_codex_home(t, "nohome", home, auth, hidden);
	expect_plan(t, "{\"type\":\"readOnly\"}", "", "ro-bind / /; dev /dev; proc /proc");
	make_dir(t, "ws/home");
	use_codex_home(t, "ws/home", home, auth, hidden);
	assert_int_equal(compile(t, ws_write, "ws", &plan, err, sizeof(err)), 0);
	plan_text(t, &plan, text, sizeof(text));
	snprintf(want, sizeof(want),
		 "ro-bind / /; dev /dev; proc /proc; bind T/ws T/ws; %s; tmpfs(555) T/ws/home; "
		 "remount-ro T/ws/home",
		 metadata);
	assert_string_equal(text, want);
	assert_int_equal(plan.created.count, 1);
	plan_free(&plan);
	forget_codex_home(t);
}

/* Each entry is a mount of every sandbox: past PLAN_HOME_MAX_ENTRIES the plan is refused. */
static void test_crowded_credential_home_is_refused(void **state)
{
	Tree *t = *state;
	char home[128], auth[160], name[64];
	const char *hidden[1];
	make_codex_home(t, "home");
	for (int i = 2; i < PLAN_HOME_MAX_ENTRIES; i++) { /* with config.toml and sessions: at the bound */
		snprintf(name, sizeof(name), "home/f%03d", i);
		make_file(t, name, "");
	}
	use_codex_home(t, "home", home, auth, hidden);
	Plan plan;
	char err[256];
	assert_int_equal(compile(t, "{\"type\":\"readOnly\"}", "", &plan, err, sizeof(err)), 0);
	assert_int_equal(plan.op_count, 3 + 1 + PLAN_HOME_MAX_ENTRIES + 1);
	plan_free(&plan);
	make_file(t, "home/one-too-many", "");
	expect_refusal(t, "{\"type\":\"readOnly\"}", "",
		       "cannot hide the credentials in %s/home: it holds more than 256 entries");
	forget_codex_home(t);
}

#define TREE_TEST(fn) cmocka_unit_test_setup_teardown(fn, tree_setup, tree_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TREE_TEST(test_read_only),
		TREE_TEST(test_full_access_is_unwrapped),
		TREE_TEST(test_workspace_write_masks_missing_metadata),
		TREE_TEST(test_existing_metadata_and_gitdir_pointer),
		TREE_TEST(test_parent_repository_leaves_git_creatable),
		TREE_TEST(test_fake_parent_repositories_do_not_count),
		TREE_TEST(test_nested_writable_root_is_its_own_mount),
		TREE_TEST(test_symlinked_writable_root_still_fails_closed),
		TREE_TEST(test_narrower_rule_wins),
		TREE_TEST(test_redundant_rules_are_dropped),
		TREE_TEST(test_write_reopened_under_read_only_parent),
		TREE_TEST(test_denied_file_and_missing_paths),
		TREE_TEST(test_missing_writable_root_is_skipped),
		TREE_TEST(test_missing_write_under_read_only_rule_is_refused),
		TREE_TEST(test_read_only_path_through_writable_symlink_fails_closed),
		TREE_TEST(test_protected_symlink_fails_closed),
		TREE_TEST(test_symlink_in_read_only_area_is_followed),
		TREE_TEST(test_restricted_read_builds_an_empty_root),
		TREE_TEST(test_hidden_paths_are_denied),
		TREE_TEST(test_stage_dir_is_readable_in_an_empty_root_only),
		TREE_TEST(test_deny_glob_is_expanded_to_its_matches),
		TREE_TEST(test_deny_glob_with_too_many_matches_is_refused),
		TREE_TEST(test_missing_cwd_is_refused),
		TREE_TEST(test_render_bwrap_with_argv0),
		TREE_TEST(test_render_bwrap_compat_path),
		TREE_TEST(test_render_builtin),
		TREE_TEST(test_render_network_enabled_and_unwrapped),
		TREE_TEST(test_empty_paths_at_masks_are_held_and_masked_as_missing),
		TREE_TEST(test_empty_paths_held_only_where_masks_are_made),
		TREE_TEST(test_hidden_empty_directory_is_not_held),
		TREE_TEST(test_credential_home_is_masked_whole),
		TREE_TEST(test_writable_credential_home_keeps_entries_writable),
		TREE_TEST(test_rules_inside_the_credential_home_decide_their_entries),
		TREE_TEST(test_denied_credential_home_is_left_alone),
		TREE_TEST(test_missing_or_empty_credential_home),
		TREE_TEST(test_crowded_credential_home_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
