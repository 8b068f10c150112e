"""Benchmark: a webhook channel against a local receiver that answers after 20 ms (a provider's round trip), issue 16.

    python bench/dispatch.py [--users 12000] [--serial-users 1000] [--runs 3] [--latency 0.02] [--rate 1000/s]
                             [--concurrency N]

One campaign step (bench/run.py's: push to every member who consented) runs without Prefect (`engine.run_through`:
snapshot, decisions, dispatch, ledger writes on a fresh DuckDB ledger each run) three ways:
    serial      concurrency = 1: one message at a time, waiting for each answer, as the adapter did before
                (the peer; on --serial-users, since it is slow)
    concurrent  the webhook's default concurrency (64 in flight), no rate
    limited     the same with `rate = "1000/s"` in the channel's table
The receiver is a separate process (asyncio, HTTP/1.1 keep-alive) so it does not share the sender's interpreter; it
records each request's arrival. Reported per way: messages sent, the whole run's messages/s (snapshot and decisions
included), the send rate the receiver saw (messages / first to last arrival), and the most arrivals in any sliding
one-second window. Medians of --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def serve(latency: float) -> None:
    """The receiver: answers every POST after `latency` seconds with 200 and an id; GET /stats returns the arrival
    times since the last /stats (time.monotonic) and forgets them. An asyncio Protocol that parses requests from its
    buffer and answers each with a timer (no coroutine per request): the earlier StreamReader receiver cost the
    second core more CPU per request than the sender's side did (bench/RESULTS.md, issue 16)."""
    arrivals: list[float] = []
    ok = b'{"id": "ok"}'
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(ok)).encode()
              + b"\r\n\r\n" + ok)

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].decode("latin-1")
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length:]
                if head.startswith("GET /stats"):
                    body = json.dumps(arrivals).encode()
                    arrivals.clear()
                    self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                         + str(len(body)).encode() + b"\r\n\r\n" + body)
                else:
                    arrivals.append(time.monotonic())
                    asyncio.get_running_loop().call_later(latency, self._answer)

        def _answer(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(answer)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc), to tell how busy the receiver was."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def most_in_a_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def one_run(plan, data_url: str, ledger_url: str, url: str, concurrency: int | None, rate: str | None) -> dict:
    import httpx

    from runtime import engine
    from runtime.context import Run
    from runtime.ledger import open_ledger

    channel = {"kind": "webhook", "settings": {"url": url + "/push", "timeout": 10}, "rate": rate,
               "concurrency": concurrency}
    lg = open_ledger(ledger_url)
    run = Run(plan, lg, data_url, plan.audience_as_of, channel_config={"push": channel})
    t0 = time.perf_counter()
    summary = engine.run_through(run, 2000)
    elapsed = time.perf_counter() - t0
    run.close()
    lg.close()
    arrivals = json.loads(httpx.get(url + "/stats").text)
    sent = summary["statuses"]["sent"]
    assert sent == len(arrivals), (sent, len(arrivals))
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else float("nan")
    dispatch_s = run.counters.timings["dispatch"]
    return {"sent": sent, "run_s": elapsed, "run_rate": sent / elapsed, "dispatch_s": dispatch_s,
            "dispatch_rate": sent / dispatch_s, "send_rate": (sent - 1) / span, "max_1s": most_in_a_window(arrivals)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=12_000)
    ap.add_argument("--serial-users", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--rate", default="1000/s")
    ap.add_argument("--concurrency", type=int, default=None, help="in flight for 'concurrent' and 'limited' "
                    "(default: the webhook's own, 64)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.latency)
        return
    from run import plan_of, workspace  # bench/run.py

    from runtime.demo_data import make_shop

    receiver = subprocess.Popen([sys.executable, __file__, "--serve", "--latency", str(args.latency)],
                                stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results: dict[str, list[dict]] = {"serial": [], "concurrent": [], "limited": []}
            shops = {}
            for name, users in (("big", args.users), ("small", args.serial_users)):
                d = Path(tmp) / name
                d.mkdir()
                root = workspace(d)
                make_shop(f"duckdb:///{root / 'shop.duckdb'}", users, seed=3)
                shops[name] = (plan_of(root, "duckdb"), f"duckdb:///{root / 'shop.duckdb'}")
            for i in range(args.runs):
                for way, shop, concurrency, rate in (("serial", "small", 1, None),
                                                     ("concurrent", "big", args.concurrency, None),
                                                     ("limited", "big", args.concurrency, args.rate)):
                    plan, data_url = shops[shop]
                    ledger = Path(tmp) / f"ledger-{way}-{i}.duckdb"
                    cpu0, mine0 = cpu_seconds(receiver.pid), time.process_time()
                    r = one_run(plan, data_url, f"duckdb:///{ledger}", url, concurrency, rate)
                    r["receiver_cpu_s"] = cpu_seconds(receiver.pid) - cpu0
                    r["sender_cpu_s"] = time.process_time() - mine0
                    results[way].append(r)
                    print(f"run {i + 1} {way:10} sent {r['sent']:6} run {r['run_s']:6.2f} s "
                          f"{r['run_rate']:7.0f}/s  dispatch {r['dispatch_s']:6.2f} s {r['dispatch_rate']:7.0f}/s  send rate {r['send_rate']:7.0f}/s  max in 1 s {r['max_1s']}"
                          f"  cpu: sender {r['sender_cpu_s']:.2f} s, receiver {r['receiver_cpu_s']:.2f} s",
                          flush=True)
    finally:
        receiver.terminate()
    print(f"\nmedians of {args.runs} (latency {args.latency * 1000:.0f} ms, rate for 'limited': {args.rate})")
    print("| way | messages | run (s) | run msg/s | send msg/s | most in any 1 s window | CPU s: sender / receiver |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    med = {}
    for way, rs in results.items():
        med[way] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        m = med[way]
        print(f"| {way} | {m['sent']:.0f} | {m['run_s']:.2f} | {m['run_rate']:.0f} | {m['send_rate']:.0f} | "
              f"{max(r['max_1s'] for r in rs)} (max of runs) | {m['sender_cpu_s']:.1f} / {m['receiver_cpu_s']:.1f} |")
    print(f"\nconcurrent / serial send rate: {med['concurrent']['send_rate'] / med['serial']['send_rate']:.1f}x; "
          f"whole run: {med['concurrent']['run_rate'] / med['serial']['run_rate']:.1f}x")


if __name__ == "__main__":
    main()
