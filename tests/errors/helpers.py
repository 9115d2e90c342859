"""What every bad-input case asserts: the exception type, that the message names the
argument (or the cause) and says how to fix it, and that it is short."""

import pytest

# A message a user reads at once: a few lines, no traceback dump.
MAX_LINES = 4
MAX_CHARS = 600


def assert_refused(call, exc, *mentions, max_lines=MAX_LINES, max_chars=MAX_CHARS):
    """Run `call()`; assert it raises `exc` whose message contains every string of
    `mentions` (the argument's name, the bad value, the fix) and is short. Returns the
    exception for further checks."""
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in mentions:
        assert word in message, f"{word!r} not in message: {message!r}"
    assert len(message.splitlines()) <= max_lines, f"message too long: {message!r}"
    assert len(message) <= max_chars, f"message too long ({len(message)}): {message!r}"
    return info.value


def case(call, exc, *mentions, id):
    """One parametrised bad-input case: `pytest.param((call, exc, mentions), id=id)`."""
    return pytest.param(call, exc, mentions, id=id)
