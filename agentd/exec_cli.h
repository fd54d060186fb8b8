/* SPDX-License-Identifier: MIT */
/* exec_cli.h - `agentd exec`: one prompt, one turn, over a child agentd's app-server protocol. */
#ifndef AGENTD_EXEC_CLI_H
#define AGENTD_EXEC_CLI_H

/* The exit statuses of `agentd exec` (agentd(8), EXEC MODE). */
enum {
	EXEC_STATUS_COMPLETED = 0, /* the turn completed */
	EXEC_STATUS_FAILED = 1,	   /* failed, interrupted, refused, or agentd gone before the end */
	EXEC_STATUS_USAGE = 2,	   /* a bad flag, an empty prompt */
	EXEC_STATUS_DENIED = 3,	   /* completed, but a command or patch was denied */
};

/**
 * exec_cli_main() - run `agentd exec [options] [PROMPT | -]`.
 * @argc: agentd's own argument count.
 * @argv: agentd's own arguments: argv[0] the program, argv[1] "exec", then the options.
 *
 * Spawns `agentd --listen stdio://` (this binary) and is its JSON-RPC client for one turn:
 * initialize, thread/start, turn/start, notifications up to turn/completed, then closes the
 * child's input and reaps it. Approvals are declined: nobody is there to give them.
 * Return: one of the EXEC_STATUS_* values, the process's exit status.
 */
int exec_cli_main(int argc, char **argv);

#endif
