"""``regent notes deidentify`` and ``regent notes evaluate-deid``: free-text de-identification.

Errors name the file, line and field; note text is never echoed (only counts are printed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def deidentify_command(
    notes: Annotated[Path, typer.Argument(help='JSON Lines: {"note_id", "text", "person_id"?} per line')],
    out_path: Annotated[Path, typer.Option("--out", help='Cleaned notes: {"note_id", "text"} per line')],
    spans: Annotated[
        Path | None, typer.Option(help='Found spans {"note_id", "start", "end", "kind"} (input offsets)')
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="Secret key for surrogates and date shifts (created if missing; keep it at the site)"
        ),
    ] = None,
    mode: Annotated[str, typer.Option(help="surrogate (consistent fake values) or mask ([NAME], [DATE])")] = (
        "surrogate"
    ),
    site_terms: Annotated[
        Path | None, typer.Option(help="The site's own staff and place names, one per line (always removed)")
    ] = None,
    max_shift_days: Annotated[int, typer.Option(help="Dates move by up to this many days")] = 365,
) -> None:
    """Remove names, dates, places, phone numbers and other identifiers from a file of notes."""
    from toolkit.errors import DeidentificationError
    from toolkit.registry.deid.corpus import read_jsonl_notes
    from toolkit.registry.deid.engine import NoteDeidentifier, SiteTerms
    from toolkit.registry.deid.keys import load_or_create_key
    from toolkit.registry.deid.notes import MODES, deidentify_notes, write_outputs

    if mode not in MODES:
        raise DeidentificationError(f"--mode: expected one of {', '.join(MODES)}; got {mode!r}")
    if mode == "surrogate" and key_file is None:
        raise DeidentificationError(
            "--mode surrogate needs --key-file (surrogates and date shifts are keyed)"
        )
    if not notes.is_file():
        raise DeidentificationError(f"{notes}: notes file not found")
    if out_path.resolve() == notes.resolve():
        raise DeidentificationError(f"{out_path}: --out must not replace the input notes")
    key = load_or_create_key(key_file) if key_file is not None else None
    terms = SiteTerms.from_lines(site_terms.read_text(encoding="utf-8").splitlines()) if site_terms else None
    rows = read_jsonl_notes(notes)
    with err.status(f"de-identifying {len(rows)} notes"):
        cleaned = deidentify_notes(
            rows,
            mode=mode,
            key=key,
            engine=NoteDeidentifier(site_terms=terms),
            max_shift_days=max_shift_days,
        )
    n = write_outputs(cleaned, out_path, spans)
    out.print(f"{len(cleaned)} notes, {n} identifiers replaced ({mode}): {out_path}")


def evaluate_deid_command(
    notes: Annotated[Path, typer.Option(help="Notes: a PhysioNet deid .text file or JSON Lines")],
    gold: Annotated[Path, typer.Option(help="Gold spans: a PhysioNet .phrase file or JSON Lines")],
    cv: Annotated[
        int,
        typer.Option(
            help="Cross-validate by person with this many folds (refits the model); 0: shipped model"
        ),
    ] = 0,
    found: Annotated[
        Path | None, typer.Option(help="Score these spans (JSON Lines) instead of running the de-identifier")
    ] = None,
    site_terms: Annotated[
        Path | None, typer.Option(help="The site's own names and places, one per line (shipped model)")
    ] = None,
    mine_site_terms: Annotated[
        bool,
        typer.Option(help="With --cv: learn site terms from the training folds' gold, as a site would"),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON")] = False,
) -> None:
    """Score the de-identifier against gold spans: recall per category, partial catches,
    precision, and the share of non-identifier words altered."""
    from collections import defaultdict

    from toolkit.errors import DeidentificationError
    from toolkit.registry.deid.corpus import check_gold, read_gold, read_jsonl_gold, read_notes
    from toolkit.registry.deid.engine import NoteDeidentifier, SiteTerms
    from toolkit.registry.deid.evaluate import cross_validate, find_by_person, score
    from toolkit.registry.deid.spans import Span

    rows = read_notes(notes)
    gold_spans = read_gold(gold)
    check_gold(rows, gold_spans, source=str(gold))
    if found is not None:
        if cv:
            raise DeidentificationError("--found and --cv exclude each other")
        by_note: dict[str, list[Span]] = defaultdict(list)
        for g in read_jsonl_gold(found):
            by_note[g.note_id].append(Span(g.start, g.end, g.kind, ""))
        result = score(rows, gold_spans, by_note)
    elif cv:
        if cv < 2:
            raise DeidentificationError(f"--cv: expected 0 or at least 2 folds; got {cv}")
        with err.status("cross-validating") as status:
            result, _ = cross_validate(
                rows, gold_spans, folds=cv, site_terms=mine_site_terms, progress=lambda s: status.update(s)
            )
    else:
        terms = (
            SiteTerms.from_lines(site_terms.read_text(encoding="utf-8").splitlines()) if site_terms else None
        )
        with err.status(f"de-identifying {len(rows)} notes"):
            result = score(rows, gold_spans, find_by_person(NoteDeidentifier(site_terms=terms), rows))
    # plain stdout: rich would read "[...]" in the output as markup
    sys.stdout.write((json.dumps(result.to_dict(), indent=2) if as_json else result.to_text()) + "\n")


def mine_site_terms_command(
    notes: Annotated[Path, typer.Option(help="Annotated notes of this site (PhysioNet .text or JSON Lines)")],
    gold: Annotated[Path, typer.Option(help="Their gold spans (PhysioNet .phrase or JSON Lines)")],
    out_path: Annotated[Path, typer.Option("--out", help="Site terms file (KIND<TAB>term per line)")],
    min_persons: Annotated[int, typer.Option(help="A term must be marked for this many persons")] = 2,
) -> None:
    """Learn a site's own names and places (its hospital, wards, staff seen by many patients) from
    annotated notes, for ``--site-terms``.  The file holds identifiers: keep it at the site."""
    from toolkit.io import atomic_write_text
    from toolkit.registry.deid.corpus import check_gold, read_gold, read_notes
    from toolkit.registry.deid.evaluate import mine_site_terms

    rows = read_notes(notes)
    gold_spans = read_gold(gold)
    check_gold(rows, gold_spans, source=str(gold))
    terms = mine_site_terms(rows, gold_spans, min_persons=min_persons)
    atomic_write_text(out_path, "".join(f"{kind}\t{term}\n" for term, kind in sorted(terms.terms.items())))
    out.print(f"{len(terms.terms)} site terms: {out_path}")
