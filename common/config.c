/* SPDX-License-Identifier: MIT */
/* config.c - load config.toml with the strict TOML parser and answer typed lookups. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"
#include "toml.h"

/* config.toml is small; a bound stops a runaway file from being read whole into memory. */
#define CONFIG_MAX_BYTES (4u * 1024u * 1024u)

int config_load_text(Config *cfg, const char *name, const char *text, size_t len, char *err, size_t err_len)
{
	TomlError terr = { 0 };
	json_t *root = NULL;
	if (toml_parse(text, len, &root, &terr) < 0) {
		snprintf(err, err_len, "%s:%d:%d: %s", name, terr.line, terr.column, terr.message);
		return -EINVAL;
	}
	json_decref(cfg->root);
	cfg->root = root;
	return 0;
}

int config_read_file(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CONFIG_MAX_BYTES) {
		rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	size_t used = 0;
	while (used < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + used, (size_t)st.st_size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

static const char *const *config_overrides;
static size_t config_override_count;

int config_set_overrides(const char *const *settings, size_t count, char *err, size_t err_len)
{
	for (size_t i = 0; i < count; i++) {
		const char *eq = strchr(settings[i], '=');
		if (!eq || eq == settings[i]) {
			snprintf(err, err_len, "invalid override %s: expected key=value", settings[i]);
			return -EINVAL;
		}
	}
	config_overrides = settings;
	config_override_count = count;
	return 0;
}

/* The value as TOML ("v = <value>"), else the raw text as a string, as codex does. */
static json_t *config_override_value(const char *text)
{
	size_t len = strlen(text);
	char *doc = malloc(len + 6);
	json_t *parsed = NULL, *value = NULL;
	if (!doc)
		return NULL;
	memcpy(doc, "v = ", 4);
	memcpy(doc + 4, text, len);
	doc[len + 4] = '\n';
	doc[len + 5] = '\0';
	if (toml_parse(doc, len + 5, &parsed, NULL) == 0)
		value = json_incref(json_object_get(parsed, "v"));
	json_decref(parsed);
	free(doc);
	return value ? value : json_string(text);
}

/* Sets @value (stolen) at dotted @key, creating tables on the way and replacing non-tables. */
static int config_set_path(json_t *root, const char *key, size_t key_len, json_t *value)
{
	json_t *node = root;
	const char *p = key, *end = key + key_len;
	for (;;) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		if (!dot)
			return json_object_setn_new(node, p, (size_t)(end - p), value) == 0 ? 0 : -ENOMEM;
		json_t *child = json_object_getn(node, p, (size_t)(dot - p));
		if (!json_is_object(child)) {
			child = json_object();
			if (!child || json_object_setn_new(node, p, (size_t)(dot - p), child) < 0) {
				json_decref(value);
				return -ENOMEM;
			}
		}
		node = child;
		p = dot + 1;
	}
}

static int config_apply_overrides_to(json_t *root)
{
	for (size_t i = 0; i < config_override_count; i++) {
		const char *setting = config_overrides[i];
		const char *eq = strchr(setting, '=');
		json_t *value = config_override_value(eq + 1);
		if (!value || config_set_path(root, setting, (size_t)(eq - setting), value) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int config_apply_overrides(Config *cfg)
{
	return config_apply_overrides_to(cfg->root);
}

json_t *config_overrides_json(void)
{
	if (config_override_count == 0)
		return NULL;
	json_t *root = json_object();
	if (root && config_apply_overrides_to(root) < 0) {
		json_decref(root);
		return NULL;
	}
	return root;
}

int config_load(Config *cfg, char *err, size_t err_len)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->root = json_object();
	if (!cfg->root)
		return -ENOMEM;
	int rc = paths_codex_home(cfg->codex_home, sizeof(cfg->codex_home));
	if (rc < 0) {
		snprintf(err, err_len, "cannot determine CODEX_HOME: %s", strerror(-rc));
		return rc;
	}
	if ((rc = paths_join(cfg->codex_home, "config.toml", cfg->path, sizeof(cfg->path))) < 0)
		return rc;
	char *text = NULL;
	size_t len = 0;
	rc = config_read_file(cfg->path, &text, &len);
	if (rc == -ENOENT)
		return config_apply_overrides(cfg);
	if (rc < 0) {
		snprintf(err, err_len, "%s: %s", cfg->path, strerror(-rc));
		return rc;
	}
	rc = config_load_text(cfg, cfg->path, text, len, err, err_len);
	free(text);
	return rc == 0 ? config_apply_overrides(cfg) : rc;
}

void config_free(Config *cfg)
{
	if (!cfg)
		return;
	json_decref(cfg->root);
	cfg->root = NULL;
}

json_t *config_lookup(const Config *cfg, const char *key)
{
	json_t *node = cfg->root;
	const char *p = key;
	while (node && *p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (!json_is_object(node))
			return NULL;
		node = json_object_getn(node, p, len);
		p += len;
		if (*p == '.')
			p++;
	}
	return node;
}

int config_get_int(const Config *cfg, const char *key, int64_t min, int64_t max, int64_t fallback,
		   int64_t *out)
{
	json_t *v = config_lookup(cfg, key);
	if (!v) {
		*out = fallback;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

int config_get_string(const Config *cfg, const char *key, const char *fallback, const char **out)
{
	json_t *v = config_lookup(cfg, key);
	if (!v) {
		*out = fallback;
		return 0;
	}
	if (!json_is_string(v))
		return -EINVAL;
	*out = json_string_value(v);
	return 0;
}

int config_reload(Config *cfg, ConfigAdoptFn adopt, void *ctx)
{
	char err[512];
	Config fresh;
	int rc = config_load(&fresh, err, sizeof(err));
	if (rc < 0)
		log_error("configuration reload: keeping the old configuration: %s", err);
	else if (adopt && (rc = adopt(&fresh, ctx)) < 0)
		log_error("configuration reload: keeping the old configuration of %s", cfg->path);
	if (rc < 0) {
		config_free(&fresh);
		return rc;
	}
	config_free(cfg);
	*cfg = fresh;
	log_info("configuration reloaded from %s", cfg->path);
	return 0;
}
