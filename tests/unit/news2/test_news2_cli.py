"""Specification of the batch CLI: ``python -m news2 INPUT.csv [-o OUTPUT.csv]``."""

from __future__ import annotations

import csv
import io
import runpy
import sys
from pathlib import Path

import pytest

from news2.cli import main

HEADER = (
    "patient,respiration_rate,spo2,spo2_scale,on_oxygen,systolic_bp,pulse,consciousness,temperature"
)
ROWS = [
    # input row, (total, band, red flag, partial sum, error)
    ("p1,16,97,,false,120,70,A,37.0", ("0", "none", "false", "0", "")),
    ("p2,20.5,96,,FALSE,120,80,A,35.05", ("3", "low", "false", "3", "")),
    ("p3,12,93,2, Yes ,120,80,alert,37", ("3", "low", "false", "3", "")),
    ("p4,16,97,1,no,120,70,c,37", ("3", "low-medium", "true", "3", "")),
    ("p5,25,97,,0,120,95,V,37", ("7", "high", "true", "7", "")),
    ("p6,16,97,,,120,70,A,37", ("", "incomplete", "false", "0", "")),
    ("p7,16,95,2,,120,70,A,37", ("", "incomplete", "false", "0", "")),
    (
        "p8,abc,97,,false,120,70,A,37",
        ("", "invalid", "false", "", "respiration_rate: 'abc' is not a number"),
    ),
    (
        "p9,16,97,,maybe,120,70,A,37",
        ("", "invalid", "false", "", "on_oxygen: 'maybe' is not true or false"),
    ),
    (
        "p10,16,97,,false,120,70,A,98.6",
        ("", "invalid", "false", "", "temperature: 98.6 is outside 25–45 °C"),
    ),
    (
        "p11,16,97,,false,120,70,X,37",
        ("", "invalid", "false", "", "consciousness: 'X' is not one of A, C, V, P, U"),
    ),
    (
        "p12,16,97,3,false,120,70,A,37",
        ("", "invalid", "false", "", "spo2_scale: 3.0 is not 1 or 2"),
    ),
    (
        "p13,16,97,,false,120,70,A,nan",
        ("", "invalid", "false", "", "temperature: 'nan' is not a number"),
    ),
    ("p14, 16 ,97,,true,120, 95 , Pain ,37", ("6", "medium", "true", "6", "")),
    (
        "p15,16,97,,false,120,70,A,37,surplus",
        ("", "invalid", "false", "", "row has 10 fields, the header 9"),
    ),
    ("p16,16,97,,false,120,70,A", ("", "incomplete", "false", "0", "")),
    ("p17,16,97,,false,120,70,  ,37", ("", "incomplete", "false", "0", "")),
    (
        "p18,16,97,two,false,120,70,A,37",
        ("", "invalid", "false", "", "spo2_scale: 'two' is not a number"),
    ),
]


def write(path: Path, lines: list[str]) -> Path:
    """Write lines as a file and return its path."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read(path: Path) -> list[dict[str, str]]:
    """Read a CSV file as dictionaries."""
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_every_row_is_scored_and_extra_columns_are_kept(tmp_path: Path) -> None:
    """Each row gets its NEWS2 columns; invalid rows say why and do not stop the file."""
    source = write(tmp_path / "in.csv", [HEADER, *(row for row, _ in ROWS)])
    assert main([str(source), "-o", str(tmp_path / "out.csv")]) == 0
    output = read(tmp_path / "out.csv")
    assert [row["patient"] for row in output] == [row.split(",")[0] for row, _ in ROWS]
    news2 = ["news2_total", "news2_band", "news2_red_flag", "news2_partial_sum", "news2_error"]
    assert [tuple(row[name] for name in news2) for row in output] == [want for _, want in ROWS]
    assert list(output[0]) == [*HEADER.split(","), *news2]


def test_output_goes_to_stdout_without_o(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -o the scored CSV is written to standard output."""
    source = write(tmp_path / "in.csv", [HEADER, ROWS[1][0]])
    assert main([str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "p2,20.5,96,,FALSE,120,80,A,35.05,3,low,false,3,"


def test_standard_input_is_read_for_a_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """'-' reads the CSV from standard input; blank lines are skipped."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{HEADER}\n\n{ROWS[0][0]}\n"))
    assert main(["-"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "p1,16,97,,false,120,70,A,37.0,0,none,false,0,"
    ]


def test_the_scale_column_may_be_absent_and_headers_are_liberal(tmp_path: Path) -> None:
    """Headers match trimmed and in any case; without spo2_scale every row is on scale 1."""
    header = " Respiration_Rate ,SpO2,on_oxygen,systolic_bp,pulse,consciousness,temperature"
    source = write(tmp_path / "in.csv", [header, "16,91,false,120,70,A,37"])
    assert main([str(source), "-o", str(tmp_path / "out.csv")]) == 0
    assert read(tmp_path / "out.csv")[0]["news2_total"] == "3"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the input is empty"),
        ("respiration_rate,spo2\n16,97\n", "missing columns: on_oxygen, systolic_bp"),
    ],
)
def test_a_file_that_cannot_be_read_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    """No header or a required column missing stops with status 2 and a message."""
    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")
    assert main([str(source)]) == 2
    assert message in capsys.readouterr().err


def test_the_program_name_can_be_set_by_a_host_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """The malestrom CLI can show its own command name in usage."""
    with pytest.raises(SystemExit):
        main(["--help"], prog="malestrom news2 score")
    assert capsys.readouterr().out.startswith("usage: malestrom news2 score")


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An input that does not exist stops with status 2."""
    assert main([str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv" in capsys.readouterr().err


def test_python_dash_m_news2_runs_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m news2`` exits with the CLI's status."""
    source = write(tmp_path / "in.csv", [HEADER, ROWS[0][0]])
    monkeypatch.setattr(sys, "argv", ["news2", str(source), "-o", str(tmp_path / "out.csv")])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("news2", run_name="__main__")
    assert exited.value.code == 0
    assert read(tmp_path / "out.csv")[0]["news2_band"] == "none"
