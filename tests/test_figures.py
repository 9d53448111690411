"""Every figure in the README, docs/ and the reports' index has a report line behind it, named where it is quoted.

A figure is a number with a unit (%, x, ms, s, MB, req/s, ...) anywhere in the prose, or a numeric table cell.
It is sourced when a report file that its paragraph, list item or table row (or the table's caption) names
holds the same number, up to the rounding of the digits written (99.50% also matches 0.995). Code spans and
code blocks are not figures. README.md and docs/ may quote only *current* reports: ones naming a git revision
and the checksums (or the run) of the models in exported/manifest.json, or measuring no model at all.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from mnistserve.contracts import ARCHITECTURES

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "exported" / "manifest.json"
INDEX = REPO / "reports" / "README.md"  # hand-written: an index of the reports, never a source itself
USER_DOCS = ("README.md", "docs/*.md")  # may quote current reports only
DOCS = (*USER_DOCS, "reports/README.md")
SOURCE_SUFFIXES = {".md", ".json", ".txt", ".log"}

# Figures that are not measurements: limits, settings and definitions that code or a file states. Each is
# allowed only where its scope also says what it is: figure -> (a pattern the scope must match, where it is set).
ALLOWED = {
    "2 MiB": ("MAX_BODY_BYTES", "the body limit's default, mnistserve/settings.py"),
    "20 MB": ("git", "the size above which an export is not shipped in git, training/export.py"),
    "70%": ("uncertain|not sure", "serving.store.UNCERTAIN_BELOW"),
    "80%": (r"wrong\s+answers", "issue 20's goal for the share of wrong answers the unsure flag catches"),
    "10%": (r"right\s+ones", "issue 20's goal for the share of right answers the unsure flag may flag"),
    "90%": (r"wrong\s+answers", "the share of dev's wrong answers the unsure threshold aims at, training/export.py"),
    "8%": (r"right\s+ones", "the share of dev's right answers the unsure threshold may flag, training/export.py"),
    "0.5 pt": ("default_rule", "the default-model rule's margin, training/export.py"),
    "16 kB": ("HAProxy", "HAProxy's buffer, deploy/swarm/haproxy.cfg"),
    "30 s": ("HAProxy", "HAProxy's answer timeout and the stack's stop grace period, deploy/swarm/"),
    "5 s": ("preStop", "the preStop pause, deploy/k8s/deployment.yaml"),
}
# Figures worked out from a report's numbers: figure -> (reports, one expression per number of the figure).
DERIVED = {
    "2.7x": (("reports/serving/serving.md",), ("450.1 / 163.8",)),
    "1.44-1.45x": (
        ("reports/serving/serving-workers-1.md", "reports/serving/serving-workers-2.md"),
        ("506.9 / 352.4", "487.5 / 336.5"),
    ),
}
# Reports that measure no model, so they need no model checksums to be current.
# benchmarks.preprocess times the preprocessing alone: its report, and every earlier run kept beside it.
MODEL_FREE_TIMINGS = ("reports/preprocess/preprocess.*", "reports/preprocess/*/preprocess.*")
MODEL_FREE = {
    "reports/preprocess/parity.md": "compares two revisions' preprocessing",
    "reports/serving/floor.md": "serves a handler that does nothing",
    "reports/serving/floor.json": "serves a handler that does nothing",
}

NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
UNITS = r"requests/s|images/s|req/s|requests|MiB|GiB|MB|GB|kB|min|ms|pt"  # and " s", spaced: not the 7s
LIST = rf"(?:{NUM})(?:\s?[-–/]\s?(?:{NUM}))*"  # 7.2, 1.6-1.9, 114.4 / 138.1 / 136.2
FIGURE = re.compile(rf"(?<![\w.])({LIST})(?:\s?(?:{UNITS})|\ss|%|x)(?![\w/])")
CELL = re.compile(rf"[~≈<>≤≥=+\-\s]*({LIST})(?:\s?(?:{UNITS})|\ss|%|x)?")
REPORT_NUMBER = re.compile(r"(?<![\w.])-?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:e-?\d+)?)(?![\d])")
PATH = re.compile(r"\]\(([^)\s#]+)|`([^`\s]+)`|(?<![\w/.])((?:reports|exported)/[\w./-]*\w/?)")
GIT = re.compile(r"git(?:[ _]revision)?\W{1,4}[0-9a-f]{7,40}")
MODEL_SHA = re.compile(rf"\b({'|'.join(ARCHITECTURES)})\W{{1,6}}(?:\w+\.)?([0-9a-f]{{12}})")


def scopes(text: str) -> list[tuple[int, str, str, bool]]:
    """(line, text, text whose paths count, in the settings table) per paragraph, list item, heading, table row."""
    out, block, start, caption, fenced, settings = [], [], 0, "", False, False

    def flush() -> None:
        nonlocal block, caption
        if block and not all(line.startswith("    ") for line in block):  # an indented block is code
            out.append((start, "\n".join(block), "\n".join(block), settings))
            caption = "\n".join(block)
        block = []

    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```") or fenced:
            fenced ^= line.startswith("```")
            flush()
        elif line.startswith("<!-- settings:"):
            flush()
            settings = line.startswith("<!-- settings:begin")
        elif line.startswith("|"):
            flush()
            if not re.fullmatch(r"\|[\s|:-]+\|", line):  # not the header's separator
                out.append((number, line, caption + "\n" + line, settings))
        elif line.startswith("#"):
            flush()
            out.append((number, line, line, settings))  # a heading is a scope of its own and no table's caption
            caption = ""
        elif not line.strip() or re.match(r"\s*(?:[-*]|\d+\.) ", line):
            flush()  # a blank line or a new list item ends the scope
            if line.strip():
                block, start = [line], number
        else:
            block, start = block + [line], start if block else number
    flush()
    return out


def figures(scope: str, settings: bool) -> list[str]:
    """The figures of one scope, as written (code spans left out)."""
    prose = re.sub(r"`[^`]*`", " ", scope)
    found = [m.group(0) for m in FIGURE.finditer(prose)]
    if prose.startswith("|") and not settings:  # numeric table cells; the settings table's defaults are code's
        cells = [c.strip().strip("*") for c in prose.strip().strip("|").split("|")]
        found += [c for c in cells if CELL.fullmatch(c) and not FIGURE.search(c)]
    return found


def cited(scope: str, doc: Path) -> set[Path]:
    """Report files a scope names: links, code spans or bare paths, resolved from the doc's folder or the root."""
    files = set()
    for match in PATH.finditer(scope):
        name = next(g for g in match.groups() if g)
        for base in (doc.parent, REPO):
            path = (base / name).resolve()
            if path.exists() and path.is_relative_to(REPO / "reports"):
                files |= {p for p in ([path] if path.is_file() else path.rglob("*")) if p.suffix in SOURCE_SUFFIXES}
                break
            if path == MANIFEST:
                files.add(path)
                break
    return files - {INDEX}


@cache
def numbers(path: Path) -> tuple[Decimal, ...]:
    """Every number a report file holds (JSON values at full precision)."""
    text = path.read_text(errors="replace")
    found = [m.group(1).replace(",", "") for m in REPORT_NUMBER.finditer(text)]
    if path.suffix == ".json":
        stack = [json.loads(text)]
        while stack:
            value = stack.pop()
            if isinstance(value, dict | list):
                stack += list(value.values() if isinstance(value, dict) else value)
            elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                found.append(repr(value))
    return tuple(Decimal(n) for n in found)


@cache
def current(path: Path) -> bool:
    """Names a git revision and the models of exported/manifest.json (their checksums or their run)."""
    if path == MANIFEST:
        return True
    manifest = json.loads(MANIFEST.read_text())
    shipped = {name: m["sha256"][:12] for name, m in manifest["models"].items()}
    text = "\n".join(
        p.read_text(errors="replace") for p in path.parent.glob(path.stem + ".*") if p.suffix in {".md", ".json"}
    )
    if not GIT.search(text):
        return False
    relative = path.relative_to(REPO)
    if str(relative) in MODEL_FREE or any(relative.match(p) for p in MODEL_FREE_TIMINGS):
        return True
    pairs = MODEL_SHA.findall(text)
    if any(shipped.get(name) != sha for name, sha in pairs):
        return False
    return bool(pairs) or manifest["run_id"] in text


def matches(written: str, value: Decimal, percent: bool) -> bool:
    """Whether a report's value, rounded as the figure is written, is the figure."""
    figure = Decimal(written.replace(",", ""))
    half = Decimal(5) * Decimal(10) ** (figure.as_tuple().exponent - 1)
    return abs(value - figure) <= half or (percent and abs(value * 100 - figure) <= half)


def derivation_holds(figure: str) -> bool:
    """A DERIVED figure: every operand is in its reports, every result rounds to the written number."""
    reports, expressions = DERIVED[figure]
    values = [v for r in reports for v in numbers(REPO / r)]
    written = re.findall(NUM, figure)
    for number, expression in zip(written, expressions, strict=True):
        operands = re.findall(r"\d+(?:\.\d+)?", expression)
        if not all(any(matches(o, v, False) for v in values) for o in operands):
            return False
        a, b = (Decimal(o) for o in operands)
        if not matches(number, a / b, False):
            return False
    return True


def unsourced(doc: Path, text: str | None = None) -> list[str]:
    """Every figure of a doc with no report line behind it, as 'doc:line: figure (reports looked in)'."""
    text = doc.read_text() if text is None else text
    only_current = doc != INDEX
    problems = []
    for line, scope, context, settings in scopes(text):
        sources = sorted(cited(context, doc))
        usable = [s for s in sources if current(s)] if only_current else sources
        for figure in figures(scope, settings):
            if figure in ALLOWED and re.search(ALLOWED[figure][0], scope):
                continue
            if figure in DERIVED and derivation_holds(figure):
                reports = [(REPO / r).resolve() for r in DERIVED[figure][0]]
                if reports[0] in sources and (not only_current or all(current(r) for r in reports)):
                    continue
            written = re.findall(NUM, figure)
            percent = figure.endswith("%")
            if all(any(matches(w, v, percent) for s in usable for v in numbers(s)) for w in written):
                continue
            names = [str(s.relative_to(REPO)) for s in sources]
            where = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if names[3:] else "")
            stale = " (not current)" if only_current and sources and not usable else ""
            problems.append(f"{doc.relative_to(REPO)}:{line}: {figure!r} not in {where or 'no report named'}{stale}")
    return problems


def docs() -> list[Path]:
    return sorted({p for pattern in DOCS for p in REPO.glob(pattern)})


@pytest.mark.parametrize("doc", docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_figure_has_a_report_line_behind_it(doc):
    assert unsourced(doc) == []


def test_a_planted_figure_fails_and_a_quoted_one_passes():
    readme = REPO / "README.md"
    quoted = "A direct /predict answered 450.1 req/s ([serving](reports/serving/serving.md)).\n"
    assert unsourced(readme, quoted) == []
    planted = "A direct /predict answered 131.7 req/s ([serving](reports/serving/serving.md)).\n"
    assert unsourced(readme, planted) == ["README.md:1: '131.7 req/s' not in reports/serving/serving.md"]
    assert unsourced(readme, "It answers in 3.3 ms.\n") == ["README.md:1: '3.3 ms' not in no report named"]


def test_readme_figures_come_from_current_reports_only():
    # stop 10's models, measured before the preprocessing changed: history, for reports/README.md only
    before = "The CNN read 70.78% ([before](reports/robustness/before/robustness.md)).\n"
    assert unsourced(REPO / "README.md", before) == [
        "README.md:1: '70.78%' not in reports/robustness/before/robustness.md (not current)"
    ]
    assert unsourced(INDEX, before.replace("reports/", "")) == []


def test_table_rows_take_their_sources_from_the_caption():
    caption = "From [the manifest](exported/manifest.json):\n\n| model | accuracy | temperature |\n|---|---|---|\n"
    assert unsourced(REPO / "README.md", caption + "| cnn | 99.54% | 0.944 |\n") == []
    assert unsourced(REPO / "README.md", caption + "| cnn | 99.70% | 0.944 |\n") == [
        "README.md:5: '99.70%' not in exported/manifest.json"
    ]


def test_allowed_figures_only_where_they_say_what_they_are(monkeypatch):
    readme = REPO / "README.md"
    assert unsourced(readme, "Answers under 70% are marked uncertain.\n") == []
    assert unsourced(readme, "Batching made it 70% faster.\n") == ["README.md:1: '70%' not in no report named"]
    row = "| `MNISTSERVE_WORKERS` | 2 | 2 measured 1.44-1.45x the requests/s (reports/serving/serving-workers-1.md) |\n"
    settings = f"<!-- settings:begin -->\n{row}<!-- settings:end -->\n"
    assert unsourced(readme, settings) == []
    monkeypatch.setitem(DERIVED, "1.44-1.45x", (DERIVED["1.44-1.45x"][0], ("506.9 / 300.1", "487.5 / 336.5")))
    assert unsourced(readme, settings) == [
        "README.md:2: '1.44-1.45x' not in reports/serving/serving-workers-1.md"
    ]  # 300.1 is in neither report


def test_allowed_and_derived_figures_are_still_quoted():
    text = "\n".join(p.read_text() for p in docs())
    assert [f for f in (*ALLOWED, *DERIVED) if f not in text] == []
    assert all(derivation_holds(f) for f in DERIVED)
