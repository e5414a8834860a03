#!/usr/bin/env bash
# Benchmark: bottle's egress proxy against squid and tinyproxy as allowlisting
# forward proxies, with "direct" (no proxy) as the baseline, all in one run.
#
# Loopback only: nginx serves origin.test on 127.0.0.1, every proxy allows only
# origin.test. Measures ab req/s (c=1, c=32, keep-alive), new-TLS-connection
# latency through CONNECT (python http.client), 256 MiB bulk downloads (curl),
# idle RSS, and bottle's RSS holding 1000 open TLS tunnels.
#
#   bench/proxy-peers.sh            # REPS=3 N=20000 TLS_CONNS=200 TUNNELS=1000
#   REPS=1 N=5000 bench/proxy-peers.sh
#   BOTTLE_BIN=/path/to/bottle-bundle bench/proxy-peers.sh   # a prebuilt bundle, no build
#   SECTIONS=bulk REPS=5 bench/proxy-peers.sh                 # only some of: ab tls bulk tunnels
#   BOTTLE_BASE_BIN=/path/to/older/bottle-bundle bench/proxy-peers.sh  # adds arm "base": before/after in one run
#
# Until egress honours `[egress.hosts]` everywhere, origin.test is also added to
# /etc/hosts for the run (tagged line, file restored byte-for-byte on exit).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
. scripts/lib/deps.sh
ensure_packages squid tinyproxy nginx-light apache2-utils curl python3 openssl

W=${W:-/tmp/bottle-bench}
REPS=${REPS:-3}
N=${N:-20000}
TLS_CONNS=${TLS_CONNS:-200}
TUNNELS=${TUNNELS:-1000}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}   # seconds any one measurement may take
SECTIONS=${SECTIONS:-"ab tls bulk tunnels"}   # which measurements to run
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
HTTP_PORT=18080; HTTPS_PORT=18443; SQUID_PORT=13128; TINY_PORT=18888; BOTTLE_PORT=13129; BASE_PORT=13130
ORIGIN=origin.test
HOSTS_TAG="# bottle-bench"
RES=$W/results.txt
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

mkdir -p $W/origin/www $W/squid $W/tinyproxy $W/bottle $W/tmp
: > "$RES"

bundle_bin

# restore /etc/hosts byte-for-byte (written in place: /etc/hosts may be a bind mount)
restore_hosts() { if [ -s $W/tmp/hosts.orig ] && grep -q "$HOSTS_TAG" /etc/hosts; then cat $W/tmp/hosts.orig > /etc/hosts; fi; }
on_exit restore_hosts

# ---------------------------------------------------------------- content + cert
[ -s $W/origin/www/small.bin ] || head -c 1024 /dev/urandom > $W/origin/www/small.bin
[ "$(stat -c %s $W/origin/www/large.bin 2>/dev/null)" = 268435456 ] || \
  head -c 268435456 /dev/urandom > $W/origin/www/large.bin
if [ ! -s $W/origin/cert.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout $W/origin/key.pem -out $W/origin/cert.pem -days 365 \
    -subj "/CN=$ORIGIN" -addext "subjectAltName=DNS:$ORIGIN" 2>/dev/null
fi
chmod 755 $W $W/origin $W/origin/www; chmod 644 $W/origin/www/*

# ---------------------------------------------------------------- configs
cat > $W/origin/nginx.conf <<EOF
daemon off;
worker_processes 1;
pid $W/origin/nginx.pid;
error_log $W/origin/error.log warn;
events { worker_connections 8192; }
worker_rlimit_nofile 16384;
http {
  access_log off;
  client_body_temp_path $W/origin/tmp_body; proxy_temp_path $W/origin/tmp_proxy;
  fastcgi_temp_path $W/origin/tmp_fcgi; uwsgi_temp_path $W/origin/tmp_uwsgi; scgi_temp_path $W/origin/tmp_scgi;
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 10000000; keepalive_timeout 75s;
  server { listen 127.0.0.1:$HTTP_PORT; server_name $ORIGIN; root $W/origin/www; }
  server { listen 127.0.0.1:$HTTPS_PORT ssl; server_name $ORIGIN; root $W/origin/www;
           ssl_certificate $W/origin/cert.pem; ssl_certificate_key $W/origin/key.pem;
           ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off; }
}
EOF

cat > $W/squid/squid.conf <<EOF
http_port 127.0.0.1:$SQUID_PORT
acl allowed_dst dstdomain $ORIGIN
acl SSL_ports port $HTTPS_PORT
acl Safe_ports port $HTTP_PORT $HTTPS_PORT
acl CONNECT method CONNECT
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost allowed_dst
http_access deny all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log $W/squid/cache.log
pid_filename $W/squid/squid.pid
coredump_dir $W/squid
netdb_filename none
pinger_enable off
shutdown_lifetime 1 seconds
EOF
: > $W/squid/cache.log   # fresh log per run, created before the chown so squid can write it
chown -R proxy:proxy $W/squid

cat > $W/tinyproxy/filter <<EOF
^origin\.test$
EOF
cat > $W/tinyproxy/tinyproxy.conf <<EOF
User tinyproxy
Group tinyproxy
Port $TINY_PORT
Listen 127.0.0.1
Timeout 600
DefaultErrorFile "/usr/share/tinyproxy/default.html"
LogFile "$W/tinyproxy/tinyproxy.log"
LogLevel Warning
PidFile "$W/tinyproxy/tinyproxy.pid"
MaxClients 200
Allow 127.0.0.1
ViaProxyName "tinyproxy"
Filter "$W/tinyproxy/filter"
FilterType ere
FilterDefaultDeny Yes
ConnectPort $HTTPS_PORT
EOF
: > $W/tinyproxy/tinyproxy.log; : > $W/origin/error.log   # fresh logs per run
chown -R tinyproxy:tinyproxy $W/tinyproxy

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $W/bottle/token
cat > $W/bottle/bundle.toml <<EOF
bottle = "bench"
[listen]
proxy = "127.0.0.1:$BOTTLE_PORT"
control = "127.0.0.1:0"
egress = "127.0.0.1:0"
[control]
token_file = "$W/bottle/token"
[policy]
allow = ["$ORIGIN:$HTTP_PORT", "$ORIGIN:$HTTPS_PORT"]
[egress]
allow_cidrs = ["127.0.0.0/8"]
[egress.hosts]
"$ORIGIN" = ["127.0.0.1"]
EOF

# ---------------------------------------------------------------- helpers
cat > $W/tls_bench.py <<'EOF'
# usage: tls_bench.py PROXY|none HOST PORT N CAFILE
# N sequential NEW TLS connections (through CONNECT if PROXY), each GET /small.bin.
import http.client, ssl, sys, time, statistics, math
proxy, host, port, n, cafile = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
lat = []
t0 = time.perf_counter()
for _ in range(n):
    s = time.perf_counter()
    if proxy == "none":
        c = http.client.HTTPSConnection(host, port, context=ctx)
    else:
        ph, pp = proxy.rsplit(":", 1)
        c = http.client.HTTPSConnection(ph, int(pp), context=ctx)
        c.set_tunnel(host, port)
    c.request("GET", "/small.bin")
    r = c.getresponse(); body = r.read()
    assert r.status == 200 and len(body) == 1024, (r.status, len(body))
    c.close()
    lat.append((time.perf_counter() - s) * 1000)
total = time.perf_counter() - t0
lat.sort()
p = lambda q: lat[min(len(lat) - 1, math.ceil(q * len(lat)) - 1)]
print(f"total_s={total:.4f} mean_ms={statistics.mean(lat):.3f} p50_ms={p(0.5):.3f} p99_ms={p(0.99):.3f}")
EOF

cat > $W/hold_tunnels.py <<'EOF'
# usage: hold_tunnels.py PROXY_PORT HOST PORT N CAFILE READY_FILE
# Opens N TLS tunnels through the proxy (CONNECT + handshake + one request), holds
# them until stdin closes, and writes "ok=<n>" to READY_FILE once all are open.
import socket, ssl, sys
pport, host, port, n, cafile, ready = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=cafile)
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", pport), timeout=10)
    s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b: break
        head += b
    if b" 200 " not in head.split(b"\r\n")[0]: break
    t = ctx.wrap_socket(s, server_hostname=host)
    t.sendall(f"GET /small.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    got = b""
    while len(got) < 1024 or b"\r\n\r\n" not in got:
        d = t.recv(65536)
        if not d: break
        got += d
    held.append(t)
open(ready, "w").write(f"ok={len(held)}\n")
sys.stdin.read()
EOF

cat > $W/raw_req.py <<'EOF'
# usage: raw_req.py PORT 'REQUEST with \r\n escapes'  -> prints status line, headers, body summary
import socket, sys, re
port, req = int(sys.argv[1]), sys.argv[2].encode().decode("unicode_escape").encode()
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3); s.sendall(req)
data = b""; note = "proxy closed the connection after the response"
try:
    while True:
        d = s.recv(65536)
        if not d: break
        data += d
except socket.timeout:
    note = "proxy kept the connection OPEN after the response (read timed out after 3 s)"
s.close()
head, _, body = data.partition(b"\r\n\r\n")
for line in head.decode("latin1").split("\r\n"): print("    " + line)
t = re.search(rb"<title>(.*?)</title>", body, re.S | re.I)
print(f"    [body: {len(body)} bytes" + (f", <title>{t.group(1).decode('latin1').strip()}</title>" if t else "") + f"; {note}]")
EOF

cat > $W/summarize.py <<'EOF'
import sys, re, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    if not line.startswith("RAW "): continue
    _, test, arm, *kv = line.split()
    d = dict(x.split("=", 1) for x in kv)
    for k, v in d.items():
        if k == "rep": continue
        try: v = float(v)
        except ValueError: continue
        rows.setdefault((test, k), collections.OrderedDict()).setdefault(arm, []).append(v)
arms = ["direct", "squid", "tinyproxy", "bottle", "base"]
arms = [a for a in arms if any(a in per for per in rows.values())]
peers = [a for a in arms if a != "bottle"]
f = lambda x: f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"
print(f"{'test':<12}{'metric':<14}" + "".join(f"{a + ' min/med/max':>32}" for a in arms))
for (test, k), per in rows.items():
    cells = []
    for a in arms:
        v = per.get(a)
        cells.append("/".join(f(x) for x in (min(v), statistics.median(v), max(v))) + f" (n={len(v)})" if v else "-")
    print(f"{test:<12}{k:<14}" + "".join(f"{c:>32}" for c in cells))
print("\nratios of medians (bottle / peer); higher is better for rps and MBps, lower for latency")
for (test, k), per in rows.items():
    if k not in ("rps", "MBps", "mean_ms", "p50_ms", "p99_ms") or "bottle" not in per: continue
    b = statistics.median(per["bottle"])
    print(f"  {test} {k}: " + ", ".join(f"vs {a} {b / statistics.median(per[a]):.2f}" for a in peers if a in per and statistics.median(per[a])))
print("\nadded latency per new TLS connection via CONNECT = median(proxy) - median(direct)")
for (test, k), per in rows.items():
    if test.startswith("tls") and k in ("mean_ms", "p50_ms", "p99_ms") and "direct" in per:
        d = statistics.median(per["direct"])
        print(f"  {test} {k}: " + ", ".join(f"{a} +{statistics.median(per[a]) - d:.3f} ms" for a in arms[1:] if a in per))
print(f"\nload average at the end: {open('/proc/loadavg').read().split()[:3]}")
EOF

rss() { awk '/^VmRSS|^VmHWM/{printf "%s=%s kB ", $1, $2}' /proc/$1/status | tr -d ':'; }
bounded() { timeout "$STEP_TIMEOUT" "$@"; }

# ---------------------------------------------------------------- start servers
grep -q "$HOSTS_TAG" /etc/hosts && { echo "/etc/hosts already has a $HOSTS_TAG line; aborting"; exit 1; }
cp /etc/hosts $W/tmp/hosts.orig
{ [ -n "$(tail -c1 /etc/hosts)" ] && echo; echo "127.0.0.1 $ORIGIN $HOSTS_TAG"; } >> /etc/hosts
nginx -c $W/origin/nginx.conf & NGINX_PID=$!; PIDS+=($NGINX_PID)
squid -N -f $W/squid/squid.conf & SQUID_PID=$!; PIDS+=($SQUID_PID)
tinyproxy -d -c $W/tinyproxy/tinyproxy.conf & TINY_PID=$!; PIDS+=($TINY_PID)
RUST_LOG=warn "$BOTTLE_BIN" --config $W/bottle/bundle.toml 2> $W/bottle/bundle.log & BOTTLE_PID=$!; PIDS+=($BOTTLE_PID)
if [ -n "${BOTTLE_BASE_BIN:-}" ]; then
  sed "s/:$BOTTLE_PORT\"/:$BASE_PORT\"/" $W/bottle/bundle.toml > $W/bottle/base.toml
  RUST_LOG=warn "$BOTTLE_BASE_BIN" --config $W/bottle/base.toml 2> $W/bottle/base.log & BASE_PID=$!; PIDS+=($BASE_PID)
  wait_port $BASE_PORT
fi
wait_port $HTTP_PORT; wait_port $HTTPS_PORT; wait_port $SQUID_PORT; wait_port $TINY_PORT; wait_port $BOTTLE_PORT
sleep 2

host_lines
log "versions: $(squid -v | head -1) | $(tinyproxy -v) | $(nginx -v 2>&1) | $("$BOTTLE_BIN" --version) | $(curl --version | head -1 | cut -d' ' -f1-2,5) | $(ab -V | head -1) | $(python3 --version)"
log "params: REPS=$REPS N=$N TLS_CONNS=$TLS_CONNS TUNNELS=$TUNNELS"
log "RSS idle:  squid: $(rss $SQUID_PID) | tinyproxy: $(rss $TINY_PID) | bottle: $(rss $BOTTLE_PID)"

PX_direct=""; PX_squid=127.0.0.1:$SQUID_PORT; PX_tinyproxy=127.0.0.1:$TINY_PORT; PX_bottle=127.0.0.1:$BOTTLE_PORT
ARMS="direct squid tinyproxy bottle"
PX_base=127.0.0.1:$BASE_PORT; [ -n "${BOTTLE_BASE_BIN:-}" ] && ARMS+=" base"
CA=$W/origin/cert.pem

# ---------------------------------------------------------------- sanity
for a in $ARMS; do
  px=PX_$a
  if [ -z "${!px}" ]; then o=(--noproxy '*'); else o=(--noproxy '' -x "http://${!px}"); fi
  log "sanity $a: http $(curl -sS "${o[@]}" -o /dev/null -w '%{http_code}/%{size_download}' http://$ORIGIN:$HTTP_PORT/small.bin)" \
      " https $(curl -sS "${o[@]}" --cacert $CA -o /dev/null -w '%{http_code}/%{size_download}' https://$ORIGIN:$HTTPS_PORT/small.bin)"
done

# ---------------------------------------------------------------- denied responses
log ""; log "=== denied responses (raw bytes a client receives)"
for a in squid tinyproxy bottle; do
  px=PX_$a; port=${!px##*:}
  log "--- $a: GET http://blocked.test:$HTTP_PORT/ (host not on allowlist)"
  python3 $W/raw_req.py $port "GET http://blocked.test:$HTTP_PORT/ HTTP/1.1\r\nHost: blocked.test:$HTTP_PORT\r\nConnection: close\r\n\r\n" | tee -a "$RES"
  log "--- $a: CONNECT blocked.test:443 (host not on allowlist)"
  python3 $W/raw_req.py $port "CONNECT blocked.test:443 HTTP/1.1\r\nHost: blocked.test:443\r\n\r\n" | tee -a "$RES"
done

# ---------------------------------------------------------------- ab
run_ab() { # arm conc rep
  local a=$1 c=$2 rep=$3 px=PX_$1 xo=()
  [ -n "${!px}" ] && xo=(-X "${!px}")
  bounded ab -q -k -n $N -c $c "${xo[@]}" -e $W/tmp/ab.csv http://$ORIGIN:$HTTP_PORT/small.bin > $W/tmp/ab.txt 2>&1
  local rps ka failed non2xx p50 p99
  rps=$(awk '/^Requests per second/{print $4}' $W/tmp/ab.txt)
  ka=$(awk '/^Keep-Alive requests/{print $3}' $W/tmp/ab.txt)
  failed=$(awk '/^Failed requests/{print $3}' $W/tmp/ab.txt)
  non2xx=$(awk '/^Non-2xx responses/{print $3}' $W/tmp/ab.txt); non2xx=${non2xx:-0}
  p50=$(awk -F, '$1==50{print $2}' $W/tmp/ab.csv); p99=$(awk -F, '$1==99{print $2}' $W/tmp/ab.csv)
  log "RAW ab_c$c $a rep=$rep rps=$rps p50_ms=$p50 p99_ms=$p99 keepalive_reqs=${ka:-0} failed=$failed non2xx=$non2xx"
  [ -z "$rps" ] && tail -5 $W/tmp/ab.txt | tee -a "$RES"
}
if want ab; then
log ""; log "=== 1. ab -k -n $N small.bin (1 KiB) plain HTTP"
for a in $ARMS; do px=PX_$a; xo=(); [ -n "${!px}" ] && xo=(-X "${!px}")   # warm-up, not recorded
  bounded ab -q -k -n 2000 -c 8 "${xo[@]}" http://$ORIGIN:$HTTP_PORT/small.bin >/dev/null 2>&1; done
for c in 1 32; do
  for rep in $(seq $REPS); do for a in $ARMS; do run_ab $a $c $rep; sleep 1; done; done
done
fi

# ---------------------------------------------------------------- TLS via CONNECT
if want tls; then
log ""; log "=== 2. $TLS_CONNS sequential new HTTPS connections, each GET small.bin (python http.client, set_tunnel for proxies)"
for rep in $(seq $REPS); do for a in $ARMS; do
  px=PX_$a; p=${!px:-none}
  log "RAW tls$TLS_CONNS $a rep=$rep $(bounded python3 $W/tls_bench.py $p $ORIGIN $HTTPS_PORT $TLS_CONNS $CA 2>&1 | tail -1)"
done; done
fi

# ---------------------------------------------------------------- bulk
if want bulk; then
log ""; log "=== 3. bulk 256 MiB download, curl -o /dev/null; MBps = 10^6 bytes/s"
bulk() { # test arm rep url
  local px=PX_$2 o=()
  if [ -z "${!px}" ]; then o=(--noproxy '*'); else o=(--noproxy '' -x "http://${!px}"); fi
  # CPU the proxy process spends on the transfer: far steadier than MB/s on a shared machine.
  local pid=${PID_of[$2]:-} c0=0 c1=0
  [ -n "$pid" ] && c0=$(cpu_ms $pid)
  local out; out=$(bounded curl -sS "${o[@]}" --cacert $CA -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$4")
  [ -n "$pid" ] && c1=$(cpu_ms $pid)
  set -- "$1" "$2" "$3" $out
  local cpu=""; [ -n "$pid" ] && cpu=" proxy_cpu_ms=$((c1 - c0))"
  log "RAW $1 $2 rep=$3 MBps=$(awk -v s=${6:-0} 'BEGIN{printf "%.1f", s/1e6}') http_code=${4:-0} bytes=${5:-0}$cpu"
}
# user+system CPU of a process and its threads, in ms
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{printf "%d", ($14 + $15) * 1000 / hz}' /proc/$1/stat; }
declare -A PID_of=([squid]=$SQUID_PID [tinyproxy]=$TINY_PID [bottle]=$BOTTLE_PID [base]=${BASE_PID:-})
for rep in $(seq $REPS); do for a in $ARMS; do bulk bulk_https $a $rep https://$ORIGIN:$HTTPS_PORT/large.bin; done; done
for rep in $(seq $REPS); do for a in $ARMS; do bulk bulk_http $a $rep http://$ORIGIN:$HTTP_PORT/large.bin; done; done
fi

# ---------------------------------------------------------------- RSS
sleep 2
log ""; log "RSS after load: squid: $(rss $SQUID_PID) | tinyproxy: $(rss $TINY_PID) | bottle: $(rss $BOTTLE_PID)"
if want tunnels; then
log ""; log "=== 4. bottle RSS holding $TUNNELS open TLS tunnels"
rm -f $W/tmp/tunnels.ready
mkfifo $W/tmp/hold.fifo 2>/dev/null || true
python3 $W/hold_tunnels.py $BOTTLE_PORT $ORIGIN $HTTPS_PORT $TUNNELS $CA $W/tmp/tunnels.ready < $W/tmp/hold.fifo & HOLD_PID=$!; PIDS+=($HOLD_PID)
exec 7> $W/tmp/hold.fifo
for _ in $(seq $STEP_TIMEOUT); do [ -s $W/tmp/tunnels.ready ] && break; kill -0 $HOLD_PID 2>/dev/null || break; sleep 1; done
log "RAW tunnels$TUNNELS bottle rep=1 $(cat $W/tmp/tunnels.ready 2>/dev/null || echo ok=0) rss_kB=$(awk '/^VmRSS/{print $2}' /proc/$BOTTLE_PID/status)"
log "bottle with tunnels open: $(rss $BOTTLE_PID)"
exec 7>&-
wait $HOLD_PID 2>/dev/null
log "tinyproxy log warnings: $(wc -l < $W/tinyproxy/tinyproxy.log 2>/dev/null) lines; squid cache.log WARNING/ERROR lines: $(grep -ciE 'warning|error' $W/squid/cache.log); bottle log lines: $(wc -l < $W/bottle/bundle.log)"
fi

log ""; log "=== SUMMARY (min/median/max over $REPS reps)"
python3 $W/summarize.py "$RES" | tee -a "$RES"
