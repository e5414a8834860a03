#!/usr/bin/env python3
"""A git smart-HTTP upstream for git-gate's tests and benchmark.

Serves every bare repository under --root through `git http-backend` (as CGI),
and only to a client presenting --credential as HTTP Basic auth, so a test can
prove the credential came from the gate and not from the agent. Request bodies
may be chunked (git streams large pushes that way); responses are streamed
chunked. With --tls-cert/--tls-key it serves HTTPS. Prints "PORT <n>" once it listens (loopback
unless --host names a test container's own address).
"""

import argparse
import base64
import hmac
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = ""
    expected = ""

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: " + (fmt % args) + "\n")

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def serve(self):
        presented = self.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), self.expected.encode()):
            body = b"upstream: bad credentials\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="upstream-secret-realm"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
            # As GitHub and GitLab do, so the tests see what the gate makes of push options.
            "GIT_CONFIG_KEY_1": "receive.advertisePushOptions",
            "GIT_CONFIG_VALUE_1": "true",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_USER": "gate",
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if self.headers.get("Content-Length"):
            env["CONTENT_LENGTH"] = self.headers["Content-Length"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        feeder = threading.Thread(target=self.feed, args=(proc.stdin,), daemon=True)
        feeder.start()
        status, headers = "200 OK", []
        while True:
            line = proc.stdout.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            else:
                headers.append((name, value.strip()))
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason or None)
        for name, value in headers:
            self.send_header(name, value)
        # Chunked, not close-delimited: over TLS a close without close_notify must not look like a clean end.
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        while True:
            data = proc.stdout.read1(CHUNK)
            if not data:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")
        feeder.join()
        proc.wait()

    def feed(self, stdin):
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    if not self.copy_body(size, stdin):
                        return
                    self.rfile.readline()
            else:
                self.copy_body(int(self.headers.get("Content-Length") or 0), stdin)
        except (BrokenPipeError, ValueError):
            pass
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass

    def copy_body(self, n, stdin):
        """Copies n body bytes to stdin; False if the client hung up first."""
        while n:
            data = self.rfile.read(min(CHUNK, n))
            if not data:
                return False
            stdin.write(data)
            n -= len(data)
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--credential", required=True, help="user:token the upstream accepts")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (a test's own container only)")
    ap.add_argument("--tls-cert", help="PEM certificate chain; serve HTTPS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = ap.parse_args()
    Handler.root = os.path.abspath(args.root)
    Handler.expected = "Basic " + base64.b64encode(args.credential.encode()).decode()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
