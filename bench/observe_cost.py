"""What observation costs: ssegate's CPU seconds to pass the same fast SSE body observed
(`text/event-stream`) and not observed (`application/json`, which no route observes).
Same route, same bytes, same chunking; CPU is utime+stime of the ssegate process.

Usage: python3 bench/observe_cost.py PROXY_PORT UPSTREAM_PORT SSEGATE_PID EVENTS ROUNDS PATH [PER_WRITE]
with ssegate routing PATH to 127.0.0.1:UPSTREAM_PORT (see bench/observe_cost.yaml).
PER_WRITE (default 16) is how many events the upstream writes at a time: 16 floods ssegate
with batches, 1 is how model servers send tokens (each its own write).
"""
import asyncio, sys, os, time, json
PROXY, UP, PID, EVENTS, ROUNDS, PATH = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
PER_WRITE = int(sys.argv[7]) if len(sys.argv) > 7 else 16
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
words = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog. ", "Ünïcödé ", "\\n"]
events = []
for i in range(EVENTS):
    ev = {"id":"chatcmpl-9x8y7z","object":"chat.completion.chunk","created":1732000000,"model":"gpt-4o-mini",
          "system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":words[i % len(words)]},"logprobs":None,"finish_reason":None}]}
    e = ("data: " + json.dumps(ev, ensure_ascii=False) + "\n\n").encode()
    events.append(b"%x\r\n%s\r\n" % (len(e), e))
body = b"".join(events) + b"0\r\n\r\n"
async def upstream(reader, writer):
    while True:
        try: head = await reader.readuntil(b"\r\n\r\n")
        except Exception: return
        ct = b"text/event-stream" if b"observe=1" in head else b"application/json"
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + ct + b"\r\ntransfer-encoding: chunked\r\n\r\n")
        for k in range(0, len(events), PER_WRITE):
            writer.write(b"".join(events[k:k+PER_WRITE])); await writer.drain()
        writer.write(b"0\r\n\r\n"); await writer.drain()
async def fetch(observe):
    r, w = await asyncio.open_connection("127.0.0.1", PROXY)
    w.write(f"GET {PATH}?observe={observe} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode()); await w.drain()
    n = 0
    while True:
        b = await r.read(65536)
        if not b: break
        n += len(b)
    w.close(); return n
async def main():
    await asyncio.start_server(upstream, "127.0.0.1", UP)
    await asyncio.sleep(0.3)
    await fetch(1); await fetch(0)  # warm up
    res = {0: [], 1: []}
    for r in range(ROUNDS):
        for obs in (1, 0):
            c0 = cpu(PID); t0 = time.time(); n = await fetch(obs); res[obs].append(cpu(PID) - c0)
    mb = len(body) / 1e6
    a = sorted(res[1])[ROUNDS // 2]; b = sorted(res[0])[ROUNDS // 2]
    print(f"path={PATH} per_write={PER_WRITE} events={EVENTS} body={mb:.1f}MB rounds={ROUNDS} observed={a:.3f}s unobserved={b:.3f}s "
          f"observation={(a-b)/a*100:.1f}% of ssegate CPU  (all observed: {[round(x,3) for x in res[1]]}, unobserved: {[round(x,3) for x in res[0]]})")
    os._exit(0)
asyncio.run(main())
