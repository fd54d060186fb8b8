/* SPDX-License-Identifier: MIT */
/* base64.h - standard base64 (RFC 4648 alphabet, canonical '=' padding), as the protocol carries bytes. */
#ifndef AGENTD_BASE64_H
#define AGENTD_BASE64_H

#include <stddef.h>
#include <stdint.h>

/** base64_encoded_len() - characters base64_encode() writes for @n bytes, not counting the NUL. */
size_t base64_encoded_len(size_t n);

/**
 * base64_encode() - encode @n bytes of @in, padded, into @out and NUL-terminate it.
 * @out must have room for base64_encoded_len(@n) + 1 bytes. Never fails.
 */
void base64_encode(const uint8_t *in, size_t n, char *out);

/** base64_decoded_max() - the most bytes base64_decode() can write for @len characters. */
size_t base64_decoded_max(size_t len);

/**
 * base64_decode() - decode @len characters of @in into @out (room for base64_decoded_max(@len)).
 * Accepts exactly what the reference's decoder (Rust base64, STANDARD engine) accepts: the
 * standard alphabet, a length that is a multiple of 4, '=' only as one or two final characters,
 * no whitespace, and no stray bits in the last symbol. The empty string decodes to nothing.
 * Return: 0 and *@out_len; -EINVAL for anything else (base64_describe_error() says why).
 */
int base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

/**
 * base64_describe_error() - why base64_decode() refused @in, worded as the reference's decoder
 * words it ("Invalid symbol 33, offset 0.", "Invalid padding", "Invalid input length: 5",
 * "Invalid last symbol 66, offset 1."), into @msg (NUL-terminated, truncated to @msg_len).
 * For input that decodes, @msg is empty.
 */
void base64_describe_error(const char *in, size_t len, char *msg, size_t msg_len);

/**
 * base64url_decode() - unpadded base64url (RFC 4648 §5), strictly, as JWT segments carry it: no
 * '=', no whitespace, no length of 4n+1, no stray bits in the last symbol. @out has room for
 * @len * 3 / 4 + 1 bytes. Return: 0 and *@out_len, or -EINVAL.
 */
int base64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

/** base64url_encode() - @n bytes as unpadded base64url into @out (room for (4 * @n + 2) / 3 + 1). */
void base64url_encode(const uint8_t *in, size_t n, char *out);

#endif
