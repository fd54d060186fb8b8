/* SPDX-License-Identifier: MIT */
/* log.c - levelled one-line logging to stderr with a single write(2) per line. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_ident[32] = "agentd";
static LogLevel log_threshold = LOG_LEVEL_INFO;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

void log_init(const char *ident, LogLevel level)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_threshold = level;
}

LogLevel log_start_level(int is_debug)
{
	const char *text = getenv("AGENTD_LOG_LEVEL");
	LogLevel level = LOG_LEVEL_INFO;
	if (is_debug)
		return LOG_LEVEL_DEBUG;
	if (text && log_level_parse(text, &level) < 0)
		level = LOG_LEVEL_INFO;
	return level;
}

void log_set_level(LogLevel level)
{
	log_threshold = level;
}

int log_level_parse(const char *text, LogLevel *level)
{
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcmp(text, log_level_names[i]) == 0) {
			*level = (LogLevel)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_is_enabled(LogLevel level)
{
	return level <= log_threshold;
}

/* Control characters would let a logged client string forge extra log lines. */
static void log_scrub(char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = '?';
	}
}

void log_write(LogLevel level, const char *fmt, ...)
{
	if (!log_is_enabled(level))
		return;
	int saved_errno = errno;
	char line[2048];
	struct timeval now;
	struct tm tm;
	gettimeofday(&now, NULL);
	gmtime_r(&now.tv_sec, &tm);
	int head = snprintf(line, sizeof(line),
			    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ", tm.tm_year + 1900,
			    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			    (long)(now.tv_usec / 1000), log_ident, (long)getpid(), log_level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int body = vsnprintf(line + head, sizeof(line) - (size_t)head - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)head;
	if (body > 0)
		len += (size_t)body < sizeof(line) - (size_t)head - 1 ? (size_t)body
								      : sizeof(line) - (size_t)head - 2;
	log_scrub(line + head, len - (size_t)head);
	line[len++] = '\n';
	/* One write per line so lines of concurrent processes never interleave. */
	ssize_t unused = write(STDERR_FILENO, line, len);
	(void)unused;
	errno = saved_errno;
}
