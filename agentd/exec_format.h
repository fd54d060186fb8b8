/* SPDX-License-Identifier: MIT */
/* exec_format.h - the text the model reads back from its shell tools, byte for byte as the reference
 * writes it: lossy UTF-8, the bytes/4 token estimate, middle truncation and the three result layouts
 * (unified exec, freeform shell_command, structured shell). Pure functions: no loop, no broker. */
#ifndef AGENTD_EXEC_FORMAT_H
#define AGENTD_EXEC_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte string, always NUL-terminated once non-empty; xf_buf_free() releases it. */
typedef struct XfBuf {
	char *data;
	size_t len, capacity;
} XfBuf;

/* How much of a tool's output the model may see (the reference's TruncationPolicy). */
typedef enum XfPolicyKind {
	XF_POLICY_BYTES,
	XF_POLICY_TOKENS,
} XfPolicyKind;

typedef struct XfPolicy {
	XfPolicyKind kind;
	size_t limit;
} XfPolicy;

/* The reference's budget for models it knows nothing about. */
#define XF_DEFAULT_POLICY ((XfPolicy){ XF_POLICY_BYTES, 10000 })
/* exec_command / write_stdin max_output_tokens when the model gives none. */
#define XF_DEFAULT_MAX_OUTPUT_TOKENS 10000

void xf_buf_free(XfBuf *b);
/** xf_buf_append() - append @len bytes. Return 0 or -ENOMEM. */
int xf_buf_append(XfBuf *b, const void *data, size_t len);
/** xf_buf_printf() - append formatted text. Return 0 or -ENOMEM. */
int xf_buf_printf(XfBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** xf_buf_text() - the contents as a C string ("" when empty). */
const char *xf_buf_text(const XfBuf *b);

/** xf_policy_byte_budget() / xf_policy_token_budget() - the budget in the other unit (4 bytes a token). */
size_t xf_policy_byte_budget(XfPolicy p);
size_t xf_policy_token_budget(XfPolicy p);

/** xf_approx_tokens() - the reference's estimate: ceil(bytes / 4). */
size_t xf_approx_tokens(size_t bytes);

/** xf_count_lines() - lines as Rust's str::lines() counts them (a final newline ends, not starts, one). */
size_t xf_count_lines(const char *s, size_t len);

/**
 * xf_utf8_lossy() - append @data as UTF-8, each maximal invalid subsequence replaced by U+FFFD exactly
 * as Rust's String::from_utf8_lossy() does. Return 0 or -ENOMEM.
 */
int xf_utf8_lossy(const uint8_t *data, size_t len, XfBuf *out);

/** xf_utf8_complete_len() - the length of @data without an incomplete UTF-8 sequence at its end. */
size_t xf_utf8_complete_len(const uint8_t *data, size_t len);

/**
 * xf_truncate_text() - @s (valid UTF-8) cut to @p's budget: head and tail kept on character
 * boundaries around "…N tokens truncated…" (token policy) or "…N chars truncated…" (byte policy).
 * Return 0 or -ENOMEM.
 */
int xf_truncate_text(const char *s, size_t len, XfPolicy p, XfBuf *out);

/**
 * xf_formatted_truncate_text() - @s as is when within @p's byte budget, else "Warning: truncated output
 * (original token count: N)\nTotal output lines: M\n\n" and the truncated text. Return 0 or -ENOMEM.
 */
int xf_formatted_truncate_text(const char *s, size_t len, XfPolicy p, XfBuf *out);

/* One exec_command / write_stdin answer. */
typedef struct XfUnifiedExec {
	const char *chunk_id; /* six hex digits; "" leaves the line out */
	uint64_t wall_time_ns;
	bool has_exit_code;
	int64_t exit_code;
	bool has_session_id; /* still running: the id write_stdin takes */
	int64_t session_id;
	const char *output; /* what the call collected, valid UTF-8 */
	size_t output_len;
	int64_t max_output_tokens; /* the model's max_output_tokens; negative: none given */
	XfPolicy policy;	   /* the turn's truncation policy */
} XfUnifiedExec;

/**
 * xf_unified_exec_text() - "Chunk ID: …\nWall time: 0.5017 seconds\n[Process exited with code N\n]
 * [Process running with session ID N\n]Original token count: N\nOutput:\n<output>". Return 0 or -ENOMEM.
 */
int xf_unified_exec_text(const XfUnifiedExec *r, XfBuf *out);

/* One finished shell_command / shell run. */
typedef struct XfExecOutput {
	int64_t exit_code;
	uint64_t duration_ns;
	bool is_timed_out;
	const char *output; /* stdout and stderr as they came, valid UTF-8 */
	size_t output_len;
	XfPolicy policy;
} XfExecOutput;

/**
 * xf_freeform_text() - shell_command's answer: "Exit code: N\nWall time: 0.1 seconds\n[Total output
 * lines: N\n]Output:\n<output>". Return 0 or -ENOMEM.
 */
int xf_freeform_text(const XfExecOutput *r, XfBuf *out);

/**
 * xf_structured_text() - shell's answer: {"output":…,"metadata":{"exit_code":N,"duration_seconds":D}}.
 * Return 0 or -ENOMEM.
 */
int xf_structured_text(const XfExecOutput *r, XfBuf *out);

/** xf_shlex_join() - @argv as one shell-quoted line (the command a commandExecution item shows). */
int xf_shlex_join(const char *const *argv, size_t argc, XfBuf *out);

/** xf_rust_debug_str() - @s quoted as Rust's {:?} prints a string. Return 0 or -ENOMEM. */
int xf_rust_debug_str(const char *s, XfBuf *out);

#endif
