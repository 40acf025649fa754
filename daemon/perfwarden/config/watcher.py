"""Watch the config file and call back once its content settles on new bytes.

The drop-ins in ``conf.d/`` beside the file count as part of it: that directory is
watched too (from when it appears), any ``*.yaml`` event in it counts, and the hash
is :func:`perfwarden.config.dropins.config_digest` of the whole set.

The ``watchdog`` observer watches the config file's *directory*, never the file: an
inotify watch on the file itself follows the old inode and goes deaf after the first
rename-save.  Its thread does one thing per relevant event,
``loop.call_soon_threadsafe(self._on_event)``; everything else runs in the event loop:

* **Filter by name.**  An event counts when its source or destination is the file's
  name, ``..data`` (the Kubernetes ConfigMap layout: ``perfwarden.yaml ->
  ..data/perfwarden.yaml``, ``..data -> ..2026_xx``, swapped by renaming a new
  ``..data_tmp`` symlink over ``..data``) or the file's resolved target.  Created,
  moved (either end), modified, closed-after-write and deleted events count;
  opened / closed-without-write do not (our own hashing read makes those).
* **Debounce.**  Each event restarts a quiet-period timer (``debounce``, 200 ms); when
  it expires the file is read and hashed (sha256 of the bytes).  While events keep
  coming the check still runs every ``max_delay`` so a file that never stops changing
  is not ignored forever.
* **Skip unchanged content.**  ``on_change`` is called only when the hash differs from
  the baseline: ``loaded_hash()`` (the hash of the config in force, when the daemon
  passes it) else the hash last delivered (initially the file at ``start()``).  An
  unreadable or missing file is skipped (the rename or re-create that follows is an
  event too).

**Half-written files.**  The watcher does not try to guess whether a file is complete;
the daemon's reload validates the whole file and rejects a partial one, keeping the old
config.  Every write after our read is another event, so once the writes settle the
quiet-period check runs again, sees bytes that differ from the rejected ones, and calls
``on_change`` again: a rejected partial reload is always followed by a reload of the
final content.  With ``loaded_hash`` the baseline is what the daemon actually runs, so
no interleaving of saves and reloads can drop a real change.

**What else is handled.**  A symlinked config whose target lives outside the directory
is watched in the target's directory too (re-resolved after every check).  The
directory itself being replaced (deleted and re-created, renamed over, or a symlinked
directory re-pointed) is caught by a cheap ``stat`` every ``rearm_interval`` seconds
(1 s): the watch is re-armed on the new directory and the file re-checked.  *Not*
handled: a file system without inotify events (NFS edited from another host, some
FUSE mounts) — use ``perfwarden reload`` / SIGHUP there; and edits made while the
directory is missing are picked up only when it reappears.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from perfwarden.config.dropins import DROP_IN_DIR, config_digest
from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from watchdog.observers.api import BaseObserver, ObservedWatch

__all__ = ["ConfigWatcher"]

_log = get_logger("perfwarden.watcher")

CONFIGMAP_DATA: Final = "..data"
_EDIT_EVENTS: Final = frozenset({"created", "moved", "modified", "deleted"})


class ConfigWatcher:
    """Calls ``on_change()`` in ``loop`` when the config file's content changes.

    ``start()`` and ``stop()`` must be called from the loop's thread (or, for
    ``stop()``, after the loop stopped running); ``stop()`` joins the observer thread.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
        debounce: float = 0.2,
        *,
        loaded_hash: Callable[[], str | None] | None = None,
        max_delay: float = 2.0,
        rearm_interval: float = 1.0,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.directory = self.path.parent
        self.drop_in_dir = self.directory / DROP_IN_DIR
        self._on_change = on_change
        self._loop = loop
        self._debounce = debounce
        self._loaded_hash = loaded_hash
        self._max_delay = max(max_delay, debounce)
        self._rearm_interval = rearm_interval
        self._observer: BaseObserver | None = None
        self._handler = _Handler(self)
        self._watches: dict[Path, tuple[ObservedWatch, tuple[int, int]]] = {}
        # Read by the observer thread; replaced whole (never mutated) by the loop.
        self._watched_paths: frozenset[str] = frozenset()
        self._target: str = str(self.path)
        self._timer: asyncio.TimerHandle | None = None
        self._rearm_timer: asyncio.TimerHandle | None = None
        self._burst_started: float | None = None
        self._delivered: str | None = None
        self._running = False
        self.checks = 0
        """How many quiet-period checks ran (each hashes the file once)."""
        self.calls = 0
        """How many times ``on_change`` was called (for ``status`` and tests)."""

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start watching; the file's current content is the initial baseline."""
        if self._running:
            return
        self._running = True
        self._delivered = config_digest(self.path)
        self._observer = Observer()
        self._observer.name = "perfwarden-config-watcher"
        self._observer.daemon = True
        self._rearm()
        self._observer.start()
        self._rearm_timer = self._loop.call_later(self._rearm_interval, self._tick)

    def stop(self) -> None:
        """Stop watching, cancel pending checks and join the observer thread."""
        self._running = False
        for handle in (self._timer, self._rearm_timer):
            if handle is not None:
                handle.cancel()
        self._timer = self._rearm_timer = None
        observer, self._observer = self._observer, None
        self._watches.clear()
        self._watched_paths = frozenset()
        if observer is not None:
            observer.stop()
            observer.join()

    @property
    def watched(self) -> list[Path]:
        """The directories currently watched."""
        return sorted(self._watches)

    # -- observer thread -----------------------------------------------------------

    def _relevant(self, event: FileSystemEvent) -> bool:
        """Runs on the observer thread: pure, no I/O."""
        if event.event_type not in _EDIT_EVENTS and not isinstance(
            event, FileClosedEvent
        ):
            return False
        if (
            isinstance(event, DirDeletedEvent)
            and _fs(event.src_path) in self._watched_paths
        ):
            return True  # a watched directory went away: re-arm soon
        names = {self.path.name, CONFIGMAP_DATA, DROP_IN_DIR}
        drop_ins = str(self.drop_in_dir)
        for raw in (event.src_path, event.dest_path):
            if not raw:
                continue
            path = _fs(raw)
            if os.path.basename(path) in names or path == self._target:
                return True
            if os.path.dirname(path) == drop_ins and path.endswith(".yaml"):
                return True
        return False

    def _from_thread(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
            self._loop.call_soon_threadsafe(self._on_event)

    # -- loop ------------------------------------------------------------------------

    def _on_event(self) -> None:
        if not self._running:
            return
        now = time.monotonic()
        if self._burst_started is None:
            self._burst_started = now
        if self._timer is not None:
            self._timer.cancel()
        # Quiet period, but never later than max_delay after the burst began.
        due = min(now + self._debounce, self._burst_started + self._max_delay)
        self._timer = self._loop.call_at(
            self._loop.time() + max(0.0, due - now), self._settled
        )

    def _settled(self) -> None:
        self._timer = None
        self._burst_started = None
        if not self._running:
            return
        self._rearm()
        self.checks += 1
        digest = config_digest(self.path)
        if digest is None:
            _log.debug("config.watch_unreadable", path=str(self.path))
            return
        baseline = self._loaded_hash() if self._loaded_hash else self._delivered
        if digest == baseline:
            return
        self._delivered = digest
        self.calls += 1
        try:
            self._on_change()
        except Exception:  # noqa: BLE001 - a failing callback must not stop watching
            _log.exception("config.watch_callback_failed", path=str(self.path))

    def _tick(self) -> None:
        self._rearm_timer = None
        if not self._running:
            return
        if self._rearm():
            self._on_event()
        self._rearm_timer = self._loop.call_later(self._rearm_interval, self._tick)

    def _rearm(self) -> bool:
        """Watch the right directories; True when a watch was (re)placed."""
        observer = self._observer
        if observer is None:
            return False
        wanted = [self.directory, self.drop_in_dir]
        with contextlib.suppress(OSError):
            target = Path(os.path.realpath(self.path))
            self._target = str(target)
            if not target.is_relative_to(self.directory):
                wanted.append(target.parent)
        changed = False
        for directory in list(self._watches):
            if directory not in wanted:
                with contextlib.suppress(KeyError, OSError):
                    observer.unschedule(self._watches[directory][0])
                del self._watches[directory]
        for directory in wanted:
            identity = _identity(directory)
            current = self._watches.get(directory)
            if current is not None and current[1] == identity:
                continue
            if current is not None:
                with contextlib.suppress(KeyError, OSError):
                    observer.unschedule(current[0])
                del self._watches[directory]
            if identity is None:
                continue  # gone for now; the next tick tries again
            try:
                watch = observer.schedule(self._handler, str(directory))
            except OSError as exc:
                _log.warning(
                    "config.watch_failed", directory=str(directory), error=str(exc)
                )
                continue
            if current is not None:
                _log.info("config.watch_rearmed", directory=str(directory))
            self._watches[directory] = (watch, identity)
            changed = True
        self._watched_paths = frozenset(str(d) for d in self._watches)
        return changed


class _Handler(FileSystemEventHandler):
    """The observer thread's side: filter, then hand over to the loop."""

    def __init__(self, watcher: ConfigWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self._watcher._relevant(event):
            self._watcher._from_thread()


def _fs(raw: bytes | str) -> str:
    return os.fsdecode(raw)


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
