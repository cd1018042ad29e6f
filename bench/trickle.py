"""Request bodies trickled at the service: does `/health` keep answering?

    .venv/bin/python bench/trickle.py [--clients 250] [--seconds 30] [--byte-every 1.0]

Starts the embedded default in-process, as bench/chaos.py does (local Ray on 2 CPUs, a free port on
127.0.0.1), then opens ``--clients`` connections that each POST /tasks declaring a 2,000-byte body
and send it a byte every ``--byte-every`` seconds, again a second after one is answered: the
slow-uplink, or hostile, client. Each holds one of the ingress replica's 200 requests in flight
while its body arrives. For
``--seconds`` the bench asks ``GET /health`` every 0.2 s, each with a 20 s limit.

Printed: `/health`'s latency (p50, p99, max) and how many asks timed out; what the trickling
clients were answered (429 at once past ``max_arriving_bodies``, 408 at the body floor, or still
sending when the bench ended).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.chaos import start_service, stop_service, wait_healthy  # noqa: E402

DECLARED_BYTES = 2000
PAUSE_AFTER_ANSWER_S = 1.0  # a client answered at once does not hammer the proxy (a 2-core machine's)
HEALTH_LIMIT_S = 20.0


async def trickle(host: str, port: int, byte_every_s: float, until: float) -> Counter:
    """One client sending bodies a byte at a time, again a second after one is answered; the statuses
    it was answered, and "sending" for the body still arriving at the end."""
    answers = Counter()
    while time.monotonic() < until:
        answers[await _one_body(host, port, byte_every_s, until)] += 1
        await asyncio.sleep(PAUSE_AFTER_ANSWER_S)
    return answers


async def _one_body(host: str, port: int, byte_every_s: float, until: float) -> str:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        await asyncio.sleep(byte_every_s)
        return "refused connection"
    writer.write(f"POST /tasks HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {DECLARED_BYTES}\r\n\r\n{{".encode())
    answer = asyncio.ensure_future(reader.readline())
    try:
        while time.monotonic() < until:
            done, _ = await asyncio.wait({answer}, timeout=byte_every_s)
            if done:
                status = answer.result().split(b" ")
                return status[1].decode() if len(status) > 1 else "closed"
            writer.write(b" ")
            await writer.drain()
        return "sending"
    except OSError:
        return "closed"
    finally:
        answer.cancel()
        writer.close()


async def health_latencies(server: str, until: float) -> list:
    """Seconds each GET /health took (None: no answer within HEALTH_LIMIT_S)."""
    import aiohttp

    taken = []
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                async with session.get(f"{server}/health", timeout=aiohttp.ClientTimeout(total=HEALTH_LIMIT_S)) as r:
                    await r.read()
                    taken.append(time.monotonic() - start if r.status == 200 else None)
            except (asyncio.TimeoutError, aiohttp.ClientError):
                taken.append(None)
            await asyncio.sleep(0.2)
    return taken


async def run(server: str, clients: int, seconds: float, byte_every_s: float):
    address = urlsplit(server)
    until = time.monotonic() + seconds
    trickles = [asyncio.ensure_future(trickle(address.hostname, address.port, byte_every_s, until))
                for _ in range(clients)]
    await asyncio.sleep(1.0)  # the clients connected and sending before the first ask
    taken = await health_latencies(server, until)
    return taken, sum(await asyncio.gather(*trickles), Counter())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=250)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--byte-every", type=float, default=1.0, help="seconds between a client's bytes")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        server = start_service(Path(root), seed=0)
        try:
            wait_healthy(server)
            taken, answers = asyncio.run(run(server, args.clients, args.seconds, args.byte_every))
        finally:
            stop_service()
    answered = sorted(t for t in taken if t is not None)
    print(f"GET /health: {len(taken)} asks, {len(taken) - len(answered)} without an answer in {HEALTH_LIMIT_S:g} s")
    if answered:
        p99 = answered[min(len(answered) - 1, round(0.99 * (len(answered) - 1)))]
        print(f"  latency p50 {statistics.median(answered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
              f"max {answered[-1] * 1000:.0f} ms")
    print(f"bodies the {args.clients} trickling clients sent, by answer: " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
