/* SPDX-License-Identifier: MIT */
/* uuid.h - UUIDv7 text ids for threads and turns. */
#ifndef AGENTD_UUID_H
#define AGENTD_UUID_H

#include <stdbool.h>
#include <stdint.h>

#define UUID_TEXT_LEN 36

/** uuid_v7() - a new lowercase UUIDv7 (48-bit unix milliseconds, then random). Return 0 or -EIO. */
int uuid_v7(char out[UUID_TEXT_LEN + 1]);

/** uuid_is_valid() - @text is exactly a hyphenated UUID (any version, either case). */
bool uuid_is_valid(const char *text);

#endif
