"""The task's end of the pool gateway: a loopback listener inside the task's own network namespace.

A network-off task that declared model pools connects to ``127.0.0.1:SANDBOX_POOL_PORT``, which its
``OPENAI_BASE_URL`` names, so the official ``openai`` client works with no extra arguments. Its network
namespace holds nothing else (level seccomp: a namespace of its own, whose loopback this module brings up;
level docker: ``--network none``), so that port is the only thing it can reach. The forwarder that
listens there runs outside the task's control — at level seccomp the launcher (the task's parent, outside
its PID namespace, with no seccomp filter and no Landlock of the task's), at level docker a process forked
before the task — and carries bytes only, to the worker's :class:`~lattice.executor.pool_gateway.PoolGateway`
over a Unix socket (pathname Unix sockets cross network namespaces). What may pass is decided there, in
the worker: the task cannot change that code.

One ``selectors`` loop, no threads: the seccomp launcher has called ``unshare(CLONE_NEWPID)``, after
which the kernel refuses it new threads, and its loop already waits on the task's pidfd and the worker's
pipe; the forwarder's sockets join that loop (:meth:`Forwarder.dispatch`). Reads stop while the other
side's buffer is unsent, so a slow reader holds at most one 64 KiB chunk per direction.
"""

from __future__ import annotations

import contextlib
import fcntl
import selectors
import socket
import struct

from lattice.wire.ports import SANDBOX_POOL_PORT

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CHUNK = 65536
_IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags in the union (40 bytes in all)


def loopback_up() -> None:
    """Bring ``lo`` up in this network namespace (a new one starts with it down); raises OSError."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _name, flags = struct.unpack(_IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | IFF_UP))


def listen(port: int = SANDBOX_POOL_PORT) -> socket.socket:
    """The listening socket on ``127.0.0.1:port`` of this namespace (loopback brought up first)."""
    loopback_up()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(64)
    except OSError:
        server.close()
        raise
    return server


class Forwarder:
    """Accept on ``server`` and carry each connection's bytes both ways to the Unix socket ``gateway_path``."""

    def __init__(self, server: socket.socket, gateway_path: str,
                 selector: selectors.BaseSelector | None = None) -> None:
        self.selector = selector or selectors.DefaultSelector()
        self._server = server
        self._path = gateway_path
        self._peer: dict[socket.socket, socket.socket] = {}
        self._out: dict[socket.socket, bytearray] = {}  # bytes waiting to be written to that socket
        self._eof: set[socket.socket] = set()  # sockets that ended as a source
        self._shut: set[socket.socket] = set()  # sockets we shut down for writing
        server.setblocking(False)
        self.selector.register(server, selectors.EVENT_READ, self)

    def run(self) -> None:
        """Forward until the process ends (the docker level's forwarder process)."""
        while True:
            for key, mask in self.selector.select():
                self.dispatch(key, mask)

    def dispatch(self, key: selectors.SelectorKey, mask: int) -> bool:
        """Handle one ready socket of ours; False for a key registered by someone else."""
        if key.data is not self:
            return False
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        if sock is self._server:
            self._accept()
            return True
        if mask & selectors.EVENT_WRITE:
            self._flush(sock)
        if mask & selectors.EVENT_READ and sock in self._peer:
            self._read(sock)
        return True

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self._path)  # a local Unix socket: at once, or refused
            except OSError:
                upstream.close()
                conn.close()  # the gateway is gone (the attempt is ending): the task sees a closed connection
                continue
            for sock, peer in ((conn, upstream), (upstream, conn)):
                sock.setblocking(False)
                self._peer[sock] = peer
                self._out[sock] = bytearray()
                self.selector.register(sock, selectors.EVENT_READ, self)

    def _read(self, sock: socket.socket) -> None:
        peer = self._peer[sock]
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sock)
            return
        if data:
            self._out[peer] += data
        else:
            self._eof.add(sock)
        self._flush(peer)

    def _flush(self, sock: socket.socket) -> None:
        if sock not in self._peer:
            return
        buffer = self._out[sock]
        if buffer:
            try:
                del buffer[:sock.send(buffer)]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._close(sock)
                return
        peer = self._peer[sock]
        if not buffer and peer in self._eof and sock not in self._shut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            self._shut.add(sock)
        if sock in self._shut and peer in self._shut:
            self._close(sock)
            return
        self._watch(sock)
        self._watch(peer)

    def _watch(self, sock: socket.socket) -> None:
        """Read while the peer's buffer is empty (back-pressure); write while ours is not."""
        events = 0
        if sock not in self._eof and not self._out[self._peer[sock]]:
            events |= selectors.EVENT_READ
        if self._out[sock]:
            events |= selectors.EVENT_WRITE
        registered = sock in self.selector.get_map()
        if events and registered:
            self.selector.modify(sock, events, self)
        elif events:
            self.selector.register(sock, events, self)
        elif registered:
            self.selector.unregister(sock)

    def _close(self, sock: socket.socket) -> None:
        for one in (sock, self._peer.get(sock)):
            if one is None or one not in self._peer:
                continue
            if one in self.selector.get_map():
                self.selector.unregister(one)
            del self._peer[one], self._out[one]
            self._eof.discard(one)
            self._shut.discard(one)
            one.close()


__all__ = ["CHUNK", "Forwarder", "listen", "loopback_up"]
