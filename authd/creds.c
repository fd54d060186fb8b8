/* SPDX-License-Identifier: MIT */
/*
 * creds.c - one CODEX_HOME's credential: the cached snapshot, the refresh that is in flight (at
 * most one; every caller that arrives meanwhile waits for its result), the poison a permanent
 * failure leaves on the snapshot it was tried with, and the timer that refreshes due tokens.
 *
 * The network and the file lock are used on libuv's worker threads; everything else happens on
 * the loop. After every job the loop re-reads the file: what is on disk is the truth, whoever
 * (this process, another authd, another tool taking the same lock) wrote it.
 */
#include "creds.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "refresh.h"

/* Refreshes the background timer starts are at least this far apart (a short-lived token must
 * not turn the timer into a loop). */
#define CREDS_BACKGROUND_MIN_GAP_MS 30000u

typedef struct CredsWaiter {
	struct CredsWaiter *next;
	CredsDoneFn fn;
	void *ctx;
} CredsWaiter;

/* A refresh asked for while a login or logout is being stored: it runs once the store is written,
 * so a client that signs in and then reads its account sees the new credential. */
typedef struct CredsDeferred {
	struct CredsDeferred *next;
	uint64_t after; /* runs once this many replaces are done */
	CredsWhy why;
	CredsDoneFn fn;
	void *ctx;
} CredsDeferred;

typedef enum CredsJobKind {
	CREDS_JOB_REFRESH,
	CREDS_JOB_REPLACE,
} CredsJobKind;

typedef struct CredsJob {
	uv_work_t work;
	Creds *c;
	CredsJobKind kind;
	/* Inputs, owned by the job (the worker never touches the Creds but its cancel flag). */
	StorePaths paths;
	CredsOptions opts;
	char *attempted_identity;
	char *attempted_account;
	json_t *replace_doc; /* CREDS_JOB_REPLACE: the new content, NULL to delete */
	const char *reason;  /* the refresh_reason the issuer is told */
	int attempt;
	/* Outputs. */
	RefreshOutcome outcome;
	char message[1024];
	CredsWaiter *waiters, **waiters_tail;
	struct CredsJob *next; /* the replaces waiting behind this one */
} CredsJob;

struct Creds {
	uv_loop_t *loop;
	StorePaths paths;
	CredsOptions opts;
	CredsChangedFn on_changed;
	void *ctx;
	AuthSnapshot cache;
	struct stat cache_st;
	char *load_error;
	char *poison_identity;
	char poison_message[1024];
	CredsJob *refresh; /* the refresh in flight or waiting to retry */
	unsigned jobs_running;
	/* Logins and logouts are stored one at a time, in the order they were asked for. */
	CredsJob *replaces, **replaces_tail;
	uint64_t replaces_started, replaces_done;
	CredsDeferred *deferred, **deferred_tail;
	uv_timer_t retry_timer;
	uv_timer_t due_timer;
	unsigned open_timers;
	unsigned background_failures;
	uint64_t last_background_ms;
	atomic_bool cancel;
	bool is_stopped;
	atomic_uint_fast64_t refresh_calls;
};

static int64_t creds_now_s(void)
{
	return (int64_t)time(NULL);
}

static char *creds_strdup_or_null(const char *text)
{
	return text ? strdup(text) : NULL;
}

/* -------------------------------------------------------------------------------------------
 * The cached snapshot and the file on disk */

static bool creds_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_nlink == b->st_nlink;
}

static bool creds_is_poisoned(const Creds *c)
{
	return c->poison_identity && c->cache.identity && strcmp(c->poison_identity, c->cache.identity) == 0;
}

static void creds_clear_poison(Creds *c)
{
	free(c->poison_identity);
	c->poison_identity = NULL;
	c->poison_message[0] = '\0';
}

static void creds_schedule(Creds *c);

/* Adopt @fresh (taken) as the cache; a different credential clears the poison. */
static void creds_adopt(Creds *c, AuthSnapshot *fresh, const struct stat *st)
{
	bool is_changed = !store_snapshot_equal(&c->cache, fresh);
	store_snapshot_clear(&c->cache);
	c->cache = *fresh;
	memset(fresh, 0, sizeof(*fresh));
	c->cache_st = *st;
	if (is_changed) {
		if (c->poison_identity && !creds_is_poisoned(c))
			creds_clear_poison(c);
		c->background_failures = 0;
		if (c->on_changed)
			c->on_changed(c->ctx);
	}
	creds_schedule(c);
}

/* Re-read the file; @force even when its stat looks the same. */
static int creds_reload(Creds *c, bool force)
{
	struct stat st;
	if (!force && !c->load_error) {
		if (stat(c->paths.file, &st) < 0)
			memset(&st, 0, sizeof(st));
		if (creds_same_file(&st, &c->cache_st))
			return 0;
	}
	AuthSnapshot fresh;
	char err[640];
	int rc = store_load(&c->paths, &fresh, &st, err, sizeof(err));
	if (rc < 0) {
		if (!c->load_error || strcmp(c->load_error, err) != 0)
			log_error("%s", err);
		free(c->load_error);
		c->load_error = strdup(err);
		/* Fail closed: nothing of an unreadable store is used, and nothing overwrites it. */
		AuthSnapshot none = { 0 };
		creds_adopt(c, &none, &st);
		return rc;
	}
	free(c->load_error);
	c->load_error = NULL;
	creds_adopt(c, &fresh, &st);
	return 0;
}

int creds_sync(Creds *c)
{
	return creds_reload(c, false);
}

const AuthSnapshot *creds_current(const Creds *c)
{
	return &c->cache;
}

const char *creds_load_error(const Creds *c)
{
	return c->load_error;
}

const char *creds_poison(const Creds *c)
{
	return creds_is_poisoned(c) ? c->poison_message : NULL;
}

uint64_t creds_refresh_calls(const Creds *c)
{
	return atomic_load(&c->refresh_calls);
}

static bool creds_is_refreshable(const AuthSnapshot *snap)
{
	return snap->mode == AUTH_MODE_CHATGPT && snap->refresh_token;
}

/* When the token becomes due (Unix seconds), or 0 when it never does. */
static int64_t creds_due_at(const AuthSnapshot *snap)
{
	if (!creds_is_refreshable(snap))
		return 0;
	if (snap->access_exp_s > 0)
		return snap->access_exp_s - CREDS_EXPIRY_WINDOW_S;
	if (snap->last_refresh_s > 0)
		return snap->last_refresh_s + CREDS_MAX_TOKEN_AGE_S;
	return 0;
}

bool creds_is_due(const Creds *c, int64_t now_s)
{
	int64_t due = creds_due_at(&c->cache);
	return due != 0 && due <= now_s;
}

/* -------------------------------------------------------------------------------------------
 * Jobs on the worker threads */

static void creds_job_free(CredsJob *job)
{
	free(job->attempted_identity);
	free(job->attempted_account);
	json_decref(job->replace_doc);
	free(job);
}

static void creds_job_fail(CredsJob *job, RefreshOutcome outcome, const char *fmt, const char *detail)
{
	job->outcome = outcome;
	snprintf(job->message, sizeof(job->message), fmt, detail);
}

/* Under the lock: the guarded reload of the reference, then the token request if still needed. */
static void creds_refresh_locked(CredsJob *job)
{
	AuthSnapshot disk;
	struct stat st;
	char err[640];
	if (store_load(&job->paths, &disk, &st, err, sizeof(err)) < 0) {
		creds_job_fail(job, REFRESH_STORE_ERROR, "%s", err);
		return;
	}
	if (!creds_is_refreshable(&disk) || !refresh_same_account(job->attempted_account, disk.account_id)) {
		job->outcome = REFRESH_ACCOUNT_CHANGED;
		snprintf(job->message, sizeof(job->message), "%s", refresh_message(REFRESH_ACCOUNT_CHANGED));
	} else if (strcmp(disk.identity, job->attempted_identity) != 0) {
		job->outcome = REFRESH_ADOPTED; /* someone refreshed it already: no network call */
	} else {
		char url[sizeof(job->opts.refresh_url)], client_id[sizeof(job->opts.client_id)];
		refresh_endpoint(&disk, job->opts.refresh_url, job->opts.client_id, job->opts.is_refresh_url_default,
				 url, sizeof(url), client_id, sizeof(client_id));
		atomic_fetch_add(&job->c->refresh_calls, 1);
		refresh_run(&disk, &job->paths, url, client_id, job->reason,
			    job->opts.request_timeout_ms, (const volatile bool *)&job->c->cancel, &job->outcome,
			    job->message, sizeof(job->message));
	}
	store_snapshot_clear(&disk);
}

static void creds_replace_locked(CredsJob *job)
{
	int rc = job->replace_doc ? store_write(&job->paths, job->replace_doc) : store_remove(&job->paths);
	if (rc < 0)
		creds_job_fail(job, REFRESH_STORE_ERROR, "cannot write the credential file: %s", strerror(-rc));
	else
		job->outcome = REFRESH_REFRESHED;
}

static void creds_job_work(uv_work_t *work)
{
	CredsJob *job = work->data;
	int fd = store_lock(&job->paths, job->opts.lock_timeout_ms, (const volatile bool *)&job->c->cancel);
	if (fd == -ECANCELED) {
		job->outcome = REFRESH_CANCELLED;
		return;
	}
	if (fd < 0) {
		job->outcome = REFRESH_STORE_ERROR;
		snprintf(job->message, sizeof(job->message), "cannot lock %.600s: %s", job->paths.lock,
			 strerror(-fd));
		return;
	}
	if (job->kind == CREDS_JOB_REFRESH)
		creds_refresh_locked(job);
	else
		creds_replace_locked(job);
	store_unlock(fd);
}

static void creds_answer(CredsJob *job, int status, const char *message)
{
	CredsWaiter *w = job->waiters;
	job->waiters = NULL;
	job->waiters_tail = &job->waiters;
	while (w) {
		CredsWaiter *next = w->next;
		w->fn(w->ctx, status, message);
		free(w);
		w = next;
	}
}

static int creds_status_of(RefreshOutcome outcome)
{
	switch (outcome) {
	case REFRESH_REFRESHED:
	case REFRESH_ADOPTED:
		return 0;
	case REFRESH_ACCOUNT_CHANGED:
	case REFRESH_PERMANENT:
		return CREDS_ERR_PERMANENT;
	case REFRESH_TRANSIENT:
		return CREDS_ERR_TRANSIENT;
	case REFRESH_CANCELLED:
		return -ECANCELED;
	case REFRESH_STORE_ERROR:
		break;
	}
	return CREDS_ERR_STORE;
}

static void creds_queue(Creds *c, CredsJob *job);
static void creds_refresh_now(Creds *c, CredsWhy why, CredsDoneFn fn, void *ctx);
static void creds_maybe_free(Creds *c);

static void creds_call(CredsDoneFn fn, void *ctx, int status, const char *message)
{
	if (fn)
		fn(ctx, status, message);
}


static void creds_on_retry(uv_timer_t *timer)
{
	Creds *c = timer->data;
	if (c->refresh && !c->is_stopped)
		creds_queue(c, c->refresh);
}

/* A refresh ended: retry a transient failure, record a permanent one, answer every waiter. */
static void creds_refresh_done(Creds *c, CredsJob *job)
{
	creds_reload(c, true);
	if (job->outcome == REFRESH_TRANSIENT && job->attempt < job->opts.refresh_attempts && !c->is_stopped) {
		uint64_t delay = (uint64_t)job->opts.retry_base_ms << (job->attempt - 1);
		log_warn("token refresh failed (attempt %d of %d), retrying in %llu ms: %s", job->attempt,
			 job->opts.refresh_attempts, (unsigned long long)delay, job->message);
		uv_timer_start(&c->retry_timer, creds_on_retry, delay, 0);
		return;
	}
	c->refresh = NULL;
	creds_schedule(c); /* the reload above found this refresh in flight and left the timer off */
	if (job->outcome == REFRESH_PERMANENT && c->cache.identity &&
	    strcmp(c->cache.identity, job->attempted_identity) == 0) {
		/* Only the snapshot it was tried with is poisoned; a newer one is left alone. */
		creds_clear_poison(c);
		c->poison_identity = strdup(c->cache.identity);
		snprintf(c->poison_message, sizeof(c->poison_message), "%s", job->message);
		creds_schedule(c);
	}
	if (job->outcome == REFRESH_REFRESHED)
		log_info("access token refreshed");
	else if (job->outcome != REFRESH_ADOPTED && job->outcome != REFRESH_CANCELLED)
		log_warn("token refresh failed: %s", job->message);
	creds_answer(job, creds_status_of(job->outcome), job->message[0] ? job->message : NULL);
	creds_job_free(job);
}

static void creds_run_deferred(Creds *c)
{
	while (c->deferred && (c->is_stopped || c->deferred->after <= c->replaces_done)) {
		CredsDeferred *d = c->deferred;
		c->deferred = d->next;
		if (!c->deferred)
			c->deferred_tail = &c->deferred;
		if (c->is_stopped)
			creds_call(d->fn, d->ctx, -ECANCELED, "authd is stopping");
		else
			creds_refresh_now(c, d->why, d->fn, d->ctx);
		free(d);
	}
}

static void creds_replace_done(Creds *c, CredsJob *job)
{
	c->replaces = job->next;
	if (!c->replaces)
		c->replaces_tail = &c->replaces;
	c->replaces_done++;
	creds_reload(c, true);
	if (job->outcome == REFRESH_REFRESHED)
		creds_clear_poison(c); /* a login or logout starts over, even with equal content */
	creds_answer(job, creds_status_of(job->outcome), job->message[0] ? job->message : NULL);
	creds_job_free(job);
	/* What was asked between this replace and the next sees this one's result. */
	creds_run_deferred(c);
	if (c->replaces)
		creds_queue(c, c->replaces);
}

static void creds_job_after(uv_work_t *work, int status)
{
	CredsJob *job = work->data;
	Creds *c = job->c;
	c->jobs_running--;
	if (status == UV_ECANCELED)
		job->outcome = REFRESH_CANCELLED;
	if (c->is_stopped) {
		if (c->refresh == job)
			c->refresh = NULL;
		creds_answer(job, -ECANCELED, "authd is stopping");
		creds_job_free(job);
		creds_maybe_free(c);
		return;
	}
	if (job->kind == CREDS_JOB_REFRESH)
		creds_refresh_done(c, job);
	else
		creds_replace_done(c, job);
}

static void creds_queue(Creds *c, CredsJob *job)
{
	job->attempt++;
	job->outcome = REFRESH_CANCELLED;
	job->message[0] = '\0';
	job->work.data = job;
	if (job->kind == CREDS_JOB_REFRESH)
		(void)http_prepare(); /* a failure to load is the request's failure, reported by it */
	c->jobs_running++;
	int rc = uv_queue_work(c->loop, &job->work, creds_job_work, creds_job_after);
	if (rc < 0) {
		c->jobs_running--;
		job->outcome = REFRESH_STORE_ERROR;
		snprintf(job->message, sizeof(job->message), "cannot start a worker: %s", uv_strerror(rc));
		if (job->kind == CREDS_JOB_REFRESH) {
			job->attempt = job->opts.refresh_attempts; /* no retry of this */
			creds_refresh_done(c, job);
		} else {
			creds_replace_done(c, job);
		}
	}
}

static CredsJob *creds_job_new(Creds *c, CredsJobKind kind)
{
	CredsJob *job = calloc(1, sizeof(*job));
	if (!job)
		return NULL;
	job->c = c;
	job->kind = kind;
	job->paths = c->paths;
	job->opts = c->opts;
	job->waiters_tail = &job->waiters;
	return job;
}

static int creds_add_waiter(CredsJob *job, CredsDoneFn fn, void *ctx)
{
	if (!fn)
		return 0;
	CredsWaiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fn = fn;
	w->ctx = ctx;
	*job->waiters_tail = w;
	job->waiters_tail = &w->next;
	return 0;
}

/* A client asked for a refresh of a token that is fresh and was refreshed moments ago: the
 * answer is that token (a storm of such requests makes one token request, not one each). */
static bool creds_is_just_refreshed(const Creds *c, int64_t now_s)
{
	return c->opts.coalesce_s > 0 && c->cache.last_refresh_s >= now_s - c->opts.coalesce_s &&
	       !creds_is_due(c, now_s);
}

/* The refresh_reason of the reference's request body. */
static const char *creds_reason(const Creds *c, CredsWhy why)
{
	if (why == CREDS_REFRESH_REQUESTED)
		return "forced";
	if (why == CREDS_REFRESH_UNAUTHORIZED)
		return "unauthorized_recovery";
	return c->cache.access_exp_s > 0 ? "proactive_expiry" : "scheduled";
}

static void creds_refresh_now(Creds *c, CredsWhy why, CredsDoneFn fn, void *ctx)
{
	if (creds_sync(c) < 0) {
		creds_call(fn, ctx, CREDS_ERR_STORE, c->load_error);
		return;
	}
	if (!creds_is_refreshable(&c->cache)) {
		creds_call(fn, ctx, 0, NULL); /* API key, no credential: nothing to refresh */
		return;
	}
	if (creds_is_poisoned(c)) {
		creds_call(fn, ctx, CREDS_ERR_PERMANENT, c->poison_message);
		return;
	}
	if (c->refresh) {
		if (creds_add_waiter(c->refresh, fn, ctx) < 0)
			creds_call(fn, ctx, -ENOMEM, "out of memory");
		return;
	}
	int64_t now = creds_now_s();
	if ((why == CREDS_REFRESH_DUE && !creds_is_due(c, now)) ||
	    (why == CREDS_REFRESH_REQUESTED && creds_is_just_refreshed(c, now))) {
		creds_call(fn, ctx, 0, NULL);
		return;
	}
	CredsJob *job = creds_job_new(c, CREDS_JOB_REFRESH);
	if (job) {
		job->reason = creds_reason(c, why);
		job->attempted_identity = strdup(c->cache.identity);
		job->attempted_account = creds_strdup_or_null(c->cache.account_id);
	}
	if (!job || !job->attempted_identity || (c->cache.account_id && !job->attempted_account) ||
	    creds_add_waiter(job, fn, ctx) < 0) {
		if (job)
			creds_job_free(job);
		creds_call(fn, ctx, -ENOMEM, "out of memory");
		return;
	}
	c->refresh = job;
	creds_queue(c, job);
}

void creds_refresh(Creds *c, CredsWhy why, CredsDoneFn fn, void *ctx)
{
	if (c->is_stopped) {
		creds_call(fn, ctx, -ECANCELED, "authd is stopping");
		return;
	}
	if (c->replaces_done < c->replaces_started) {
		CredsDeferred *d = calloc(1, sizeof(*d));
		if (!d) {
			creds_call(fn, ctx, -ENOMEM, "out of memory");
			return;
		}
		d->after = c->replaces_started;
		d->why = why;
		d->fn = fn;
		d->ctx = ctx;
		*c->deferred_tail = d;
		c->deferred_tail = &d->next;
		return;
	}
	creds_refresh_now(c, why, fn, ctx);
}

void creds_replace(Creds *c, json_t *doc, CredsDoneFn fn, void *ctx)
{
	if (c->is_stopped) {
		json_decref(doc);
		creds_call(fn, ctx, -ECANCELED, "authd is stopping");
		return;
	}
	CredsJob *job = creds_job_new(c, CREDS_JOB_REPLACE);
	if (!job || creds_add_waiter(job, fn, ctx) < 0) {
		json_decref(doc);
		if (job)
			creds_job_free(job);
		creds_call(fn, ctx, -ENOMEM, "out of memory");
		return;
	}
	job->replace_doc = doc;
	c->replaces_started++;
	bool is_first = !c->replaces;
	*c->replaces_tail = job;
	c->replaces_tail = &job->next;
	if (is_first)
		creds_queue(c, job);
}

/* -------------------------------------------------------------------------------------------
 * The background timer */

static void creds_on_background_done(void *ctx, int status, const char *message)
{
	Creds *c = ctx;
	if (status == CREDS_ERR_TRANSIENT || status == CREDS_ERR_STORE)
		c->background_failures++;
	else
		c->background_failures = 0;
	creds_schedule(c);
}

static void creds_on_due(uv_timer_t *timer)
{
	Creds *c = timer->data;
	c->last_background_ms = uv_now(c->loop);
	creds_refresh(c, CREDS_REFRESH_DUE, creds_on_background_done, c);
}

static uint64_t creds_backoff_ms(const Creds *c)
{
	if (c->background_failures == 0)
		return 0;
	unsigned shift = c->background_failures > 16 ? 16 : c->background_failures - 1;
	uint64_t delay = (uint64_t)CREDS_BACKGROUND_MIN_GAP_MS << shift;
	return delay > (uint64_t)c->opts.background_retry_max_ms ? (uint64_t)c->opts.background_retry_max_ms
								 : delay;
}

static void creds_schedule(Creds *c)
{
	if (c->is_stopped)
		return;
	uv_timer_stop(&c->due_timer);
	int64_t due = creds_due_at(&c->cache);
	if (!c->opts.background_refresh || due == 0 || creds_is_poisoned(c) || c->refresh)
		return;
	int64_t now = creds_now_s();
	uint64_t delay = due > now ? (uint64_t)(due - now) * 1000u : 0;
	uint64_t backoff = creds_backoff_ms(c);
	if (delay < backoff)
		delay = backoff;
	uint64_t since = uv_now(c->loop) - c->last_background_ms;
	if (c->last_background_ms && since < CREDS_BACKGROUND_MIN_GAP_MS &&
	    delay < CREDS_BACKGROUND_MIN_GAP_MS - since)
		delay = CREDS_BACKGROUND_MIN_GAP_MS - since;
	uv_timer_start(&c->due_timer, creds_on_due, delay, 0);
}

/* -------------------------------------------------------------------------------------------
 * Life cycle */

int creds_new(uv_loop_t *loop, const StorePaths *paths, const CredsOptions *opts, CredsChangedFn on_changed,
	      void *ctx, Creds **out)
{
	Creds *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->paths = *paths;
	c->opts = *opts;
	atomic_init(&c->cancel, false);
	atomic_init(&c->refresh_calls, 0);
	uv_timer_init(loop, &c->retry_timer);
	uv_timer_init(loop, &c->due_timer);
	c->retry_timer.data = c;
	c->due_timer.data = c;
	c->open_timers = 2;
	c->deferred_tail = &c->deferred;
	c->replaces_tail = &c->replaces;
	c->on_changed = NULL; /* the first load is not a change anyone is told of */
	creds_reload(c, true);
	c->on_changed = on_changed;
	c->ctx = ctx;
	*out = c;
	return 0;
}

void creds_set_options(Creds *c, const CredsOptions *opts)
{
	c->opts = *opts;
	creds_schedule(c);
}

static void creds_free_now(Creds *c)
{
	store_snapshot_clear(&c->cache);
	free(c->load_error);
	free(c->poison_identity);
	free(c);
}

static void creds_on_timer_closed(uv_handle_t *handle)
{
	Creds *c = handle->data;
	c->open_timers--;
	creds_maybe_free(c);
}

static void creds_maybe_free(Creds *c)
{
	if (c->is_stopped && c->jobs_running == 0 && c->open_timers == 0)
		creds_free_now(c);
}

void creds_stop(Creds *c)
{
	if (!c || c->is_stopped)
		return;
	c->is_stopped = true;
	atomic_store(&c->cancel, true);
	CredsJob *waiting = c->refresh;
	if (waiting && uv_is_active((uv_handle_t *)&c->retry_timer)) {
		/* Between two tries: no worker holds it, so it ends here. */
		c->refresh = NULL;
		creds_answer(waiting, -ECANCELED, "authd is stopping");
		creds_job_free(waiting);
	}
	/* The replace at the head is on a worker and ends there; the ones behind it never start. */
	CredsJob *queued = c->replaces ? c->replaces->next : NULL;
	if (c->replaces)
		c->replaces->next = NULL;
	while (queued) {
		CredsJob *next = queued->next;
		creds_answer(queued, -ECANCELED, "authd is stopping");
		creds_job_free(queued);
		queued = next;
	}
	creds_run_deferred(c);
	uv_close((uv_handle_t *)&c->retry_timer, creds_on_timer_closed);
	uv_close((uv_handle_t *)&c->due_timer, creds_on_timer_closed);
}
