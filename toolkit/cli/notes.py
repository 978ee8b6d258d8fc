"""The ``regent notes`` command group; each command lives in its own module and is registered here."""

from __future__ import annotations

import typer

from toolkit.cli.multimodal import notes_evaluate
from toolkit.cli.notes_context import annotate_command, evaluate_context_command
from toolkit.cli.notes_deid import deidentify_command, evaluate_deid_command, mine_site_terms_command

notes_app = typer.Typer(help="Clinical notes: extract, annotate and evaluate.", no_args_is_help=True)
notes_app.command("evaluate")(notes_evaluate)
notes_app.command("annotate")(annotate_command)
notes_app.command("evaluate-context")(evaluate_context_command)
notes_app.command("deidentify")(deidentify_command)
notes_app.command("evaluate-deid")(evaluate_deid_command)
notes_app.command("mine-site-terms")(mine_site_terms_command)
