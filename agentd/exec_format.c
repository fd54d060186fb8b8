/* SPDX-License-Identifier: MIT */
/* exec_format.c - the model-facing text of the shell tools (see exec_format.h for the shapes). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_format.h"

#define XF_BYTES_PER_TOKEN 4u

/* --- buffers -------------------------------------------------------------------------------------- */

void xf_buf_free(XfBuf *b)
{
	if (!b)
		return;
	free(b->data);
	*b = (XfBuf){ 0 };
}

static int xf_buf_reserve(XfBuf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->capacity)
		return 0;
	size_t capacity = b->capacity ? b->capacity : 256;
	while (capacity < b->len + extra + 1) {
		if (capacity > SIZE_MAX / 2)
			return -ENOMEM;
		capacity *= 2;
	}
	char *grown = realloc(b->data, capacity);
	if (!grown)
		return -ENOMEM;
	b->data = grown;
	b->capacity = capacity;
	return 0;
}

int xf_buf_append(XfBuf *b, const void *data, size_t len)
{
	if (xf_buf_reserve(b, len) < 0)
		return -ENOMEM;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int xf_buf_printf(XfBuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || xf_buf_reserve(b, (size_t)n) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

const char *xf_buf_text(const XfBuf *b)
{
	return b->data ? b->data : "";
}

/* --- budgets ------------------------------------------------------------------------------------- */

size_t xf_approx_tokens(size_t bytes)
{
	return bytes / XF_BYTES_PER_TOKEN + (bytes % XF_BYTES_PER_TOKEN != 0);
}

static size_t xf_bytes_for_tokens(size_t tokens)
{
	return tokens > SIZE_MAX / XF_BYTES_PER_TOKEN ? SIZE_MAX : tokens * XF_BYTES_PER_TOKEN;
}

size_t xf_policy_byte_budget(XfPolicy p)
{
	return p.kind == XF_POLICY_BYTES ? p.limit : xf_bytes_for_tokens(p.limit);
}

size_t xf_policy_token_budget(XfPolicy p)
{
	return p.kind == XF_POLICY_TOKENS ? p.limit : xf_approx_tokens(p.limit);
}

size_t xf_count_lines(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += s[i] == '\n';
	return lines + (s[len - 1] != '\n');
}

/* --- UTF-8 ------------------------------------------------------------------------------------- */

/*
 * At @s: the length of one valid sequence (> 0), or the negated length of the invalid prefix that
 * one U+FFFD replaces (Rust's Utf8Error::error_len, the whole rest when the input ends mid-way).
 */
static long xf_utf8_step(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t width;
	unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		width = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		width = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	} else if (c >= 0xF0 && c <= 0xF4) {
		width = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	} else
		return -1;
	for (size_t i = 1; i < width; i++) {
		if (i >= n)
			return -(long)i; /* ends mid-sequence */
		unsigned char b = s[i];
		bool ok = i == 1 ? b >= lo && b <= hi : (b & 0xC0) == 0x80;
		if (!ok)
			return -(long)i;
	}
	return (long)width;
}

int xf_utf8_lossy(const uint8_t *data, size_t len, XfBuf *out)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	size_t run = 0; /* start of the valid run not yet copied */
	size_t i = 0;
	if (xf_buf_reserve(out, len) < 0)
		return -ENOMEM;
	while (i < len) {
		long step = xf_utf8_step(data + i, len - i);
		if (step > 0) {
			i += (size_t)step;
			continue;
		}
		if (xf_buf_append(out, data + run, i - run) < 0 || xf_buf_append(out, replacement, 3) < 0)
			return -ENOMEM;
		i += (size_t)-step;
		run = i;
	}
	return xf_buf_append(out, data + run, len - run);
}

size_t xf_utf8_complete_len(const uint8_t *data, size_t len)
{
	/* Only a valid prefix cut short by the end is held back; anything else goes as it is. */
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		size_t at = len - back;
		unsigned char c = data[at];
		if ((c & 0xC0) == 0x80)
			continue;
		long step = xf_utf8_step(data + at, back);
		return step == -(long)back && c >= 0xC2 && c <= 0xF4 ? at : len;
	}
	return len;
}

/* --- truncation ------------------------------------------------------------------------------------ */

static size_t xf_char_count(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

static size_t xf_char_len(const char *s, size_t at, size_t len)
{
	size_t end = at + 1;
	while (end < len && ((unsigned char)s[end] & 0xC0) == 0x80)
		end++;
	return end - at;
}

static int xf_marker(XfBuf *out, bool use_tokens, size_t removed)
{
	return xf_buf_printf(out, "\xE2\x80\xA6%zu %s truncated\xE2\x80\xA6", removed,
			     use_tokens ? "tokens" : "chars");
}

/* The head that fits @head_bytes and the tail that fits @tail_bytes, on character boundaries. */
static int xf_truncate_bytes(const char *s, size_t len, size_t max_bytes, bool use_tokens, XfBuf *out)
{
	if (len == 0)
		return 0;
	if (max_bytes == 0)
		return xf_marker(out, use_tokens, use_tokens ? xf_approx_tokens(len) : xf_char_count(s, len));
	if (len <= max_bytes)
		return xf_buf_append(out, s, len);
	size_t head_bytes = max_bytes / 2, tail_bytes = max_bytes - head_bytes;
	size_t tail_target = len - tail_bytes;
	size_t prefix_end = 0, suffix_start = len, removed_chars = 0;
	bool has_suffix = false;
	for (size_t at = 0; at < len;) {
		size_t width = xf_char_len(s, at, len);
		if (at + width <= head_bytes)
			prefix_end = at + width;
		else if (at >= tail_target) {
			if (!has_suffix) {
				suffix_start = at;
				has_suffix = true;
			}
		} else
			removed_chars++;
		at += width;
	}
	if (suffix_start < prefix_end)
		suffix_start = prefix_end;
	size_t removed = use_tokens ? xf_approx_tokens(len - max_bytes) : removed_chars;
	if (xf_buf_append(out, s, prefix_end) < 0 || xf_marker(out, use_tokens, removed) < 0 ||
	    xf_buf_append(out, s + suffix_start, len - suffix_start) < 0)
		return -ENOMEM;
	return 0;
}

int xf_truncate_text(const char *s, size_t len, XfPolicy p, XfBuf *out)
{
	if (p.kind == XF_POLICY_BYTES)
		return xf_truncate_bytes(s, len, p.limit, false, out);
	if (len == 0)
		return 0;
	size_t budget = xf_bytes_for_tokens(p.limit);
	if (p.limit > 0 && len <= budget)
		return xf_buf_append(out, s, len);
	return xf_truncate_bytes(s, len, budget, true, out);
}

int xf_formatted_truncate_text(const char *s, size_t len, XfPolicy p, XfBuf *out)
{
	if (len <= xf_policy_byte_budget(p))
		return xf_buf_append(out, s, len);
	if (xf_buf_printf(
		    out, "Warning: truncated output (original token count: %zu)\nTotal output lines: %zu\n\n",
		    xf_approx_tokens(len), xf_count_lines(s, len)) < 0)
		return -ENOMEM;
	return xf_truncate_text(s, len, p, out);
}

/* --- the three layouts ------------------------------------------------------------------------------ */

int xf_unified_exec_text(const XfUnifiedExec *r, XfBuf *out)
{
	size_t max_tokens =
		r->max_output_tokens < 0 ? XF_DEFAULT_MAX_OUTPUT_TOKENS : (size_t)r->max_output_tokens;
	size_t turn_tokens = xf_policy_token_budget(r->policy);
	XfPolicy policy = { XF_POLICY_TOKENS, max_tokens < turn_tokens ? max_tokens : turn_tokens };
	int rc = 0;
	if (r->chunk_id && r->chunk_id[0])
		rc |= xf_buf_printf(out, "Chunk ID: %s\n", r->chunk_id);
	rc |= xf_buf_printf(out, "Wall time: %.4f seconds\n", (double)r->wall_time_ns / 1e9);
	if (r->has_exit_code)
		rc |= xf_buf_printf(out, "Process exited with code %lld\n", (long long)r->exit_code);
	if (r->has_session_id)
		rc |= xf_buf_printf(out, "Process running with session ID %lld\n", (long long)r->session_id);
	rc |= xf_buf_printf(out, "Original token count: %zu\nOutput:\n", xf_approx_tokens(r->output_len));
	if (rc < 0)
		return -ENOMEM;
	return xf_formatted_truncate_text(r->output, r->output_len, policy, out);
}

/* The run's output, after "command timed out after N milliseconds" when it was killed for that. */
static int xf_exec_content(const XfExecOutput *r, XfBuf *content)
{
	if (r->is_timed_out && xf_buf_printf(content, "command timed out after %llu milliseconds\n",
					     (unsigned long long)(r->duration_ns / 1000000u)) < 0)
		return -ENOMEM;
	return xf_buf_append(content, r->output, r->output_len);
}

/* Seconds rounded to a tenth as the reference's f32 arithmetic does: ((secs as f32) * 10).round(). */
static long long xf_duration_tenths(uint64_t duration_ns)
{
	float secs = (float)(duration_ns / 1000000000u) + (float)(duration_ns % 1000000000u) / 1e9f;
	float tenths = secs * 10.0f;
	long long whole = (long long)tenths;
	/* f32::round: halves away from zero (the fraction of a float is exact, no libm needed). */
	return whole + (tenths - (float)whole >= 0.5f);
}

int xf_freeform_text(const XfExecOutput *r, XfBuf *out)
{
	XfBuf content = { 0 }, body = { 0 };
	int rc = xf_exec_content(r, &content);
	if (rc == 0)
		rc = xf_truncate_text(xf_buf_text(&content), content.len, r->policy, &body);
	long long tenths = xf_duration_tenths(r->duration_ns);
	size_t total_lines = xf_count_lines(xf_buf_text(&content), content.len);
	if (rc == 0)
		rc = xf_buf_printf(out, "Exit code: %lld\n", (long long)r->exit_code);
	/* Rust's Display of an f32: "1" for 1.0, "0.1" for 0.1. */
	if (rc == 0 && tenths % 10 == 0)
		rc = xf_buf_printf(out, "Wall time: %lld seconds\n", tenths / 10);
	else if (rc == 0)
		rc = xf_buf_printf(out, "Wall time: %lld.%lld seconds\n", tenths / 10, tenths % 10);
	if (rc == 0 && total_lines != xf_count_lines(xf_buf_text(&body), body.len))
		rc = xf_buf_printf(out, "Total output lines: %zu\n", total_lines);
	if (rc == 0)
		rc = xf_buf_printf(out, "Output:\n");
	if (rc == 0)
		rc = xf_buf_append(out, xf_buf_text(&body), body.len);
	xf_buf_free(&content);
	xf_buf_free(&body);
	return rc < 0 ? -ENOMEM : 0;
}

/* A JSON string as serde_json writes it: only '"', '\\' and control characters escaped. */
static int xf_json_string(const char *s, size_t len, XfBuf *out)
{
	int rc = xf_buf_append(out, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = c == '"'    ? "\\\""
				  : c == '\\' ? "\\\\"
				  : c == '\n' ? "\\n"
				  : c == '\r' ? "\\r"
				  : c == '\t' ? "\\t"
				  : c == '\b' ? "\\b"
				  : c == '\f' ? "\\f"
					      : NULL;
		if (!esc && c >= 0x20)
			continue;
		rc = xf_buf_append(out, s + run, i - run);
		if (rc == 0)
			rc = esc ? xf_buf_printf(out, "%s", esc) : xf_buf_printf(out, "\\u%04x", c);
		run = i + 1;
	}
	if (rc == 0)
		rc = xf_buf_append(out, s + run, len - run);
	return rc == 0 ? xf_buf_append(out, "\"", 1) : -ENOMEM;
}

int xf_structured_text(const XfExecOutput *r, XfBuf *out)
{
	XfBuf content = { 0 }, body = { 0 };
	int rc = xf_exec_content(r, &content);
	if (rc == 0)
		rc = xf_formatted_truncate_text(xf_buf_text(&content), content.len, r->policy, &body);
	long long tenths = xf_duration_tenths(r->duration_ns);
	if (rc == 0)
		rc = xf_buf_printf(out, "{\"output\":");
	if (rc == 0)
		rc = xf_json_string(xf_buf_text(&body), body.len, out);
	/* serde_json writes an f32 as its shortest form with a fraction: 1.0, 0.1. */
	if (rc == 0)
		rc = xf_buf_printf(out, ",\"metadata\":{\"exit_code\":%lld,\"duration_seconds\":%lld.%lld}}",
				   (long long)r->exit_code, tenths / 10, tenths % 10);
	xf_buf_free(&content);
	xf_buf_free(&body);
	return rc < 0 ? -ENOMEM : 0;
}

/* --- quoting ------------------------------------------------------------------------------------ */

static bool xf_is_shell_safe(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("-_./,:@+%^", *s)))
			return false;
	return true;
}

int xf_shlex_join(const char *const *argv, size_t argc, XfBuf *out)
{
	int rc = 0;
	for (size_t i = 0; i < argc && rc == 0; i++) {
		const char *arg = argv[i];
		if (i > 0)
			rc = xf_buf_append(out, " ", 1);
		if (rc < 0 || xf_is_shell_safe(arg)) {
			rc = rc < 0 ? rc : xf_buf_append(out, arg, strlen(arg));
			continue;
		}
		rc = xf_buf_append(out, "'", 1);
		for (const char *p = arg; *p && rc == 0; p++)
			rc = *p == '\'' ? xf_buf_append(out, "'\\''", 4) : xf_buf_append(out, p, 1);
		if (rc == 0)
			rc = xf_buf_append(out, "'", 1);
	}
	return rc;
}

int xf_rust_debug_str(const char *s, XfBuf *out)
{
	int rc = xf_buf_append(out, "\"", 1);
	for (; *s && rc == 0; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rc = xf_buf_printf(out, "\\%c", c);
		else if (c == '\n')
			rc = xf_buf_append(out, "\\n", 2);
		else if (c == '\r')
			rc = xf_buf_append(out, "\\r", 2);
		else if (c == '\t')
			rc = xf_buf_append(out, "\\t", 2);
		else if (c < 0x20 || c == 0x7F)
			rc = xf_buf_printf(out, "\\u{%x}", c);
		else
			rc = xf_buf_append(out, s, 1);
	}
	return rc == 0 ? xf_buf_append(out, "\"", 1) : rc;
}
