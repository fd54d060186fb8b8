/* SPDX-License-Identifier: MIT */
/* execd - runs commands for agentd's clients (process table, pipes, PTYs). */
#include "daemon.h"

static int execd_setup(Daemon *d, void *ctx)
{
	/* execd spawns commands as the service user; it needs no capability and must never gain one (a
	 * command it runs inherits no_new_privs too). */
	return daemon_drop_privileges("execd");
}

static const DaemonSpec execd_spec = {
	.name = "execd",
	.summary = "runs commands for agentd's clients (process table, pipes, PTYs)",
	.setup = execd_setup,
};

int main(int argc, char **argv)
{
	return daemon_main(&execd_spec, argc, argv);
}
