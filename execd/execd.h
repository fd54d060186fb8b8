/* SPDX-License-Identifier: MIT */
/* execd.h - execd's state shared by its broker methods (main.c) and its file methods (fs_methods.c). */
#ifndef EXECD_EXECD_H
#define EXECD_EXECD_H

#include <sys/types.h>

#include "daemon.h"
#include "proc.h"

/* Largest stdin piece in one exec.write; agentd splits bigger client writes. */
#define EXECD_MAX_WRITE_BYTES (1024u * 1024u)

typedef struct ExecEntry ExecEntry;

typedef struct Execd {
	Daemon *daemon;
	ProcTable *procs;
	int spawner_sock;
	pid_t spawner_pid;
	ExecEntry *entries; /* command/exec runs of agentd's clients */
} Execd;

/* The fs.* rows of execd's allow-list (fs_methods.c). */
extern const DaemonMethod execd_fs_methods[];
extern const size_t execd_fs_method_count;

/** exec_server_main() - `execd --listen URL`: the standalone exec-server (server.c). */
int exec_server_main(int argc, char **argv);

#endif
