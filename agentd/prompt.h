/* SPDX-License-Identifier: MIT */
/* prompt.h - the sampling request: the body (instructions, history, tools) and its headers. */
#ifndef AGENTD_PROMPT_H
#define AGENTD_PROMPT_H

#include <stddef.h>

#include "thread.h"
#include "turn.h"

typedef struct PromptHeaders {
	char **lines; /* "Name: value" */
	size_t count;
} PromptHeaders;

/**
 * prompt_add_context() - on a thread's first turn, the developer message (sandbox and approval
 * rules, the thread's developer instructions) and the user message with the environment
 * context go into the history, where every later request finds them.
 */
void prompt_add_context(Thread *thread, Turn *turn);

/** prompt_build_request() - the JSON body of the turn's next request (malloc'd), or NULL. */
char *prompt_build_request(const Thread *thread, const Turn *turn);

/** prompt_build_headers() - the request's headers, the bearer token included. Return 0 or -ENOMEM. */
int prompt_build_headers(const Thread *thread, const Turn *turn, PromptHeaders *out);
/** prompt_headers_free() - wipe (they hold the token) and free. */
void prompt_headers_free(PromptHeaders *h);

/** prompt_sandbox_mode() - "read-only", "workspace-write" or "danger-full-access" for @sandbox. */
const char *prompt_sandbox_mode(const json_t *sandbox);

#endif
