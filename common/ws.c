/* SPDX-License-Identifier: MIT */
/* ws.c - RFC 6455 server-side websocket codec: request head parsing, accept key, frame decoding. */
#include "ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* ------------------------------------------------------------------ */
/* Request head                                                        */
/* ------------------------------------------------------------------ */

/* A slice of the request head, which is not NUL-terminated. */
typedef struct WsSpan {
	const char *ptr;
	size_t len;
} WsSpan;

/* What a head parse tracks beyond the fields WsRequest exposes. */
typedef struct WsHeadParse {
	WsRequest *req;
	bool has_upgrade_websocket;
	bool has_connection_upgrade;
	bool has_key;
	bool has_version;
} WsHeadParse;

typedef int (*WsHeaderApply)(WsHeadParse *parse, WsSpan value);

static bool ws_is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool ws_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 tchar: the only bytes allowed in a method or header name. */
static bool ws_is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool ws_span_is_token(WsSpan s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!ws_is_tchar((unsigned char)s.ptr[i]))
			return false;
	return true;
}

static bool ws_span_equals(WsSpan s, const char *text)
{
	return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

static bool ws_span_equals_nocase(WsSpan s, const char *text)
{
	return s.len == strlen(text) && strncasecmp(s.ptr, text, s.len) == 0;
}

static WsSpan ws_span_trim(WsSpan s)
{
	while (s.len > 0 && ws_is_ows(s.ptr[0])) {
		s.ptr++;
		s.len--;
	}
	while (s.len > 0 && ws_is_ows(s.ptr[s.len - 1]))
		s.len--;
	return s;
}

/* Copy into a fixed field; a value that does not fit is refused, never truncated,
 * because a cut-down credential or path would silently mean something else. */
static int ws_span_copy(WsSpan s, char *dst, size_t cap)
{
	if (s.len >= cap)
		return -EINVAL;
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
	return 0;
}

/* Split off the next line; ws_head_scan() has checked that every line ends in CRLF. */
static WsSpan ws_span_next_line(WsSpan *rest)
{
	const char *lf = memchr(rest->ptr, '\n', rest->len);
	WsSpan line = { rest->ptr, (size_t)(lf - rest->ptr) - 1 };

	rest->len -= line.len + 2;
	rest->ptr = lf + 1;
	return line;
}

/* Whether a comma-separated header list holds token (case-insensitive), as
 * Connection: keep-alive, Upgrade does. */
static bool ws_list_has_token(WsSpan list, const char *token)
{
	while (list.len > 0) {
		const char *comma = memchr(list.ptr, ',', list.len);
		size_t item_len = comma ? (size_t)(comma - list.ptr) : list.len;
		WsSpan item = ws_span_trim((WsSpan){ list.ptr, item_len });

		if (ws_span_equals_nocase(item, token))
			return true;
		if (!comma)
			break;
		list.ptr = comma + 1;
		list.len -= item_len + 1;
	}
	return false;
}

/*
 * Find the blank line that ends the head. Bytes that can never be part of a
 * valid head (control characters, a CR or LF on its own) fail at once, so a
 * client cannot hold the connection open with garbage until the size limit.
 * Return: head length, 0 for more bytes, -EINVAL or -E2BIG.
 */
static int ws_head_scan(const char *buf, size_t len)
{
	size_t limit = len < WS_HANDSHAKE_MAX_BYTES ? len : WS_HANDSHAKE_MAX_BYTES;

	for (size_t i = 0; i < limit; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\r') {
			if (i + 1 < len && buf[i + 1] != '\n')
				return -EINVAL;
		} else if (c == '\n') {
			if (i == 0 || buf[i - 1] != '\r')
				return -EINVAL;
			if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r')
				return (int)(i + 1);
		} else if (ws_is_ctl(c) && c != '\t') {
			return -EINVAL;
		}
	}
	return len >= WS_HANDSHAKE_MAX_BYTES ? -E2BIG : 0;
}

/* Only origin-form ("/path?query"): upgrade and health requests never need
 * absolute-form or "*", and RFC 6455 section 3 forbids fragments. */
static int ws_target_parse(WsSpan target, WsRequest *req)
{
	if (target.len == 0 || target.ptr[0] != '/')
		return -EINVAL;
	for (size_t i = 0; i < target.len; i++) {
		unsigned char c = (unsigned char)target.ptr[i];

		if (c <= ' ' || c >= 0x7f || c == '#')
			return -EINVAL;
	}
	const char *query = memchr(target.ptr, '?', target.len);
	WsSpan path = { target.ptr, query ? (size_t)(query - target.ptr) : target.len };

	return ws_span_copy(path, req->path, sizeof(req->path));
}

/* method SP request-target SP HTTP-version, with exactly one space each. */
static int ws_request_line_parse(WsSpan line, WsRequest *req)
{
	const char *sp1 = memchr(line.ptr, ' ', line.len);

	if (!sp1)
		return -EINVAL;
	WsSpan method = { line.ptr, (size_t)(sp1 - line.ptr) };
	WsSpan after = { sp1 + 1, line.len - method.len - 1 };
	const char *sp2 = memchr(after.ptr, ' ', after.len);

	if (!sp2)
		return -EINVAL;
	WsSpan target = { after.ptr, (size_t)(sp2 - after.ptr) };
	WsSpan version = { sp2 + 1, after.len - target.len - 1 };

	if (!ws_span_is_token(method) || !ws_span_equals(version, "HTTP/1.1"))
		return -EINVAL;
	if (ws_span_copy(method, req->method, sizeof(req->method)) < 0)
		return -EINVAL;
	return ws_target_parse(target, req);
}

static int ws_header_upgrade(WsHeadParse *parse, WsSpan value)
{
	if (ws_list_has_token(value, "websocket"))
		parse->has_upgrade_websocket = true;
	return 0;
}

static int ws_header_connection(WsHeadParse *parse, WsSpan value)
{
	if (ws_list_has_token(value, "upgrade"))
		parse->has_connection_upgrade = true;
	return 0;
}

/* A repeated key is ambiguous: which one would the accept answer prove? */
static int ws_header_key(WsHeadParse *parse, WsSpan value)
{
	if (parse->has_key)
		return -EINVAL;
	parse->has_key = true;
	return ws_span_copy(value, parse->req->key, sizeof(parse->req->key));
}

/* RFC 6455 section 4.1: the version is a decimal number 0..255. */
static int ws_header_version(WsHeadParse *parse, WsSpan value)
{
	int version = 0;

	if (parse->has_version || value.len == 0 || value.len > 3)
		return -EINVAL;
	for (size_t i = 0; i < value.len; i++) {
		if (value.ptr[i] < '0' || value.ptr[i] > '9')
			return -EINVAL;
		version = version * 10 + (value.ptr[i] - '0');
	}
	if (version > 255)
		return -EINVAL;
	parse->has_version = true;
	parse->req->version = version;
	return 0;
}

/* Two Authorization headers could let a proxy and agentd check different
 * credentials, so the request is refused rather than one picked. */
static int ws_header_authorization(WsHeadParse *parse, WsSpan value)
{
	WsRequest *req = parse->req;

	if (req->has_authorization)
		return -EINVAL;
	req->has_authorization = true;
	return ws_span_copy(value, req->authorization, sizeof(req->authorization));
}

/* Presence alone matters: browsers always send Origin, and the listener refuses them all. */
static int ws_header_origin(WsHeadParse *parse, WsSpan value)
{
	(void)value;
	parse->req->has_origin = true;
	return 0;
}

/* Headers the handshake looks at; every other header is ignored. */
static const struct {
	const char *name;
	WsHeaderApply apply;
} ws_header_table[] = {
	{ "upgrade", ws_header_upgrade },
	{ "connection", ws_header_connection },
	{ "sec-websocket-key", ws_header_key },
	{ "sec-websocket-version", ws_header_version },
	{ "authorization", ws_header_authorization },
	{ "origin", ws_header_origin },
};

static int ws_header_parse(WsSpan line, WsHeadParse *parse)
{
	/* obs-fold (RFC 9112 section 5.2) is obsolete and only ever serves request smuggling. */
	if (ws_is_ows(line.ptr[0]))
		return -EINVAL;
	const char *colon = memchr(line.ptr, ':', line.len);

	if (!colon)
		return -EINVAL;
	WsSpan name = { line.ptr, (size_t)(colon - line.ptr) };
	WsSpan value = ws_span_trim((WsSpan){ colon + 1, line.len - name.len - 1 });

	/* Also refuses "Name :" - whitespace before the colon must be rejected (RFC 9112 section 5.1). */
	if (!ws_span_is_token(name))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(ws_header_table) / sizeof(ws_header_table[0]); i++)
		if (ws_span_equals_nocase(name, ws_header_table[i].name))
			return ws_header_table[i].apply(parse, value);
	return 0;
}

static int ws_head_parse(WsSpan head, WsRequest *req)
{
	WsHeadParse parse = { .req = req };
	int rc = ws_request_line_parse(ws_span_next_line(&head), req);

	while (rc == 0) {
		WsSpan line = ws_span_next_line(&head);

		if (line.len == 0)
			break;
		rc = ws_header_parse(line, &parse);
	}
	req->is_upgrade = parse.has_upgrade_websocket && parse.has_connection_upgrade;
	return rc;
}

int ws_request_parse(const char *buf, size_t len, WsRequest *req)
{
	if (!req)
		return -EINVAL;
	memset(req, 0, sizeof(*req));
	if (!buf)
		return len ? -EINVAL : 0;

	int head_len = ws_head_scan(buf, len);

	if (head_len <= 0)
		return head_len;
	int rc = ws_head_parse((WsSpan){ buf, (size_t)head_len }, req);

	if (rc < 0) {
		/* Never leave half a request (say, its Authorization) for a caller to act on. */
		memset(req, 0, sizeof(*req));
		return rc;
	}
	return head_len;
}

/* ------------------------------------------------------------------ */
/* Accept key and frame header                                         */
/* ------------------------------------------------------------------ */

#define WS_KEY_CHARS 24

/* RFC 6455 section 1.3: the fixed GUID appended to the client's key. */
static const char ws_accept_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool ws_is_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/';
}

/* 16 bytes encode as exactly 22 base64 characters plus "==" padding. */
static bool ws_key_is_valid(const char *key)
{
	if (!key || strnlen(key, WS_KEY_CHARS + 1) != WS_KEY_CHARS)
		return false;
	for (size_t i = 0; i < WS_KEY_CHARS - 2; i++)
		if (!ws_is_base64_char(key[i]))
			return false;
	return key[22] == '=' && key[23] == '=';
}

int ws_accept_key(const char *client_key, char out[29])
{
	unsigned char input[WS_KEY_CHARS + sizeof(ws_accept_guid) - 1];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;

	if (!out)
		return -EINVAL;
	out[0] = '\0';
	if (!ws_key_is_valid(client_key))
		return -EINVAL;
	memcpy(input, client_key, WS_KEY_CHARS);
	memcpy(input + WS_KEY_CHARS, ws_accept_guid, sizeof(ws_accept_guid) - 1);
	if (EVP_Digest(input, sizeof(input), digest, &digest_len, EVP_sha1(), NULL) != 1 || digest_len != 20)
		return -EIO;
	/* 20 bytes encode to 28 characters; EVP_EncodeBlock adds the NUL. */
	EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
	return 0;
}

static void ws_be_put(uint8_t *p, uint64_t value, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		p[i] = (uint8_t)(value & 0xff);
		value >>= 8;
	}
}

static uint64_t ws_be_get(const uint8_t *p, size_t n)
{
	uint64_t value = 0;

	for (size_t i = 0; i < n; i++)
		value = value << 8 | p[i];
	return value;
}

size_t ws_frame_header(uint8_t out[10], unsigned opcode, uint64_t payload_len)
{
	out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (payload_len <= 125) {
		out[1] = (uint8_t)payload_len;
		return 2;
	}
	if (payload_len <= 0xffff) {
		out[1] = 126;
		ws_be_put(out + 2, payload_len, 2);
		return 4;
	}
	out[1] = 127;
	ws_be_put(out + 2, payload_len, 8);
	return 10;
}

size_t ws_frame_header_masked(uint8_t out[14], unsigned opcode, uint64_t payload_len, const uint8_t mask[4])
{
	size_t n = ws_frame_header(out, opcode, payload_len);

	out[1] |= 0x80;
	memcpy(out + n, mask, 4);
	return n + 4;
}

void ws_payload_mask(uint8_t *data, size_t len, const uint8_t mask[4])
{
	for (size_t i = 0; i < len; i++)
		data[i] ^= mask[i & 3];
}

/* ------------------------------------------------------------------ */
/* UTF-8 and CLOSE payloads                                            */
/* ------------------------------------------------------------------ */

/*
 * Length of the well-formed sequence at s, or 0. Following Unicode's table of
 * well-formed byte sequences, the lead byte narrows the second byte's range;
 * that is what refuses overlong forms, surrogates and code points past U+10FFFF.
 */
static size_t ws_utf8_sequence_len(const uint8_t *s, size_t len)
{
	uint8_t lead = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (lead < 0x80)
		return 1;
	if (lead >= 0xc2 && lead <= 0xdf) {
		n = 2;
	} else if (lead >= 0xe0 && lead <= 0xef) {
		n = 3;
		lo = lead == 0xe0 ? 0xa0 : lo;
		hi = lead == 0xed ? 0x9f : hi;
	} else if (lead >= 0xf0 && lead <= 0xf4) {
		n = 4;
		lo = lead == 0xf0 ? 0x90 : lo;
		hi = lead == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static bool ws_utf8_is_valid(const uint8_t *s, size_t len)
{
	while (len > 0) {
		size_t n = ws_utf8_sequence_len(s, len);

		if (n == 0)
			return false;
		s += n;
		len -= n;
	}
	return true;
}

/* Codes a peer may put on the wire (RFC 6455 section 7.4 and the IANA registry):
 * 1004-1006 and 1015 are reserved, 1016-2999 unassigned, 3000-4999 for applications. */
static bool ws_close_code_is_sendable(uint16_t code)
{
	if (code >= 3000 && code <= 4999)
		return true;
	if (code < 1000 || code > 1014)
		return false;
	return code != 1004 && code != 1005 && code != 1006;
}

int ws_close_payload_parse(const uint8_t *data, size_t len, uint16_t *code)
{
	uint16_t status;

	if (len == 0) {
		if (code)
			*code = WS_CLOSE_NO_STATUS;
		return 0;
	}
	if (!data || len == 1 || len > 125)
		return -EPROTO;
	status = (uint16_t)(data[0] << 8 | data[1]);
	if (!ws_close_code_is_sendable(status))
		return -EPROTO;
	if (!ws_utf8_is_valid(data + 2, len - 2))
		return -EILSEQ;
	if (code)
		*code = status;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Frame decoder                                                       */
/* ------------------------------------------------------------------ */

/* First allocation for a message: most JSON-RPC messages are small. */
#define WS_BUFFER_MIN_BYTES 1024
/* A buffer up to this size is kept for the next message; a larger one is freed after delivery. */
#define WS_BUFFER_KEEP_BYTES (64 * 1024)
#define WS_CONTROL_MAX_BYTES 125
/* 2 fixed bytes, up to 8 of extended length, 4 of mask. */
#define WS_HEADER_MAX_BYTES 14

/* The frame whose header or payload is being read. */
typedef struct WsFrame {
	uint8_t header[WS_HEADER_MAX_BYTES];
	size_t header_len;  /* bytes received */
	size_t header_need; /* 2 until the length byte is seen, then the full header size */
	bool is_final;
	bool is_start_checked; /* the first two bytes passed ws_frame_check_start() */
	bool is_masked;
	unsigned opcode;
	uint8_t mask[4];
	uint64_t payload_len;
	uint64_t payload_done;
} WsFrame;

/* The data message being reassembled. */
typedef struct WsMessage {
	bool is_open;
	bool is_oversize; /* payload is being discarded as it arrives */
	unsigned opcode;
	uint64_t total_len; /* payload announced by its frames so far */
	uint8_t *buf;
	size_t len;
	size_t cap; /* never above the decoder's max_message_bytes */
	uint8_t head[WS_OVERSIZE_HEAD_BYTES]; /* an oversized message's start, kept for its id */
	size_t head_len;
} WsMessage;

struct WsDecoder {
	WsDecoderEvents events;
	void *ctx;
	size_t max_message_bytes;
	int error;
	uint16_t close_code;
	bool is_client;	 /* decodes what a server sends: frames are unmasked */
	bool is_closed;	 /* a CLOSE frame was delivered */
	bool is_feeding; /* inside ws_decoder_feed(), to refuse re-entry from a callback */
	WsFrame frame;
	WsMessage msg;
	uint8_t control[WS_CONTROL_MAX_BYTES];
};

static bool ws_opcode_is_control(unsigned opcode)
{
	return (opcode & 0x08) != 0;
}

static void ws_frame_reset(WsFrame *frame)
{
	frame->header_len = 0;
	frame->header_need = 2;
	frame->is_start_checked = false;
}

static bool ws_frame_is_reading_header(const WsFrame *frame)
{
	return frame->header_len < frame->header_need;
}

/* The mask repeats every four bytes from the start of the frame's payload,
 * so the position carries across feed boundaries. */
static void ws_payload_unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
			      uint64_t offset)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] ^ mask[(offset + i) & 3];
}

static void ws_message_free_buffer(WsMessage *msg)
{
	free(msg->buf);
	msg->buf = NULL;
	msg->len = 0;
	msg->cap = 0;
}

static void ws_message_start(WsMessage *msg, unsigned opcode)
{
	msg->is_open = true;
	msg->is_oversize = false;
	msg->opcode = opcode;
	msg->total_len = 0;
	msg->len = 0;
	msg->head_len = 0;
}

/* Decide from each frame header, before its payload arrives, whether the
 * message still fits; once it cannot, nothing more of it is stored and what
 * was stored is released. */
static void ws_message_add_frame(WsDecoder *dec, uint64_t payload_len)
{
	WsMessage *msg = &dec->msg;

	if (!msg->is_oversize && payload_len > dec->max_message_bytes - msg->total_len) {
		msg->is_oversize = true;
		msg->head_len = msg->len < WS_OVERSIZE_HEAD_BYTES ? msg->len : WS_OVERSIZE_HEAD_BYTES;
		if (msg->head_len)
			memcpy(msg->head, msg->buf, msg->head_len);
		ws_message_free_buffer(msg);
	}
	msg->total_len =
		payload_len > UINT64_MAX - msg->total_len ? UINT64_MAX : msg->total_len + payload_len;
}

/* Grow by doubling from what has actually arrived, never from a header's
 * claimed length, so announcing a large frame costs a peer real bytes. */
static int ws_message_reserve(WsDecoder *dec, size_t need)
{
	WsMessage *msg = &dec->msg;
	size_t cap = msg->cap ? msg->cap : WS_BUFFER_MIN_BYTES;

	if (need <= msg->cap)
		return 0;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > dec->max_message_bytes)
		cap = dec->max_message_bytes; /* still >= need: ws_message_add_frame() kept the message within
						 it */
	uint8_t *buf = realloc(msg->buf, cap);

	if (!buf)
		return -ENOMEM;
	msg->buf = buf;
	msg->cap = cap;
	return 0;
}

static int ws_message_finish(WsDecoder *dec)
{
	WsMessage *msg = &dec->msg;
	const WsDecoderEvents *ev = &dec->events;

	msg->is_open = false;
	if (msg->is_oversize) {
		if (ev->on_oversize)
			ev->on_oversize(dec->ctx, msg->total_len, msg->head, msg->head_len);
	} else {
		if (msg->opcode == WS_OP_TEXT && !ws_utf8_is_valid(msg->buf, msg->len))
			return -EILSEQ;
		if (ev->on_message)
			ev->on_message(dec->ctx, msg->opcode, msg->buf ? msg->buf : (const uint8_t *)"",
				       msg->len);
	}
	msg->len = 0;
	msg->total_len = 0;
	msg->is_oversize = false;
	if (msg->cap > WS_BUFFER_KEEP_BYTES)
		ws_message_free_buffer(msg);
	return 0;
}

static int ws_control_deliver(WsDecoder *dec, unsigned opcode, size_t len)
{
	if (opcode == WS_OP_CLOSE) {
		int rc = ws_close_payload_parse(dec->control, len, NULL);

		if (rc < 0)
			return rc;
		dec->is_closed = true;
	}
	if (dec->events.on_control)
		dec->events.on_control(dec->ctx, opcode, dec->control, len);
	return 0;
}

static int ws_frame_finish(WsDecoder *dec)
{
	unsigned opcode = dec->frame.opcode;
	bool is_final = dec->frame.is_final;
	size_t len = (size_t)dec->frame.payload_len;

	ws_frame_reset(&dec->frame);
	if (ws_opcode_is_control(opcode))
		return ws_control_deliver(dec, opcode, len);
	return is_final ? ws_message_finish(dec) : 0;
}

/* Everything the first two bytes can reveal is checked before waiting for more. */
static int ws_frame_check_start(WsDecoder *dec)
{
	WsFrame *frame = &dec->frame;
	uint8_t b0 = frame->header[0], b1 = frame->header[1];
	unsigned len7 = b1 & 0x7f;

	frame->is_final = (b0 & 0x80) != 0;
	frame->opcode = b0 & 0x0f;
	/* No extension is ever negotiated, so no RSV bit may be set. */
	if (b0 & 0x70)
		return -EPROTO;
	/* Section 5.1: a server must close on an unmasked client frame, a client on a masked server frame. */
	frame->is_masked = (b1 & 0x80) != 0;
	if (frame->is_masked == dec->is_client)
		return -EPROTO;
	switch (frame->opcode) {
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		/* Section 5.5: control frames are never fragmented and carry at most 125 bytes. */
		if (!frame->is_final || len7 > WS_CONTROL_MAX_BYTES)
			return -EPROTO;
		break;
	case WS_OP_CONT:
		if (!dec->msg.is_open)
			return -EPROTO;
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (dec->msg.is_open)
			return -EPROTO;
		break;
	default:
		return -EPROTO;
	}
	frame->header_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (frame->is_masked ? 4 : 0);
	return 0;
}

static int ws_frame_begin(WsDecoder *dec)
{
	WsFrame *frame = &dec->frame;
	size_t ext_len = frame->header_need - 2 - (frame->is_masked ? 4 : 0);

	frame->payload_len = ext_len ? ws_be_get(frame->header + 2, ext_len) : (frame->header[1] & 0x7fu);
	/* Section 5.2: the most significant bit of a 64-bit length must be 0. */
	if (frame->payload_len >> 63)
		return -EPROTO;
	if (frame->is_masked)
		memcpy(frame->mask, frame->header + 2 + ext_len, sizeof(frame->mask));
	frame->payload_done = 0;
	if (ws_opcode_is_control(frame->opcode))
		return 0;
	if (frame->opcode != WS_OP_CONT)
		ws_message_start(&dec->msg, frame->opcode);
	ws_message_add_frame(dec, frame->payload_len);
	return 0;
}

static int ws_decoder_read_header(WsDecoder *dec, const uint8_t *data, size_t len, size_t *used)
{
	WsFrame *frame = &dec->frame;
	size_t n = frame->header_need - frame->header_len;

	if (n > len)
		n = len;
	memcpy(frame->header + frame->header_len, data, n);
	frame->header_len += n;
	*used = n;
	if (frame->header_len < frame->header_need)
		return 0;
	/* An unmasked frame with a short length has a 2-byte header: it may begin right after the check. */
	if (!frame->is_start_checked) {
		int rc = ws_frame_check_start(dec);

		frame->is_start_checked = true;
		if (rc < 0 || frame->header_len < frame->header_need)
			return rc;
	}

	int rc = ws_frame_begin(dec);

	if (rc < 0)
		return rc;
	/* An empty frame has no payload bytes to trigger its completion. */
	return frame->payload_len == 0 ? ws_frame_finish(dec) : 0;
}

static int ws_decoder_read_payload(WsDecoder *dec, const uint8_t *data, size_t len, size_t *used)
{
	WsFrame *frame = &dec->frame;
	WsMessage *msg = &dec->msg;
	uint64_t left = frame->payload_len - frame->payload_done;
	size_t n = left < len ? (size_t)left : len;
	uint8_t *dst = NULL;

	if (ws_opcode_is_control(frame->opcode)) {
		dst = dec->control + frame->payload_done;
	} else if (!msg->is_oversize) {
		int rc = ws_message_reserve(dec, msg->len + n);

		if (rc < 0)
			return rc;
		dst = msg->buf + msg->len;
		msg->len += n;
	} else if (msg->head_len < WS_OVERSIZE_HEAD_BYTES) {
		size_t keep = WS_OVERSIZE_HEAD_BYTES - msg->head_len < n ? WS_OVERSIZE_HEAD_BYTES - msg->head_len : n;

		if (frame->is_masked)
			ws_payload_unmask(msg->head + msg->head_len, data, keep, frame->mask,
					  frame->payload_done);
		else
			memcpy(msg->head + msg->head_len, data, keep);
		msg->head_len += keep;
	}
	if (dst && frame->is_masked)
		ws_payload_unmask(dst, data, n, frame->mask, frame->payload_done);
	else if (dst)
		memcpy(dst, data, n);
	frame->payload_done += n;
	*used = n;
	return frame->payload_done == frame->payload_len ? ws_frame_finish(dec) : 0;
}

/* A violation ends the connection, so the buffer is released at once. */
static int ws_decoder_fail(WsDecoder *dec, int err)
{
	dec->error = err;
	if (err == -EILSEQ)
		dec->close_code = WS_CLOSE_INVALID_DATA;
	else if (err == -ENOMEM)
		dec->close_code = WS_CLOSE_INTERNAL_ERROR;
	else
		dec->close_code = WS_CLOSE_PROTOCOL_ERROR;
	ws_message_free_buffer(&dec->msg);
	return err;
}

WsDecoder *ws_decoder_new(size_t max_message_bytes, const WsDecoderEvents *events, void *ctx)
{
	WsDecoder *dec;

	if (!events) {
		errno = EINVAL;
		return NULL;
	}
	dec = calloc(1, sizeof(*dec));
	if (!dec)
		return NULL;
	dec->events = *events;
	dec->ctx = ctx;
	dec->max_message_bytes = max_message_bytes;
	ws_frame_reset(&dec->frame);
	return dec;
}

WsDecoder *ws_client_decoder_new(size_t max_message_bytes, const WsDecoderEvents *events, void *ctx)
{
	WsDecoder *dec = ws_decoder_new(max_message_bytes, events, ctx);

	if (dec)
		dec->is_client = true;
	return dec;
}

void ws_decoder_free(WsDecoder *dec)
{
	if (!dec)
		return;
	free(dec->msg.buf);
	free(dec);
}

int ws_decoder_feed(WsDecoder *dec, const uint8_t *data, size_t len)
{
	if (!dec || (!data && len))
		return -EINVAL;
	if (dec->is_feeding)
		return -EBUSY;
	if (dec->error)
		return dec->error;

	int rc = 0;

	dec->is_feeding = true;
	while (len > 0 && !dec->is_closed) {
		size_t used = 0;

		if (ws_frame_is_reading_header(&dec->frame))
			rc = ws_decoder_read_header(dec, data, len, &used);
		else
			rc = ws_decoder_read_payload(dec, data, len, &used);
		if (rc < 0) {
			rc = ws_decoder_fail(dec, rc);
			break;
		}
		data += used;
		len -= used;
	}
	dec->is_feeding = false;
	return rc;
}

uint16_t ws_decoder_close_code(const WsDecoder *dec)
{
	return dec ? dec->close_code : 0;
}

size_t ws_decoder_buffer_bytes(const WsDecoder *dec)
{
	return dec ? dec->msg.cap : 0;
}

int ws_head_take(char *head, size_t cap, size_t *head_len, const char *data, size_t len, size_t *taken,
		 WsRequest *req)
{
	size_t room = cap - *head_len;
	size_t take = len < room ? len : room;
	memcpy(head + *head_len, data, take);
	*head_len += take;
	*taken = take;
	int rc = ws_request_parse(head, *head_len, req);
	return rc == 0 && take < len ? -E2BIG : rc;
}
