/* SPDX-License-Identifier: MIT */
/* watch.c - subscriptions anchored on shared inotify directory watches; batches held until credit. */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "credit.h"
#include "log.h"

/* One batch per watch in flight: the next waits until the client's socket took this one. */
#define WATCH_CREDIT_WINDOW 1u

/* Only changes count: access, open/close and attribute-only events are never asked for. */
#define WATCH_INOTIFY_MASK                                                                                   \
	(IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |   \
	 IN_ONLYDIR | IN_EXCL_UNLINK)
#define WATCH_SELF_GONE (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)

typedef struct Sub Sub;

/* One kernel watch on a directory, shared by every subscription anchored there. */
typedef struct Anchor {
	struct Anchor *next;
	int wd;
	unsigned refs;
	char *path;
} Anchor;

struct Sub {
	Sub *next;
	uint64_t conn_id;
	char *watch_id;
	char *target;	      /* the requested path, normalised, in the client's spelling */
	Anchor *anchor;	      /* the directory watched for it */
	bool is_dir_mode;     /* anchor is the target itself (an existing directory) */
	char *next_component; /* otherwise: the name under the anchor that leads to the target */
	bool did_exist;	      /* the target existed when last looked at */
	char **pending;	      /* paths gathered for the next batch */
	size_t pending_count, pending_cap;
	bool is_collapsed;   /* too many paths or a queue overflow: the batch is just the root */
	uint64_t due_ms;     /* when the current batch is ready (0: no batch) */
	CreditWindow credit; /* WATCH_CREDIT_WINDOW batches may be on their way to the client */
};

struct WatchTable {
	uv_loop_t *loop;
	int inotify_fd;
	uv_poll_t poll;
	uv_timer_t timer;
	Sub *subs;
	Anchor *anchors;
	size_t sub_count, anchor_count;
	uint32_t debounce_ms;
	WatchEmitFn emit;
	void *ctx;
	int open_handles;
};

/* ---- anchors ------------------------------------------------------------------------------- */

static Anchor *anchor_find_wd(WatchTable *t, int wd)
{
	for (Anchor *a = t->anchors; a; a = a->next) {
		if (a->wd == wd)
			return a;
	}
	return NULL;
}

/* The kernel hands back the same wd for the same directory: one watch, counted once per user. */
static int anchor_acquire(WatchTable *t, const char *dir, Anchor **out)
{
	int wd = inotify_add_watch(t->inotify_fd, dir, WATCH_INOTIFY_MASK);
	if (wd < 0)
		return -errno;
	Anchor *a = anchor_find_wd(t, wd);
	if (!a) {
		a = calloc(1, sizeof(*a));
		char *copy = strdup(dir);
		if (!a || !copy) {
			free(a);
			free(copy);
			inotify_rm_watch(t->inotify_fd, wd);
			return -ENOMEM;
		}
		a->wd = wd;
		a->path = copy;
		a->next = t->anchors;
		t->anchors = a;
		t->anchor_count++;
	}
	a->refs++;
	*out = a;
	return 0;
}

static void anchor_release(WatchTable *t, Anchor *a)
{
	if (!a || --a->refs > 0)
		return;
	for (Anchor **pp = &t->anchors; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	t->anchor_count--;
	/* Fails harmlessly when the kernel already dropped it (directory deleted). */
	inotify_rm_watch(t->inotify_fd, a->wd);
	free(a->path);
	free(a);
}

/* ---- resolving where a subscription is anchored ---------------------------------------------- */

static bool path_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* The deepest existing directory above @target, and the component under it toward @target. */
static int nearest_existing_ancestor(const char *target, char *dir, size_t dir_len, const char **component)
{
	size_t len = strlen(target);
	if (len >= dir_len)
		return -ENAMETOOLONG;
	memcpy(dir, target, len + 1);
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash)
			return -EINVAL;
		*component = target + (slash - dir) + 1;
		if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		if (path_is_dir(dir))
			return 0;
		if (slash == dir)
			return -ENOENT;
	}
}

static int sub_set_next_component(Sub *s, const char *component)
{
	size_t len = strcspn(component, "/");
	char *copy = strndup(component, len);
	if (!copy)
		return -ENOMEM;
	free(s->next_component);
	s->next_component = copy;
	return 0;
}

/* Anchors @s on the target itself when it is a directory, else on its nearest existing ancestor. */
static int sub_resolve(WatchTable *t, Sub *s)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		char dir[PATH_MAX];
		const char *component = NULL;
		bool is_dir = path_is_dir(s->target);
		int rc = 0;
		if (!is_dir)
			rc = nearest_existing_ancestor(s->target, dir, sizeof(dir), &component);
		if (rc < 0)
			return rc;
		Anchor *fresh = NULL;
		rc = anchor_acquire(t, is_dir ? s->target : dir, &fresh);
		if (rc == -ENOENT || rc == -ENOTDIR)
			continue; /* it vanished between the stat and the watch: look again */
		if (rc < 0)
			return rc;
		if (!is_dir && (rc = sub_set_next_component(s, component)) < 0) {
			anchor_release(t, fresh);
			return rc;
		}
		anchor_release(t, s->anchor);
		s->anchor = fresh;
		s->is_dir_mode = is_dir;
		s->did_exist = is_dir || path_exists(s->target);
		return 0;
	}
	return -ESTALE;
}

/* ---- batches ------------------------------------------------------------------------------- */

static void pending_clear(Sub *s)
{
	for (size_t i = 0; i < s->pending_count; i++)
		free(s->pending[i]);
	s->pending_count = 0;
	s->is_collapsed = false;
	s->due_ms = 0;
}

static void watch_table_arm_timer(WatchTable *t);

static void sub_schedule(WatchTable *t, Sub *s)
{
	if (s->due_ms == 0) {
		s->due_ms = uv_now(t->loop) + t->debounce_ms;
		if (s->due_ms == 0)
			s->due_ms = 1;
		watch_table_arm_timer(t);
	}
}

static bool pending_reserve(Sub *s)
{
	if (s->pending_count < s->pending_cap)
		return true;
	size_t cap = s->pending_cap ? s->pending_cap * 2 : 8;
	if (cap > WATCH_PENDING_MAX)
		return false;
	char **grown = realloc(s->pending, cap * sizeof(*grown));
	if (!grown)
		return false;
	s->pending = grown;
	s->pending_cap = cap;
	return true;
}

/* A client told "something changed under the root" re-scans; that bounds what a batch holds. */
static void sub_collapse(WatchTable *t, Sub *s)
{
	for (size_t i = 0; i < s->pending_count; i++)
		free(s->pending[i]);
	s->pending_count = 0;
	char *root = pending_reserve(s) ? strdup(s->target) : NULL;
	if (root)
		s->pending[s->pending_count++] = root;
	s->is_collapsed = true;
	sub_schedule(t, s);
}

static void sub_add_path(WatchTable *t, Sub *s, const char *path)
{
	if (s->is_collapsed) {
		sub_schedule(t, s);
		return;
	}
	for (size_t i = 0; i < s->pending_count; i++) {
		if (strcmp(s->pending[i], path) == 0) {
			sub_schedule(t, s);
			return;
		}
	}
	char *copy = pending_reserve(s) ? strdup(path) : NULL;
	if (!copy) {
		sub_collapse(t, s);
		return;
	}
	s->pending[s->pending_count++] = copy;
	sub_schedule(t, s);
}

static void sub_add_child(WatchTable *t, Sub *s, const char *name)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s%s%s", s->target, strcmp(s->target, "/") == 0 ? "" : "/",
			 name);
	if (n > 0 && (size_t)n < sizeof(path))
		sub_add_path(t, s, path);
	else
		sub_collapse(t, s);
}

static int compare_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sub_emit(WatchTable *t, Sub *s)
{
	qsort(s->pending, s->pending_count, sizeof(*s->pending), compare_paths);
	if (t->emit(t->ctx, s->conn_id, s->watch_id, (const char *const *)s->pending, s->pending_count) == 0)
		credit_consume(&s->credit);
	pending_clear(s);
}

static void watch_table_on_timer(uv_timer_t *timer)
{
	WatchTable *t = timer->data;
	uint64_t now = uv_now(t->loop);
	for (Sub *s = t->subs; s; s = s->next) {
		if (s->due_ms && s->due_ms <= now && credit_can_send(&s->credit) && s->pending_count > 0)
			sub_emit(t, s);
	}
	watch_table_arm_timer(t);
}

/* One timer for the table, set for the earliest batch that can go out. */
static void watch_table_arm_timer(WatchTable *t)
{
	uint64_t earliest = 0;
	for (Sub *s = t->subs; s; s = s->next) {
		if (s->due_ms && credit_can_send(&s->credit) && (earliest == 0 || s->due_ms < earliest))
			earliest = s->due_ms;
	}
	if (earliest == 0) {
		uv_timer_stop(&t->timer);
		return;
	}
	uint64_t now = uv_now(t->loop);
	uv_timer_start(&t->timer, watch_table_on_timer, earliest > now ? earliest - now : 0, 0);
}

/* ---- inotify events ------------------------------------------------------------------------ */

static void sub_on_anchor_gone(WatchTable *t, Sub *s)
{
	bool did_exist = s->did_exist;
	if (sub_resolve(t, s) < 0)
		log_warn("watch %s: cannot re-anchor %s", s->watch_id, s->target);
	if (did_exist || s->did_exist)
		sub_add_path(t, s, s->target);
}

static void sub_on_dir_event(WatchTable *t, Sub *s, uint32_t mask, const char *name)
{
	if (name[0])
		sub_add_child(t, s, name);
	else if (mask & WATCH_SELF_GONE)
		sub_on_anchor_gone(t, s);
}

/* Anchored above the target: only the component toward it matters. */
static void sub_on_ancestor_event(WatchTable *t, Sub *s, uint32_t mask, const char *name)
{
	if (!name[0]) {
		if (mask & WATCH_SELF_GONE)
			sub_on_anchor_gone(t, s);
		return;
	}
	if (!s->next_component || strcmp(name, s->next_component) != 0)
		return;
	size_t anchor_len = strcmp(s->anchor->path, "/") == 0 ? 0 : strlen(s->anchor->path);
	bool is_parent = strchr(s->target + anchor_len + 1, '/') == NULL;
	bool did_exist = s->did_exist;
	if (is_parent && !((mask & IN_ISDIR) && (mask & (IN_CREATE | IN_MOVED_TO)))) {
		s->did_exist = path_exists(s->target);
		sub_add_path(t, s, s->target);
		return;
	}
	/* An intermediate directory (or the target as a directory) appeared or went: move the anchor. */
	if (sub_resolve(t, s) < 0)
		log_warn("watch %s: cannot re-anchor %s", s->watch_id, s->target);
	if (did_exist || s->did_exist)
		sub_add_path(t, s, s->target);
}

static void watch_table_on_overflow(WatchTable *t)
{
	log_warn("inotify queue overflowed: every watch is told to re-scan its root");
	for (Sub *s = t->subs; s; s = s->next)
		sub_collapse(t, s);
}

static void watch_table_dispatch(WatchTable *t, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		watch_table_on_overflow(t);
		return;
	}
	Anchor *a = anchor_find_wd(t, ev->wd);
	if (!a)
		return;
	const char *name = ev->len ? ev->name : "";
	/* Handlers may re-anchor (and so free) a subscription's anchor: walk a snapshot by id. */
	int wd = ev->wd;
	for (Sub *s = t->subs; s; s = s->next) {
		if (!s->anchor || s->anchor->wd != wd)
			continue;
		if (s->is_dir_mode)
			sub_on_dir_event(t, s, ev->mask, name);
		else
			sub_on_ancestor_event(t, s, ev->mask, name);
	}
}

static void watch_table_on_readable(uv_poll_t *poll, int status, int events)
{
	WatchTable *t = poll->data;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (int round = 0; round < 16; round++) {
		ssize_t n = read(t->inotify_fd, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			watch_table_dispatch(t, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* ---- subscriptions ------------------------------------------------------------------------- */

static Sub *sub_find(WatchTable *t, uint64_t conn_id, const char *watch_id, Sub ***link)
{
	for (Sub **pp = &t->subs; *pp; pp = &(*pp)->next) {
		if ((*pp)->conn_id == conn_id && strcmp((*pp)->watch_id, watch_id) == 0) {
			if (link)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

static void sub_free(WatchTable *t, Sub *s)
{
	pending_clear(s);
	free(s->pending);
	anchor_release(t, s->anchor);
	free(s->next_component);
	free(s->watch_id);
	free(s->target);
	free(s);
}

int watch_table_add(WatchTable *t, uint64_t conn_id, const char *watch_id, const char *path)
{
	if (sub_find(t, conn_id, watch_id, NULL))
		return -EEXIST;
	Sub *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->conn_id = conn_id;
	credit_init(&s->credit, WATCH_CREDIT_WINDOW);
	s->watch_id = strdup(watch_id);
	s->target = strdup(path);
	int rc = s->watch_id && s->target ? sub_resolve(t, s) : -ENOMEM;
	if (rc < 0) {
		sub_free(t, s);
		return rc;
	}
	s->next = t->subs;
	t->subs = s;
	t->sub_count++;
	return 0;
}

void watch_table_remove(WatchTable *t, uint64_t conn_id, const char *watch_id)
{
	Sub **link;
	Sub *s = sub_find(t, conn_id, watch_id, &link);
	if (!s)
		return;
	*link = s->next;
	t->sub_count--;
	sub_free(t, s);
	watch_table_arm_timer(t);
}

static void watch_table_drop_matching(WatchTable *t, bool is_all, uint64_t conn_id)
{
	Sub **pp = &t->subs;
	while (*pp) {
		Sub *s = *pp;
		if (!is_all && s->conn_id != conn_id) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		t->sub_count--;
		sub_free(t, s);
	}
	watch_table_arm_timer(t);
}

void watch_table_drop_connection(WatchTable *t, uint64_t conn_id)
{
	watch_table_drop_matching(t, false, conn_id);
}

void watch_table_drop_all(WatchTable *t)
{
	watch_table_drop_matching(t, true, 0);
}

void watch_table_grant(WatchTable *t, uint64_t conn_id, const char *watch_id)
{
	Sub *s = sub_find(t, conn_id, watch_id, NULL);
	if (!s)
		return;
	/* A grant beyond the window is a sibling's bug; the window stays as it was. */
	if (credit_grant(&s->credit, 1) < 0)
		log_warn("watch %s: credit beyond its window ignored", s->watch_id);
	if (s->due_ms && s->due_ms <= uv_now(t->loop) && s->pending_count > 0)
		sub_emit(t, s);
	watch_table_arm_timer(t);
}

void watch_table_counts(const WatchTable *t, size_t *subscriptions, size_t *inotify_watches)
{
	*subscriptions = t->sub_count;
	*inotify_watches = t->anchor_count;
}

void watch_table_set_debounce(WatchTable *t, uint32_t debounce_ms)
{
	t->debounce_ms = debounce_ms;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

int watch_table_new(uv_loop_t *loop, uint32_t debounce_ms, WatchEmitFn emit, void *ctx, WatchTable **out)
{
	WatchTable *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->debounce_ms = debounce_ms;
	t->emit = emit;
	t->ctx = ctx;
	t->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (t->inotify_fd < 0) {
		int rc = -errno;
		free(t);
		return rc;
	}
	uv_timer_init(loop, &t->timer);
	t->timer.data = t;
	uv_poll_init(loop, &t->poll, t->inotify_fd);
	t->poll.data = t;
	t->open_handles = 2;
	uv_poll_start(&t->poll, UV_READABLE, watch_table_on_readable);
	*out = t;
	return 0;
}

static void watch_table_on_closed(uv_handle_t *handle)
{
	WatchTable *t = handle->data;
	if (--t->open_handles == 0) {
		close(t->inotify_fd);
		free(t);
	}
}

void watch_table_free(WatchTable *t)
{
	if (!t)
		return;
	watch_table_drop_all(t);
	uv_poll_stop(&t->poll);
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->poll, watch_table_on_closed);
	uv_close((uv_handle_t *)&t->timer, watch_table_on_closed);
}
