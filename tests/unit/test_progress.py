"""Progress bars: whole lines, throttled, in a log; tqdm's own on a terminal."""
import io

from tracer import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_few_whole_lines_however_many_updates():
    log = io.StringIO()
    for _ in progress.bar(range(100_000), stream=log, desc="epoch"):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert 1 <= len(lines) <= 3, lines
    assert lines[-1].startswith("epoch") and "100000/100000" in lines[-1]


def test_postfix_updates_wait_for_the_next_timed_line():
    log = io.StringIO()
    bar = progress.bar(range(1000), stream=log, desc="epoch")
    for i in bar:
        bar.set_postfix(loss=f"{i:.4f}")
        bar.set_description(f"epoch {i}")
    lines = log.getvalue().splitlines()
    assert 1 <= len(lines) <= 3, lines


def test_a_log_line_at_most_every_interval(monkeypatch):
    clock = iter(range(0, 10_000, 1))   # one second per tqdm clock read
    monkeypatch.setattr("tqdm.std.time", lambda: next(clock))
    log = io.StringIO()
    for _ in progress.bar(range(300), stream=log):
        pass
    lines = log.getvalue().splitlines()
    # tqdm reads the clock about twice per update: 300 updates span ~600 s of this clock
    assert len(lines) <= 600 / progress.LOG_INTERVAL + 3, len(lines)
    assert len(lines) >= 10


def test_a_terminal_keeps_tqdm_redrawing_in_place():
    term = Terminal()
    for _ in progress.bar(range(10), stream=term, mininterval=0):
        pass
    assert "\r" in term.getvalue()


def test_disabled_bar_writes_nothing():
    log = io.StringIO()
    for _ in progress.bar(range(10), stream=log, disable=True):
        pass
    assert log.getvalue() == ""
