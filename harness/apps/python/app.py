"""An HTTP service that says its greeting, says so when it is told to stop, ends
with the code GET /exit/CODE names, and answers GET /headers with the request's
headers as JSON (what its proxy passed on), and GET /ready with 200 until GET
/ready/off turns it to 503 (a probe that fails while the service runs)."""

import http.server
import json
import os
import signal
import sys
from pathlib import Path


class Greeter(http.server.BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        if self.path.startswith("/exit/"):  # ends the service with that code
            code = int(self.path.removeprefix("/exit/"))
            print(f"app: exiting with {code}", flush=True)
            os._exit(code)
        status = 200
        if self.path == "/ready/off":
            Greeter.ready = False
        if self.path == "/ready" and not Greeter.ready:
            status = 503
        if self.path == "/headers":
            body = json.dumps([[k.lower(), v] for k, v in self.headers.items()]).encode()
        else:
            body = (os.environ.get("GREETING", "hello") + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def stop(signum: int, _frame: object) -> None:
    print(f"app: got {signal.Signals(signum).name}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print(f"app: listening as uid {os.getuid()} in {Path.cwd()}", flush=True)
http.server.HTTPServer(("0.0.0.0", 8080), Greeter).serve_forever()
