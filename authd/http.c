/* SPDX-License-Identifier: MIT */
/*
 * http.c - libcurl easy requests with a size bound, a deadline and a cancel flag.
 *
 * libcurl is loaded on the first request, not at exec (common/curl_dl.c says why): an authd
 * with a fresh token sends nothing for hours.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_dl.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

int http_prepare(void)
{
	return curl_dl_load() ? 0 : -EIO;
}

const char *http_load_error(void)
{
	return curl_dl_error();
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

static int http_fail(const CurlDl *curl_api, CURLcode code, const char *detail, const volatile bool *cancel,
		     HttpResponse *out)
{
	if (code == CURLE_ABORTED_BY_CALLBACK && cancel && *cancel)
		return -ECANCELED;
	snprintf(out->error, sizeof(out->error), "%s", detail[0] ? detail : curl_api->easy_strerror(code));
	return code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
}

int http_request(const char *method, const char *url, const char *content_type, const char *body,
		 size_t body_len, int timeout_ms, const volatile bool *cancel, HttpResponse *out)
{
	memset(out, 0, sizeof(*out));
	const CurlDl *curl_api = curl_dl_load();
	if (!curl_api) {
		snprintf(out->error, sizeof(out->error), "%s", curl_dl_error());
		return -EIO;
	}
	CURL *curl = curl_api->easy_init();
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
		headers = curl_api->slist_append(headers, type_header);
	}
	headers = curl_api->slist_append(headers, "Accept: application/json");
	curl_api->easy_setopt(curl, CURLOPT_URL, url);
	curl_api->easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_api->easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_api->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_api->easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_api->easy_setopt(curl, CURLOPT_USERAGENT, "agentd-authd/" PACKAGE_VERSION);
	curl_api->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_api->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_api->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* worker threads: no SIGALRM for DNS timeouts */
	curl_api->easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_api->easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_data);
	curl_api->easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	curl_api->easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, http_on_progress);
	curl_api->easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)cancel);
	curl_api->easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_api->easy_setopt(curl, CURLOPT_ERRORBUFFER, detail);
	CURLcode code = curl_api->easy_perform(curl);
	int rc = 0;
	if (code == CURLE_OK) {
		curl_api->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
		out->body = sink.data ? sink.data : strdup("");
		out->body_len = sink.len;
		sink.data = NULL;
		if (!out->body)
			rc = -ENOMEM;
	} else if (sink.is_truncated) {
		snprintf(out->error, sizeof(out->error), "response larger than %u bytes", HTTP_MAX_RESPONSE_BYTES);
		rc = -EIO;
	} else {
		rc = http_fail(curl_api, code, detail, cancel, out);
	}
	free(sink.data);
	curl_api->slist_free_all(headers);
	curl_api->easy_cleanup(curl);
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
	const CurlDl *curl_api = curl_dl_load();
	if (!curl_api)
		return NULL;
	char *escaped = curl_api->easy_escape(NULL, text, 0);
	char *copy = escaped ? strdup(escaped) : NULL;
	curl_api->free(escaped);
	return copy;
}
