-- events
SELECT
  *
FROM events
WHERE
  code IN ('DEATH', 'ICD10:Z94.1', 'ICD10:Z99.2', 'SNOMED:32413006')
  OR STARTS_WITH(code, 'ICD10:I50');

-- candidates
WITH entry_raw AS (
  SELECT
    e.person_id,
    e.time AS index_time,
    MIN(e.code) AS entry_code
  FROM _cohort_events AS e
  WHERE
    (
      STARTS_WITH(e.code, 'ICD10:I50')
    )
  GROUP BY
    e.person_id,
    e.time
), entry AS (
  SELECT
    person_id,
    index_time,
    entry_code
  FROM (
    SELECT
      *,
      ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY index_time) AS _rn
    FROM entry_raw
  ) AS _e
  WHERE
    _rn = 1
), obs AS (
  SELECT
    en.person_id,
    en.index_time,
    MIN(o.start_time) AS obs_start,
    MAX(o.end_time) AS obs_end
  FROM entry AS en
  JOIN observation_period AS o
    ON o.person_id = en.person_id
    AND en.index_time >= o.start_time
    AND en.index_time <= o.end_time
  GROUP BY
    en.person_id,
    en.index_time
), base AS (
  SELECT
    b0.person_id,
    b0.index_time,
    b0.entry_code,
    p.sex,
    p.site_id,
    p.smoking,
    (
      YEAR(b0.index_time) - YEAR(p.birth_date) - CASE
        WHEN MONTH(b0.index_time) < MONTH(p.birth_date)
        OR (
          MONTH(b0.index_time) = MONTH(p.birth_date)
          AND DAY(b0.index_time) < DAY(p.birth_date)
        )
        THEN 1
        ELSE 0
      END
    ) AS age,
    o.obs_start,
    o.obs_end,
    (
      NOT o.obs_end IS NULL
    ) AS _in_obs
  FROM entry AS b0
  JOIN person AS p
    ON p.person_id = b0.person_id
  LEFT JOIN obs AS o
    ON o.person_id = b0.person_id AND o.index_time = b0.index_time
), o1 AS (
  SELECT
    b.person_id,
    b.index_time,
    MIN(e.time) AS t
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time >= b.index_time AND e.time <= b.obs_end
  WHERE
    (
      e.code IN ('DEATH')
    )
  GROUP BY
    b.person_id,
    b.index_time
), z2 AS (
  SELECT
    b.person_id,
    b.index_time,
    MIN(e.time) AS t
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time >= b.index_time AND e.time <= b.obs_end
  WHERE
    (
      e.code IN ('ICD10:Z94.1', 'SNOMED:32413006')
    )
  GROUP BY
    b.person_id,
    b.index_time
), k3 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time <= b.index_time
  WHERE
    (
      e.code IN ('ICD10:Z94.1', 'SNOMED:32413006')
    )
  GROUP BY
    b.person_id,
    b.index_time
), k4 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id
    AND e.time <= b.index_time
    AND e.time >= (
      b.index_time - INTERVAL '365' DAY
    )
  WHERE
    (
      e.code IN ('ICD10:Z99.2')
    )
  GROUP BY
    b.person_id,
    b.index_time
), w5 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time < b.index_time
  WHERE
    (
      e.code IN ('DEATH')
    )
  GROUP BY
    b.person_id,
    b.index_time
), l1 AS (
  SELECT
    b.*,
    LEAST(b.obs_end, z2.t) AS _end_time,
    CASE WHEN o1.t <= LEAST(b.obs_end, z2.t) THEN o1.t END AS _t1,
    z2.t AS _tz,
    COALESCE(b._in_obs, FALSE) AS _f1,
    COALESCE((
      NOT b.age IS NULL AND b.age >= 18.0
    ), FALSE) AS _f2,
    COALESCE(
      (
        (
          (
            EPOCH(b.index_time) - EPOCH(b.obs_start)
          ) / 86400.0
        ) >= 365.0
      ),
      FALSE
    ) AS _f3,
    COALESCE((
      NOT (
        COALESCE(k3.n, 0) >= 1
      )
    ), FALSE) AS _f4,
    COALESCE((
      NOT (
        COALESCE(k4.n, 0) >= 1
      )
    ), FALSE) AS _f5,
    COALESCE((
      COALESCE(w5.n, 0) = 0
    ), FALSE) AS _f6
  FROM base AS b
  LEFT JOIN o1
    ON o1.person_id = b.person_id AND o1.index_time = b.index_time
  LEFT JOIN z2
    ON z2.person_id = b.person_id AND z2.index_time = b.index_time
  LEFT JOIN k3
    ON k3.person_id = b.person_id AND k3.index_time = b.index_time
  LEFT JOIN k4
    ON k4.person_id = b.person_id AND k4.index_time = b.index_time
  LEFT JOIN w5
    ON w5.person_id = b.person_id AND w5.index_time = b.index_time
), l2 AS (
  SELECT
    l1.*,
    _t1 AS _tev
  FROM l1
), l3 AS (
  SELECT
    l2.*,
    CASE WHEN NOT _t1 IS NULL AND _t1 = _tev THEN 1 ELSE 0 END AS event,
    (
      (
        EPOCH(COALESCE(_tev, _end_time)) - EPOCH(index_time)
      ) / 86400.0
    ) AS time
  FROM l2
)
SELECT
  l3.*,
  CASE
    WHEN event > 0
    THEN NULL
    WHEN _end_time = _tz
    THEN 'censoring_event'
    ELSE 'end_of_observation'
  END AS censor_reason,
  CASE
    WHEN event = 1 AND time <= 365.0
    THEN 1
    WHEN time >= 365.0
    THEN 0
    WHEN event >= 2
    THEN 0
    ELSE NULL
  END AS label_365d,
  CASE
    WHEN age IS NULL
    THEN NULL
    WHEN age < 65.0
    THEN '<65'
    WHEN age < 75.0
    THEN '65-74'
    WHEN age < 85.0
    THEN '75-84'
    ELSE '85+'
  END AS age_band,
  CASE
    WHEN NOT _f1
    THEN 1
    WHEN NOT _f2
    THEN 2
    WHEN NOT _f3
    THEN 3
    WHEN NOT _f4
    THEN 4
    WHEN NOT _f5
    THEN 5
    WHEN NOT _f6
    THEN 6
    ELSE 7
  END AS _fail_step
FROM l3;

-- cohort
SELECT
  person_id,
  index_time,
  entry_code,
  age,
  sex,
  site_id,
  smoking,
  age_band,
  time,
  event,
  censor_reason,
  label_365d
FROM _cohort_candidates
WHERE
  _fail_step = 7
ORDER BY
  person_id,
  index_time;

-- step_counts
SELECT
  _fail_step,
  COUNT(*) AS n_rows,
  SUM(CASE WHEN event = 1 THEN 1 ELSE 0 END) AS n_events
FROM _cohort_candidates
GROUP BY
  _fail_step;

-- person_steps
SELECT
  f,
  COUNT(*) AS n
FROM (
  SELECT
    p.person_id,
    COALESCE(MAX(c._fail_step), 0) AS f
  FROM person AS p
  LEFT JOIN _cohort_candidates AS c
    ON c.person_id = p.person_id
  GROUP BY
    p.person_id
) AS _pf
GROUP BY
  f;

-- provenance
SELECT
  p.person_id,
  COALESCE(r.f, 0) AS _fail_step,
  r.entry_code,
  r.index_time
FROM person AS p
LEFT JOIN (
  SELECT
    person_id,
    f,
    entry_code,
    index_time
  FROM (
    SELECT
      person_id,
      _fail_step AS f,
      entry_code,
      index_time,
      ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY _fail_step DESC, index_time) AS _rn
    FROM _cohort_candidates
  ) AS _x
  WHERE
    _rn = 1
) AS r
  ON r.person_id = p.person_id
ORDER BY
  p.person_id;
