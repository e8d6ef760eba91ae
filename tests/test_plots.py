"""Every plot kind on a multi-variant case: panel counts, labels and titles present, every text
inside the figure, no offset notation ("1e9", "+1.503e7"), point and segment labels that do not
overlap, schedule bars weighted by repeat, infeasible points drawn as such, and an identical
``cdf --replot``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.text import Text

from gemmap.cdf import LayerSamples, cdf_figure, load_samples, load_title, plot_cdf, save_samples
from gemmap.cli import main
from gemmap.figures import laid_out, si
from gemmap.schedule import schedule_workload
from gemmap.schedule_plots import LANE_COLORS, ratio_figure, schedule_figure
from gemmap.search import SearchOptions
from gemmap.sweep import Grid, Sweep, run_sweep
from gemmap.sweep_report import METRICS, heatmap_figure, pareto_figure, pareto_front, variant, varying
from gemmap.workload import load_workload
from tests.conftest import ROOT

TINY = str(ROOT / "workloads" / "bert-tiny.yaml")


def test_si_labels_have_no_exponent():
    assert [si(x) for x in (0.5, 999, 1671000, 5.516e19, 7.2e26)] == ["0.5", "999", "1.671M", "55.16E", "720Y"]


def check_layout(fig) -> list:
    """Every text of ``fig`` lies inside it and no axis shows an offset; returns the renderer."""
    renderer = laid_out(fig)
    frame = fig.bbox.padded(1)
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}  # fmt: skip
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, ax.get_title()
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == "", f"offset on {ax.get_title()!r}"
    for t in fig.findobj(Text):
        if id(t) in ticks or not t.get_visible() or not t.get_text():
            continue
        box = Text.get_window_extent(t, renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, t.get_text()
    return renderer


def no_overlaps(texts: list, renderer) -> bool:
    boxes = [Text.get_window_extent(t, renderer) for t in texts]
    return not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


@pytest.fixture(scope="module")
def sweep_rows(tmp_path_factory, transformer_arch) -> list[dict[str, str]]:
    """5 sequence lengths (variants) × 2 fusion policies × 2 × 3 memory sizes, heuristic search."""
    grid = Grid(spad_kib=(32, 64), acc_kib=(16, 64, 128), fusion=("none", "auto"), seq_len=(64, 128, 256, 512, 1024))
    out = tmp_path_factory.mktemp("sweep")
    return list(run_sweep(Sweep(TINY, transformer_arch, SearchOptions(method="heuristic"), grid, out)).rows)


def test_heatmap_has_a_panel_per_variant_and_policy(sweep_rows):
    fig = heatmap_figure(sweep_rows, METRICS[0], "edp")
    renderer = check_layout(fig)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 5 * 2  # none dropped: every variant, every policy
    assert len(fig.axes) == 2 * len(panels)  # a colour bar each
    assert {ax.get_title() for ax in panels} >= {"fusion none · S1024", "fusion auto · S64"}
    assert all(ax.get_xlabel() == "scratchpad (KiB)" and ax.get_ylabel() == "accumulator (KiB)" for ax in panels)
    assert "EDP-optimal" in fig._suptitle.get_text() and "latency" in fig._suptitle.get_text()
    cells = [t for ax in panels for t in ax.texts]
    assert len(cells) == 10 * 6 and all(t.get_fontsize() >= 8 for t in cells)
    assert sum(t.get_text().endswith("*") for t in cells) >= 10  # each panel marks its best
    for ax in panels:  # each panel spans its own values: the best is 0 %, the worst the top of its bar
        image = ax.images[0]
        assert image.norm.vmin == 0 and image.norm.vmax >= 1.0
        assert np.nanmin(image.get_array()) == 0
    assert no_overlaps(cells, renderer)


def test_pareto_panels_labels_and_front(sweep_rows):
    fig = pareto_figure(sweep_rows, "latency")
    renderer = check_layout(fig)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 5
    assert all(ax.get_ylabel() == "latency (cycles)" and ax.get_xlabel() for ax in panels)
    assert "latency-optimal" in fig._suptitle.get_text()
    fields = varying(sweep_rows)
    for ax in panels:
        labels = [t for t in ax.texts if t.get_text()]
        assert no_overlaps(labels, renderer)
        title = ax.get_title()
        mine = [r for r in sweep_rows if "S" + dict(variant(r, fields))["seq_len"] == title]
        assert len(labels) == len(pareto_front(mine)) > 0  # every front point labelled


@pytest.fixture(scope="module")
def schedule(transformer_arch):
    return schedule_workload(transformer_arch, load_workload(TINY), SearchOptions(method="heuristic"), "auto")


def test_schedule_bars_weigh_by_repeat_and_gantt_is_labelled(schedule):
    fig = schedule_figure(schedule)
    renderer = check_layout(fig)
    bars, *gantts = fig.axes
    assert bars.get_ylabel().startswith("cycles, whole model")
    site = schedule.sites[0]  # attn_qk+softmax: repeat 4 in bert-tiny
    assert site.site.repeat > 1
    heights = sum(p.get_height() for p in bars.patches[:3])  # the unfused stack of the first site
    assert heights == pytest.approx(site.unfused.cycles * site.site.repeat)
    assert any(t.get_text().startswith(f"{site.site.name} ×{site.site.repeat}") for t in bars.texts)
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    for ax in gantts:
        assert ax.get_title().startswith("fusion ") and ax.get_xlabel()
        drawn = {to_rgb(p.get_facecolor()) for p in ax.patches}
        assert drawn <= {to_rgb(c) for c in LANE_COLORS.values()}
        assert {k for k, c in LANE_COLORS.items() if to_rgb(c) in drawn} <= legend  # every colour drawn is explained
        labels = [t for t in ax.texts if t.get_text()]
        names = {t.get_text().split(" ×")[0] for t in labels}
        assert {"q_proj", "ffn1", "softmax"} <= names
        assert no_overlaps(labels, renderer)


def test_ratio_plot_marks_infeasible_points_apart():
    series = {
        "attn_qk+softmax": {64: [(128, 0.7), (256, 0.8), (512, None)], 128: [(128, 0.75), (256, 0.7), (512, 0.72)]},
        "out_proj+ln1": {64: [(128, None), (256, None), (512, None)], 128: [(128, 1.01), (256, 1.02), (512, 1.0)]},
    }
    fig = ratio_figure(series, "test: fused / unfused latency per site")
    check_layout(fig)
    main_axes = [ax for ax in fig.axes if ax.get_title() in series]
    strips = [ax for ax in fig.axes if ax.get_title().startswith("fusion infeasible")]
    assert len(main_axes) == len(strips) == 2
    for ax in main_axes:  # no point drawn for an infeasible configuration, none at y = 1 in its place
        for line in ax.get_lines()[:-1]:
            assert 1.0 not in list(line.get_ydata()) or ax.get_title() == "out_proj+ln1"
    acc64 = main_axes[1].get_lines()[0]
    assert len(acc64.get_xdata()) == 0
    marked = {
        (float(x), float(y)) for line in strips[1].get_lines() for x, y in zip(line.get_xdata(), line.get_ydata())
    }
    assert marked == {(128.0, 0.0), (256.0, 0.0), (512.0, 0.0)}
    assert main_axes[0].get_ylabel() == "fused / unfused latency"


def _fake_samples(workload: str, n: int, seed: int) -> list[LayerSamples]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cycles = rng.integers(1000, 100000, 300)
        energy = rng.uniform(1e6, 1e8, 300)
        best = {"latency": float(cycles.min()), "energy": float(energy.min()), "edp": float((cycles * energy).min())}
        out.append(
            LayerSamples(workload, (f"l{i}",), (16, 16, 16 + i), cycles, energy, best, dict.fromkeys(best, True))
        )
    return out


def test_cdf_compare_legend_is_grouped_and_replot_keeps_the_title(tmp_path):
    samples = _fake_samples("bert", 5, 1) + _fake_samples("resnet50", 22, 2)
    title = "300 random valid mappings per layer on gemmini"
    fig = cdf_figure(samples, title)
    check_layout(fig)
    assert len(fig.axes) == 3 and fig.axes[0].get_ylabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["bert", "l0", "l1", "l2", "l3", "l4", "resnet50", "22 layer shapes (shades)"]
    assert len(fig.axes[0].get_lines()) == 27  # every shape still drawn
    kept = tmp_path / "samples.npz"
    save_samples(kept, samples, title)
    first = [p.read_bytes() for p in plot_cdf(samples, tmp_path / "a", title)]
    again = [p.read_bytes() for p in plot_cdf(load_samples(kept), tmp_path / "b", load_title(kept))]
    assert first == again  # what --replot does: the same PNG and SVG, title included


def test_sweep_says_why_it_wrote_no_plots_and_how_much_the_summary_shows(tmp_path, capsys):
    args = ["sweep", TINY, "--search", "heuristic", "--no-cache", "--out", str(tmp_path / "s"),
            "--layers", "1,2,3,4,5", "--seq-len", "16,32,48,64,80", "--fusion", "none,auto"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "no heatmaps: the sweep has one scratchpad and one accumulator size" in err
    assert "no Pareto plot: every point has the same area estimate" in err
    out = " ".join(captured.out.split())
    assert "24 of 25 variants shown" in out
    assert not list((tmp_path / "s").glob("*.png"))
