"""Logging: the ``genas`` logger, its console handler and the per-run-folder ``genas.log``.

genas logs through ``logging.getLogger("genas")`` (one INFO line per epoch and per search
generation, warnings for suspicious but usable results). As a library it installs no handler: a
program sees the lines after ``logging.basicConfig(level="INFO")``. The command line opens a
:func:`session`: a console handler on stderr (``--log-level``; warnings read ``genas: warning:
...``) that prints through ``tqdm.write`` so progress bars and log lines do not garble each other,
and a ``genas.log`` in every run folder the command opens (:func:`attach`, called by
:class:`genas.run_folder.RunFolder`), which gets every line of INFO and above whatever the console
level, each session's lines after a header naming the command and the software.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

LOGGER = "genas"
LOG_FILE = "genas.log"
LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger(LOGGER)

_state: dict = {"active": False, "console": None, "saved_level": None}
_files: dict[Path, "_RunLog"] = {}


def _plain(message: str) -> str:
    """The message without a ``genas: warning:``-style prefix (the handlers add their own)."""
    for prefix in ("genas: warning: ", "genas: error: ", "genas: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = _plain(record.getMessage())
        if record.levelno >= logging.ERROR:
            return f"genas: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"genas: warning: {text}"
        return text


class _FileFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname:<7} {_plain(record.getMessage())}"


class _Console(logging.Handler):
    """stderr as it is at each record (so a redirected or captured stderr is honoured), through
    ``tqdm.write``, which lifts any progress bar out of the way and redraws it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging must never take the run down)
            self.handleError(record)


class _RunLog(logging.FileHandler):
    """``RUN/genas.log``, opened at its first record (a command refused before any work leaves no
    file), which is preceded by ``header()``."""

    def __init__(self, path: Path, header: Callable[[], str], level: int):
        self.existed = path.exists()
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self.setLevel(level)
        self.setFormatter(_FileFormatter())
        self._header = header

    def emit(self, record: logging.LogRecord) -> None:
        if self._header is not None:
            header, self._header = self._header, None
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(f"---- {header()}\n")
        super().emit(record)


def _level(name: str | int) -> int:
    if isinstance(name, int):
        return name
    return getattr(logging, str(name).upper())


@contextlib.contextmanager
def session(level: str | int = "info") -> Iterator[None]:
    """The command line's logging for one command: console on stderr at ``level``; while it lasts,
    :func:`attach` writes a run folder's ``genas.log``. Restores the logger afterwards."""
    lvl = _level(level)
    console = _Console(level=lvl)
    console.setFormatter(_ConsoleFormatter())
    _state.update(active=True, console=console, saved_level=log.level)
    log.addHandler(console)
    log.setLevel(min(lvl, logging.INFO))
    try:
        yield
    finally:
        for path in list(_files):
            detach(path)
        log.removeHandler(console)
        log.setLevel(_state["saved_level"] or logging.NOTSET)
        _state.update(active=False, console=None, saved_level=None)


def attach(folder: Path, header: Callable[[], str]) -> bool:
    """Log into ``folder/genas.log`` until :func:`detach` (only inside a :func:`session`); returns
    whether a file handler was added."""
    folder = Path(folder).resolve()
    if not _state["active"] or folder in _files:
        return False
    console = _state["console"]
    handler = _RunLog(folder / LOG_FILE, header, min(console.level if console else logging.INFO, logging.INFO))
    _files[folder] = handler
    log.addHandler(handler)
    return True


def detach(folder: Path) -> bool:
    """Stop logging into ``folder/genas.log``; returns whether the file was created by this session."""
    handler = _files.pop(Path(folder).resolve(), None)
    if handler is None:
        return False
    log.removeHandler(handler)
    handler.close()
    return not handler.existed and Path(handler.baseFilename).exists()


__all__ = ["LEVELS", "LOGGER", "LOG_FILE", "attach", "detach", "log", "session"]
