/* SPDX-License-Identifier: MIT */
/* toml_fuzz.c - libFuzzer target for toml_parse(). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "toml.h"

/* A failure must always say where and why; anything else is a parser bug worth a crash. */
static void error_check(int rc, const TomlError *err)
{
	if (rc == -ENOMEM)
		return;
	if (rc != -EINVAL || err->line < 1 || err->column < 1 || err->message[0] == '\0' ||
	    memchr(err->message, '\0', sizeof(err->message)) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = NULL;
	TomlError err;
	int rc = toml_parse((const char *)data, size, &root, &err);

	if (rc == 0) {
		/* Serialising walks the whole tree and re-checks every string is valid UTF-8. */
		char *dump = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);

		if (!dump || !json_is_object(root))
			abort();
		free(dump);
		json_decref(root);
		return 0;
	}
	if (root)
		abort();
	error_check(rc, &err);
	return 0;
}
