/* SPDX-License-Identifier: MIT */
/*
 * http.c - libcurl easy requests with a size bound, a deadline and a cancel flag.
 *
 * libcurl is loaded on the first request, not at exec: with its dependencies (an OpenSSL, a
 * GnuTLS, Kerberos, LDAP, ssh, ... 30 libraries) it would triple the resident size of an authd
 * that, with a fresh token, sends nothing for hours. dlopen() works under authd's seccomp filter
 * (read-only opens and mmap are allowed); curl_global_init() is thread-safe since 7.84.
 */
#include "http.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

/* The libcurl entry points used, resolved by http_load(). */
typedef struct CurlApi {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
	CURLcode (*easy_perform)(CURL *curl);
	CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *curl);
	const char *(*easy_strerror)(CURLcode code);
	char *(*easy_escape)(CURL *curl, const char *text, int len);
	void (*free)(void *p);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *text);
	void (*slist_free_all)(struct curl_slist *list);
} CurlApi;

static CurlApi curl_api;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char curl_load_error[200];

static bool http_resolve(void *lib, const char *name, void *slot)
{
	void *sym = dlsym(lib, name);
	if (!sym) {
		snprintf(curl_load_error, sizeof(curl_load_error), "libcurl has no %s", name);
		return false;
	}
	memcpy(slot, &sym, sizeof(sym));
	return true;
}

static void http_load_once(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(curl_load_error, sizeof(curl_load_error), "cannot load libcurl: %s", dlerror());
		return;
	}
	CurlApi api;
	bool ok = http_resolve(lib, "curl_global_init", &api.global_init) &&
		  http_resolve(lib, "curl_easy_init", &api.easy_init) &&
		  http_resolve(lib, "curl_easy_setopt", &api.easy_setopt) &&
		  http_resolve(lib, "curl_easy_perform", &api.easy_perform) &&
		  http_resolve(lib, "curl_easy_getinfo", &api.easy_getinfo) &&
		  http_resolve(lib, "curl_easy_cleanup", &api.easy_cleanup) &&
		  http_resolve(lib, "curl_easy_strerror", &api.easy_strerror) &&
		  http_resolve(lib, "curl_easy_escape", &api.easy_escape) &&
		  http_resolve(lib, "curl_free", &api.free) &&
		  http_resolve(lib, "curl_slist_append", &api.slist_append) &&
		  http_resolve(lib, "curl_slist_free_all", &api.slist_free_all);
	if (ok && api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(curl_load_error, sizeof(curl_load_error), "curl_global_init failed");
		ok = false;
	}
	if (ok)
		curl_api = api; /* kept loaded for the life of the process */
	else
		dlclose(lib);
}

static int http_load(void)
{
	pthread_once(&curl_once, http_load_once);
	return curl_api.easy_init ? 0 : -EIO;
}

int http_prepare(void)
{
	return http_load();
}

const char *http_load_error(void)
{
	return curl_load_error;
}

typedef struct HttpSink {
	char *data;
	size_t len;
	bool is_truncated;
} HttpSink;

static size_t http_on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	HttpSink *sink = userdata;
	size_t n = size * nmemb;
	if (sink->len + n > HTTP_MAX_RESPONSE_BYTES) {
		sink->is_truncated = true;
		return 0; /* aborts the transfer */
	}
	char *grown = realloc(sink->data, sink->len + n + 1);
	if (!grown)
		return 0;
	memcpy(grown + sink->len, ptr, n);
	sink->data = grown;
	sink->len += n;
	sink->data[sink->len] = '\0';
	return n;
}

static int http_on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			    curl_off_t ulnow)
{
	const volatile bool *cancel = clientp;
	return cancel && *cancel ? 1 : 0;
}

static int http_fail(CURLcode code, const char *detail, const volatile bool *cancel, HttpResponse *out)
{
	if (code == CURLE_ABORTED_BY_CALLBACK && cancel && *cancel)
		return -ECANCELED;
	snprintf(out->error, sizeof(out->error), "%s", detail[0] ? detail : curl_api.easy_strerror(code));
	return code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
}

int http_request(const char *method, const char *url, const char *content_type, const char *body,
		 size_t body_len, int timeout_ms, const volatile bool *cancel, HttpResponse *out)
{
	memset(out, 0, sizeof(*out));
	if (http_load() < 0) {
		snprintf(out->error, sizeof(out->error), "%s", curl_load_error);
		return -EIO;
	}
	CURL *curl = curl_api.easy_init();
	if (!curl) {
		snprintf(out->error, sizeof(out->error), "cannot start an HTTP request");
		return -EIO;
	}
	char detail[CURL_ERROR_SIZE] = "";
	char type_header[128];
	struct curl_slist *headers = NULL;
	HttpSink sink = { 0 };
	if (content_type) {
		snprintf(type_header, sizeof(type_header), "Content-Type: %s", content_type);
		headers = curl_api.slist_append(headers, type_header);
	}
	headers = curl_api.slist_append(headers, "Accept: application/json");
	curl_api.easy_setopt(curl, CURLOPT_URL, url);
	curl_api.easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_api.easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_api.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_api.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_api.easy_setopt(curl, CURLOPT_USERAGENT, "agentd-authd/" PACKAGE_VERSION);
	curl_api.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_api.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_api.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* worker threads: no SIGALRM for DNS timeouts */
	curl_api.easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_api.easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_data);
	curl_api.easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	curl_api.easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, http_on_progress);
	curl_api.easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)cancel);
	curl_api.easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_api.easy_setopt(curl, CURLOPT_ERRORBUFFER, detail);
	CURLcode code = curl_api.easy_perform(curl);
	int rc = 0;
	if (code == CURLE_OK) {
		curl_api.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
		out->body = sink.data ? sink.data : strdup("");
		out->body_len = sink.len;
		sink.data = NULL;
		if (!out->body)
			rc = -ENOMEM;
	} else if (sink.is_truncated) {
		snprintf(out->error, sizeof(out->error), "response larger than %u bytes", HTTP_MAX_RESPONSE_BYTES);
		rc = -EIO;
	} else {
		rc = http_fail(code, detail, cancel, out);
	}
	free(sink.data);
	curl_api.slist_free_all(headers);
	curl_api.easy_cleanup(curl);
	return rc;
}

void http_response_clear(HttpResponse *resp)
{
	if (resp) {
		free(resp->body);
		resp->body = NULL;
		resp->body_len = 0;
	}
}

char *http_form_escape(const char *text)
{
	if (http_load() < 0)
		return NULL;
	char *escaped = curl_api.easy_escape(NULL, text, 0);
	char *copy = escaped ? strdup(escaped) : NULL;
	curl_api.free(escaped);
	return copy;
}
