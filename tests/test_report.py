"""The HTML design report: every structure's picture and numbers, the provenance, the model card's accuracy line."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from app_helpers import small_structure

from vaereg_core.inverse.feasibility import assess
from vaereg_core.inverse.targets import parse_target
from vaereg_core.reports import figures
from vaereg_core.reports.design_report import DesignReport, ReportEntry, accuracy_line, report_html, write_report


def sample_report() -> DesignReport:
    target = parse_target({"C11": 30.0, "C22": 28.0}, ("C11", "C22", "C33"))
    entries = [
        ReportEntry("d1", "verified design", small_structure(12, seed=1), {"C11": (29.5, 1.2), "C22": (27.0, 1.1), "C33": (31.0, 1.5)},
                    {"C11": 30.3, "C22": 27.72, "C33": 30.0}, ["verified by the solver (tol 0.0001)"]),
        ReportEntry("k1", "mixture candidate", small_structure(12, seed=2), {"C11": (33.0, 2.0), "C22": (26.0, 2.0), "C33": (30.0, 2.0)}),
        ReportEntry("run 1 best", "annealing run", small_structure(12, seed=3), {"C11": (30.1, float("nan"))}, {"C11": 31.5}),
    ]
    provenance = {"model": "tiny.pt (sha256 0123456789ab)", "validations": "FFT solver, tol 0.0001"}
    return DesignReport("Design report", target, assess(target), entries, provenance, "ensemble — C11 3.97 (model-card.md)")


def sections(text: str) -> dict[str, str]:
    return dict(re.findall(r"<section class='entry' id='([^']+)'>(.*?)</section>", text, flags=re.S))


def pngs(body: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", body)]


def test_the_report_holds_every_structure_with_its_picture_and_numbers(tmp_path):
    path = write_report(tmp_path / "report.html", sample_report())
    text = path.read_text()
    found = sections(text)
    assert list(found) == ["d1", "k1", "run-1-best"]
    for body in found.values():
        (png,) = pngs(body)
        from PIL import Image

        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert image.shape[0] > 100 and len(np.unique(image.reshape(-1, 3), axis=0)) > 20  # a drawn picture, not a blank
    d1 = found["d1"]
    assert "29.5 ± 1.2" in d1 and "30.30" in d1 and "+1.0 %" in d1 and "-1.0 %" in d1 and "free" in d1  # C33 is free
    assert "mean |error| by the solver 1.00 %" in d1 and "tol 0.0001" in d1
    assert "not solved by the solver" in found["k1"] and "+10.0 % (model)" in found["k1"]
    assert "30.1<" in found["run-1-best"] and "+5.0 %" in found["run-1-best"]
    assert "tiny.pt (sha256 0123456789ab)" in text and "ensemble — C11 3.97" in text
    assert "Feasibility" in text and "<script" not in text and "http" not in text.split("</style>")[1]


def test_report_text_is_escaped():
    report = sample_report()
    report.entries[0].label = "<b>x</b>"
    assert "<b>x</b>" not in report_html(report) and "&lt;b&gt;x&lt;/b&gt;" in report_html(report)


def test_pictures_fall_back_to_slices_when_3d_cannot_render(monkeypatch):
    def broken(voxels):
        raise RuntimeError("no OpenGL")

    monkeypatch.setattr(figures, "render_3d", broken)
    png, what = figures.structure_png(small_structure(12))
    assert what.startswith("mid-plane slices") and png.startswith(b"\x89PNG")


def test_an_existing_report_is_kept_unless_overwrite(tmp_path):
    from vaereg_core.voxel_io import VoxelFileError

    path = tmp_path / "report.html"
    path.write_text("mine")
    with pytest.raises(VoxelFileError, match="file exists"):
        write_report(path, sample_report())
    assert path.read_text() == "mine"
    write_report(path, sample_report(), overwrite=True)
    assert "d1" in path.read_text()


def test_the_accuracy_line_comes_from_the_model_card(tmp_path):
    card = tmp_path / "model-card.md"
    card.write_text(
        "# Card\n\n## Forward accuracy\n\n| model | C11 | C22 |\n|---|---|---|\n"
        "| VAE-Reg (`m.pt`) | 4.9 | 5.3 |\n| **ensemble (now the default)** | **3.97** | **4.12** |\n"
    )
    assert accuracy_line("m.pt", False, card).startswith("VAE-Reg (`m.pt`) — C11 4.9, C22 5.3 (model-card.md: Forward accuracy")
    assert accuracy_line("m.pt", True, card).startswith("ensemble (now the default) — C11 3.97, C22 4.12")
    assert "no accuracy row for other.pt" in accuracy_line("other.pt", False, card)
    assert "No model card" in accuracy_line("m.pt", False, tmp_path / "missing.md")


def test_the_shipped_model_card_has_the_ensemble_row():
    from vaereg_core.reports.design_report import MODEL_CARD

    if not Path(MODEL_CARD).is_file():
        pytest.skip("no docs/ in this installation")
    line = accuracy_line("elastic-6-gm.pt", True, MODEL_CARD)
    assert "C11 3.81" in line and "C23 4.49" in line


def test_vaereg_design_report_holds_every_design(tmp_path, capsys):
    pytest.importorskip("vaereg_core.model.inference")
    from inverse_helpers import save_tiny_model

    from vaereg_core.cli import main

    model_file = save_tiny_model(tmp_path / "tiny.pt", components=2, properties=("C11",))
    report = tmp_path / "reports" / "design.html"
    code = main(["design", "--model", str(model_file), "--target", "C11=30", "--out", str(tmp_path / "out"), "--seconds", "10",
                 "--alternatives", "2", "--device", "cpu", "--quiet", "--report", str(report)])
    assert code == 0 and f"report: {report}" in capsys.readouterr().out
    text = report.read_text()
    record = __import__("json").loads((tmp_path / "out" / "design.json").read_text())
    found = sections(text)
    assert list(found) == [f"d{rank}" for rank in range(1, len(record["designs"]) + 1)]
    for body, design in zip(found.values(), record["designs"]):
        assert len(pngs(body)) == 1 and f"{design['verified_GPa']['C11']:.2f}" in body
    assert "tiny.pt (sha256 " in text and "vaereg design --target C11=30" in text and "Feasibility" in text
    assert "no accuracy row for tiny.pt" in text
    # An existing report is refused before the run, like the designs.
    assert main(["design", "--model", str(model_file), "--target", "C11=30", "--out", str(tmp_path / "o2"), "--quiet", "--report", str(report)]) == 2
    assert "design.html: file exists" in capsys.readouterr().err
