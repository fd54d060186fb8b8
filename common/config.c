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

static int config_read_file(const char *path, char **text, size_t *len)
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
		return 0;
	if (rc < 0) {
		snprintf(err, err_len, "%s: %s", cfg->path, strerror(-rc));
		return rc;
	}
	rc = config_load_text(cfg, cfg->path, text, len, err, err_len);
	free(text);
	return rc;
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
