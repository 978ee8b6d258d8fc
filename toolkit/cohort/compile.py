"""Compile a cohort specification to SQL: pure, deterministic, testable as text.

``compile_cohort(spec, attributes=...)`` returns a :class:`CompiledCohort` holding DuckDB-dialect
SQL; ``CompiledCohort.sql_for("spark")`` transpiles it with SQLGlot.  Running it is the job of
:mod:`toolkit.cohort.run`.

The candidates query yields one row per potential index event with every person-level input,
the outcome (time, event, censor reason, horizon labels) and ``_fail_step``: the first attrition
step the row fails (``len(steps)`` when it passes them all).  Attrition, the cohort table and
provenance are small queries over that materialised table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from toolkit.cohort import spec as C
from toolkit.cohort.criteria import (
    Context,
    code_predicate,
    codes_sql,
    compile_criterion,
    days_between,
    lit,
    shift,
)
from toolkit.errors import CohortSpecError
from toolkit.registry import schema as S

CANDIDATES = "_cohort_candidates"
COHORT_EVENTS = "_cohort_events"  # the events any part of the cohort looks at, filtered once
BUILTIN_SUBGROUPS = ("sex", "site_id", "age_band")


@dataclass(frozen=True)
class Step:
    """One attrition step: ``kind`` is entry, observation, age, inclusion, exclusion or washout."""

    name: str
    kind: str
    description: str


@dataclass(frozen=True)
class CompiledCohort:
    name: str
    events_sql: str  # materialised as COHORT_EVENTS before the candidates query
    candidates_sql: str
    steps: tuple[Step, ...]
    columns: tuple[str, ...]
    horizons: tuple[tuple[str, float], ...]
    has_outcome: bool
    uses_vocabulary: bool = False  # concept references read the registry's concept tables

    @property
    def final_step(self) -> int:
        return len(self.steps)

    def cohort_sql(self) -> str:
        return (
            f"SELECT {', '.join(self.columns)} FROM {CANDIDATES} "
            f"WHERE _fail_step = {self.final_step} ORDER BY person_id, index_time"
        )

    def step_counts_sql(self) -> str:
        ev = "SUM(CASE WHEN event = 1 THEN 1 ELSE 0 END)" if self.has_outcome else "0"
        return (
            f"SELECT _fail_step, COUNT(*) AS n_rows, {ev} AS n_events FROM {CANDIDATES} GROUP BY _fail_step"
        )

    def person_steps_sql(self) -> str:
        return (
            "SELECT f, COUNT(*) AS n FROM (SELECT p.person_id, COALESCE(MAX(c._fail_step), 0) AS f "
            f"FROM person p LEFT JOIN {CANDIDATES} c ON c.person_id = p.person_id "
            "GROUP BY p.person_id) AS _pf GROUP BY f"
        )

    def provenance_sql(self) -> str:
        return (
            "SELECT p.person_id, COALESCE(r.f, 0) AS _fail_step, r.entry_code, r.index_time "
            "FROM person p LEFT JOIN (SELECT person_id, f, entry_code, index_time FROM ("
            "SELECT person_id, _fail_step AS f, entry_code, index_time, ROW_NUMBER() OVER ("
            "PARTITION BY person_id ORDER BY _fail_step DESC, index_time) AS _rn "
            f"FROM {CANDIDATES}) AS _x WHERE _rn = 1) AS r ON r.person_id = p.person_id "
            "ORDER BY p.person_id"
        )

    def sql_for(self, dialect: str = "duckdb", *, pretty: bool = False) -> dict[str, str]:
        """Every query of this cohort in ``dialect`` (``duckdb`` or ``spark``)."""
        queries = {
            "events": self.events_sql,
            "candidates": self.candidates_sql,
            "cohort": self.cohort_sql(),
            "step_counts": self.step_counts_sql(),
            "person_steps": self.person_steps_sql(),
            "provenance": self.provenance_sql(),
        }
        if dialect == "duckdb" and not pretty:
            return queries
        return {k: _transpile(v, dialect, pretty=pretty) for k, v in queries.items()}


def _spark_epoch(node: exp.Expression) -> exp.Expression:
    """DuckDB's ``epoch(ts)``: seconds of a naive timestamp, fractional, as DOUBLE.

    SQLGlot's default (``UNIX_TIMESTAMP``) truncates to whole seconds, depends on the session time
    zone and returns BIGINT, so ``/ 86400.0`` becomes DECIMAL.  Counting microseconds from the
    naive epoch is exact, zone-free and DOUBLE, as in DuckDB.
    """
    if not isinstance(node, exp.TimeToUnix):
        return node
    micros = exp.TimestampDiff(
        this=node.this,
        expression=exp.cast(exp.Literal.string("1970-01-01 00:00:00"), exp.DataType.Type.TIMESTAMPNTZ),
        unit=exp.var("MICROSECOND"),
    )
    return exp.paren(
        exp.Div(this=exp.cast(micros, exp.DataType.Type.DOUBLE), expression=exp.Literal.number(1_000_000))
    )


#: Per-dialect rewrites SQLGlot does not make on its own (semantics DuckDB has and the target lacks).
_DIALECT_FIXES = {"spark": _spark_epoch}


def _transpile(sql: str, dialect: str, *, pretty: bool) -> str:
    tree = sqlglot.parse_one(sql, read="duckdb")
    fix = _DIALECT_FIXES.get(dialect)
    if fix is not None:
        tree = tree.transform(fix)
    return tree.sql(dialect=dialect, pretty=pretty)


def _age_expr() -> str:
    return (
        "(year(b0.index_time) - year(p.birth_date) - CASE WHEN month(b0.index_time) < month(p.birth_date) "
        "OR (month(b0.index_time) = month(p.birth_date) AND day(b0.index_time) < day(p.birth_date)) "
        "THEN 1 ELSE 0 END)"
    )


def _age_band_expr(bands: list[float]) -> str:
    edges = sorted(bands)
    fmt = [str(int(e)) if float(e).is_integer() else str(e) for e in edges]
    whens = [f"WHEN b.age < {lit(float(edges[0]))} THEN '<{fmt[0]}'"]
    for i in range(1, len(edges)):
        hi = edges[i]
        label = f"{fmt[i - 1]}-{int(hi) - 1 if float(hi).is_integer() else hi}"
        whens.append(f"WHEN b.age < {lit(float(hi))} THEN '{label}'")
    return f"CASE WHEN b.age IS NULL THEN NULL {' '.join(whens)} ELSE '{fmt[-1]}+' END"


def _entry_ctes(spec: C.CohortSpec, ctx: Context) -> list[tuple[str, str]]:
    e = spec.entry
    raw = (
        f"SELECT e.person_id, e.time AS index_time, MIN(e.code) AS entry_code FROM {ctx.events} e "
        f"WHERE {code_predicate(e, ctx)} GROUP BY e.person_id, e.time"
    )
    if e.occurrence == "first":
        entry = (
            "SELECT person_id, index_time, entry_code FROM (SELECT *, ROW_NUMBER() OVER ("
            "PARTITION BY person_id ORDER BY index_time) AS _rn FROM entry_raw) AS _e WHERE _rn = 1"
        )
    else:
        gap = C.parse_offset(e.min_gap)
        prev = "LAG(index_time) OVER (PARTITION BY person_id ORDER BY index_time)"
        entry = (
            "SELECT person_id, index_time, entry_code FROM (SELECT *, "
            f"{prev} AS _prev FROM entry_raw) AS _e WHERE _prev IS NULL"
            + (f" OR index_time >= {shift('_prev', gap)}" if gap > 0 else " OR TRUE")
        )
    obs = (
        "SELECT en.person_id, en.index_time, MIN(o.start_time) AS obs_start, MAX(o.end_time) AS obs_end "
        "FROM entry en JOIN observation_period o ON o.person_id = en.person_id "
        "AND en.index_time >= o.start_time AND en.index_time <= o.end_time "
        "GROUP BY en.person_id, en.index_time"
    )
    attrs = "".join(f", p.{a}" for a in sorted(ctx.attributes))
    base = (
        "SELECT b0.person_id, b0.index_time, b0.entry_code, p.sex, p.site_id"
        f"{attrs}, {_age_expr()} AS age, o.obs_start, o.obs_end, "
        "(o.obs_end IS NOT NULL) AS _in_obs FROM entry b0 "
        "JOIN person p ON p.person_id = b0.person_id "
        "LEFT JOIN obs o ON o.person_id = b0.person_id AND o.index_time = b0.index_time"
    )
    return [("entry_raw", raw), ("entry", entry), ("obs", obs), ("base", base)]


def _steps(spec: C.CohortSpec, ctx: Context, tar: tuple[str, str] | None) -> list[tuple[Step, str]]:
    """Each attrition step after 'entry' with its pass expression over ``b`` and the CTEs."""
    e = spec.entry
    out: list[tuple[Step, str]] = [
        (
            Step(
                "index inside an observation period",
                "observation",
                "the index event lies within a recorded observation period",
            ),
            "b._in_obs",
        )
    ]
    if e.age is not None:
        out.append(
            (
                Step("age at index", "age", f"age between {e.age.min} and {e.age.max}"),
                _range("b.age", e.age.min, e.age.max),
            )
        )
    prior = C.parse_offset(e.prior_observation)
    if prior > 0:
        out.append(
            (
                Step(
                    f"prior observation >= {e.prior_observation}",
                    "observation",
                    "enough observed time before index",
                ),
                f"({days_between('b.obs_start', 'b.index_time')} >= {lit(prior)})",
            )
        )
    post = C.parse_offset(e.post_observation)
    if post > 0:
        out.append(
            (
                Step(
                    f"post observation >= {e.post_observation}",
                    "observation",
                    "enough observed time after index",
                ),
                f"({days_between('b.index_time', 'b.obs_end')} >= {lit(post)})",
            )
        )
    for crit in spec.inclusion:
        out.append((Step(str(crit.name), "inclusion", "inclusion criterion"), compile_criterion(crit, ctx)))
    for crit in spec.exclusion:
        out.append(
            (
                Step(str(crit.name), "exclusion", "exclusion criterion"),
                f"(NOT {compile_criterion(crit, ctx)})",
            )
        )
    o = spec.outcome
    if o is not None and o.washout is not False:
        lo = (
            "" if o.washout is True else f" AND e.time >= {shift('b.index_time', -C.parse_offset(o.washout))}"
        )
        name = ctx.new_cte(
            f"SELECT b.person_id, b.index_time, COUNT(*) AS n FROM base b JOIN {ctx.events} e ON "
            f"e.person_id = b.person_id AND e.time < b.index_time{lo} WHERE {code_predicate(o, ctx)} "
            "GROUP BY b.person_id, b.index_time",
            prefix="w",
        )
        out.append(
            (
                Step(
                    f"washout: no {o.name} before index",
                    "washout",
                    "outcome not already present before index",
                ),
                f"(COALESCE({name}.n, 0) = 0)",
            )
        )
    if o is not None and tar is not None and (o.time_at_risk.start_days > 0 or o.censor.date is not None):
        out.append(
            (
                Step(
                    "time at risk not empty", "observation", "follow-up reaches the start of the time at risk"
                ),
                f"({tar[1]} >= {tar[0]})",
            )
        )
    return out


def _range(expr: str, lo: float | None, hi: float | None) -> str:
    cond = [f"{expr} IS NOT NULL"]
    if lo is not None:
        cond.append(f"{expr} >= {lit(float(lo))}")
    if hi is not None:
        cond.append(f"{expr} <= {lit(float(hi))}")
    return "(" + " AND ".join(cond) + ")"


def _first_time_cte(f: C.CodeFilter, ctx: Context, prefix: str, start: str) -> str:
    return ctx.new_cte(
        f"SELECT b.person_id, b.index_time, MIN(e.time) AS t FROM base b JOIN {ctx.events} e ON "
        f"e.person_id = b.person_id AND e.time >= {start} AND e.time <= b.obs_end "
        f"WHERE {code_predicate(f, ctx)} GROUP BY b.person_id, b.index_time",
        prefix=prefix,
    )


@dataclass(frozen=True)
class _OutcomeSQL:
    layer1: tuple[str, ...]  # select items over b and the CTEs
    tar: tuple[str, str]  # (start expr, end expr) over b and the CTEs
    event: str  # expressions over layer-1 columns
    tev: str
    reason: str


def _outcome_sql(o: C.Outcome, ctx: Context) -> _OutcomeSQL:
    tar = o.time_at_risk
    tar_start = shift("b.index_time", tar.start_days)
    out_cte = _first_time_cte(o, ctx, "o", tar_start)
    comp = [_first_time_cte(c, ctx, "c", tar_start) for c in o.competing]
    bounds = ["b.obs_end"]
    if tar.end_days is not None:
        bounds.append(shift("b.index_time", tar.end_days))
    cens = _first_time_cte(o.censor.events, ctx, "z", tar_start) if o.censor.events else None
    if cens is not None:
        bounds.append(f"{cens}.t")
    cdate = f"CAST('{o.censor.date.isoformat()} 00:00:00' AS TIMESTAMP)" if o.censor.date else None
    if cdate is not None:
        bounds.append(cdate)
    end = f"LEAST({', '.join(bounds)})" if len(bounds) > 1 else bounds[0]
    items = [f"{end} AS _end_time", f"CASE WHEN {out_cte}.t <= {end} THEN {out_cte}.t END AS _t1"]
    items += [f"CASE WHEN {n}.t <= {end} THEN {n}.t END AS _t{k}" for k, n in enumerate(comp, start=2)]
    reasons = []
    if cens is not None:
        items.append(f"{cens}.t AS _tz")
        reasons.append("WHEN _end_time = _tz THEN 'censoring_event'")
    if cdate is not None:
        reasons.append(f"WHEN _end_time = {cdate} THEN 'calendar_date'")
    if tar.end_days is not None:
        items.append(f"{shift('b.index_time', tar.end_days)} AS _tar_end")
        reasons.append("WHEN _end_time = _tar_end THEN 'end_of_time_at_risk'")
    times = [f"_t{j}" for j in range(1, len(comp) + 2)]
    tev = f"LEAST({', '.join(times)})" if comp else "_t1"
    event = (
        "CASE "
        + " ".join(f"WHEN {t} IS NOT NULL AND {t} = _tev THEN {j}" for j, t in enumerate(times, start=1))
        + " ELSE 0 END"
    )
    reason = f"CASE WHEN event > 0 THEN NULL {' '.join(reasons)} ELSE 'end_of_observation' END"
    return _OutcomeSQL(tuple(items), (tar_start, end), event, tev, reason)


def compile_cohort(
    spec: C.CohortSpec, *, attributes: Mapping[str, str] | None = None, source: str = "cohort"
) -> CompiledCohort:
    """Compile ``spec`` to SQL.  ``attributes`` maps the registry's static attributes to dtypes."""
    attributes = dict(attributes or {})
    concept_sets = {k: v for k, v in spec.concept_sets.items() if isinstance(v, list)}
    if len(concept_sets) != len(spec.concept_sets):
        raise CohortSpecError(f"{source}: concept_sets: files must be resolved before compiling")
    for i, sg in enumerate(spec.subgroups):
        if sg not in BUILTIN_SUBGROUPS and sg not in attributes:
            raise CohortSpecError(
                f"{source}: subgroups[{i}]: unknown subgroup {sg!r}; available: "
                f"{sorted(set(BUILTIN_SUBGROUPS) | set(attributes))}"
            )
    ctx = Context(concept_sets, attributes, source, events=COHORT_EVENTS)
    entry_ctes = _entry_ctes(spec, ctx)
    osql = _outcome_sql(spec.outcome, ctx) if spec.outcome is not None else None
    steps = _steps(spec, ctx, osql.tar if osql else None)

    # layer 1: candidate rows joined to every aggregate CTE; flags and outcome inputs
    joins = "".join(
        f" LEFT JOIN {n} ON {n}.person_id = b.person_id AND {n}.index_time = b.index_time"
        for n, _ in ctx.ctes
    )
    items = ["b.*", *(osql.layer1 if osql else ())]
    items += [f"COALESCE({expr}, FALSE) AS _f{i}" for i, (_, expr) in enumerate(steps, start=1)]
    layer1 = f"SELECT {', '.join(items)} FROM base b{joins}"
    # layer 2: first event among outcome and competing events
    layer2 = f"SELECT l1.*, {osql.tev} AS _tev FROM l1" if osql else "SELECT * FROM l1"
    # layer 3: event, time, censor reason; layer 4: labels, age band, failing step
    horizons: list[tuple[str, float]] = []
    out_cols: list[str] = []
    if osql is not None and spec.outcome is not None:
        layer3 = (
            f"SELECT l2.*, {osql.event} AS event, "
            f"{days_between('index_time', 'COALESCE(_tev, _end_time)')} AS time FROM l2"
        )
        for h in spec.outcome.horizons:
            hd = C.parse_offset(h)
            horizons.append((C.horizon_column(h), hd))
        out_cols = ["time", "event", "censor_reason"] + [n for n, _ in horizons]
        extra = [f"{osql.reason} AS censor_reason"] + [
            f"CASE WHEN event = 1 AND time <= {lit(hd)} THEN 1 WHEN time >= {lit(hd)} THEN 0 "
            f"WHEN event >= 2 THEN 0 ELSE NULL END AS {name}"
            for name, hd in horizons
        ]
    else:
        layer3 = "SELECT * FROM l2"
        extra = []
    if "age_band" in spec.subgroups:
        extra.append(f"{_age_band_expr(spec.age_bands).replace('b.age', 'age')} AS age_band")
    fail = (
        "CASE "
        + " ".join(f"WHEN NOT _f{i} THEN {i}" for i in range(1, len(steps) + 1))
        + (f" ELSE {len(steps) + 1} END")
    )
    if not steps:
        fail = "1"
    extra.append(f"{fail} AS _fail_step")
    ctes = entry_ctes + ctx.ctes + [("l1", layer1), ("l2", layer2), ("l3", layer3)]
    body = "WITH " + ", ".join(f"{n} AS ({q})" for n, q in ctes) + f" SELECT l3.*, {', '.join(extra)} FROM l3"
    steps_meta = (
        Step("entry event", "entry", _entry_description(spec.entry, ctx)),
        *tuple(s for s, _ in steps),
    )
    columns = (
        S.PERSON_ID,
        S.INDEX_TIME,
        "entry_code",
        S.AGE,
        S.SEX,
        S.SITE,
        *sorted(attributes),
        *(["age_band"] if "age_band" in spec.subgroups else []),
        *out_cols,
    )
    # one scan of the events table: every later join reads only events with a code the cohort uses
    exact = sorted(p for p in ctx.patterns if not p.endswith("*"))
    prefixes = sorted(p[:-1] for p in ctx.patterns if p.endswith("*"))
    conds = ([f"code IN ({', '.join(lit(c) for c in exact)})"] if exact else []) + [
        f"starts_with(code, {lit(p)})" for p in prefixes
    ]
    conds += [codes_sql([], refs, "code") for refs in dict.fromkeys(ctx.refs)]
    events_sql = f"SELECT * FROM events WHERE {' OR '.join(conds) or 'FALSE'}"
    return CompiledCohort(
        name=spec.name,
        events_sql=events_sql,
        candidates_sql=body,
        steps=steps_meta,
        columns=tuple(dict.fromkeys(columns)),
        horizons=tuple(horizons),
        has_outcome=spec.outcome is not None,
        uses_vocabulary=bool(ctx.refs),
    )


def _entry_description(e: C.Entry, ctx: Context) -> str:
    refs = [
        f"{'not ' if r.exclude else ''}concept {r.concept}{' and descendants' if r.descendants else ''}"
        for r in ctx.concept_refs(e)
    ]
    codes = ", ".join([*ctx.codes(e), *refs])
    return f"{e.occurrence} occurrence of {codes}"
