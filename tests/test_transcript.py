"""The transcript: every byte, both directions, timestamped, escaped, secrets masked."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from atbridge.transcript import Transcript


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(secrets: tuple[str, ...] = ()) -> tuple[Transcript, io.StringIO, Clock]:
    stream = io.StringIO()
    clock = Clock()
    transcript = Transcript(stream, secrets=secrets, clock=clock, wall_clock=lambda: 0.25)
    return transcript, stream, clock


def entries(stream: io.StringIO) -> list[str]:
    return [line.split(" ", 3)[3] for line in stream.getvalue().splitlines()]


def test_both_directions_are_recorded_with_relative_time() -> None:
    transcript, stream, clock = make()
    transcript.tx(b"AT+CGSN\r\n")
    clock.now += 0.5
    transcript.rx(b"\r\n3526\r\n")
    transcript.flush()
    lines = stream.getvalue().splitlines()
    assert lines[0].split(" ")[1:] == ["+0.000", "TX", '"AT+CGSN\\r\\n"']
    assert lines[1].split(" ")[1:] == ["+0.500", "RX", '"\\r\\n3526\\r\\n"']
    assert lines[0].split(" ")[0].endswith(".250")


def test_received_bytes_are_grouped_per_line_whatever_the_chunking() -> None:
    transcript, stream, _ = make()
    for byte in b"\r\nOK\r\n\r\n+CEREG: 1\r\n":
        transcript.rx(bytes([byte]))
    transcript.flush()
    assert entries(stream) == ['"\\r\\n"', '"OK\\r\\n"', '"\\r\\n"', '"+CEREG: 1\\r\\n"']


def test_control_and_non_ascii_bytes_are_escaped() -> None:
    transcript, stream, _ = make()
    transcript.rx(b"\xff\x00\x1a\\ok\n")
    assert entries(stream) == ['"\\xff\\x00\\x1a\\\\ok\\n"']


def test_secrets_are_masked_in_both_directions_even_across_reads() -> None:
    transcript, stream, _ = make(secrets=("s3cr3tPassw0rd",))
    transcript.tx(b'AT+X="s3cr3tPassw0rd"\r\n')
    transcript.rx(b"echo s3cr3t")
    transcript.rx(b"Passw0rd end\r\n")
    transcript.note("password was s3cr3tPassw0rd")
    transcript.flush()
    text = stream.getvalue()
    assert "s3cr3t" not in text
    assert text.count("***") == 3


def test_secret_split_across_a_long_unterminated_read_is_still_masked() -> None:
    transcript, stream, _ = make(secrets=("TOPSECRET",))
    transcript.rx(b"x" * 600 + b"TOPSE")
    transcript.rx(b"CRET" + b"y" * 10)
    transcript.flush()
    assert "TOPSE" not in stream.getvalue()
    assert "***" in stream.getvalue()


def test_file_sink_appends_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "modem.log"
    transcript = Transcript(path)
    transcript.tx(b"AT\r\n")
    transcript.close()
    assert 'TX "AT\\r\\n"' in path.read_text()


def test_logger_sink(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("atbridge.test.transcript")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        transcript = Transcript(logger)
        transcript.rx(b"\r\nOK\r\n")
        transcript.flush()
    assert any('RX "\\r\\nOK\\r\\n"' in record.getMessage() for record in caplog.records)
