"""The transcript: every byte, both directions, timestamped, escaped, secrets masked."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- masking by position (issue 12, defect 7) -------------------------------------------


def _connect(password: str, **kw: object) -> bytes:
    from atbridge.credentials import MqttCredentials
    from atbridge.mqtt.codec import encode

    credentials = MqttCredentials.plain(
        client_id="cid", host="h", port=1, username="device", password=password
    )
    return encode(credentials.connect_packet(**kw))  # type: ignore[arg-type]


def test_mask_spans_replaces_each_range_and_merges_touching_ones() -> None:
    from atbridge.transcript import mask_spans

    assert mask_spans(b"abcdefgh", ((1, 3), (3, 5), (7, 20))) == b"a***fg***"
    assert mask_spans(b"abc", ()) == b"abc"


def test_connect_spans_cover_exactly_the_password_in_3_1_1_and_5() -> None:
    from atbridge.mqtt.wire import ProtocolVersion
    from atbridge.transcript import connect_secret_spans

    secret = 'p+++w"\r\n,'
    for protocol in (ProtocolVersion.MQTT_3_1_1, ProtocolVersion.MQTT_5_0):
        packet = _connect(secret, protocol=protocol)
        ((start, end),) = connect_secret_spans(packet)
        assert packet[start:end] == secret.encode() and end == len(packet)
    # The user name too, when it is a registered secret.
    packet = _connect(secret)
    assert len(connect_secret_spans(packet, secrets=(b"device",))) == 2


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(min_size=1, max_size=300).filter(lambda p: "\x00" not in p),
    cuts=st.lists(st.integers(0, 400), max_size=12),
)
def test_outgoing_secrets_mask_the_password_however_the_stream_is_chunked(
    password: str, cuts: list[int]
) -> None:
    from atbridge.transcript import OutgoingSecrets, mask_spans

    before, after = b"\xc0\x00", b"\x30\x05\x00\x01tab\xe0\x00"  # PINGREQ, PUBLISH, DISCONNECT
    stream = before + _connect(password) + after
    tracker = OutgoingSecrets()
    shown = b""
    start = 0
    for cut in [*sorted({c for c in cuts if c < len(stream)}), len(stream)]:
        chunk = stream[start:cut]
        shown += mask_spans(chunk, tracker.feed(chunk))
        start = cut
    secret = password.encode()
    end = len(before) + len(_connect(password))
    start = end - len(secret)  # the password is the CONNECT's last field
    assert shown.startswith(stream[: start - 2]) and shown.endswith(stream[end:])
    middle = shown[start - 2 : len(shown) - len(stream) + end]
    # Only masks and the field's length bytes (masked too when a cut fell between them).
    length = stream[start - 2 : start]
    assert b"***" in middle
    assert middle.replace(b"***", b"") in (length, length[:1], length[1:], b"")


# -- secrets announced by what precedes them (Aliyun's registration reply) -------------------

REPLY_SECRET = "Zx9Q7rT2mK4pL8vN3bH6wY1cF5gJ0sAu"
#: The /ext/register PUBLISH as an nRF91 SLM shows it in data mode (MQTT bytes in clear,
#: TLS on the modem), between the modem's own lines.
REPLY = (
    b"\r\n#XRECV: 0,0,112\r\n\x30\x6e\x00\x0d/ext/register"
    b'{"productKey":"a1PK","deviceName":"dev-01","deviceSecret":"'
    + REPLY_SECRET.encode()
    + b'"}\r\nOK\r\n'
)


def _secret_parts(_text: str) -> list[str]:
    """Every 6-character piece of the secret: none may survive anywhere."""
    return [REPLY_SECRET[i : i + 6] for i in range(len(REPLY_SECRET) - 5)]


def test_a_device_secret_in_a_reply_is_masked_split_at_every_byte() -> None:
    for cut in range(len(REPLY) + 1):
        transcript, stream, _clock = make()
        transcript.rx(REPLY[:cut])
        transcript.rx(REPLY[cut:])
        transcript.close()
        text = stream.getvalue()
        assert not [part for part in _secret_parts(text) if part in text], cut
        assert '"deviceSecret":"***"' in text, cut
        assert "/ext/register" in text and "OK" in text  # the rest is all there


def test_a_device_secret_is_masked_across_three_reads_and_a_tx_between() -> None:
    """A TX line forces the received bytes out: what could start the key is held back."""
    step = 7
    for first in range(0, len(REPLY), step):
        for second in range(first, len(REPLY) + 1, 3):
            transcript, stream, _clock = make()
            transcript.rx(REPLY[:first])
            transcript.tx(b"AT#XRECV=0,0,64\r\n")
            transcript.rx(REPLY[first:second])
            transcript.note("waiting")
            transcript.rx(REPLY[second:])
            transcript.close()
            text = stream.getvalue()
            assert not [part for part in _secret_parts(text) if part in text], (first, second)


def test_whitespace_escapes_and_a_device_token_are_masked_too() -> None:
    transcript, stream, _clock = make()
    transcript.rx(b'{"deviceToken" :\t "tok\\"en-42", "clientId":"c1"}\r\n')
    transcript.rx(b'{"deviceSecret":\r\n')  # the value on the next line
    transcript.rx(b'  "second-line-secret"}\r\n')
    transcript.close()
    text = stream.getvalue()
    assert "tok" not in text and "en-42" not in text and "second-line-secret" not in text
    assert '"clientId":"c1"' in text


def test_a_quote_that_starts_nothing_is_held_back_and_lost_never() -> None:
    transcript, stream, _clock = make()
    transcript.rx(b'+CGDCONT: 0,"IP","')  # the last quote could start "deviceSecret"
    transcript.tx(b"AT\r\n")
    transcript.rx(b'iot.example"\r\n')
    transcript.rx(b'"dev')
    transcript.close()  # nothing can follow: what was held goes out
    assert [line.split(" ", 2)[2] for line in stream.getvalue().splitlines()] == [
        'RX "+CGDCONT: 0,"IP","',
        'TX "AT\\r\\n"',
        'RX ""iot.example"\\r\\n"',
        'RX ""dev"',
    ]


def test_notes_mask_a_device_secret_in_modem_text() -> None:
    transcript, stream, _clock = make()
    transcript.note(f'ignored \'{{"deviceSecret":"{REPLY_SECRET}"}}\': no command is waiting')
    transcript.close()
    assert REPLY_SECRET not in stream.getvalue()
    assert "deviceSecret" in stream.getvalue()
