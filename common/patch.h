/* SPDX-License-Identifier: MIT */
/* patch.h - the Codex apply_patch format: parse a patch into hunks, derive a file's new content
 * from its old content, and render the unified diff the fileChange item shows. */
#ifndef AGENTD_PATCH_H
#define AGENTD_PATCH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The format (reference: codex-rs/apply-patch, parser.rs):
 *
 *   *** Begin Patch
 *   *** Add File: path        then "+line" lines
 *   *** Delete File: path
 *   *** Update File: path
 *   *** Move to: newpath      (optional)
 *   @@ [context]              then " ctx", "-old", "+new" lines, optionally "*** End of File"
 *   *** End Patch
 *
 * Parsing is the reference's lenient mode: markers may carry surrounding whitespace, and a patch
 * wrapped in a heredoc (first line <<EOF, <<'EOF' or <<"EOF", last line ending in EOF) is
 * unwrapped. Nothing here touches the file system; callers read and write files themselves.
 */

enum patch_hunk_kind {
	PATCH_HUNK_ADD,
	PATCH_HUNK_DELETE,
	PATCH_HUNK_UPDATE,
};

/* One "@@" section of an update: old_lines (context and '-' lines) become new_lines. */
struct patch_chunk {
	char *change_context; /* the text after "@@ ", or NULL for a bare "@@" / no header */
	char **old_lines;
	size_t n_old;
	char **new_lines;
	size_t n_new;
	bool is_end_of_file; /* "*** End of File": old_lines must sit at the end of the file */
};

struct patch_hunk {
	enum patch_hunk_kind kind;
	char *path;	     /* as written in the patch (what the success summary prints) */
	char *abs_path;	     /* resolved against the cwd, lexically normalised, symlinks untouched */
	char *move_path;     /* update only: "*** Move to:" as written, or NULL */
	char *abs_move_path; /* ... and resolved, or NULL */
	char *contents;	     /* add only: the new file, each '+' line followed by '\n' */
	size_t contents_len;
	struct patch_chunk *chunks; /* update only, in file order */
	size_t n_chunks;
};

struct patch {
	struct patch_hunk *hunks;
	size_t n_hunks;
	char *text; /* the patch without a heredoc wrapper, lines joined by '\n' */
};

/* Why a patch did not parse. line_number is 0 for whole-patch errors ("invalid patch: ..."). */
struct patch_error {
	size_t line_number;
	char *message;
};

/**
 * patch_parse() - parse @len bytes of @text into *@out, resolving relative paths against @cwd
 * (absolute). A patch with no hunks parses (applying it is what fails, "No files were
 * modified.").
 * Return: 0 and *@out (free with patch_free()); -EINVAL with *@err filled in (free with
 * patch_error_clear()) for a patch the reference rejects, worded as the reference words it; an
 * empty or unresolvable path is -EINVAL too; -ENOMEM.
 */
int patch_parse(const char *text, size_t len, const char *cwd, struct patch **out, struct patch_error *err);

/** patch_free() - free a parsed patch; NULL is fine. */
void patch_free(struct patch *patch);

/** patch_error_clear() - free @err's message and zero it; safe on a zeroed error. */
void patch_error_clear(struct patch_error *err);

/**
 * patch_error_format() - @err as the reference's ParseError displays it, which is what the model
 * sees when codex rejects a patch: "invalid patch: <message>" or "invalid hunk at line N,
 * <message>". Return: a malloc'd string, or NULL on ENOMEM.
 */
char *patch_error_format(const struct patch_error *err);

/**
 * patch_error_format_cli() - @err as the standalone apply_patch prints it on stderr (without the
 * newline): "Invalid patch: <message>" or "Invalid patch hunk on line N: <message>".
 */
char *patch_error_format_cli(const struct patch_error *err);

/**
 * patch_seek_sequence() - where @pattern (@n_pattern lines) first occurs in @lines at or after
 * @start, trying in turn: exact, trailing whitespace ignored, surrounding whitespace ignored,
 * and finally with Unicode dashes, quotes and spaces folded to ASCII. With @eof only the
 * position that ends at the last line is tried. An empty pattern matches at @start.
 * Return: the index, or -1.
 */
long patch_seek_sequence(char *const *lines, size_t n_lines, char *const *pattern, size_t n_pattern,
			 size_t start, bool eof);

/**
 * patch_derive_update() - apply update hunk @hunk's chunks to @old (@old_len bytes, the file's
 * current content) into a malloc'd *@out / *@out_len. As the reference: lines split on '\n' (a
 * '\r' stays part of its line), the result always ends in '\n' unless it is empty.
 * Return: 0; -EINVAL with *@err_msg (malloc'd) "Failed to find context '<ctx>' in <abs_path>" or
 * "Failed to find expected lines in <abs_path>:\n<old lines>"; -ENOMEM.
 */
int patch_derive_update(const struct patch_hunk *hunk, const char *old, size_t old_len, char **out,
			size_t *out_len, char **err_msg);

/**
 * patch_unified_diff() - the hunks of a line diff from @old to @new with @context lines of
 * context, as the reference renders it (similar's TextDiff::from_lines, Myers, no ---/+++
 * header): "@@ -a,b +c,d @@" headers, ' '/'-'/'+' lines, "\ No newline at end of file" after a
 * last line without one. Identical inputs give "". The reference's fileChange uses @context 1
 * (PATCH_DIFF_CONTEXT). Return: a malloc'd string, or NULL on ENOMEM.
 */
#define PATCH_DIFF_CONTEXT 1
char *patch_unified_diff(const char *old, size_t old_len, const char *new_text, size_t new_len,
			 size_t context);

/**
 * patch_change_diff() - the `diff` field of a fileChange item for @hunk, given the file's
 * current content (@old, @old_len; ignored for an add): an add shows its contents, a delete the
 * old content, an update the unified diff (PATCH_DIFF_CONTEXT) followed, for a move, by
 * "\n\nMoved to: <abs_move_path>".
 * Return: 0 and a malloc'd *@out; -EINVAL with *@err_msg as patch_derive_update(); -ENOMEM.
 */
int patch_change_diff(const struct patch_hunk *hunk, const char *old, size_t old_len, char **out,
		      char **err_msg);

#endif
