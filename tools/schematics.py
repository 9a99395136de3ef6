"""The book's schematics, one per part, as hand-written SVG (no dependency, same bytes on
every run): what each coreset family looks at, the bilevel problem of distillation with
gradient and trajectory matching, the CVaR tail over subgroups, and the theory chapter's
two-stage pipeline.

    python tools/schematics.py            # (re)write chapters/schematics/*.svg
    python tools/schematics.py --check    # exit 1 if a committed file differs

Every text is at least MIN_FONT px in the SVG's own units, and each SVG has a viewBox, so it
scales with the column; the part pages show it at no less than 600 px (scrolling inside its
own box on a phone), where the smallest text is still above 9 px.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from xml.sax.saxutils import escape

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "chapters" / "schematics"
WIDTH = 760
MIN_FONT = 14
BLUE, ORANGE, GREEN, RED, GREY, DARK = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#8c8c8c", "#222222"
LIGHT = {"blue": "#dbe9f6", "orange": "#fde5cc", "green": "#d9f0d9", "red": "#f7d4d4", "grey": "#eeeeee"}


class Svg:
    def __init__(self, height: int, title: str):
        self.height = height
        self.parts = [f"<title>{escape(title)}</title>",
                      '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                      'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                      f'fill="{DARK}"/></marker></defs>']

    def text(self, x, y, s, size=MIN_FONT, anchor="start", weight="normal", color=DARK, italic=False):
        assert size >= MIN_FONT, (s, size)
        style = ' font-style="italic"' if italic else ""
        self.parts.append(f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" '
                          f'font-weight="{weight}" fill="{color}"{style}>{escape(s)}</text>')

    def lines(self, x, y, rows, size=MIN_FONT, anchor="start", gap=1.3, **kw):
        for i, row in enumerate(rows):
            self.text(x, y + i * size * gap, row, size=size, anchor=anchor, **kw)

    def box(self, x, y, w, h, fill=LIGHT["grey"], stroke=GREY, rx=8, dash=False):
        d = ' stroke-dasharray="6 4"' if dash else ""
        self.parts.append(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{rx}" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="1.5"{d}/>')

    def arrow(self, x1, y1, x2, y2, color=DARK, dash=False, width=1.8):
        d = ' stroke-dasharray="6 4"' if dash else ""
        self.parts.append(f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="{color}" '
                          f'stroke-width="{width}" marker-end="url(#arrow)"{d}/>')

    def path(self, d, color=DARK, width=1.8, fill="none", dash=False, arrow=False):
        extra = (' stroke-dasharray="6 4"' if dash else "") + (' marker-end="url(#arrow)"' if arrow else "")
        self.parts.append(f'<path d="{d}" stroke="{color}" stroke-width="{width}" fill="{fill}"{extra}/>')

    def dot(self, x, y, r=4.5, fill=BLUE, stroke="none"):
        self.parts.append(f'<circle cx="{x:g}" cy="{y:g}" r="{r:g}" fill="{fill}" stroke="{stroke}" stroke-width="2"/>')

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{self.height}" '
                f'viewBox="0 0 {WIDTH} {self.height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">\n'
                f'<rect width="{WIDTH}" height="{self.height}" fill="white"/>\n{body}\n</svg>\n')


def _points(n, seed, x0, y0, w, h):
    """n fixed pseudo-random points in a box (a linear congruential generator: same bytes everywhere)."""
    state, out = seed, []
    for _ in range(n):
        state = (1103515245 * state + 12345) % 2**31
        u = state / 2**31
        state = (1103515245 * state + 12345) % 2**31
        v = state / 2**31
        out.append((round(x0 + u * w, 1), round(y0 + v * h, 1)))
    return out


def coresets() -> str:
    """What each coreset family looks at, one row per family."""
    rows = [
        ("Geometry", "herding, k-center, k-means++", "where the examples lie in an embedding:", "keep points that cover or average like all of them"),
        ("Uncertainty", "least confidence, entropy, margin", "a model's predicted probabilities p(y | x):", "keep the examples it is least sure about"),
        ("Error and loss", "forgetting, EL2N, GraNd, sensitivity", "the loss or error during early training:", "keep the hard, often-forgotten examples"),
        ("Decision boundary", "DeepFool, CAL", "the distance to the decision boundary:", "keep examples close to where classes meet"),
        ("Gradients", "CRAIG, GradMatch (OMP)", "per-example gradients of the loss:", "keep a weighted few whose sum matches all"),
    ]
    top, row_h = 58, 112
    svg = Svg(top + row_h * len(rows) + 10, "What each coreset family looks at")
    svg.text(WIDTH / 2, 32, "What each family of coreset methods looks at", size=20, anchor="middle", weight="bold")
    for i, (name, methods, looks, keeps) in enumerate(rows):
        y = top + i * row_h
        svg.box(10, y, WIDTH - 20, row_h - 12, fill=LIGHT["blue"] if i % 2 == 0 else LIGHT["grey"], stroke="none")
        svg.text(24, y + 26, name, size=17, weight="bold")
        svg.text(24, y + 47, methods, size=14, italic=True)
        svg.lines(24, y + 70, [looks, keeps], size=15, gap=1.25)
        px, py = 590, y + 8                     # pictogram box 150 x 84
        svg.box(px, py, 150, 84, fill="white", stroke=GREY, rx=4)
        if i == 0:
            pts = _points(22, 7, px + 10, py + 10, 130, 64)
            for x, yy in pts:
                svg.dot(x, yy, 3.5, GREY)
            for x, yy in pts[:: 5]:
                svg.dot(x, yy, 6, "none", stroke=ORANGE)
        elif i == 1:
            for k, p in enumerate([0.38, 0.34, 0.28]):
                svg.box(px + 25 + 38 * k, py + 76 - 60 * p / 0.4, 26, 60 * p / 0.4, fill=[BLUE, ORANGE, GREEN][k],
                        stroke="none", rx=0)
            svg.path(f"M{px + 10},{py + 76} H{px + 140}", color=DARK, width=1.2)
        elif i == 2:
            svg.path(f"M{px + 12},{py + 18} C{px + 50},{py + 22} {px + 60},{py + 70} {px + 138},{py + 72}", color=BLUE, width=2.2)
            svg.path(f"M{px + 12},{py + 14} L{px + 40},{py + 30} L{px + 60},{py + 16} L{px + 85},{py + 34} "
                     f"L{px + 110},{py + 20} L{px + 138},{py + 28}", color=RED, width=2.2)
        elif i == 3:
            svg.path(f"M{px + 30},{py + 80} L{px + 120},{py + 6}", color=DARK, width=2)
            for x, yy in _points(9, 3, px + 8, py + 8, 50, 70):
                svg.dot(x, yy, 3.5, BLUE)
            for x, yy in _points(9, 5, px + 95, py + 20, 48, 58):
                svg.dot(x, yy, 3.5, ORANGE)
            svg.dot(px + 70, py + 44, 6, "none", stroke=RED)
            svg.dot(px + 82, py + 38, 6, "none", stroke=RED)
        else:
            cx, cy = px + 20, py + 70
            for dx, dy in [(30, -10), (22, -30), (40, -26)]:
                svg.arrow(cx, cy, cx + dx, cy + dy, color=GREY, width=1.5)
            svg.arrow(cx, cy, cx + 92, cy - 62, color=BLUE, width=2.4)
            svg.arrow(cx + 4, cy + 4, cx + 90, cy - 56, color=ORANGE, width=2.4, dash=True)
    return svg.render()


def distillation() -> str:
    """The bilevel problem, the gradient-matching loop and trajectory matching."""
    svg = Svg(660, "Dataset distillation: the bilevel problem, gradient matching, trajectory matching")
    svg.text(WIDTH / 2, 30, "Dataset distillation: learn the synthetic set S", size=20, anchor="middle", weight="bold")
    # (a) bilevel problem
    svg.text(20, 64, "(a) The bilevel problem", size=17, weight="bold")
    svg.box(20, 80, 150, 70, fill=LIGHT["orange"], stroke=ORANGE)
    svg.lines(95, 108, ["synthetic set S", "(ipc per class)"], size=15, anchor="middle")
    svg.arrow(170, 115, 235, 115)
    svg.box(235, 80, 260, 70, fill=LIGHT["blue"], stroke=BLUE)
    svg.lines(365, 106, ["inner: train a network on S", "θ*(S) = argmin_θ L_S(θ)"], size=14, anchor="middle")
    svg.arrow(495, 115, 550, 115)
    svg.box(550, 80, 190, 70, fill=LIGHT["green"], stroke=GREEN)
    svg.lines(645, 106, ["outer: loss on real data", "L_real(θ*(S))"], size=14, anchor="middle")
    svg.path("M645,150 V176 H95 V150", color=RED, dash=True, arrow=True)
    svg.text(370, 194, "∇_S L_real(θ*(S)): through the whole inner training (DD, unrolled)", size=14,
             anchor="middle", color=RED)
    # (b) gradient matching
    svg.text(20, 236, "(b) Gradient matching (DC, DSA): match one step at a time", size=17, weight="bold")
    svg.box(20, 252, 160, 62, fill=LIGHT["grey"])
    svg.lines(100, 278, ["a fresh network θ_t", "each outer step"], size=14, anchor="middle")
    svg.box(235, 250, 240, 30, fill=LIGHT["green"], stroke=GREEN)
    svg.text(355, 271, "real batch → ∇_θ L_real", size=15, anchor="middle")
    svg.box(235, 288, 240, 30, fill=LIGHT["orange"], stroke=ORANGE)
    svg.text(355, 309, "synthetic batch → ∇_θ L_S", size=15, anchor="middle")
    svg.arrow(180, 276, 235, 266)
    svg.arrow(180, 290, 235, 302)
    svg.box(520, 258, 220, 52, fill=LIGHT["red"], stroke=RED)
    svg.lines(630, 280, ["distance D(∇ L_real, ∇ L_S)", "per class, per layer"], size=14, anchor="middle")
    svg.arrow(475, 266, 520, 276)
    svg.arrow(475, 302, 520, 292)
    svg.path("M630,310 V340 H355 V318", color=RED, dash=True, arrow=True)
    svg.text(490, 358, "update S by −∇_S D", size=14, anchor="middle", color=RED)
    svg.path("M235,318 C200,350 120,350 100,314", color=BLUE, arrow=True)
    svg.text(20, 372, "then a few steps of θ on S (inner loop)", size=14, color=BLUE)
    # (c) trajectory matching
    svg.text(20, 414, "(c) Trajectory matching (MTT): match many steps of an expert", size=17, weight="bold")
    xs = [60 + 95 * k for k in range(7)]
    ys = [560 - 12 * k - (k * k) for k in range(7)]
    svg.path("M" + " L".join(f"{x},{y}" for x, y in zip(xs, ys)), color=GREEN, width=2.4)
    for k, (x, y) in enumerate(zip(xs, ys)):
        svg.dot(x, y, 5, GREEN)
    svg.text(xs[0] - 20, ys[0] + 28, "θ*_t", size=15, color=GREEN)
    svg.text(xs[4] - 10, ys[4] + 28, "θ*_(t+M)", size=15, color=GREEN)
    svg.text(740, ys[6] - 18, "expert trained on real data", size=14, anchor="end", color=GREEN)
    sx = [xs[0], 150, 250, xs[4] - 20]
    sy = [ys[0], 500, 478, ys[4] - 52]
    svg.path("M" + " L".join(f"{x},{y}" for x, y in zip(sx, sy)), color=ORANGE, width=2.4, dash=True)
    for x, y in zip(sx[1:], sy[1:]):
        svg.dot(x, y, 5, ORANGE)
    svg.text(60, 452, "student: N steps on S, from θ*_t", size=14, color=ORANGE)
    svg.path(f"M{sx[-1]},{sy[-1] + 6} L{xs[4]},{ys[4] - 7}", color=RED, width=2, dash=True)
    svg.text(sx[-1] + 12, (sy[-1] + ys[4]) / 2 + 4, "θ̂_(t+N)", size=15, color=ORANGE)
    svg.lines(20, 614, ["loss = ‖θ̂_(t+N) − θ*_(t+M)‖² / ‖θ*_t − θ*_(t+M)‖²,  back-propagated through the N student",
                        "steps into S (and a learned step size α); N is short, M spans several expert epochs"],
              size=14, color=RED)
    return svg.render()


def robust() -> str:
    """CVaR over subgroups: each group's tail of losses, then the mean and the max of the tails."""
    svg = Svg(440, "The CVaR tail over subgroups' losses")
    svg.text(WIDTH / 2, 30, "Group CVaR: the worst tail of each subgroup's losses", size=20, anchor="middle", weight="bold")
    groups = [("subgroup 1", [9, 14, 11, 7, 4, 2, 1, 1], BLUE), ("subgroup 2", [5, 9, 10, 9, 6, 4, 3, 2], ORANGE),
              ("subgroup 3", [2, 4, 6, 8, 9, 7, 5, 4], GREEN)]
    x0, base, bw = 30, 250, 26
    for g, (name, counts, color) in enumerate(groups):
        gx = x0 + g * 245
        svg.text(gx + 104, 70, name, size=16, anchor="middle", weight="bold", color=color)
        n_tail = 3 if g < 2 else 4
        for k, c in enumerate(counts):
            tail = k >= len(counts) - n_tail
            svg.box(gx + k * bw, base - 11 * c, bw - 3, 11 * c, fill=RED if tail else color, stroke="none", rx=0)
        svg.path(f"M{gx - 4},{base} H{gx + len(counts) * bw}", width=1.2)
        svg.text(gx + len(counts) * bw / 2, base + 22, "loss of each example →", size=14, anchor="middle")
        svg.lines(gx + 104, base + 48, [f"CVaR_α(G_{g + 1}) = mean of its", "worst 1 − α fraction (red)"], size=14,
                  anchor="middle", color=RED)
    svg.box(30, 340, 700, 84, fill=LIGHT["red"], stroke=RED)
    svg.text(380, 368, "risk(S) = mean_j CVaR_α(G_j) + max_j CVaR_α(G_j)", size=17, anchor="middle", weight="bold")
    svg.lines(380, 394, ["the distilled set S is trained to lower the worst tails, not only the average loss,",
                         "so rare subgroups are not traded away for the common ones"], size=14, anchor="middle")
    return svg.render()


def theory() -> str:
    """Two-stage training of a two-layer network, and what its distillation stores."""
    svg = Svg(420, "The theory chapter's two-stage pipeline")
    svg.text(WIDTH / 2, 30, "Two-stage training on a multi-index task, and its distillation", size=20, anchor="middle",
             weight="bold")
    svg.lines(20, 62, ["task: x ~ N(0, I_d),  y = g(Uᵀx) + noise,  U ∈ ℝ^(d×r),  r ≪ d"], size=15)
    svg.box(20, 84, 150, 80, fill=LIGHT["green"], stroke=GREEN)
    svg.lines(95, 112, ["real data", "n ≈ d² r examples", "n(d+1) numbers"], size=14, anchor="middle")
    svg.arrow(170, 124, 220, 124)
    svg.box(220, 84, 230, 80, fill=LIGHT["blue"], stroke=BLUE)
    svg.lines(335, 108, ["stage 1: one large step", "W₁ = −η ∇_W L(W₀)", "rows of W₁ → span(U)"], size=14,
              anchor="middle")
    svg.arrow(450, 124, 500, 124)
    svg.box(500, 84, 240, 80, fill=LIGHT["blue"], stroke=BLUE)
    svg.lines(620, 108, ["stage 2: new biases b,", "ridge regression for a", "f(x) = Σ_j a_j σ(w_jᵀx + b_j)"],
              size=14, anchor="middle")
    svg.text(380, 200, "distillation replaces the real data in each stage", size=16, anchor="middle", weight="bold",
             color=ORANGE)
    svg.box(220, 220, 230, 86, fill=LIGHT["orange"], stroke=ORANGE)
    svg.lines(335, 244, ["m ≈ r² distilled points", "matching the gradient at W₀", "≈ r² d numbers"], size=14,
              anchor="middle")
    svg.box(500, 220, 240, 86, fill=LIGHT["orange"], stroke=ORANGE)
    svg.lines(620, 244, ["L labels on inputs", "regenerated from a seed", "L numbers"], size=14, anchor="middle")
    svg.arrow(335, 220, 335, 168, color=ORANGE)
    svg.arrow(620, 220, 620, 168, color=ORANGE)
    svg.box(20, 330, 720, 70, fill=LIGHT["grey"])
    svg.lines(380, 358, ["stored: about r² d + L numbers instead of n(d+1) ≈ d³ r; the distilled points lie",
                         "in span(U): the set stores the learned representation, not the data"], size=14,
              anchor="middle")
    return svg.render()


SCHEMATICS = {"coresets": coresets, "distillation": distillation, "robust": robust, "theory": theory}


def render_all() -> dict[str, str]:
    return {f"{name}.svg": make() for name, make in SCHEMATICS.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    stale = []
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python tools/schematics.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
