/* SPDX-License-Identifier: MIT */
/* http.h - one blocking HTTP request with libcurl (loaded on first use), for authd's worker threads. */
#ifndef AUTHD_HTTP_H
#define AUTHD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Largest response body kept; the issuer's answers are a few kilobytes. */
#define HTTP_MAX_RESPONSE_BYTES (1024u * 1024u)

typedef struct HttpResponse {
	long status;	 /* the HTTP status, 0 when none arrived */
	char *body;	 /* NUL-terminated, malloc'd (may be empty) */
	size_t body_len;
	char error[256]; /* why no response arrived */
} HttpResponse;

/**
 * http_prepare() - load libcurl now, on the calling thread (once per process). Call it on the loop
 * thread before a worker makes the first request: OpenSSL's per-thread state set up by
 * curl_global_init() on a pool thread would outlive every cleanup.
 * Return: 0, or -EIO (http_load_error() says why; http_request() then fails with it too).
 */
int http_prepare(void);

/** http_load_error() - why libcurl could not be loaded (empty while it loads or is loaded). */
const char *http_load_error(void);

/**
 * http_request() - @method @url with @body (may be NULL for none) of @content_type, waiting at
 * most @timeout_ms; *@cancel turning true aborts it within a few milliseconds.
 * Return: 0 when a response arrived (any status; http_response_clear() it), -ECANCELED,
 * -ETIMEDOUT, or -EIO with the transport's reason in @out->error.
 */
int http_request(const char *method, const char *url, const char *content_type, const char *body,
		 size_t body_len, int timeout_ms, const volatile bool *cancel, HttpResponse *out);

/** http_response_clear() - free a response's body. NULL-safe. */
void http_response_clear(HttpResponse *resp);

/** http_form_escape() - @text percent-encoded for a form body or query; malloc'd, or NULL. */
char *http_form_escape(const char *text);

#endif
