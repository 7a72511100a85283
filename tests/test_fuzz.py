"""Damaged and hostile containers: a reader raises only CodecsSerError, and never returns
arrays other than the ones the container holds.

Each example mutates one small seed container (tests/fuzz_support.py) and runs every
reading operation on it: open (and read each entry), load(trusted=False), load_arrays,
audit, verify, load_arrays with mmap and verification, and ``codecs-ser inspect``.
The long run of the same mutators is tests/stress/fuzz_long.py.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterator

import fuzz_support as fz
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.filterwarnings("error")

FUZZ = settings(
    deadline=None,
    database=None,
    # The same examples on every run keep CI's verdict about the code, not the draw;
    # tests/stress/fuzz_long.py explores new ones.
    derandomize=True,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Examples per backend and test; dir mutants write a folder each, so they get fewer.
EXAMPLES = {"tar": 250, "zip": 250, "dir": 100}


class DataChooser:
    """Decisions drawn from hypothesis, so a failing mutant shrinks to a small one."""

    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def integer(self, lo: int, hi: int) -> int:
        return self._data.draw(st.integers(lo, hi))

    def raw(self, n: int) -> bytes:
        return self._data.draw(st.binary(min_size=n, max_size=n))


@functools.cache
def seeds(backend: str) -> list[fz.Seed]:
    return fz.make_seeds(backend)


@pytest.fixture(scope="module")
def workspace() -> Iterator[fz.Workspace]:
    with fz.Workspace() as ws:
        yield ws


def _check(ws: fz.Workspace, mutant: fz.Mutant) -> None:
    placed = ws.place(mutant)
    results = fz.run_operations(placed)
    found = fz.problems(placed, results)
    if found:
        first = next(iter(fz.escaped(results).values()), None)
        tail = "".join(traceback.format_exception(first)[-6:]) if first else ""
        pytest.fail(f"{mutant.describe()}\n" + "\n".join(found) + f"\n{tail}")


def _mutant(backend: str, data: st.DataObject, kind: str | None) -> fz.Mutant:
    ch = DataChooser(data)
    pool = seeds(backend)
    return fz.mutate(fz.pick(ch, pool), ch, fz.pick(ch, pool), kind=kind)


def _fuzz(
    backend: str, kinds: tuple[str | None, ...], share: float = 1.0
) -> Callable[[fz.Workspace], None]:
    """A hypothesis test over mutants of the given kinds, sized for the backend."""

    @settings(FUZZ, max_examples=max(5, int(EXAMPLES[backend] * share)))
    @given(data=st.data())
    def run(ws: fz.Workspace, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(kinds))
        _check(ws, _mutant(backend, data, kind))

    return run


@pytest.mark.parametrize("backend", fz.BACKENDS)
def test_seeds_written_again_load_unchanged(backend: str, workspace: fz.Workspace) -> None:
    """The mutators' own writer makes containers the readers accept as they are (so a
    mutant is refused for its mutation, not for how it was written)."""
    for seed in seeds(backend):
        model = fz.model_of(seed)
        mutant = fz.write_model(seed, model, fz._Never(), ["written again"])
        mutant.same_as_seed = ("open", "load", "load_allowed", "load_arrays", "verify", "mmap")
        mutant.arrays = dict(seed.baseline["load_arrays"])
        _check(workspace, mutant)


@pytest.mark.parametrize("backend", fz.BACKENDS)
def test_any_damage_raises_only_codecs_ser_errors(backend: str, workspace: fz.Workspace) -> None:
    _fuzz(backend, (None,))(workspace)


@pytest.mark.parametrize("backend", fz.BACKENDS)
def test_manifest_and_member_mutations(backend: str, workspace: fz.Workspace) -> None:
    """Mutations behind fixed-up checksums and manifest hashes reach the deep checks."""
    _fuzz(backend, ("structured",))(workspace)


@pytest.mark.parametrize("backend", fz.BACKENDS)
def test_damaged_array_bytes_never_load_as_other_arrays(
    backend: str, workspace: fz.Workspace
) -> None:
    """With checksums verified, damaged data bytes are refused (or, for a view's own copy
    that loading does not read, ignored): never returned as different arrays."""
    _fuzz(backend, ("blobdata",), share=0.4)(workspace)


@pytest.mark.parametrize("backend", fz.BACKENDS)
def test_consistent_rewrites_load_what_they_hold(backend: str, workspace: fz.Workspace) -> None:
    """A blob replaced by another array (manifest to match), or a .npy header rewritten as
    another valid header: load_arrays returns exactly what the container holds."""
    _fuzz(backend, ("replace", "header"), share=0.3)(workspace)


def test_dir_file_system_damage(workspace: fz.Workspace) -> None:
    """Members of a folder truncated, grown, deleted, or replaced by folders, symbolic
    links (inside, outside, dangling) or FIFOs."""
    _fuzz("dir", ("fs",), share=0.6)(workspace)


@pytest.mark.parametrize("backend", fz.BACKENDS)
@pytest.mark.parametrize("member", fz.MEMBER_NAMES)
def test_hostile_member_names(backend: str, member: str, workspace: fz.Workspace) -> None:
    """Every blob of a container renamed in its manifest (checksums and hashes fixed up)
    to a name that escapes the container, is too long for the file system, or names a
    folder or the manifest: refused with a CodecsSerError, never an OSError."""
    seed = seeds(backend)[0]
    model = fz.model_of(seed)
    for blob in fz.blob_records(model):
        blob[1] = member
    _check(workspace, fz.write_model(seed, model, fz._Never(), [f"every blob member = {member!r}"]))


@functools.cache
def compressed_seeds() -> list[fz.Seed]:
    return fz.make_compressed_seeds()


def test_damaged_compressed_containers_raise_only_codecs_ser_errors(
    workspace: fz.Workspace,
) -> None:
    """Blind damage to a .tar.gz, .tar.bz2, .tar.xz or deflated zip: the stream, its
    headers and trailers, its length."""

    @settings(FUZZ, max_examples=max(5, EXAMPLES["tar"]))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        ch = DataChooser(data)
        seed = fz.pick(ch, compressed_seeds())
        steps: list[str] = []
        mutated = fz.blind(seed.data, ch, steps, regions=seed.regions)
        _check(workspace, fz.Mutant(seed, "blind", mutated, {}, steps))

    run()
