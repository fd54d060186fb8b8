/* SPDX-License-Identifier: MIT */
/* ws.h - transport-independent RFC 6455 websocket codec (server handshake parsing, frame coding, both ends).
 */
#ifndef AGENTD_WS_H
#define AGENTD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Nothing here touches a socket or an event loop: the transport hands bytes
 * in and writes the bytes it is given. Errors are negative errno values.
 */

/* Upper bound on an HTTP request head, request line through the blank line. */
#define WS_HANDSHAKE_MAX_BYTES 8192

typedef struct WsRequest {
	char method[16];
	char path[512];		  /* request target without query string */
	char key[64];		  /* Sec-WebSocket-Key, trimmed */
	char authorization[4096]; /* raw Authorization header value, trimmed; "" when absent */
	bool has_authorization;
	bool has_origin; /* any Origin header present */
	bool is_upgrade; /* Upgrade: websocket (case-insensitive) and Connection contains token "upgrade" */
	int version;	 /* Sec-WebSocket-Version, 0 if absent */
} WsRequest;

/**
 * ws_request_parse() - parse an HTTP/1.1 request head from buf.
 * @buf: bytes received so far on the connection (need not be NUL-terminated).
 * @len: number of bytes in @buf.
 * @req: filled on success; zeroed on every call.
 *
 * Header names are matched case-insensitively; unknown headers are ignored.
 * Only origin-form targets ("/path?query") are accepted. Besides the cases
 * below, -EINVAL is also returned for a field longer than its WsRequest
 * buffer (it is never truncated), for a repeated Authorization,
 * Sec-WebSocket-Key or Sec-WebSocket-Version header (ambiguous credentials),
 * and for a Sec-WebSocket-Version that is not a number 0..255. Bare CR or LF
 * and control characters are rejected as soon as they arrive, without
 * waiting for the end of the head.
 *
 * Return: bytes consumed (through the blank line) when complete; 0 when more
 * bytes are needed; -E2BIG when no complete head within
 * WS_HANDSHAKE_MAX_BYTES; -EINVAL when malformed (bad request line, header
 * without colon, non-HTTP/1.1, control chars, header line folding).
 */
int ws_request_parse(const char *buf, size_t len, WsRequest *req);

/**
 * ws_head_take() - a server's read of @len bytes while it waits for the request head: append what
 * fits to @head (@cap bytes, @head_len used) and parse it. *@taken is how many bytes of @data went
 * in; bytes of @data past that, and bytes of @head past a complete head, are the client's first
 * frames. Return: as ws_request_parse(), and -E2BIG also when @data does not fit while the head is
 * still incomplete.
 */
int ws_head_take(char *head, size_t cap, size_t *head_len, const char *data, size_t len, size_t *taken,
		 WsRequest *req);

/**
 * ws_accept_key() - compute Sec-WebSocket-Accept for a client key.
 * @client_key: NUL-terminated Sec-WebSocket-Key value.
 * @out: receives the 28-character answer, NUL-terminated.
 *
 * Return: 0; -EINVAL for a key that is not 24 base64 chars decoding to 16
 * bytes; -EIO if OpenSSL fails to compute the digest.
 */
int ws_accept_key(const char *client_key, char out[29]);

/**
 * ws_frame_header() - write the header of one unmasked, final server frame.
 * @out: receives the header bytes.
 * @opcode: one of WS_OP_*; only the low four bits are used.
 * @payload_len: payload length, below 2^63 as RFC 6455 requires.
 *
 * The shortest length encoding is always used.
 *
 * Return: header length (2..10).
 */
size_t ws_frame_header(uint8_t out[10], unsigned opcode, uint64_t payload_len);

/**
 * ws_frame_header_masked() - write the header of one masked, final client frame.
 * @out: receives the header bytes.
 * @opcode: one of WS_OP_*; only the low four bits are used.
 * @payload_len: payload length, below 2^63.
 * @mask: the frame's masking key (RFC 6455 section 5.3: fresh and unpredictable for every frame).
 *
 * The payload that follows must be masked with the same key (ws_payload_mask()).
 *
 * Return: header length (6..14).
 */
size_t ws_frame_header_masked(uint8_t out[14], unsigned opcode, uint64_t payload_len, const uint8_t mask[4]);

/**
 * ws_payload_mask() - XOR a whole frame payload with its masking key, in place.
 * @data: the payload, from its first byte.
 * @len: its length.
 * @mask: the key written by ws_frame_header_masked().
 *
 * Masking and unmasking are the same operation.
 */
void ws_payload_mask(uint8_t *data, size_t len, const uint8_t mask[4]);

enum { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9, WS_OP_PONG = 10 };

/* Close status codes the decoder reports (RFC 6455 section 7.4.1). */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_PROTOCOL_ERROR = 1002,
	WS_CLOSE_NO_STATUS = 1005,
	WS_CLOSE_INVALID_DATA = 1007,
	WS_CLOSE_INTERNAL_ERROR = 1011,
};

/**
 * ws_close_payload_parse() - check a received CLOSE payload and extract its status code.
 * @data: the unmasked CLOSE payload.
 * @len: its length (0..125).
 * @code: receives the status code, or WS_CLOSE_NO_STATUS for an empty payload.
 *
 * The decoder already applies this to every CLOSE frame before on_control();
 * it is public so the transport can read the code to echo.
 *
 * Return: 0; -EPROTO for a 1-byte payload or a status code an endpoint may not
 * send (RFC 6455 section 7.4); -EILSEQ for a reason that is not valid UTF-8.
 */
int ws_close_payload_parse(const uint8_t *data, size_t len, uint16_t *code);

/*
 * Callbacks run inside ws_decoder_feed(). They must not call
 * ws_decoder_free() or ws_decoder_feed() on the decoder that invoked them:
 * the decoder is still walking its input when they return. Any callback may
 * be NULL, in which case the event is dropped.
 */
#define WS_OVERSIZE_HEAD_BYTES 256u

typedef struct WsDecoderEvents {
	/* A complete data message (TEXT or BINARY, fragments reassembled, unmasked). data valid only during
	 * the call. */
	void (*on_message)(void *ctx, unsigned opcode, const uint8_t *data, size_t len);
	/* A data message exceeded max_message_bytes: its payload was discarded as it streamed in (never
	 * buffered); called once, after its final frame, with the total payload length seen and the
	 * message's first bytes (at most WS_OVERSIZE_HEAD_BYTES, unmasked), enough to find an id. */
	void (*on_oversize)(void *ctx, uint64_t total_len, const uint8_t *head, size_t head_len);
	/* PING/PONG/CLOSE with their payload (<=125 bytes). */
	void (*on_control)(void *ctx, unsigned opcode, const uint8_t *data, size_t len);
} WsDecoderEvents;

typedef struct WsDecoder WsDecoder;

/**
 * ws_decoder_new() - create a decoder for the frames a client sends.
 * @max_message_bytes: largest reassembled data message delivered through on_message().
 * @events: callbacks; copied, so the caller's struct may be temporary.
 * @ctx: passed to every callback.
 *
 * Memory held: at most max_message_bytes of reassembly buffer, grown
 * geometrically as payload actually arrives (never preallocated from a
 * header's claimed length) and freed when a message over 64 KiB has been
 * delivered or a message turns out oversized; plus fixed buffers inside the
 * decoder for one frame header (14 bytes) and one control payload (125
 * bytes).
 *
 * Return: the decoder, or NULL with errno set (EINVAL for NULL @events, ENOMEM).
 */
WsDecoder *ws_decoder_new(size_t max_message_bytes, const WsDecoderEvents *events, void *ctx);

/**
 * ws_client_decoder_new() - create a decoder for the frames a server sends.
 *
 * As ws_decoder_new(), for the client end of a connection: frames must be
 * unmasked, and a masked frame is -EPROTO (RFC 6455 section 5.1).
 *
 * Return: the decoder, or NULL with errno set.
 */
WsDecoder *ws_client_decoder_new(size_t max_message_bytes, const WsDecoderEvents *events, void *ctx);

/* ws_decoder_free() - release the decoder. NULL-safe. Never call it from one of its callbacks. */
void ws_decoder_free(WsDecoder *dec);

/**
 * ws_decoder_feed() - feed received bytes (any split, even 1 byte at a time).
 * @dec: the decoder.
 * @data: bytes as read from the connection.
 * @len: number of bytes.
 *
 * Events fire in wire order from inside this call. Once a CLOSE frame has
 * been delivered, later bytes are ignored: the peer may not send data after
 * CLOSE and the transport is expected to finish the closing handshake.
 *
 * Return: 0, or a negative errno with the decoder unusable afterwards (every
 * later call returns the same error): -EPROTO for an unmasked client frame
 * (a masked server frame, for a client decoder), reserved bits set, unknown
 * opcode, fragmented or oversized (>125) control
 * frame, CONT without a started message, new data frame while a fragmented
 * one is open, 64-bit length with the top bit set, or a CLOSE payload that
 * ws_close_payload_parse() rejects; -EILSEQ for a TEXT message that is not
 * valid UTF-8 (checked on the complete message; skipped for oversized
 * discarded messages) or a CLOSE reason that is not; -ENOMEM when the
 * reassembly buffer cannot grow. ws_decoder_close_code() then returns the
 * close status to send. -EINVAL for NULL arguments and -EBUSY when called
 * from one of the decoder's own callbacks leave the decoder usable.
 */
int ws_decoder_feed(WsDecoder *dec, const uint8_t *data, size_t len);

/**
 * ws_decoder_close_code() - close status to send after ws_decoder_feed() failed.
 *
 * Return: 1002 after -EPROTO, 1007 after -EILSEQ, 1011 after -ENOMEM; 0 while
 * no error has occurred.
 */
uint16_t ws_decoder_close_code(const WsDecoder *dec);

/**
 * ws_decoder_buffer_bytes() - bytes currently allocated for message reassembly.
 *
 * For per-connection memory accounting and tests; never more than the
 * decoder's max_message_bytes.
 *
 * Return: the reassembly buffer's capacity in bytes.
 */
size_t ws_decoder_buffer_bytes(const WsDecoder *dec);

#endif /* AGENTD_WS_H */
