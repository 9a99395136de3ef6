"""The part pages' schematics (chapters/schematics/*.svg) are made by tools/schematics.py:
the committed files are exactly what it writes, every text is at least 14 px in the SVG's
own units, and each SVG scales with its viewBox."""

import importlib.util
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("schematics", ROOT / "tools" / "schematics.py")
schematics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(schematics)
RENDERED = schematics.render_all()
NS = "{http://www.w3.org/2000/svg}"


def test_one_schematic_per_part_and_each_page_shows_its_own():
    assert set(RENDERED) == {"coresets.svg", "distillation.svg", "robust.svg", "theory.svg"}
    for part, name in [("02_coresets", "coresets"), ("03_distillation", "distillation"), ("04_robust", "robust"),
                       ("05_theory", "theory")]:
        page = (ROOT / "chapters" / part / "index.md").read_text(encoding="utf-8")
        assert f"../schematics/{name}.svg" in page, part


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_committed_svg_is_what_the_tool_writes(name):
    committed = (ROOT / "chapters" / "schematics" / name).read_text(encoding="utf-8")
    assert committed == RENDERED[name], f"{name} is out of date: run python tools/schematics.py"
    assert schematics.render_all()[name] == RENDERED[name], "two runs gave different bytes"


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_svg_scales_and_its_text_is_legible(name):
    root = ET.fromstring(RENDERED[name])
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {width:g} {height:g}"
    texts = root.iter(f"{NS}text")
    sizes = [float(t.get("font-size")) for t in texts]
    assert sizes and min(sizes) >= 14
    # shown at no less than 600 px (tools/custom.css, figure.schematic), the smallest text stays above 11 px
    assert min(sizes) * 600 / width >= 11
    assert not re.search(r"<text[^>]*>\s*</text>", RENDERED[name]), "an empty text element"


def test_the_helper_refuses_small_text():
    svg = schematics.Svg(100, "t")
    with pytest.raises(AssertionError):
        svg.text(0, 0, "tiny", size=10)
