"""Fit the shipped name/place model of the note de-identifier.

    .venv/bin/python tests/_scripts/fit_deid_model.py [DATA_DIR]

DATA_DIR holds the development half of the PhysioNet ``deid`` corpus (``dev_notes.text``,
``dev_phi.phrase``; default ``../shared/data/deid_physionet``).  The model is fitted on all of
it, its thresholds chosen by cross-validation by person on the same notes (the procedure that
``regent notes evaluate-deid --cv 5`` scores), and written to
``toolkit/registry/deid/data/name_place_model.json``.  The file holds trees over the features
of ``toolkit/registry/deid/features.py``; no note text or word from the corpus.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from toolkit.registry.deid.corpus import read_gold, read_notes  # noqa: E402
from toolkit.registry.deid.evaluate import fit_with_inner_cv, prepare_notes  # noqa: E402
from toolkit.registry.deid.model import MODEL_PATH, save_model  # noqa: E402


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "deid_physionet"
    notes = read_notes(data / "dev_notes.text")
    gold = read_gold(data / "dev_phi.phrase")
    # thresholds chosen without site terms: the shipped engine has none unless a site gives them
    model = fit_with_inner_cv(notes, gold, prepared=prepare_notes(notes), inner_folds=5)
    save_model(model, MODEL_PATH)
    print(f"{MODEL_PATH}: thresholds {model.thresholds}")


if __name__ == "__main__":
    main()
