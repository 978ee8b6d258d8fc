"""One compile function per criterion kind, registered in a mapping.

Each function turns a criterion into SQL pieces: zero or more aggregate CTEs keyed by
``(person_id, index_time)`` and a boolean expression over the candidate row ``b`` and those
CTEs.  Expressions never evaluate to NULL (missing data fails a condition), so ``NOT`` is safe.
Everything is DuckDB-dialect SQL text; :mod:`toolkit.cohort.compile` transpiles per backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.cohort import spec as C
from toolkit.errors import CohortSpecError


def lit(value: Any) -> str:
    """A SQL literal for a spec value (never for patient data)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def shift(expr: str, days: float) -> str:
    """``expr`` moved by ``days`` (negative: earlier), as portable interval arithmetic."""
    if days == 0:
        return expr
    sign = "+" if days > 0 else "-"
    mag = abs(days)
    if float(mag).is_integer():
        return f"({expr} {sign} INTERVAL '{int(mag)}' DAY)"
    hours = mag * 24
    if float(hours).is_integer():
        return f"({expr} {sign} INTERVAL '{int(hours)}' HOUR)"
    return f"({expr} {sign} INTERVAL '{round(mag * 86400)}' SECOND)"


def days_between(start: str, end: str) -> str:
    return f"((epoch({end}) - epoch({start})) / 86400.0)"


@dataclass
class Context:
    """Compile state: the concept sets, the attribute types and the CTEs emitted so far."""

    concept_sets: Mapping[str, list[C.ConceptItem]]
    attributes: Mapping[str, str]
    source: str
    ctes: list[tuple[str, str]] = field(default_factory=list)
    events: str = "events"  # the events relation the CTEs read (a pre-filtered copy in cohorts)
    patterns: set[str] = field(default_factory=set)  # every code pattern used, for that pre-filter
    refs: list[tuple[C.ConceptRef, ...]] = field(default_factory=list)  # concept references, likewise

    def new_cte(self, sql: str, prefix: str = "k") -> str:
        name = f"{prefix}{len(self.ctes) + 1}"
        self.ctes.append((name, sql))
        return name

    def codes(self, f: C.CodeFilter) -> list[str]:
        """The code patterns of a filter (its concept set's strings)."""
        if f.codes is not None:
            return list(f.codes)
        return [c for c in self.concept_sets[f.concept or ""] if isinstance(c, str)]

    def concept_refs(self, f: C.CodeFilter) -> tuple[C.ConceptRef, ...]:
        """The OMOP concept references of a filter's concept set."""
        if f.codes is not None:
            return ()
        return tuple(c for c in self.concept_sets[f.concept or ""] if isinstance(c, C.ConceptRef))


def codes_sql(patterns: list[str], refs: tuple[C.ConceptRef, ...], column: str) -> str:
    """Whether ``column`` holds one of ``patterns`` (exact or ``prefix*``) or a code the concept
    references resolve to through the registry's ``concept`` and ``concept_ancestor`` tables."""
    exact = sorted(c for c in patterns if not c.endswith("*"))
    prefixes = sorted(c[:-1] for c in patterns if c.endswith("*"))
    parts = [f"{column} IN ({', '.join(lit(c) for c in exact)})"] if exact else []
    parts += [f"starts_with({column}, {lit(p)})" for p in prefixes]
    include = [r for r in refs if not r.exclude]
    exclude = [r for r in refs if r.exclude]
    if include:
        parts.append(_refs_sql(include, column))
    matched = "(" + (" OR ".join(parts) or "FALSE") + ")"
    return f"({matched} AND NOT {_refs_sql(exclude, column)})" if exclude else matched


def _refs_sql(refs: list[C.ConceptRef], column: str) -> str:
    ids = ", ".join(str(i) for i in sorted({r.concept for r in refs}))
    desc = sorted({r.concept for r in refs if r.descendants})
    where = f"concept_id IN ({ids})"
    if desc:
        where += (
            " OR concept_id IN (SELECT descendant_concept_id FROM concept_ancestor "
            f"WHERE ancestor_concept_id IN ({', '.join(str(i) for i in desc)}))"
        )
    opaque = ", ".join(lit(f"OMOP:{i}") for i in sorted({r.concept for r in refs}))
    return f"({column} IN (SELECT code FROM concept WHERE {where}) OR {column} IN ({opaque}))"


def code_predicate(f: C.CodeFilter, ctx: Context, alias: str = "e") -> str:
    """Which events match a code filter (codes or concept, value range, unit, text)."""
    ctx.patterns.update(ctx.codes(f))
    refs = ctx.concept_refs(f)
    if refs:
        ctx.refs.append(refs)
    conds = [codes_sql(ctx.codes(f), refs, f"{alias}.code")]
    if f.value is not None:
        conds += value_conditions(f.value, f"{alias}.numeric_value", f"{alias}.unit")
    if f.text is not None:
        if f.text.prefix:
            conds.append(
                "(" + " OR ".join(f"starts_with({alias}.text_value, {lit(p)})" for p in f.text.prefix) + ")"
            )
        if f.text.not_prefix:
            conds.append(
                f"({alias}.text_value IS NULL OR NOT ("
                + " OR ".join(f"starts_with({alias}.text_value, {lit(p)})" for p in f.text.not_prefix)
                + "))"
            )
    return " AND ".join(conds)


def value_conditions(r: C.ValueRange, value: str, unit: str) -> list[str]:
    out = [f"{value} IS NOT NULL"] if (r.min is not None or r.max is not None) else []
    if r.min is not None:
        out.append(f"{value} >= {lit(float(r.min))}")
    if r.max is not None:
        out.append(f"{value} <= {lit(float(r.max))}")
    if r.unit is not None:
        out.append(f"{unit} = {lit(r.unit)}")
    return out


def window_join(w: C.Window, alias: str = "e") -> str:
    cond = [f"{alias}.person_id = b.person_id", f"{alias}.time <= {shift('b.index_time', w.end_days)}"]
    if w.start_days is not None:
        cond.append(f"{alias}.time >= {shift('b.index_time', w.start_days)}")
    return " AND ".join(cond)


def _occurs(c: C.OccursCriterion, ctx: Context) -> str:
    o = c.occurs
    name = ctx.new_cte(
        f"SELECT b.person_id, b.index_time, COUNT(*) AS n FROM base b JOIN {ctx.events} e ON "
        f"{window_join(o.window)} WHERE {code_predicate(o, ctx)} GROUP BY b.person_id, b.index_time"
    )
    lo, hi = o.count.bounds()
    n = f"COALESCE({name}.n, 0)"
    expr = f"{n} >= {lo}"
    if hi is not None:
        expr += f" AND {n} <= {hi}"
    return f"({expr})"


def _ranked(f: C.CodeFilter, w: C.Window, ctx: Context, order: str) -> str:
    return (
        "SELECT person_id, index_time, v FROM (SELECT b.person_id, b.index_time, e.numeric_value AS v, "
        f"ROW_NUMBER() OVER (PARTITION BY b.person_id, b.index_time ORDER BY e.time {order}, "
        f"e.numeric_value {order}) AS _rn FROM base b JOIN {ctx.events} e ON {window_join(w)} "
        f"WHERE {code_predicate(f, ctx)} AND e.numeric_value IS NOT NULL) AS _r WHERE _rn = 1"
    )


def _with_unit(f: Any, unit: str | None) -> Any:
    """Only measurements in ``unit`` count: merged into the filter's own value range, if any."""
    if unit is None:
        return f
    value = f.value or C.ValueRange()
    if value.unit is not None and value.unit != unit:
        raise CohortSpecError(f"value.unit {value.unit!r} and the range's unit {unit!r} disagree")
    return f.model_copy(update={"value": value.model_copy(update={"unit": unit})})


def _in_range(expr: str, r: C.ValueRange) -> str:
    conds = [f"{expr} IS NOT NULL"]
    if r.min is not None:
        conds.append(f"{expr} >= {lit(float(r.min))}")
    if r.max is not None:
        conds.append(f"{expr} <= {lit(float(r.max))}")
    return "(" + " AND ".join(conds) + ")"


def _latest(c: C.LatestCriterion, ctx: Context) -> str:
    f = _with_unit(c.latest, c.latest.range.unit)
    name = ctx.new_cte(_ranked(f, f.window, ctx, "DESC"))
    return _in_range(f"{name}.v", f.range)


def _trend(c: C.TrendCriterion, ctx: Context) -> str:
    f = _with_unit(c.trend, c.trend.change.unit)
    last = ctx.new_cte(_ranked(f, f.window, ctx, "DESC"))
    first = ctx.new_cte(_ranked(f, f.window, ctx, "ASC"))
    count = ctx.new_cte(
        f"SELECT b.person_id, b.index_time, COUNT(*) AS n FROM base b JOIN {ctx.events} e ON "
        f"{window_join(f.window)} WHERE {code_predicate(f, ctx)} AND e.numeric_value IS NOT NULL "
        "GROUP BY b.person_id, b.index_time"
    )
    change = ctx.new_cte(
        f"SELECT l.person_id, l.index_time, l.v - f.v AS v FROM {last} l JOIN {first} f "
        "ON l.person_id = f.person_id AND l.index_time = f.index_time"
    )
    return f"(COALESCE({count}.n, 0) >= 2 AND {_in_range(f'{change}.v', f.change)})"


def _age(c: C.AgeCriterion, ctx: Context) -> str:
    return _in_range("b.age", C.ValueRange(min=c.age.min, max=c.age.max))


def _sex(c: C.SexCriterion, ctx: Context) -> str:
    return f"COALESCE(b.sex IN ({', '.join(lit(s) for s in c.sex)}), FALSE)"


def _site(c: C.SiteCriterion, ctx: Context) -> str:
    return f"COALESCE(b.site_id IN ({', '.join(lit(s) for s in c.site)}), FALSE)"


def _attribute(c: C.AttributeCriterion, ctx: Context) -> str:
    a = c.attribute
    if a.name not in ctx.attributes:
        raise CohortSpecError(
            f"{ctx.source}: attribute.name: the registry has no static attribute {a.name!r}; "
            f"available: {sorted(ctx.attributes) or 'none'}"
        )
    col = f"b.{a.name}"
    if a.in_ is not None:
        dtype = ctx.attributes[a.name]
        if dtype in ("float", "int"):
            vals = [float(v) for v in a.in_ if not isinstance(v, str)]
            return f"COALESCE(CAST({col} AS DOUBLE) IN ({', '.join(lit(v) for v in vals) or 'NULL'}), FALSE)"
        if dtype == "bool":
            vals = [bool(v) if not isinstance(v, str) else v.lower() in ("true", "1", "yes") for v in a.in_]
            return f"COALESCE({col} IN ({', '.join(lit(v) for v in vals)}), FALSE)"
        return f"COALESCE(CAST({col} AS VARCHAR) IN ({', '.join(lit(str(v)) for v in a.in_)}), FALSE)"
    return _in_range(f"CAST({col} AS DOUBLE)", C.ValueRange(min=a.min, max=a.max))


def _all(c: C.AllCriterion, ctx: Context) -> str:
    return "(" + " AND ".join(compile_criterion(x, ctx) for x in c.all) + ")"


def _any(c: C.AnyCriterion, ctx: Context) -> str:
    return "(" + " OR ".join(compile_criterion(x, ctx) for x in c.any) + ")"


def _not(c: C.NotCriterion, ctx: Context) -> str:
    return f"(NOT {compile_criterion(c.not_, ctx)})"


COMPILERS: dict[type, Callable[[Any, Context], str]] = {
    C.OccursCriterion: _occurs,
    C.LatestCriterion: _latest,
    C.TrendCriterion: _trend,
    C.AgeCriterion: _age,
    C.SexCriterion: _sex,
    C.SiteCriterion: _site,
    C.AttributeCriterion: _attribute,
    C.AllCriterion: _all,
    C.AnyCriterion: _any,
    C.NotCriterion: _not,
}


def compile_criterion(criterion: Any, ctx: Context) -> str:
    """The boolean SQL expression of a criterion (registering any CTEs it needs in ``ctx``)."""
    return COMPILERS[type(criterion)](criterion, ctx)
