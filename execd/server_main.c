/* SPDX-License-Identifier: MIT */
/* server_main.c - execd-server: the exec-server that `execd --listen URL` runs (see execd(8)). */
#include "execd.h"

int main(int argc, char **argv)
{
	return exec_server_main(argc, argv);
}
