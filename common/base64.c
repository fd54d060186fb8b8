/* SPDX-License-Identifier: MIT */
/* base64.c - standard base64: pair-table encoding, strict decoding, the reference's error words. */
#include "base64.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * Encoding looks up 12 bits at a time: entry i of this 4096-entry table is the two symbols of
 * i's high and low 6 bits. Three input bytes become two lookups instead of four, which roughly
 * doubles the speed on the 64 KiB output chunks the protocol streams. Built by the preprocessor
 * from the alphabet so that it is a constant, shared by every thread.
 */
/* clang-format off */
#define BASE64_ROW(p)                                                                                      \
	p "A" p "B" p "C" p "D" p "E" p "F" p "G" p "H" p "I" p "J" p "K" p "L" p "M" p "N" p "O" p "P"   \
	p "Q" p "R" p "S" p "T" p "U" p "V" p "W" p "X" p "Y" p "Z" p "a" p "b" p "c" p "d" p "e" p "f"   \
	p "g" p "h" p "i" p "j" p "k" p "l" p "m" p "n" p "o" p "p" p "q" p "r" p "s" p "t" p "u" p "v"   \
	p "w" p "x" p "y" p "z" p "0" p "1" p "2" p "3" p "4" p "5" p "6" p "7" p "8" p "9" p "+" p "/"

static const char base64_pairs[4096 * 2 + 1] =
	BASE64_ROW("A") BASE64_ROW("B") BASE64_ROW("C") BASE64_ROW("D") BASE64_ROW("E") BASE64_ROW("F")
	BASE64_ROW("G") BASE64_ROW("H") BASE64_ROW("I") BASE64_ROW("J") BASE64_ROW("K") BASE64_ROW("L")
	BASE64_ROW("M") BASE64_ROW("N") BASE64_ROW("O") BASE64_ROW("P") BASE64_ROW("Q") BASE64_ROW("R")
	BASE64_ROW("S") BASE64_ROW("T") BASE64_ROW("U") BASE64_ROW("V") BASE64_ROW("W") BASE64_ROW("X")
	BASE64_ROW("Y") BASE64_ROW("Z") BASE64_ROW("a") BASE64_ROW("b") BASE64_ROW("c") BASE64_ROW("d")
	BASE64_ROW("e") BASE64_ROW("f") BASE64_ROW("g") BASE64_ROW("h") BASE64_ROW("i") BASE64_ROW("j")
	BASE64_ROW("k") BASE64_ROW("l") BASE64_ROW("m") BASE64_ROW("n") BASE64_ROW("o") BASE64_ROW("p")
	BASE64_ROW("q") BASE64_ROW("r") BASE64_ROW("s") BASE64_ROW("t") BASE64_ROW("u") BASE64_ROW("v")
	BASE64_ROW("w") BASE64_ROW("x") BASE64_ROW("y") BASE64_ROW("z") BASE64_ROW("0") BASE64_ROW("1")
	BASE64_ROW("2") BASE64_ROW("3") BASE64_ROW("4") BASE64_ROW("5") BASE64_ROW("6") BASE64_ROW("7")
	BASE64_ROW("8") BASE64_ROW("9") BASE64_ROW("+") BASE64_ROW("/");
/* clang-format on */

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define XX 0xff /* not a symbol ('=' included: padding is handled apart) */
/* clang-format off */
static const uint8_t base64_values[256] = {
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, 62, XX, XX, XX, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, XX, XX, XX, XX, XX, XX,
	XX,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, XX, XX, XX, XX, XX,
	XX, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
	XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
};
/* clang-format on */
#undef XX

#define BASE64_INVALID 0xffu
#define BASE64_PAD ((unsigned char)'=')

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

static inline void base64_put_group(const uint8_t *in, char *out)
{
	uint32_t v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
	memcpy(out, &base64_pairs[(v >> 12) * 2], 2);
	memcpy(out + 2, &base64_pairs[(v & 0xfff) * 2], 2);
}

void base64_encode(const uint8_t *in, size_t n, char *out)
{
	/* Four groups per round keep the loop overhead off the critical path. */
	while (n >= 12) {
		base64_put_group(in, out);
		base64_put_group(in + 3, out + 4);
		base64_put_group(in + 6, out + 8);
		base64_put_group(in + 9, out + 12);
		in += 12;
		out += 16;
		n -= 12;
	}
	while (n >= 3) {
		base64_put_group(in, out);
		in += 3;
		out += 4;
		n -= 3;
	}
	if (n > 0) {
		uint32_t v = (uint32_t)in[0] << 16 | (n > 1 ? (uint32_t)in[1] << 8 : 0);
		out[0] = base64_alphabet[v >> 18];
		out[1] = base64_alphabet[(v >> 12) & 63];
		out[2] = n > 1 ? base64_alphabet[(v >> 6) & 63] : BASE64_PAD;
		out[3] = BASE64_PAD;
		out += 4;
	}
	*out = '\0';
}

size_t base64_decoded_max(size_t len)
{
	return len / 4 * 3 + (len % 4 ? 3 : 0);
}

int base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	const unsigned char *s = (const unsigned char *)in;
	uint8_t *o = out;
	if (len % 4 != 0)
		return -EINVAL;
	if (len == 0) {
		*out_len = 0;
		return 0;
	}
	size_t body = len - 4; /* the last quad may carry padding */
	for (size_t i = 0; i < body; i += 4) {
		uint32_t a = base64_values[s[i]], b = base64_values[s[i + 1]];
		uint32_t c = base64_values[s[i + 2]], d = base64_values[s[i + 3]];
		if ((a | b | c | d) & 0x80)
			return -EINVAL;
		uint32_t v = a << 18 | b << 12 | c << 6 | d;
		o[0] = (uint8_t)(v >> 16);
		o[1] = (uint8_t)(v >> 8);
		o[2] = (uint8_t)v;
		o += 3;
	}
	s += body;
	uint32_t a = base64_values[s[0]], b = base64_values[s[1]];
	if ((a | b) & 0x80)
		return -EINVAL;
	if (s[3] == BASE64_PAD && s[2] == BASE64_PAD) {
		if (b & 0x0f) /* bits no byte uses: not the canonical encoding */
			return -EINVAL;
		*o++ = (uint8_t)(a << 2 | b >> 4);
	} else if (s[3] == BASE64_PAD) {
		uint32_t c = base64_values[s[2]];
		if ((c & 0x80) || (c & 0x03))
			return -EINVAL;
		uint32_t v = a << 18 | b << 12 | c << 6;
		*o++ = (uint8_t)(v >> 16);
		*o++ = (uint8_t)(v >> 8);
	} else {
		uint32_t c = base64_values[s[2]], d = base64_values[s[3]];
		if ((c | d) & 0x80)
			return -EINVAL;
		uint32_t v = a << 18 | b << 12 | c << 6 | d;
		*o++ = (uint8_t)(v >> 16);
		*o++ = (uint8_t)(v >> 8);
		*o++ = (uint8_t)v;
	}
	*out_len = (size_t)(o - out);
	return 0;
}

/*
 * The reference decodes with the Rust base64 crate (0.22, STANDARD: canonical padding, no
 * trailing bits), and its clients see that crate's error text. This replays the crate's order
 * of checks so that the first fault it would name is the one named here: a stray final byte
 * first (a trailing newline), then every complete quad but the last, then the suffix with its
 * padding rules.
 */
void base64_describe_error(const char *in, size_t len, char *msg, size_t msg_len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t rem = len % 4;
	if (msg_len == 0)
		return;
	msg[0] = '\0';
	if (rem == 1 && s[len - 1] != BASE64_PAD && base64_values[s[len - 1]] == BASE64_INVALID) {
		snprintf(msg, msg_len, "Invalid symbol %u, offset %zu.", s[len - 1], len - 1);
		return;
	}
	size_t quads = len - rem;
	if (rem == 0)
		quads = quads >= 4 ? quads - 4 : 0;
	for (size_t i = 0; i < quads; i++) {
		if (base64_values[s[i]] == BASE64_INVALID) {
			snprintf(msg, msg_len, "Invalid symbol %u, offset %zu.", s[i], i);
			return;
		}
	}
	uint32_t morsels[4] = { 0 };
	size_t morsel_count = 0, pad_count = 0, first_pad = 0;
	unsigned last_symbol = 0;
	for (size_t k = 0; quads + k < len; k++) {
		unsigned char ch = s[quads + k];
		if (ch == BASE64_PAD) {
			if (k < 2) {
				snprintf(msg, msg_len, "Invalid symbol %u, offset %zu.", ch, quads + k);
				return;
			}
			if (pad_count++ == 0)
				first_pad = k;
			continue;
		}
		if (pad_count > 0) {
			snprintf(msg, msg_len, "Invalid symbol %u, offset %zu.", BASE64_PAD,
				 quads + first_pad);
			return;
		}
		if (base64_values[ch] == BASE64_INVALID) {
			snprintf(msg, msg_len, "Invalid symbol %u, offset %zu.", ch, quads + k);
			return;
		}
		last_symbol = ch;
		morsels[morsel_count++] = base64_values[ch];
	}
	if (len > 0 && morsel_count < 2) {
		snprintf(msg, msg_len, "Invalid input length: %zu", quads + morsel_count);
		return;
	}
	if ((pad_count + morsel_count) % 4 != 0) {
		snprintf(msg, msg_len, "Invalid padding");
		return;
	}
	size_t whole_bytes = morsel_count * 6 / 8;
	uint32_t bits = morsels[0] << 26 | morsels[1] << 20 | morsels[2] << 14 | morsels[3] << 8;
	uint32_t unused = whole_bytes >= 4 ? 0 : ~0u >> (whole_bytes * 8);
	if (len > 0 && (bits & unused) != 0)
		snprintf(msg, msg_len, "Invalid last symbol %u, offset %zu.", last_symbol,
			 quads + morsel_count - 1);
}

static int base64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int base64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	if (len % 4 == 1)
		return -EINVAL;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		int v = base64url_value((unsigned char)in[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -EINVAL;
	*out_len = n;
	return 0;
}

void base64url_encode(const uint8_t *in, size_t n, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = alphabet[(acc >> bits) & 63];
		}
		acc &= (1u << bits) - 1;
	}
	if (bits > 0)
		out[o++] = alphabet[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}
