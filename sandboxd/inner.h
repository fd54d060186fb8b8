/* SPDX-License-Identifier: MIT */
/* inner.h - the in-sandbox stage: no_new_privs, no capabilities, the seccomp filter, exec. */
#ifndef SANDBOXD_INNER_H
#define SANDBOXD_INNER_H

#include <stdbool.h>

/**
 * inner_restrict() - make this process what a sandboxed command may be: no_new_privs, every
 * capability dropped (bounding and ambient sets too), and the seccomp filter: ptrace,
 * process_vm_readv/writev and io_uring always refused; with @is_network_restricted also every
 * socket call except creating AF_UNIX sockets. Return: 0 or a negative errno.
 */
int inner_restrict(bool is_network_restricted);

/**
 * inner_stage_main() - "agentd-sandbox --seccomp restricted|base -- CMD ARGS...": restrict,
 * then exec CMD with its own argv0. Return: only on failure, the exit status (126/127 as a shell).
 */
int inner_stage_main(int argc, char **argv);

#endif
