// Command loadbench compares Torii's data plane with nginx and HAProxy (and
// with no proxy at all) under the same load, on one machine, in one run.
//
// Run it from the repository root:
//
//	go run ./bench/loadbench                        # full run (~21 min)
//	go run ./bench/loadbench -duration 2s -rounds 1 # smoke run (~2 min)
//	make bench BENCHFLAGS='-scenarios ka64-100b,h2-c64m4-100b -proxies nginx,torii'
//
// # What runs
//
// One Go HTTP backend (this program re-executed as "loadbench backend":
// net/http, keep-alive, a fixed body of 100 B or 10 KiB chosen by the path
// /100 or /10240, plain HTTP and TLS listeners) runs for the whole
// benchmark. In front of it, one at a time and each started fresh for every
// measurement:
//
//   - direct: no proxy, the load goes to the backend itself (its TLS
//     listener for TLS and HTTP/2 scenarios: Go's own h2 server).
//   - nginx: generated nginx.conf, run in the foreground (nginx -p DIR -c
//     CONF -e LOG -g 'daemon off;'), one worker, access_log off, upstream
//     keepalive 256 with keepalive_requests raised so that neither client
//     nor upstream connections are recycled every 1000 requests.
//   - haproxy: generated haproxy.cfg, haproxy -f CFG -db, nbthread 1,
//     http-reuse always, no log directive (so no per-request logging).
//   - torii: bin/torii (built once with go build -o bin/torii ./cmd/torii)
//     running "serve --manifests DIR" on a generated IngressClass, Ingress
//     (no host, path / Prefix), selector-less Service, EndpointSlice (the
//     backend) and a kubernetes.io/tls Secret used as
//     --default-ssl-certificate; logging at its defaults (info, text).
//
// nginx and HAProxy set the same forwarded headers an ingress controller
// (and Torii) sets: Host kept, X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
// X-Forwarded-Host, X-Forwarded-Port, X-Request-ID, and all proxies speak
// HTTP/1.1 with keep-alive to the backend, also for HTTP/2 clients. All
// three proxies and the direct backend serve the same self-signed ECDSA
// P-256 certificate, generated at start. Readiness is checked before every
// measurement: plain and TLS requests must return 200 and the TLS listener
// must present that certificate.
//
// # Pinning
//
// The machine is assumed to have (at least) two CPUs. The backend and the
// proxy (every process of it: nginx master and worker, HAProxy, Torii) run
// under taskset -c 1; the load generator (wrk, h2load or this program's own
// generator) under taskset -c 0. The Go processes see one CPU, so
// GOMAXPROCS is 1 for Torii, the backend and the generator. Pinning does not
// isolate the CPUs from other work on the machine: every run records how
// busy CPU 0 and CPU 1 were with other processes ("other load"), from
// /proc/stat, so that noisy runs can be recognised.
//
// # Interleaving
//
// For each round, for each scenario, every proxy is measured once; the
// order of the proxies rotates by one every round, so that slow drifts of
// the machine hit every proxy in turn. Each measurement is preceded by an
// unmeasured warm-up of one second with the same load. Results are reported
// as the median across rounds with the spread (min–max) of requests/s.
//
// # Scenarios
//
//	ka64-100b, ka64-10k, ka256-100b, ka256-10k
//	    wrk, HTTP/1.1 keep-alive, 64 or 256 connections, 100 B or 10 KiB.
//	close-100b
//	    wrk -H 'Connection: close': a new TCP connection per request, 64
//	    concurrent.
//	tls-ka64-100b
//	    wrk over https, keep-alive, 64 connections.
//	tls-new-100b
//	    a new TLS connection per request, 64 concurrent, full handshake every
//	    time (TLS 1.3, X25519 key exchange, ECDSA P-256 signature), run by
//	    this program's generator. wrk is not used here because it keeps the
//	    session of a connection (SSL_clear) and resumes it on the next one,
//	    which Torii (Go's TLS 1.3 session tickets, not configurable) would
//	    accept while a proxy with resumption disabled would not: the results
//	    would compare different handshakes. The generator keeps no session
//	    cache, so every proxy performs a full handshake per request. It
//	    offers only X25519, as wrk and OpenSSL 3.0 clients do, so that Torii
//	    does not negotiate the costlier X25519MLKEM768 that only Go peers
//	    offer here.
//	h2-c64m4-100b
//	    h2load over TLS (ALPN h2), 64 connections, 4 concurrent streams each;
//	    latency percentiles come from h2load's --log-file.
//	rate5k-100b
//	    fixed rate (-rate, default 5000 req/s) over 64 keep-alive
//	    connections, for p50/p99/p99.9. wrk2 is not packaged in Debian and
//	    h2load --rate paces connections, not requests, so this program's
//	    generator does it: an open-loop scheduler where request i is due at
//	    start + i/rate and its latency is measured from that due time, not
//	    from when it was actually sent, so a stalled proxy is charged for
//	    the requests queued behind the stall (no coordinated omission).
//	    Go timer wake-up delay on a loaded CPU is included in every proxy's
//	    latency alike; the direct row shows that floor.
//
// # Figures
//
// Per run: requests/s (completed responses / measured wall time, as
// reported by the tool), latency p50/p90/p99/p99.9 (wrk's histogram through a
// Lua done() hook, h2load's per-request log, or the generator's recorded
// samples), errors (connect/read/write/timeouts, h2load errored+timeout) and
// non-2xx responses (wrk counts status >= 400; h2load and the generator count
// everything outside 2xx), proxy CPU µs per request (utime+stime from
// /proc/PID/stat, summed over every process in the proxy's process group,
// delta over the measured run, divided by the requests), backend CPU µs per
// request likewise, peak RSS (VmHWM from /proc/PID/status summed over the
// proxy's processes, read at the end of the run; each proxy starts fresh
// for every run), the generator's CPU use (rusage of the tool, near 100%
// means the generator, not the proxy, was the limit), the bytes the proxy
// wrote to its stderr/error log during the run (Torii logs nothing per
// request at its default level), and ratios to nginx of the medians.
//
// Output: progress on stderr, a Markdown table on stdout, one JSON line per
// run and per summary row in -json (default OUT/results.jsonl), and raw
// tool output, generated configs and proxy logs under -out (default
// bench/out/<UTC time>, ignored by git).
//
// # Tools
//
// wrk, nginx, haproxy and h2load come from Debian packages (wrk,
// nginx-light or nginx, haproxy, nghttp2-client). When one is missing and
// the program runs as root it runs apt-get update and apt-get install -y
// --no-install-recommends; otherwise it stops and says what to install. No
// system service is used: every process is started by this program in its
// own process group and killed at the end, also on error or interrupt.
package main
