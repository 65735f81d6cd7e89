"""Assemble BENCHMARKS.md from the result files the benchmark scripts write.

Each ``benchmarks/results/<name>.md`` holds one measured table with the command that
produced it; this script only concatenates them in a fixed order under one header.

    python benchmarks/assemble.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
ORDER = ["main_job", "tangent_forward", "table1", "train_epoch", "dp_step", "table3", "shards", "mia", "whitebox",
         "fdp_tightness"]
HEADER = """# Benchmarks

Every figure below was measured by the command printed with it, on this project's machines
(2 CPU cores, no GPU, shared with other jobs: absolute seconds are noisy, ratios within one
run are what count). Rows that need a GPU say "not measured (no GPU)". Regenerate a section by
re-running its command, then `python benchmarks/assemble.py`.
"""


def main() -> None:
    results = ROOT / "results"
    files = {p.stem: p for p in results.glob("*.md") if not p.stem.endswith("_reading")}  # readings are inlined
    ordered = [files.pop(name) for name in ORDER if name in files] + [files[k] for k in sorted(files)]
    text = HEADER + "\n" + "\n\n".join(_demote(p.read_text().strip()) for p in ordered) + "\n"
    (ROOT.parent / "BENCHMARKS.md").write_text(text)
    print(f"BENCHMARKS.md: {len(ordered)} sections")


def _demote(markdown: str) -> str:
    """Each result file's headings go one level down under the BENCHMARKS.md title."""
    out = []
    for line in markdown.splitlines():
        out.append("#" + line if line.startswith("#") else line)
    return "\n".join(out)


if __name__ == "__main__":
    main()
