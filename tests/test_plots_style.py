"""The book's figure style is legible at the size the site shows it (issue 13): no font
below ``MIN_FONT_PT``, in the style and in the text the standard figures draw."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from distillkit.plots import image_grid, selection_scatter, use_style  # noqa: E402
from distillkit.plots.core import MIN_FONT_PT, STYLE  # noqa: E402


def test_every_font_in_the_style_is_at_least_the_minimum():
    sizes = {k: v for k, v in STYLE.items() if "size" in k and k != "figure.figsize"}
    assert sizes, "the style sets no font size"
    assert all(v >= MIN_FONT_PT for v in sizes.values()), sizes
    assert STYLE["figure.dpi"] >= 100


def _font_sizes(fig):
    fig.canvas.draw()
    return [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def test_the_standard_figures_draw_no_small_text():
    use_style()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 2, generator=g), torch.arange(40) % 3
    fig, axes = plt.subplots(1, 2)
    selection_scatter(x, y, [0, 1, 2], ax=axes[0], title="picks")
    image_grid(torch.rand(4, 1, 8, 8, generator=g), labels=[0, 1, 2, 3], ax=axes[1], title="images")
    sizes = _font_sizes(fig)
    plt.close(fig)
    assert sizes and min(sizes) >= MIN_FONT_PT, sizes


def test_accuracy_curve_labels_the_budgets_as_numbers():
    from distillkit.plots import accuracy_curve

    use_style()
    fig, ax = plt.subplots()
    accuracy_curve([1, 10, 50], {"random": [(0.5, 0.01), (0.8, 0.02), (0.9, 0.01)]}, ax=ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert labels == ["1", "10", "50"], labels
