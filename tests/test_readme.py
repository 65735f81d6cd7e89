"""Every command and Python block of the README runs as written (at reduced sizes).

The blocks are read from README.md itself; sizes are cut (fewer samples, epochs, canaries) by
rewriting flag values, and the main job and the audits get a config of tiny audit sizes. Nothing
else is changed: a command the README shows with a flag that does not exist, or with IDs that are
not in the data, fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from privtangent.cli.main import main

README = Path(__file__).resolve().parent.parent / "README.md"
TINY_AUDIT = """\
data: {train_limit: 200, test_limit: 200}
privacy: {epsilons: [1, 8], epochs: 10}
training: {epochs: 2}
regimes: {regimes: [fc], train_limit: 100, seeds: 2, budget_seconds: 6}
shards: {num_shards: 2, forget: 10}
audit: {population: 64, shadows: 3, canaries: 16, whitebox_canaries: 1000}
"""
SMALL = {"--data-limit": "200", "--near-limit": "100", "--epochs": "1", "--wb-canaries": "1000", "--ic-canaries": "16"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def commands() -> list[list[str]]:
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("privtangent "):
                out.append(shlex.split(line)[1:])
    return out


def reduced(argv: list[str], tiny: Path) -> list[str]:
    argv = [SMALL.get(argv[i - 1], a) if i else a for i, a in enumerate(argv)]
    if argv[0] == "audit" and "--config" not in argv and (len(argv) < 2 or argv[1].startswith("--")):
        argv += ["--config", str(tiny), "--no-pdf"]
    if argv[0] == "compare-regimes":  # one cell per kind on a small slice of one task
        argv += ["--data", "digits", "--data-limit", "64", "--test-limit", "64", "--regimes", "fc", "--epsilons", "8",
                 "--seeds", "0", "--epochs", "5", "--no-tune", "--quiet"]
    if "--input-canaries" in argv:  # a few canaries, cached in the test's folder
        argv += ["--ic-probes", "50", "--ic-rank", "8", "--ic-data-limit", "100", "--ic-cache", str(tiny.parent / "ic")]
    return argv


def test_readme_commands_and_python_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY_AUDIT)
    cmds = commands()
    assert len(cmds) >= 12, "the README's commands were not found"
    for argv in cmds:
        argv = reduced(argv, tiny)
        status = main(argv)
        err = capsys.readouterr().err
        allowed = (0, 1) if argv[0] == "audit" else (0,)  # an audit may find a failing check; never bad input
        assert status in allowed, f"`privtangent {' '.join(argv)}` exited {status}: {err[-2000:]}"
    for code in blocks("python"):
        exec(compile(code, str(README), "exec"), {})  # noqa: S102 - the README's own example


@pytest.mark.parametrize("argv", [["forget", "--help"], ["audit", "unlearning", "--help"], ["train", "--help"]])
def test_readme_flags_exist(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
