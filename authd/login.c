/* SPDX-License-Identifier: MIT */
/* login.c - the ChatGPT sign-in flows. (Being written: every flow answers "not available" for now.) */
#include "login.h"

#include <errno.h>
#include <stdlib.h>

struct Login {
	Creds *creds;
};

int login_new(uv_loop_t *loop, Creds *creds, const LoginOptions *opts, LoginCompletedFn on_completed,
	      void *ctx, Login **out)
{
	Login *login = calloc(1, sizeof(*login));
	if (!login)
		return -ENOMEM;
	login->creds = creds;
	*out = login;
	return 0;
}

void login_set_options(Login *login, const LoginOptions *opts)
{
}

void login_start(Login *login, const char *type, const char *originator, LoginStartedFn started, void *ctx)
{
	started(ctx, -ENOSYS, NULL, "ChatGPT login is not available yet");
}

bool login_cancel(Login *login, const char *login_id)
{
	return false;
}

void login_cancel_active(Login *login)
{
}

void login_revoke(Login *login, const AuthSnapshot *snap)
{
}

void login_stop(Login *login)
{
	free(login);
}
