/* SPDX-License-Identifier: MIT */
/* fs_methods.c - execd's fs.* internal methods: agentd's typed file requests, run by fsops on a worker
 * thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "execd.h"
#include "fsops.h"
#include "log.h"
#include "paths.h"

/*
 * Bounds of the contract with agentd (agentd-ipc(7), "fs.*"). A result travels in one envelope:
 * fs.read answers at most EXECD_FS_READ_MAX_BYTES of content, fs.write carries at most
 * EXECD_FS_WRITE_MAX_BYTES (room is left for the keys and a path of AGENTD_PATH_MAX).
 */
#define EXECD_FS_READ_MAX_BYTES (ENVELOPE_MAX_BODY_BYTES - 64u)
#define EXECD_FS_WRITE_MAX_BYTES (ENVELOPE_MAX_BODY_BYTES - AGENTD_PATH_MAX - 64u)
#define EXECD_FS_PATH_BODY_BYTES (2u * AGENTD_PATH_MAX + 256u)

/*
 * Operations run one at a time, in arrival order, on libuv's worker threads: a large copy or
 * removal must not stall command output and health answers on the loop, and a client that sends
 * writeFile then readFile must read what it wrote. The queue is bounded in jobs and in the write
 * data it holds; past either bound a request is answered "busy" at once.
 */
#define EXECD_FS_QUEUE_MAX_JOBS 256u
#define EXECD_FS_QUEUE_MAX_BYTES (64u * 1024u * 1024u)

typedef enum FsOp {
	FS_OP_READ,
	FS_OP_WRITE,
	FS_OP_MKDIR,
	FS_OP_STAT,
	FS_OP_READDIR,
	FS_OP_REMOVE,
	FS_OP_COPY,
} FsOp;

typedef struct FsJob {
	struct FsJob *next;
	uv_work_t work;
	Daemon *daemon;
	Envelope req; /* answered when done (its body is not kept) */
	FsOp op;
	char *path;
	char *path2;   /* fs.copy's destination */
	uint8_t *data; /* fs.write's content in, fs.read's out */
	size_t len;
	bool recursive;
	bool force;
	int rc;
	FsMetadata md;
	FsDirEntry *entries;
	size_t count;
	FsError err;
} FsJob;

typedef struct FsQueue {
	FsJob *head, *tail; /* head is running */
	size_t jobs;
	size_t bytes;
	/* Never started; daemon shutdown closes it with every handle, which tells a job finishing
	 * after that not to answer on a link that is gone. */
	uv_timer_t shutdown_sentinel;
	bool has_sentinel;
} FsQueue;

static FsQueue fs_queue;

static int fs_pack_write(void *data, const char *buf, size_t len)
{
	return msgpack_sbuffer_write(data, buf, len);
}

static void fs_job_free(FsJob *job)
{
	if (!job)
		return;
	free(job->path);
	free(job->path2);
	free(job->data);
	fsops_dir_entries_free(job->entries, job->count);
	free(job);
}

/* --- answers --------------------------------------------------------------------------------------- */

/* A failure: status is the negative errno, the body says how agentd should word it. */
static void fs_reply_error(Daemon *d, const Envelope *req, int status, const char *kind, const char *message)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "kind", kind);
	mp_pack_kv_str(&pk, "message", message);
	daemon_reply(d, req, status, sbuf.data, sbuf.size);
	msgpack_sbuffer_destroy(&sbuf);
}

static void fs_pack_result(FsJob *job, msgpack_packer *pk)
{
	switch (job->op) {
	case FS_OP_READ:
		msgpack_pack_map(pk, 1);
		mp_pack_cstr(pk, "data");
		msgpack_pack_bin(pk, job->len);
		msgpack_pack_bin_body(pk, job->data, job->len);
		break;
	case FS_OP_STAT:
		msgpack_pack_map(pk, 6);
		mp_pack_kv_bool(pk, "isDirectory", job->md.is_directory);
		mp_pack_kv_bool(pk, "isFile", job->md.is_file);
		mp_pack_kv_bool(pk, "isSymlink", job->md.is_symlink);
		mp_pack_cstr(pk, "createdAtMs");
		msgpack_pack_int64(pk, job->md.created_at_ms);
		mp_pack_cstr(pk, "modifiedAtMs");
		msgpack_pack_int64(pk, job->md.modified_at_ms);
		mp_pack_kv_u64(pk, "size", job->md.size);
		break;
	case FS_OP_READDIR:
		/* [name (bin: raw bytes), isDirectory, isFile] per entry: compact, so big directories fit. */
		msgpack_pack_map(pk, 1);
		mp_pack_cstr(pk, "entries");
		msgpack_pack_array(pk, (uint32_t)job->count);
		for (size_t i = 0; i < job->count; i++) {
			size_t n = strlen(job->entries[i].file_name);
			msgpack_pack_array(pk, 3);
			msgpack_pack_bin(pk, n);
			msgpack_pack_bin_body(pk, job->entries[i].file_name, n);
			if (job->entries[i].is_directory)
				msgpack_pack_true(pk);
			else
				msgpack_pack_false(pk);
			if (job->entries[i].is_file)
				msgpack_pack_true(pk);
			else
				msgpack_pack_false(pk);
		}
		break;
	default:
		msgpack_pack_map(pk, 0);
		break;
	}
}

static void fs_reply(FsJob *job)
{
	if (job->rc < 0) {
		fs_reply_error(job->daemon, &job->req, job->rc, job->err.is_refusal ? "refused" : "os",
			       job->err.message);
		return;
	}
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, fs_pack_write);
	fs_pack_result(job, &pk);
	if (sbuf.size > ENVELOPE_MAX_BODY_BYTES) { /* only a huge listing gets here */
		char message[AGENTD_PATH_MAX + 128];
		snprintf(message, sizeof(message),
			 "directory `%s` has too many entries to list in one response", job->path);
		fs_reply_error(job->daemon, &job->req, -E2BIG, "refused", message);
	} else {
		daemon_reply(job->daemon, &job->req, 0, sbuf.data, sbuf.size);
	}
	msgpack_sbuffer_destroy(&sbuf);
}

/* --- the queue ------------------------------------------------------------------------------------------ */

/* On a worker thread: only fsops and the job's own memory. */
static void fs_job_run(uv_work_t *work)
{
	FsJob *job = work->data;
	job->err.is_refusal = false;
	job->err.message[0] = '\0';
	switch (job->op) {
	case FS_OP_READ: {
		uint8_t *data = NULL;
		job->rc = fsops_read_file(NULL, job->path, EXECD_FS_READ_MAX_BYTES, &data, &job->len,
					  &job->err);
		job->data = data;
		break;
	}
	case FS_OP_WRITE:
		job->rc = fsops_write_file(NULL, job->path, job->data, job->len, &job->err);
		break;
	case FS_OP_MKDIR:
		job->rc = fsops_create_directory(NULL, job->path, job->recursive, &job->err);
		break;
	case FS_OP_STAT:
		job->rc = fsops_get_metadata(NULL, job->path, &job->md, &job->err);
		break;
	case FS_OP_READDIR:
		job->rc = fsops_read_directory(NULL, job->path, &job->entries, &job->count, &job->err);
		break;
	case FS_OP_REMOVE:
		job->rc = fsops_remove(NULL, job->path, job->recursive, job->force, &job->err);
		break;
	case FS_OP_COPY:
		job->rc = fsops_copy(NULL, job->path, job->path2, job->recursive, &job->err);
		break;
	}
}

static void fs_job_done(uv_work_t *work, int status);

static void fs_queue_pop(FsQueue *q);

static void fs_queue_start_head(FsQueue *q)
{
	while (q->head) {
		FsJob *job = q->head;
		job->work.data = job;
		if (uv_queue_work(daemon_loop(job->daemon), &job->work, fs_job_run, fs_job_done) == 0)
			return;
		/* No worker thread to be had: do it here rather than not at all. */
		log_warn("fs: no worker thread, running %s on the loop", job->req.method);
		fs_job_run(&job->work);
		fs_reply(job);
		fs_queue_pop(q);
	}
}

static void fs_queue_pop(FsQueue *q)
{
	FsJob *job = q->head;
	q->head = job->next;
	if (!q->head)
		q->tail = NULL;
	q->jobs--;
	q->bytes -= job->op == FS_OP_WRITE ? job->len : 0;
	fs_job_free(job);
}

static void fs_job_done(uv_work_t *work, int status)
{
	FsJob *job = work->data;
	FsQueue *q = &fs_queue;
	if (uv_is_closing((uv_handle_t *)&q->shutdown_sentinel)) {
		while (q->head) /* execd is stopping: agentd's link is gone */
			fs_queue_pop(q);
		return;
	}
	if (status == 0)
		fs_reply(job);
	else
		fs_reply_error(job->daemon, &job->req, -ECANCELED, "os", "the file operation was cancelled");
	fs_queue_pop(q);
	fs_queue_start_head(q);
}

static int fs_enqueue(Daemon *d, const Envelope *req, FsJob *job)
{
	FsQueue *q = &fs_queue;
	size_t bytes = job->op == FS_OP_WRITE ? job->len : 0;
	if (q->jobs >= EXECD_FS_QUEUE_MAX_JOBS || q->bytes + bytes > EXECD_FS_QUEUE_MAX_BYTES) {
		fs_reply_error(d, req, -EBUSY, "busy", "execd has too many file operations in progress");
		fs_job_free(job);
		return 0;
	}
	if (!q->has_sentinel) {
		if (uv_timer_init(daemon_loop(d), &q->shutdown_sentinel) < 0) {
			fs_job_free(job);
			return -ENOMEM;
		}
		q->has_sentinel = true;
	}
	job->daemon = d;
	job->req = *req;
	job->req.body = NULL;
	job->req.body_len = 0;
	q->jobs++;
	q->bytes += bytes;
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	if (q->head == job)
		fs_queue_start_head(q);
	return 0;
}

/* --- the methods ---------------------------------------------------------------------------------------- */

/* A copy of absolute path @key. agentd checked it; anything else is a sibling's bug: -EINVAL. */
static int fs_get_path(const msgpack_object *params, const char *key, char **out)
{
	const char *text;
	size_t len;
	if (mp_get_str(params, key, AGENTD_PATH_MAX - 1, &text, &len) < 0 || len == 0 || text[0] != '/' ||
	    memchr(text, '\0', len))
		return -EINVAL;
	*out = strndup(text, len);
	return *out ? 0 : -ENOMEM;
}

/* An optional boolean (absent: @fallback). */
static int fs_get_flag(const msgpack_object *params, const char *key, bool fallback, bool *out)
{
	*out = fallback;
	if (!mp_map_find(params, key))
		return 0;
	return mp_get_bool(params, key, out) < 0 ? -EINVAL : 0;
}

static int fs_start(Daemon *d, const Envelope *req, const msgpack_object *params, FsOp op)
{
	FsJob *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->op = op;
	int rc = fs_get_path(params, op == FS_OP_COPY ? "sourcePath" : "path", &job->path);
	if (rc == 0 && op == FS_OP_COPY)
		rc = fs_get_path(params, "destinationPath", &job->path2);
	if (rc == 0 && (op == FS_OP_MKDIR || op == FS_OP_REMOVE || op == FS_OP_COPY))
		rc = fs_get_flag(params, "recursive", op != FS_OP_COPY, &job->recursive);
	if (rc == 0 && op == FS_OP_REMOVE)
		rc = fs_get_flag(params, "force", true, &job->force);
	if (rc == 0 && op == FS_OP_WRITE) {
		const msgpack_object *data = mp_map_find(params, "data");
		if (!data || data->type != MSGPACK_OBJECT_BIN ||
		    data->via.bin.size > EXECD_FS_WRITE_MAX_BYTES) {
			rc = -EINVAL;
		} else {
			job->len = data->via.bin.size;
			job->data = malloc(job->len ? job->len : 1);
			if (!job->data)
				rc = -ENOMEM;
			else if (job->len)
				memcpy(job->data, data->via.bin.ptr, job->len);
		}
	}
	if (rc < 0) {
		fs_job_free(job);
		return rc;
	}
	return fs_enqueue(d, req, job);
}

/* fs.read {path} -> {data: bin}; files over EXECD_FS_READ_MAX_BYTES are refused. */
static int fs_read(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_READ);
}

/* fs.write {path, data: bin} -> {} */
static int fs_write(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_WRITE);
}

/* fs.mkdir {path, recursive?=true} -> {} */
static int fs_mkdir(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_MKDIR);
}

/* fs.stat {path} -> {isDirectory, isFile, isSymlink, createdAtMs, modifiedAtMs, size} */
static int fs_stat(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_STAT);
}

/* fs.readdir {path} -> {entries: [[name: bin, isDirectory, isFile], ...]} */
static int fs_readdir(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_READDIR);
}

/* fs.remove {path, recursive?=true, force?=true} -> {} */
static int fs_remove(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_REMOVE);
}

/* fs.copy {sourcePath, destinationPath, recursive?=false} -> {} */
static int fs_copy(Daemon *d, const Envelope *req, const msgpack_object *params, void *ctx)
{
	(void)ctx;
	return fs_start(d, req, params, FS_OP_COPY);
}

const DaemonMethod execd_fs_methods[] = {
	{ "fs.read", EXECD_FS_PATH_BODY_BYTES, fs_read },
	{ "fs.write", ENVELOPE_MAX_BODY_BYTES, fs_write },
	{ "fs.mkdir", EXECD_FS_PATH_BODY_BYTES, fs_mkdir },
	{ "fs.stat", EXECD_FS_PATH_BODY_BYTES, fs_stat },
	{ "fs.readdir", EXECD_FS_PATH_BODY_BYTES, fs_readdir },
	{ "fs.remove", EXECD_FS_PATH_BODY_BYTES, fs_remove },
	{ "fs.copy", EXECD_FS_PATH_BODY_BYTES + AGENTD_PATH_MAX, fs_copy },
};
const size_t execd_fs_method_count = sizeof(execd_fs_methods) / sizeof(execd_fs_methods[0]);
