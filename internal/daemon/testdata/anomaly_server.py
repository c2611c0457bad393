#!/usr/bin/python3
# A small file server for the learned-behaviour test: one request per
# connection. "GET name" sends back a file of the directory it serves; "RUN"
# is the bug an attacker finds: it runs a shell command.
import os
import socket
import subprocess
import sys

root = sys.argv[1]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        req = conn.recv(256).decode().strip()
        if req.startswith("GET "):
            name = os.path.basename(req[4:])
            try:
                with open(os.path.join(root, name), "rb") as f:
                    conn.sendall(f.read())
            except OSError:
                conn.sendall(b"not found\n")
        elif req == "RUN":
            out = subprocess.run(["/bin/sh", "-c", "id"], capture_output=True).stdout
            conn.sendall(out)
        elif req == "QUIT":
            break
