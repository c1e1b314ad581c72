"""OME-Zarr straight to S3 (issue #20), against a real local S3 server.

moto's server (``moto[server]``) runs in this process on 127.0.0.1 and a free
port; each test gets a bucket of its own, dummy credentials in the
environment and a local state directory (the journals of remote outputs).
Every output is read back by a reader other than the engine that wrote it:
zarr-python over s3fs, or tensorstore's s3 driver for zarr-python's files.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("obstore")
moto_server = pytest.importorskip("moto.server")

from ome_writers import (  # noqa: E402
    AcquisitionSettings,
    Dimension,
    OmeZarrFormat,
    Plate,
    Position,
    WriteError,
    create_stream,
    dims_from_standard_axes,
)

ENGINES = ["tensorstore", "zarr-python", "acquire-zarr"]


@pytest.fixture(scope="module")
def s3_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield server, f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """A fresh bucket; AWS settings in the environment; a local state dir."""
    import s3fs

    _, endpoint = s3_server
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "OME_WRITERS_STATE_DIR": str(tmp_path / "state"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
    fs.mkdir(bucket)
    return fs, bucket, endpoint


def _zarr_read(url: str, endpoint: str):
    """zarr-python over obstore: no code of the writers' S3 client."""
    import zarr
    from obstore.store import S3Store
    from zarr.storage import ObjectStore

    bucket, _, key = url.removeprefix("s3://").partition("/")
    store = S3Store(
        bucket,
        prefix=key,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        client_options={"allow_http": True},
    )
    return zarr.open_group(ObjectStore(store, read_only=True), mode="r")


def _ts_read(url: str, endpoint: str) -> np.ndarray:
    import tensorstore as ts

    bucket, _, key = url.removeprefix("s3://").partition("/")
    spec = {
        "driver": "zarr3",
        "kvstore": {
            "driver": "s3",
            "bucket": bucket,
            "path": key + "/",
            "endpoint": endpoint,
            "aws_region": "us-east-1",
        },
    }
    return ts.open(spec, open=True, read=True).result().read().result()


def _frames(n: int, shape=(64, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(1, 60000, shape, dtype=np.uint16) for _ in range(n)]


LAYOUTS = [
    pytest.param({"t": 2, "c": 2, "y": 64, "x": 64}, None, id="image"),
    pytest.param(
        {"t": 2, "p": ["A 1", "../x"], "y": 64, "x": 64}, None, id="positions"
    ),
    pytest.param(
        {"p": 2, "t": 2, "y": 64, "x": 64},
        Plate(row_names=["A", "B"], column_names=["1", "2"], name="s3 plate"),
        id="plate",
    ),
]


def _dims(spec, plate):
    dims = dims_from_standard_axes(spec)
    if plate is not None:
        wells = [("A", "1"), ("B", "2")]
        dims[0] = Dimension(
            name="p",
            type="position",
            coords=[
                Position(name=f"fov{i}", plate_row=r, plate_column=c)
                for i, (r, c) in enumerate(wells)
            ],
        )
    return dims


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("spec", "plate"), LAYOUTS)
def test_round_trip(s3, engine, spec, plate):
    fs, bucket, endpoint = s3
    pytest.importorskip({"zarr-python": "zarr"}.get(engine, engine).replace("-", "_"))
    url = f"s3://{bucket}/lab/run"
    settings = AcquisitionSettings(
        root_path=url,
        format=engine,
        dimensions=_dims(spec, plate),
        dtype="uint16",
        plate=plate,
    )
    frames = _frames(settings.num_frames)
    with create_stream(settings) as stream:
        for i, frame in enumerate(frames):
            stream.append(frame, frame_metadata={"delta_t": float(i)})
        live = np.asarray(stream.view())
    view = np.asarray(stream.view())
    expected = np.stack(frames).reshape(view.shape)
    np.testing.assert_array_equal(live, expected)
    np.testing.assert_array_equal(view, expected)
    # independent readers, object by object
    out = settings.output_path
    assert out == f"s3://{bucket}/lab/run.ome.zarr"
    root = json.loads(fs.cat_file(f"{bucket}/lab/run.ome.zarr/zarr.json"))
    own = root["attributes"]["ome_writers"]
    assert own["complete"] is True
    assert own["frames_written"] == len(frames)
    keys = fs.find(f"{bucket}/lab/run.ome.zarr")
    assert all(k.startswith(f"{bucket}/lab/run.ome.zarr/") for k in keys)
    arrays = [stream.arrays[p] for p in range(len(stream.arrays))]
    group = _zarr_read(out, endpoint)
    for p, node in enumerate(_array_paths(root, out, endpoint)):
        if engine == "zarr-python":
            data = _ts_read(f"{out}/{node}", endpoint)
        else:
            data = group[node][:]
        np.testing.assert_array_equal(data, np.asarray(arrays[p]))


def _array_paths(root: dict, url: str, endpoint: str) -> list[str]:
    ome = root["attributes"]["ome"]
    if "multiscales" in ome:
        return ["0"]
    group = _zarr_read(url, endpoint)
    if "plate" in ome:
        paths = []
        for well in ome["plate"]["wells"]:
            images = group[well["path"]].attrs["ome"]["well"]["images"]
            paths += [f"{well['path']}/{i['path']}/0" for i in images]
        return paths
    return [f"{name}/0" for name in group["OME"].attrs["ome"]["series"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_pyramid_round_trip(s3, engine):
    """Every level of a pyramid on S3, read back by another reader."""
    from ome_writers import Pyramid
    from ome_writers._pyramid import reference_level

    _, bucket, endpoint = s3
    pytest.importorskip({"zarr-python": "zarr"}.get(engine, engine).replace("-", "_"))
    url = f"s3://{bucket}/pyramid.ome.zarr"
    settings = AcquisitionSettings(
        root_path=url,
        format=OmeZarrFormat(backend=engine, pyramid=Pyramid(levels=3)),
        dimensions=dims_from_standard_axes({"t": 3, "c": 2, "y": 64, "x": 48}),
        dtype="uint16",
    )
    frames = _frames(6, (64, 48))
    with create_stream(settings) as stream:
        for frame in frames:
            stream.append(frame)
    expected = np.stack(frames).reshape(3, 2, 64, 48)
    group = _zarr_read(url, endpoint)
    paths = [d["path"] for d in group.attrs["ome"]["multiscales"][0]["datasets"]]
    assert paths == ["0", "1", "2"]
    for level, path in enumerate(paths):
        if engine == "zarr-python":  # levels by zarr-python: read by tensorstore
            stored = _ts_read(f"{url}/{path}", endpoint)
        else:
            stored = group[path][:]
        want = reference_level(expected, level, "mean")
        np.testing.assert_array_equal(stored, want)
        np.testing.assert_array_equal(np.asarray(stream.view(level=level)), want)


_CHILD = """
import os, signal, sys
import numpy as np
from ome_writers import AcquisitionSettings, Dimension, OmeZarrFormat, Pyramid
from ome_writers import create_stream

pyramid = Pyramid(levels=3) if sys.argv[3] == "pyramid" else None
settings = AcquisitionSettings(
    root_path=sys.argv[1],
    format=OmeZarrFormat(backend=sys.argv[2], pyramid=pyramid),
    dimensions=[
        Dimension(name="t", count=8, type="time", chunk_size=4),
        Dimension(name="y", count=64, type="space"),
        Dimension(name="x", count=64, type="space"),
    ],
    dtype="uint16",
)
stream = create_stream(settings)
for i in range(6):  # t 4-5 stay in the chunk buffer: only the journal has them
    stream.append(np.full((64, 64), i + 1, "uint16"), frame_metadata={"delta_t": i})
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(
    ("engine", "pyramid"),
    [
        pytest.param("tensorstore", False, id="tensorstore"),
        pytest.param("tensorstore", True, id="tensorstore-pyramid"),
        pytest.param("zarr-python", True, id="zarr-python-pyramid"),
    ],
)
def test_killed_writer_recovers_from_the_local_journal(s3, tmp_path, engine, pyramid):
    """``recover`` uploads the journaled frames; levels are rebuilt key by key."""
    import subprocess
    import sys

    from ome_writers import recover
    from ome_writers._pyramid import reference_level

    fs, bucket, endpoint = s3
    url = f"s3://{bucket}/killed.ome.zarr"
    argv = [sys.executable, "-c", _CHILD, url, engine, "pyramid" if pyramid else ""]
    child = subprocess.run(argv, check=False)
    assert child.returncode == -9
    journals = list((tmp_path / "state" / "journals").glob("*/*.ome-writers-journal"))
    assert len(journals) == 1  # on local disk, under OME_WRITERS_STATE_DIR
    prefix = f"{bucket}/killed.ome.zarr"
    if pyramid:  # the rebuild deletes a level's chunk keys, and only those
        fs.pipe_file(f"{prefix}/1/c/9/0/0", b"stale")
        fs.pipe_file(f"{prefix}/1/notes.txt", b"mine")
    report = recover(url)
    assert (report.frames_written, report.was_complete) == (6, False)
    assert report.frames_restored >= 2
    assert not journals[0].exists()
    group = _zarr_read(url, endpoint)
    data = group["0"][:]
    expected = np.zeros((8, 64, 64), "uint16")
    for i in range(6):
        expected[i] = i + 1
    np.testing.assert_array_equal(data, expected)
    root = json.loads(fs.cat_file(f"{prefix}/zarr.json"))
    assert root["attributes"]["ome_writers"]["complete"] is True
    if pyramid:
        datasets = root["attributes"]["ome"]["multiscales"][0]["datasets"]
        assert [d["path"] for d in datasets] == ["0", "1", "2"]
        for level in (1, 2):
            np.testing.assert_array_equal(
                group[str(level)][:], reference_level(expected, level, "mean")
            )
        assert not fs.exists(f"{prefix}/1/c/9/0/0")
        assert fs.cat_file(f"{prefix}/1/notes.txt") == b"mine"
    assert recover(url).was_complete


@pytest.mark.parametrize("engine", ["tensorstore", "zarr-python"])
def test_server_stopped_mid_stream(s3, engine):
    """A WriteError names the key; the frames uploaded before stay readable."""
    _, bucket, _ = s3
    own = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    own.start()
    host, port = own.get_host_and_port()
    own_endpoint = (
        f"http://{host}:{port}"  # the same buckets: moto keeps them in-process
    )
    url = f"s3://{bucket}/down.ome.zarr"
    settings = AcquisitionSettings(
        root_path=url,
        format=OmeZarrFormat(
            backend=engine, storage_options={"endpoint_url": own_endpoint}
        ),
        dimensions=dims_from_standard_axes({"t": 6, "y": 32, "x": 32}),
        dtype="uint16",
    )
    stream = create_stream(settings)
    for i in range(3):
        stream.append(np.full((32, 32), i + 1, "uint16"))
    assert np.asarray(stream.view())[:3, 0, 0].tolist() == [1, 2, 3]  # uploaded
    own.stop()

    def finish() -> None:
        for i in range(3, 6):
            stream.append(np.full((32, 32), i + 1, "uint16"))
        stream.close()

    with pytest.raises(WriteError) as caught:
        finish()
    assert f"s3://{bucket}/down.ome.zarr" in str(caught.value)
    stream.close()
    restarted = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    restarted.start()
    try:  # moto keeps its buckets in this process: the same data is served
        data = _zarr_read(url, own_endpoint)["0"][:3]
        assert data[:, 0, 0].tolist() == [1, 2, 3]
    finally:
        restarted.stop()


class _FaultyProxy:
    """A real HTTP proxy in front of the S3 server that fails one key.

    Every request is forwarded to the server (``http.client``), except those
    for ``key`` (``prefix/name.ome.zarr/...``, path-style or virtual-hosted)
    once ``armed``: the first ``times`` of them (all, when None) get a 500
    ``InternalError`` without reaching the server.
    """

    def __init__(self, upstream: str, key: str, times: int | None) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import unquote, urlsplit

        target = urlsplit(upstream)
        self.failed = 0
        self.armed = True
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    parts = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return b"".join(parts)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                path = unquote(urlsplit(self.path).path)
                if (
                    proxy.armed
                    and path.endswith(f"/{key}")
                    and (times is None or proxy.failed < times)
                ):
                    proxy.failed += 1
                    error = (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                        b"InternalError</Code><Message>injected</Message></Error>"
                    )
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "expect", "connection")
                }
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(target.hostname, target.port)
                try:
                    upstream.request(self.command, self.path, body, headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection"):
                        if name.lower() != "content-length":
                            self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("engine", "key", "times"),
    [
        pytest.param("tensorstore", "0/c/3/0/0", None, id="tensorstore-chunk"),
        pytest.param("zarr-python", "0/c/3/0/0", None, id="zarr-python-chunk"),
        pytest.param("tensorstore", "zarr.json", None, id="root-zarr.json"),
        pytest.param("zarr-python", "0/c/3/0/0", 1, id="zarr-python-retried"),
        pytest.param("tensorstore", "0/c/3/0/0", 2, id="tensorstore-retried"),
    ],
)
def test_500_on_one_object(s3, engine, key, times):
    """A persistent 500: WriteError naming the object, earlier frames readable.

    Both engines retry a 500 (see the README): one that clears up is
    invisible. ``zarr.json`` here is the root's, rewritten at close.
    """
    _, bucket, endpoint = s3
    proxy = _FaultyProxy(endpoint, f"faulty.ome.zarr/{key}", times)
    url = f"s3://{bucket}/faulty.ome.zarr"
    settings = AcquisitionSettings(
        root_path=url,
        format=OmeZarrFormat(
            backend=engine, storage_options={"endpoint_url": proxy.endpoint}
        ),
        dimensions=dims_from_standard_axes({"t": 6, "y": 32, "x": 32}),
        dtype="uint16",
    )
    # the root zarr.json fails once the stream is open: the write at close
    proxy.armed = key != "zarr.json"
    key_url = f"{url}/zarr.json" if key == "zarr.json" else f"{url}/0"
    try:
        stream = create_stream(settings)
        proxy.armed = True

        def write() -> None:
            for i in range(6):
                stream.append(np.full((32, 32), i + 1, "uint16"))
            stream.close()

        if times is not None:
            write()
            assert proxy.failed == times
            data = _zarr_read(url, endpoint)["0"][:]
            assert data[:, 0, 0].tolist() == [1, 2, 3, 4, 5, 6]
            return
        with pytest.raises(WriteError) as caught:
            write()
        assert key_url in str(caught.value)
        assert proxy.failed > 1  # retried before giving up
        stream.close()
    finally:
        proxy.close()
    data = _zarr_read(url, endpoint)["0"][:]
    written = [1, 2, 3, 4, 5, 6] if key == "zarr.json" else [1, 2, 3]
    assert data[: len(written), 0, 0].tolist() == written


def test_open_dask_on_a_process_cluster(s3):
    """Per-frame statistics of an S3 OME-Zarr on a LocalCluster equal numpy's."""
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    from ome_writers import open_dask

    _, bucket, endpoint = s3
    url = f"s3://{bucket}/cluster.ome.zarr"
    settings = AcquisitionSettings(
        root_path=url,
        format="tensorstore",
        dimensions=[
            Dimension(name="t", count=6, type="time", chunk_size=1),
            Dimension(name="c", count=2, type="channel"),
            Dimension(name="y", count=128, type="space", chunk_size=32),
            Dimension(name="x", count=128, type="space", chunk_size=32),
        ],
        dtype="uint16",
    )
    frames = _frames(12, (128, 128))
    with create_stream(settings) as stream:
        for frame in frames:
            stream.append(frame)
    expected = np.stack(frames).reshape(6, 2, 128, 128)
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    array = open_dask(url, storage_options=options)
    # one task per shard (a whole frame), not one per 32 x 32 chunk
    assert array.chunks == ((1,) * 6, (1, 1), (128,), (128,))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        means, maxima = da.compute(array.mean(axis=(-2, -1)), array.max(axis=(-2, -1)))
    np.testing.assert_allclose(means, expected.mean(axis=(-2, -1)))
    np.testing.assert_array_equal(maxima, expected.max(axis=(-2, -1)))


def test_open_dask_positions_and_levels(s3, tmp_path):
    from ome_writers import open_dask

    for root in (tmp_path / "local.ome.zarr", f"s3://{s3[1]}/p.ome.zarr"):
        settings = AcquisitionSettings(
            root_path=str(root),
            dimensions=dims_from_standard_axes(
                {"p": ["a", "b"], "t": 2, "y": 16, "x": 16}
            ),
            dtype="uint8",
        )
        with create_stream(settings) as stream:
            for i in range(4):
                stream.append(np.full((16, 16), i, "uint8"))
        for position, values in ((0, [0, 1]), ("b", [2, 3])):
            got = open_dask(root, position=position).compute()
            assert got[:, 0, 0].tolist() == values
        with pytest.raises(KeyError, match="2 images"):
            open_dask(root)
        with pytest.raises(KeyError, match="level 1"):
            open_dask(root, position=0, level=1)


def test_acquire_zarr_refuses_the_shards_it_corrupts(s3):
    """Refused before anything is written, naming the limit and tensorstore."""
    _, bucket, _ = s3
    dims = [
        Dimension(name="t", count=2, type="time"),
        Dimension(name="y", count=2048, type="space", chunk_size=512),
        Dimension(name="x", count=2048, type="space"),
    ]
    with pytest.raises(ValueError, match=r"5,242,880 bytes.*backend='tensorstore'"):
        AcquisitionSettings(
            root_path=f"s3://{bucket}/big.ome.zarr",
            format="acquire-zarr",
            dimensions=dims,
            dtype="uint16",
        )
    # the same layout on a local disk, or one chunk per shard on S3, is fine
    AcquisitionSettings(
        root_path="big.ome.zarr", format="acquire-zarr", dimensions=dims, dtype="uint16"
    )
    dims[1] = Dimension(name="y", count=2048, type="space", shard_size_chunks=1)
    AcquisitionSettings(
        root_path=f"s3://{bucket}/big.ome.zarr",
        format="acquire-zarr",
        dimensions=dims,
        dtype="uint16",
    )


def test_acquire_zarr_upstream_shard_upload_failure(s3):
    """acquire-zarr 0.10 on S3: an 8 MiB shard of four 2 MiB chunks comes out wrong.

    The regression test behind the refusal above: when this starts failing,
    acquire-zarr uploads such shards intact, and the refusal
    (``ACQUIRE_S3_MAX_SHARD_BYTES`` in ``_formats``) can be lifted.
    """
    aqz = pytest.importorskip("acquire_zarr")
    _, bucket, endpoint = s3
    dims = [
        aqz.Dimension(
            name=name,
            kind=kind,
            array_size_px=size,
            chunk_size_px=chunk,
            shard_size_chunks=shard,
        )
        for name, kind, size, chunk, shard in (
            ("t", aqz.DimensionType.TIME, 2, 1, 1),
            ("y", aqz.DimensionType.SPACE, 2048, 512, 4),
            ("x", aqz.DimensionType.SPACE, 2048, 2048, 1),
        )
    ]
    settings = aqz.StreamSettings(
        store_path="upstream",
        s3=aqz.S3Settings(endpoint=endpoint, bucket_name=bucket, region="us-east-1"),
        arrays=[
            aqz.ArraySettings(output_key="0", dimensions=dims, data_type=np.uint16)
        ],
    )
    data = np.stack(_frames(2, (2048, 2048)))
    stream = aqz.ZarrStream(settings)
    for frame in data:
        stream.append(frame, key="0")
    try:
        stream.close()
        intact = np.array_equal(
            _zarr_read(f"s3://{bucket}/upstream", endpoint)["0"][:], data
        )
    except Exception:  # close or the read fails (both seen with 0.10)
        intact = False
    assert not intact, "acquire-zarr now uploads large shards intact: lift the refusal"


def test_existing_output_and_overwrite(s3):
    """Refused without overwrite; overwrite deletes only the keys we write."""
    fs, bucket, _ = s3
    url = f"s3://{bucket}/again.ome.zarr"

    def settings(**kwargs):
        return AcquisitionSettings(
            root_path=url,
            dimensions=dims_from_standard_axes({"t": 2, "y": 16, "x": 16}),
            dtype="uint8",
            **kwargs,
        )

    with create_stream(settings()) as stream:
        stream.append(np.full((16, 16), 7, "uint8"))
        stream.append(np.full((16, 16), 8, "uint8"))
    fs.pipe_file(f"{bucket}/again.ome.zarr/notes.txt", b"mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        create_stream(settings())
    with create_stream(settings(overwrite=True)) as stream:
        stream.append(np.full((16, 16), 1, "uint8"))
    keys = sorted(
        k.split("again.ome.zarr/")[1] for k in fs.find(f"{bucket}/again.ome.zarr")
    )
    assert keys == ["0/c/0/0/0", "0/zarr.json", "notes.txt", "zarr.json"]
    # a prefix this package did not write is never deleted
    fs.pipe_file(f"{bucket}/foreign.ome.zarr/zarr.json", b"{}")
    with pytest.raises(FileExistsError, match="not written by ome_writers"):
        create_stream(
            AcquisitionSettings(
                root_path=f"s3://{bucket}/foreign.ome.zarr",
                dimensions=dims_from_standard_axes({"y": 16, "x": 16}),
                dtype="uint8",
                overwrite=True,
            )
        )
    assert fs.cat_file(f"{bucket}/foreign.ome.zarr/zarr.json") == b"{}"


# ------------------------------------------------------------ info and convert

S3_POSITIONS = [
    Position(name="A1-0", plate_row="A", plate_column="1", x_coord=1.5, y_coord=-2.0),
    Position(name="B2-0", plate_row="B", plate_column="2", x_coord=10.0, z_coord=3.0),
]


def _small_settings(root_path: str, **kwargs) -> AcquisitionSettings:
    """Two wells, two time points, two channels of 8 x 12 frames."""
    from ome_writers import Channel

    return AcquisitionSettings(
        root_path=root_path,
        dimensions=[
            Dimension(name="t", count=2, unit="s", scale=2.0),
            Dimension(name="p", type="position", coords=S3_POSITIONS),
            Dimension(
                name="c",
                type="channel",
                coords=[Channel(name="DAPI"), Channel(name="GFP")],
            ),
            Dimension(name="y", count=8, unit="um", scale=0.5),
            Dimension(name="x", count=12, unit="um", scale=0.5),
        ],
        dtype="uint16",
        plate=Plate(row_names=["A", "B"], column_names=["1", "2"], name="screen"),
        **kwargs,
    )


def _write_small(settings: AcquisitionSettings) -> list[np.ndarray]:
    """Frames of distinct random pixels, each with its own metadata."""
    frames = _frames(settings.num_frames, shape=settings.frame_shape)
    with create_stream(settings) as stream:
        stream.set_global_metadata("lab", {"operator": "ada", "run": 7})
        for i, frame in enumerate(frames):
            stream.append(frame, frame_metadata={"delta_t": 0.5 * i, "note": f"f{i}"})
    return frames


def cli_main(argv: list[str]) -> int:
    """The ``ome-writers`` command, in this process."""
    from ome_writers._cli import main

    return main(argv)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, with this process's (moto) AWS environment."""
    command = [sys.executable, "-m", "ome_writers", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_info_of_an_s3_output(s3, tmp_path, capsys):
    """``info`` of an S3 prefix reads as ``info`` of the same output on disk."""
    fs, bucket, _ = s3
    pytest.importorskip("tensorstore")
    url = f"s3://{bucket}/lab/screen.ome.zarr"
    local = tmp_path / "screen.ome.zarr"
    _write_small(_small_settings(url))
    fs.get(f"{bucket}/lab/screen.ome.zarr", str(local), recursive=True)
    remote_json = _cli("info", url, "--json")
    assert remote_json.returncode == 0, remote_json.stderr
    remote = json.loads(remote_json.stdout)
    capsys.readouterr()
    assert cli_main(["info", str(local), "--json"]) == 0
    on_disk = json.loads(capsys.readouterr().out)
    objects = fs.find(f"{bucket}/lab/screen.ome.zarr", detail=True)
    stored_bytes = sum(o["size"] for o in objects.values())
    assert remote["path"] == url
    assert remote["bytes_on_disk"] == stored_bytes > 0
    assert (remote["state"], remote["layout"], remote["frames_written"]) == (
        "complete",
        "plate",
        8,
    )
    for key in ("path", "bytes_on_disk"):
        del remote[key], on_disk[key]
    assert remote == on_disk
    text = _cli("info", url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{url}: OME-Zarr 0.5 plate, complete"
    assert "  frames:       8 of 8 written" in lines
    assert "  channels:     DAPI, GFP" in lines
    assert lines[-1].startswith(f"  size on disk: {stored_bytes:,} bytes")
    assert cli_main(["info", f"s3://{bucket}/nothing.ome.zarr"]) == 2
    error = capsys.readouterr().err
    assert "is not an OME-Zarr" in error
    assert len(error.strip().splitlines()) == 1


def test_convert_s3_to_local_ome_tiff(s3, tmp_path, capsys):
    """``ome-writers convert s3://... kept.ome.tiff``, read back by tifffile.

    The command runs in this process (a subprocess would spend seconds
    importing the engines again); ``test_info_of_an_s3_output`` runs the
    entry point itself.
    """
    tifffile = pytest.importorskip("tifffile")
    from ome_types import from_xml

    _, bucket, _ = s3
    url = f"s3://{bucket}/lab/run.ome.zarr"
    frames = _write_small(_small_settings(url))
    destination = tmp_path / "kept.ome.tiff"
    capsys.readouterr()
    assert cli_main(["convert", url, str(destination)]) == 0
    done = capsys.readouterr().out
    assert f"converted {url} (ome-zarr) -> " in done
    assert "8 frames" in done
    # two positions: a folder of one file per position, each with the OME-XML
    files = sorted((tmp_path / "kept").glob("*.ome.tiff"))
    assert len(files) == 2
    arrays = []
    for p, path in enumerate(files):
        with tifffile.TiffFile(path) as tf:
            arrays.append(tf.series[p].asarray())
            if p == 0:
                ome = from_xml(tf.ome_metadata, validate=True)
    # acquisition order t, p, c: frame i is position (i // 2) % 2, t i // 4, c i % 2
    for i, frame in enumerate(frames):
        t, p, c = i // 4, (i // 2) % 2, i % 2
        np.testing.assert_array_equal(arrays[p].reshape(2, 2, 8, 12)[t, c], frame)
    annotations = {a.id: a for a in ome.structured_annotations.map_annotations}
    assert [image.name for image in ome.images] == ["A1-0", "B2-0"]
    for p, image in enumerate(ome.images):
        pixels = image.pixels
        assert (pixels.physical_size_x, pixels.physical_size_y) == (0.5, 0.5)
        assert pixels.time_increment == 2.0
        assert [ch.name for ch in pixels.channels] == ["DAPI", "GFP"]
        label = image.stage_label
        position = S3_POSITIONS[p]
        assert (label.x, label.y, label.z) == (
            position.x_coord,
            position.y_coord,
            position.z_coord,
        )
        for plane in pixels.planes:
            i = plane.the_t * 4 + p * 2 + plane.the_c
            assert plane.delta_t == 0.5 * i
            notes = {
                m.k: m.value
                for ref in plane.annotation_refs
                for m in annotations[ref.id].value.ms
            }
            assert notes["note"] == f"f{i}"
    (plate,) = ome.plates
    assert plate.name == "screen"
    lab = next(a for a in annotations.values() if a.namespace == "lab")
    assert {m.k: json.loads(m.value) for m in lab.value.ms} == {
        "operator": "ada",
        "run": 7,
    }


def test_convert_local_scratch_to_s3(s3, tmp_path, monkeypatch):
    """``convert(scratch, "s3://...", storage_options=...)``, read by obstore."""
    from ome_writers import convert

    fs, bucket, endpoint = s3
    scratch = tmp_path / "preview"
    frames = _write_small(_small_settings(str(scratch), format="scratch"))
    url = f"s3://{bucket}/kept/run.ome.zarr"
    # the endpoint only from storage_options: they reach the destination
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    with pytest.raises(ValueError, match="storage_options"):
        convert(scratch, tmp_path / "x.ome.zarr", storage_options={"region": "x"})
    report = convert(
        scratch,
        url,
        format="zarr-python",
        storage_options={
            "endpoint_url": endpoint,
            "key": "testing",
            "secret": "testing",
        },
    )
    assert (report.destination, report.format) == (url, "ome-zarr")
    assert (report.frames_written, report.frames_skipped) == (8, 0)
    prefix = f"{bucket}/kept/run.ome.zarr"
    stored = b"".join(fs.cat_file(k) for k in fs.find(prefix) if k.endswith(".json"))
    assert b"testing" not in stored  # credentials are never written
    root = json.loads(fs.cat_file(f"{prefix}/zarr.json"))
    own = root["attributes"]["ome_writers"]
    assert (own["complete"], own["frames_written"]) == (True, 8)
    assert root["attributes"]["lab"] == {"operator": "ada", "run": 7}
    assert root["attributes"]["ome"]["plate"]["name"] == "screen"
    group = _zarr_read(url, endpoint)
    paths = _array_paths(root, url, endpoint)
    assert len(paths) == 2
    for p, path in enumerate(paths):
        data = group[path][:]
        assert data.shape == (2, 2, 8, 12)
        image = group[path.rsplit("/", 1)[0]].attrs
        multiscale = image["ome"]["multiscales"][0]
        assert [a["name"] for a in multiscale["axes"]] == ["t", "c", "y", "x"]
        scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale == [2.0, 1.0, 0.5, 0.5]
        labels = [c["label"] for c in image["ome"]["omero"]["channels"]]
        assert labels == ["DAPI", "GFP"]
        records = {r["frame_number"]: r for r in image["ome_writers"]["frame_metadata"]}
        for t in range(2):
            for c in range(2):
                i = t * 4 + p * 2 + c
                np.testing.assert_array_equal(data[t, c], frames[i])
                assert records[i]["delta_t"] == 0.5 * i
                assert records[i]["note"] == f"f{i}"


# ------------------------------------------------------------ killed writers

#: the crash tests' child: prints ``frame V`` once ``append`` returned for the
#: frame ``expected_frame(V)`` (metadata ``{"v": V}``), ``stalled`` when done
CRASH_CHILD = Path(__file__).parent / "backends" / "_ome_crash_child.py"


def _kill_s3_child(
    kill_after_reports, url: str, config: dict[str, Any], kill_after: int
) -> list[int]:
    """Run the crash child on ``url``, SIGKILL it; the frames it reported."""
    command = [sys.executable, str(CRASH_CHILD), url, json.dumps(config)]
    reports = kill_after_reports(command, kill_after)
    return list(reports["appended"])


def _only_journal(tmp_path: Path) -> Path:
    journals = list((tmp_path / "state" / "journals").glob("*/*.ome-writers-journal"))
    assert len(journals) == 1  # on local disk, under OME_WRITERS_STATE_DIR
    return journals[0]


def _snapshot(fs, prefix: str, journal: Path) -> tuple[dict, dict]:
    """Every object (size, ETag) under ``prefix``; every journal file's bytes."""
    objects = {
        key: (entry["size"], entry.get("ETag"))
        for key, entry in fs.find(prefix, detail=True).items()
    }
    files = {
        str(p.relative_to(journal)): p.read_bytes()
        for p in sorted(journal.rglob("*"))
        if p.is_file()
    }
    return objects, files


def test_info_and_convert_of_a_killed_s3_writer(
    s3, tmp_path, capsys, kill_after_reports
):
    """An interrupted S3 output reads as interrupted, and converts whole.

    ``info`` (the real entry point) says so as it does for a local output,
    with the journal's frame count; ``convert`` takes every frame the child
    reported from the bucket and the local journal, and leaves both as they
    were (``recover`` still finishes the source afterwards).
    """
    pytest.importorskip("tensorstore")
    from _crash_child import expected_frame

    from ome_writers import convert, recover

    fs, bucket, _ = s3
    url = f"s3://{bucket}/lab/killed.ome.zarr"
    sizes = {"t": None, "p": 2, "c": 2, "y": 16, "x": 16}
    # 11 frames: t 2 is not whole, and t 0-2 are in an unfinished 4-step chunk
    config = {"format": "tensorstore", "sizes": sizes, "chunk_t": 4, "frames": 11}
    reported = _kill_s3_child(kill_after_reports, url, config, 10**6)
    assert reported == list(range(11))
    journal = _only_journal(tmp_path)
    prefix = f"{bucket}/lab/killed.ome.zarr"
    before = _snapshot(fs, prefix, journal)

    text = _cli("info", url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{url}: OME-Zarr 0.5 bioformats2raw, interrupted"
    labelled = [line for line in lines[1:] if line.startswith("  ") and line[2] != " "]
    values = {
        label.strip(): value.strip()
        for label, _, value in (line.partition(":") for line in labelled)
    }
    assert values["state"] == (
        f"interrupted: the writer died before close(); its journal "
        f"{str(journal)!r} on this machine holds the rest: "
        f"'ome-writers recover {url}' finishes it"
    )
    assert values["frames"] == "11 written (unbounded)"
    # 11 frames of 2 positions x 2 channels fill 3 steps
    assert values["dimensions"] == "t 3 (unbounded) · c 2 · y 16 · x 16"
    capsys.readouterr()
    assert cli_main(["info", url, "--json"]) == 0  # the same code, in this process
    data = json.loads(capsys.readouterr().out)
    assert (data["state"], data["interrupted"], data["complete"]) == (
        "interrupted",
        True,
        False,
    )
    assert (data["frames_written"], data["frames_total"]) == (11, None)
    assert data["journal"] == str(journal)
    assert [p["shape"] for p in data["positions"]] == [[3, 2, 16, 16]] * 2

    destination = tmp_path / "kept.ome.zarr"
    report = convert(url, destination, format="tensorstore")
    assert (report.source_complete, report.frames_written) == (False, 11)
    assert _snapshot(fs, prefix, journal) == before  # the source is only read
    # zarr-python reads what tensorstore wrote
    import zarr

    root = zarr.open_group(destination, mode="r")
    own = root.attrs["ome_writers"]
    assert (own["complete"], own["frames_written"]) == (True, 11)
    assert root.attrs["child"] == {"started": True}
    stored = {}
    for p in range(2):
        array = root[f"{p}/0"][:]
        assert array.shape == (3, 2, 16, 16)
        records = root[str(p)].attrs["ome_writers"]["frame_metadata"]
        for record in records:
            stored[record["v"]] = (array[tuple(record["storage_index"])], record)
        if p == 1:  # frame 11 (t 2, position 1, channel 1) was never appended
            assert not array[2, 1].any()
    assert sorted(stored) == reported
    for v in reported:
        pixels, record = stored[v]
        np.testing.assert_array_equal(pixels, expected_frame(v, (16, 16)))
        assert record["exposure_time"] == pytest.approx(0.001 * (v + 1))
    done = recover(url)  # the source is still the interrupted output it was
    assert (done.frames_written, done.was_complete) == (11, False)


def _journal_frames(journal: Path) -> set[int]:
    """The frames a journal holds pixels of (its marked slots)."""
    from ome_writers._backends._journal import read_journal

    return set(read_journal(journal).frames)


def test_acquire_zarr_journal_keeps_frames_until_their_shards_exist(s3, tmp_path):
    """A frame leaves the journal once every shard object of its row exists.

    acquire-zarr uploads a shard (here 4 time points of one channel) when it
    is complete: after 10 frames, row 0 (frames 0-7, two shards) is uploaded
    and released, and row 1's frames stay in the journal.
    """
    fs, bucket, endpoint = s3
    url = f"s3://{bucket}/watched.ome.zarr"
    dims = dims_from_standard_axes({"t": 6, "c": 2, "y": 16, "x": 16})
    dims[0].chunk_size, dims[0].shard_size_chunks = 2, 2
    settings = AcquisitionSettings(
        root_path=url, format="acquire-zarr", dimensions=dims, dtype="uint16"
    )
    frames = _frames(12, (16, 16))
    with create_stream(settings) as stream:
        journal = _only_journal(tmp_path)
        for frame in frames[:10]:
            stream.append(frame)
        deadline = time.monotonic() + 30
        while _journal_frames(journal) != {8, 9} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _journal_frames(journal) == {8, 9}
        shards = sorted(
            key.rsplit("watched.ome.zarr/", 1)[1]
            for key in fs.find(f"{bucket}/watched.ome.zarr/0/c")
        )
        assert shards == ["0/c/0/0/0/0", "0/c/0/1/0/0"]  # t 0-3, channels 0, 1
        for frame in frames[10:]:
            stream.append(frame)
    assert not journal.exists()
    data = _zarr_read(url, endpoint)["0"][:]
    np.testing.assert_array_equal(data, np.stack(frames).reshape(6, 2, 16, 16))


def test_killed_acquire_zarr_s3_writer_recovers_every_frame(
    s3, tmp_path, kill_after_reports
):
    """SIGKILL mid-stream: ``recover`` uploads what acquire-zarr had not.

    acquire-zarr uploads a shard row only once complete, so the frames of an
    unfinished row (and of rows still uploading) exist only in the journal.
    """
    from _crash_child import expected_frame

    from ome_writers import recover

    _, bucket, endpoint = s3
    url = f"s3://{bucket}/killed-aqz.ome.zarr"
    sizes = {"t": 40, "c": 2, "y": 16, "x": 16}
    config = {"format": "acquire-zarr", "sizes": sizes, "chunk_t": 2, "shard_t": 2}
    # killed within a shard row (the child may have appended a few more)
    reported = _kill_s3_child(kill_after_reports, url, config, 21)
    assert len(reported) >= 21
    _only_journal(tmp_path)
    report = recover(url)
    assert report.was_complete is False
    assert report.frames_written >= len(reported)
    # a shard row is 8 frames: those of an unfinished one came from the journal
    assert report.frames_restored >= report.frames_written % 8
    group = _zarr_read(url, endpoint)
    own = group.attrs["ome_writers"]
    assert (own["complete"], own["frames_written"]) == (True, report.frames_written)
    data = group["0"][:]
    records = {r["v"]: r for r in own["frame_metadata"]}
    for v in reported:
        np.testing.assert_array_equal(
            data[tuple(records[v]["storage_index"])], expected_frame(v, (16, 16))
        )
        assert records[v]["exposure_time"] == pytest.approx(0.001 * (v + 1))
    assert recover(url).was_complete


def test_zarr_python_uploads_every_chunk_on_s3(s3):
    """On S3, zarr-python uploads a chunk equal to the fill value too.

    zarr's default compares each chunk with the fill value before writing it,
    a pass over every chunk on its one event-loop thread; on S3 the chunk is
    uploaded instead (frames are almost never empty), and reads the same.
    """
    fs, bucket, endpoint = s3
    url = f"s3://{bucket}/zeros.ome.zarr"
    settings = AcquisitionSettings(
        root_path=url,
        dimensions=dims_from_standard_axes({"t": 3, "y": 8, "x": 8}),
        dtype="uint16",
        format=OmeZarrFormat(backend="zarr-python"),
    )
    frame = np.arange(64, dtype="uint16").reshape(8, 8)
    with create_stream(settings) as stream:
        stream.append(np.zeros((8, 8), "uint16"))
        stream.append(frame)
    chunks = fs.find(f"{bucket}/zeros.ome.zarr/0/c")
    keys = sorted(k.rsplit("/c/", 1)[1] for k in chunks)
    assert keys == ["0/0/0", "1/0/0"]  # the empty chunk too; the skipped t=2 not
    data = _zarr_read(url, endpoint)["0"][:]
    assert not data[0].any()
    np.testing.assert_array_equal(data[1], frame)
    assert not data[2].any()
