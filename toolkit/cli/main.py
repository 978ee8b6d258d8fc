"""``regent``: thin commands over the library.  Toolkit errors exit with status 2 and a message
naming the file and key; nothing else is printed on failure (no traceback, no patient data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from toolkit.cli.analyze import analyze_app
from toolkit.cli.multimodal import images_app
from toolkit.cli.notes import notes_app
from toolkit.cli.privacy import federated_app, privacy_app, registry_deidentify
from toolkit.cli.studies import runs_app, study_new
from toolkit.errors import ToolkitError

app = typer.Typer(
    help="Regent: registries -> studies -> validated clinical agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
registry_app = typer.Typer(help="Build, import and check registries.", no_args_is_help=True)
cohort_app = typer.Typer(help="Declarative cohorts.", no_args_is_help=True)
study_app = typer.Typer(help="Create, run and describe studies.", no_args_is_help=True)
agent_app = typer.Typer(help="Package, verify and call agents.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
app.add_typer(federated_app, name="federated")
app.add_typer(privacy_app, name="privacy")
registry_app.command("deidentify")(registry_deidentify)
app.add_typer(cohort_app, name="cohort")
app.add_typer(study_app, name="study")
app.add_typer(agent_app, name="agent")
app.add_typer(runs_app, name="runs")
study_app.command("new")(study_new)
app.add_typer(notes_app, name="notes")
app.add_typer(images_app, name="images")
app.add_typer(analyze_app, name="analyze")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --- registry ------------------------------------------------------------------------------
@registry_app.command("check")
def registry_check(path: Path, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Validate a registry's schema (non-zero exit on errors) and print a data-quality report."""
    from toolkit.registry.check import check_registry

    report = check_registry(path)
    if as_json:
        _print_json(report.to_dict())
    else:
        sys.stdout.write(report.to_text() + "\n")


@registry_app.command("import")
def registry_import(
    name: Annotated[
        str | None,
        typer.Argument(help="A shipped dataset: gbsg2, whas500, flchain, lung, rossi, veterans, bmt"),
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", help="Registry file to write")] = Path(
        "data/registry.duckdb"
    ),
    csv: Annotated[
        Path | None, typer.Option("--csv", help="A one-row-per-patient CSV or Parquet file")
    ] = None,
    mapping: Annotated[Path | None, typer.Option("--mapping", help="Mapping YAML for --csv")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="duckdb (one file) or parquet (a folder of Parquet tables)")
    ] = "duckdb",
) -> None:
    """Import a flat (one row per patient) table into the canonical registry schema."""
    from toolkit.errors import ImportMappingError
    from toolkit.registry.importers.datasets import import_dataset
    from toolkit.registry.importers.flat import import_flat, load_mapping, read_table

    if csv is not None:
        if mapping is None:
            raise ImportMappingError("--csv needs --mapping FILE")
        path = import_flat(read_table(csv), load_mapping(mapping), out_path, source=str(mapping), format=fmt)
    elif name is not None:
        path = import_dataset(name, out_path, format=fmt)
    else:
        raise ImportMappingError("give a dataset name or --csv FILE --mapping FILE")
    out.print(f"wrote {path}")


@registry_app.command("synth")
def registry_synth(
    patients: Annotated[int, typer.Option()] = 5000,
    sites: Annotated[int, typer.Option()] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    out_path: Annotated[Path, typer.Option("--out")] = Path("data/hf.duckdb"),
    notes: Annotated[bool, typer.Option(help="Clinical notes (+ annotation and PHI tables)")] = True,
    images: Annotated[bool, typer.Option(help="DICOM images under <name>.images/ (+ annotations)")] = True,
    shift: Annotated[
        bool,
        typer.Option(
            help="A later calendar period (index 2025, follow-up to 2026-12-31) with a changed case mix "
            "and 2.5 times the baseline hazard (docs/registry.md#a-shifted-later-period)"
        ),
    ] = False,
    period: Annotated[
        str | None,
        typer.Option(
            help="Index and follow-up START:END:CUTOFF (ISO dates); default 2014-01-01:2023-01-01:2024-12-31"
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="duckdb (one file) or parquet (a folder of Parquet tables)")
    ] = "duckdb",
) -> None:
    """Build the synthetic heart-failure registry (truth written beside it).

    --no-notes --no-images gives the structured registry alone (the same persons, events and
    outcomes), for large benchmarks.  --shift draws a later period whose case mix and baseline
    hazard changed (what agent monitoring must detect); --period alone gives an unshifted
    sample of another period."""
    from toolkit.registry.synth.heart_failure import (
        DEVELOPMENT_PERIOD,
        LATER_PERIOD,
        Period,
        Shift,
        SynthConfig,
        synthesize,
        truth_paths,
    )

    chosen = Period.parse(period) if period else LATER_PERIOD if shift else DEVELOPMENT_PERIOD
    config = SynthConfig(
        patients, sites, seed, notes=notes, images=images, period=chosen, shift=Shift() if shift else None
    )
    path = synthesize(out_path, config, format=fmt)
    tj, tp = truth_paths(path)
    out.print(f"wrote {path}\ntruth: {tj} and {tp}")


@registry_app.command("import-omop")
def registry_import_omop(
    folder: Annotated[Path, typer.Argument(help="Folder of OMOP CDM 5.3/5.4 tables (CSV or Parquet)")],
    out_path: Annotated[Path, typer.Option("--out", help="Registry file to write")],
    vocabulary: Annotated[
        Path | None,
        typer.Option(
            help="Athena vocabulary folder (CONCEPT.csv, CONCEPT_RELATIONSHIP.csv, CONCEPT_ANCESTOR.csv)"
        ),
    ] = None,
    prefer_source: Annotated[
        bool, typer.Option(help="Code facts by their source concept (e.g. ICD-10-CM) first")
    ] = False,
    cdm_version: Annotated[
        str | None, typer.Option(help="5.3 or 5.4; default: cdm_source.cdm_version, else the columns")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="duckdb (one file) or parquet (a folder of Parquet tables)")
    ] = "duckdb",
) -> None:
    """Import OMOP CDM 5.3 or 5.4 tables into the canonical registry schema; print what was read,
    written and dropped per table."""
    from toolkit.registry.importers.omop import import_omop

    path = import_omop(
        folder,
        out_path,
        vocabulary=vocabulary,
        prefer_source=prefer_source,
        cdm_version=cdm_version,
        format=fmt,
    )
    _print_summary(path)
    out.print(f"wrote {path}")


def _print_summary(path: Path) -> None:
    from toolkit.registry.check import import_summary

    summary = import_summary(path)
    if summary is not None:
        sys.stdout.write(summary.to_text() + "\n")


@registry_app.command("export-meds")
def registry_export_meds(
    registry: Annotated[Path, typer.Argument(help="Registry file")],
    out_dir: Annotated[Path, typer.Option("--out", help="MEDS dataset folder to write (replaced)")],
    shard_size: Annotated[int, typer.Option(help="Subjects per data shard")] = 50_000,
) -> None:
    """Export a registry as a MEDS dataset (data/*.parquet + metadata/), valid for the meds package."""
    from toolkit.registry.meds import export_meds

    out.print(f"wrote {export_meds(registry, out_dir, shard_size=shard_size)}")


@registry_app.command("import-meds")
def registry_import_meds(
    meds_dir: Annotated[Path, typer.Argument(help="MEDS dataset folder")],
    out_path: Annotated[Path, typer.Option("--out", help="Registry file to write")],
    obs_start: Annotated[
        str | None, typer.Option(help="Code that starts an observation period (with --obs-end)")
    ] = None,
    obs_end: Annotated[str | None, typer.Option(help="Code that ends an observation period")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="duckdb (one file) or parquet (a folder of Parquet tables)")
    ] = "duckdb",
) -> None:
    """Import a MEDS dataset into the canonical registry schema; print what was read and written."""
    from toolkit.registry.meds import import_meds

    path = import_meds(
        meds_dir,
        out_path,
        period_codes=(obs_start, obs_end) if obs_start or obs_end else None,
        format=fmt,
    )
    _print_summary(path)
    out.print(f"wrote {path}")


@registry_app.command("convert")
def registry_convert(
    source: Annotated[Path, typer.Argument(help="A registry: a DuckDB file or a Parquet folder")],
    to: Annotated[str, typer.Option("--to", help="parquet (a folder of tables) or duckdb (one file)")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write it (replaced if it exists)")],
    buckets: Annotated[int, typer.Option(help="Person buckets of events, notes and images (parquet)")] = 16,
) -> None:
    """Convert a registry between one DuckDB file and a folder of Parquet tables (same digest)."""
    from toolkit.registry.lake import check_format, write_duckdb, write_lake

    if check_format(to, option="--to") == "parquet":
        path = write_lake(source, out_path, buckets=buckets)
    else:
        path = write_duckdb(source, out_path)
    out.print(f"wrote {path}")


# --- cohort --------------------------------------------------------------------------------
@cohort_app.command("schema")
def cohort_schema() -> None:
    """Print the JSON Schema of a cohort specification."""
    from toolkit.cohort.spec import CohortSpec

    _print_json(CohortSpec.model_json_schema())


@cohort_app.command("run")
def cohort_run(
    spec: Path,
    registry: Annotated[
        str, typer.Option(help="Registry: a DuckDB file or a Parquet folder (spark: also hdfs://, s3a://)")
    ],
    out_dir: Annotated[Path, typer.Option("--out")],
    backend: Annotated[str, typer.Option(help="duckdb or spark (spark reads a Parquet folder)")] = "duckdb",
    master: Annotated[str, typer.Option(help="Spark master: local[N] or spark://HOST:PORT")] = "local[2]",
) -> None:
    """Run a cohort: writes cohort.parquet, attrition.csv and provenance.parquet."""
    from toolkit.cohort.run import run_cohort
    from toolkit.registry.store import Registry

    if backend != "duckdb":
        from toolkit.cohort.spark import local_spark, run_cohort_spark

        result = run_cohort_spark(spec, registry, spark=local_spark(master=master))
    else:
        with Registry(Path(registry)) as reg:
            result = run_cohort(spec, reg)
    result.write(out_dir)
    out.print(result.attrition.table.to_string(index=False))
    out.print(f"wrote {out_dir}/cohort.parquet, attrition.csv, provenance.parquet")


# --- study ---------------------------------------------------------------------------------
@study_app.command("schema")
def study_schema() -> None:
    """Print the JSON Schema of study.yaml."""
    from toolkit.study.spec import study_schema as schema

    _print_json(schema())


@study_app.command("results-schema")
def study_results_schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="The reference tables of docs/results.md instead")
    ] = False,
) -> None:
    """Print the JSON Schema of results.json (the typed StudyResults model)."""
    if markdown:
        from toolkit.study.results_doc import generated

        sys.stdout.write(generated() + "\n")
        return
    from toolkit.study.results import StudyResults

    _print_json(StudyResults.model_json_schema())


@study_app.command("run")
def study_run(
    study: Path,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder")],
    registry: Annotated[
        str | None,  # text, not a Path: a lake URI (hdfs://, s3a://) keeps its '//'
        typer.Option(
            help="Use this registry (file, Parquet folder, or lake URI for spark) instead of the study's"
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="duckdb (in process) or spark (the registry as a Parquet folder)")
    ] = "duckdb",
    master: Annotated[str, typer.Option(help="Spark master: local[N] or spark://HOST:PORT")] = "local[2]",
    distributed_rows: Annotated[
        int, typer.Option(help="Spark: XGBoost models of at least this many rows train with xgboost.spark")
    ] = 1_000_000,
    driver_max_rows: Annotated[
        int, typer.Option(help="Spark: the most rows of the analysis matrix brought to the driver")
    ] = 10_000_000,
    mlruns: Annotated[Path, typer.Option(help="MLflow store folder")] = Path("mlruns"),
    track: Annotated[bool, typer.Option(help="Log to MLflow")] = True,
    resume: Annotated[
        bool,
        typer.Option(
            help="Re-use the finished steps cached in OUT/.cache, including those of a crashed or "
            "killed run (--no-resume recomputes everything)"
        ),
    ] = True,
) -> None:
    """Run a study end to end: cohort, features, analyses, models, report, MLflow."""
    from toolkit.cli.studies import print_run, run_with_progress
    from toolkit.study.tracker import NullTracker

    tracker: Any = NullTracker()
    if track:
        from toolkit.tracking.mlflow_tracker import MLflowTracker

        tracker = MLflowTracker(mlruns)
    from toolkit.study.engine import EngineSpec

    spec = EngineSpec(
        engine,  # type: ignore[arg-type]  # EngineSpec checks the name
        master=master,
        distributed_rows=distributed_rows,
        driver_max_rows=driver_max_rows,
    )
    run = run_with_progress(
        study, out_dir=out_dir, registry=registry, tracker=tracker, resume=resume, engine=spec
    )
    print_run(run, out_dir=out_dir, mlruns=mlruns, track=track)


@study_app.command("report")
def study_report(
    out_dir: Annotated[Path, typer.Argument(help="A study run's --out folder (or its report.html)")],
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Print the report to PDF through headless Chromium")
    ] = False,
    to: Annotated[
        Path | None, typer.Option("--to", help="Where the PDF goes (default: OUT/report.pdf)")
    ] = None,
) -> None:
    """Say where a run's report is; with --pdf, print it to A4 PDF (the report's print stylesheet)."""
    from toolkit.study.printing import PrintError, print_pdf

    html = out_dir if out_dir.suffix == ".html" else out_dir / "report.html"
    if not html.is_file():
        raise PrintError(f"{html}: no report (run `regent study run STUDY --out {out_dir}` first)")
    if not pdf:
        out.print(f"report: {html}")
        return
    target = to or html.with_suffix(".pdf")
    pages = print_pdf(html, target)
    out.print(f"report: {html}\npdf:    {target} ({pages} A4 pages)")


# --- agent ---------------------------------------------------------------------------------
@agent_app.command("schema")
def agent_schema() -> None:
    """Print the JSON Schema of agent.yaml."""
    from toolkit.agents.contract import contract_schema

    _print_json(contract_schema())


@agent_app.command("package")
def agent_package(
    contract: Path,
    dist: Annotated[Path, typer.Option(help="Where bundles go")] = Path("dist/agents"),
    mlruns: Annotated[Path, typer.Option(help="MLflow store folder")] = Path("mlruns"),
) -> None:
    """Check the study's gates and package the model as a versioned, hashed agent bundle."""
    from toolkit.agents.package import package_agent
    from toolkit.tracking.models import MLflowModelStore

    with MLflowModelStore(mlruns) as store:
        path, _contract, art = package_agent(contract, store.fetch, dist=dist)
        if art.registered_model and art.model_version is not None:
            store.set_alias(art.registered_model, "validated", art.model_version)
    out.print(f"packaged {path}")


@agent_app.command("verify")
def agent_verify(bundle: Path) -> None:
    """Check every file of a bundle against SHA256SUMS."""
    from toolkit.agents.bundle import verify_bundle

    digest = verify_bundle(bundle)
    out.print(f"ok: {bundle} (bundle sha256 {digest})")


@agent_app.command("list")
def agent_list(dist: Annotated[Path, typer.Argument()] = Path("dist/agents")) -> None:
    """List packaged bundles and their integrity status."""
    from toolkit.agents.bundle import list_bundles

    for b in list_bundles(dist):
        out.print(f"{b['name']:<28} {b['version']:<10} {b['status']:<8} {b['path']}")


def _read_inputs(path: Path, contract: Any) -> dict[str, Any]:
    from toolkit.errors import InputValidationError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputValidationError(f"{path}: not a readable JSON file") from None
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        from toolkit.agents.fhir import map_inputs, resources_of

        values, _ = map_inputs(contract, resources_of({"bundle": data}))
        return values
    if not isinstance(data, dict):
        raise InputValidationError(f"{path}: expected a JSON object of inputs or a FHIR Bundle")
    return data.get("inputs", data)


@agent_app.command("predict")
def agent_predict(
    bundle: Path,
    input_file: Annotated[Path, typer.Option("--input")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Risk, risk group, top contributing inputs and warnings for one patient (JSON or FHIR Bundle)."""
    from toolkit.agents.load import Agent
    from toolkit.errors import InputValidationError

    agent = Agent.load(bundle)
    try:
        p = agent.predict(_read_inputs(input_file, agent.contract))
    except InputValidationError as exc:
        raise InputValidationError(f"{input_file}: {exc}", fields=exc.fields) from None
    if as_json:
        _print_json(p.to_dict())
        return
    out.print(p.summary)
    for c in p.contributions:
        out.print(f"  {c.input}: {c.value} ({c.direction}, {c.contribution:+.3f})")
    for w in p.warnings:
        out.print(f"  warning: {w}")


@agent_app.command("explain")
def agent_explain(bundle: Path, input_file: Annotated[Path, typer.Option("--input")]) -> None:
    """Every input's contribution to the prediction (JSON)."""
    from toolkit.agents.load import Agent

    agent = Agent.load(bundle)
    _print_json(agent.explain(_read_inputs(input_file, agent.contract)).to_dict())


from toolkit.cli.monitor import agent_monitor  # noqa: E402

agent_app.command("monitor")(agent_monitor)

# --- serve ---------------------------------------------------------------------------------
from toolkit.cli.serve_cmds import audit_app, mcp_command, serve_command  # noqa: E402

app.command("serve")(serve_command)
app.command("mcp")(mcp_command)
app.add_typer(audit_app, name="audit")


@app.command("demo")
def demo() -> None:
    """The main job: registry -> hf_mortality study -> gated agent bundle -> one call (Python and CDS Hooks)."""
    from toolkit.cli.demo import run_demo

    run_demo()


def main() -> None:
    try:
        app()
    except ToolkitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
