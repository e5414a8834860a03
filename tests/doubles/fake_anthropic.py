#!/usr/bin/env python3
"""A TEST DOUBLE of the Anthropic Messages API (the one thing bottle's tests
cannot run for real). It answers `POST /v1/messages` the way the real API
does per its public docs: `x-api-key` checked (401 `authentication_error`
otherwise), and with `"stream": true` a `text/event-stream` of
message_start, content_block_start, ping, content_block_delta (text_delta or
input_json_delta), content_block_stop, message_delta, message_stop.

What it answers is chosen by the conversation's user text:
  - holds a tool_result          -> text "tool said: <the result>"
  - contains "RUN: <command>"    -> a Bash tool_use running <command>
  - contains "BIG: <n>"          -> <n> bytes of text in 16 KiB deltas
  - contains "HOLD"              -> the first events, then waits (up to --hold-secs)
                                    for the file --release names before the rest
  - anything else                -> text "hello from the fake API"
Every request is appended to --log as one JSON line (path, credential headers,
body size, whether it was streamed), flushed at once.

Usage: fake_anthropic.py --port N --key KEY [--cert C --key-file K] [--log F] [--release F] [--hold-secs S]
Prints "PORT <n>" when it listens.
"""
import argparse
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOG_LOCK = threading.Lock()


def record(entry):
    if not ARGS.log:
        return
    with LOG_LOCK, open(ARGS.log, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()


def user_text(body):
    """All user text of the conversation (Claude Code sends its context and the prompt as
    separate user turns), and the last message's tool_result content if it holds one."""
    text, result = [], None
    msgs = body.get("messages") or []
    for i, m in enumerate(msgs):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else (content or [])
        for block in blocks:
            if block.get("type") == "text":
                text.append(block.get("text", ""))
            elif block.get("type") == "tool_result" and i == len(msgs) - 1:
                c = block.get("content")
                if isinstance(c, list):
                    c = "".join(x.get("text", "") for x in c if isinstance(x, dict))
                result = str(c)
    return "\n".join(text), result


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Each event is its own write, as a streaming API sends it; Nagle would hold them back.
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def reply_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", "req_fake")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        text, tool_result = user_text(body)
        record({
            "path": self.path,
            "x_api_key": self.headers.get("x-api-key"),
            "authorization": self.headers.get("authorization"),
            "body_bytes": len(raw),
            "stream": bool(body.get("stream")),
            "tool_result": tool_result,
            "prompt": text[-200:],
            "tools": len(body.get("tools") or []),
            "time": time.time(),
        })
        if self.headers.get("x-api-key") != ARGS.key:
            return self.reply_json(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        if not self.path.startswith("/v1/messages"):
            return self.reply_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}})
        if tool_result is not None:
            blocks = [("text", "tool said: " + tool_result.strip())]
        elif "RUN: " in text:
            cmd = text.split("RUN: ", 1)[1].strip().splitlines()[0]
            blocks = [("tool_use", {"command": cmd, "description": "run the command"})]
        elif "BIG: " in text:
            size = int(text.split("BIG: ", 1)[1].split()[0])
            blocks = [("big", size)]
        else:
            blocks = [("text", "hello from the fake API")]
        hold = "HOLD" in text
        model = body.get("model", "claude-fake")
        if not body.get("stream"):
            content = [{"type": "text", "text": b[1]} for b in blocks if b[0] == "text"]
            return self.reply_json(200, {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                                         "content": content, "stop_reason": "end_turn", "stop_sequence": None,
                                         "usage": {"input_tokens": 1, "output_tokens": 1}})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_fake")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.chunk(sse("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}))
        if hold:
            deadline = time.time() + ARGS.hold_secs
            while time.time() < deadline and not (ARGS.release and os.path.exists(ARGS.release)):
                time.sleep(0.02)
        stop = "end_turn"
        for i, (kind, value) in enumerate(blocks):
            if kind == "tool_use":
                stop = "tool_use"
                self.chunk(sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": "toolu_fake01", "name": "Bash", "input": {}}}))
                self.chunk(sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(value)}}))
            else:
                self.chunk(sse("content_block_start", {"type": "content_block_start", "index": i,
                                                       "content_block": {"type": "text", "text": ""}}))
                self.chunk(sse("ping", {"type": "ping"}))
                pieces = [value] if kind == "text" else ["x" * min(16384, value - o) for o in range(0, value, 16384)]
                for p in pieces:
                    self.chunk(sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                           "delta": {"type": "text_delta", "text": p}}))
            self.chunk(sse("content_block_stop", {"type": "content_block_stop", "index": i}))
        self.chunk(sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": {"output_tokens": 1}}))
        self.chunk(sse("message_stop", {"type": "message_stop"}))
        record({"path": self.path, "last_event_sent": time.time()})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--key", required=True)
    p.add_argument("--cert")
    p.add_argument("--key-file")
    p.add_argument("--log")
    p.add_argument("--release")
    p.add_argument("--hold-secs", type=float, default=20.0)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer((ARGS.bind, ARGS.port), Handler)
    server.daemon_threads = True
    if ARGS.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key_file)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
