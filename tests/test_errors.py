"""``polytask.errors.first_line``: what a one-line error quotes from a library's exception."""

from __future__ import annotations

from polytask.errors import first_line


def test_first_line_keeps_only_the_first_line_of_the_message() -> None:
    assert first_line(ValueError("  bad cell 'x'\n  at line 3\ntraceback...  ")) == "bad cell 'x'"


def test_first_line_of_an_empty_message_is_the_exception_type() -> None:
    assert first_line(OSError()) == "OSError"
    assert first_line(KeyError("")) == "''"  # KeyError quotes its key: the message is not empty


def test_first_line_cuts_to_the_limit_only_when_one_is_given() -> None:
    long = RuntimeError("y" * 300 + "\nrest")
    assert first_line(long) == "y" * 300
    assert first_line(long, limit=200) == "y" * 200
