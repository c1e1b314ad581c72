"""OME-Zarr to S3 against plain parallel PUTs of the same objects (issue #20).

Starts its own S3-compatible server (moto, in this process, 127.0.0.1, a free
port) unless ``--endpoint`` names one (then the AWS environment's
credentials are used and ``--bucket`` must exist). For each engine: the
limit first, then the stream, alternating for ``--rounds`` rounds, median
round reported:

- limit: the same objects the stream writes (one uncompressed chunk per
  frame, ``<prefix>/0/c/<t>/0/0``, plus nothing else), PUT by a pool of
  ``--threads`` threads through botocore, as fast as the server takes them;
- stream: ``create_stream`` + ``append`` of every frame + ``close``
  (metadata objects included), each ``append`` timed (``perf_counter_ns``):
  the median and slowest append show whether a frame ever waits on the
  network (it does only when the writer's bounded buffer is full).

Usage: ``python benchmarks/s3.py [--frames 100] [--size 2048] [--rounds 3]``
(needs ``pip install 'ome-writers[s3]' 'moto[server]'``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import statistics
import tempfile
import time
import uuid

import numpy as np


def _server() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _limit(client, bucket: str, frames: list[np.ndarray], n: int, threads: int):
    prefix = f"limit-{uuid.uuid4().hex[:8]}"
    payloads = [f.astype("<u2").tobytes() for f in frames]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [
            pool.submit(
                client.put_object,
                Bucket=bucket,
                Key=f"{prefix}/0/c/{i}/0/0",
                Body=payloads[i % len(payloads)],
            )
            for i in range(n)
        ]
        for future in futures:
            future.result()
    return time.perf_counter() - t0


def _stream(engine: str, bucket: str, frames: list[np.ndarray], n: int, size: int):
    from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

    settings = AcquisitionSettings(
        root_path=f"s3://{bucket}/stream-{uuid.uuid4().hex[:8]}.ome.zarr",
        format=engine,
        dimensions=dims_from_standard_axes({"t": n, "y": size, "x": size}),
        dtype="uint16",
    )
    latencies = np.empty(n, np.int64)
    t0 = time.perf_counter()
    with create_stream(settings) as stream:
        for i in range(n):
            a = time.perf_counter_ns()
            stream.append(frames[i % len(frames)])
            latencies[i] = time.perf_counter_ns() - a
    return time.perf_counter() - t0, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--bucket", default="ome-writers-bench")
    parser.add_argument(
        "--engines", default="tensorstore,zarr-python,acquire-zarr", type=str
    )
    args = parser.parse_args()
    server = None
    endpoint = args.endpoint
    if endpoint is None:
        server, endpoint = _server()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("OME_WRITERS_STATE_DIR", tempfile.mkdtemp())
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=endpoint, config=Config(max_pool_connections=32)
    )
    if server is not None:
        client.create_bucket(Bucket=args.bucket)
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 4096, (args.size, args.size), dtype=np.uint16) for _ in range(8)
    ]
    mb = args.frames * args.size * args.size * 2 / 1e6
    results = []
    for engine in args.engines.split(","):
        rounds = []
        for _ in range(args.rounds):
            limit = _limit(client, args.bucket, frames, args.frames, args.threads)
            total, lat = _stream(engine, args.bucket, frames, args.frames, args.size)
            rounds.append((limit / total, limit, total, lat))
        ratio, limit, total, lat = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]
        row = {
            "engine": engine,
            "MB": round(mb, 1),
            "limit_MBps": round(mb / limit, 1),
            "stream_MBps": round(mb / total, 1),
            "ratio": round(ratio, 2),
            "ratios": [round(r[0], 2) for r in rounds],
            "append_median_ms": round(statistics.median(lat) / 1e6, 3),
            "append_max_ms": round(int(lat.max()) / 1e6, 1),
            "appends_over_10ms": int((lat > 10_000_000).sum()),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if server is not None:
        server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
