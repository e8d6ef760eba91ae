"""Distributions of cost over random valid mappings (the Transformer study's Timeloop experiment).

For each layer, N mappings drawn uniformly from the valid mapspace are costed by the batched
model; latency, energy and EDP are normalized to the optimum of that metric (found and proven by
the ``optimal`` search), so 1.0 is the best possible mapping and the curve shows how far the rest
fall behind. Layers with the same shape (:meth:`Problem.key`: a conv's whole shape, not its im2col
view) share their samples (q/k/v/out_proj in BERT). Conv layers are sampled from
:class:`gemmap.convspace.ConvMapSpace` and costed by :mod:`gemmap.convmodel`.

:data:`SURVEY_LAYERS` names the ResNet-50 layers the Transformer study's CDF figure compares BERT
against (conv1 and the three convs of the conv5_x bottleneck: 1×1/512, 3×3/512, 1×1/2048), which
``cdf --compare workloads/resnet50.yaml`` plots, labelled so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gemmap.arch import Arch
from gemmap.convmodel import evaluate_conv_batch
from gemmap.convspace import ConvMapSpace
from gemmap.errors import GemmapError, shown
from gemmap.mapspace import MapSpace
from gemmap.model import evaluate_batch
from gemmap.search import SearchOptions, find_mapping
from gemmap.specio import read_input
from gemmap.workload import Problem, Workload

METRICS = ("latency", "energy", "edp")
PERCENTILES = (1, 10, 50, 90, 99)

#: per workload name, the layers a comparison plots and their labels (module docstring)
SURVEY_LAYERS: dict[str, tuple[tuple[str, str], ...]] = {
    "resnet50": (
        ("conv1", "conv1 7x7/64 stride 2"),
        ("res5_3x3", "res5 3x3/512"),
        ("res5_1x1a", "res5 1x1/512"),
        ("res5_1x1b", "res5 1x1/2048"),
    )
}


@dataclasses.dataclass(frozen=True)
class LayerSamples:
    """Sampled costs of one layer shape and the optimum of each metric."""

    workload: str
    layers: tuple[str, ...]
    shape: tuple[int, ...]  # Problem.key(): (M, K, N), then a conv's shape
    cycles: np.ndarray
    energy_pj: np.ndarray
    best: dict[str, float]
    proven: dict[str, bool]
    title: str = ""  # a label for plots (else the layer names)

    @property
    def label(self) -> str:
        return self.title or "/".join(self.layers)

    def values(self, metric: str) -> np.ndarray:
        return {
            "latency": self.cycles.astype(np.float64),
            "energy": self.energy_pj,
            "edp": self.energy_pj * self.cycles,
        }[metric]

    def normalized(self, metric: str) -> np.ndarray:
        return self.values(metric) / self.best[metric]


def sample_shape(
    arch: Arch,
    workload: str,
    group: tuple[Problem, ...],
    samples: int,
    seed: int,
    time_limit: float | None,
    title: str = "",
) -> LayerSamples:
    """Sample one layer shape (shared by the layers in ``group``) and find each metric's optimum."""
    problem = group[0]
    if problem.conv is not None:
        cost = evaluate_conv_batch(arch, problem, ConvMapSpace(arch, problem).sample(samples, seed))
    else:
        cost = evaluate_batch(arch, problem, MapSpace(arch, problem).sample(samples, seed))
    best, proven = {}, {}
    for metric in METRICS:
        r = find_mapping(arch, problem, SearchOptions(method="optimal", objective=metric, time_limit=time_limit))
        best[metric] = {"latency": float(r.cost.cycles), "energy": r.cost.energy_pj, "edp": r.cost.edp}[metric]
        proven[metric] = r.proven_optimal
    return LayerSamples(
        workload, tuple(p.name for p in group), problem.key(), cost.cycles, cost.energy_pj, best, proven, title
    )


def sample_workload(
    arch: Arch,
    workload: Workload,
    *,
    samples: int,
    seed: int,
    layers: Sequence[str] | None = None,
    time_limit: float | None = None,
    workers: int = 1,
    on_layer: Callable[[str], None] | None = None,
    titles: dict[str, str] | None = None,
) -> list[LayerSamples]:
    """Sample every (selected) layer shape of ``workload``, shapes in parallel over ``workers``
    processes; results come back in the workload's layer order whatever the worker count.
    ``titles`` labels layers by name (a shape group takes its first layer's)."""
    problems = [workload.problem(n) for n in layers] if layers else list(workload.problems)
    by_shape: dict[tuple[int, ...], list[Problem]] = {}
    for p in problems:
        by_shape.setdefault(p.key(), []).append(p)
    groups = [tuple(g) for g in by_shape.values()]
    names = [(titles or {}).get(g[0].name, "") for g in groups]
    if workers <= 1 or len(groups) <= 1:
        out = []
        for g in groups:
            if on_layer:
                on_layer("/".join(p.name for p in g))
            out.append(sample_shape(arch, workload.name, g, samples, seed, time_limit, names[len(out)]))
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(groups))) as pool:
        futures = {
            pool.submit(sample_shape, arch, workload.name, g, samples, seed, time_limit, names[i]): i
            for i, g in enumerate(groups)
        }
        results: dict[int, LayerSamples] = {}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_layer:
                on_layer(results[futures[fut]].label)
    return [results[i] for i in range(len(groups))]


def percentile_rows(samples: Sequence[LayerSamples]) -> list[dict[str, object]]:
    """One row per layer and metric: normalized min, p1, p10, p50, p90, p99, max and counts."""
    rows: list[dict[str, object]] = []
    for s in samples:
        for metric in METRICS:
            x = s.normalized(metric)
            q = np.percentile(x, PERCENTILES)
            for layer in s.layers:
                row: dict[str, object] = {"workload": s.workload, "layer": layer, "label": s.title or layer,
                                          "metric": metric, "M": s.shape[0], "K": s.shape[1], "N": s.shape[2],
                                          "min": float(x.min())}  # fmt: skip
                row.update({f"p{p}": float(v) for p, v in zip(PERCENTILES, q)})
                row.update({"max": float(x.max()), "spread": float(x.max() / x.min()),
                            "within_3x": float(np.mean(x <= 3.0)), "samples": int(x.size),
                            "optimum": s.best[metric], "proven_optimal": s.proven[metric]})  # fmt: skip
                rows.append(row)
    return rows


#: M, K, N are a conv's im2col view; within_3x is the share of samples within 3x of the optimum
CSV_FIELDS = ("workload", "layer", "label", "metric", "M", "K", "N", "min", "p1", "p10", "p50", "p90", "p99", "max",
              "spread", "within_3x", "samples", "optimum", "proven_optimal")  # fmt: skip


def save_samples(path: str | Path, samples: Sequence[LayerSamples], title: str = "") -> None:
    """Keep the raw samples (npz) and the plot's title so plots can be redrawn without re-running
    the search."""
    import io
    import json

    from gemmap.report import atomic_write

    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, s in enumerate(samples):
        arrays[f"cycles_{i}"] = s.cycles
        arrays[f"energy_{i}"] = s.energy_pj
        meta.append(
            {
                "workload": s.workload,
                "layers": list(s.layers),
                "shape": list(s.shape),
                "best": s.best,
                "proven": s.proven,
                "title": s.title,
            }
        )
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["title"] = np.array(title)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


#: the largest samples.npz read back (100,000 samples per layer are ~1.6 MB per layer)
MAX_SAMPLES_FILE = 1024 * 1024 * 1024


def load_title(path: str | Path) -> str:
    """The plot title kept with the samples ('' for a file written before titles were kept)."""
    arrays = _npz_arrays(path)
    return str(arrays["title"]) if "title" in arrays else ""


def _damaged(path: str | Path, why: str) -> GemmapError:
    return GemmapError(f"{shown(str(path))}: not a samples file of gemmap cdf ({why}); run cdf again")


def _npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of ``path``: a regular file, a zip of plain arrays (no pickles) that unpacks to at
    most 4 GiB; anything else is one line naming the file."""
    import io
    import zipfile

    data = read_input(path, MAX_SAMPLES_FILE)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > 4 * MAX_SAMPLES_FILE:
                raise _damaged(path, "it unpacks to more than 4 GiB")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except GemmapError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, zlib, numpy format errors: all "damaged"
        raise _damaged(path, shown(str(exc) or type(exc).__name__)) from None


def load_samples(path: str | Path) -> list[LayerSamples]:
    """The samples of an earlier ``cdf`` run, checked: the metadata and two equal-length 1-D arrays
    per layer (:func:`_npz_arrays`); anything else is one line naming the file."""
    import json

    arrays = _npz_arrays(path)
    try:
        meta = json.loads(str(arrays["meta"]))
        out = [_layer_samples(m, arrays[f"cycles_{i}"], arrays[f"energy_{i}"]) for i, m in enumerate(meta)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(path, f"bad or missing {shown(str(exc))}") from None
    if not out:
        raise _damaged(path, "no layers")
    return out


def _layer_samples(m: dict, cycles: np.ndarray, energy: np.ndarray) -> LayerSamples:
    """One layer's samples from its metadata and arrays; ValueError/TypeError when they do not fit."""
    if cycles.ndim != 1 or energy.shape != cycles.shape or cycles.size == 0:
        raise ValueError("sample arrays")
    if cycles.dtype.kind not in "iuf" or energy.dtype.kind not in "iuf":
        raise ValueError("sample array types")
    best = {k: float(m["best"][k]) for k in METRICS}
    proven = {k: bool(m["proven"][k]) for k in METRICS}
    if not all(np.isfinite(v) and v > 0 for v in best.values()):
        raise ValueError("optimum")
    if not np.all(np.isfinite(energy)) or not np.all(np.isfinite(cycles)):
        raise ValueError("non-finite samples")
    layers = tuple(str(x) for x in m["layers"])
    shape = tuple(int(x) for x in m["shape"])
    if len(shape) < 3 or not layers:
        raise ValueError("shape")
    return LayerSamples(str(m["workload"]), layers, shape, cycles, energy, best, proven, str(m.get("title", "")))


#: beside another workload, one with more layer shapes than this gets one legend entry for all
LEGEND_PER_WORKLOAD = 8
#: the first workload's colours (no warm ones: those are the second workload's family)
FIRST_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:cyan", "tab:olive", "tab:pink", "tab:brown", "tab:gray")
#: colour families of the second, third, ... workload
FAMILIES = ("Oranges", "Reds", "Greys", "Greens")
METRIC_TITLES = {"latency": "Latency", "energy": "Energy", "edp": "Energy-delay product"}


def _styles(samples: Sequence[LayerSamples]) -> dict[int, tuple[object, str, float]]:
    """Colour, line style and width per sample (by ``id``): distinct colours for the first
    workload's shapes (shades of one map when there are many), one colour family per other one."""
    from matplotlib import colormaps

    workloads = list(dict.fromkeys(s.workload for s in samples))
    out: dict[int, tuple[object, str, float]] = {}
    for w, name in enumerate(workloads):
        mine = [s for s in samples if s.workload == name]
        family = colormaps[FAMILIES[(w - 1) % len(FAMILIES)] if w else "viridis"]
        for i, s in enumerate(mine):
            if w == 0 and len(mine) <= len(FIRST_COLOURS):
                colour: object = FIRST_COLOURS[i]
            else:
                colour = family((0.45 if w else 0.0) + (0.45 if w else 0.9) * i / max(len(mine) - 1, 1))
            out[id(s)] = (colour, ("-", "--", ":", "-.")[w % 4], 1.6 if w == 0 else 1.1)
    return out


def _legend_entries(samples: Sequence[LayerSamples], styles) -> tuple[list, list[str], set[str]]:
    """Handles and labels grouped by workload under a heading (a workload with many layer shapes
    gets one entry); also the headings, to set in bold."""
    from matplotlib.lines import Line2D

    handles, labels, headings = [], [], set()
    workloads = list(dict.fromkeys(s.workload for s in samples))
    for name in workloads:
        mine = [s for s in samples if s.workload == name]
        if len(workloads) > 1:
            handles.append(Line2D([], [], alpha=0))
            labels.append(name)
            headings.add(name)
        if len(workloads) > 1 and len(mine) > LEGEND_PER_WORKLOAD:
            colour, style, lw = styles[id(mine[len(mine) // 2])]
            handles.append(Line2D([], [], color=colour, ls=style, lw=lw))
            labels.append(f"{len(mine)} layer shapes (shades)")
            continue
        for s in mine:
            colour, style, lw = styles[id(s)]
            handles.append(Line2D([], [], color=colour, ls=style, lw=lw))
            labels.append(s.label)
    return handles, labels, headings


def cdf_figure(samples: Sequence[LayerSamples], title: str = ""):
    """CDF panels (latency, energy, EDP), one line per layer shape, log x; lines grouped by workload
    (a colour family each) and a legend grouped the same way."""
    from gemmap.figures import new_figure, wrap

    styles = _styles(samples)
    fig = new_figure(15, 5.2)
    axes = fig.subplots(1, 3, sharey=True)
    for ax, metric in zip(axes, METRICS):
        for s in samples:
            x = np.sort(s.normalized(metric))
            colour, style, lw = styles[id(s)]
            ax.plot(x, np.arange(1, x.size + 1) / x.size, ls=style, color=colour, lw=lw)
        ax.set_xscale("log")
        ax.set_xlabel(f"{'EDP' if metric == 'edp' else metric} / optimum")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(METRIC_TITLES[metric])
    axes[0].set_ylabel("fraction of random valid mappings")
    handles, labels, headings = _legend_entries(samples, styles)
    legend = fig.legend(handles, labels, fontsize=8, loc="outside right upper", frameon=False,
                        ncol=1 if len(labels) <= 24 else 2)  # fmt: skip
    for text in legend.get_texts():
        if text.get_text() in headings:
            text.set_fontweight("bold")
    if title:
        fig.suptitle(wrap(title, 15, 12))
    return fig


def plot_cdf(samples: Sequence[LayerSamples], out_stem: str | Path, title: str = "") -> list[Path]:
    """:func:`cdf_figure` as ``out_stem``.png and .svg."""
    from gemmap.figures import save

    return save(cdf_figure(samples, title), out_stem)
