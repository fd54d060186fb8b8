/* SPDX-License-Identifier: MIT */
/* sandboxd - probes the host and compiles sandbox policies into launch plans. */
#include "daemon.h"

static int sandboxd_setup(Daemon *d, void *ctx)
{
	/*
	 * Namespace set-up for the built-in launcher needs, when we run as root: CAP_SYS_ADMIN
	 * (mount, pivot_root, unshare), CAP_SETUID/CAP_SETGID (uid/gid maps), CAP_SYS_CHROOT and
	 * CAP_SETPCAP (dropping the bounding set inside the sandbox). Everything else goes.
	 * Run unprivileged, the kept set is empty anyway (user namespaces grant the rest).
	 * no_new_privs comes with the seccomp allow-list installed after this.
	 */
	static const cap_value_t keep[] = { CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID, CAP_SYS_CHROOT,
					    CAP_SETPCAP };
	return daemon_keep_capabilities("sandboxd", keep, sizeof(keep) / sizeof(keep[0]));
}

static const DaemonSpec sandboxd_spec = {
	.name = "sandboxd",
	.summary = "probes the host and compiles sandbox policies into launch plans",
	.setup = sandboxd_setup,
};

int main(int argc, char **argv)
{
	return daemon_main(&sandboxd_spec, argc, argv);
}
