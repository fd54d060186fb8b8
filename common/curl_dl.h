/* SPDX-License-Identifier: MIT */
/* curl_dl.h - libcurl loaded with dlopen() on first use, for the daemons that talk HTTP. */
#ifndef AGENTD_CURL_DL_H
#define AGENTD_CURL_DL_H

#include <curl/curl.h>

/*
 * libcurl and what it pulls in (an OpenSSL, a GnuTLS, Kerberos, LDAP, ssh, ... some 30
 * libraries) would triple the resident size of a daemon that sends nothing for hours: authd
 * with a fresh token, agentd with no turn running. So neither links it; the first request
 * loads it and it stays loaded for the life of the process. Only the headers are used at
 * build time (for the types and option numbers, which are ABI-stable across libcurl.so.4).
 * dlopen() works under the daemons' seccomp filters (read-only opens and mmap are allowed).
 */

/* The libcurl entry points the daemons use. */
typedef struct CurlDl {
	CURLcode (*global_init)(long flags);
	curl_version_info_data *(*version_info)(CURLversion age);
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
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *multi);
	CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
	CURLMcode (*multi_add_handle)(CURLM *multi, CURL *curl);
	CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *curl);
	CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t s, int ev_bitmask, int *running);
	CURLMcode (*multi_assign)(CURLM *multi, curl_socket_t s, void *sockp);
	CURLMsg *(*multi_info_read)(CURLM *multi, int *msgs_in_queue);
	const char *(*multi_strerror)(CURLMcode code);
} CurlDl;

/**
 * curl_dl_load() - load libcurl and run curl_global_init(), once per process (thread-safe).
 * Call it first on the loop thread: OpenSSL's per-thread state set up by curl_global_init() on
 * a pool thread would outlive every cleanup.
 * Return: the entry points, or NULL when libcurl cannot be loaded (curl_dl_error() says why;
 * every later call returns NULL too).
 */
const CurlDl *curl_dl_load(void);

/** curl_dl_error() - why libcurl could not be loaded; "" while it loads or once it is loaded. */
const char *curl_dl_error(void);

#endif
