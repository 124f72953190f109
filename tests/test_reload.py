"""Hot reload of the commands file with the real loader and Dispatcher."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from assistant.handlers import Dispatcher
from assistant.intents import load_commands
from assistant.service.reload import CommandsReloader, ReloadResult, new_static_replies

V1 = """\
language: en
intents:
  Hello:
    sentences: [hello there]
    reply: "Hi."
"""

V2 = """\
language: en
intents:
  Hello:
    sentences: [hello there]
    reply: "Hi."
  Goodbye:
    sentences: [goodbye now]
    reply: "Bye for now."
"""

BROKEN = """\
language: en
intents:
  Hello:
    sentences: [hello there]
    reply: "Hi."
  Broken:
    sentences: ["open the {door}"]
    reply: "Opening."
"""


def write(path: Path, text: str) -> None:
    """Write and move the mtime on, as an editor saving a second later would."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def commands_file(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    path = tmp_path / "commands.yaml"
    path.write_text(V1)
    return path


def settle(reloader: CommandsReloader) -> ReloadResult | None:
    """Polls until the change has been seen twice (the settle rule) and returns the result."""
    first = reloader.poll()
    assert first is None, "a change is applied only once it has settled"
    return reloader.poll()


def test_a_broken_file_keeps_the_old_intents_working(commands_file: Path) -> None:
    commands = load_commands(commands_file)
    dispatcher = Dispatcher(commands, timer_thread=False)
    results: list[ReloadResult] = []
    reloader = CommandsReloader(commands_file, commands, on_result=results.append,
                                apply=[lambda new, old: dispatcher.replace_commands(new)])
    write(commands_file, BROKEN)
    result = settle(reloader)
    assert result is not None and not result.ok
    assert re.match(rf"^{re.escape(str(commands_file))}:7:\d+: ", result.error or ""), result.error
    assert reloader.last_error == result.error
    assert reloader.current is commands
    match = reloader.current.match("hello there")
    assert match is not None and dispatcher.handle(match).reply == "Hi."
    assert results == [result]
    dispatcher.close()


def test_a_good_file_replaces_the_intents_and_clears_the_error(commands_file: Path) -> None:
    commands = load_commands(commands_file)
    dispatcher = Dispatcher(commands, timer_thread=False)
    replies: list[list[str]] = []
    reloader = CommandsReloader(commands_file, commands, apply=[
        lambda new, old: dispatcher.replace_commands(new),
        lambda new, old: replies.append(new_static_replies(new, old)),
    ])
    write(commands_file, BROKEN)
    assert not settle(reloader).ok
    write(commands_file, V2)
    result = settle(reloader)
    assert result is not None and result.ok and result.intents == 2
    assert reloader.last_error is None
    match = reloader.current.match("goodbye now")
    assert match is not None and dispatcher.handle(match).reply == "Bye for now."
    assert replies == [["Bye for now."]]  # only the new static reply needs pre-rendering
    dispatcher.close()


def test_sighup_style_reload_without_a_change_in_mtime(commands_file: Path) -> None:
    commands = load_commands(commands_file)
    reloader = CommandsReloader(commands_file, commands)
    commands_file.write_text(V2)  # same second: the poll may not see it, SIGHUP always reloads
    result = reloader.reload("SIGHUP")
    assert result.ok and result.reason == "SIGHUP"
    assert reloader.current.match("goodbye now") is not None
    assert reloader.poll() is None  # and the poll does not reload the same file again


def test_touching_without_changes_does_not_reload(commands_file: Path) -> None:
    reloader = CommandsReloader(commands_file, load_commands(commands_file))
    write(commands_file, V1)
    assert reloader.poll() is None and reloader.poll() is None


def test_a_deleted_file_is_an_error_and_its_return_reloads(commands_file: Path) -> None:
    commands = load_commands(commands_file)
    reloader = CommandsReloader(commands_file, commands)
    commands_file.unlink()
    assert reloader.poll() is None
    assert "gone" in (reloader.last_error or "")
    assert reloader.current is commands
    write(commands_file, V2)
    result = settle(reloader)
    assert result is not None and result.ok and reloader.last_error is None


def test_a_failing_apply_step_does_not_undo_the_reload(commands_file: Path, caplog) -> None:
    def prerender_fails(new, old) -> None:
        raise RuntimeError("no TTS engine")

    reloader = CommandsReloader(commands_file, load_commands(commands_file), apply=[prerender_fails])
    write(commands_file, V2)
    assert settle(reloader).ok
    assert reloader.current.match("goodbye now") is not None
    assert any("applying the reloaded commands" in r.message for r in caplog.records)


def test_polling_cost_is_one_stat(commands_file: Path, monkeypatch) -> None:
    """An unchanged file costs one stat per poll: never a read, a hash or a parse."""
    from assistant.service import reload

    reloader = CommandsReloader(commands_file, load_commands(commands_file))
    stats: list[Path] = []
    real_stat = Path.stat
    monkeypatch.setattr(Path, "stat", lambda self, **kw: stats.append(self) or real_stat(self, **kw))
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self}"))
    monkeypatch.setattr(reload, "load_commands", lambda *a, **k: pytest.fail("parsed"))
    for _ in range(1000):
        assert reloader.poll() is None
    assert stats == [commands_file] * 1000
