/* SPDX-License-Identifier: MIT */
/* toml.c - strict TOML 1.0 parser that builds a jansson tree. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* newlocale() and strtod_l() */
#endif

#include "toml.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

/* Containers deeper than this are refused: it bounds our recursion and jansson's. */
#define TOML_MAX_DEPTH 64
/* A key may have one more part than the depth limit: its last part can name a scalar. */
#define TOML_MAX_KEY_PARTS (TOML_MAX_DEPTH + 1)

/* What we remember about tables and arrays; jansson nodes have no spare field for it. */
enum TomlMetaFlag {
	TOML_META_EXPLICIT = 1u << 0, /* table defined by a [header] or [[header]] */
	TOML_META_DOTTED = 1u << 1,   /* table created or extended through dotted keys */
	TOML_META_STATIC = 1u << 2,   /* inline table or array value: immutable */
	TOML_META_AOT = 1u << 3,      /* array created by [[header]] */
};

typedef struct TomlMetaSlot {
	const json_t *node;
	unsigned flags;
} TomlMetaSlot;

/* Open-addressing hash map from node pointer to flags. */
typedef struct TomlMeta {
	TomlMetaSlot *slots;
	size_t cap;
	size_t used;
} TomlMeta;

typedef struct TomlBuf {
	char *data;
	size_t len;
	size_t cap;
} TomlBuf;

typedef struct TomlKeyPart {
	char *name;
	size_t len;
	size_t offset; /* where the part starts in the source, for error reports */
} TomlKeyPart;

typedef struct TomlKey {
	TomlKeyPart parts[TOML_MAX_KEY_PARTS];
	size_t count;
} TomlKey;

typedef struct TomlParser {
	const char *src;
	size_t len;
	size_t pos;
	TomlError *err;
	TomlMeta meta;
	locale_t c_locale; /* "C" numeric locale for strtod_l, created on first float */
	json_t *current;   /* table that key/value lines go into */
	int current_depth;
} TomlParser;

static int value_parse(TomlParser *p, int depth, json_t **out);
static int keyval_parse(TomlParser *p, json_t *table, int depth);

/* ------------------------------------------------------------------------- */
/* Error reporting                                                           */
/* ------------------------------------------------------------------------- */

static int saturating_inc(int v)
{
	return v < INT_MAX ? v + 1 : v;
}

static bool bom_at_start(const TomlParser *p)
{
	return p->len >= 3 && memcmp(p->src, "\xEF\xBB\xBF", 3) == 0;
}

/* Columns count characters: every byte that is not a UTF-8 continuation byte; a BOM is not one. */
static void parser_locate(const TomlParser *p, size_t offset, int *line, int *column)
{
	int l = 1;
	int c = 1;

	for (size_t i = bom_at_start(p) ? 3 : 0; i < offset && i < p->len; i++) {
		unsigned char b = (unsigned char)p->src[i];

		if (b == '\n') {
			l = saturating_inc(l);
			c = 1;
		} else if ((b & 0xC0) != 0x80) {
			c = saturating_inc(c);
		}
	}
	*line = l;
	*column = c;
}

static int parser_fail(TomlParser *p, size_t offset, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int parser_fail(TomlParser *p, size_t offset, const char *fmt, ...)
{
	va_list ap;

	parser_locate(p, offset, &p->err->line, &p->err->column);
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parser_oom(TomlParser *p)
{
	p->err->line = 0;
	p->err->column = 0;
	snprintf(p->err->message, sizeof(p->err->message), "out of memory");
	return -ENOMEM;
}

/* Printable, bounded rendering of a key for messages; never splits a UTF-8 sequence. */
static void key_describe(const TomlKeyPart *part, char *buf, size_t cap)
{
	const size_t limit = cap > 8 ? cap - 8 : 0;
	size_t o = 0;

	for (size_t i = 0; i < part->len; i++) {
		unsigned char b = (unsigned char)part->name[i];

		if (o >= limit && (b & 0xC0) != 0x80) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = (char)((b < 0x20 || b == 0x7F) ? '?' : b);
	}
	buf[o] = '\0';
}

/* fmt has exactly one %s, which receives the key's name. */
static int parser_fail_key_at(TomlParser *p, size_t offset, const TomlKeyPart *part, const char *fmt)
	__attribute__((format(printf, 4, 0)));

static int parser_fail_key_at(TomlParser *p, size_t offset, const TomlKeyPart *part, const char *fmt)
{
	char name[72];

	key_describe(part, name, sizeof(name));
	return parser_fail(p, offset, fmt, name);
}

static int parser_fail_key(TomlParser *p, const TomlKeyPart *part, const char *fmt)
	__attribute__((format(printf, 3, 0)));

static int parser_fail_key(TomlParser *p, const TomlKeyPart *part, const char *fmt)
{
	return parser_fail_key_at(p, part->offset, part, fmt);
}

/* ------------------------------------------------------------------------- */
/* Node metadata                                                             */
/* ------------------------------------------------------------------------- */

static size_t meta_hash(const json_t *node, size_t cap)
{
	uint64_t h = (uint64_t)(uintptr_t)node;

	/* 64-bit finaliser from MurmurHash3: malloc'd addresses differ mostly in a few middle bits */
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDull;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ull;
	h ^= h >> 33;
	return (size_t)h & (cap - 1);
}

static TomlMetaSlot *meta_find(const TomlMeta *meta, const json_t *node)
{
	size_t i = meta_hash(node, meta->cap);

	while (meta->slots[i].node && meta->slots[i].node != node)
		i = (i + 1) & (meta->cap - 1);
	return &meta->slots[i];
}

static int meta_grow(TomlMeta *meta)
{
	size_t cap = meta->cap ? meta->cap * 2 : 64;
	TomlMeta bigger = { calloc(cap, sizeof(TomlMetaSlot)), cap, meta->used };

	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < meta->cap; i++) {
		if (meta->slots[i].node)
			*meta_find(&bigger, meta->slots[i].node) = meta->slots[i];
	}
	free(meta->slots);
	*meta = bigger;
	return 0;
}

static unsigned meta_get(const TomlParser *p, const json_t *node)
{
	if (!p->meta.cap)
		return 0;
	return meta_find(&p->meta, node)->flags;
}

/* Adds flags to a node; nodes stay alive until parsing ends, so pointers are stable keys. */
static int meta_add(TomlParser *p, const json_t *node, unsigned flags)
{
	TomlMetaSlot *slot;

	if ((p->meta.used + 1) * 2 > p->meta.cap && meta_grow(&p->meta) < 0)
		return parser_oom(p);
	slot = meta_find(&p->meta, node);
	if (!slot->node) {
		slot->node = node;
		p->meta.used++;
	}
	slot->flags |= flags;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Growable byte buffer                                                      */
/* ------------------------------------------------------------------------- */

static int buf_reserve(TomlBuf *b, size_t extra)
{
	size_t need = b->len + extra + 1; /* room for a terminating NUL */
	size_t cap = b->cap ? b->cap : 32;
	char *data;

	if (need <= b->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

static int buf_push(TomlBuf *b, const char *bytes, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, bytes, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int buf_push_byte(TomlBuf *b, char c)
{
	return buf_push(b, &c, 1);
}

static int buf_push_codepoint(TomlBuf *b, uint32_t cp)
{
	char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xC0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xE0 | (cp >> 12));
		s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		s[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		s[0] = (char)(0xF0 | (cp >> 18));
		s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		s[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		s[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return buf_push(b, s, n);
}

/* Guarantees a non-NULL, NUL-terminated buffer even for empty content. */
static int buf_finish(TomlBuf *b)
{
	return buf_reserve(b, 0);
}

/* ------------------------------------------------------------------------- */
/* Character level                                                           */
/* ------------------------------------------------------------------------- */

static int peek_at(const TomlParser *p, size_t ahead)
{
	size_t i = p->pos + ahead;

	return i < p->len ? (unsigned char)p->src[i] : -1;
}

static int peek(const TomlParser *p)
{
	return peek_at(p, 0);
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex_digit(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_bare_key_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
}

/* TOML forbids control characters other than tab in strings and comments. */
static bool is_forbidden_control(int c)
{
	return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F;
}

static bool is_newline_start(int c)
{
	return c == '\n' || c == '\r';
}

static void ws_skip(TomlParser *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		p->pos++;
}

/* Consumes LF or CRLF; a CR on its own is a stray control character. */
static int newline_consume(TomlParser *p)
{
	if (peek(p) == '\n') {
		p->pos++;
		return 0;
	}
	if (peek(p) == '\r' && peek_at(p, 1) == '\n') {
		p->pos += 2;
		return 0;
	}
	return parser_fail(p, p->pos, "bare carriage return is not a newline");
}

/* Skips a '#' comment up to, not including, the newline that ends it. */
static int comment_skip(TomlParser *p)
{
	p->pos++;
	for (int c = peek(p); c != -1 && c != '\n'; c = peek(p)) {
		if (c == '\r' && peek_at(p, 1) == '\n')
			break;
		if (is_forbidden_control(c))
			return parser_fail(p, p->pos, "control character in comment");
		p->pos++;
	}
	return 0;
}

/* Inside arrays, whitespace, newlines and comments may appear between elements. */
static int blank_skip(TomlParser *p)
{
	for (;;) {
		int c;
		int rc = 0;

		ws_skip(p);
		c = peek(p);
		if (c == '#')
			rc = comment_skip(p);
		else if (is_newline_start(c))
			rc = newline_consume(p);
		else
			return 0;
		if (rc < 0)
			return rc;
	}
}

/* Finishes a line: optional whitespace and comment, then a newline or the end. */
static int line_end(TomlParser *p, const char *after)
{
	int rc;

	ws_skip(p);
	if (peek(p) == '#') {
		rc = comment_skip(p);
		if (rc < 0)
			return rc;
	}
	if (peek(p) == -1)
		return 0;
	if (is_newline_start(peek(p)))
		return newline_consume(p);
	return parser_fail(p, p->pos, "expected newline after %s", after);
}

/* ------------------------------------------------------------------------- */
/* Whole-input validation                                                    */
/* ------------------------------------------------------------------------- */

static bool utf8_is_cont(unsigned char b)
{
	return (b & 0xC0) == 0x80;
}

/* Length of the valid UTF-8 sequence at s, or 0; rejects overlongs, surrogates and > U+10FFFF. */
static size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
	unsigned char b = s[0];
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;
	size_t n;

	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF)
		n = 2;
	else if (b >= 0xE0 && b <= 0xEF)
		n = 3;
	else if (b >= 0xF0 && b <= 0xF4)
		n = 4;
	else
		return 0;
	if (b == 0xE0)
		lo = 0xA0;
	else if (b == 0xED)
		hi = 0x9F;
	else if (b == 0xF0)
		lo = 0x90;
	else if (b == 0xF4)
		hi = 0x8F;
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (!utf8_is_cont(s[i]))
			return 0;
	}
	return n;
}

/* Done once up front so that every later stage may assume valid, NUL-free UTF-8. */
static int text_validate(TomlParser *p)
{
	const unsigned char *s = (const unsigned char *)p->src;
	size_t i = 0;

	while (i < p->len) {
		size_t n;

		if (s[i] == '\0')
			return parser_fail(p, i, "NUL byte in input");
		n = utf8_sequence_length(s + i, p->len - i);
		if (!n)
			return parser_fail(p, i, "invalid UTF-8");
		i += n;
	}
	return 0;
}

/* A leading UTF-8 byte order mark is tolerated, as toml-test expects. */
static void bom_skip(TomlParser *p)
{
	if (bom_at_start(p))
		p->pos = 3;
}

/* ------------------------------------------------------------------------- */
/* Strings                                                                   */
/* ------------------------------------------------------------------------- */

static int unicode_escape_parse(TomlParser *p, size_t start, int digits, TomlBuf *out)
{
	uint32_t cp = 0;

	for (int i = 0; i < digits; i++) {
		int c = peek(p);

		if (!is_hex_digit(c))
			return parser_fail(p, start, "invalid unicode escape: expected %d hex digits",
					   digits);
		cp = cp * 16 + (uint32_t)hex_digit_value(c);
		p->pos++;
	}
	if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return parser_fail(p, start, "invalid unicode code point U+%04X", (unsigned)cp);
	return buf_push_codepoint(out, cp) < 0 ? parser_oom(p) : 0;
}

/* Handles one escape sequence; p->pos is at the backslash. */
static int escape_parse(TomlParser *p, TomlBuf *out)
{
	static const char from[] = "btnfr\"\\";
	static const char to[] = "\b\t\n\f\r\"\\";
	size_t start = p->pos;
	int c = peek_at(p, 1);
	const char *hit = c > 0 ? strchr(from, c) : NULL;

	if (c == -1)
		return parser_fail(p, start + 1, "unterminated string");
	p->pos += 2;
	if (c == 'u' || c == 'U')
		return unicode_escape_parse(p, start, c == 'u' ? 4 : 8, out);
	if (hit)
		return buf_push_byte(out, to[hit - from]) < 0 ? parser_oom(p) : 0;
	if (c > 0x20 && c < 0x7F)
		return parser_fail(p, start, "invalid escape sequence \\%c", c);
	return parser_fail(p, start, "invalid escape sequence");
}

/* A backslash at the end of a line in a multi-line basic string eats all whitespace after it. */
static bool line_ending_backslash_at(const TomlParser *p)
{
	size_t i = p->pos + 1;

	while (i < p->len && (p->src[i] == ' ' || p->src[i] == '\t'))
		i++;
	return i < p->len && (p->src[i] == '\n' || p->src[i] == '\r');
}

static int line_ending_backslash_skip(TomlParser *p)
{
	p->pos++;
	for (;;) {
		int c = peek(p);

		if (c == ' ' || c == '\t') {
			p->pos++;
		} else if (is_newline_start(c)) {
			int rc = newline_consume(p);

			if (rc < 0)
				return rc;
		} else {
			return 0;
		}
	}
}

/* Content character shared by all string kinds; newlines are handled by the callers. */
static int string_char_push(TomlParser *p, TomlBuf *out)
{
	int c = peek(p);

	if (is_forbidden_control(c))
		return parser_fail(p, p->pos, "control character in string");
	p->pos++;
	return buf_push_byte(out, (char)c) < 0 ? parser_oom(p) : 0;
}

static int basic_string_parse(TomlParser *p, TomlBuf *out)
{
	p->pos++;
	for (;;) {
		int c = peek(p);
		int rc;

		if (c == '"') {
			p->pos++;
			return 0;
		}
		if (c == -1 || c == '\n' || (c == '\r' && peek_at(p, 1) == '\n'))
			return parser_fail(p, p->pos, "unterminated string");
		rc = c == '\\' ? escape_parse(p, out) : string_char_push(p, out);
		if (rc < 0)
			return rc;
	}
}

static int literal_string_parse(TomlParser *p, TomlBuf *out)
{
	p->pos++;
	for (;;) {
		int c = peek(p);
		int rc;

		if (c == '\'') {
			p->pos++;
			return 0;
		}
		if (c == -1 || c == '\n' || (c == '\r' && peek_at(p, 1) == '\n'))
			return parser_fail(p, p->pos, "unterminated string");
		rc = string_char_push(p, out);
		if (rc < 0)
			return rc;
	}
}

static size_t quote_run_length(const TomlParser *p, char quote)
{
	size_t n = 0;

	while (p->pos + n < p->len && p->src[p->pos + n] == quote)
		n++;
	return n;
}

/*
 * At a run of quotes inside a multi-line string. Fewer than three are content;
 * three to five close the string, the extra one or two being content.
 * Sets *closed when the string ended.
 */
static int ml_quotes_parse(TomlParser *p, char quote, TomlBuf *out, bool *closed)
{
	size_t n = quote_run_length(p, quote);
	size_t content = n < 3 ? n : n - 3;

	if (n > 5)
		return parser_fail(p, p->pos + 5, "too many quotes at end of multi-line string");
	for (size_t i = 0; i < content; i++) {
		if (buf_push_byte(out, quote) < 0)
			return parser_oom(p);
	}
	p->pos += n;
	*closed = n >= 3;
	return 0;
}

/* Newlines inside multi-line strings are normalised to LF. */
static int ml_newline_push(TomlParser *p, TomlBuf *out)
{
	int rc = newline_consume(p);

	if (rc < 0)
		return rc;
	return buf_push_byte(out, '\n') < 0 ? parser_oom(p) : 0;
}

static int ml_string_parse(TomlParser *p, char quote, TomlBuf *out)
{
	size_t start = p->pos;
	bool closed = false;

	p->pos += 3;
	if (is_newline_start(peek(p))) {
		int rc = newline_consume(p); /* a newline right after the opening delimiter is trimmed */

		if (rc < 0)
			return rc;
	}
	while (!closed) {
		int c = peek(p);
		int rc;

		if (c == -1)
			return parser_fail(p, start, "unterminated multi-line string");
		if (c == quote)
			rc = ml_quotes_parse(p, quote, out, &closed);
		else if (is_newline_start(c))
			rc = ml_newline_push(p, out);
		else if (c == '\\' && quote == '"' && line_ending_backslash_at(p))
			rc = line_ending_backslash_skip(p);
		else if (c == '\\' && quote == '"')
			rc = escape_parse(p, out);
		else
			rc = string_char_push(p, out);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static bool triple_quote_at(const TomlParser *p, char quote)
{
	return peek(p) == quote && peek_at(p, 1) == quote && peek_at(p, 2) == quote;
}

/* Parses any string form at p->pos into out (NUL-terminated, may contain NULs from \u0000). */
static int string_parse(TomlParser *p, bool allow_multiline, TomlBuf *out)
{
	char quote = (char)peek(p);
	int rc;

	if (triple_quote_at(p, quote)) {
		if (!allow_multiline)
			return parser_fail(p, p->pos, "multi-line string cannot be used as a key");
		rc = ml_string_parse(p, quote, out);
	} else {
		rc = quote == '"' ? basic_string_parse(p, out) : literal_string_parse(p, out);
	}
	if (rc == 0 && buf_finish(out) < 0)
		return parser_oom(p);
	return rc;
}

static int string_value_parse(TomlParser *p, json_t **out)
{
	TomlBuf buf = { 0 };
	int rc = string_parse(p, true, &buf);

	if (rc == 0) {
		*out = json_stringn(buf.data, buf.len);
		if (!*out)
			rc = parser_oom(p);
	}
	free(buf.data);
	return rc;
}

/* ------------------------------------------------------------------------- */
/* Keys                                                                      */
/* ------------------------------------------------------------------------- */

static void key_free(TomlKey *key)
{
	for (size_t i = 0; i < key->count; i++)
		free(key->parts[i].name);
	key->count = 0;
}

static int bare_key_parse(TomlParser *p, TomlBuf *out)
{
	size_t start = p->pos;

	while (is_bare_key_char(peek(p)))
		p->pos++;
	if (p->pos == start) {
		int c = peek(p);

		if (c == '=')
			return parser_fail(p, p->pos, "missing key before '='");
		if (c == -1 || is_newline_start(c))
			return parser_fail(p, p->pos, "expected a key");
		return parser_fail(p, p->pos, "invalid character in key");
	}
	if (buf_push(out, p->src + start, p->pos - start) < 0)
		return parser_oom(p);
	return 0;
}

static int key_part_parse(TomlParser *p, TomlKey *key)
{
	TomlBuf buf = { 0 };
	size_t start = p->pos;
	int c = peek(p);
	int rc;

	if (key->count == TOML_MAX_KEY_PARTS)
		return parser_fail(p, start, "nesting deeper than %d levels", TOML_MAX_DEPTH);
	rc = (c == '"' || c == '\'') ? string_parse(p, false, &buf) : bare_key_parse(p, &buf);
	if (rc == 0 && buf_finish(&buf) < 0)
		rc = parser_oom(p);
	if (rc < 0) {
		free(buf.data);
		return rc;
	}
	key->parts[key->count++] = (TomlKeyPart){ buf.data, buf.len, start };
	return 0;
}

/* key = simple-key *( ws "." ws simple-key ); consumes trailing whitespace. */
static int key_parse(TomlParser *p, TomlKey *key)
{
	for (;;) {
		int rc = key_part_parse(p, key);

		if (rc < 0)
			return rc;
		ws_skip(p);
		if (peek(p) != '.')
			return 0;
		p->pos++;
		ws_skip(p);
	}
}

/* ------------------------------------------------------------------------- */
/* Numbers                                                                   */
/* ------------------------------------------------------------------------- */

typedef bool (*TomlDigitClass)(int c);

static bool is_octal_digit(int c)
{
	return c >= '0' && c <= '7';
}

static bool is_binary_digit(int c)
{
	return c == '0' || c == '1';
}

/* digits *( ["_"] digit ): an underscore needs a digit on each side. Digits go to out. */
static int digits_parse(TomlParser *p, size_t *i, size_t end, TomlDigitClass is_ok, TomlBuf *out)
{
	const char *s = p->src;

	if (*i >= end || !is_ok((unsigned char)s[*i]))
		return parser_fail(p, *i, "invalid number: expected a digit");
	for (;;) {
		if (buf_push_byte(out, s[*i]) < 0)
			return parser_oom(p);
		(*i)++;
		if (*i < end && s[*i] == '_') {
			if (*i + 1 >= end || !is_ok((unsigned char)s[*i + 1]))
				return parser_fail(p, *i,
						   "invalid number: underscore must be between digits");
			(*i)++;
		} else if (*i >= end || !is_ok((unsigned char)s[*i])) {
			return 0;
		}
	}
}

/* Accumulates digits into an int64 magnitude; negative allows one more (INT64_MIN). */
static int integer_from_digits(TomlParser *p, size_t start, const TomlBuf *digits, int base, bool negative,
			       json_t **out)
{
	const uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t mag = 0;

	for (size_t i = 0; i < digits->len; i++) {
		uint64_t d = (uint64_t)hex_digit_value((unsigned char)digits->data[i]);

		if (mag > (limit - d) / (uint64_t)base)
			return parser_fail(p, start, "integer out of range");
		mag = mag * (uint64_t)base + d;
	}
	if (negative)
		*out = json_integer(mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)mag);
	else
		*out = json_integer((json_int_t)mag);
	return *out ? 0 : parser_oom(p);
}

/* 0x / 0o / 0b integers: no sign, result must fit a non-negative int64. */
static int prefixed_integer_parse(TomlParser *p, size_t start, size_t end, json_t **out)
{
	char kind = p->src[start + 1];
	TomlDigitClass is_ok = kind == 'x' ? is_hex_digit : kind == 'o' ? is_octal_digit : is_binary_digit;
	int base = kind == 'x' ? 16 : kind == 'o' ? 8 : 2;
	TomlBuf digits = { 0 };
	size_t i = start + 2;
	int rc = digits_parse(p, &i, end, is_ok, &digits);

	if (rc == 0 && i != end)
		rc = parser_fail(p, i, "invalid character in number");
	if (rc == 0)
		rc = integer_from_digits(p, start, &digits, base, false, out);
	free(digits.data);
	return rc;
}

/* Created once per parse, so strtod ignores whatever locale the process has set. */
static locale_t c_locale_get(TomlParser *p)
{
	if (!p->c_locale)
		p->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	return p->c_locale;
}

/* text holds a validated decimal float without underscores. */
static int float_from_text(TomlParser *p, size_t start, const TomlBuf *text, json_t **out)
{
	locale_t loc = c_locale_get(p);
	double v;

	if (!loc)
		return parser_oom(p);
	v = strtod_l(text->data, NULL, loc);
	if (!isfinite(v))
		return parser_fail(p, start, "float out of range");
	*out = json_real(v);
	return *out ? 0 : parser_oom(p);
}

/* Optional fraction and exponent after the integer part; sets *is_float if either is present. */
static int float_tail_parse(TomlParser *p, size_t *i, size_t end, TomlBuf *text, bool *is_float)
{
	const char *s = p->src;
	int rc;

	if (*i < end && s[*i] == '.') {
		*is_float = true;
		(*i)++;
		if (buf_push_byte(text, '.') < 0)
			return parser_oom(p);
		rc = digits_parse(p, i, end, is_digit, text);
		if (rc < 0)
			return rc;
	}
	if (*i < end && (s[*i] == 'e' || s[*i] == 'E')) {
		*is_float = true;
		(*i)++;
		if (buf_push_byte(text, 'e') < 0)
			return parser_oom(p);
		if (*i < end && (s[*i] == '+' || s[*i] == '-')) {
			if (buf_push_byte(text, s[*i]) < 0)
				return parser_oom(p);
			(*i)++;
		}
		return digits_parse(p, i, end, is_digit, text);
	}
	return 0;
}

/* Starts the text handed to strtod: an optional '-', then the integer digits. */
static int float_text_start(TomlBuf *text, bool negative, const TomlBuf *digits)
{
	if (negative && buf_push_byte(text, '-') < 0)
		return -ENOMEM;
	return buf_push(text, digits->data, digits->len);
}

/* Decimal integer or float; [start, end) is the whole token, sign included. */
static int decimal_parse(TomlParser *p, size_t start, size_t end, json_t **out)
{
	const char *s = p->src;
	bool negative = s[start] == '-';
	size_t i = start + (s[start] == '-' || s[start] == '+');
	size_t int_start = i;
	TomlBuf text = { 0 };
	TomlBuf digits = { 0 };
	bool is_float = false;
	int rc = digits_parse(p, &i, end, is_digit, &digits);

	if (rc == 0 && digits.len > 1 && digits.data[0] == '0')
		rc = parser_fail(p, int_start, "invalid number: leading zeros are not allowed");
	if (rc == 0 && float_text_start(&text, negative, &digits) < 0)
		rc = parser_oom(p);
	if (rc == 0)
		rc = float_tail_parse(p, &i, end, &text, &is_float);
	if (rc == 0 && i != end)
		rc = parser_fail(p, i, "invalid character in number");
	if (rc == 0)
		rc = is_float ? float_from_text(p, start, &text, out)
			      : integer_from_digits(p, start, &digits, 10, negative, out);
	free(text.data);
	free(digits.data);
	return rc;
}

static bool span_equals(const TomlParser *p, size_t start, size_t end, const char *word)
{
	size_t n = strlen(word);

	return end - start == n && memcmp(p->src + start, word, n) == 0;
}

/* JSON has no inf/nan, so they are kept as their text, like date-times. */
static int text_value(TomlParser *p, size_t start, size_t end, json_t **out)
{
	*out = json_stringn(p->src + start, end - start);
	return *out ? 0 : parser_oom(p);
}

/* Name of the base a 0x / 0o / 0b prefix letter selects, or NULL. */
static const char *radix_name(char kind)
{
	switch (kind) {
	case 'x':
		return "hexadecimal";
	case 'o':
		return "octal";
	case 'b':
		return "binary";
	default:
		return NULL;
	}
}

static int number_parse(TomlParser *p, size_t start, size_t end, json_t **out)
{
	const char *s = p->src;
	size_t body = start + (s[start] == '-' || s[start] == '+');

	if (span_equals(p, body, end, "inf") || span_equals(p, body, end, "nan"))
		return text_value(p, start, end, out);
	if (end - body >= 2 && s[body] == '0' && radix_name(s[body + 1])) {
		if (body != start)
			return parser_fail(p, start, "invalid number: sign not allowed on %s integer",
					   radix_name(s[body + 1]));
		return prefixed_integer_parse(p, start, end, out);
	}
	return decimal_parse(p, start, end, out);
}

/* ------------------------------------------------------------------------- */
/* Dates and times                                                           */
/* ------------------------------------------------------------------------- */

static int fixed_digits_parse(TomlParser *p, size_t *i, size_t end, int count, int *value)
{
	*value = 0;
	for (int k = 0; k < count; k++) {
		if (*i >= end || !is_digit((unsigned char)p->src[*i]))
			return parser_fail(p, *i, "invalid date-time: expected a digit");
		*value = *value * 10 + (p->src[*i] - '0');
		(*i)++;
	}
	return 0;
}

static int char_expect(TomlParser *p, size_t *i, size_t end, char want)
{
	if (*i >= end || p->src[*i] != want)
		return parser_fail(p, *i, "invalid date-time: expected '%c'", want);
	(*i)++;
	return 0;
}

/* Two-digit field in [min, max]; what names it in the message. */
static int field_parse(TomlParser *p, size_t *i, size_t end, int min, int max, const char *what, int *value)
{
	size_t at = *i;
	int rc = fixed_digits_parse(p, i, end, 2, value);

	if (rc == 0 && (*value < min || *value > max))
		rc = parser_fail(p, at, "invalid date-time: %s out of range", what);
	return rc;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	if (month < 1 || month > 12)
		return 0;
	return month == 2 && leap ? 29 : days[month - 1];
}

/* full-date = YYYY-MM-DD with a real calendar day. */
static int date_parse(TomlParser *p, size_t *i, size_t end)
{
	int year;
	int month;
	int day;
	int rc = fixed_digits_parse(p, i, end, 4, &year);

	if (rc == 0)
		rc = char_expect(p, i, end, '-');
	if (rc == 0)
		rc = field_parse(p, i, end, 1, 12, "month", &month);
	if (rc == 0)
		rc = char_expect(p, i, end, '-');
	if (rc == 0)
		rc = field_parse(p, i, end, 1, days_in_month(year, month), "day", &day);
	return rc;
}

/* partial-time = HH:MM:SS[.fraction]; second 60 is a leap second, as RFC 3339 allows. */
static int time_parse(TomlParser *p, size_t *i, size_t end)
{
	int v;
	int rc = field_parse(p, i, end, 0, 23, "hour", &v);

	if (rc == 0)
		rc = char_expect(p, i, end, ':');
	if (rc == 0)
		rc = field_parse(p, i, end, 0, 59, "minute", &v);
	if (rc == 0)
		rc = char_expect(p, i, end, ':');
	if (rc == 0)
		rc = field_parse(p, i, end, 0, 60, "second", &v);
	if (rc == 0 && *i < end && p->src[*i] == '.') {
		(*i)++;
		if (*i >= end || !is_digit((unsigned char)p->src[*i]))
			return parser_fail(p, *i, "invalid date-time: expected a digit");
		while (*i < end && is_digit((unsigned char)p->src[*i]))
			(*i)++;
	}
	return rc;
}

/* time-offset = "Z" / ("+" / "-") HH:MM */
static int offset_parse(TomlParser *p, size_t *i, size_t end)
{
	char c = p->src[*i];
	int v;
	int rc;

	if (c == 'Z' || c == 'z') {
		(*i)++;
		return 0;
	}
	if (c != '+' && c != '-')
		return parser_fail(p, *i, "invalid date-time: expected 'Z' or a UTC offset");
	(*i)++;
	rc = field_parse(p, i, end, 0, 23, "offset hour", &v);
	if (rc == 0)
		rc = char_expect(p, i, end, ':');
	if (rc == 0)
		rc = field_parse(p, i, end, 0, 59, "offset minute", &v);
	return rc;
}

/* Local date, local date-time or offset date-time over [start, end). */
static int datetime_parse(TomlParser *p, size_t start, size_t end, json_t **out)
{
	size_t i = start;
	int rc = date_parse(p, &i, end);

	if (rc == 0 && i < end) {
		char delim = p->src[i];

		if (delim != 'T' && delim != 't' && delim != ' ')
			return parser_fail(p, i, "invalid date-time: expected 'T' between date and time");
		i++;
		rc = time_parse(p, &i, end);
		if (rc == 0 && i < end)
			rc = offset_parse(p, &i, end);
	}
	if (rc == 0 && i != end)
		rc = parser_fail(p, i, "invalid date-time: unexpected character");
	return rc < 0 ? rc : text_value(p, start, end, out);
}

static int local_time_parse(TomlParser *p, size_t start, size_t end, json_t **out)
{
	size_t i = start;
	int rc = time_parse(p, &i, end);

	if (rc == 0 && i != end)
		rc = parser_fail(p, i, "invalid time: unexpected character");
	return rc < 0 ? rc : text_value(p, start, end, out);
}

/* ------------------------------------------------------------------------- */
/* Scalar tokens                                                             */
/* ------------------------------------------------------------------------- */

static bool is_token_char(int c)
{
	return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

static size_t token_end(const TomlParser *p, size_t start)
{
	size_t i = start;

	while (i < p->len && is_token_char((unsigned char)p->src[i]))
		i++;
	return i;
}

static bool digits_at(const TomlParser *p, size_t at, size_t end, size_t count)
{
	if (end - at < count)
		return false;
	for (size_t k = 0; k < count; k++) {
		if (!is_digit((unsigned char)p->src[at + k]))
			return false;
	}
	return true;
}

static bool looks_like_date(const TomlParser *p, size_t start, size_t end)
{
	return end - start >= 5 && digits_at(p, start, end, 4) && p->src[start + 4] == '-';
}

static bool looks_like_time(const TomlParser *p, size_t start, size_t end)
{
	return end - start >= 3 && digits_at(p, start, end, 2) && p->src[start + 2] == ':';
}

/* A bare date followed by a space and a digit continues with a time ("1979-05-27 07:32:00"). */
static size_t datetime_end(const TomlParser *p, size_t start, size_t end)
{
	if (end - start == 10 && end + 1 < p->len && p->src[end] == ' ' &&
	    is_digit((unsigned char)p->src[end + 1]))
		return token_end(p, end + 1);
	return end;
}

/* Numbers, dates, times, booleans and inf/nan: everything unquoted that is not a container. */
static int scalar_parse(TomlParser *p, json_t **out)
{
	size_t start = p->pos;
	size_t end = token_end(p, start);
	int rc;

	if (span_equals(p, start, end, "true") || span_equals(p, start, end, "false")) {
		*out = p->src[start] == 't' ? json_true() : json_false();
		rc = 0;
	} else if (span_equals(p, start, end, "inf") || span_equals(p, start, end, "nan")) {
		rc = text_value(p, start, end, out);
	} else if (looks_like_date(p, start, end)) {
		end = datetime_end(p, start, end);
		rc = datetime_parse(p, start, end, out);
	} else if (looks_like_time(p, start, end)) {
		rc = local_time_parse(p, start, end, out);
	} else if (is_digit((unsigned char)p->src[start]) || p->src[start] == '+' || p->src[start] == '-') {
		rc = number_parse(p, start, end, out);
	} else {
		rc = parser_fail(p, start, "invalid value");
	}
	if (rc == 0)
		p->pos = end;
	return rc;
}

/* ------------------------------------------------------------------------- */
/* Arrays and inline tables                                                  */
/* ------------------------------------------------------------------------- */

static int depth_check(TomlParser *p, size_t offset, int depth)
{
	if (depth > TOML_MAX_DEPTH)
		return parser_fail(p, offset, "nesting deeper than %d levels", TOML_MAX_DEPTH);
	return 0;
}

static int array_append(TomlParser *p, json_t *array, json_t *value)
{
	return json_array_append_new(array, value) < 0 ? parser_oom(p) : 0;
}

/* After an element: a comma (more may follow) or the closing bracket. */
static int array_separator(TomlParser *p, bool *done)
{
	int c;
	int rc = blank_skip(p);

	if (rc < 0)
		return rc;
	c = peek(p);
	if (c == ',' || c == ']') {
		p->pos++;
		*done = c == ']';
		return 0;
	}
	if (c == -1)
		return parser_fail(p, p->pos, "unterminated array");
	return parser_fail(p, p->pos, "expected ',' or ']' in array");
}

static int array_items_parse(TomlParser *p, json_t *array, int depth)
{
	bool done = false;

	while (!done) {
		json_t *value = NULL;
		int rc = blank_skip(p);

		if (rc < 0)
			return rc;
		if (peek(p) == ']') {
			p->pos++;
			return 0;
		}
		if (peek(p) == -1)
			return parser_fail(p, p->pos, "unterminated array");
		rc = value_parse(p, depth + 1, &value);
		if (rc == 0)
			rc = array_append(p, array, value);
		if (rc == 0)
			rc = array_separator(p, &done);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int array_parse(TomlParser *p, int depth, json_t **out)
{
	json_t *array;
	int rc = depth_check(p, p->pos, depth);

	if (rc < 0)
		return rc;
	array = json_array();
	if (!array)
		return parser_oom(p);
	p->pos++;
	rc = array_items_parse(p, array, depth);
	if (rc < 0) {
		json_decref(array);
		return rc;
	}
	*out = array;
	return 0;
}

/* After a key/value pair in an inline table: a comma and another pair, or '}'. */
static int inline_separator(TomlParser *p, bool *done)
{
	int c;

	ws_skip(p);
	c = peek(p);
	if (c == '}') {
		p->pos++;
		*done = true;
		return 0;
	}
	if (c == ',') {
		p->pos++;
		ws_skip(p);
		if (peek(p) == '}')
			return parser_fail(p, p->pos, "trailing comma not allowed in inline table");
		return 0;
	}
	if (c == -1)
		return parser_fail(p, p->pos, "unterminated inline table");
	if (is_newline_start(c))
		return parser_fail(p, p->pos, "newline not allowed in inline table");
	return parser_fail(p, p->pos, "expected ',' or '}' in inline table");
}

static int inline_items_parse(TomlParser *p, json_t *table, int depth)
{
	bool done = false;

	ws_skip(p);
	if (peek(p) == '}') {
		p->pos++;
		return 0;
	}
	while (!done) {
		int rc;

		ws_skip(p);
		if (is_newline_start(peek(p)))
			return parser_fail(p, p->pos, "newline not allowed in inline table");
		rc = keyval_parse(p, table, depth);
		if (rc == 0)
			rc = inline_separator(p, &done);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int inline_table_parse(TomlParser *p, int depth, json_t **out)
{
	json_t *table;
	int rc = depth_check(p, p->pos, depth);

	if (rc < 0)
		return rc;
	table = json_object();
	if (!table)
		return parser_oom(p);
	p->pos++;
	rc = inline_items_parse(p, table, depth);
	if (rc < 0) {
		json_decref(table);
		return rc;
	}
	*out = table;
	return 0;
}

/* depth is the depth the value would have if it is a container. */
static int value_parse(TomlParser *p, int depth, json_t **out)
{
	int c = peek(p);

	if (c == '"' || c == '\'')
		return string_value_parse(p, out);
	if (c == '[')
		return array_parse(p, depth, out);
	if (c == '{')
		return inline_table_parse(p, depth, out);
	if (c == -1 || is_newline_start(c) || (c != 0 && strchr("#,]}=", c)))
		return parser_fail(p, p->pos, "expected a value");
	if (is_token_char(c))
		return scalar_parse(p, out);
	return parser_fail(p, p->pos, "invalid value");
}

/* ------------------------------------------------------------------------- */
/* Table tree                                                                */
/* ------------------------------------------------------------------------- */

static json_t *child_get(json_t *table, const TomlKeyPart *part)
{
	return json_object_getn(table, part->name, part->len);
}

/* Creates a container under table; the table owns it afterwards. */
static int child_add(TomlParser *p, json_t *table, const TomlKeyPart *part, json_t *child, unsigned flags)
{
	if (!child)
		return parser_oom(p);
	if (json_object_setn_new(table, part->name, part->len, child) < 0)
		return parser_oom(p);
	return flags ? meta_add(p, child, flags) : 0;
}

/* One step of a dotted key/value: only tables made by dotted keys or implicitly may be entered. */
static int dotted_step(TomlParser *p, json_t **table, int *depth, const TomlKeyPart *part)
{
	json_t *child = child_get(*table, part);
	unsigned flags;
	int rc;

	if (!child) {
		rc = depth_check(p, part->offset, *depth + 1);
		if (rc == 0)
			rc = child_add(p, *table, part, json_object(), TOML_META_DOTTED);
		child = child_get(*table, part);
	} else if (!json_is_object(child)) {
		rc = parser_fail_key(p, part, "key \"%s\" is already defined and is not a table");
	} else if ((flags = meta_get(p, child)) & TOML_META_STATIC) {
		rc = parser_fail_key(p, part, "cannot add keys to inline table \"%s\"");
	} else if (flags & TOML_META_EXPLICIT) {
		rc = parser_fail_key(p, part, "cannot add keys to table \"%s\" defined by a [table] header");
	} else {
		rc = meta_add(p, child, TOML_META_DOTTED); /* a later [header] may no longer define it */
	}
	if (rc < 0)
		return rc;
	*table = child;
	(*depth)++;
	return 0;
}

/* key = value into table, creating the tables named by a dotted key on the way. */
static int keyval_assign(TomlParser *p, json_t *table, int depth, const TomlKey *key)
{
	const TomlKeyPart *last = &key->parts[key->count - 1];
	json_t *value = NULL;
	int rc = 0;

	for (size_t i = 0; i + 1 < key->count && rc == 0; i++)
		rc = dotted_step(p, &table, &depth, &key->parts[i]);
	if (rc == 0 && child_get(table, last))
		rc = parser_fail_key(p, last, "duplicate key \"%s\"");
	if (rc == 0)
		rc = value_parse(p, depth + 1, &value);
	if (rc < 0)
		return rc;
	if (json_object_setn_new(table, last->name, last->len, value) < 0)
		return parser_oom(p);
	if (json_is_object(value) || json_is_array(value))
		return meta_add(p, value, TOML_META_STATIC);
	return 0;
}

static int keyval_parse(TomlParser *p, json_t *table, int depth)
{
	TomlKey key = { .count = 0 };
	int rc = key_parse(p, &key);

	if (rc == 0 && peek(p) != '=')
		rc = parser_fail(p, p->pos, "expected '=' after key");
	if (rc == 0) {
		int c;

		p->pos++;
		ws_skip(p);
		c = peek(p);
		if (c == -1 || is_newline_start(c) || c == '#')
			rc = parser_fail_key_at(p, p->pos, &key.parts[key.count - 1],
						"missing value for key \"%s\"");
	}
	if (rc == 0)
		rc = keyval_assign(p, table, depth, &key);
	key_free(&key);
	return rc;
}

/* One step of a [header] path: any non-inline table may be entered; [[x]] enters the last element. */
static int header_step(TomlParser *p, json_t **table, int *depth, const TomlKeyPart *part)
{
	json_t *child = child_get(*table, part);
	int rc = 0;

	if (!child) {
		rc = depth_check(p, part->offset, *depth + 1);
		if (rc == 0)
			rc = child_add(p, *table, part, json_object(), 0);
		child = child_get(*table, part);
		*depth += 1;
	} else if (json_is_object(child) && !(meta_get(p, child) & TOML_META_STATIC)) {
		*depth += 1;
	} else if (json_is_array(child) && (meta_get(p, child) & TOML_META_AOT)) {
		child = json_array_get(child, json_array_size(child) - 1);
		*depth += 2;
	} else if (json_is_object(child)) {
		rc = parser_fail_key(p, part, "cannot extend inline table \"%s\"");
	} else {
		rc = parser_fail_key(p, part, "key \"%s\" is already defined and is not a table");
	}
	*table = child;
	return rc;
}

/* [name]: a table may be defined once, and not if dotted keys or an inline table made it. */
static int table_define(TomlParser *p, json_t **table, int *depth, const TomlKeyPart *part)
{
	json_t *child = child_get(*table, part);
	int rc;

	if (!child) {
		rc = depth_check(p, part->offset, *depth + 1);
		if (rc == 0)
			rc = child_add(p, *table, part, json_object(), TOML_META_EXPLICIT);
		child = child_get(*table, part);
	} else if (json_is_object(child) && meta_get(p, child) == 0) {
		rc = meta_add(p, child, TOML_META_EXPLICIT);
	} else if (json_is_object(child) || (meta_get(p, child) & TOML_META_AOT)) {
		rc = parser_fail_key(p, part, "table \"%s\" already defined");
	} else {
		rc = parser_fail_key(p, part, "duplicate key \"%s\"");
	}
	*table = child;
	*depth += 1;
	return rc;
}

/* [[name]]: appends a fresh table to an array of tables, creating the array if needed. */
static int array_table_append(TomlParser *p, json_t **table, int *depth, const TomlKeyPart *part)
{
	json_t *array = child_get(*table, part);
	json_t *element;
	int rc = 0;

	if (!array) {
		rc = depth_check(p, part->offset, *depth + 2);
		if (rc == 0)
			rc = child_add(p, *table, part, json_array(), TOML_META_AOT);
		array = child_get(*table, part);
	} else if (json_is_array(array) && !(meta_get(p, array) & TOML_META_AOT)) {
		rc = parser_fail_key(p, part, "cannot append to static array \"%s\"");
	} else if (!json_is_array(array)) {
		rc = parser_fail_key(p, part, "key \"%s\" is already defined and is not an array of tables");
	}
	if (rc < 0)
		return rc;
	element = json_object();
	if (!element)
		return parser_oom(p);
	if (json_array_append_new(array, element) < 0)
		return parser_oom(p);
	*table = element;
	*depth += 2;
	return meta_add(p, element, TOML_META_EXPLICIT);
}

/* "[" ws key ws "]" or "[[" ws key ws "]]"; the brackets of [[ and ]] must touch. */
static int header_syntax_parse(TomlParser *p, TomlKey *key, bool *is_array)
{
	int rc;

	*is_array = peek_at(p, 1) == '[';
	p->pos += *is_array ? 2 : 1;
	ws_skip(p);
	rc = key_parse(p, key);
	if (rc < 0)
		return rc;
	if (peek(p) != ']' || (*is_array && peek_at(p, 1) != ']'))
		return parser_fail(p, p->pos, "expected '%s' after table name", *is_array ? "]]" : "]");
	p->pos += *is_array ? 2 : 1;
	return 0;
}

static int header_parse(TomlParser *p, json_t *root)
{
	TomlKey key = { .count = 0 };
	json_t *table = root;
	int depth = 0;
	bool is_array;
	int rc = header_syntax_parse(p, &key, &is_array);

	for (size_t i = 0; rc == 0 && i + 1 < key.count; i++)
		rc = header_step(p, &table, &depth, &key.parts[i]);
	if (rc == 0) {
		const TomlKeyPart *last = &key.parts[key.count - 1];

		rc = is_array ? array_table_append(p, &table, &depth, last)
			      : table_define(p, &table, &depth, last);
	}
	if (rc == 0) {
		p->current = table;
		p->current_depth = depth;
	}
	key_free(&key);
	return rc;
}

/* ------------------------------------------------------------------------- */
/* Document                                                                  */
/* ------------------------------------------------------------------------- */

static int document_parse(TomlParser *p, json_t *root)
{
	p->current = root;
	p->current_depth = 0;
	bom_skip(p);
	while (p->pos < p->len) {
		const char *after = "value";
		int c;
		int rc = 0;

		ws_skip(p);
		c = peek(p);
		if (c == '[') {
			rc = header_parse(p, root);
			after = "table header";
		} else if (c != '#' && c != -1 && !is_newline_start(c)) {
			rc = keyval_parse(p, p->current, p->current_depth);
		}
		if (rc == 0)
			rc = line_end(p, after);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void parser_release(TomlParser *p)
{
	free(p->meta.slots);
	if (p->c_locale)
		freelocale(p->c_locale);
}

int toml_parse(const char *text, size_t len, json_t **out, TomlError *err)
{
	TomlError scratch;
	TomlParser p = { .src = text ? text : "", .len = len };
	json_t *root;
	int rc;

	p.err = err ? err : &scratch;
	memset(p.err, 0, sizeof(*p.err));
	if (!out || (!text && len)) {
		snprintf(p.err->message, sizeof(p.err->message), "invalid argument");
		return -EINVAL;
	}
	*out = NULL;
	rc = text_validate(&p);
	if (rc < 0)
		return rc;
	root = json_object();
	if (!root)
		return parser_oom(&p);
	rc = document_parse(&p, root);
	parser_release(&p);
	if (rc < 0) {
		json_decref(root);
		return rc;
	}
	*out = root;
	return 0;
}
