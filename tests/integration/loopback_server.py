# SPDX-License-Identifier: MIT
"""LoopbackServer: the life of a mock HTTP server on 127.0.0.1 that the mocks share.

A subclass sets HANDLER (a BaseHTTPRequestHandler subclass), HANDLER_ATTR (the attribute through
which its handler reaches the mock: handler.issuer, handler.model) and THREAD_NAME, and calls
LoopbackServer.__init__ before using self._cond or self._closing. close() wakes everything that
waits on the condition or the closing event, then stops serving; a subclass that holds more (open
keep-alive connections) extends _release_waiters().
"""
import http.server
import threading
import time


class _Server(http.server.ThreadingHTTPServer):
    # Handler threads hanging on a scripted hang must not hold up close().
    daemon_threads = True
    block_on_close = False


class LoopbackServer:
    HANDLER = None
    HANDLER_ATTR = None
    THREAD_NAME = "mock-server"

    def __init__(self):
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._server = None
        self._thread = None
        self.url = None

    def start(self):
        handler = type(self.HANDLER.__name__, (self.HANDLER,), {self.HANDLER_ATTR: self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def _progress(self):
        """Hook: what the mock saw so far, for a timeout's message."""
        return ""

    def _wait(self, predicate, timeout, what):
        """Wait, under the condition, until @predicate() holds; TimeoutError after @timeout s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.THREAD_NAME}: timed out after {timeout:.1f} s waiting for "
                                       f"{what}; {self._progress()}")
                self._cond.wait(min(remaining, 0.1))

    def _release_waiters(self):
        """Everything blocked in a handler gives up (its client sees the connection close)."""
        self._closing.set()
        with self._cond:
            self._cond.notify_all()

    def close(self):
        if not self._server:
            return
        self._release_waiters()
        self._server.shutdown()
        self._server.server_close()
        self._after_shutdown()
        self._thread.join(5)
        self._server = None

    def _after_shutdown(self):
        """Hook: what must go once the listener is closed (kept-alive connections, say)."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False
