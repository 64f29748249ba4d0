"""What the CLI says about itself: --version, completion scripts, the man page, and a clear
error (not a traceback) when the emulator extra is missing."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from ksdelete import __version__
from ksdelete.cli import cli
from ksdelete.cli.manpage import EXIT_STATUS, escape
from ksdelete.cli.meta import version_text
from ksdelete.errors import ExitStatus

BIN = Path(sys.executable).parent
KSDELETE = str(BIN / "ksdelete")


def env_with_ksdelete_on_path(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_version_names_ksdelete_python_boto3_and_botocore() -> None:
    expected = (f"ksdelete {__version__} (Python {platform.python_version()}, "
                f"boto3 {version('boto3')}, botocore {version('botocore')})")
    assert version_text() == expected
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout == expected + "\n"


def test_version_does_not_import_boto3() -> None:
    code = ("import sys\nfrom ksdelete.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\n"
            "print('boto3' in sys.modules, 'botocore' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False False"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script(shell: str) -> None:
    proc = subprocess.run([KSDELETE, "completion", shell], capture_output=True, text=True,
                          timeout=60)
    sourced = subprocess.run([KSDELETE], capture_output=True, text=True, timeout=60,
                             env=env_with_ksdelete_on_path(_KSDELETE_COMPLETE=f"{shell}_source"))
    assert proc.returncode == 0 and proc.stdout.strip() == sourced.stdout.strip() != ""
    assert "_KSDELETE_COMPLETE" in proc.stdout


def test_completion_rejects_an_unknown_shell() -> None:
    proc = subprocess.run([KSDELETE, "completion", "tcsh"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == int(ExitStatus.USAGE)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("ksdelete sta", 1, ["status"]),
    ("ksdelete comp", 1, ["completion"]),
    ("ksdelete completion ''", 2, ["bash", "zsh", "fish"]),
    ("ksdelete cks-1 --dry", 2, ["--dry-run"]),  # a STORE first: the default command, delete
    ("ksdelete status --reg", 2, ["--region"]),
])
def test_the_bash_completion_script_completes(words: str, cword: int,
                                              expected: list[str]) -> None:
    """Source the generated script in a real bash and ask it, as bash would on TAB."""
    if shutil.which("bash") is None:  # pragma: no cover - bash is on every CI machine
        pytest.skip("no bash")
    script = (f'source <(ksdelete completion bash)\nCOMP_WORDS=({words}); COMP_CWORD={cword}\n'
              'COMPREPLY=(); _ksdelete_completion ksdelete; printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env=env_with_ksdelete_on_path())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected


def test_completion_protocol_without_the_script() -> None:
    proc = subprocess.run([KSDELETE], capture_output=True, text=True, timeout=60,
                          env=env_with_ksdelete_on_path(_KSDELETE_COMPLETE="bash_complete",
                                                        COMP_WORDS="ksdelete sta",
                                                        COMP_CWORD="1"))
    assert proc.returncode == 0 and proc.stdout.split() == ["plain,status"]


def test_man_page_covers_every_command_option_and_exit_status() -> None:
    page = CliRunner().invoke(cli, ["man"]).stdout
    assert page.startswith('.\\"') and "\n.TH KSDELETE 1 " in page
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
                    "EXAMPLES"):
        assert f"\n.SH {section}\n" in page
    for name, command in cli.commands.items():
        assert f"\n.SS ksdelete {name}\n" in page
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"\\fB{escape(opt)}\\fR" in page, (name, opt)
    assert set(EXIT_STATUS) == set(ExitStatus)
    assert "ksdelete cks\\-1234567890abcdef0 \\-\\-dry\\-run" in page  # an example, verbatim


def test_man_page_renders_without_warnings(tmp_path: Path) -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    page = tmp_path / "ksdelete.1"
    page.write_text(CliRunner().invoke(cli, ["man"]).stdout, encoding="utf-8")
    proc = subprocess.run(["groff", "-man", "-ww", "-Tutf8", str(page)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    text = re.sub(".\b", "", proc.stdout)  # grotty's overstrike bold and underline
    assert "EXIT STATUS" in text and "ksdelete completion" in text


@pytest.mark.parametrize("command", [["demo"], ["emulator", "--port", "0"]])
def test_without_the_emulator_extra_a_one_line_error(command: list[str]) -> None:
    """What a plain `pip install ksdelete` (no moto) gets from demo and emulator."""
    code = ("import sys\nsys.modules['moto'] = None  # as if moto were not installed\n"
            f"from ksdelete.cli import main\nmain({command!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == int(ExitStatus.USAGE), proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ksdelete: error: ")
    assert "pip install 'ksdelete[emulator]'" in lines[0]
