"""WebSocket framing checks against hiventd with a raw socket client."""

import base64
import os
import socket
import struct
import unittest

import msgpack

import hvtest

HEARTBEAT = msgpack.packb({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": 1})


def upgrade(server):
    """Open a producer WebSocket by hand and return the socket after the 101."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /producer/websocket?vsn=1.0.0&client_id=raw HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


def binary_frame(payload, mask):
    """Build one final binary frame of fewer than 126 bytes, masked with @mask or unmasked."""
    if mask is None:
        return bytes([0x82, len(payload)]) + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + masked


def read_frame(sock):
    """Return (opcode, payload) of the next server frame, or None at EOF."""
    head = sock.recv(2)
    if len(head) < 2:
        return None
    size = head[1] & 0x7F
    if size == 126:
        size = struct.unpack("!H", sock.recv(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", sock.recv(8))[0]
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return head[0] & 0x0F, data


class FrameTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = hvtest.Server().start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        log = cls.server.read_log()
        cls.server.cleanup()
        assert code == 0, "hiventd exit code %r\n%s" % (code, log)

    def test_masked_heartbeat_gets_reply(self):
        sock = upgrade(self.server)
        try:
            sock.sendall(binary_frame(HEARTBEAT, os.urandom(4)))
            opcode, data = read_frame(sock)
        finally:
            sock.close()
        self.assertEqual(opcode, 0x2)
        reply = msgpack.unpackb(data, raw=False)
        self.assertEqual(reply["event"], "phx_reply")
        self.assertEqual(reply["payload"]["status"], "ok")

    # NOTE: RFC 6455 section 5.1 requires closing on an unmasked client
    # frame.  libwebsockets 4.1.6 (Debian 12) parses such frames like masked
    # ones and has no public call that returns a frame's mask bit, so
    # hiventd still replies to them.  The current libwebsockets source
    # (lib/roles/ws/ops-ws.c) closes with 1002 "client unmasked".  With such
    # a version this test succeeds unexpectedly, which fails the run, so
    # the marker must then be removed.
    @unittest.expectedFailure
    def test_unmasked_frame_closes_1002(self):
        sock = upgrade(self.server)
        try:
            sock.sendall(binary_frame(HEARTBEAT, None))
            frame = read_frame(sock)
        finally:
            sock.close()
        self.assertIsNotNone(frame)
        opcode, data = frame
        self.assertEqual(opcode, 0x8)
        self.assertEqual(struct.unpack("!H", data[:2])[0], 1002)


if __name__ == "__main__":
    unittest.main(verbosity=2)
