"""The program the host-process MTTR bench supervises: answers every request 200.

Standard library ``socket`` only, so it listens a few tens of milliseconds
after exec (run it with ``python3 -S``); ``python3 -m http.server`` takes about
twice as long to import. medic and supervisord run this same file.

    python3 -S bench/tiny_http_server.py PORT
"""

import socket
import sys

RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"


def serve(port: int) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(2.0)
            try:
                conn.recv(65536)
                conn.sendall(RESPONSE)
            except OSError:
                pass  # the client went away: next one


if __name__ == "__main__":
    serve(int(sys.argv[1]))
