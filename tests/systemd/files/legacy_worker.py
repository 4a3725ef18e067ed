"""A worker some other tool started: an HTTP server on 127.0.0.1:PORT that
writes its pid to PIDFILE (when it may: medic's sandbox keeps /run read-only).

    python3 legacy_worker.py PORT PIDFILE
"""

import contextlib
import http.server
import os
import sys

port, pidfile = int(sys.argv[1]), sys.argv[2]
with contextlib.suppress(OSError):
    with open(pidfile + ".new", "w") as out:
        out.write(f"{os.getpid()}\n")
    os.replace(pidfile + ".new", pidfile)


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Ok).serve_forever()
