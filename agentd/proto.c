/* SPDX-License-Identifier: MIT */
/* proto.c - the client method table and the notifications agentd accepts. */
#include "proto.h"

#include <string.h>

#include "log.h"

/*
 * The allow-list. Methods of later features join this table as they are built; a method
 * not listed is answered with -32601, never forwarded.
 */
static const ProtoMethod proto_methods[] = {
	{ "initialize", true, PROTO_PARAMS_REQUIRED, proto_initialize },
	{ "agentd/health", false, PROTO_PARAMS_OPTIONAL, proto_health },
	{ "fs/watch", false, PROTO_PARAMS_REQUIRED, proto_fs_watch },
	{ "fs/unwatch", false, PROTO_PARAMS_REQUIRED, proto_fs_unwatch },
	{ "fs/readFile", false, PROTO_PARAMS_REQUIRED, proto_fs_read_file },
	{ "fs/writeFile", false, PROTO_PARAMS_REQUIRED, proto_fs_write_file },
	{ "fs/createDirectory", false, PROTO_PARAMS_REQUIRED, proto_fs_create_directory },
	{ "fs/getMetadata", false, PROTO_PARAMS_REQUIRED, proto_fs_get_metadata },
	{ "fs/readDirectory", false, PROTO_PARAMS_REQUIRED, proto_fs_read_directory },
	{ "fs/remove", false, PROTO_PARAMS_REQUIRED, proto_fs_remove },
	{ "fs/copy", false, PROTO_PARAMS_REQUIRED, proto_fs_copy },
	{ "command/exec", false, PROTO_PARAMS_REQUIRED, proto_command_exec },
	{ "command/exec/write", false, PROTO_PARAMS_REQUIRED, proto_command_exec_write },
	{ "command/exec/resize", false, PROTO_PARAMS_REQUIRED, proto_command_exec_resize },
	{ "command/exec/terminate", false, PROTO_PARAMS_REQUIRED, proto_command_exec_terminate },
	{ "account/read", false, PROTO_PARAMS_REQUIRED, proto_account_read },
	{ "getAuthStatus", false, PROTO_PARAMS_OPTIONAL, proto_get_auth_status },
	{ "account/login/start", false, PROTO_PARAMS_REQUIRED, proto_account_login_start },
	{ "account/login/cancel", false, PROTO_PARAMS_REQUIRED, proto_account_login_cancel },
	{ "account/logout", false, PROTO_PARAMS_OPTIONAL, proto_account_logout },
	{ "model/list", false, PROTO_PARAMS_OPTIONAL, proto_model_list },
	{ "collaborationMode/list", false, PROTO_PARAMS_OPTIONAL, proto_collaboration_mode_list },
	{ "skills/list", false, PROTO_PARAMS_OPTIONAL, proto_skills_list },
	{ "hooks/list", false, PROTO_PARAMS_OPTIONAL, proto_hooks_list },
	{ "plugin/installed", false, PROTO_PARAMS_OPTIONAL, proto_plugin_installed },
	{ "account/bedrock/checkGovCloudRequirements", false, PROTO_PARAMS_OPTIONAL, proto_bedrock_govcloud },
	{ "config/read", false, PROTO_PARAMS_OPTIONAL, proto_config_read },
	{ "configRequirements/read", false, PROTO_PARAMS_OPTIONAL, proto_config_requirements_read },
	{ "thread/readState/update", false, PROTO_PARAMS_REQUIRED, proto_thread_read_state_update },
	{ "thread/start", false, PROTO_PARAMS_OPTIONAL, proto_thread_start },
	{ "thread/resume", false, PROTO_PARAMS_REQUIRED, proto_thread_resume },
	{ "thread/read", false, PROTO_PARAMS_REQUIRED, proto_thread_read },
	{ "thread/list", false, PROTO_PARAMS_OPTIONAL, proto_thread_list },
	{ "thread/loaded/list", false, PROTO_PARAMS_OPTIONAL, proto_thread_loaded_list },
	{ "thread/turns/list", false, PROTO_PARAMS_REQUIRED, proto_thread_turns_list },
	{ "thread/archive", false, PROTO_PARAMS_REQUIRED, proto_thread_archive },
	{ "thread/unarchive", false, PROTO_PARAMS_REQUIRED, proto_thread_unarchive },
	{ "thread/name/set", false, PROTO_PARAMS_REQUIRED, proto_thread_name_set },
	{ "thread/unsubscribe", false, PROTO_PARAMS_REQUIRED, proto_thread_unsubscribe },
	{ "thread/shellCommand", false, PROTO_PARAMS_REQUIRED, proto_thread_shell_command },
	{ "turn/start", false, PROTO_PARAMS_REQUIRED, proto_turn_start },
	{ "turn/steer", false, PROTO_PARAMS_REQUIRED, proto_turn_steer },
	{ "turn/interrupt", false, PROTO_PARAMS_REQUIRED, proto_turn_interrupt },
};

const ProtoMethod *proto_find_method(const char *name)
{
	for (size_t i = 0; i < sizeof(proto_methods) / sizeof(proto_methods[0]); i++) {
		if (strcmp(proto_methods[i].name, name) == 0)
			return &proto_methods[i];
	}
	return NULL;
}

void proto_on_notification(Conn *conn, const char *method, json_t *params)
{
	if (strcmp(method, "initialized") == 0) {
		log_debug("connection %llu: client initialized", (unsigned long long)conn->id);
		return;
	}
	/* JSON-RPC forbids answering a notification, so an unknown one can only be logged. */
	log_debug("connection %llu: ignoring unknown notification %s", (unsigned long long)conn->id, method);
}
