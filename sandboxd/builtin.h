/* SPDX-License-Identifier: MIT */
/* builtin.h - sandboxd's own launcher: namespaces, mounts and pivot_root without bwrap. */
#ifndef SANDBOXD_BUILTIN_H
#define SANDBOXD_BUILTIN_H

/**
 * builtin_launch_main() - "agentd-sandbox --launch [--unshare-net] OPS... --chdir DIR
 * --seccomp MODE -- COMMAND...", OPS in bwrap's spelling as plan_render() writes them.
 * Return: the command's exit status (128+N for signal N), 126 when the sandbox could not be
 * built, 2 for bad arguments.
 */
int builtin_launch_main(int argc, char **argv);

#endif
