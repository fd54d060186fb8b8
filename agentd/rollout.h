/* SPDX-License-Identifier: MIT */
/* rollout.h - threads persisted as append-only JSONL rollout files under $CODEX_HOME. */
#ifndef AGENTD_ROLLOUT_H
#define AGENTD_ROLLOUT_H

/*
 * The layout and line format are the reference's (codex 0.169.0), so that either program can
 * list, resume and archive the other's threads:
 *
 *   $CODEX_HOME/sessions/YYYY/MM/DD/rollout-YYYY-MM-DDThh-mm-ss-<thread uuid>.jsonl
 *   $CODEX_HOME/archived_sessions/rollout-YYYY-MM-DDThh-mm-ss-<thread uuid>.jsonl   (flat)
 *   $CODEX_HOME/session_index.jsonl   thread names: {"id","thread_name","updated_at"}, newest wins
 *
 * The date in the directory and the file name is the creation time in *local* time (the
 * reference's now_local()); listing reads it back as if it were UTC, as the reference does, so
 * only its order matters. Each line is one JSON object, written by one write(2):
 *
 *   {"timestamp":"2026-12-02T10:15:44.571Z","ordinal":0,"type":"session_meta","payload":{...}}
 *
 * "timestamp" is UTC with milliseconds; "ordinal" numbers the lines of the file from 0 (a file
 * written before ordinals existed gets none appended either); "type" is one of the reference's
 * item kinds (session_meta, response_item, event_msg, turn_context, compacted, world_state,
 * token_usage_record, ...: this layer does not restrict it); an optional "metadata" object follows
 * "payload" (the reference puts one on response_item lines). The first line is session_meta.
 *
 * Files are 0600 and directories this module creates 0700 (the reference uses 0644/0755: a
 * transcript is the user's private data). Everything here is blocking file I/O and keeps no
 * global state: callers on the event loop keep it short (or run it on a worker thread).
 *
 * Errors are negative errno values; where a function takes @err it also says why in a sentence
 * naming the file or the id. -EINVAL is a bad argument (a hostile thread id, a cursor that is not
 * ours), -ENOENT a thread that is not there.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROLLOUT_SESSIONS_SUBDIR "sessions"
#define ROLLOUT_ARCHIVED_SUBDIR "archived_sessions"
#define ROLLOUT_SESSION_INDEX "session_index.jsonl"

/* The longest line rollout_load() accepts; a longer one is skipped like a malformed one. */
#define ROLLOUT_LINE_MAX_BYTES (64u * 1024 * 1024)
/* Listing reads at most this much of a file's head, and at most this many lines of it (the
 * reference's 10 head records plus 200 more while looking for the first user message). The
 * session_meta line alone is ~22 KiB in 0.169 (it carries the base instructions). */
#define ROLLOUT_HEAD_MAX_BYTES (1024u * 1024)
#define ROLLOUT_HEAD_MAX_LINES 210
/* The reference's bound on the work of one listing: the newest this many files are considered. */
#define ROLLOUT_LIST_MAX_SCAN_FILES 10000
/* thread/list's page size when the client gives none, and the most it may ask for. */
#define ROLLOUT_LIST_DEFAULT_LIMIT 25
#define ROLLOUT_LIST_MAX_LIMIT 100

/* The reference's marker before the user's text in legacy user_message events; the preview is
 * what follows it. */
#define ROLLOUT_USER_MESSAGE_BEGIN "## My request for Codex:"

typedef struct Rollout Rollout; /* one rollout file open for append */

/** rollout_thread_id_is_valid() - @id is a hyphenated UUID (either case): the only ids that name
 * files here, so "../x" or "a/b" never reach a path. */
bool rollout_thread_id_is_valid(const char *id);

/**
 * rollout_create() - a new thread's rollout: create sessions/YYYY/MM/DD (0700, each new directory
 * fsync'd into its parent), the file (0600, O_EXCL) named for @now_ms and @thread_id, and write
 * its session_meta line. @session_meta_payload (borrowed, an object) is written as given, with
 * "id" and "timestamp" filled in when absent; an "id" other than @thread_id is refused.
 * Return: 0 with *@out set (close with rollout_close()); -EINVAL (bad id, relative @codex_home,
 * not an object); -EEXIST (that file already exists); another negative errno from the file
 * system. On failure no file is left behind.
 */
int rollout_create(const char *codex_home, const char *thread_id, int64_t now_ms,
		   json_t *session_meta_payload, Rollout **out, char *err, size_t err_len);

/**
 * rollout_open() - open an existing rollout (a resumed thread) for append. A last line cut short
 * by a crash is cut off (or, when it is whole JSON that only lacks its newline, terminated) so
 * that the lines appended next stay parseable; the repair is logged. Ordinals continue from the
 * last line's.
 * Return: 0 with *@out set; -ENOENT; -EINVAL (not a regular file, or a symlink); negative errno.
 */
int rollout_open(const char *path, Rollout **out, char *err, size_t err_len);

/**
 * rollout_append() - append one line {"timestamp","ordinal","type","payload"} stamped now.
 * @payload is borrowed. The line goes out in one write(2); if the write fails part-way the
 * partial line is truncated away, so a failure never leaves half a line before the next one.
 * Return: 0; -EINVAL (empty @type, @payload NULL or not encodable); -EIO once a failed write
 * could not be undone (every later append fails too); the write's negative errno.
 */
int rollout_append(Rollout *r, const char *type, json_t *payload);

/** rollout_append_with_metadata() - rollout_append() with a "metadata" object after "payload"
 * (NULL: none), as the reference writes on response_item lines. */
int rollout_append_with_metadata(Rollout *r, const char *type, json_t *payload, json_t *metadata);

/** rollout_sync() - fsync the file (and, the first time after rollout_create(), its directory):
 * called at turn boundaries. Return 0 or a negative errno. */
int rollout_sync(Rollout *r);

/** rollout_path() - the file's path (borrowed; valid until rollout_close()). After
 * rollout_archive() the open file still appends to the moved file, but this still names the old
 * place: reopen to follow it. */
const char *rollout_path(const Rollout *r);

/** rollout_close() - close without syncing (call rollout_sync() first to be durable). NULL ok. */
void rollout_close(Rollout *r);

/**
 * rollout_find() - the rollout of @thread_id: under sessions/, then (when @include_archived)
 * archived_sessions/. Matches the id in the file name, case-insensitively; symlinks are skipped.
 * Return: 0 with @path and *@is_archived (may be NULL) set; -ENOENT; -EINVAL (bad id);
 * -ENAMETOOLONG; a negative errno from reading a directory.
 */
int rollout_find(const char *codex_home, const char *thread_id, bool include_archived, char *path,
		 size_t path_len, bool *is_archived);

/* One line of a rollout as rollout_load() hands it over; every pointer is borrowed for the call. */
typedef struct RolloutLine {
	size_t line_no;	       /* 1-based line number in the file */
	const char *timestamp; /* the line's "timestamp", "" if absent */
	int64_t ordinal;       /* the line's "ordinal", -1 if absent */
	const char *type;      /* "session_meta", "response_item", "event_msg", ... */
	json_t *payload;       /* json_incref() it to keep it */
	json_t *metadata;      /* or NULL */
} RolloutLine;

/* Return 0 to go on; anything else stops rollout_load(), which returns it. */
typedef int (*RolloutLineFn)(void *ctx, const RolloutLine *line);

/**
 * rollout_load() - read every line of @path in order and hand each to @fn.
 * Lines that are not a JSON object with a string "type" and a "payload", or that are longer than
 * ROLLOUT_LINE_MAX_BYTES, are skipped wherever they are, and so is an unterminated last line that
 * does not parse (a crash mid-write); blank lines are ignored. Skips are summed up in @warning
 * ("skipped 2 malformed lines of X (first at line 7)", "ignored a truncated last line of X (31
 * bytes)") for the caller to turn into a `warning` notification; @warning is "" when there were
 * none. An unterminated last line that parses is a whole line and is kept.
 * Return: 0; the non-zero value @fn returned; -ENOENT / a negative errno when the file cannot be
 * read; -EINVAL when the first line is not session_meta (or the file is empty), with the reason in
 * @warning.
 */
int rollout_load(const char *path, RolloutLineFn fn, void *ctx, char *warning, size_t warning_len);

/**
 * rollout_archive() - move the thread's file from sessions/YYYY/MM/DD to archived_sessions/
 * (rename(2) without replacing, both directories fsync'd).
 * Return: 0; -ENOENT ("no rollout found for thread id X"); -EEXIST (already in the archive under
 * that name); -EINVAL; a negative errno.
 */
int rollout_archive(const char *codex_home, const char *thread_id, char *err, size_t err_len);

/**
 * rollout_unarchive() - move it back to sessions/YYYY/MM/DD (the date from its file name), set
 * its mtime to now (the reference does: updatedAt becomes the unarchive time), fsync both
 * directories. @new_path (may be NULL) receives the restored path.
 * Return: 0; -ENOENT ("no archived rollout found for thread id X"); -EEXIST; -EINVAL; errno.
 */
int rollout_unarchive(const char *codex_home, const char *thread_id, char *new_path, size_t new_path_len,
		      char *err, size_t err_len);

/**
 * rollout_name_set() - record @name for @thread_id: one line appended to session_index.jsonl
 * (0600, fsync'd), {"id":…,"thread_name":…,"updated_at":"…Z"}; the newest line wins. This is the
 * reference's whole record of a name: no rollout line is written for thread/name/set.
 * Return: 0; -EINVAL (bad id, @name NULL or not UTF-8); a negative errno.
 */
int rollout_name_set(const char *codex_home, const char *thread_id, const char *name, int64_t now_ms);

/** rollout_name_get() - the newest non-blank name recorded for @thread_id (trimmed, as the
 * reference's listing does), in *@name (free()), or NULL when it has none.
 * Return: 0 (also when it has none or there is no index); -EINVAL; -ENOMEM; errno. */
int rollout_name_get(const char *codex_home, const char *thread_id, char **name);

/* ---- listing (thread/list) ------------------------------------------------------------------ */

/* A session_meta "source", classified. The on-disk spellings are the reference core's: "cli",
 * "vscode", "exec", "mcp", {"subagent": "review" | "compact" | {"thread_spawn": {...}} | {"other":
 * "x"}}, {"custom": "x"}, ...; a missing source reads as vscode (the reference's default). */
typedef enum RolloutSource {
	ROLLOUT_SOURCE_UNKNOWN = 0,
	ROLLOUT_SOURCE_CLI,
	ROLLOUT_SOURCE_VSCODE,
	ROLLOUT_SOURCE_EXEC,
	ROLLOUT_SOURCE_MCP,
	ROLLOUT_SOURCE_APP_SERVER,
	ROLLOUT_SOURCE_CUSTOM,
	ROLLOUT_SOURCE_SUBAGENT_REVIEW,
	ROLLOUT_SOURCE_SUBAGENT_COMPACT,
	ROLLOUT_SOURCE_SUBAGENT_THREAD_SPAWN,
	ROLLOUT_SOURCE_SUBAGENT_OTHER,
	ROLLOUT_SOURCE_SUBAGENT_MEMORY, /* memory_consolidation, or a sub-agent kind we do not know */
} RolloutSource;

#define ROLLOUT_SOURCE_BIT(s) (1u << (s))
#define ROLLOUT_SOURCES_INTERACTIVE                                                                          \
	(ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_CLI) | ROLLOUT_SOURCE_BIT(ROLLOUT_SOURCE_VSCODE))

/** rollout_source_classify() - the class of a session_meta "source" value (NULL: missing). */
RolloutSource rollout_source_classify(const json_t *source);

/** rollout_source_kind_mask() - the sources one ThreadListParams.sourceKinds entry admits
 * ("cli", "vscode", "exec", "appServer", "subAgent" (every sub-agent), "subAgentReview",
 * "subAgentCompact", "subAgentThreadSpawn", "subAgentOther", "unknown"), or 0 for a name the
 * schema does not define. */
unsigned rollout_source_kind_mask(const char *kind);

typedef enum RolloutSortKey {
	ROLLOUT_SORT_CREATED_AT = 0, /* the file name's timestamp (second precision), then the id */
	ROLLOUT_SORT_UPDATED_AT,     /* the file's mtime (millisecond precision), then the id */
} RolloutSortKey;

/*
 * ThreadListParams as this layer applies them; the engine maps the wire fields (and handles the
 * ones that are not about files: originators, sectionId, currentAccountOnly, useStateDbOnly, and
 * the recency_at / section_position sort keys).
 */
typedef struct RolloutListQuery {
	size_t limit;		 /* 0: ROLLOUT_LIST_DEFAULT_LIMIT; capped at ROLLOUT_LIST_MAX_LIMIT */
	const char *cursor;	 /* a next/backwards cursor of an earlier page, or NULL */
	RolloutSortKey sort_key; /* default created_at */
	bool is_ascending;	 /* sortDirection "asc"; the default is newest first */
	bool is_archived;	 /* archived: true lists archived_sessions/ instead of sessions/ */
	unsigned source_mask;	 /* OR of rollout_source_kind_mask(); 0: ROLLOUT_SOURCES_INTERACTIVE */
	const char *const *model_providers; /* sessions recorded under one of these; n == 0: any */
	size_t n_model_providers;
	const char *default_provider; /* what a session with no recorded provider counts as */
	bool has_cwd_filter;	      /* cwd given: only sessions whose cwd is one of @cwds (an empty
				       * list matches nothing, as in the reference) */
	const char *const *cwds;
	size_t n_cwds;
	const char *search_term; /* substring of the thread's name (only named threads match, as in the
				  * reference's file-backed listing), or NULL */
	const char *const *excluded_ids; /* dropped before the limit applies */
	size_t n_excluded_ids;
} RolloutListQuery;

/* One listed thread. Strings are owned by the page. */
typedef struct RolloutSummary {
	char *thread_id;	  /* session_meta "id" (lowercase as written) */
	char *path;		  /* absolute path of the rollout */
	json_t *session_meta;	  /* the session_meta payload (a reference owned by the page) */
	char *preview;		  /* the first user message (or a goal objective before it), trimmed */
	char *first_user_message; /* the first user message, or NULL when only a goal gave a preview */
	char *name;		  /* from session_index.jsonl, or NULL */
	char *model_provider;	  /* recorded, else the query's default_provider, else "" */
	char *cwd;		  /* session_meta "cwd", or "" */
	RolloutSource source;
	int64_t created_at;    /* unix seconds: session_meta "timestamp", else the file name's */
	int64_t updated_at;    /* unix seconds: the file's mtime */
	int64_t updated_at_ms; /* the same in milliseconds */
	bool is_archived;
} RolloutSummary;

typedef struct RolloutListPage {
	RolloutSummary *items;
	size_t count;
	char *next_cursor;	/* pass as cursor (same direction) for the next page; NULL at the end */
	char *backwards_cursor; /* pass with the opposite direction for what precedes this page; NULL
				 * when the page is empty */
	size_t scanned_files;	/* rollout files considered */
	bool reached_scan_cap;	/* more than ROLLOUT_LIST_MAX_SCAN_FILES: only the newest were */
} RolloutListPage;

/**
 * rollout_list() - one page of threads, ordered by @q's sort key (newest first unless ascending),
 * ties broken by thread id in the same direction, after the filters. As in the reference, a file
 * whose head (ROLLOUT_HEAD_MAX_LINES / ROLLOUT_HEAD_MAX_BYTES) has no session_meta or no user
 * message yet is not listed.
 *
 * Cursors are the reference's: "<RFC3339 UTC>|<thread id>" naming the last item of the page
 * ("2026-12-02T10:16:25Z|01a23641-…" for created_at, with milliseconds for updated_at); the next
 * page holds what sorts strictly after it, so threads that share a second are neither repeated
 * nor skipped. A bare timestamp (the reference's backwardsCursor spelling, and its file-name
 * spelling "YYYY-MM-DDThh-mm-ss") is accepted too and means "strictly after that instant". The
 * backwards cursor names the first item of the page the same way. next_cursor is set whenever
 * another file remains past the page (it may lead to an empty page when filters reject the rest,
 * as in the reference).
 * Return: 0 with @page filled (free with rollout_list_page_free()); -EINVAL with "invalid cursor:
 * X" in @err; -ENOMEM; a negative errno from reading the directories. No sessions directory is an
 * empty page.
 */
int rollout_list(const char *codex_home, const RolloutListQuery *q, RolloutListPage *page, char *err,
		 size_t err_len);

/** rollout_list_page_free() - release what rollout_list() put in @page and zero it. NULL ok. */
void rollout_list_page_free(RolloutListPage *page);

#endif
