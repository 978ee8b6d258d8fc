"""``regent federated ...``, ``regent privacy scan`` and ``regent registry deidentify``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toolkit.errors import FederatedError

federated_app = typer.Typer(
    help="Multi-site studies: sites return aggregates, never rows.", no_args_is_help=True
)
privacy_app = typer.Typer(help="Disclosure control checks.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _sites(spec: str) -> dict[str, Path]:
    paths = [Path(p) for p in spec.split(",") if p.strip()]
    if len(paths) < 2:
        raise FederatedError(f"--sites: give at least two registry files separated by commas; got {spec!r}")
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise FederatedError(f"--sites: site names (file names without extension) must differ; got {names}")
    for p in paths:
        if not p.is_file():
            raise FederatedError(f"--sites: registry {p} not found")
    return dict(zip(names, paths, strict=True))


@federated_app.command("run")
def federated_run(
    study: Path,
    sites: Annotated[str, typer.Option(help="Site registries, comma-separated (site name = file name)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (results.json, report.html)")],
    transport: Annotated[
        str, typer.Option(help="inprocess, or flower (SuperLink + one SuperNode per site)")
    ] = "inprocess",
    exact: Annotated[
        bool, typer.Option(help="Ask sites for exact per-time/per-value counts (every site must allow it)")
    ] = False,
    allow_exact: Annotated[
        bool, typer.Option(help="The local sites' setting: allow exact counts (this demo runs every site)")
    ] = False,
    time_base_days: Annotated[float, typer.Option(help="Base grid of follow-up times in binned mode")] = 1.0,
    min_persons: Annotated[int, typer.Option(help="Sites refuse samples or groups smaller than this")] = 10,
    min_events: Annotated[int, typer.Option(help="Sites refuse analyses with fewer events")] = 10,
    min_bin: Annotated[int, typer.Option(help="Events or values per released bin, per group")] = 10,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a round's replies")] = 300.0,
) -> None:
    """Run a study over site registries; writes results.json with the pooled run's schema."""
    from toolkit.federated import InProcessTransport, RunOptions, SiteLimits, SiteNode, run_federated

    site_paths = _sites(sites)
    limits = SiteLimits(
        min_persons=min_persons,
        min_events=min_events,
        min_bin=min_bin,
        min_cell=min_persons,
        allow_exact=allow_exact,
    )
    options = RunOptions(exact=exact, time_base_days=time_base_days, timeout_s=timeout)
    if transport == "inprocess":
        nodes = [SiteNode(p, name=n, limits=limits) for n, p in site_paths.items()]
        with err.status("federated run") as status:
            run = run_federated(
                study,
                InProcessTransport(nodes, timeout_s=timeout),
                out=out_dir,
                options=options,
                progress=lambda s: status.update(s),
            )
        results = run.results
    elif transport == "flower":
        from toolkit.federated.flower import run_flower

        with err.status("federated run on Flower (SuperLink + SuperNodes on loopback)"):
            results = run_flower(study, site_paths, out=out_dir, options=options, limits=limits)
    else:
        raise FederatedError(f"--transport: expected inprocess or flower; got {transport!r}")
    f = results.federated
    assert f is not None  # a federated run always says how it went
    out.print(
        f"{len(f.sites)} sites ({f.mode} mode, {f.transport}): {f.rounds} rounds, "
        f"{f.bytes_sent:,} bytes sent, {f.bytes_received:,} received"
    )
    for skipped in f.analyses_not_run + f.models_not_run:
        out.print(f"not run: {skipped.get('analysis') or skipped.get('model')} ({skipped['reason']})")
    out.print(f"results: {out_dir / 'results.json'}\nreport:  {out_dir / 'report.html'}")


@federated_app.command("split")
def federated_split(
    registry: Path,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for <site>.duckdb files")],
    by: Annotated[str, typer.Option(help="Person column naming the site")] = "site_id",
) -> None:
    """Split one registry into one registry per site (demonstrations; real sites hold their own)."""
    from toolkit.federated import split_registry

    paths = split_registry(registry, out_dir, by=by)
    out.print(",".join(str(p) for p in paths.values()))


@federated_app.command("node")
def federated_node(
    registry: Path,
    site: Annotated[str, typer.Option(help="This site's name")],
    superlink: Annotated[str, typer.Option(help="The coordinating centre's SuperLink, host:port")],
    port: Annotated[int, typer.Option(help="Local port of this node's runtime API")] = 9094,
    insecure: Annotated[bool, typer.Option(help="Plain HTTP (loopback tests only); default: TLS")] = False,
    root_certificates: Annotated[Path | None, typer.Option(help="CA certificate of the SuperLink")] = None,
    min_persons: int = 10,
    min_events: int = 10,
    min_bin: int = 10,
    persons_per_parameter: int = 10,
    allow_exact: bool = False,
) -> None:
    """Start this site's Flower SuperNode next to its registry (the site's limits are set here)."""
    from toolkit.federated.flower import runtime_available, runtime_dir

    if not runtime_available():
        raise FederatedError(f"the Flower runtime is not installed in {runtime_dir()}; run `make install`")
    if not registry.is_file():
        raise FederatedError(f"{registry}: registry file not found")
    cfg = {
        "site": site,
        "registry": str(registry.resolve()),
        "cache": str(registry.resolve().with_suffix(".federated-cache")),
        "min_persons": min_persons,
        "min_events": min_events,
        "min_bin": min_bin,
        "persons_per_parameter": persons_per_parameter,
        "min_cell": min_persons,
        "allow_exact": allow_exact,
    }
    node_config = " ".join(
        f"{k}={('true' if v else 'false') if isinstance(v, bool) else v if isinstance(v, int) else repr(str(v))}"
        for k, v in cfg.items()
    )
    args = [str(runtime_dir() / "bin" / "flower-supernode"), "--superlink", superlink, "--port", str(port)]
    args += ["--insecure"] if insecure else []
    args += ["--root-certificates", str(root_certificates)] if root_certificates else []
    args += ["--node-config", node_config]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(runtime_dir()), os.environ.get("PYTHONPATH")])),
    )
    env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1")
    sys.stdout.flush()
    os.execve(args[0], args, env)


@privacy_app.command("scan")
def privacy_scan(
    folder: Path,
    min_cell: Annotated[int, typer.Option(help="Counts 1..min_cell-1 are findings")] = 10,
) -> None:
    """Scan a study's outputs (results.json, report, CSVs, model cards) for small counts, and for
    withheld counts that the published margins determine or bound inside 1..min_cell-1."""
    from toolkit.disclosure.scan import scan_outputs

    findings = scan_outputs(folder, min_cell=min_cell)
    for f in findings:
        out.print(str(f), markup=False)
    if findings:
        raise typer.Exit(1)
    out.print(
        f"no count between 1 and {min_cell - 1} in {folder}, and none derivable from the published "
        "margins; no survival estimate for a group below it"
    )


def registry_deidentify(
    source: Path,
    target: Path,
    key_file: Annotated[Path, typer.Option(help="Secret key (created if missing; keep it at the site)")],
    config: Annotated[Path | None, typer.Option(help="De-identification settings (YAML)")] = None,
    link_table: Annotated[
        Path | None, typer.Option(help="Surrogate ids: write the link table here (default: keyed pseudonyms)")
    ] = None,
) -> None:
    """De-identify a registry: pseudonyms, shifted dates, top-coded ages, coarse geography, scrubbed notes
    and DICOM headers, and a k-anonymity / l-diversity report."""
    from toolkit.registry.deid import DeidConfig, deidentify_registry

    cfg = DeidConfig.load(config) if config else DeidConfig()
    report = deidentify_registry(source, target, key_file=key_file, config=cfg, link_table=link_table)
    out.print(report.summary())
