/* SPDX-License-Identifier: MIT */
/* patch.c - the Codex apply_patch format: the lenient parser, the fuzzy line search, the update
 * derivation and the unified diff, each behaving as codex-rs/apply-patch does. */
#include "patch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"

/* ---- growable byte buffer ------------------------------------------------------------------- */

struct buf {
	char *p;
	size_t n, cap;
	bool failed;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->failed)
		return;
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		buf_add(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)n);
	free(big);
}

/* The finished string (never NULL unless allocation failed); the buffer is handed over. */
static char *buf_take(struct buf *b)
{
	if (b->failed) {
		free(b->p);
		return NULL;
	}
	if (!b->p)
		return strdup("");
	return b->p;
}

/* ---- slices and Unicode whitespace (Rust's str::trim) ---------------------------------------- */

struct slice {
	const char *p;
	size_t n;
};

static bool slice_eq(struct slice a, struct slice b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static bool slice_eq_str(struct slice a, const char *s)
{
	return slice_eq(a, (struct slice){ s, strlen(s) });
}

static bool slice_has_prefix(struct slice a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.n >= n && memcmp(a.p, prefix, n) == 0;
}

/*
 * Decode one UTF-8 scalar at @p (@n bytes available) into *@cp; return its length. A malformed
 * byte decodes as a value no character has (0x110000 + byte), one byte long, so it compares
 * only with itself and is never whitespace.
 */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		goto bad;
	}
	if (len > n)
		goto bad;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			goto bad;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		goto bad;
	*cp = v;
	return len;
bad:
	*cp = 0x110000u + c;
	return 1;
}

/* Unicode White_Space, the set Rust's char::is_whitespace (and so str::trim) uses. */
static bool is_unicode_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
	       cp == 0x205f || cp == 0x3000;
}

static struct slice trim_start(struct slice s)
{
	while (s.n) {
		uint32_t cp;
		size_t len = utf8_decode((const unsigned char *)s.p, s.n, &cp);
		if (!is_unicode_space(cp))
			break;
		s.p += len;
		s.n -= len;
	}
	return s;
}

static struct slice trim_end(struct slice s)
{
	while (s.n) {
		/* Step back to the lead byte of the last character, then decode it forwards. */
		size_t start = s.n - 1;
		while (start > 0 && s.n - start < 4 && ((unsigned char)s.p[start] & 0xc0) == 0x80)
			start--;
		uint32_t cp;
		size_t len = utf8_decode((const unsigned char *)s.p + start, s.n - start, &cp);
		if (start + len != s.n || !is_unicode_space(cp))
			break;
		s.n = start;
	}
	return s;
}

static struct slice trim(struct slice s)
{
	return trim_end(trim_start(s));
}

/* seek_sequence's last resort: typographic punctuation folded to ASCII (after trimming). */
static uint32_t fold_punctuation(uint32_t cp)
{
	switch (cp) {
	case 0x2010:
	case 0x2011:
	case 0x2012:
	case 0x2013:
	case 0x2014:
	case 0x2015:
	case 0x2212:
		return '-';
	case 0x2018:
	case 0x2019:
	case 0x201a:
	case 0x201b:
		return '\'';
	case 0x201c:
	case 0x201d:
	case 0x201e:
	case 0x201f:
		return '"';
	case 0x00a0:
	case 0x2002:
	case 0x2003:
	case 0x2004:
	case 0x2005:
	case 0x2006:
	case 0x2007:
	case 0x2008:
	case 0x2009:
	case 0x200a:
	case 0x202f:
	case 0x205f:
	case 0x3000:
		return ' ';
	default:
		return cp;
	}
}

static bool eq_folded(struct slice a, struct slice b)
{
	a = trim(a);
	b = trim(b);
	size_t i = 0, j = 0;
	while (i < a.n && j < b.n) {
		uint32_t ca, cb;
		i += utf8_decode((const unsigned char *)a.p + i, a.n - i, &ca);
		j += utf8_decode((const unsigned char *)b.p + j, b.n - j, &cb);
		if (fold_punctuation(ca) != fold_punctuation(cb))
			return false;
	}
	return i == a.n && j == b.n;
}

/* ---- seek_sequence ---------------------------------------------------------------------------- */

enum seek_pass { SEEK_EXACT, SEEK_RSTRIP, SEEK_TRIM, SEEK_FOLD };

static bool lines_match(struct slice line, struct slice pat, enum seek_pass pass)
{
	switch (pass) {
	case SEEK_EXACT:
		return slice_eq(line, pat);
	case SEEK_RSTRIP:
		return slice_eq(trim_end(line), trim_end(pat));
	case SEEK_TRIM:
		return slice_eq(trim(line), trim(pat));
	case SEEK_FOLD:
		return eq_folded(line, pat);
	}
	return false;
}

static long seek_slices(const struct slice *lines, size_t n_lines, const struct slice *pattern,
			size_t n_pattern, size_t start, bool eof)
{
	if (n_pattern == 0)
		return (long)start;
	if (n_pattern > n_lines)
		return -1;
	/* With eof only the window that ends at the last line is tried (the reference's loop starts
	 * there and runs to the same last start). */
	size_t search_start = eof ? n_lines - n_pattern : start;
	size_t last = n_lines - n_pattern;
	for (int pass = SEEK_EXACT; pass <= SEEK_FOLD; pass++) {
		for (size_t i = search_start; i <= last; i++) {
			size_t k = 0;
			while (k < n_pattern && lines_match(lines[i + k], pattern[k], (enum seek_pass)pass))
				k++;
			if (k == n_pattern)
				return (long)i;
		}
	}
	return -1;
}

static struct slice *slices_of_strings(char *const *strs, size_t n)
{
	struct slice *s = calloc(n ? n : 1, sizeof(*s));
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = (struct slice){ strs[i], strlen(strs[i]) };
	return s;
}

long patch_seek_sequence(char *const *lines, size_t n_lines, char *const *pattern, size_t n_pattern,
			 size_t start, bool eof)
{
	struct slice *l = slices_of_strings(lines, n_lines), *p = slices_of_strings(pattern, n_pattern);
	long rc = l && p ? seek_slices(l, n_lines, p, n_pattern, start, eof) : -1;
	free(l);
	free(p);
	return rc;
}

/* ---- parsed patch ownership ------------------------------------------------------------------ */

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void hunk_clear(struct patch_hunk *h)
{
	free(h->path);
	free(h->abs_path);
	free(h->move_path);
	free(h->abs_move_path);
	free(h->contents);
	for (size_t i = 0; i < h->n_chunks; i++) {
		free(h->chunks[i].change_context);
		strv_free(h->chunks[i].old_lines, h->chunks[i].n_old);
		strv_free(h->chunks[i].new_lines, h->chunks[i].n_new);
	}
	free(h->chunks);
	memset(h, 0, sizeof(*h));
}

void patch_free(struct patch *patch)
{
	if (!patch)
		return;
	for (size_t i = 0; i < patch->n_hunks; i++)
		hunk_clear(&patch->hunks[i]);
	free(patch->hunks);
	free(patch->text);
	free(patch);
}

void patch_error_clear(struct patch_error *err)
{
	if (!err)
		return;
	free(err->message);
	err->message = NULL;
	err->line_number = 0;
}

static char *error_format(const struct patch_error *err, const char *whole, const char *hunk_fmt)
{
	struct buf b = { 0 };
	const char *msg = err->message ? err->message : "";
	if (err->line_number == 0) {
		buf_str(&b, whole);
		buf_str(&b, msg);
	} else {
		buf_printf(&b, hunk_fmt, err->line_number);
		buf_str(&b, msg);
	}
	return buf_take(&b);
}

char *patch_error_format(const struct patch_error *err)
{
	return error_format(err, "invalid patch: ", "invalid hunk at line %zu, ");
}

char *patch_error_format_cli(const struct patch_error *err)
{
	return error_format(err, "Invalid patch: ", "Invalid patch hunk on line %zu: ");
}

/* ---- the parser -------------------------------------------------------------------------------- */

#define BEGIN_PATCH_MARKER "*** Begin Patch"
#define END_PATCH_MARKER "*** End Patch"
#define ADD_FILE_MARKER "*** Add File: "
#define DELETE_FILE_MARKER "*** Delete File: "
#define UPDATE_FILE_MARKER "*** Update File: "
#define MOVE_TO_MARKER "*** Move to: "
#define EOF_MARKER "*** End of File"
#define CHANGE_CONTEXT_MARKER "@@ "
#define EMPTY_CHANGE_CONTEXT_MARKER "@@"

struct parser {
	const char *cwd;
	struct patch_error *err;
	int rc; /* the first failure: -EINVAL (err filled in) or -ENOMEM */
};

static int fail(struct parser *ps, size_t line_number, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct parser *ps, size_t line_number, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return ps->rc = -ENOMEM;
	ps->err->line_number = line_number;
	ps->err->message = msg;
	return ps->rc = -EINVAL;
}

static char *slice_dup(struct slice s)
{
	return strndup(s.p, s.n);
}

/* Push a copy of @s onto a string vector. */
static int strv_push(char ***v, size_t *n, struct slice s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = slice_dup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Rust's str::lines(): split on '\n', drop one '\r' before it, no empty line after a final '\n'. */
static struct slice *split_patch_lines(struct slice text, size_t *n_out)
{
	size_t cap = 1;
	for (size_t i = 0; i < text.n; i++)
		cap += text.p[i] == '\n';
	struct slice *lines = calloc(cap, sizeof(*lines));
	if (!lines)
		return NULL;
	size_t n = 0, start = 0;
	while (start < text.n) {
		const char *nl = memchr(text.p + start, '\n', text.n - start);
		size_t end = nl ? (size_t)(nl - text.p) : text.n;
		struct slice line = { text.p + start, end - start };
		if (nl && line.n && line.p[line.n - 1] == '\r')
			line.n--;
		lines[n++] = line;
		start = end + 1;
	}
	*n_out = n;
	return lines;
}

static int check_boundaries_strict(struct parser *ps, const struct slice *lines, size_t n)
{
	struct slice first = n ? trim(lines[0]) : (struct slice){ 0 };
	struct slice last = n ? trim(lines[n - 1]) : (struct slice){ 0 };
	if (n && slice_eq_str(first, BEGIN_PATCH_MARKER) && slice_eq_str(last, END_PATCH_MARKER))
		return 0;
	if (n && !slice_eq_str(first, BEGIN_PATCH_MARKER))
		return fail(ps, 0, "The first line of the patch must be '*** Begin Patch'");
	return fail(ps, 0, "The last line of the patch must be '*** End Patch'");
}

/* Resolve @path against the cwd into a malloc'd absolute path. */
static char *resolve(struct parser *ps, struct slice path, size_t line_number)
{
	if (path.n == 0) {
		fail(ps, line_number, "The path of this hunk is empty");
		return NULL;
	}
	char *raw = slice_dup(path);
	char *out = malloc(AGENTD_PATH_MAX);
	if (!raw || !out) {
		free(raw);
		free(out);
		ps->rc = -ENOMEM;
		return NULL;
	}
	int rc = path_normalize(ps->cwd, raw, out, AGENTD_PATH_MAX);
	if (rc < 0) {
		fail(ps, line_number, "The path '%s' cannot be resolved: %s", raw, strerror(-rc));
		free(raw);
		free(out);
		return NULL;
	}
	free(raw);
	return out;
}

/* One "@@" chunk of an update hunk; *@consumed lines. @line_number is the 1-based line of lines[0]. */
static int parse_chunk(struct parser *ps, const struct slice *lines, size_t n, size_t line_number,
		       bool allow_missing_context, struct patch_chunk *chunk, size_t *consumed)
{
	static const char unexpected[] =
		"Unexpected line found in update hunk: '%.*s'. Every line should start "
		"with ' ' (context line), '+' (added line), or '-' (removed line)";
	size_t start = 0;
	if (n == 0)
		return fail(ps, line_number, "Update hunk does not contain any lines");
	if (slice_eq_str(lines[0], EMPTY_CHANGE_CONTEXT_MARKER)) {
		start = 1;
	} else if (slice_has_prefix(lines[0], CHANGE_CONTEXT_MARKER)) {
		size_t skip = strlen(CHANGE_CONTEXT_MARKER);
		if (!(chunk->change_context =
			      slice_dup((struct slice){ lines[0].p + skip, lines[0].n - skip })))
			return ps->rc = -ENOMEM;
		start = 1;
	} else if (!allow_missing_context) {
		return fail(ps, line_number,
			    "Expected update hunk to start with a @@ context marker, got: '%.*s'",
			    (int)lines[0].n, lines[0].p);
	}
	if (start >= n)
		return fail(ps, line_number + 1, "Update hunk does not contain any lines");

	size_t parsed = 0;
	for (size_t i = start; i < n; i++) {
		struct slice line = lines[i];
		if (slice_eq_str(line, EOF_MARKER)) {
			if (parsed == 0)
				return fail(ps, line_number + 1, "Update hunk does not contain any lines");
			chunk->is_end_of_file = true;
			parsed++;
			break;
		}
		struct slice rest = { line.p + (line.n ? 1 : 0), line.n ? line.n - 1 : 0 };
		int rc = 0;
		if (line.n == 0) {
			/* An empty line is taken as an empty context line. */
			rc = strv_push(&chunk->old_lines, &chunk->n_old, rest);
			if (!rc)
				rc = strv_push(&chunk->new_lines, &chunk->n_new, rest);
		} else if (line.p[0] == ' ') {
			rc = strv_push(&chunk->old_lines, &chunk->n_old, rest);
			if (!rc)
				rc = strv_push(&chunk->new_lines, &chunk->n_new, rest);
		} else if (line.p[0] == '+') {
			rc = strv_push(&chunk->new_lines, &chunk->n_new, rest);
		} else if (line.p[0] == '-') {
			rc = strv_push(&chunk->old_lines, &chunk->n_old, rest);
		} else {
			if (parsed == 0)
				return fail(ps, line_number + 1, unexpected, (int)line.n, line.p);
			break; /* the start of the next chunk or hunk */
		}
		if (rc)
			return ps->rc = rc;
		parsed++;
	}
	*consumed = parsed + start;
	return 0;
}

static int push_chunk(struct patch_hunk *h, struct patch_chunk *c)
{
	struct patch_chunk *nc = realloc(h->chunks, (h->n_chunks + 1) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	h->chunks = nc;
	h->chunks[h->n_chunks++] = *c;
	memset(c, 0, sizeof(*c));
	return 0;
}

static void chunk_clear(struct patch_chunk *c)
{
	free(c->change_context);
	strv_free(c->old_lines, c->n_old);
	strv_free(c->new_lines, c->n_new);
	memset(c, 0, sizeof(*c));
}

/* One hunk starting at lines[0] (1-based line @line_number); *@consumed lines. */
static int parse_hunk(struct parser *ps, const struct slice *lines, size_t n, size_t line_number,
		      struct patch_hunk *h, size_t *consumed)
{
	/* Markers may be padded with whitespace. */
	struct slice first = trim(lines[0]);
	if (slice_has_prefix(first, ADD_FILE_MARKER)) {
		size_t skip = strlen(ADD_FILE_MARKER);
		struct slice path = { first.p + skip, first.n - skip };
		struct buf contents = { 0 };
		size_t parsed = 1;
		while (parsed < n && lines[parsed].n && lines[parsed].p[0] == '+') {
			buf_add(&contents, lines[parsed].p + 1, lines[parsed].n - 1);
			buf_add(&contents, "\n", 1);
			parsed++;
		}
		h->kind = PATCH_HUNK_ADD;
		h->contents_len = contents.n;
		h->contents = buf_take(&contents);
		if (!h->contents || !(h->path = slice_dup(path)))
			return ps->rc = -ENOMEM;
		if (!(h->abs_path = resolve(ps, path, line_number)))
			return ps->rc;
		*consumed = parsed;
		return 0;
	}
	if (slice_has_prefix(first, DELETE_FILE_MARKER)) {
		size_t skip = strlen(DELETE_FILE_MARKER);
		struct slice path = { first.p + skip, first.n - skip };
		h->kind = PATCH_HUNK_DELETE;
		if (!(h->path = slice_dup(path)))
			return ps->rc = -ENOMEM;
		if (!(h->abs_path = resolve(ps, path, line_number)))
			return ps->rc;
		*consumed = 1;
		return 0;
	}
	if (slice_has_prefix(first, UPDATE_FILE_MARKER)) {
		size_t skip = strlen(UPDATE_FILE_MARKER);
		struct slice path = { first.p + skip, first.n - skip };
		size_t parsed = 1;
		h->kind = PATCH_HUNK_UPDATE;
		if (!(h->path = slice_dup(path)))
			return ps->rc = -ENOMEM;
		if (!(h->abs_path = resolve(ps, path, line_number)))
			return ps->rc;
		/* "*** Move to:" is matched unpadded, as the reference does. */
		if (parsed < n && slice_has_prefix(lines[parsed], MOVE_TO_MARKER)) {
			size_t mskip = strlen(MOVE_TO_MARKER);
			struct slice mpath = { lines[parsed].p + mskip, lines[parsed].n - mskip };
			if (!(h->move_path = slice_dup(mpath)))
				return ps->rc = -ENOMEM;
			if (!(h->abs_move_path = resolve(ps, mpath, line_number + parsed)))
				return ps->rc;
			parsed++;
		}
		while (parsed < n) {
			if (trim(lines[parsed]).n == 0) { /* blank lines between chunks */
				parsed++;
				continue;
			}
			if (lines[parsed].p[0] == '*')
				break; /* the next hunk */
			struct patch_chunk chunk = { 0 };
			size_t used = 0;
			int rc = parse_chunk(ps, lines + parsed, n - parsed, line_number + parsed,
					     h->n_chunks == 0, &chunk, &used);
			if (!rc && push_chunk(h, &chunk) < 0)
				rc = ps->rc = -ENOMEM;
			if (rc) {
				chunk_clear(&chunk);
				return rc;
			}
			parsed += used;
		}
		if (h->n_chunks == 0)
			return fail(ps, line_number, "Update file hunk for path '%s' is empty", h->path);
		*consumed = parsed;
		return 0;
	}
	return fail(ps, line_number,
		    "'%.*s' is not a valid hunk header. Valid hunk headers: '*** Add File: {path}', "
		    "'*** Delete File: {path}', '*** Update File: {path}'",
		    (int)first.n, first.p);
}

static bool is_heredoc_open(struct slice s)
{
	return slice_eq_str(s, "<<EOF") || slice_eq_str(s, "<<'EOF'") || slice_eq_str(s, "<<\"EOF\"");
}

int patch_parse(const char *text, size_t len, const char *cwd, struct patch **out, struct patch_error *err)
{
	struct parser ps = { .cwd = cwd, .err = err, .rc = 0 };
	struct slice *lines = NULL;
	struct patch *patch = NULL;
	size_t n = 0;
	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (!cwd || cwd[0] != '/')
		return -EINVAL;
	/* A C string cannot carry a NUL through to a file name or a line; refuse rather than cut. */
	if (memchr(text, '\0', len))
		return fail(&ps, 0, "The patch contains a NUL byte");

	if (!(lines = split_patch_lines(trim((struct slice){ text, len }), &n)))
		return -ENOMEM;
	/* Lenient mode: strict first; if that fails, try unwrapping a heredoc (at least 4 lines). */
	struct slice *body = lines;
	size_t n_body = n;
	if (check_boundaries_strict(&ps, lines, n) < 0) {
		if (ps.rc == -EINVAL && n >= 4 && is_heredoc_open(lines[0]) && lines[n - 1].n >= 3 &&
		    memcmp(lines[n - 1].p + lines[n - 1].n - 3, "EOF", 3) == 0) {
			patch_error_clear(err);
			ps.rc = 0;
			body = lines + 1;
			n_body = n - 2;
			if (check_boundaries_strict(&ps, body, n_body) < 0)
				goto out;
		} else {
			goto out;
		}
	}

	if (!(patch = calloc(1, sizeof(*patch)))) {
		ps.rc = -ENOMEM;
		goto out;
	}
	struct buf joined = { 0 };
	for (size_t i = 0; i < n_body; i++) {
		if (i)
			buf_add(&joined, "\n", 1);
		buf_add(&joined, body[i].p, body[i].n);
	}
	if (!(patch->text = buf_take(&joined))) {
		ps.rc = -ENOMEM;
		goto out;
	}

	/* Hunks sit between the markers; line numbers are 1-based and line 1 is Begin Patch. */
	size_t pos = 1, end = n_body - 1;
	while (pos < end) {
		struct patch_hunk *nh = realloc(patch->hunks, (patch->n_hunks + 1) * sizeof(*nh));
		if (!nh) {
			ps.rc = -ENOMEM;
			goto out;
		}
		patch->hunks = nh;
		struct patch_hunk *h = &patch->hunks[patch->n_hunks++];
		memset(h, 0, sizeof(*h));
		size_t used = 0;
		if (parse_hunk(&ps, body + pos, end - pos, pos + 1, h, &used) < 0)
			goto out;
		pos += used;
	}
out:
	free(lines);
	if (ps.rc < 0) {
		patch_free(patch);
		return ps.rc;
	}
	*out = patch;
	return 0;
}

/* ---- deriving an update ------------------------------------------------------------------------ */

struct line_vec {
	struct slice *v;
	size_t n, cap;
};

static int line_vec_reserve(struct line_vec *lv, size_t extra)
{
	if (lv->n + extra <= lv->cap)
		return 0;
	size_t cap = lv->cap ? lv->cap : 16;
	while (cap < lv->n + extra)
		cap *= 2;
	struct slice *v = realloc(lv->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	lv->v = v;
	lv->cap = cap;
	return 0;
}

/* The reference splits on '\n' (a '\r' stays in its line) and drops the empty piece after a final
 * newline, so that line counts match diff's. */
static int split_file_lines(const char *text, size_t len, struct line_vec *lv)
{
	size_t start = 0;
	for (;;) {
		const char *nl = len > start ? memchr(text + start, '\n', len - start) : NULL;
		size_t end = nl ? (size_t)(nl - text) : len;
		if (line_vec_reserve(lv, 1) < 0)
			return -ENOMEM;
		lv->v[lv->n++] = (struct slice){ text + start, end - start };
		if (!nl)
			break;
		start = end + 1;
	}
	if (lv->n && lv->v[lv->n - 1].n == 0)
		lv->n--;
	return 0;
}

struct replacement {
	size_t start, old_len;
	char *const *new_lines;
	size_t n_new;
};

static void join_lines(struct buf *b, char *const *lines, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_add(b, "\n", 1);
		buf_str(b, lines[i]);
	}
}

static int compute_replacements(const struct patch_hunk *h, const struct line_vec *orig,
				struct replacement *reps, char **err_msg)
{
	size_t line_index = 0;
	for (size_t c = 0; c < h->n_chunks; c++) {
		const struct patch_chunk *chunk = &h->chunks[c];
		if (chunk->change_context) {
			struct slice ctx = { chunk->change_context, strlen(chunk->change_context) };
			long idx = seek_slices(orig->v, orig->n, &ctx, 1, line_index, false);
			if (idx < 0) {
				struct buf b = { 0 };
				buf_printf(&b, "Failed to find context '%s' in %s", chunk->change_context,
					   h->abs_path);
				*err_msg = buf_take(&b);
				return *err_msg ? -EINVAL : -ENOMEM;
			}
			line_index = (size_t)idx + 1;
		}
		if (chunk->n_old == 0) {
			/* A pure addition goes at the end of the file (before a final empty line). */
			size_t at = orig->n && orig->v[orig->n - 1].n == 0 ? orig->n - 1 : orig->n;
			reps[c] = (struct replacement){ at, 0, chunk->new_lines, chunk->n_new };
			continue;
		}
		struct slice *pattern = slices_of_strings(chunk->old_lines, chunk->n_old);
		if (!pattern)
			return -ENOMEM;
		size_t n_pattern = chunk->n_old, n_new = chunk->n_new;
		long found =
			seek_slices(orig->v, orig->n, pattern, n_pattern, line_index, chunk->is_end_of_file);
		/* A trailing empty old line stands for the file's final newline, which the split
		 * dropped: retry without it (and without its twin in the new lines). */
		if (found < 0 && pattern[n_pattern - 1].n == 0) {
			n_pattern--;
			if (n_new && chunk->new_lines[n_new - 1][0] == '\0')
				n_new--;
			found = seek_slices(orig->v, orig->n, pattern, n_pattern, line_index,
					    chunk->is_end_of_file);
		}
		free(pattern);
		if (found < 0) {
			struct buf b = { 0 };
			buf_printf(&b, "Failed to find expected lines in %s:\n", h->abs_path);
			join_lines(&b, chunk->old_lines, chunk->n_old);
			*err_msg = buf_take(&b);
			return *err_msg ? -EINVAL : -ENOMEM;
		}
		reps[c] = (struct replacement){ (size_t)found, n_pattern, chunk->new_lines, n_new };
		line_index = (size_t)found + n_pattern;
	}
	/* Stable sort by start (insertion sort: chunks are few and mostly in order already). */
	for (size_t i = 1; i < h->n_chunks; i++) {
		struct replacement r = reps[i];
		size_t j = i;
		while (j > 0 && reps[j - 1].start > r.start) {
			reps[j] = reps[j - 1];
			j--;
		}
		reps[j] = r;
	}
	return 0;
}

int patch_derive_update(const struct patch_hunk *hunk, const char *old, size_t old_len, char **out,
			size_t *out_len, char **err_msg)
{
	struct line_vec lv = { 0 };
	struct replacement *reps = NULL;
	int rc = -ENOMEM;
	*out = NULL;
	*err_msg = NULL;
	if (hunk->kind != PATCH_HUNK_UPDATE)
		return -EINVAL;
	if (split_file_lines(old, old_len, &lv) < 0)
		goto out;
	if (!(reps = calloc(hunk->n_chunks ? hunk->n_chunks : 1, sizeof(*reps))))
		goto out;
	if ((rc = compute_replacements(hunk, &lv, reps, err_msg)) < 0)
		goto out;
	rc = -ENOMEM;
	/* Apply from the last replacement back, so earlier indexes stay valid. */
	for (size_t r = hunk->n_chunks; r-- > 0;) {
		const struct replacement *rep = &reps[r];
		size_t start = rep->start, del = 0;
		if (start < lv.n)
			del = rep->old_len < lv.n - start ? rep->old_len : lv.n - start;
		if (line_vec_reserve(&lv, rep->n_new) < 0)
			goto out;
		if (start > lv.n)
			start = lv.n;
		memmove(lv.v + start + rep->n_new, lv.v + start + del, (lv.n - start - del) * sizeof(*lv.v));
		for (size_t i = 0; i < rep->n_new; i++)
			lv.v[start + i] = (struct slice){ rep->new_lines[i], strlen(rep->new_lines[i]) };
		lv.n = lv.n - del + rep->n_new;
	}
	/* The result always ends with a newline: a final empty line joins as one. */
	struct buf b = { 0 };
	for (size_t i = 0; i < lv.n; i++) {
		if (i)
			buf_add(&b, "\n", 1);
		buf_add(&b, lv.v[i].p, lv.v[i].n);
	}
	if (lv.n && lv.v[lv.n - 1].n != 0)
		buf_add(&b, "\n", 1);
	size_t n = b.n;
	if (!(*out = buf_take(&b)))
		goto out;
	*out_len = n;
	rc = 0;
out:
	free(lv.v);
	free(reps);
	return rc;
}

/* ---- unified diff (Myers, as the similar crate computes and prints it) ------------------------- */

enum op_tag { OP_EQUAL, OP_DELETE, OP_INSERT, OP_REPLACE };

struct diff_op {
	enum op_tag tag;
	size_t old_index, old_len, new_index, new_len;
};

struct differ {
	const struct slice *a, *b;
	ptrdiff_t *vf, *vb; /* furthest x per diagonal, indexed by k + offset */
	ptrdiff_t offset;
	struct diff_op *raw; /* Myers' output, before compaction */
	size_t n_raw, cap_raw;
	struct diff_op *ops; /* after compaction, runs merged */
	size_t n_ops, cap_ops;
	/* the Replace hook's pending runs: equal, or delete and insert */
	bool has_eq, has_del, has_ins;
	struct diff_op eq, del, ins;
	bool failed;
};

static void emit(struct differ *d, struct diff_op op)
{
	if (d->failed)
		return;
	if (d->n_ops == d->cap_ops) {
		size_t cap = d->cap_ops ? d->cap_ops * 2 : 16;
		struct diff_op *ops = realloc(d->ops, cap * sizeof(*ops));
		if (!ops) {
			d->failed = true;
			return;
		}
		d->ops = ops;
		d->cap_ops = cap;
	}
	d->ops[d->n_ops++] = op;
}

static void flush_eq(struct differ *d)
{
	if (d->has_eq)
		emit(d, d->eq);
	d->has_eq = false;
}

/* Adjacent deletes and inserts become one replace, deletes shown first. */
static void flush_del_ins(struct differ *d)
{
	if (d->has_del && d->has_ins)
		emit(d, (struct diff_op){ OP_REPLACE, d->del.old_index, d->del.old_len, d->ins.new_index,
					  d->ins.new_len });
	else if (d->has_del)
		emit(d, d->del);
	else if (d->has_ins)
		emit(d, d->ins);
	d->has_del = d->has_ins = false;
}

static void hook_equal(struct differ *d, size_t old_index, size_t new_index, size_t len)
{
	flush_del_ins(d);
	if (d->has_eq) {
		d->eq.old_len += len;
		d->eq.new_len += len;
	} else {
		d->eq = (struct diff_op){ OP_EQUAL, old_index, len, new_index, len };
		d->has_eq = true;
	}
}

static void hook_delete(struct differ *d, size_t old_index, size_t old_len, size_t new_index)
{
	flush_eq(d);
	if (d->has_del) {
		d->del.old_len += old_len;
	} else {
		d->del = (struct diff_op){ OP_DELETE, old_index, old_len, new_index, 0 };
		d->has_del = true;
	}
}

static void hook_insert(struct differ *d, size_t old_index, size_t new_index, size_t new_len)
{
	flush_eq(d);
	if (d->has_ins) {
		d->ins.new_len += new_len;
	} else {
		d->ins = (struct diff_op){ OP_INSERT, old_index, 0, new_index, new_len };
		d->has_ins = true;
	}
}

static void raw_insert_at(struct differ *d, size_t at, struct diff_op op)
{
	if (d->failed)
		return;
	if (d->n_raw == d->cap_raw) {
		size_t cap = d->cap_raw ? d->cap_raw * 2 : 16;
		struct diff_op *raw = realloc(d->raw, cap * sizeof(*raw));
		if (!raw) {
			d->failed = true;
			return;
		}
		d->raw = raw;
		d->cap_raw = cap;
	}
	memmove(d->raw + at + 1, d->raw + at, (d->n_raw - at) * sizeof(*d->raw));
	d->raw[at] = op;
	d->n_raw++;
}

static void raw_remove_at(struct differ *d, size_t at)
{
	memmove(d->raw + at, d->raw + at + 1, (d->n_raw - at - 1) * sizeof(*d->raw));
	d->n_raw--;
}

static void raw_equal(struct differ *d, size_t old_index, size_t new_index, size_t len)
{
	raw_insert_at(d, d->n_raw, (struct diff_op){ OP_EQUAL, old_index, len, new_index, len });
}

static void raw_delete(struct differ *d, size_t old_index, size_t old_len, size_t new_index)
{
	raw_insert_at(d, d->n_raw, (struct diff_op){ OP_DELETE, old_index, old_len, new_index, 0 });
}

static void raw_insert(struct differ *d, size_t old_index, size_t new_index, size_t new_len)
{
	raw_insert_at(d, d->n_raw, (struct diff_op){ OP_INSERT, old_index, 0, new_index, new_len });
}

static size_t common_prefix(const struct differ *d, size_t a0, size_t a1, size_t b0, size_t b1)
{
	size_t n = 0;
	while (a0 + n < a1 && b0 + n < b1 && slice_eq(d->a[a0 + n], d->b[b0 + n]))
		n++;
	return n;
}

static size_t common_suffix(const struct differ *d, size_t a0, size_t a1, size_t b0, size_t b1)
{
	size_t n = 0;
	while (a1 - n > a0 && b1 - n > b0 && slice_eq(d->a[a1 - n - 1], d->b[b1 - n - 1]))
		n++;
	return n;
}

static size_t max_d(size_t n, size_t m)
{
	return (n + m + 1) / 2 + 1;
}

#define VF(k) d->vf[(k) + d->offset]
#define VB(k) d->vb[(k) + d->offset]

/* The middle snake of the optimal path through a[a0,a1) x b[b0,b1): where to split. */
static void middle_snake(struct differ *d, size_t a0, size_t a1, size_t b0, size_t b1, size_t *xs, size_t *ys)
{
	ptrdiff_t n = (ptrdiff_t)(a1 - a0), m = (ptrdiff_t)(b1 - b0);
	ptrdiff_t delta = n - m;
	bool odd = (delta & 1) != 0;
	VF(1) = 0;
	VB(1) = 0;
	ptrdiff_t dmax = (ptrdiff_t)max_d((size_t)n, (size_t)m);
	for (ptrdiff_t dd = 0; dd < dmax; dd++) {
		for (ptrdiff_t k = dd; k >= -dd; k -= 2) {
			ptrdiff_t x =
				(k == -dd || (k != dd && VF(k - 1) < VF(k + 1))) ? VF(k + 1) : VF(k - 1) + 1;
			ptrdiff_t y = x - k;
			ptrdiff_t x0 = x, y0 = y;
			if (x < n && y < m)
				x += (ptrdiff_t)common_prefix(d, a0 + (size_t)x, a1, b0 + (size_t)y, b1);
			VF(k) = x;
			ptrdiff_t kd = k - delta;
			if (odd && (kd < 0 ? -kd : kd) <= dd - 1 && VF(k) + VB(-kd) >= n) {
				*xs = (size_t)x0 + a0;
				*ys = (size_t)y0 + b0;
				return;
			}
		}
		for (ptrdiff_t k = dd; k >= -dd; k -= 2) {
			ptrdiff_t x =
				(k == -dd || (k != dd && VB(k - 1) < VB(k + 1))) ? VB(k + 1) : VB(k - 1) + 1;
			ptrdiff_t y = x - k;
			if (x < n && y < m) {
				ptrdiff_t adv = (ptrdiff_t)common_suffix(d, a0, a0 + (size_t)(n - x), b0,
									 b0 + (size_t)(m - y));
				x += adv;
				y += adv;
			}
			VB(k) = x;
			ptrdiff_t kd = k - delta;
			if (!odd && (kd < 0 ? -kd : kd) <= dd && VB(k) + VF(-kd) >= n) {
				*xs = (size_t)(n - x) + a0;
				*ys = (size_t)(m - y) + b0;
				return;
			}
		}
	}
	/* Unreachable for finite inputs (the reference only gets here past a deadline): fall back to
	 * replacing the whole range. */
	*xs = a1;
	*ys = b1;
}

static void conquer(struct differ *d, size_t a0, size_t a1, size_t b0, size_t b1)
{
	size_t prefix = common_prefix(d, a0, a1, b0, b1);
	if (prefix)
		raw_equal(d, a0, b0, prefix);
	a0 += prefix;
	b0 += prefix;
	size_t suffix = common_suffix(d, a0, a1, b0, b1);
	a1 -= suffix;
	b1 -= suffix;
	if (a0 == a1 && b0 == b1) {
		/* nothing */
	} else if (b0 == b1) {
		raw_delete(d, a0, a1 - a0, b0);
	} else if (a0 == a1) {
		raw_insert(d, a0, b0, b1 - b0);
	} else {
		size_t xs, ys;
		middle_snake(d, a0, a1, b0, b1, &xs, &ys);
		if ((xs == a1 && ys == b1) || (xs == a0 && ys == b0)) {
			raw_delete(d, a0, a1 - a0, b0);
			raw_insert(d, a0, b0, b1 - b0);
		} else {
			conquer(d, a0, xs, b0, ys);
			conquer(d, xs, a1, ys, b1);
		}
	}
	if (suffix)
		raw_equal(d, a1, b1, suffix);
}

/*
 * similar's Compact pass (cleanup_diff_ops): slide each delete, then each insert, up and then
 * down through neighbouring equal runs and merge it with its kind. Ported operation for
 * operation, including how it measures a delete's slide (against the new side, so deletes do not
 * slide), because the hunk headers it yields are what the reference prints.
 */
static size_t op_old_start(const struct diff_op *op)
{
	return op->old_index;
}

static size_t op_old_stop(const struct diff_op *op)
{
	return op->old_index + (op->tag == OP_INSERT ? 0 : op->old_len);
}

static size_t op_new_start(const struct diff_op *op)
{
	return op->new_index;
}

static size_t op_new_stop(const struct diff_op *op)
{
	return op->new_index + (op->tag == OP_DELETE ? 0 : op->new_len);
}

static bool op_is_empty(const struct diff_op *op)
{
	return op_old_stop(op) == op_old_start(op) && op_new_stop(op) == op_new_start(op);
}

/* DiffOp::adjust: move the start by @off (minus when @off_neg), the length by @len. */
static void op_adjust(struct diff_op *op, size_t off, bool off_neg, size_t len, bool len_neg)
{
	op->old_index = off_neg ? op->old_index - off : op->old_index + off;
	op->new_index = off_neg ? op->new_index - off : op->new_index + off;
	if (op->tag != OP_INSERT)
		op->old_len = len_neg ? op->old_len - len : op->old_len + len;
	if (op->tag != OP_DELETE)
		op->new_len = len_neg ? op->new_len - len : op->new_len + len;
}

static size_t shift_up(struct differ *d, size_t p)
{
	while (p >= 1) {
		struct diff_op prev = d->raw[p - 1], cur = d->raw[p];
		if ((cur.tag == OP_INSERT || cur.tag == OP_DELETE) && prev.tag == OP_EQUAL) {
			size_t suffix = common_suffix(d, op_old_start(&prev), op_old_stop(&prev),
						      op_new_start(&cur), op_new_stop(&cur));
			if (suffix > 0) {
				if (p + 1 < d->n_raw && d->raw[p + 1].tag == OP_EQUAL) {
					op_adjust(&d->raw[p + 1], suffix, true, suffix, false);
				} else {
					size_t len = cur.tag == OP_INSERT ? suffix : prev.old_len - suffix;
					raw_insert_at(d, p + 1,
						      (struct diff_op){ OP_EQUAL, op_old_stop(&prev) - suffix,
									len, op_new_stop(&cur) - suffix,
									len });
					if (d->failed)
						return p;
				}
				op_adjust(&d->raw[p], suffix, true, 0, false);
				op_adjust(&d->raw[p - 1], 0, false, suffix, true);
				if (op_is_empty(&d->raw[p - 1])) {
					raw_remove_at(d, p - 1);
					p--;
				}
			} else if (op_is_empty(&d->raw[p - 1])) {
				raw_remove_at(d, p - 1);
				p--;
			} else {
				break;
			}
		} else if ((cur.tag == OP_INSERT && prev.tag == OP_DELETE) ||
			   (cur.tag == OP_DELETE && prev.tag == OP_INSERT)) {
			d->raw[p - 1] = cur;
			d->raw[p] = prev;
			p--;
		} else if (cur.tag == OP_INSERT && prev.tag == OP_INSERT) {
			op_adjust(&d->raw[p - 1], 0, false, cur.new_len, false);
			raw_remove_at(d, p);
			p--;
		} else if (cur.tag == OP_DELETE && prev.tag == OP_DELETE) {
			op_adjust(&d->raw[p - 1], 0, false, cur.old_len, false);
			raw_remove_at(d, p);
			p--;
		} else {
			break; /* unreachable in the reference */
		}
	}
	return p;
}

static size_t shift_down(struct differ *d, size_t p)
{
	while (p + 1 < d->n_raw) {
		struct diff_op next = d->raw[p + 1], cur = d->raw[p];
		if ((cur.tag == OP_INSERT || cur.tag == OP_DELETE) && next.tag == OP_EQUAL) {
			size_t prefix = common_prefix(d, op_old_start(&next), op_old_stop(&next),
						      op_new_start(&cur), op_new_stop(&cur));
			if (prefix > 0) {
				if (p >= 1 && d->raw[p - 1].tag == OP_EQUAL) {
					op_adjust(&d->raw[p - 1], 0, false, prefix, false);
				} else {
					raw_insert_at(d, p,
						      (struct diff_op){ OP_EQUAL, op_old_start(&next), prefix,
									op_new_start(&cur), prefix });
					if (d->failed)
						return p;
					p++;
				}
				op_adjust(&d->raw[p], prefix, false, 0, false);
				op_adjust(&d->raw[p + 1], prefix, false, prefix, true);
				if (op_is_empty(&d->raw[p + 1]))
					raw_remove_at(d, p + 1);
			} else if (op_is_empty(&d->raw[p + 1])) {
				raw_remove_at(d, p + 1);
			} else {
				break;
			}
		} else if ((cur.tag == OP_INSERT && next.tag == OP_DELETE) ||
			   (cur.tag == OP_DELETE && next.tag == OP_INSERT)) {
			d->raw[p] = next;
			d->raw[p + 1] = cur;
			p++;
		} else if (cur.tag == OP_INSERT && next.tag == OP_INSERT) {
			op_adjust(&d->raw[p], 0, false, next.new_len, false);
			raw_remove_at(d, p + 1);
		} else if (cur.tag == OP_DELETE && next.tag == OP_DELETE) {
			op_adjust(&d->raw[p], 0, false, next.old_len, false);
			raw_remove_at(d, p + 1);
		} else {
			break;
		}
	}
	return p;
}

static void compact(struct differ *d)
{
	static const enum op_tag order[] = { OP_DELETE, OP_INSERT };
	for (size_t t = 0; t < 2; t++) {
		for (size_t p = 0; p < d->n_raw && !d->failed; p++) {
			if (d->raw[p].tag == order[t]) {
				p = shift_up(d, p);
				p = shift_down(d, p);
			}
		}
	}
}

/* similar's tokenisation for from_lines: each line keeps its '\n'; the last may lack one. */
static struct slice *split_diff_lines(const char *text, size_t len, size_t *n_out)
{
	size_t cap = 1;
	for (size_t i = 0; i < len; i++)
		cap += text[i] == '\n';
	struct slice *v = calloc(cap, sizeof(*v));
	if (!v)
		return NULL;
	size_t n = 0, start = 0;
	while (start < len) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) + 1 : len;
		v[n++] = (struct slice){ text + start, end - start };
		start = end;
	}
	*n_out = n;
	return v;
}

static size_t op_old_end(const struct diff_op *op)
{
	return op->old_index + (op->tag == OP_INSERT ? 0 : op->old_len);
}

static size_t op_new_end(const struct diff_op *op)
{
	return op->new_index + (op->tag == OP_DELETE ? 0 : op->new_len);
}

static void print_range(struct buf *b, size_t start, size_t end)
{
	/* Compaction can leave an op whose range runs backwards: similar saturates that to 0. */
	size_t len = end > start ? end - start : 0, beginning = start + 1;
	if (len == 1) {
		buf_printf(b, "%zu", beginning);
		return;
	}
	if (len == 0)
		beginning--; /* an empty range names the line before it */
	buf_printf(b, "%zu,%zu", beginning, len);
}

static void print_change(struct buf *b, char tag, struct slice line)
{
	buf_add(b, &tag, 1);
	buf_add(b, line.p, line.n);
	if (!line.n || line.p[line.n - 1] != '\n')
		buf_str(b, "\n\\ No newline at end of file\n");
}

static void print_hunk(struct buf *b, const struct differ *d, const struct diff_op *ops, size_t n)
{
	buf_str(b, "@@ -");
	print_range(b, ops[0].old_index, op_old_end(&ops[n - 1]));
	buf_str(b, " +");
	print_range(b, ops[0].new_index, op_new_end(&ops[n - 1]));
	buf_str(b, " @@\n");
	for (size_t i = 0; i < n; i++) {
		const struct diff_op *op = &ops[i];
		if (op->tag == OP_EQUAL) {
			for (size_t j = 0; j < op->old_len; j++)
				print_change(b, ' ', d->a[op->old_index + j]);
			continue;
		}
		if (op->tag != OP_INSERT)
			for (size_t j = 0; j < op->old_len; j++)
				print_change(b, '-', d->a[op->old_index + j]);
		if (op->tag != OP_DELETE)
			for (size_t j = 0; j < op->new_len; j++)
				print_change(b, '+', d->b[op->new_index + j]);
	}
}

/* group_diff_ops(): trim the outer equal runs to @ctx lines and split at equal runs longer than
 * twice that, printing each group as a hunk. */
static void print_groups(struct buf *b, struct differ *d, size_t ctx)
{
	struct diff_op *ops = d->ops;
	size_t n = d->n_ops;
	if (n == 0)
		return;
	if (ops[0].tag == OP_EQUAL) {
		size_t cut = ops[0].old_len > ctx ? ops[0].old_len - ctx : 0;
		ops[0].old_index += cut;
		ops[0].new_index += cut;
		ops[0].old_len = ops[0].new_len = ops[0].old_len - cut;
	}
	if (ops[n - 1].tag == OP_EQUAL) {
		size_t cut = ops[n - 1].old_len > ctx ? ops[n - 1].old_len - ctx : 0;
		ops[n - 1].old_len = ops[n - 1].new_len = ops[n - 1].old_len - cut;
	}
	struct diff_op *group = calloc(n * 2 + 1, sizeof(*group));
	if (!group) {
		b->failed = true;
		return;
	}
	size_t g = 0;
	for (size_t i = 0; i < n; i++) {
		struct diff_op op = ops[i];
		if (op.tag == OP_EQUAL && op.old_len > ctx * 2) {
			group[g++] = (struct diff_op){ OP_EQUAL, op.old_index, ctx, op.new_index, ctx };
			if (!(g == 1 && group[0].tag == OP_EQUAL))
				print_hunk(b, d, group, g);
			size_t off = op.old_len - ctx;
			g = 0;
			group[g++] = (struct diff_op){ OP_EQUAL, op.old_index + off, ctx, op.new_index + off,
						       ctx };
			continue;
		}
		group[g++] = op;
	}
	if (g > 0 && !(g == 1 && group[0].tag == OP_EQUAL))
		print_hunk(b, d, group, g);
	free(group);
}

char *patch_unified_diff(const char *old, size_t old_len, const char *new_text, size_t new_len,
			 size_t context)
{
	struct differ d = { 0 };
	struct buf b = { 0 };
	size_t n = 0, m = 0;
	struct slice *a = split_diff_lines(old, old_len, &n), *bl = split_diff_lines(new_text, new_len, &m);
	size_t md = max_d(n, m);
	d.a = a;
	d.b = bl;
	d.offset = (ptrdiff_t)md + 1;
	d.vf = calloc(2 * md + 4, sizeof(*d.vf));
	d.vb = calloc(2 * md + 4, sizeof(*d.vb));
	if (!a || !bl || !d.vf || !d.vb) {
		b.failed = true;
		goto out;
	}
	conquer(&d, 0, n, 0, m);
	if (!d.failed)
		compact(&d);
	/* The Replace hook: merge runs, pair deletes with inserts. */
	for (size_t i = 0; i < d.n_raw && !d.failed; i++) {
		const struct diff_op *op = &d.raw[i];
		if (op->tag == OP_EQUAL)
			hook_equal(&d, op->old_index, op->new_index, op->old_len);
		else if (op->tag == OP_DELETE)
			hook_delete(&d, op->old_index, op->old_len, op->new_index);
		else
			hook_insert(&d, op->old_index, op->new_index, op->new_len);
	}
	flush_eq(&d);
	flush_del_ins(&d);
	if (d.failed) {
		b.failed = true;
		goto out;
	}
	print_groups(&b, &d, context);
out:
	free(a);
	free(bl);
	free(d.vf);
	free(d.vb);
	free(d.raw);
	free(d.ops);
	return buf_take(&b);
}

int patch_change_diff(const struct patch_hunk *hunk, const char *old, size_t old_len, char **out,
		      char **err_msg)
{
	*out = NULL;
	*err_msg = NULL;
	switch (hunk->kind) {
	case PATCH_HUNK_ADD:
		*out = strndup(hunk->contents, hunk->contents_len);
		return *out ? 0 : -ENOMEM;
	case PATCH_HUNK_DELETE:
		*out = strndup(old ? old : "", old ? old_len : 0);
		return *out ? 0 : -ENOMEM;
	case PATCH_HUNK_UPDATE:
		break;
	}
	char *updated = NULL;
	size_t updated_len = 0;
	int rc = patch_derive_update(hunk, old, old_len, &updated, &updated_len, err_msg);
	if (rc < 0)
		return rc;
	char *diff = patch_unified_diff(old, old_len, updated, updated_len, PATCH_DIFF_CONTEXT);
	free(updated);
	if (!diff)
		return -ENOMEM;
	if (!hunk->abs_move_path) {
		*out = diff;
		return 0;
	}
	struct buf b = { 0 };
	buf_str(&b, diff);
	buf_str(&b, "\n\nMoved to: ");
	buf_str(&b, hunk->abs_move_path);
	free(diff);
	*out = buf_take(&b);
	return *out ? 0 : -ENOMEM;
}
