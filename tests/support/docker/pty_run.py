#!/usr/bin/env python3
"""Runs one program on a real pseudo-terminal, as a person at a terminal would, for the tests.

Usage: pty_run.py SPEC_JSON. SPEC: {"argv": [...], "env": {...}, "rows": R, "cols": C,
"timeout": SECS, "steps": [...]}. Steps, in order:
  {"expect": TEXT}                     wait until TEXT shows after the previous match
  {"send": TEXT}                       type TEXT
  {"resize": [ROWS, COLS]}             resize the terminal (the kernel sends SIGWINCH)
  {"until": TEXT, "send": T, "max": N} type T, up to N times, until TEXT shows
Then reads to the end and prints one JSON object: {"status": exit code (128 + N for signal N),
"output": everything shown, latin-1, "failed": the step that did not happen or null,
"echo_restored": whether the terminal echoes and edits lines again after the program exits}.
Every wait is bounded by "timeout", so a test never hangs on a program that does not answer.
"""
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time

spec = json.loads(sys.argv[1])
deadline = time.monotonic() + spec.get("timeout", 60)


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


pid, fd = pty.fork()
if pid == 0:
    set_size(0, spec.get("rows", 24), spec.get("cols", 80))
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    os.execvpe(spec["argv"][0], spec["argv"], env)

shown = bytearray()
seen = 0
eof = False


def read_some(wait):
    global eof
    if eof:
        return
    ready, _, _ = select.select([fd], [], [], max(0.0, wait))
    if not ready:
        return
    try:
        data = os.read(fd, 65536)
    except OSError:  # EIO: the program's side of the terminal is closed
        data = b""
    if data:
        shown.extend(data)
    else:
        eof = True


def wait_for(text, until):
    global seen
    want = text.encode()
    while True:
        at = shown.find(want, seen)
        if at >= 0:
            seen = at + len(want)
            return True
        if eof or time.monotonic() > until:
            return False
        read_some(min(0.2, until - time.monotonic()))


failed = None
for i, step in enumerate(spec.get("steps", [])):
    if "resize" in step:
        set_size(fd, *step["resize"])
    elif "until" in step:
        ok = False
        for _ in range(step.get("max", 20)):
            os.write(fd, step["send"].encode())
            if wait_for(step["until"], min(deadline, time.monotonic() + 2)):
                ok = True
                break
        if not ok:
            failed = i
            break
    elif "expect" in step:
        if not wait_for(step["expect"], deadline):
            failed = i
            break
    elif "send" in step:
        os.write(fd, step["send"].encode())

while not eof and time.monotonic() < deadline:
    read_some(0.2)
if not eof:
    os.kill(pid, 9)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
lflag = termios.tcgetattr(fd)[3]
print(json.dumps({
    "status": code if code >= 0 else 128 - code,
    "output": shown.decode("latin-1"),
    "failed": failed,
    "echo_restored": bool(lflag & termios.ECHO) and bool(lflag & termios.ICANON),
}))
