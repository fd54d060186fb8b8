/* SPDX-License-Identifier: MIT */
/* log.h - one line per event, levelled, to stderr; never given secrets. */
#ifndef AGENTD_LOG_H
#define AGENTD_LOG_H

#include <stdarg.h>

typedef enum LogLevel { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } LogLevel;

/** log_init() - name the process in every line and set the threshold. */
void log_init(const char *ident, LogLevel level);
/**
 * log_start_level() - the threshold a process starts at: debug with -d (@is_debug), else
 * $AGENTD_LOG_LEVEL when it names a level (helpers inherit it from agentd), else info.
 * The configuration's [agentd] log_level, once read, replaces it.
 */
LogLevel log_start_level(int is_debug);
/** log_set_level() - change the threshold (e.g. -d raises it to debug). */
void log_set_level(LogLevel level);
/** log_level_parse() - "error"|"warn"|"info"|"debug" to a level. Return 0 or -EINVAL. */
int log_level_parse(const char *text, LogLevel *level);
/** log_is_enabled() - whether a line at @level would be written. */
int log_is_enabled(LogLevel level);
void log_write(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                                       \
	do {                                                                                                 \
		if (log_is_enabled(LOG_LEVEL_DEBUG))                                                         \
			log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                             \
	} while (0)

#endif
