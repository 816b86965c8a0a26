"""A person-readable record of every byte between host and modem.

Each entry is one line: wall-clock time, seconds since the transcript started,
direction and the bytes with control and non-ASCII bytes escaped::

    04:51:10.123 +0.004 TX "AT+CGSN\\r\\n"
    04:51:10.131 +0.012 RX "\\r\\n352656100367872\\r\\n"
    04:51:10.131 +0.012 RX "\\r\\nOK\\r\\n"
    04:51:12.002 +1.883 -- modem rebooted ("Ready")

Received bytes are grouped per line (an entry ends at LF) so a response reads as
it came, however the serial driver chunked it. Secrets registered with
:meth:`Transcript.add_secret` are replaced by ``***`` before anything is
written, in both directions; a secret split across two reads is still masked,
because the tail that could start one is held back until the next read.

The sink is a file path, an open text stream, or a :class:`logging.Logger`
(entries at DEBUG level).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from atbridge.errors import ConfigurationError
from atbridge.text import escape_bytes

MASK = b"***"
_FLUSH_AT = 512

Sink = str | Path | TextIO | logging.Logger


class Transcript:
    """Write a timestamped, escaped, secret-masked record of modem traffic."""

    def __init__(
        self,
        sink: Sink,
        *,
        secrets: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._owned: TextIO | None = None
        self._stream: TextIO | None = None
        self._logger: logging.Logger | None = None
        if isinstance(sink, logging.Logger):
            self._logger = sink
        elif isinstance(sink, str | Path):
            try:
                self._owned = self._stream = open(sink, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot write the transcript {str(sink)!r}: {exc.strerror or exc}",
                    hint="give a transcript path in a directory that exists and is writable, "
                    "or leave out the transcript",
                ) from exc
        else:
            self._stream = sink
        self._clock = clock
        self._wall_clock = wall_clock
        self._start = clock()
        self._secrets: list[bytes] = []
        self._rx = bytearray()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | bytes) -> None:
        """Mask every occurrence of ``secret`` from now on (empty strings are ignored)."""
        value = secret.encode() if isinstance(secret, str) else bytes(secret)
        if value and value not in self._secrets:
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)

    def tx(self, data: bytes) -> None:
        """Record bytes written to the modem."""
        self._flush_rx()
        self._emit("TX", self._mask(data))

    def rx(self, data: bytes) -> None:
        """Record bytes received from the modem (grouped per line)."""
        self._rx += data
        end = self._rx.rfind(b"\n")
        if end >= 0:
            self._emit_rx(end + 1)
        if len(self._rx) >= _FLUSH_AT:
            hold = max((len(s) for s in self._secrets), default=1) - 1
            self._emit_rx(len(self._rx) - hold)

    def note(self, text: str) -> None:
        """Record an event in words (sync, reboot, timeout...)."""
        self._flush_rx()
        masked = self._mask(text.encode("utf-8", "backslashreplace")).decode("utf-8", "replace")
        self._write(f"{self._stamp()} -- {masked}")

    def flush(self) -> None:
        """Write out held-back received bytes and flush the sink."""
        self._flush_rx()
        if self._stream is not None:
            self._stream.flush()

    def close(self) -> None:
        """Flush, and close the file if the transcript opened it."""
        self.flush()
        if self._owned is not None:
            self._owned.close()
            self._owned = self._stream = None

    # -- internals -----------------------------------------------------------------

    def _flush_rx(self) -> None:
        if self._rx:
            self._emit_rx(len(self._rx))

    def _emit_rx(self, upto: int) -> None:
        if upto <= 0:
            return
        chunk = bytes(self._rx[:upto])
        del self._rx[:upto]
        self._emit("RX", self._mask(chunk))

    def _mask(self, data: bytes) -> bytes:
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data

    def _emit(self, direction: str, data: bytes) -> None:
        self._write(f'{self._stamp()} {direction} "{escape_bytes(data)}"')

    def _stamp(self) -> str:
        wall = self._wall_clock()
        clock = time.strftime("%H:%M:%S", time.localtime(wall))
        return f"{clock}.{int((wall % 1) * 1000):03d} +{self._clock() - self._start:.3f}"

    def _write(self, entry: str) -> None:
        if self._logger is not None:
            self._logger.debug("%s", entry)
        elif self._stream is not None:
            self._stream.write(entry + "\n")
