"""The messages-file reader: what the external process wrote before the session closed is
always read, including when it lands between a read that found the end of the file and the
check for the end of the session (the race that lost a fast process's every message)."""

from pathlib import Path

from dagster._utils import tail_file
from dagster_spotlake.pipes.file_reader import tail_lines

LINES = ['{"method": "opened"}\n', '{"method": "closed"}\n']


def writes_then_closes(path: Path):
    """A session-closed check that, the first time it is asked, lets the process write all its
    lines and exit, and the session close: the worst moment for the reader."""

    def closed() -> bool:
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(LINES)
        return True

    return closed


def test_lines_written_just_before_the_close_are_read(tmp_path: Path) -> None:
    path = tmp_path / "messages"
    path.write_text("")
    assert list(tail_lines(str(path), writes_then_closes(path), poll=0)) == LINES


def test_dagsters_own_tail_loses_them_which_is_why_this_reader_exists(tmp_path: Path) -> None:
    # If this starts failing, the pinned Dagster fixed its tail and our reader can go.
    path = tmp_path / "messages"
    path.write_text("")
    assert list(tail_file(str(path), writes_then_closes(path))) == []


def test_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "messages"
    path.write_text('{"method": ')
    calls = 0

    def closed() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            with open(path, "a", encoding="utf-8") as f:
                f.write('"closed"}\n')
        return calls >= 2

    assert list(tail_lines(str(path), closed, poll=0)) == ['{"method": "closed"}\n']
    assert calls == 2


def test_lines_are_read_while_the_session_is_open(tmp_path: Path) -> None:
    path = tmp_path / "messages"
    path.write_text(LINES[0])
    seen: list[str] = []
    reader = tail_lines(str(path), lambda: bool(seen), poll=0)
    seen.append(next(reader))
    assert seen == [LINES[0]]
    assert list(reader) == []
