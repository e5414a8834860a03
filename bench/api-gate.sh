#!/usr/bin/env bash
# API gate benchmark: the same fake Anthropic API (tests/doubles/fake_anthropic.py,
# HTTPS with a local CA) called directly and through the gate, interleaved call by
# call in one run so machine drift hits both alike. Loopback only.
#   - a 1 MiB streamed reply: time to the first body byte and total, median of REPS;
#   - CALLS small streamed calls on kept-alive connections: p50 and p99 per call,
#     and what the gate adds at each.
# Both clients keep their connection open (direct: TLS to the API, as an agent holding
# the key would; gate: plain HTTP to the gate, which keeps its own TLS upstream).
#
#   bench/api-gate.sh                 # REPS=20 CALLS=1000
#   BOTTLE_BIN=/path/to/bottle-bundle bench/api-gate.sh   # a prebuilt bundle, no build
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPS=${REPS:-20}
CALLS=${CALLS:-1000}
KEY=bench-real-key-0123456789abcdef
PLACEHOLDER=bottle-placeholder-bench-00112233445566778899

bundle_bin
bench_tmp bottle-apigate

(
  cd "$T"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=127.0.0.1 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > ext
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile ext 2>/dev/null
)
python3 tests/doubles/fake_anthropic.py --key "$KEY" --cert "$T/cert.pem" --key-file "$T/key.pem" > "$T/api.port" &
PIDS+=($!)
API=$(announced_port "$T/api.port")
GATE=$(free_port)
EGRESS=$(free_port)

echo "control-token-0123456789" > "$T/token"
echo "\"api.bench\" = \"$KEY\"" > "$T/secrets.toml"
cat > "$T/bundle.toml" <<TOML
bottle = "bench"
[listen]
proxy = "127.0.0.1:0"
control = "127.0.0.1:0"
egress = "127.0.0.1:$EGRESS"
api_gate = "127.0.0.1:$GATE"
[control]
token_file = "$T/token"
[dlp]
secrets_file = "$T/secrets.toml"
[egress]
allow_cidrs = ["127.0.0.0/8"]
[api_gate]
ca_file = "$T/ca.pem"
[[api]]
name = "bench"
upstream = "https://127.0.0.1:$API"
header = "x-api-key"
credential = "api.bench"
placeholder = "$PLACEHOLDER"
TOML
RUST_LOG=warn "$BIN" --config "$T/bundle.toml" 2>"$T/bundle.log" &
PIDS+=($!)
wait_port "$GATE"

echo "==> $(nproc) cores, $(uname -sr); fake API on :$API, gate on :$GATE; REPS=$REPS CALLS=$CALLS" >&2
python3 - "$API" "$GATE" "$T/ca.pem" "$KEY" "$PLACEHOLDER" "$REPS" "$CALLS" <<'PY'
import http.client, json, socket, ssl, statistics, sys, time
api, gate, ca, key, placeholder, reps, calls = sys.argv[1:8]
reps, calls = int(reps), int(calls)
ctx = ssl.create_default_context(cafile=ca)
ends = {
    "direct": (lambda: http.client.HTTPSConnection("127.0.0.1", int(api), context=ctx), "/v1/messages", key),
    "gate": (lambda: http.client.HTTPConnection("127.0.0.1", int(gate)), "/bench/v1/messages", placeholder),
}
def connect(make):
    c = make()
    c.connect()
    # http.client writes the head and the body apart; without this, Nagle and delayed ACKs
    # add 40 ms to whichever path they hit, which measures the kernel, not the gate.
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c
conns = {k: connect(v[0]) for k, v in ends.items()}

def call(end, prompt):
    _, path, cred = ends[end]
    body = json.dumps({"model": "m", "max_tokens": 1, "stream": True, "messages": [{"role": "user", "content": prompt}]})
    c = conns[end]
    t0 = time.perf_counter()
    c.request("POST", path, body, {"x-api-key": cred, "content-type": "application/json"})
    r = c.getresponse()
    first = r.read(1)
    t1 = time.perf_counter()
    rest = r.read()
    t2 = time.perf_counter()
    assert r.status == 200 and first and b"message_stop" in rest, (end, r.status, rest[-200:])
    return t1 - t0, t2 - t0, len(first) + len(rest)

ms = lambda s: s * 1000
for end in ends:  # warm both connections (TLS handshakes, the gate's pool)
    call(end, "hi")
big = {e: [] for e in ends}
for _ in range(reps):
    for end in ends:
        big[end].append(call(end, "BIG: 1048576"))
lat = {e: [] for e in ends}
for _ in range(calls):
    for end in ends:
        lat[end].append(call(end, "hi")[1])
pct = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print("1 MiB streamed reply (%d B), median of %d:" % (big["gate"][0][2], reps))
for end in ends:
    print("  %-6s first byte %.3f ms   total %.2f ms" % (end, ms(statistics.median(x[0] for x in big[end])), ms(statistics.median(x[1] for x in big[end]))))
fb = statistics.median(x[0] for x in big["gate"]) - statistics.median(x[0] for x in big["direct"])
tot = statistics.median(x[1] for x in big["gate"]) / statistics.median(x[1] for x in big["direct"])
print("  gate - direct first byte: %+.3f ms (goal: within 1 ms); gate/direct total: %.2fx" % (ms(fb), tot))
print("small streamed calls, %d each, kept-alive:" % calls)
for end in ends:
    print("  %-6s p50 %.3f ms   p99 %.3f ms" % (end, ms(pct(lat[end], 50)), ms(pct(lat[end], 99))))
print("  gate adds: p50 %+.3f ms (goal: at most 0.5 ms), p99 %+.3f ms" % (
    ms(pct(lat["gate"], 50) - pct(lat["direct"], 50)), ms(pct(lat["gate"], 99) - pct(lat["direct"], 99))))
PY
