/* SPDX-License-Identifier: MIT */
/* ws_auth.c - websocket upgrade credentials: option checks, capability token digest, HS256 JWT. */
#include "ws_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"
#include "hex.h"

static void ws_auth_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ws_auth_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	if (!err || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static bool ws_auth_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim ASCII whitespace in place; returns the new length. */
static size_t ws_auth_trim(char *text, size_t len)
{
	size_t start = 0;
	while (start < len && ws_auth_is_space((unsigned char)text[start]))
		start++;
	while (len > start && ws_auth_is_space((unsigned char)text[len - 1]))
		len--;
	memmove(text, text + start, len - start);
	text[len - start] = '\0';
	return len - start;
}

static bool ws_auth_is_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t more;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			more = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= more)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += more + 1;
	}
	return true;
}

/* --- secret files ---------------------------------------------------------------------------- */

/*
 * Reads @path (resolved against the working directory when relative) as UTF-8 and trims it, as
 * the reference's read_secret_file does. The buffer is wiped before it is freed on failure.
 */
static int ws_auth_read_secret(const char *path, char **out, size_t *out_len, char *err, size_t err_len)
{
	char shown[PATH_MAX + 1];
	if (path[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(shown, sizeof(shown), "%s/%s", cwd, path) >= (int)sizeof(shown))
			snprintf(shown, sizeof(shown), "%s", path);
	} else {
		snprintf(shown, sizeof(shown), "%s", path);
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char *buf = NULL;
	size_t len = 0;
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	buf = malloc(WS_AUTH_MAX_SECRET_FILE_BYTES + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, WS_AUTH_MAX_SECRET_FILE_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > WS_AUTH_MAX_SECRET_FILE_BYTES) {
			rc = -EFBIG;
			goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc == -EFBIG) {
		ws_auth_err(err, err_len, "websocket auth secret %s is larger than %u bytes", shown,
			    WS_AUTH_MAX_SECRET_FILE_BYTES);
	} else if (rc < 0) {
		ws_auth_err(err, err_len, "failed to read websocket auth secret %s: %s (os error %d)", shown,
			    strerror(-rc), -rc);
	} else if (!ws_auth_is_utf8((const unsigned char *)buf, len)) {
		ws_auth_err(err, err_len,
			    "failed to read websocket auth secret %s: stream did not contain valid UTF-8",
			    shown);
		rc = -EINVAL;
	} else {
		buf[len] = '\0';
		len = ws_auth_trim(buf, len);
		if (len == 0) {
			ws_auth_err(err, err_len, "websocket auth secret %s must not be empty", shown);
			rc = -EINVAL;
		}
	}
	if (rc < 0) {
		if (buf)
			OPENSSL_cleanse(buf, WS_AUTH_MAX_SECRET_FILE_BYTES + 1);
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

static int ws_auth_sha256(const void *data, size_t len, uint8_t digest[32])
{
	unsigned int digest_len = 0;
	if (EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) != 1 || digest_len != 32)
		return -EIO;
	return 0;
}

static int ws_auth_parse_digest(const char *text, uint8_t digest[32])
{
	char buf[160];
	size_t len = strlen(text);
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, len + 1);
	len = ws_auth_trim(buf, len);
	if (len != 64)
		return -EINVAL;
	for (size_t i = 0; i < 32; i++) {
		int hi = hex_digit_value(buf[2 * i]), lo = hex_digit_value(buf[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		digest[i] = (uint8_t)((hi << 4) | lo);
	}
	return 0;
}

/* An optional claim expectation: trimmed, and empty means "not checked". */
static int ws_auth_expectation(const char *text, char **out)
{
	*out = NULL;
	if (!text)
		return 0;
	char *copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	if (ws_auth_trim(copy, strlen(copy)) == 0) {
		free(copy);
		return 0;
	}
	*out = copy;
	return 0;
}

static int ws_auth_check_path(const WsAuthOptions *opts, const char *flag, const char *path, char *err,
			      size_t err_len)
{
	if (opts->requires_absolute_paths && path[0] != '/') {
		ws_auth_err(err, err_len, "%s must be an absolute path", flag);
		return -EINVAL;
	}
	return 0;
}

static int ws_auth_parse_skew(const char *text, int64_t *out, char *err, size_t err_len)
{
	char *end = NULL;
	errno = 0;
	if (text[0] < '0' || text[0] > '9') {
		ws_auth_err(err, err_len,
			    "invalid value '%s' for '--ws-max-clock-skew-seconds <SECONDS>': invalid digit "
			    "found in string",
			    text);
		return -EINVAL;
	}
	unsigned long long value = strtoull(text, &end, 10);
	if (*end != '\0') {
		ws_auth_err(err, err_len,
			    "invalid value '%s' for '--ws-max-clock-skew-seconds <SECONDS>': invalid digit "
			    "found in string",
			    text);
		return -EINVAL;
	}
	/* The skew is added to claim times: keep the sums far from overflow. */
	if (errno == ERANGE || value > (unsigned long long)INT32_MAX) {
		ws_auth_err(
			err, err_len,
			"invalid value '%s' for '--ws-max-clock-skew-seconds <SECONDS>': number too large",
			text);
		return -EINVAL;
	}
	*out = (int64_t)value;
	return 0;
}

int ws_auth_configure(const WsAuthOptions *opts, WsAuth *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	out->max_clock_skew_s = WS_AUTH_DEFAULT_CLOCK_SKEW_S;
	bool has_token_flags = opts->token_file || opts->token_sha256;
	bool has_signed_flags =
		opts->shared_secret_file || opts->issuer || opts->audience || opts->max_clock_skew_s;
	if (!opts->mode) {
		if (has_token_flags || has_signed_flags) {
			ws_auth_err(err, err_len,
				    "websocket auth flags require `--ws-auth capability-token` or `--ws-auth "
				    "signed-bearer-token`");
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(opts->mode, "capability-token") == 0) {
		out->mode = WS_AUTH_CAPABILITY_TOKEN;
	} else if (strcmp(opts->mode, "signed-bearer-token") == 0) {
		out->mode = WS_AUTH_SIGNED_BEARER_TOKEN;
	} else {
		ws_auth_err(err, err_len,
			    "invalid value '%s' for '--ws-auth <MODE>' [possible values: capability-token, "
			    "signed-bearer-token]",
			    opts->mode);
		return -EINVAL;
	}
	if (out->mode == WS_AUTH_CAPABILITY_TOKEN) {
		if (has_signed_flags) {
			ws_auth_err(err, err_len,
				    "`--ws-shared-secret-file`, `--ws-issuer`, `--ws-audience`, and "
				    "`--ws-max-clock-skew-seconds` require `--ws-auth signed-bearer-token`");
			goto fail;
		}
		if (opts->token_file && opts->token_sha256) {
			ws_auth_err(err, err_len,
				    "`--ws-token-file` and `--ws-token-sha256` are mutually exclusive");
			goto fail;
		}
		if (opts->token_sha256) {
			if (ws_auth_parse_digest(opts->token_sha256, out->token_digest) < 0) {
				ws_auth_err(err, err_len,
					    "--ws-token-sha256 must be a 64-character hex SHA-256 digest");
				goto fail;
			}
			return 0;
		}
		if (!opts->token_file) {
			ws_auth_err(err, err_len,
				    "`--ws-token-file` or `--ws-token-sha256` is required when `--ws-auth "
				    "capability-token` is set");
			goto fail;
		}
		char *token;
		size_t token_len;
		if (ws_auth_check_path(opts, "--ws-token-file", opts->token_file, err, err_len) < 0 ||
		    ws_auth_read_secret(opts->token_file, &token, &token_len, err, err_len) < 0)
			goto fail;
		/* Only the digest stays: the token itself is wiped right away. */
		int rc = ws_auth_sha256(token, token_len, out->token_digest);
		OPENSSL_cleanse(token, token_len);
		free(token);
		if (rc < 0) {
			ws_auth_err(err, err_len, "cannot compute SHA-256");
			goto fail;
		}
		return 0;
	}
	if (has_token_flags) {
		ws_auth_err(
			err, err_len,
			"`--ws-token-file` and `--ws-token-sha256` require `--ws-auth capability-token`, not "
			"`signed-bearer-token`");
		goto fail;
	}
	if (!opts->shared_secret_file) {
		ws_auth_err(
			err, err_len,
			"`--ws-shared-secret-file` is required when `--ws-auth signed-bearer-token` is set");
		goto fail;
	}
	if (opts->max_clock_skew_s &&
	    ws_auth_parse_skew(opts->max_clock_skew_s, &out->max_clock_skew_s, err, err_len) < 0)
		goto fail;
	char *secret;
	size_t secret_len;
	if (ws_auth_check_path(opts, "--ws-shared-secret-file", opts->shared_secret_file, err, err_len) < 0 ||
	    ws_auth_read_secret(opts->shared_secret_file, &secret, &secret_len, err, err_len) < 0)
		goto fail;
	out->secret = (uint8_t *)secret;
	out->secret_len = secret_len;
	if (secret_len < WS_AUTH_MIN_SECRET_BYTES) {
		ws_auth_err(err, err_len, "signed websocket bearer secret %s must be at least %u bytes",
			    opts->shared_secret_file, WS_AUTH_MIN_SECRET_BYTES);
		goto fail;
	}
	if (ws_auth_expectation(opts->issuer, &out->issuer) < 0 ||
	    ws_auth_expectation(opts->audience, &out->audience) < 0) {
		ws_auth_err(err, err_len, "out of memory");
		goto fail;
	}
	return 0;
fail:
	ws_auth_clear(out);
	return -EINVAL;
}

void ws_auth_clear(WsAuth *auth)
{
	if (!auth)
		return;
	if (auth->secret) {
		OPENSSL_cleanse(auth->secret, auth->secret_len);
		free(auth->secret);
	}
	free(auth->issuer);
	free(auth->audience);
	OPENSSL_cleanse(auth->token_digest, sizeof(auth->token_digest));
	memset(auth, 0, sizeof(*auth));
}

/* --- the upgrade check ------------------------------------------------------------------------- */

static const char WS_AUTH_MISSING[] = "missing websocket bearer token";
static const char WS_AUTH_BAD_HEADER[] = "invalid authorization header";
static const char WS_AUTH_BAD_TOKEN[] = "invalid websocket bearer token";
static const char WS_AUTH_BAD_JWT[] = "invalid websocket jwt";
static const char WS_AUTH_EXPIRED[] = "expired websocket jwt";
static const char WS_AUTH_NOT_YET[] = "websocket jwt is not valid yet";
static const char WS_AUTH_ISSUER[] = "websocket jwt issuer mismatch";
static const char WS_AUTH_AUDIENCE[] = "websocket jwt audience mismatch";

/* XOR-accumulate over all 32 bytes: the time taken does not depend on where they differ. */
static bool ws_auth_digest_equal(const uint8_t a[32], const uint8_t b[32])
{
	uint8_t diff = 0;
	for (size_t i = 0; i < 32; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff == 0;
}

/* A JWT segment decoded as a JSON object, or NULL. */
static json_t *ws_auth_segment_json(const char *seg, size_t len)
{
	uint8_t *buf = malloc(len * 3 / 4 + 1);
	size_t n;
	json_t *value = NULL;
	if (buf && base64url_decode(seg, len, buf, &n) == 0)
		value = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (value && !json_is_object(value)) {
		json_decref(value);
		value = NULL;
	}
	return value;
}

/* A NumericDate claim: absent (false), an integer (true, *out), or anything else (-1). */
static int ws_auth_time_claim(json_t *claims, const char *name, int64_t *out)
{
	json_t *value = json_object_get(claims, name);
	if (!value)
		return 0;
	if (!json_is_integer(value))
		return -1;
	*out = (int64_t)json_integer_value(value);
	return 1;
}

static const char *ws_auth_check_claims(const WsAuth *auth, json_t *claims, int64_t now_s)
{
	int64_t exp = 0, nbf = 0;
	int has_exp = ws_auth_time_claim(claims, "exp", &exp);
	int has_nbf = ws_auth_time_claim(claims, "nbf", &nbf);
	json_t *iss = json_object_get(claims, "iss");
	json_t *aud = json_object_get(claims, "aud");
	/* The claims must deserialize before anything is judged: exp is required, types are strict. */
	if (has_exp != 1 || has_nbf < 0 || (iss && !json_is_string(iss) && !json_is_null(iss)))
		return WS_AUTH_BAD_JWT;
	if (aud && json_is_array(aud)) {
		size_t i;
		json_t *item;
		json_array_foreach (aud, i, item)
			if (!json_is_string(item))
				return WS_AUTH_BAD_JWT;
	} else if (aud && !json_is_string(aud) && !json_is_null(aud)) {
		return WS_AUTH_BAD_JWT;
	}
	int64_t skew = auth->max_clock_skew_s;
	if (now_s > exp && now_s - exp > skew)
		return WS_AUTH_EXPIRED;
	if (has_nbf && now_s < nbf && nbf - now_s > skew)
		return WS_AUTH_NOT_YET;
	if (auth->issuer && (!json_is_string(iss) || strcmp(json_string_value(iss), auth->issuer) != 0))
		return WS_AUTH_ISSUER;
	if (auth->audience) {
		bool is_match = false;
		if (json_is_string(aud)) {
			is_match = strcmp(json_string_value(aud), auth->audience) == 0;
		} else if (json_is_array(aud)) {
			size_t i;
			json_t *item;
			json_array_foreach (aud, i, item)
				is_match = is_match || strcmp(json_string_value(item), auth->audience) == 0;
		}
		if (!is_match)
			return WS_AUTH_AUDIENCE;
	}
	return NULL;
}

/* HS256 only: a header naming any other algorithm ("none" included) is refused before anything. */
static const char *ws_auth_check_jwt(const WsAuth *auth, const char *token, int64_t now_s)
{
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
		return WS_AUTH_BAD_JWT;
	json_t *header = ws_auth_segment_json(token, (size_t)(dot1 - token));
	json_t *alg = header ? json_object_get(header, "alg") : NULL;
	bool is_hs256 = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0;
	json_decref(header);
	if (!is_hs256)
		return WS_AUTH_BAD_JWT;
	const char *sig_text = dot2 + 1;
	size_t sig_text_len = strlen(sig_text);
	uint8_t sig[64];
	size_t sig_len = 0;
	if (sig_text_len > 86 || base64url_decode(sig_text, sig_text_len, sig, &sig_len) < 0 ||
	    sig_len != 32)
		return WS_AUTH_BAD_JWT;
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	if (!HMAC(EVP_sha256(), auth->secret, (int)auth->secret_len, (const unsigned char *)token,
		  (size_t)(dot2 - token), mac, &mac_len) ||
	    mac_len != 32 || CRYPTO_memcmp(mac, sig, 32) != 0)
		return WS_AUTH_BAD_JWT;
	json_t *claims = ws_auth_segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (!claims)
		return WS_AUTH_BAD_JWT;
	const char *verdict = ws_auth_check_claims(auth, claims, now_s);
	json_decref(claims);
	return verdict;
}

const char *ws_auth_check(const WsAuth *auth, const char *authorization, int64_t now_s)
{
	if (auth->mode == WS_AUTH_NONE)
		return NULL;
	if (!authorization)
		return WS_AUTH_MISSING;
	size_t len = strnlen(authorization, WS_AUTH_MAX_HEADER_BYTES);
	if (len >= WS_AUTH_MAX_HEADER_BYTES || !ws_auth_is_utf8((const unsigned char *)authorization, len))
		return WS_AUTH_BAD_HEADER;
	const char *space = strchr(authorization, ' ');
	if (!space || (size_t)(space - authorization) != 6 || strncasecmp(authorization, "Bearer", 6) != 0)
		return WS_AUTH_BAD_HEADER;
	char token[WS_AUTH_MAX_HEADER_BYTES];
	size_t token_len = len - 7;
	memcpy(token, space + 1, token_len);
	token[token_len] = '\0';
	token_len = ws_auth_trim(token, token_len);
	if (token_len == 0)
		return WS_AUTH_BAD_HEADER;
	const char *verdict;
	if (auth->mode == WS_AUTH_CAPABILITY_TOKEN) {
		uint8_t digest[32];
		verdict = ws_auth_sha256(token, token_len, digest) == 0 &&
					  ws_auth_digest_equal(digest, auth->token_digest)
				  ? NULL
				  : WS_AUTH_BAD_TOKEN;
		OPENSSL_cleanse(digest, sizeof(digest));
	} else {
		verdict = ws_auth_check_jwt(auth, token, now_s);
	}
	OPENSSL_cleanse(token, token_len);
	return verdict;
}

/* --- listeners ----------------------------------------------------------------------------------- */

bool ws_auth_is_loopback(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &v6) != 1)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&v6))
		return true;
	/* ::ffff:127.x.y.z reaches the IPv4 loopback too. */
	return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

int ws_auth_check_listener(const WsAuth *auth, const char *host, const char *addr, char *err, size_t err_len)
{
	if (auth->mode != WS_AUTH_NONE || ws_auth_is_loopback(host))
		return 0;
	ws_auth_err(err, err_len,
		    "refusing to start non-loopback websocket listener %s without auth; configure `--ws-auth "
		    "capability-token` or `--ws-auth signed-bearer-token`",
		    addr);
	return -EACCES;
}
