/* SPDX-License-Identifier: MIT */
/* server_params.c - exec-server parameter decoding in the reference's words, and file URIs. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "paths.h"
#include "server.h"

/*
 * The reference deserializes every request's params with serde before it looks at anything
 * else, and its clients see serde's sentences ("missing field `env`", "invalid type: string
 * \"ls\", expected a sequence"). We check the same things in the same order: fields in the
 * order the client sent them (a wrong type or a bad URI is reported as it is met), then the
 * first required field that is missing, in declaration order. Unknown fields are ignored.
 */

static void es_errf(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void es_errf(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

/* Rust's Debug form of a string, as serde quotes an unexpected one: "a\"b" */
static void es_debug_string(const char *s, size_t len, char *out, size_t out_len)
{
	size_t o = 0;
	if (out_len < 8) {
		out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (size_t i = 0; i < len && o + 12 < out_len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else if (c == '\t') {
			out[o++] = '\\';
			out[o++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, out_len - o, "\\u{%x}", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* serde's "Unexpected" wording for what the client sent instead. */
static void es_unexpected(json_t *v, char *out, size_t out_len)
{
	if (!v || json_is_null(v)) {
		snprintf(out, out_len, "null");
	} else if (json_is_boolean(v)) {
		snprintf(out, out_len, "boolean `%s`", json_is_true(v) ? "true" : "false");
	} else if (json_is_number(v)) {
		snprintf(out, out_len, "number");
	} else if (json_is_string(v)) {
		char quoted[256];
		es_debug_string(json_string_value(v), json_string_length(v), quoted, sizeof(quoted));
		snprintf(out, out_len, "string %s", quoted);
	} else if (json_is_array(v)) {
		snprintf(out, out_len, "sequence");
	} else {
		snprintf(out, out_len, "map");
	}
}

static int es_invalid_type(json_t *v, const char *expected, char *err, size_t err_len)
{
	char what[300];
	es_unexpected(v, what, sizeof(what));
	es_errf(err, err_len, "invalid type: %s, expected %s", what, expected);
	return -EINVAL;
}

static int es_check_struct(const EsStruct *spec, json_t *v, json_t **out, char *err, size_t err_len);

static int es_check_enum(const EsField *f, json_t *v, char *err, size_t err_len)
{
	const char *name;
	if (json_is_string(v)) {
		name = json_string_value(v);
	} else if (json_is_object(v) && json_object_size(v) == 1) {
		/* {"variant": null}: the map form of a unit variant */
		void *iter = json_object_iter(v);
		name = json_object_iter_key(iter);
		json_t *content = json_object_iter_value(iter);
		bool is_known = false;
		for (const char *const *p = f->variants; *p; p++)
			is_known = is_known || strcmp(*p, name) == 0;
		if (is_known && !json_is_null(content))
			return es_invalid_type(content, "unit variant", err, err_len);
	} else {
		return es_invalid_type(v, "string or map", err, err_len);
	}
	size_t count = 0;
	for (const char *const *p = f->variants; *p; p++) {
		if (strcmp(*p, name) == 0)
			return 0;
		count++;
	}
	char expected[256] = "";
	size_t o = 0;
	for (size_t i = 0; i < count && o < sizeof(expected); i++) {
		const char *sep = i == 0 ? "" : (count == 2 ? " or " : ", ");
		o += (size_t)snprintf(expected + o, sizeof(expected) - o, "%s`%s`", sep, f->variants[i]);
	}
	es_errf(err, err_len, "unknown variant `%s`, expected %s%s", name, count > 2 ? "one of " : "",
		expected);
	return -EINVAL;
}

/* An internally tagged enum: serde buffers the value first, and words what it saw its own way. */
static int es_check_tagged(const EsField *f, json_t *v, char *err, size_t err_len)
{
	if (!json_is_object(v)) {
		char what[300];
		if (json_is_integer(v))
			snprintf(what, sizeof(what), "integer `%lld`", (long long)json_integer_value(v));
		else if (json_is_real(v))
			snprintf(what, sizeof(what), "floating point `%g`", json_real_value(v));
		else
			es_unexpected(v, what, sizeof(what));
		es_errf(err, err_len, "invalid type: %s, expected internally tagged enum %s", what,
			f->enum_name);
		return -EINVAL;
	}
	json_t *tag = json_object_get(v, "type");
	if (!tag) {
		es_errf(err, err_len, "missing field `type`");
		return -EINVAL;
	}
	EsField as_enum = { .name = "type", .type = ES_T_ENUM, .variants = f->variants };
	return es_check_enum(&as_enum, tag, err, err_len);
}

static int es_check_value(const EsField *f, json_t *v, char *err, size_t err_len)
{
	switch (f->type) {
	case ES_T_ANY:
		return 0;
	case ES_T_STRING:
		return json_is_string(v) ? 0 : es_invalid_type(v, "a string", err, err_len);
	case ES_T_BOOL:
		return json_is_boolean(v) ? 0 : es_invalid_type(v, "a boolean", err, err_len);
	case ES_T_U64:
	case ES_T_USIZE:
		if (json_is_integer(v) && json_integer_value(v) >= 0)
			return 0;
		if (json_is_number(v)) {
			es_errf(err, err_len, "invalid number");
			return -EINVAL;
		}
		return es_invalid_type(v, f->type == ES_T_U64 ? "u64" : "usize", err, err_len);
	case ES_T_STRINGS: {
		if (!json_is_array(v))
			return es_invalid_type(v, "a sequence", err, err_len);
		size_t i;
		json_t *item;
		json_array_foreach (v, i, item)
			if (!json_is_string(item))
				return es_invalid_type(item, "a string", err, err_len);
		return 0;
	}
	case ES_T_STRING_MAP: {
		if (!json_is_object(v))
			return es_invalid_type(v, "a map", err, err_len);
		const char *key;
		json_t *item;
		json_object_foreach (v, key, item)
			if (!json_is_string(item))
				return es_invalid_type(item, "a string", err, err_len);
		return 0;
	}
	case ES_T_PATH: {
		if (!json_is_string(v))
			return es_invalid_type(v, "a string", err, err_len);
		char path[AGENTD_PATH_MAX];
		/* A foreign host is the handler's to refuse, with its own wording. */
		return es_path_from_uri(json_string_value(v), path, sizeof(path), err, err_len) ==
				       ES_PATH_INVALID
			       ? -EINVAL
			       : 0;
	}
	case ES_T_STRUCT: {
		json_t *inner[32];
		return es_check_struct(f->nested, v, inner, err, err_len);
	}
	case ES_T_ENUM:
		return es_check_enum(f, v, err, err_len);
	case ES_T_TAGGED:
		return es_check_tagged(f, v, err, err_len);
	}
	return 0;
}

static int es_check_struct(const EsStruct *spec, json_t *params, json_t **out, char *err, size_t err_len)
{
	for (size_t i = 0; i < spec->count; i++)
		out[i] = NULL;
	if (json_is_array(params) && json_array_size(params) < spec->count) {
		es_errf(err, err_len, "invalid length %zu, expected %s with %zu elements",
			json_array_size(params), spec->name, spec->count);
		return -EINVAL;
	}
	if (!json_is_object(params)) {
		char expected[128];
		snprintf(expected, sizeof(expected), "%s", spec->name);
		return es_invalid_type(params, expected, err, err_len);
	}
	const char *key;
	json_t *value;
	json_object_foreach (params, key, value) {
		for (size_t i = 0; i < spec->count; i++) {
			const EsField *f = &spec->fields[i];
			if (strcmp(f->name, key) != 0)
				continue;
			if (json_is_null(value) && f->is_nullable)
				break;
			if (es_check_value(f, value, err, err_len) < 0)
				return -EINVAL;
			out[i] = value;
			break;
		}
	}
	for (size_t i = 0; i < spec->count; i++) {
		const EsField *f = &spec->fields[i];
		if (f->is_required && !json_object_get(params, f->name)) {
			/* A missing Option is None; a required one is an error. */
			es_errf(err, err_len, "missing field `%s`", f->name);
			return -EINVAL;
		}
	}
	return 0;
}

int es_params_decode(const EsStruct *spec, json_t *params, json_t **out, char *err, size_t err_len)
{
	return es_check_struct(spec, params, out, err, err_len);
}

int es_params_unit(json_t *params, char *err, size_t err_len)
{
	if (!params || json_is_null(params) || (json_is_object(params) && json_object_size(params) == 0))
		return 0;
	return es_invalid_type(params, "unit", err, err_len);
}

/* --- file URIs -------------------------------------------------------------------------------- */

static bool es_segment_is(const char *seg, size_t len, int dots)
{
	/* "." and ".." also in their percent-encoded spellings, as the URL parser treats them. */
	size_t i = 0;
	int seen = 0;
	while (i < len) {
		if (seg[i] == '.') {
			i++;
		} else if (len - i >= 3 && seg[i] == '%' && seg[i + 1] == '2' &&
			   (seg[i + 2] == 'e' || seg[i + 2] == 'E')) {
			i += 3;
		} else {
			return false;
		}
		seen++;
	}
	return seen == dots;
}

EsPathError es_path_from_uri(const char *uri, char *path, size_t path_size, char *err, size_t err_len)
{
	size_t n = strlen(uri);
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	size_t colon = 0;
	if (n > 0 && isalpha((unsigned char)uri[0])) {
		colon = 1;
		while (colon < n && (isalnum((unsigned char)uri[colon]) || uri[colon] == '+' ||
				     uri[colon] == '-' || uri[colon] == '.'))
			colon++;
		if (colon >= n || uri[colon] != ':')
			colon = 0;
	}
	if (colon == 0) {
		es_errf(err, err_len, "invalid URI: relative URL without a base");
		return ES_PATH_INVALID;
	}
	if (colon != 4 || strncasecmp(uri, "file", 4) != 0) {
		char scheme[64];
		size_t len = colon < sizeof(scheme) ? colon : sizeof(scheme) - 1;
		for (size_t i = 0; i < len; i++)
			scheme[i] = (char)tolower((unsigned char)uri[i]);
		scheme[len] = '\0';
		es_errf(err, err_len, "unsupported path URI scheme `%s`", scheme);
		return ES_PATH_INVALID;
	}
	char *rest = strdup(uri + colon + 1);
	if (!rest) {
		es_errf(err, err_len, "out of memory");
		return ES_PATH_INVALID;
	}
	for (char *c = rest; *c; c++)
		if (*c == '\\')
			*c = '/'; /* file: is a special scheme: backslashes are slashes */
	char *hash = strchr(rest, '#');
	char *query = strchr(rest, '?');
	if (query && (!hash || query < hash)) {
		free(rest);
		es_errf(err, err_len, "query parameters are not allowed in path URIs");
		return ES_PATH_INVALID;
	}
	if (hash) {
		free(rest);
		es_errf(err, err_len, "fragments are not allowed in path URIs");
		return ES_PATH_INVALID;
	}
	const char *p = rest;
	if (strncmp(p, "//", 2) == 0) {
		const char *host = p + 2;
		const char *end = strchr(host, '/');
		size_t host_len = end ? (size_t)(end - host) : strlen(host);
		if (memchr(host, ':', host_len) && host[0] != '[') {
			free(rest);
			es_errf(err, err_len, "invalid URI: invalid international domain name");
			return ES_PATH_INVALID;
		}
		if (host_len != 0 && !(host_len == 9 && strncasecmp(host, "localhost", 9) == 0)) {
			free(rest);
			es_errf(err, err_len, "'%s' is invalid on 'linux'", uri);
			return ES_PATH_FOREIGN;
		}
		p = host + host_len;
	}
	/* Walk the segments: resolve dot segments, percent-decode the others. path[0..o) is "/" or
	 * "/a/b", never with a trailing slash. */
	size_t o = 1;
	bool is_bad = false;
	path[0] = '/';
	while (*p && !is_bad) {
		while (*p == '/')
			p++;
		const char *seg = p;
		while (*p && *p != '/')
			p++;
		size_t len = (size_t)(p - seg);
		if (len == 0 || es_segment_is(seg, len, 1))
			continue;
		if (es_segment_is(seg, len, 2)) {
			while (o > 1 && path[o - 1] != '/')
				o--;
			if (o > 1)
				o--;
			continue;
		}
		if (o > 1)
			path[o++] = '/';
		for (size_t i = 0; i < len; i++) {
			char c = seg[i];
			if (c == '%' && i + 2 < len && hex_digit_value(seg[i + 1]) >= 0 &&
			    hex_digit_value(seg[i + 2]) >= 0) {
				c = (char)(hex_digit_value(seg[i + 1]) * 16 + hex_digit_value(seg[i + 2]));
				i += 2;
			}
			if (c == '\0' || o + 2 >= path_size) {
				is_bad = true;
				break;
			}
			path[o++] = c;
		}
	}
	path[o] = '\0';
	free(rest);
	if (is_bad) {
		es_errf(err, err_len, "'%s' is invalid on 'linux'", uri);
		return ES_PATH_INVALID;
	}
	return ES_PATH_OK;
}

/* What the URL writer leaves as it is in a path segment of a special scheme. */
static bool es_uri_keeps(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("\"#<>?`{}%\\", c) == NULL;
}

char *es_path_to_uri(const char *path)
{
	size_t n = strlen(path);
	char *out = malloc(7 + 3 * n + 2);
	if (!out)
		return NULL;
	size_t o = (size_t)sprintf(out, "file://");
	if (path[0] != '/')
		out[o++] = '/';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '/' || es_uri_keeps(c))
			out[o++] = (char)c;
		else
			o += (size_t)sprintf(out + o, "%%%02X", c);
	}
	out[o] = '\0';
	return out;
}

/* --- the sandbox parameter ------------------------------------------------------------------------ */

static const char *const es_profile_variants[] = { "managed", "disabled", "external", NULL };
static const char *const es_windows_levels[] = { "disabled", "restricted-token", "elevated", "mxc", NULL };
static const EsField es_sandbox_fields[] = {
	{ .name = "permissions",
	  .type = ES_T_TAGGED,
	  .is_required = true,
	  .variants = es_profile_variants,
	  .enum_name = "ExecPermissionProfile" },
	{ .name = "cwd", .type = ES_T_PATH, .is_nullable = true },
	{ .name = "windowsSandboxLevel",
	  .type = ES_T_ENUM,
	  .is_required = true,
	  .variants = es_windows_levels },
};
const EsStruct es_sandbox_context_spec = { "struct WireFileSystemSandboxContext", es_sandbox_fields, 3 };

static bool es_json_equals(json_t *v, const char *text)
{
	return json_is_string(v) && strcmp(json_string_value(v), text) == 0;
}

bool es_sandbox_is_unconfined(json_t *sandbox)
{
	if (!sandbox)
		return true;
	json_t *permissions = json_object_get(sandbox, "permissions");
	json_t *type = json_object_get(permissions, "type");
	json_t *network = json_object_get(permissions, "network");
	if (es_json_equals(type, "disabled"))
		return true;
	if (es_json_equals(type, "external"))
		return es_json_equals(network, "enabled");
	json_t *fs = json_object_get(permissions, "file_system");
	return es_json_equals(type, "managed") &&
	       es_json_equals(json_object_get(fs, "type"), "unrestricted") &&
	       es_json_equals(network, "enabled");
}
