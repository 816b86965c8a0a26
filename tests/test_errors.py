"""The one error tree: every class in atbridge.errors, exported from atbridge, one retry table."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import atbridge
from atbridge import errors
from atbridge.errors import (
    CONNACK_REFUSALS,
    AtBridgeError,
    BrokerRefused,
    ConnectRefused,
    LinkLost,
    PingTimeout,
    PublishRefused,
    StepTimeout,
    SubscribeRefused,
)


def _error_classes_defined_in(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, AtBridgeError)
        and value.__module__ == getattr(module, "__name__", "")
    }


def test_every_error_class_lives_in_errors_and_nowhere_else() -> None:
    elsewhere: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(atbridge.__path__, "atbridge."):
        if info.name == "atbridge.errors" or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        defined = _error_classes_defined_in(module)
        if defined:
            elsewhere[info.name] = defined
    assert elsewhere == {}


def test_every_error_class_is_exported_from_the_package() -> None:
    for name in _error_classes_defined_in(errors):
        assert getattr(atbridge, name) is getattr(errors, name)
        assert name in atbridge.__all__


@pytest.mark.parametrize(("code", "retryable"), [(1, False), (2, False), (3, True), (4, False)])
def test_connack_codes_of_3_1_1_say_whether_retrying_helps(code: int, retryable: bool) -> None:
    assert ConnectRefused(code, "x").retryable is retryable
    assert BrokerRefused(code, "x").retryable is retryable


def test_the_refusal_table_gives_hint_and_retry_together() -> None:
    for code, refusal in CONNACK_REFUSALS.items():
        error = ConnectRefused(code, "reason")
        assert error.hint == refusal.hint
        assert error.retryable is refusal.retryable
    assert ConnectRefused(0x80, "unspecified").retryable  # unknown codes: retried with backoff


def test_refusals_say_what_was_refused() -> None:
    assert str(ConnectRefused(5, "not authorized")).startswith(
        "the broker refused the connection: not authorized (code 5)"
    )
    message = PublishRefused(0x87, "'t': not authorized")
    assert message.message == "the broker refused the message: 't': not authorized (code 135)"
    assert not message.retryable
    subscription = SubscribeRefused(0x80, "'a/#'")
    assert subscription.message.startswith("the broker refused the subscription: 'a/#'")
    assert isinstance(message, BrokerRefused) and isinstance(subscription, BrokerRefused)


def test_a_missed_pingresp_is_a_timeout_not_a_lost_link() -> None:
    error = PingTimeout("no PINGRESP within 30 s")
    assert isinstance(error, StepTimeout)
    assert not isinstance(error, LinkLost)
