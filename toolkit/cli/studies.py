"""``regent study run/new`` helpers and ``regent runs compare``: progress bars, resuming, comparing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

runs_app = typer.Typer(help="Compare tracked study runs.", no_args_is_help=True)

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def run_with_progress(
    study: Path, *, out_dir: Path, registry: Path | str | None, tracker: Any, resume: bool, engine: Any = None
) -> Any:
    """Run a study showing its steps (toolkit.cli.progress); Ctrl-C or SIGTERM stops it with the
    MLflow run marked KILLED, a line saying where it stopped and how to resume, and exit 130."""
    from toolkit.cli.progress import Terminated, run_steps
    from toolkit.study.plan import plan_study
    from toolkit.study.runner import run_study

    plan = plan_study(study)  # the one parse: the runner takes the plan

    def work(progress: Any) -> Any:
        return run_study(
            plan,
            out=out_dir,
            tracker=tracker,
            registry=registry,
            use_cache=resume,
            progress=progress,
            engine=engine,
        )

    try:
        return run_steps(plan.steps, err, work, resume=_resume_command(study, out_dir, registry))
    except KeyboardInterrupt as exc:
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None


def _resume_command(study: Path, out_dir: Path, registry: Path | str | None) -> str:
    """The command that resumes this run: the one that was typed, when it was ``study run``."""
    import shlex

    from toolkit.cli.progress import resume_command

    argv = sys.argv[1:]
    if argv[:2] == ["study", "run"]:
        return resume_command(argv)
    extra = f" --registry {shlex.quote(str(registry))}" if registry else ""
    return f"regent study run {shlex.quote(str(study))} --out {shlex.quote(str(out_dir))}{extra}"


def print_run(run: Any, *, out_dir: Path, mlruns: Path, track: bool) -> None:
    if run.resumed_from:
        out.print(
            f"resumed interrupted run {run.resumed_from}: recomputed {', '.join(run.computed) or 'nothing'}"
        )
    elif not run.computed:
        out.print("nothing changed: every step re-used from the cache")
    r = run.results
    k = r.disclosure.min_cell
    marks = (r.cohort.attrition[-1].suppressed or {}) if r.cohort.attrition else {}
    events = _count(r.cohort.events, k, marks.get("events"))  # the last step's events are the cohort's
    out.print(f"cohort: {_count(r.cohort.n, k)} persons, {events} events", markup=False)
    for name, m in r.models.items():
        mt = m.metrics
        out.print(
            f"model {name}: CV C-index {_f(mt.get('c_harrell_mean'))} "
            f"({_f(mt.get('c_harrell_lower'))}-{_f(mt.get('c_harrell_upper'))})"
        )
    out.print(f"results: {out_dir / 'results.json'}\nreport:  {out_dir / 'report.html'}")
    if track:
        from toolkit.tracking.mlflow_tracker import runs_url

        out.print(f"MLflow run {run.run_id}: mlflow ui --backend-store-uri sqlite:///{mlruns}/mlflow.db")
        out.print(f"  then open {runs_url(run.experiment_id)}")


def _count(value: int | None, k: int, status: str | None = None) -> str:
    """A released count; a withheld one (null in results.json) reads ``<k``, or ``withheld`` when
    it was withheld so that a small count cannot be worked out (``status`` complementary)."""
    if value is None:
        from toolkit.disclosure import DisclosurePolicy

        return DisclosurePolicy(min_cell=k).marker(status or "small")
    return str(value)


def _f(value: float | None) -> str:
    return "NA" if value is None else f"{value:.3f}"


def study_new(
    name: Annotated[str, typer.Argument(help="The study's name (lower case, digits, '_')")],
    template: Annotated[str, typer.Option(help="survival | prediction | competing-risks")] = "survival",
    directory: Annotated[Path, typer.Option("--dir", help="Where study folders live")] = Path("studies"),
) -> None:
    """Scaffold a study folder (commented study.yaml, notebook, README) that runs as generated."""
    from toolkit.study.new import new_study

    path = new_study(name, template=template, directory=directory)
    out.print(f"created {path}/ (study.yaml, notebook.ipynb, README.md)")
    out.print(f"run it:        regent study run {path} --out out/{name}")
    out.print(f"open it:       jupyter lab {path}/notebook.ipynb")


@runs_app.command("compare")
def runs_compare(
    run_a: Annotated[str, typer.Argument(help="MLflow run id (or a study's --out folder)")],
    run_b: Annotated[str, typer.Argument(help="MLflow run id (or a study's --out folder)")],
    mlruns: Annotated[Path, typer.Option(help="MLflow store folder")] = Path("mlruns"),
    as_json: Annotated[bool, typer.Option("--json")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Also print the unified diff of study.yaml")] = False,
) -> None:
    """What changed from run A to run B: spec, provenance, cohort size, metric deltas with 95% CIs."""
    import json

    from toolkit.tracking.compare import compare_runs

    cmp = compare_runs(run_a, run_b, mlruns=mlruns)
    if as_json:
        sys.stdout.write(json.dumps(cmp.to_dict(), indent=2, default=str) + "\n")
        return
    sys.stdout.write(cmp.to_text() + "\n")
    if diff and cmp.spec_diff:
        sys.stdout.write("\n".join(cmp.spec_diff) + "\n")
