"""The ``s3-*`` bench scenarios: OME-Zarr to S3 against plain parallel PUTs.

The limit is what the server takes, not what a disk takes: the same objects
the stream writes (one uncompressed chunk per frame, ``<prefix>/0/c/<t>/0/0``),
PUT by ``PUT_THREADS`` threads through botocore as fast as they go. Both run
in the same process against the same server, alternating, so the ratio holds
on a shared machine. The server is moto's (``moto[server]``), started as a
child process on 127.0.0.1 and a free port, unless ``OME_WRITERS_BENCH_S3``
names an endpoint (credentials then come from the AWS environment, and the
bucket ``OME_WRITERS_BENCH_S3_BUCKET``, default ``ome-writers-bench``, must
exist). A process of its own, as every real server is: moto is Python, and in
the client's process (``ThreadedMotoServer``) it shared one interpreter lock
with the client, so a client that runs Python per upload (zarr-python) was
measured against its own server's work. Each side's objects are deleted
before the next runs: moto keeps them in memory.

Besides the speed, the stream reports how long ``append`` blocked: appends
over ``BLOCKED_NS`` (a frame's copy takes about a millisecond; more is a wait
for the writer's bounded buffer, i.e. for the network).
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from typing import Any

import numpy as np

#: threads of the plain-PUT limit (botocore connections as many)
PUT_THREADS = 8
#: an append slower than this waited for the network (10 ms)
BLOCKED_NS = 10_000_000
#: environment variables naming an S3 endpoint (and bucket) to use instead
ENDPOINT_ENV = "OME_WRITERS_BENCH_S3"
BUCKET_ENV = "OME_WRITERS_BENCH_S3_BUCKET"
#: how long the local server may take to answer (it imports moto: ~2 s)
SERVER_START_S = 60


class BenchS3:
    """A bucket on a local moto server (or ``$OME_WRITERS_BENCH_S3``)."""

    def __init__(self) -> None:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        endpoint = os.environ.get(ENDPOINT_ENV)
        self._server: subprocess.Popen[bytes] | None = None
        if not endpoint:
            self._server, endpoint = _start_moto()
            os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        os.environ.setdefault("AWS_REGION", "us-east-1")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ.setdefault("OME_WRITERS_STATE_DIR", tempfile.mkdtemp())
        self.endpoint = endpoint
        self.bucket = os.environ.get(BUCKET_ENV, "ome-writers-bench")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(max_pool_connections=PUT_THREADS * 2),
        )
        if self._server is not None:
            self.client.create_bucket(Bucket=self.bucket)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix/``."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{prefix}/"
        )
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def put_frames(self, frames: list[np.ndarray], n: int) -> dict[str, Any]:
        """The limit: ``n`` frames as chunk objects, PUT in parallel."""
        prefix = f"limit-{uuid.uuid4().hex[:8]}"
        payloads = [f.astype("<u2").tobytes() for f in frames]
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(PUT_THREADS) as pool:
            futures = [
                pool.submit(
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=f"{prefix}/0/c/{i}/0/0",
                    Body=payloads[i % len(payloads)],
                )
                for i in range(n)
            ]
            for future in futures:
                future.result()
        total = time.perf_counter() - t0
        self.delete_prefix(prefix)
        return {"total_s": total}

    def close(self) -> None:
        """Stop the server this process started."""
        if self._server is not None:
            self._server.terminate()
            self._server.wait()


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """A moto server in a child process on a free port, and its endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1):
                return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                raise RuntimeError(
                    f"the moto server on port {port} did not start within "
                    f"{SERVER_START_S} s (exit status {server.poll()}); install "
                    "moto[server], or name an endpoint in $OME_WRITERS_BENCH_S3"
                ) from None
            time.sleep(0.1)


def stream_to_s3(
    s3: BenchS3,
    engine: str,
    frames: list[np.ndarray],
    n: int,
    *,
    frames_per_s: float | None = None,
) -> dict[str, Any]:
    """``create_stream`` + ``append`` of ``n`` frames + ``close``, on S3.

    ``frames_per_s``: a camera's pace (each frame appended at its time, as a
    camera delivers it) instead of as fast as ``append`` returns.
    """
    from ome_writers import AcquisitionSettings, create_stream, dims_from_standard_axes

    prefix = f"stream-{uuid.uuid4().hex[:8]}.ome.zarr"
    ny, nx = frames[0].shape
    settings = AcquisitionSettings(
        root_path=f"s3://{s3.bucket}/{prefix}",
        format=engine,
        dimensions=dims_from_standard_axes({"t": n, "y": ny, "x": nx}),
        dtype="uint16",
    )
    ns = np.empty(n, np.int64)
    clock = time.perf_counter_ns
    cpu0 = os.times()
    t0 = time.perf_counter()
    stream = create_stream(settings)
    t1 = time.perf_counter()
    period_ns = int(1e9 / frames_per_s) if frames_per_s else 0
    start = clock()
    for i in range(n):
        if period_ns:
            while clock() < start + i * period_ns:
                time.sleep(max(0.0, (start + i * period_ns - clock()) / 1e9))
        a = clock()
        stream.append(frames[i % len(frames)])
        ns[i] = clock() - a
    t2 = time.perf_counter()
    stream.close()
    t3 = time.perf_counter()
    cpu1 = os.times()
    s3.delete_prefix(prefix)
    blocked = ns[ns > BLOCKED_NS]
    return {
        "create_s": t1 - t0,
        "append_s": t2 - t1,
        "close_s": t3 - t2,
        "total_s": t3 - t0,
        "cores_used": (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / (t3 - t0),
        "output_bytes": 0,
        "median_us": float(np.median(ns) / 1e3),
        "p99_us": float(np.percentile(ns, 99) / 1e3),
        "max_us": float(ns.max() / 1e3),
        "mean_us": float(ns.mean() / 1e3),
        "appends_blocked": int(blocked.size),
        "append_blocked_s": float(blocked.sum() / 1e9),
    }


def acquire_zarr_alone(s3: BenchS3, frames: list[np.ndarray], n: int) -> dict[str, Any]:
    """The same array written through acquire-zarr's own API, not this package.

    What the ``s3-acquire-zarr`` stream can reach at most: acquire-zarr
    uploads with its own S3 client (a pool of as many connections as the
    machine has cores; objects over 5 MiB as multipart uploads of 5 MiB parts).
    """
    import acquire_zarr as aqz

    prefix = f"alone-{uuid.uuid4().hex[:8]}.zarr"
    ny, nx = frames[0].shape
    dims = [
        aqz.Dimension(
            name=name,
            kind=kind,
            array_size_px=size,
            chunk_size_px=chunk,
            shard_size_chunks=1,
        )
        for name, kind, size, chunk in (
            ("t", aqz.DimensionType.TIME, n, 1),
            ("y", aqz.DimensionType.SPACE, ny, ny),
            ("x", aqz.DimensionType.SPACE, nx, nx),
        )
    ]
    settings = aqz.StreamSettings(
        arrays=[aqz.ArraySettings(output_key="0", dimensions=dims, data_type="uint16")],
        store_path=prefix,
        s3=aqz.S3Settings(
            endpoint=s3.endpoint,
            bucket_name=s3.bucket,
            region=os.environ["AWS_REGION"],
        ),
    )
    t0 = time.perf_counter()
    stream = aqz.ZarrStream(settings)
    for i in range(n):
        stream.append(frames[i % len(frames)], key="0")
    stream.close()
    total = time.perf_counter() - t0
    s3.delete_prefix(prefix)
    return {"total_s": total}
