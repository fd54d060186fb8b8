/* SPDX-License-Identifier: MIT */
/* exec_ipc.c - plan and exec.start bodies, packed once for both kinds of run. */
#include "exec_ipc.h"

#include "mp.h"

static void exec_ipc_pack_strings(msgpack_packer *pk, const char *key, json_t *array)
{
	size_t i;
	json_t *item;
	mp_pack_cstr(pk, key);
	msgpack_pack_array(pk, (uint32_t)json_array_size(array));
	json_array_foreach (array, i, item)
		mp_pack_cstr(pk, json_string_value(item));
}

void exec_ipc_pack_plan(msgpack_packer *pk, const ExecPlanBody *b)
{
	msgpack_pack_map(pk, 2 + (b->policy_text != NULL) + (b->profile != NULL) + (b->tmpdir != NULL) +
				     (b->workspace != NULL));
	mp_pack_kv_str(pk, "cwd", b->cwd);
	exec_ipc_pack_strings(pk, "command", b->command);
	if (b->policy_text)
		mp_pack_kv_str(pk, "policy", b->policy_text);
	if (b->profile)
		mp_pack_kv_str(pk, "profile", b->profile);
	if (b->tmpdir)
		mp_pack_kv_str(pk, "tmpdir", b->tmpdir);
	if (b->workspace)
		mp_pack_kv_str(pk, "workspace", b->workspace);
}

void exec_ipc_pack_start(msgpack_packer *pk, const ExecStartBody *b)
{
	msgpack_pack_map(pk, 6 + (b->timeout_ms >= 0) + (b->cap_bytes != UINT64_MAX) + 2 * b->tty);
	mp_pack_kv_u64(pk, "execId", b->exec_id);
	mp_pack_cstr(pk, "argv");
	msgpack_pack_object(pk, *b->argv);
	mp_pack_kv_str(pk, "cwd", b->cwd);
	exec_ipc_pack_strings(pk, "env", b->env);
	mp_pack_kv_bool(pk, "tty", b->tty);
	mp_pack_kv_bool(pk, "pipeStdin", b->pipe_stdin);
	if (b->timeout_ms >= 0)
		mp_pack_kv_u64(pk, "timeoutMs", (uint64_t)b->timeout_ms);
	if (b->cap_bytes != UINT64_MAX)
		mp_pack_kv_u64(pk, "capBytes", b->cap_bytes);
	if (b->tty) {
		mp_pack_kv_u64(pk, "rows", b->rows);
		mp_pack_kv_u64(pk, "cols", b->cols);
	}
}
