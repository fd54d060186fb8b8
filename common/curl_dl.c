/* SPDX-License-Identifier: MIT */
/* curl_dl.c - resolve libcurl's entry points with dlopen() on first use (see curl_dl.h). */
#include "curl_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static CurlDl curl_dl_api;
static bool curl_dl_is_loaded;
static pthread_once_t curl_dl_once = PTHREAD_ONCE_INIT;
static char curl_dl_load_error[200];

static bool curl_dl_resolve(void *lib, const char *name, void *slot)
{
	void *sym = dlsym(lib, name);
	if (!sym) {
		snprintf(curl_dl_load_error, sizeof(curl_dl_load_error), "libcurl has no %s", name);
		return false;
	}
	memcpy(slot, &sym, sizeof(sym));
	return true;
}

static void curl_dl_load_once(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(curl_dl_load_error, sizeof(curl_dl_load_error), "cannot load libcurl: %s",
			 dlerror());
		return;
	}
	CurlDl api;
	bool ok = curl_dl_resolve(lib, "curl_global_init", &api.global_init) &&
		  curl_dl_resolve(lib, "curl_version_info", &api.version_info) &&
		  curl_dl_resolve(lib, "curl_easy_init", &api.easy_init) &&
		  curl_dl_resolve(lib, "curl_easy_setopt", &api.easy_setopt) &&
		  curl_dl_resolve(lib, "curl_easy_perform", &api.easy_perform) &&
		  curl_dl_resolve(lib, "curl_easy_getinfo", &api.easy_getinfo) &&
		  curl_dl_resolve(lib, "curl_easy_cleanup", &api.easy_cleanup) &&
		  curl_dl_resolve(lib, "curl_easy_strerror", &api.easy_strerror) &&
		  curl_dl_resolve(lib, "curl_easy_escape", &api.easy_escape) &&
		  curl_dl_resolve(lib, "curl_free", &api.free) &&
		  curl_dl_resolve(lib, "curl_slist_append", &api.slist_append) &&
		  curl_dl_resolve(lib, "curl_slist_free_all", &api.slist_free_all) &&
		  curl_dl_resolve(lib, "curl_multi_init", &api.multi_init) &&
		  curl_dl_resolve(lib, "curl_multi_cleanup", &api.multi_cleanup) &&
		  curl_dl_resolve(lib, "curl_multi_setopt", &api.multi_setopt) &&
		  curl_dl_resolve(lib, "curl_multi_add_handle", &api.multi_add_handle) &&
		  curl_dl_resolve(lib, "curl_multi_remove_handle", &api.multi_remove_handle) &&
		  curl_dl_resolve(lib, "curl_multi_socket_action", &api.multi_socket_action) &&
		  curl_dl_resolve(lib, "curl_multi_assign", &api.multi_assign) &&
		  curl_dl_resolve(lib, "curl_multi_info_read", &api.multi_info_read) &&
		  curl_dl_resolve(lib, "curl_multi_strerror", &api.multi_strerror);
	/* curl_global_init() is thread-safe since 7.84; before, pthread_once is what serialises it. */
	if (ok && api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(curl_dl_load_error, sizeof(curl_dl_load_error), "curl_global_init failed");
		ok = false;
	}
	if (ok) {
		curl_dl_api = api; /* kept loaded for the life of the process */
		curl_dl_is_loaded = true;
	} else {
		dlclose(lib);
	}
}

const CurlDl *curl_dl_load(void)
{
	pthread_once(&curl_dl_once, curl_dl_load_once);
	return curl_dl_is_loaded ? &curl_dl_api : NULL;
}

const char *curl_dl_error(void)
{
	return curl_dl_load_error;
}
