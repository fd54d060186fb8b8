/* SPDX-License-Identifier: MIT */
/* toml.h - strict TOML 1.0 parser producing a jansson tree. */
#ifndef AGENTD_TOML_H
#define AGENTD_TOML_H

#include <stddef.h>

#include <jansson.h>

typedef struct TomlError {
	int line;
	int column;
	char message[200];
} TomlError;

/** toml_parse() - parse a TOML document into a jansson object.
 * Tables become objects, arrays arrays, strings strings, integers json_integer, floats json_real,
 * booleans json_true/false, date-times/dates/times become strings holding their canonical text as written.
 * Because JSON has no representation for them, the special floats inf/nan (with optional sign) also
 * become strings holding their text as written ("inf", "-inf", "+nan", ...).
 * Nesting deeper than 64 levels (tables, arrays, inline tables) is rejected, as is any NUL byte.
 * Return: 0 and *out set (caller owns, json_decref) on success; -EINVAL with err filled (1-based line and
 * column of the offending character, message like "duplicate key \"a\"" or "unsupported: ...") on error;
 * -ENOMEM (err filled, line/column 0) if memory runs out. Columns count UTF-8 characters, not bytes.
 * err may be NULL. */
int toml_parse(const char *text, size_t len, json_t **out, TomlError *err);

#endif /* AGENTD_TOML_H */
