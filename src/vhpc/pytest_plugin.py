"""pytest plugin (entry point ``vhpc``): the ``vhpc_cluster`` fixture, a real Slurm cluster.

    def test_job(vhpc_cluster):
        job = vhpc_cluster.sbatch("#!/bin/bash\\nsrun hostname\\n")
        assert vhpc_cluster.wait(job).exit_code == 0

A cluster is booted the first time a test asks for one and lives for the whole session:
every test with the same options shares it; it is torn down when the session ends. Options
come from ini settings (``vhpc_nodes``, ``vhpc_memory``, ``vhpc_spec``...) and can be
changed per test, class or module with ``@pytest.mark.vhpc(nodes=4, memory="200M")``; a
test with other options gets its own cluster (the previous one is stopped first, so one
cluster at a time uses the host). ``--vhpc-attach NAME`` uses a running cluster instead.

Where this machine cannot run clusters (not root, Debian packages missing) the fixture
skips the test with the reason. This module is loaded by every pytest run where vhpc is
installed, so it imports nothing of vhpc until a test uses the fixture.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from vhpc.python_api import Cluster
    from vhpc.spec.load import ClusterOptions

MARKER = "vhpc"
# ini name -> (help, default)
INI = {
    "vhpc_nodes": ("compute nodes of the vhpc_cluster fixture's cluster (default 2)", ""),
    "vhpc_memory": ("memory limit per compute node (default 1G, capped to the host)", ""),
    "vhpc_cpus": ("CPUs per compute node (default 1, round-robin over the host's)", ""),
    "vhpc_partition": ("Slurm partition name (default vhpc)", ""),
    "vhpc_spec": ("cluster file (TOML, as for vhpc up -f: [cluster], [[nodes]], "
                  "[[partitions]], [[shares]]), relative to the rootdir", ""),
    "vhpc_name": ("cluster name (default pt<pid>); later configurations add -2, -3...", ""),
    "vhpc_attach": ("name of a running cluster to use instead of booting one", ""),
}
DEFAULTS: dict[str, Any] = {"nodes": 2}  # small: tests share the host
OPTION_FIELDS = ("nodes", "memory", "cpus", "cpuset", "subnet", "overcommit", "partition",
                 "max_nodes", "features", "pids_max", "users", "accounting", "gpus", "groups",
                 "partitions", "shares", "rack_size", "image")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini options and --vhpc-attach."""
    for name, (help_text, default) in INI.items():
        parser.addini(name, help_text, default=default)
    group = parser.getgroup("vhpc", "vhpc virtual Slurm cluster")
    group.addoption("--vhpc-attach", metavar="NAME", default=None,
                    help="use the running vhpc cluster NAME for vhpc_cluster (not torn down)")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(nodes=2, memory='1G', spec=None, **options): options of the cluster "
        "the vhpc_cluster fixture gives this test (ClusterOptions fields; spec= a TOML file)",
    )


def read_spec_file(path: Path) -> dict[str, Any]:
    """Cluster options from a cluster file (`vhpc up -f`'s, spec/sitefile.py): the keys
    it sets, as ClusterOptions fields (its name is not used: the plugin names clusters)."""
    import dataclasses

    from vhpc.errors import SpecError
    from vhpc.spec.load import ClusterOptions
    from vhpc.spec.sitefile import read_site

    try:
        options = read_site(path)
    except SpecError as err:
        raise pytest.UsageError(f"vhpc: {err.message}") from None
    default = ClusterOptions()
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
            if f.name != "name" and getattr(options, f.name) != getattr(default, f.name)}


def ini_options(config: pytest.Config) -> dict[str, Any]:
    """Cluster options: the plugin's defaults, then the vhpc_spec file, then single keys."""
    options: dict[str, Any] = dict(DEFAULTS)
    spec = str(config.getini("vhpc_spec"))
    if spec:
        options.update(read_spec_file(Path(config.rootpath, spec)))
    for key, cast in (("nodes", int), ("memory", str), ("cpus", int), ("partition", str)):
        raw = str(config.getini(f"vhpc_{key}")).strip()
        if raw:
            try:
                options[key] = cast(raw)
            except ValueError:
                raise pytest.UsageError(f"vhpc_{key} = {raw!r}: not a valid value") from None
    return options


def marker_options(node: pytest.Item, rootpath: Path) -> dict[str, Any]:
    """Options from the closest @pytest.mark.vhpc(...) (test, then class, then module)."""
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError(f"vhpc marker takes keywords only, e.g. "
                                f"@pytest.mark.vhpc(nodes=2), not {marker.args!r}")
    kwargs = dict(marker.kwargs)
    options: dict[str, Any] = {}
    spec = kwargs.pop("spec", None)
    if spec is not None:
        options.update(read_spec_file(Path(rootpath, str(spec))))
    unknown = sorted(set(kwargs) - set(OPTION_FIELDS))
    if unknown:
        raise pytest.UsageError(f"vhpc marker: unknown options {', '.join(unknown)} "
                                f"(known: {', '.join(OPTION_FIELDS)}, spec)")
    options.update(kwargs)
    return options


class ClusterPool:
    """The session's clusters: one per distinct options, at most one alive at a time."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.base_name = str(config.getini("vhpc_name")) or f"pt{os.getpid() % 100000}"
        self.attach_name = (config.getoption("--vhpc-attach")
                            or str(config.getini("vhpc_attach")) or None)
        self.current: tuple[tuple[Any, ...], Cluster] | None = None
        self.failures: dict[tuple[Any, ...], BaseException] = {}
        self.skip_reason: str | None = None
        self.booted = 0

    def get(self, **overrides: Any) -> Cluster:
        """A running cluster with the ini options updated by `overrides` (booting it once)."""
        if self.skip_reason is not None:
            pytest.skip(self.skip_reason)
        options = self._options(overrides)
        key = tuple(sorted((k, repr(v)) for k, v in options.items()))
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        if key in self.failures:
            raise self.failures[key]
        self._stop_current()
        try:
            cluster = self._attach() if self.attach_name else self._boot(options)
        except pytest.skip.Exception:
            raise
        except Exception as err:  # a boot that failed once fails the same way again
            self.failures[key] = err
            raise
        self.current = (key, cluster)
        return cluster

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        options = ini_options(self.config)
        options.update(overrides)
        if "features" in options:
            options["features"] = tuple(options["features"])
        return options

    def _attach(self) -> Cluster:
        from vhpc.errors import ClusterStateError, NotRootError
        from vhpc.python_api import Cluster

        assert self.attach_name is not None
        try:
            return Cluster.attach(self.attach_name)
        except (ClusterStateError, NotRootError) as err:
            raise pytest.UsageError(f"--vhpc-attach {self.attach_name}: {err}") from None

    def _boot(self, options: dict[str, Any]) -> Cluster:
        self._check_host()
        self.booted += 1
        return self._start(self.next_name(), options)

    def next_name(self) -> str:
        """The name of the cluster booted last: the base name, then base-2, base-3..."""
        return self.base_name if self.booted <= 1 else f"{self.base_name}-{self.booted}"

    def _start(self, name: str, options: dict[str, Any]) -> Cluster:
        """Boot cluster `name` with `options` through the Python API."""
        from vhpc.errors import MissingDependencyError, NotRootError
        from vhpc.python_api import Cluster
        from vhpc.spec.load import ClusterOptions

        spec: ClusterOptions = ClusterOptions(name=name, **options)
        cluster = Cluster(options=spec)
        try:
            cluster.start()
        except (NotRootError, MissingDependencyError) as err:
            self.skip_reason = f"vhpc cannot run clusters here: {err}"
            pytest.skip(self.skip_reason)
        return cluster

    def _check_host(self) -> None:
        """Skip (for the whole session) where clusters cannot run: not Linux, not root..."""
        from vhpc.errors import MissingDependencyError, NotRootError
        from vhpc.runtime import facts

        if not sys.platform.startswith("linux"):
            self.skip_reason = "vhpc clusters need Linux (namespaces, cgroups)"
        else:
            try:
                facts.require_root("the vhpc_cluster fixture")
                facts.require_binaries()
            except (NotRootError, MissingDependencyError) as err:
                self.skip_reason = f"vhpc cannot run clusters here: {err}"
        if self.skip_reason is not None:
            pytest.skip(self.skip_reason)

    def _stop_current(self) -> None:
        if self.current is None:
            return
        _, cluster = self.current
        self.current = None
        if cluster.owned:
            cluster.stop()
        else:
            cluster.close()

    def close(self) -> None:
        """Tear down the cluster this session booted (attached ones keep running)."""
        self._stop_current()


@pytest.fixture(scope="session")
def vhpc_clusters(pytestconfig: pytest.Config) -> Iterator[ClusterPool]:
    """The session's cluster pool: ``vhpc_clusters.get(nodes=4)`` from any fixture scope."""
    pool = ClusterPool(pytestconfig)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def vhpc_cluster(request: pytest.FixtureRequest, vhpc_clusters: ClusterPool) -> Cluster:
    """A running vhpc cluster (a vhpc.Cluster), shared by the session's tests."""
    return vhpc_clusters.get(**marker_options(request.node, request.config.rootpath))
