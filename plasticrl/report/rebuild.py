"""``plasticrl report``: rebuild evaluation reports and draw training curves from saved files.

An evaluation directory (``eval.json``, also found one level down, e.g. ``RUN/eval/``) gets its
CSV, Markdown and PNGs rewritten from the JSON, and where its agents include several seeds of one
setting (``NAME_s0``, ``NAME_s1``, ...) ``seeds.md``, ``seeds.json`` and ``profiles.png`` aggregated
over seeds with rliable (:mod:`plasticrl.report.aggregate`); run directories (``metrics.jsonl``) together
get ``training.png`` and a ``training.md`` table in the output directory. :func:`combine` puts
evaluations of different agents on the same paired episodes into one directory and reports them together.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

from plasticrl.errors import PlasticRLError
from plasticrl.eval.combine import combine_results
from plasticrl.io import atomic_write_json
from plasticrl.report.aggregate import seed_groups, write_aggregate
from plasticrl.report.writer import RESULT_FILE, load_result, write_reports
from plasticrl.report.training_curves import curve_summary, plot_training, read_metrics


def _eval_dirs(path: Path) -> list[Path]:
    if (path / RESULT_FILE).is_file():
        return [path]
    return sorted(p.parent for p in path.glob(f"*/{RESULT_FILE}"))


def combine(paths: list[Path], out: Path, plots: bool = True) -> list[Path]:
    """Combine the evaluations found under ``paths`` (each an evaluation directory or a directory with
    evaluation directories one level down) into ``out``, then report them as :func:`rebuild` does
    (``seeds.md`` over the seeds of each setting). Everything is read and checked before ``out`` is
    written; an ``out`` that already holds an evaluation is refused."""
    dirs: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise PlasticRLError(f"{str(path)!r} is not a directory")
        found = _eval_dirs(path)
        if not found:
            raise PlasticRLError(f"{str(path)!r} holds no {RESULT_FILE} (nor one level down)")
        dirs += found
    if (out / RESULT_FILE).exists():
        raise PlasticRLError(f"{str(out)!r} already holds an evaluation ({RESULT_FILE}); choose another --out")
    combined = combine_results([load_result(d) for d in dirs], [str(d) for d in dirs])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RESULT_FILE, combined.to_json())  # rebuild then writes the reports and seeds.md
    return rebuild([out], out, plots=plots)


def rebuild(paths: list[Path], out: Path, plots: bool = True) -> list[Path]:
    """Rewrite every evaluation report found under ``paths`` and the training curves; returns files written."""
    written: list[Path] = []
    runs = {}
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise PlasticRLError(f"{str(path)!r} is not a directory")
        evals = _eval_dirs(path)
        for d in evals:
            result = load_result(d)
            written += list(write_reports(result, d, plots=plots).values())
            # runs of one setting with several seeds: IQM, intervals and profiles with rliable (an
            # optional extra: without it the reports are still rebuilt, and a warning says what is missing)
            if seed_groups(list(result.agents)) and importlib.util.find_spec("rliable") is None:
                warnings.warn(f"{d}: agents with several seeds, not aggregated: install the stats extra "
                              "(pip install \"plasticrl[stats]\") for seeds.md and profiles.png", stacklevel=2)
            else:
                written += list(write_aggregate(result, d, plots=plots).values())
        if (path / "metrics.jsonl").is_file():
            runs[path.name] = read_metrics(path)
        elif not evals:
            raise PlasticRLError(f"{str(path)!r} holds neither metrics.jsonl nor {RESULT_FILE}")
    if runs:
        out.mkdir(parents=True, exist_ok=True)
        lines = ["# Training runs", "",
                 "| run | logged generations | env steps | best evaluation | last mean fitness |",
                 "| --- | ---: | ---: | ---: | ---: |"]
        for name, rows in runs.items():
            s = curve_summary(rows)
            fmt = lambda v: "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
            lines.append(f"| {name} | {s['points']} | {fmt(s['env_steps'])} | {fmt(s['best_eval_return'])} | "
                         f"{fmt(s['last_fitness_mean'])} |")
        if plots:
            written.append(plot_training(runs, out / "training.png"))
            lines += ["", "![training](training.png)"]
        (out / "training.md").write_text("\n".join(lines) + "\n")
        written.append(out / "training.md")
    return written
