/* SPDX-License-Identifier: MIT */
/* authd - holds the credentials (auth.json, token refresh, login flows). */
#include "daemon.h"

static int authd_setup(Daemon *d, void *ctx)
{
	/* authd reads and writes files owned by the service user and talks to the issuer over the network:
	 * neither needs a capability. */
	return daemon_drop_privileges("authd");
}

static const DaemonSpec authd_spec = {
	.name = "authd",
	.summary = "holds the credentials (auth.json, token refresh, login flows)",
	.setup = authd_setup,
};

int main(int argc, char **argv)
{
	return daemon_main(&authd_spec, argc, argv);
}
