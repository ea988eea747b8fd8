"""The report's figures as a reader sees them, built by the report's own figure table (gadbench.report.figures
FIGURES) from real stored results: tests/fixtures/results/smoke-run (the output of `gadbench run --suite
smoke`, checkpoints left out), the sharegpt-smol reference, and the paper fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from gadbench.report.figures import FIGURES
from gadbench.report.load import load_results

ROOT = Path(__file__).parents[1]
SUITES = {
    "smoke-run": ROOT / "tests" / "fixtures" / "results" / "smoke-run",
    "sharegpt-smol": ROOT / "baselines" / "reference" / "sharegpt-smol",
    "paper": ROOT / "tests" / "fixtures" / "results" / "paper",
}


@pytest.fixture(scope="module")
def figures() -> dict[str, dict[str, Figure]]:
    """suite -> figure name -> the drawn Figure, for every figure each suite has data for."""
    out = {}
    for suite, path in SUITES.items():
        loaded = load_results(path)
        out[suite] = {}
        for name, _, make in FIGURES:
            fig = make(loaded)
            if isinstance(fig, Figure):
                fig.canvas.draw()
                out[suite][name] = fig
    return out


def _all(figures):
    return [(s, n, f) for s, by_name in figures.items() for n, f in by_name.items()]


def _ylabel(ax) -> str:
    return " ".join(ax.get_ylabel().split())  # wrapped labels as one line


def _axes(fig: Figure):
    return [ax for ax in fig.axes if ax.axison]


def test_no_legend_covers_an_axes_and_nothing_is_cut_off(figures):
    covered, cut = [], []
    for suite, name, fig in _all(figures):
        legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
        for legend in legends:
            box = legend.get_window_extent()
            covered += [(suite, name, ax.get_title()) for ax in _axes(fig) if box.overlaps(ax.get_window_extent())]
        texts = [*legends, *(ax.yaxis.label for ax in _axes(fig)), *(ax.xaxis.label for ax in _axes(fig))]
        for t in texts:
            if getattr(t, "get_text", lambda: "legend")() == "":
                continue
            box = t.get_window_extent()
            if box.x0 < -1 or box.y0 < -1 or box.x1 > fig.bbox.x1 + 1 or box.y1 > fig.bbox.y1 + 1:
                cut.append((suite, name, getattr(t, "get_text", lambda: "legend")(), [round(v) for v in box.extents]))
    assert not covered, f"legends over axes: {covered}"
    assert not cut, f"cut off by the figure's edge ({fig.bbox.extents}): {cut}"


def test_every_legend_entry_is_drawn(figures):
    """A method in the legend has a line (or bars, points) in some panel: SeqKD, which has no D, reward or KL,
    is drawn by its SFT loss."""
    missing = []
    for suite, name, fig in _all(figures):
        drawn = {a.get_label() for ax in fig.axes for a in [*ax.lines, *ax.patches, *ax.collections, *ax.containers]}
        drawn |= {line.get_label() for ax in fig.axes for line in ax.lines}
        for legend in fig.legends:
            missing += [(suite, name, t.get_text()) for t in legend.get_texts() if t.get_text() not in drawn
                        and not _same_colour_line(fig, legend, t.get_text())]
    assert not missing, f"legend entries without data: {missing}"
    curves = figures["smoke-run"]["training_curves"]
    assert any("SeqKD" in t.get_text() for t in curves.legends[0].get_texts())


def _same_colour_line(fig: Figure, legend, label: str) -> bool:
    """Legends built from proxy handles: the entry's colour has a line with data in some axes."""
    handle = next(h for h, t in zip(legend.legend_handles, legend.get_texts(), strict=True) if t.get_text() == label)
    colour = getattr(handle, "get_color", lambda: None)()
    return any(line.get_color() == colour and len(line.get_xdata()) > 0 for ax in fig.axes for line in ax.lines)


def test_every_checkpoint_panel_plots_its_sets_primary_metric(figures):
    fig = figures["smoke-run"]["eval_steps"]
    panels = _axes(fig)
    assert [ax.get_title() for ax in panels] == ["validation (★ = selected)", "world-id (★ = selected)",
                                                 "world-ood (★ = selected)"]
    for ax in panels:
        lines = [line for line in ax.lines if len(line.get_xdata()) >= 2]
        assert len(lines) >= 8, (ax.get_title(), len(lines))  # SeqKD, GAD and its six ablations
        assert "gold/teacher_logprob" in _ylabel(ax) and "higher is better" in _ylabel(ax), _ylabel(ax)


def test_reward_hacking_compares_the_adversarial_stages_step_for_step(figures):
    """The off-policy run's adversarial stage is steps 61-80 (after SFT and D alone), GAD's 21-40: both are
    drawn as steps 1-20 of the stage."""
    fig = figures["smoke-run"]["reward_hacking"]
    for ax in _axes(fig):
        xs = [x for line in ax.lines if line.get_linestyle() != "--" or len(line.get_xdata()) > 2
              for x in line.get_xdata()]
        assert xs and min(xs) == 1 and max(xs) == 20, (ax.get_title(), min(xs), max(xs))


def test_headline_bars_start_at_zero_and_no_bar_hangs_below_it(figures):
    """sharegpt-smol's embedding scores (about 50) as bars from 0; the smoke suite's teacher log-probabilities
    (negative, higher is better) as points, so that the worst method is not the tallest bar. Each axis says
    the metric's unit and which way is better."""
    share = _axes(figures["sharegpt-smol"]["fig1_bars"])
    assert all(ax.get_ylim()[0] == 0 for ax in share), [ax.get_ylim() for ax in share]
    assert all("cosine x 100, higher is better" in _ylabel(ax) for ax in share), [_ylabel(ax) for ax in share]
    smoke = _axes(figures["smoke-run"]["fig1_bars"])
    bars = [p for ax in smoke for p in ax.patches if isinstance(p, Rectangle) and p.get_height() < 0]
    assert not bars, f"{len(bars)} bars hang below 0"
    assert all("nats per token, higher is better" in _ylabel(ax) for ax in smoke)
    assert all(len(ax.lines) >= 3 for ax in smoke)  # before, SeqKD and GAD as points with their intervals
