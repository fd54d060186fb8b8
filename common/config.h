/* SPDX-License-Identifier: MIT */
/* config.h - $CODEX_HOME/config.toml, parsed once into a jansson tree. */
#ifndef AGENTD_CONFIG_H
#define AGENTD_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Config {
	char codex_home[4096];
	char path[4096]; /* the config.toml that was read (may not exist) */
	json_t *root;	 /* always an object; empty when the file is absent */
} Config;

/**
 * config_load() - read <CODEX_HOME>/config.toml (CODEX_HOME: $CODEX_HOME, else ~/.codex).
 * A missing file is an empty configuration. A syntax error is reported in @err as
 * "<path>:<line>:<column>: <message>".
 * Return: 0, or a negative errno (-EINVAL for a syntax error).
 */
int config_load(Config *cfg, char *err, size_t err_len);

/** config_load_text() - parse TOML text (for tests and `-n`). Same errors as config_load(). */
int config_load_text(Config *cfg, const char *name, const char *text, size_t len, char *err, size_t err_len);

void config_free(Config *cfg);

/** config_read_file() - the whole file at @path, NUL-terminated, in *@text (the caller frees it). */
int config_read_file(const char *path, char **text, size_t *len);

/**
 * config_set_overrides() - "key=value" settings (codex's `-c`) applied on every later
 * config_load(), reloads included. The key is a dotted path; the value is parsed as TOML and
 * taken as a literal string when it is not TOML. The strings must outlive every load.
 * Return: 0, or -EINVAL (with @err) for an entry without '=' or with an empty key.
 */
int config_set_overrides(const char *const *settings, size_t count, char *err, size_t err_len);

/*
 * Validates a freshly loaded configuration and puts its values to use; returns a negative
 * errno (having logged why) to refuse it, in which case nothing of it may have been applied.
 */
typedef int (*ConfigAdoptFn)(const Config *fresh, void *ctx);

/**
 * config_reload() - read the file again (SIGHUP). When it parses and @adopt accepts it, it
 * replaces @cfg; otherwise @cfg and everything derived from it stay as they were.
 * Return: 0, or the negative errno of the failure (logged).
 */
int config_reload(Config *cfg, ConfigAdoptFn adopt, void *ctx);

/**
 * config_overrides_json() - the `-c` settings alone, as the table they make (config/read's
 * session-flags layer). Return: a new object, or NULL when there are none (or out of memory).
 */
json_t *config_overrides_json(void);

/** config_lookup() - the value at dotted @key ("agentd.log_level"), or NULL. Borrowed. */
json_t *config_lookup(const Config *cfg, const char *key);

/**
 * config_get_int() / config_get_string() - typed lookups with a default for absent keys.
 * Return: 0; -EINVAL when present with another type or outside [@min, @max].
 */
int config_get_int(const Config *cfg, const char *key, int64_t min, int64_t max, int64_t fallback,
		   int64_t *out);
int config_get_string(const Config *cfg, const char *key, const char *fallback, const char **out);

#endif
