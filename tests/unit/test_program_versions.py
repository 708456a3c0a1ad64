"""Programs' versions remembered per program file (runtime/program_versions.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vhpc.runtime import program_versions


class Asker:
    """A program's answer, counting how often it is asked."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.asked = 0

    def __call__(self) -> str:
        self.asked += 1
        return self.answer


@pytest.fixture
def program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VHPC_STATE_ROOT", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    path = tmp_path / "mariadbd"
    path.write_text("v1")
    return path


def test_the_second_question_is_answered_from_the_cache(program: Path) -> None:
    ask = Asker("10.11.19")
    assert program_versions.remembered("mariadbd --version", str(program), ask) == "10.11.19"
    assert program_versions.remembered("mariadbd --version", str(program), ask) == "10.11.19"
    assert ask.asked == 1
    assert program_versions.cache_file().is_file()


def test_a_replaced_program_is_asked_again(program: Path) -> None:
    first = Asker("10.11.19")
    program_versions.remembered("mariadbd --version", str(program), first)
    new = program.with_name("mariadbd.new")
    new.write_text("v2, an upgrade")
    os.replace(new, program)  # what a package upgrade does
    second = Asker("11.8.3")
    assert program_versions.remembered("mariadbd --version", str(program), second) == "11.8.3"
    assert second.asked == 1


def test_questions_are_kept_apart(program: Path) -> None:
    program_versions.remembered("slurmd -V", str(program), Asker("22.05.8"))
    other = Asker("22.05.8-4+deb12u3")
    assert program_versions.remembered("dpkg-query slurmdbd", str(program),
                                       other) == "22.05.8-4+deb12u3"
    assert other.asked == 1


def test_an_empty_answer_is_not_kept(program: Path) -> None:
    ask = Asker("")
    program_versions.remembered("slurmd -V", str(program), ask)
    program_versions.remembered("slurmd -V", str(program), ask)
    assert ask.asked == 2


def test_a_broken_or_unwritable_cache_still_answers(program: Path) -> None:
    program_versions.cache_file().write_text("{not json")
    assert program_versions.remembered("slurmd -V", str(program), Asker("22.05.8")) == "22.05.8"
    program_versions.cache_file().unlink()
    program_versions.cache_file().mkdir()  # a write fails: answered, nothing raised
    ask = Asker("22.05.8")
    assert program_versions.remembered("slurmd -V", str(program), ask) == "22.05.8"
    assert ask.asked == 1


def test_a_missing_program_is_asked_without_the_cache(program: Path) -> None:
    ask = Asker("")
    assert program_versions.remembered("slurmd -V", str(program) + ".gone", ask) == ""
    assert ask.asked == 1
