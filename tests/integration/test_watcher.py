"""perfwarden.config.watcher: every save style triggers, bursts debounce, same bytes do
not.

Each test ends its scenario with a *fence*: one more edit with known content.  inotify
delivers a directory's events in order, so when the fence's callback arrives every
event of the scenario has been handled, and the callbacks recorded before it are
exactly the scenario's (no fixed sleeps, no "wait and hope nothing else comes").
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
import time
from typing import TYPE_CHECKING

import pytest

from perfwarden.config.watcher import ConfigWatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

DEADLINE = 15.0
FENCE = b"fence: true\n"


async def eventually(condition: Callable[[], object]) -> None:
    """Wait (in the loop, so the watcher runs) until ``condition()`` is truthy."""
    try:
        async with asyncio.timeout(DEADLINE):
            while not condition():  # noqa: ASYNC110 - arbitrary predicates: poll
                await asyncio.sleep(0.01)
    except TimeoutError:
        msg = f"condition not met within {DEADLINE}s"
        raise AssertionError(msg) from None


class Recorder:
    """The watcher's callback: records the file's bytes at each call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[bytes] = []

    def __call__(self) -> None:
        try:
            self.seen.append(self.path.read_bytes())
        except OSError:
            self.seen.append(b"<unreadable>")

    async def fence(self, after: Callable[[], object] | None = None) -> list[bytes]:
        """Wait for ``after`` (default: a first callback), write the fence, wait for
        its callback, and return the callbacks that came before it."""
        await eventually(after or (lambda: self.seen))
        self.truncate_write(FENCE)
        await eventually(lambda: FENCE in self.seen)
        assert self.seen[-1] == FENCE
        return self.seen[:-1]

    def truncate_write(self, data: bytes) -> None:
        """``cp``/shell ``>`` style: the same inode, truncated and rewritten."""
        with self.path.open("wb") as f:
            f.write(data)


def rename_save(path: Path, data: bytes) -> None:
    """``sed -i`` style: write a temporary file beside it, rename it over."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def backup_rename_save(path: Path, data: bytes) -> None:
    """vim style (``backupcopy=no``): move the original away, write a new file."""
    backup = path.with_name(path.name + "~")
    os.replace(path, backup)
    path.write_bytes(data)
    backup.unlink()


def configmap_layout(directory: Path, data: bytes, stamp: str) -> None:
    """Kubernetes' atomic writer: a timestamped dir, ``..data`` swapped by rename."""
    version = directory / f"..{stamp}"
    version.mkdir()
    (version / "perfwarden.yaml").write_bytes(data)
    old = directory / "..data"
    previous = os.readlink(old) if old.is_symlink() else None
    tmp = directory / "..data_tmp"
    tmp.symlink_to(version.name)
    os.replace(tmp, old)
    link = directory / "perfwarden.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/perfwarden.yaml")
    if previous:
        shutil.rmtree(directory / previous)


@pytest.fixture(name="config_dir")
def _config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "perfwarden.yaml").write_bytes(b"version: 1\n")
    return directory


@pytest.fixture(name="recorder")
def _recorder(config_dir: Path) -> Recorder:
    return Recorder(config_dir / "perfwarden.yaml")


@pytest.fixture(name="watcher")
async def _watcher(recorder: Recorder) -> AsyncIterator[ConfigWatcher]:
    watcher = ConfigWatcher(
        recorder.path, recorder, asyncio.get_running_loop(), rearm_interval=0.2
    )
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


@pytest.fixture(name="threads_restored")
def _threads_restored() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not extra, f"watcher threads still running: {extra}"


@pytest.mark.usefixtures("threads_restored")
class TestSaveStyles:
    """Each way of saving a file is one callback with the new content."""

    @pytest.mark.parametrize(
        "save",
        [rename_save, backup_rename_save],
        ids=["rename-over", "backup-rename"],
    )
    async def test_rename_saves(
        self,
        watcher: ConfigWatcher,
        recorder: Recorder,
        save: Callable[[Path, bytes], None],
    ) -> None:
        """A file replaced by rename (sed -i, vim) triggers once."""
        save(recorder.path, b"version: 1\n# renamed\n")
        assert await recorder.fence() == [b"version: 1\n# renamed\n"]

    async def test_truncate_write(
        self, watcher: ConfigWatcher, recorder: Recorder
    ) -> None:
        """A file rewritten in place (cp, shell >) triggers once."""
        recorder.truncate_write(b"version: 1\n# in place\n")
        assert await recorder.fence() == [b"version: 1\n# in place\n"]

    async def test_configmap_swap(self, tmp_path: Path) -> None:
        """Kubernetes' ``..data`` symlink swap triggers once per update."""
        directory = tmp_path / "configmap"
        directory.mkdir()
        configmap_layout(directory, b"version: 1\n", "2026_01_01")
        recorder = Recorder(directory / "perfwarden.yaml")
        watcher = ConfigWatcher(recorder.path, recorder, asyncio.get_running_loop())
        watcher.start()
        try:
            assert watcher.watched == [directory]  # not the versioned dirs
            configmap_layout(directory, b"version: 1\n# v2\n", "2026_01_02")
            await eventually(lambda: recorder.seen)
            configmap_layout(directory, FENCE, "2026_01_03")
            await eventually(lambda: FENCE in recorder.seen)
            assert recorder.seen == [b"version: 1\n# v2\n", FENCE]
        finally:
            watcher.stop()

    async def test_symlink_target_outside_directory(self, tmp_path: Path) -> None:
        """An edit of a symlink's target in another directory triggers."""
        etc, srv = tmp_path / "etc", tmp_path / "srv"
        etc.mkdir()
        srv.mkdir()
        (srv / "real.yaml").write_bytes(b"version: 1\n")
        (etc / "perfwarden.yaml").symlink_to(srv / "real.yaml")
        recorder = Recorder(etc / "perfwarden.yaml")
        watcher = ConfigWatcher(recorder.path, recorder, asyncio.get_running_loop())
        watcher.start()
        try:
            assert watcher.watched == sorted([etc, srv])
            (srv / "real.yaml").write_bytes(b"version: 1\n# target\n")
            assert await recorder.fence() == [b"version: 1\n# target\n"]
        finally:
            watcher.stop()

    async def test_other_files_ignored(
        self, watcher: ConfigWatcher, recorder: Recorder
    ) -> None:
        """Files beside the config do not trigger."""
        (recorder.path.parent / "other.yaml").write_bytes(b"x: 1\n")
        (recorder.path.parent / "other.yaml").unlink()
        # Their events are dropped on the observer thread, so the fence cannot
        # merge with them.
        assert await recorder.fence(after=lambda: True) == []
        assert watcher.checks == 1

    async def test_directory_replaced(
        self, watcher: ConfigWatcher, recorder: Recorder
    ) -> None:
        """The whole directory renamed away and re-created is watched again."""
        directory = recorder.path.parent
        directory.rename(directory.with_name("etc.old"))
        directory.mkdir()
        recorder.path.write_bytes(b"version: 1\n# new dir\n")
        assert await recorder.fence() == [b"version: 1\n# new dir\n"]


@pytest.mark.usefixtures("threads_restored")
class TestDebounce:
    """Bursts collapse; unchanged bytes are skipped; real changes are never lost."""

    async def test_burst_is_one_callback(
        self, watcher: ConfigWatcher, recorder: Recorder
    ) -> None:
        """Twenty quick writes give one callback with the last content."""
        for i in range(20):
            recorder.truncate_write(f"version: 1\n# {i}\n".encode())
        assert await recorder.fence() == [b"version: 1\n# 19\n"]

    async def test_same_bytes_skipped(
        self, watcher: ConfigWatcher, recorder: Recorder
    ) -> None:
        """Rewriting identical bytes, by either save style, does not trigger."""
        original = recorder.path.read_bytes()
        recorder.truncate_write(original)
        rename_save(recorder.path, original)
        os.utime(recorder.path)
        assert await recorder.fence(after=lambda: watcher.checks) == []
        assert watcher.calls == 1

    async def test_delete_then_recreate(
        self, watcher: ConfigWatcher, recorder: Recorder
    ) -> None:
        """A missing file is not a change; its re-creation is."""
        recorder.path.unlink()
        recorder.path.write_bytes(b"version: 1\n# back\n")
        assert await recorder.fence() == [b"version: 1\n# back\n"]

    async def test_continuous_writes_fire_during_and_after(
        self, recorder: Recorder
    ) -> None:
        """A file that keeps changing is checked every max_delay, and when it
        settles."""
        watcher = ConfigWatcher(
            recorder.path,
            recorder,
            asyncio.get_running_loop(),
            debounce=0.2,
            max_delay=0.3,
        )
        watcher.start()
        try:
            deadline = time.monotonic() + DEADLINE
            i = 0
            while len(recorder.seen) < 2:  # writes every 50 ms never go quiet
                assert time.monotonic() < deadline
                recorder.truncate_write(f"version: 1\n# {i}\n".encode())
                i += 1
                await asyncio.sleep(0.05)
            final = f"version: 1\n# {i}\n".encode()
            recorder.truncate_write(final)
            await eventually(lambda: recorder.seen[-1] == final)
        finally:
            watcher.stop()

    async def test_partial_write_is_followed_by_final(self, config_dir: Path) -> None:
        """A reload rejected on a half-written file is followed by one of the final."""
        path = config_dir / "perfwarden.yaml"
        loaded: dict[str, bytes] = {}  # what the fake daemon runs
        outcomes: list[str] = []

        def reload() -> None:
            data = path.read_bytes()
            if not data.endswith(b"# end\n"):  # the daemon's validation, in short
                outcomes.append("rejected")
                return
            loaded[hashlib.sha256(data).hexdigest()] = data
            outcomes.append("reloaded")

        watcher = ConfigWatcher(
            path,
            reload,
            asyncio.get_running_loop(),
            loaded_hash=lambda: next(reversed(loaded), None),
        )
        watcher.start()
        try:
            with path.open("wb") as f:
                f.write(b"version: 1\nmetrics:\n")
                f.flush()
                await eventually(lambda: outcomes == ["rejected"])
                f.write(b"  x: {}\n# end\n")
            await eventually(lambda: outcomes == ["rejected", "reloaded"])
            assert list(loaded.values()) == [b"version: 1\nmetrics:\n  x: {}\n# end\n"]
        finally:
            watcher.stop()


class TestLifecycle:
    """stop() joins every thread; a stopped watcher calls nothing."""

    async def test_stop_joins_threads(self, recorder: Recorder) -> None:
        """No thread the watcher started survives stop()."""
        before = set(threading.enumerate())
        watcher = ConfigWatcher(recorder.path, recorder, asyncio.get_running_loop())
        watcher.start()
        assert set(threading.enumerate()) - before  # the observer runs
        watcher.stop()
        assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []

    async def test_no_callback_after_stop(self, recorder: Recorder) -> None:
        """Events pending at stop() are dropped, not delivered later."""
        watcher = ConfigWatcher(recorder.path, recorder, asyncio.get_running_loop())
        watcher.start()
        recorder.truncate_write(b"version: 1\n# late\n")
        watcher.stop()
        # Fence: a second watcher's callback comes a debounce after a later write,
        # so any timer the first one had pending would have fired by then.
        second = Recorder(recorder.path)
        fence_watcher = ConfigWatcher(recorder.path, second, asyncio.get_running_loop())
        fence_watcher.start()
        try:
            assert await second.fence(after=lambda: True) == []
        finally:
            fence_watcher.stop()
        assert recorder.seen == []

    async def test_start_stop_idempotent(self, recorder: Recorder) -> None:
        """start() twice and stop() twice are harmless."""
        watcher = ConfigWatcher(recorder.path, recorder, asyncio.get_running_loop())
        watcher.start()
        watcher.start()
        watcher.stop()
        watcher.stop()
