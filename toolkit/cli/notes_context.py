"""``regent notes annotate`` and ``regent notes evaluate-context``: ConText attributes of mentions.

``annotate`` reads JSON Lines (one note a line: ``{"id", "text", "targets"?: [{"start", "end",
"concept"?}]}``) and writes one line per mention with its attributes; with targets it assesses
exactly those spans (concepts from another NER, an LLM or a terminology server), otherwise it finds
the mentions with the lexicon.  ``evaluate-context`` scores the attributes on a file in the ConText
evaluation format (docs/features.md).  Errors name the file, the line and the field; note text is
never echoed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from toolkit.errors import SpecError

out = Console(highlight=False, soft_wrap=True)


def _targets(value: object, where: str) -> list[Any]:
    from toolkit.features.mentions import Target

    if not isinstance(value, list):
        raise SpecError(f"{where}: targets: expected a list of {{start, end}} objects")
    found = []
    for k, t in enumerate(value):
        if not isinstance(t, dict) or set(t) - {"start", "end", "concept"}:
            raise SpecError(
                f"{where}: targets[{k}]: expected an object with start, end and optionally concept"
            )
        start, end, concept = t.get("start"), t.get("end"), t.get("concept")
        if (
            not isinstance(start, int)
            or not isinstance(end, int)
            or isinstance(start, bool)
            or isinstance(end, bool)
        ):
            raise SpecError(f"{where}: targets[{k}]: start and end must be integers (character offsets)")
        if concept is not None and not isinstance(concept, str):
            raise SpecError(f"{where}: targets[{k}].concept: expected a string")
        found.append(Target(start, end, concept))
    return found


def annotate_lines(lines: list[str], source: str, *, lexicon: str | None) -> list[dict[str, Any]]:
    """The output records for the input lines (see the module docstring)."""
    from toolkit.features.lexicon import load_lexicon
    from toolkit.features.mentions import annotate

    lex = load_lexicon(lexicon, base=Path.cwd()) if lexicon else None
    records: list[dict[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}: line {n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("text"), str):
            raise SpecError(
                f"{where}: expected an object with 'id' and 'text' (a string), optionally 'targets'"
            )
        if set(item) - {"id", "text", "targets"}:
            raise SpecError(f"{where}: unknown key(s) {sorted(set(item) - {'id', 'text', 'targets'})}")
        text = item["text"]
        if "targets" in item:
            try:
                mentions = annotate(text, targets=_targets(item["targets"], where))
            except SpecError as exc:
                raise SpecError(f"{where}: {exc}") from None
        elif lex is not None:
            mentions = annotate(text, lexicon=lex)
        else:
            raise SpecError(f"{where}: no 'targets' and no --lexicon: give spans or a lexicon to find them")
        for m in mentions:
            records.append(
                {
                    "id": item["id"],
                    "start": m.start,
                    "end": m.end,
                    "text": text[m.start : m.end],
                    "concept": m.concept,
                    "negated": m.negated,
                    "historical": m.historical,
                    "hypothetical": m.hypothetical,
                    "uncertain": m.uncertain,
                    "experiencer": m.experiencer,
                    "section": m.section,
                }
            )
    return records


def annotate_command(
    in_path: Annotated[
        Path, typer.Argument(metavar="IN.jsonl", help="One note a line: {id, text, targets?}")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write one line per mention (JSONL)")],
    lexicon: Annotated[
        str | None,
        typer.Option(
            help="Find mentions with this lexicon (shipped name or YAML) where a line has no targets"
        ),
    ] = None,
) -> None:
    """Negated, historical, hypothetical, uncertain and experiencer of each given span or lexicon mention."""
    if not in_path.is_file():
        raise SpecError(f"{in_path}: file not found")
    records = annotate_lines(in_path.read_text(encoding="utf-8").splitlines(), str(in_path), lexicon=lexicon)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    out.print(f"wrote {len(records)} mention(s) to {out_path}")


def evaluate_context_command(
    annotations: Annotated[Path, typer.Option(help="Sentences in the ConText evaluation format (TSV)")],
    folds: Annotated[
        int,
        typer.Option(
            help="Cross-validate the tuned scope caps over this many folds (0: shipped rules as they are)"
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Precision, recall and F1 per attribute (negated, historical, hypothetical, family, other)."""
    from toolkit.features.context_eval import cross_validate, evaluate, read_context_annotations

    examples = read_context_annotations(annotations)
    chosen: list[dict[str, int | None]] = []
    if folds:
        scores, chosen = cross_validate(examples, k=folds)
    else:
        scores = evaluate(examples)
    report = {**scores.to_dict(), "folds": folds, "caps_per_fold": chosen}
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    how = f"{folds}-fold cross-validation" if folds else "shipped rules"
    out.print(
        f"{scores.rows} sentences ({how}): {scores.scored} scored, {scores.absent} target(s) absent from "
        f"their sentence, {scores.not_found} present but not found ({report['not_found_rate']:.1%})"
    )
    out.print(f"{'attribute':<14}{'tp':>6}{'fp':>6}{'fn':>6}{'tn':>7}{'prec':>8}{'recall':>8}{'F1':>8}")
    for a in scores.attributes:
        out.print(
            f"{a.attribute:<14}{a.tp:>6}{a.fp:>6}{a.fn:>6}{a.tn:>7}{a.precision:>8.3f}{a.recall:>8.3f}{a.f1:>8.3f}"
        )
