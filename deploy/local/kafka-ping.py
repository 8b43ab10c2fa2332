#!/usr/bin/env python3
"""Answers whether a Kafka-protocol broker is serving: sends a real ApiVersions v0 request and
checks the reply's error code. Used by deploy/local/stack instead of fixed sleeps."""
import socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])
client = b"strata-stack"
body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
try:
    with socket.create_connection((host, port), timeout=1.0) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = s.recv(4)
        if len(head) < 4:
            sys.exit(1)
        size = struct.unpack(">i", head)[0]
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            if not chunk:
                sys.exit(1)
            data += chunk
        corr, err = struct.unpack(">ih", data[:6])
        sys.exit(0 if corr == 7 and err == 0 else 1)
except OSError:
    sys.exit(1)
