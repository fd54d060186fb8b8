/* SPDX-License-Identifier: MIT */
/* server.c - `execd --listen URL`: the standalone exec-server (in progress). */
#include <stdio.h>

#include "execd.h"

int exec_server_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "execd: --listen is not available in this build\n");
	return 2;
}
