/* SPDX-License-Identifier: MIT */
/* watchd - watches files for clients (inotify, coalescing). */
#include "daemon.h"

static int watchd_setup(Daemon *d, void *ctx)
{
	/* watchd only reads: inotify needs read access to the watched paths, no capability. */
	return daemon_drop_privileges("watchd");
}

static const DaemonSpec watchd_spec = {
	.name = "watchd",
	.summary = "watches files for clients (inotify, coalescing)",
	.setup = watchd_setup,
};

int main(int argc, char **argv)
{
	return daemon_main(&watchd_spec, argc, argv);
}
