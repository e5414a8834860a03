#!/usr/bin/env python3
"""The traffic of bench/soak.sh (stdlib only), one role per subcommand:

  canary    the allowed origin, in a container of its own: HTTPS on 443 for the tunnels,
            HTTP on 80 for the normal client; asyncio, so a thousand idle keep-alive
            connections cost it no thread each.
  client    the normal agent, in the agent container: requests at a fixed pace, each on a
            new connection, one at a time per service: the proxy (a GET to the canary),
            supervise and git-gate; one JSON line per request. With --origin, on the host:
            the same GET straight to the canary, whose own latency under the load is part
            of the proxy's and git-gate's (the canary serves the tunnels too).
  load      the hostile agent, in the agent container: CONNECT tunnels to the canary held
            open with TLS, a slow-loris and a header flood on the three agent-facing
            services, all at once, for a bounded time; its counters go to a status file.
  progress  one line for the driver from those files; summary: the final table.

The agent finds the bundle as every agent does, from HTTP_PROXY, BOTTLE_SUPERVISE_URL and
BOTTLE_GIT_GATE_URL.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections import Counter, defaultdict

ORIGIN = "allowed.test"
SERVICES = ("proxy", "supervise", "git-gate")
# What the normal client asks each service: answers that each service gives from itself
# (supervise, git-gate's advertisement relayed from the canary) or through egress (proxy).
PATHS = {
    "proxy": f"http://{ORIGIN}/",
    "supervise": "/v1/requests/soak-probe",
    "git-gate": "/soak.git/info/refs?service=git-upload-pack",
    "origin": "/",
}
BODY = b"hello from the soak canary\n"
# One flood header line: large, so ~400 KB stays under hyper's 100-header limit.
FLOOD_LINE = 16 * 1024


def endpoints():
    def hostport(url):
        u = urllib.parse.urlsplit(url)
        return u.hostname, u.port

    return {
        "proxy": hostport(os.environ["HTTP_PROXY"]),
        "supervise": hostport(os.environ["BOTTLE_SUPERVISE_URL"]),
        "git-gate": hostport(os.environ["BOTTLE_GIT_GATE_URL"]),
    }


def request_line(svc):
    return f"GET {PATHS[svc]} HTTP/1.1\r\nHost: {ORIGIN}\r\n".encode()


def raise_nofile():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


# ------------------------------------------------------------------ canary


async def serve_http(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            ctype = b"text/plain"
            body = BODY
            if b"info/refs" in path:
                # Enough of a smart-HTTP advertisement for git-gate to relay it.
                ctype = b"application/x-git-upload-pack-advertisement"
                body = b"001e# service=git-upload-pack\n0000"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (ctype, len(body), body))
            await writer.drain()
            if b"connection: close" in head.lower():
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()


async def canary(a):
    raise_nofile()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    plain = await asyncio.start_server(serve_http, "0.0.0.0", 80, backlog=4096)
    tls = await asyncio.start_server(serve_http, "0.0.0.0", 443, ssl=ctx, backlog=4096)
    print("canary listening on 80 and 443", flush=True)
    async with plain, tls:
        await asyncio.gather(plain.serve_forever(), tls.serve_forever())


# ------------------------------------------------------------------ client


def one_request(addr, svc, timeout):
    """(status or None, error or None) of one request on a new connection."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(request_line(svc) + b"Connection: close\r\n\r\n")
            data = b""
            while True:
                s.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        parts = data.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return None, "no reply"
        return int(parts[1]), None
    except socket.timeout:
        return None, "timeout"
    except OSError as e:
        return None, type(e).__name__


def client(a):
    """One paced thread per service, so a service that stalls does not hide the others' latency."""
    if a.origin:
        host, _, port = a.origin.rpartition(":")
        addrs = {"origin": (host, int(port))}
    else:
        addrs = endpoints()
    end = time.time() + a.seconds
    lock = threading.Lock()

    def run(svc, out):
        pace = len(addrs) / a.rate
        due = time.monotonic()
        while time.time() < end:
            wall, t0 = time.time(), time.perf_counter()
            status, err = one_request(addrs[svc], svc, a.timeout)
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                out.write(json.dumps({"t": wall, "svc": svc, "ms": round(ms, 3), "status": status, "err": err}) + "\n")
                out.flush()
            due = max(due + pace, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))

    with open(a.out, "w") as out:
        threads = [threading.Thread(target=run, args=(svc, out)) for svc in addrs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# ------------------------------------------------------------------ load


def new_stats():
    return {
        "tunnels": Counter(),
        "tunnel_errors": Counter(),
        "loris": defaultdict(Counter),
        "flood": defaultdict(Counter),
        "flood_status": defaultdict(Counter),
    }


async def read_reply(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    await reader.readexactly(length)
    return head


async def get_through(reader, writer):
    writer.write(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % ORIGIN.encode())
    head = await read_reply(reader)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("tunnel GET: " + head[:40].decode(errors="replace"))


async def open_tunnel(addr, ctx):
    reader, writer = await asyncio.open_connection(*addr)
    try:
        writer.write(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % ((ORIGIN.encode(),) * 2))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError("CONNECT " + head[:12].decode(errors="replace"))
        await writer.start_tls(ctx, server_hostname=ORIGIN)
        await get_through(reader, writer)
    except BaseException:
        writer.close()
        raise
    return reader, writer


def left(deadline):
    return deadline - asyncio.get_running_loop().time()


async def tunnel(addr, ctx, st, err, deadline, opening, ping):
    """Opens one tunnel and holds it to the end, a GET through it every `ping` seconds."""
    async with opening:
        try:
            reader, writer = await asyncio.wait_for(open_tunnel(addr, ctx), 30)
        except Exception as e:
            st["failed"] += 1
            err[str(e)[:60] or type(e).__name__] += 1
            return
    st["opened"] += 1
    st["open"] += 1
    try:
        while left(deadline) > 0:
            await asyncio.sleep(min(ping, max(0.0, left(deadline))))
            await asyncio.wait_for(get_through(reader, writer), 10)
        st["alive_at_end"] += 1
    except Exception as e:
        st["dropped"] += 1
        err["dropped: " + (str(e)[:50] or type(e).__name__)] += 1
    finally:
        st["open"] -= 1
        writer.close()


async def connect(addr, st):
    """A new connection, counted in `st`; None (after a pause) if it could not be made."""
    try:
        conn = await asyncio.wait_for(asyncio.open_connection(*addr), 10)
    except (OSError, asyncio.TimeoutError):
        st["connect_failed"] += 1
        await asyncio.sleep(1)
        return None
    st["opened"] += 1
    return conn


async def loris(addr, svc, every, st, deadline):
    """Keeps one slow head open: a byte every `every` seconds; reconnects when cut."""
    drip = b"X-Loris: 1\r\n"
    while left(deadline) > 0:
        conn = await connect(addr, st)
        if conn is None:
            continue
        reader, writer = conn
        st["open"] += 1
        try:
            writer.write(request_line(svc))
            i = 0
            while True:
                try:
                    await asyncio.wait_for(reader.read(4096), min(every, max(0.01, left(deadline))))
                    st["cut"] += 1  # the server answered or closed
                    break
                except asyncio.TimeoutError:
                    pass
                if left(deadline) <= 0:
                    st["held_to_end"] += 1
                    break
                writer.write(drip[i % len(drip) : i % len(drip) + 1])
                i += 1
                await writer.drain()
        except OSError:
            st["cut"] += 1
        finally:
            st["open"] -= 1
            writer.close()
        await asyncio.sleep(1)


def flood_head(svc, size):
    head = bytearray(request_line(svc))
    n = 0
    while len(head) < size:
        head += b"X-Flood-%03d: " % n + b"a" * (FLOOD_LINE - 16) + b"\r\n"
        n += 1
    return bytes(head[:size])


async def flood(addr, svc, head, st, status, deadline):
    """Sends unfinished heads of len(head) bytes, again and again, and sorts what the service did."""
    while left(deadline) > 0:
        conn = await connect(addr, st)
        if conn is None:
            continue
        reader, writer = conn
        answer = asyncio.ensure_future(reader.read(64))
        outcome = None
        try:
            for off in range(0, len(head), 64 * 1024):
                if answer.done():
                    outcome = "shed"  # refused before the whole head was in
                    break
                writer.write(head[off : off + 64 * 1024])
                try:
                    await asyncio.wait_for(writer.drain(), max(0.01, left(deadline)))
                except asyncio.TimeoutError:
                    outcome = "stalled"  # never read this far before the end
                    break
            else:
                st["accepted"] += 1  # the service took the whole unfinished head
                try:
                    await asyncio.wait_for(asyncio.shield(answer), max(0.01, left(deadline)))
                    outcome = "cut_after"
                except asyncio.TimeoutError:
                    outcome = "held_to_end"
        except OSError:
            outcome = "shed"
        st[outcome] += 1
        if answer.done() and not answer.cancelled():
            try:
                reply = answer.result()
                parts = reply.split(b" ", 2)
                status[parts[1].decode() if len(parts) > 1 and reply.startswith(b"HTTP/") else "closed"] += 1
            except OSError as e:
                status[type(e).__name__] += 1
        answer.cancel()
        writer.close()
        await asyncio.sleep(1)


async def load(a):
    raise_nofile()
    addrs = endpoints()
    ctx = ssl.create_default_context(cafile=a.ca)
    st = new_stats()
    loop = asyncio.get_running_loop()
    started = time.time()
    deadline = loop.time() + a.seconds
    opening = asyncio.Semaphore(a.open_at_once)
    tasks = [tunnel(addrs["proxy"], ctx, st["tunnels"], st["tunnel_errors"], deadline, opening, a.ping) for _ in range(a.tunnels)]
    for i in range(a.loris):
        svc = SERVICES[i % len(SERVICES)]
        tasks.append(loris(addrs[svc], svc, a.loris_every, st["loris"][svc], deadline))
    for svc in SERVICES:
        head = flood_head(svc, a.flood_kb * 1024)
        tasks += [flood(addrs[svc], svc, head, st["flood"][svc], st["flood_status"][svc], deadline) for _ in range(a.flood)]

    def report(done):
        write_json(a.status, {"started": started, "now": time.time(), "done": done, **st})

    async def reporter():
        while True:
            report(False)
            await asyncio.sleep(1)

    rep = asyncio.ensure_future(reporter())
    # Bounded: whatever still runs a grace period past the deadline is cancelled.
    await asyncio.wait([asyncio.ensure_future(t) for t in tasks], timeout=a.seconds + 20)
    rep.cancel()
    report(True)


# ------------------------------------------------------------------ reading the results


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def samples(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def progress(a):
    out = []
    try:
        st = json.load(open(a.status))
        t = st["tunnels"]
        out.append("tunnels %d open (%d failed, %d dropped)" % (t.get("open", 0), t.get("failed", 0), t.get("dropped", 0)))
        lo = st["loris"]
        out.append("loris %d open, %d cut" % (sum(v.get("open", 0) for v in lo.values()), sum(v.get("cut", 0) for v in lo.values())))
        fl = st["flood"]
        out.append("flood " + " ".join("%s %d/%d/%d" % (s, fl.get(s, {}).get("accepted", 0), fl.get(s, {}).get("shed", 0), fl.get(s, {}).get("stalled", 0)) for s in SERVICES) + " (accepted/shed/stalled)")
    except (OSError, ValueError, KeyError):
        out.append("load not started")
    try:
        recent = [s for s in samples(a.client) if s["t"] >= time.time() - a.window]
        ms = [s["ms"] for s in recent]
        errs = sum(1 for s in recent if s["err"])
        out.append("client last %ds: n=%d p50 %.1f p99 %.1f ms, %d errors" % (a.window, len(ms), pct(ms, 50), pct(ms, 99), errs))
    except OSError:
        out.append("client not started")
    print(" | ".join(out))


def summary(a):
    info = json.load(open(a.info))
    st = json.load(open(a.status))
    start, end = st["started"], st["now"]
    rows = defaultdict(list)
    errs = Counter()
    statuses = defaultdict(Counter)
    origin = list(samples(a.origin_client)) if a.origin_client else []
    for s in list(samples(a.client)) + origin:
        phase = "quiet" if s["t"] < start else "load" if s["t"] < end else "after"
        for key in (s["svc"],) if s["svc"] == "origin" else (s["svc"], "all"):
            rows[(phase, key)].append(s["ms"])
        statuses[(phase, s["svc"])][s["err"] or s["status"]] += 1
        if s["err"] and s["svc"] != "origin":
            errs[phase] += 1
    mib = lambda b: b / 1048576
    p = print
    p("\nSoak: %d tunnels, %d slow-loris (a byte every %gs), header flood %d x %d KB per service, %d s of load" % (
        a.tunnels, a.loris, a.loris_every, a.flood, a.flood_kb, round(end - start)))
    p("\nnormal client (a new connection per request, one at a time per service, %g requests/s in all; quiet = before the load, same run):\n" % a.rate)
    p("| service | phase | requests | p50 ms | p99 ms | max ms | p99 / quiet p99 | replies |")
    p("|---|---|---:|---:|---:|---:|---:|---|")
    for key in SERVICES + ("all", "origin"):
        quiet99 = pct(rows[("quiet", key)], 99)
        for phase in ("quiet", "load", "after"):
            xs = rows[(phase, key)]
            if not xs:
                continue
            replies = "" if key == "all" else ", ".join("%s x%d" % (k, v) for k, v in sorted(statuses[(phase, key)].items(), key=str))
            p("| %s | %s | %d | %.2f | %.2f | %.1f | %.1fx | %s |" % (key, phase, len(xs), pct(xs, 50), pct(xs, 99), max(xs), pct(xs, 99) / quiet99, replies))
    t = st["tunnels"]
    p("\ntunnels: %d asked, %d opened, %d failed to open, %d dropped, %d alive at the end (a GET through each every %g s)" % (
        a.tunnels, t.get("opened", 0), t.get("failed", 0), t.get("dropped", 0), t.get("alive_at_end", 0), a.ping))
    for e, n in Counter(st["tunnel_errors"]).most_common(4):
        p("  tunnel error x%d: %s" % (n, e))
    p("\n| service | slow-loris connections opened | cut by the service | held to the end | connect failed |")
    p("|---|---:|---:|---:|---:|")
    for s in SERVICES:
        v = st["loris"].get(s, {})
        p("| %s | %d | %d | %d | %d |" % (s, v.get("opened", 0), v.get("cut", 0), v.get("held_to_end", 0), v.get("connect_failed", 0)))
    p("\n| service | flood connections opened | accepted the whole head | shed before it | cut after it | held to the end | stalled (not read) | replies to the flood |")
    p("|---|---:|---:|---:|---:|---:|---:|---|")
    for s in SERVICES:
        v = st["flood"].get(s, {})
        replies = ", ".join("%s x%d" % kv for kv in sorted(st["flood_status"].get(s, {}).items()))
        p("| %s | %d | %d | %d | %d | %d | %d | %s |" % (s, v.get("opened", 0), v.get("accepted", 0), v.get("shed", 0), v.get("cut_after", 0), v.get("held_to_end", 0), v.get("stalled", 0), replies))
    p("\nbundle container: peak cgroup memory %.1f MiB of its %.0f MiB limit (%s); peak RSS of the bundle process %.1f MiB (VmHWM); highest sampled usage %.1f MiB; open fds at most %d" % (
        mib(info["cgroup_peak"]), mib(info["limit"]), info["cgroup_file"], info["vmhwm_kb"] / 1024, mib(info["sampled_peak"]), info["fds_peak"]))
    p("bundle restarts: RestartCount %s before, %s after; OOMKilled %s; same process throughout: %s" % (
        info["restarts_before"], info["restarts_after"], info["oom_killed"], info["same_pid"]))
    p("bundle log: %s" % info["log_counts"])
    q99, l99 = pct(rows[("quiet", "all")], 99), pct(rows[("load", "all")], 99)
    met = l99 < 10 and info["restarts_before"] == info["restarts_after"] and info["same_pid"] == "yes"
    p("\ngoal (normal client p99 under load < 10 ms, no bundle restart): %s — p99 under load %.2f ms (quiet %.2f ms, %.1fx), %d client errors under load" % (
        "met" if met else "NOT met", l99, q99, l99 / q99, errs["load"]))
    if origin:
        p("the canary origin itself, asked from the host at the same pace: p99 %.2f ms quiet, %.2f ms under load" % (
            pct(rows[("quiet", "origin")], 99), pct(rows[("load", "origin")], 99)))
    for phase in ("quiet", "load", "after"):
        for key in SERVICES + ("all", "origin"):
            xs = rows[(phase, key)]
            if xs:
                p("RAW client phase=%s svc=%s n=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f" % (phase, key, len(xs), pct(xs, 50), pct(xs, 99), max(xs)))
    p("RAW load " + json.dumps({k: st[k] for k in ("tunnels", "loris", "flood", "flood_status")}, sort_keys=True))
    p("RAW bundle " + json.dumps(info, sort_keys=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="role", required=True)
    c = sub.add_parser("canary")
    c.add_argument("--cert", required=True)
    c.add_argument("--key", required=True)
    c = sub.add_parser("client")
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--rate", type=float, default=20)
    c.add_argument("--timeout", type=float, default=10)
    c.add_argument("--out", required=True)
    c.add_argument("--origin", help="HOST:PORT of the canary, asked directly instead of the bundle's services")
    for name in ("load", "summary"):
        c = sub.add_parser(name)
        c.add_argument("--tunnels", type=int, default=1000)
        c.add_argument("--loris", type=int, default=500)
        c.add_argument("--loris-every", type=float, default=5)
        c.add_argument("--flood", type=int, default=300, help="flood connections per service")
        c.add_argument("--flood-kb", type=int, default=400)
        c.add_argument("--ping", type=float, default=20, help="seconds between GETs through each tunnel")
        c.add_argument("--status", required=True)
    c = sub.choices["load"]
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--open-at-once", type=int, default=50, help="tunnels being opened at the same time")
    c = sub.choices["summary"]
    c.add_argument("--client", required=True)
    c.add_argument("--origin-client", help="the --origin client's lines")
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--info", required=True, help="JSON the driver wrote about the bundle container")
    c = sub.add_parser("progress")
    c.add_argument("--status", required=True)
    c.add_argument("--client", required=True)
    c.add_argument("--window", type=int, default=5)
    a = ap.parse_args()
    if a.role == "canary":
        asyncio.run(canary(a))
    elif a.role == "client":
        client(a)
    elif a.role == "load":
        asyncio.run(load(a))
    elif a.role == "progress":
        progress(a)
    else:
        summary(a)


if __name__ == "__main__":
    sys.exit(main())
