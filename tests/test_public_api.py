"""The exported API: ``__all__`` is sorted, complete and importable."""

from __future__ import annotations

import importlib

import pytest

import ome_writers

ISSUE_2_NAMES = [
    "AcquisitionSettings",
    "Channel",
    "Dimension",
    "OMEStream",
    "Plate",
    "Position",
    "ScratchFormat",
    "StandardAxis",
    "create_stream",
    "dims_from_standard_axes",
]


def test_all_is_sorted_and_unique() -> None:
    assert list(ome_writers.__all__) == sorted(ome_writers.__all__)
    assert len(set(ome_writers.__all__)) == len(ome_writers.__all__)


@pytest.mark.parametrize("name", ome_writers.__all__)
def test_every_exported_name_imports(name: str) -> None:
    module = importlib.import_module("ome_writers")
    assert getattr(module, name) is not None


@pytest.mark.parametrize("name", ISSUE_2_NAMES)
def test_issue_api_is_exported(name: str) -> None:
    assert name in ome_writers.__all__


def test_public_names_are_exported() -> None:
    public = {n for n in vars(ome_writers) if not n.startswith("_")}
    assert public <= set(ome_writers.__all__)


def test_package_modules_are_private() -> None:
    modules = [n for n, v in vars(ome_writers).items() if type(v) is type(ome_writers)]
    assert all(n.startswith("_") for n in modules), modules


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        pytest.param("BackendUnavailableError", ImportError, id="unavailable"),
        pytest.param("NotADatasetError", ValueError, id="not-a-dataset"),
        pytest.param("StreamClosedError", RuntimeError, id="closed"),
        pytest.param("WriteError", OSError, id="write"),
    ],
)
def test_errors_subclass_package_base_and_builtin(
    name: str, builtin: type[Exception]
) -> None:
    error = getattr(ome_writers, name)
    assert issubclass(error, ome_writers.OmeWritersError)
    assert issubclass(error, builtin)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        pytest.param(
            ("cannot write to '/x/0': ValueError: disk quota",),
            "cannot write to '/x/0': ValueError: disk quota",
            id="cause-without-errno",
        ),
        pytest.param(
            (28, "cannot write to '/x/0'", "/x/0"),
            "[Errno 28] cannot write to '/x/0': '/x/0'",
            id="cause-with-errno",
        ),
    ],
)
def test_write_error_text_keeps_the_cause(args: tuple, text: str) -> None:
    """A path set on an error without errno must not turn its text into None."""
    error = ome_writers.WriteError(*args)
    error.filename = "/x/0"
    assert str(error) == text


def test_version_satisfies_pymmcore_plus() -> None:
    """pip keeps this package when pymmcore-plus is installed beside it."""
    from importlib.metadata import metadata, requires, version

    from packaging.requirements import Requirement

    ours = version("ome-writers")
    assert ours == ome_writers.__version__
    extras = set(metadata("ome-writers").get_all("Provides-Extra") or [])
    wanted = [
        Requirement(r)
        for r in requires("pymmcore-plus") or []
        if Requirement(r).name == "ome-writers"
    ]
    assert wanted, "pymmcore-plus no longer asks for ome-writers"
    for requirement in wanted:
        assert requirement.specifier.contains(ours), (requirement, ours)
        assert requirement.extras <= extras, (requirement.extras, extras)
