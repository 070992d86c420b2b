"""A run folder: the one place that knows a run's file names and the rules of starting one.

Every command writes into a folder and never overwrites earlier results: a fresh start needs a
folder that does not exist yet or is empty; a used folder is continued only with ``--resume``,
and only with a config that computes the same thing (:func:`genas.options.check_resume`). Logs
are trimmed back to the last durable state on resume, so a resumed folder matches an
uninterrupted one. Pure Python (no torch): the search driver uses it too.

Opening a folder for a run (:meth:`RunFolder.open`) is also where its bookkeeping starts, in one
place for every command: a fresh run records ``env.json`` (:mod:`genas.envinfo`); a resumed one
is compared with it and warns when versions differ; under the command line the run's log lines
go to ``genas.log`` (:mod:`genas.logs`). A command that ends before the run's marker file exists
(refused, or failed before its first write) takes both away again, so it leaves no trace.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import envinfo, logs
from .errors import GenasError
from .io import dumps, load_json, read_jsonl, save_json, write_jsonl
from .options import check_resume


LOCK = ".genas.lock"
ENV = envinfo.ENV
LOG_FILE = logs.LOG_FILE
BOOKKEEPING = (LOCK, ENV, LOG_FILE)  # files of a folder that are not the run's own (see require_empty)
_HELD: dict[Path, int] = {}  # folders this process has locked -> nesting depth (a run locks, its steps too)
_OPENED: dict[Path, dict] = {}  # folders opened for a run in this command -> their bookkeeping (see _begin)
log = logging.getLogger("genas")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_file(path: Path) -> tuple[bool, str]:
    """Create ``path`` exclusively, holding this process's "host pid"; a claim left by a dead process
    on this host is taken over. Returns (claimed, holder): holder is "host pid" of the owner."""
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                host, pid = path.read_text().split()
            except (OSError, ValueError):
                return False, "? ?"
            if host == socket.gethostname() and not _pid_alive(int(pid)):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            return False, f"{host} {pid}"
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return True, me
    return False, "? ?"


def check_new_output(path: str | Path, force: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output that would replace earlier results: an existing file, or a folder that is not
    empty, unless ``force``; and never one of the command's own ``inputs``."""
    path = Path(path)
    for given in inputs:
        if Path(given).resolve() == path.resolve():
            raise GenasError(f"-o {path} is also an input of the command; it would replace its own input")
    if force:
        return path
    if path.is_file() or (path.is_dir() and any(path.iterdir())) or (path.exists() and not path.is_dir()):
        raise GenasError(f"{path} already exists; choose another -o (or pass --force to replace it)")
    return path


def acquire(lock: Path, what: Path) -> None:
    """Claim ``lock`` for ``what``, or one line naming the process that holds it."""
    try:
        claimed, holder = claim_file(lock)
    except OSError as exc:
        raise GenasError(f"cannot lock {what}: {exc.strerror or exc}") from None
    if not claimed:
        host, pid = holder.split()
        raise GenasError(f"{what} is in use by pid {pid} on {host} (lock {lock}; delete it only if that process "
                         f"is gone)")


class FileLock:
    """``with FileLock(out_file):`` -- one process appends to a results file (``out_file.lock``, host and
    pid; a lock left by a dead process on this host is taken over)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = self.path.with_name(self.path.name + ".lock")

    def __enter__(self) -> "FileLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GenasError(f"cannot create {self.path.parent}: {exc.strerror or exc}") from None
        acquire(self.lock, self.path)
        return self

    def __exit__(self, *exc) -> None:
        self.lock.unlink(missing_ok=True)


def _bookkeeping(name: str) -> bool:
    """A file of the folder's bookkeeping (or env.json's temp file while it is written), not the run's."""
    return name in BOOKKEEPING or name.startswith(f".{ENV}.")


def _write_env(path: Path) -> None:
    """``env.json``, atomically; not one of the run's durable writes (no fsync, not counted by the
    kill-point tests): it describes the run, it is not a result."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{ENV}.", suffix=".tmp", dir=path)
        with os.fdopen(fd, "w") as f:
            f.write(dumps(envinfo.collect(), indent=2) + "\n")
        os.replace(tmp, path / ENV)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise GenasError(f"cannot write {path / ENV}: {exc.strerror or exc}") from None
        raise


def _header() -> str:
    env = envinfo.collect()
    argv = " ".join(env["argv"])
    git = f"{str(env['git_commit'])[:12]}{' (modified)' if env['git_dirty'] else ''}"
    return (f"{env['time']} pid {os.getpid()}: {argv}  (genas {env['genas']}, git {git}, "
            f"torch {env['torch']}, Python {env['python']}, device {env['device']}, threads {env['threads']})")


def _begin(folder: "RunFolder", started: bool) -> None:
    """The bookkeeping of a folder opened for a run, once per command: ``env.json`` for a fresh run
    (compared, for a resumed one), and ``genas.log``."""
    key = folder._key()
    if key in _OPENED or not folder._enabled or os.environ.get("RANK", "0") != "0":
        return
    entry = _OPENED[key] = dict(path=folder.path, marker=folder.marker, env_written=False)
    if started:
        logs.attach(folder.path, _header)  # first, so that the warning is in the log too
        if (folder.path / ENV).exists():
            try:
                saved = load_json(folder.path / ENV)
            except GenasError:
                saved = {}
            diffs = envinfo.differences(saved, envinfo.collect())
            if diffs:
                log.warning("%s was started with other software (%s); a resumed run is bitwise equal to an "
                            "uninterrupted one only with the same versions", folder.path, "; ".join(diffs))
    else:
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GenasError(f"cannot create {folder.path}: {exc.strerror or exc}") from None
        if not (folder.path / ENV).exists():  # another tool's env.json: the emptiness check refuses the folder,
            _write_env(folder.path)           # and what it holds is never replaced or removed
            entry["env_written"] = True
        logs.attach(folder.path, _header)


def _end(key: Path) -> None:
    """Stop a folder's bookkeeping; if its run never started (no marker), remove what it added."""
    entry = _OPENED.pop(key, None)
    if entry is None:
        return
    created = logs.detach(entry["path"])
    if not (entry["path"] / entry["marker"]).exists():
        if entry["env_written"]:
            (entry["path"] / ENV).unlink(missing_ok=True)
        if created:
            (entry["path"] / LOG_FILE).unlink(missing_ok=True)


def record_env(path: str | Path) -> None:
    """``env.json`` in an output folder that is not a run folder (export, calibrate, correlate, outcome)."""
    _write_env(Path(path))


def release_all() -> None:
    """End the bookkeeping of every folder still open (the command line calls it after a command,
    for folders opened without a lock, e.g. the shared bench folder)."""
    for key in list(_OPENED):
        _end(key)


class RunFolder:
    """``path`` holds one ``what`` (e.g. "supernet run"); ``marker`` is the file whose presence
    says the folder holds such a run (its config or state).

    ``with folder.locked():`` holds an exclusive lock (``.genas.lock``: host and pid) for the
    run's whole life, so a second process on the same folder is refused before it writes
    anything; a lock left by a dead process on this host is taken over. A folder the lock itself
    had to create is removed again if the run leaves it empty (e.g. it failed validation).
    """

    def __init__(self, path: str | Path, what: str, marker: str = "config.json"):
        self.path = Path(path)
        self.what = what
        self.marker = marker
        self._created = False
        self._enabled = True

    # --- lock ----------------------------------------------------------------------------------
    def _key(self) -> Path:
        return self.path.resolve()

    def lock(self) -> None:
        key = self._key()
        if key in _HELD:
            _HELD[key] += 1
            return
        if self.path.exists() and not self.path.is_dir():
            raise GenasError(f"{self.path} exists and is not a folder; choose another output folder")
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GenasError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        acquire(self.path / LOCK, self.path)
        _HELD[key] = 1

    def unlock(self) -> None:
        key = self._key()
        if key not in _HELD:
            return
        _HELD[key] -= 1
        if _HELD[key]:
            return
        del _HELD[key]
        (self.path / LOCK).unlink(missing_ok=True)
        _end(key)
        if self._created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def locked(self, enabled: bool = True) -> "RunFolder":
        """``with folder.locked(ctx.is_main):`` -- only the writing rank locks."""
        self._enabled = enabled
        return self

    def __enter__(self) -> "RunFolder":
        if self._enabled:
            self.lock()
        return self

    def __exit__(self, *exc) -> None:
        if self._enabled:
            self.unlock()

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def started(self) -> bool:
        return (self.path / self.marker).exists()

    def open(self, resume: bool, missing_ok: bool = False) -> bool:
        """Check the folder against ``resume``; return whether earlier work is continued.

        ``missing_ok``: ``--resume`` on a folder that holds no run yet starts it (a run killed
        before its first durable write has nothing to lose); otherwise that is an error.
        """
        if self.path.exists() and not self.path.is_dir():
            raise GenasError(f"{self.path} exists and is not a folder; choose another output folder")
        if self.started:
            if not resume:
                raise GenasError(f"{self.path} already holds a {self.what}; pass --resume to continue it "
                                 f"or choose another output folder")
            _begin(self, started=True)
            return True
        if resume and not missing_ok:
            raise GenasError(f"cannot resume: {self.path} holds no {self.what} (no {self.marker}); "
                             f"start a new one without --resume")
        _begin(self, started=False)
        return False

    def require_empty(self) -> None:
        """A fresh run may not mix its files with someone else's."""
        if self.path.is_dir() and any(not _bookkeeping(p.name) for p in self.path.iterdir()):
            raise GenasError(f"{self.path} exists and is not an empty folder; choose another output folder "
                             f"(or pass --resume to continue a {self.what})")

    def saved(self, name: str | None = None) -> dict:
        return load_json(self.path / (name or self.marker))

    def check(self, wanted: Mapping[str, Any], name: str | None = None, may_change: Iterable[str] = (),
              defaults: Mapping[str, Any] | None = None) -> dict:
        """The saved config; a one-line error naming the first key that differs from ``wanted``
        (``defaults``: of keys added since the folder was made, see :func:`genas.options.defaults`)."""
        saved = self.saved(name)
        check_resume(saved, wanted, self.path, may_change, defaults)
        return saved

    def save(self, obj: Any, name: str | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        save_json(obj, self.path / (name or self.marker))

    def trim_log(self, name: str, keep: Callable[[dict], bool]) -> None:
        """Drop log lines of work that the last checkpoint does not contain (it is redone)."""
        write_jsonl([r for r in read_jsonl(self.path / name) if keep(r)], self.path / name)

    def log(self, name: str) -> list[dict]:
        return read_jsonl(self.path / name)


__all__ = ["BOOKKEEPING", "ENV", "LOCK", "LOG_FILE", "FileLock", "RunFolder", "check_new_output", "claim_file",
           "record_env", "release_all"]
