-- events
SELECT
  *
FROM events
WHERE
  code IN (
    'DEATH',
    'ICD10:Z94.1',
    'ICD10:Z99.2',
    'LOINC:10230-1',
    'LOINC:2160-0',
    'LOINC:2951-2',
    'LOINC:8480-6',
    'SNOMED:32413006',
    'VISIT:OP'
  )
  OR STARTS_WITH(code, 'ICD10:E11')
  OR STARTS_WITH(code, 'ICD10:I50')
  OR STARTS_WITH(code, 'ICD10:J44')
  OR STARTS_WITH(code, 'ICD10:N18');

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
      LAG(index_time) OVER (PARTITION BY person_id ORDER BY index_time) AS _prev
    FROM entry_raw
  ) AS _e
  WHERE
    _prev IS NULL OR index_time >= (
      _prev + INTERVAL '180' DAY
    )
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
    ON e.person_id = b.person_id
    AND e.time >= (
      b.index_time + INTERVAL '1' DAY
    )
    AND e.time <= b.obs_end
  WHERE
    (
      e.code IN ('DEATH')
    ) AND (
      STARTS_WITH(e.text_value, 'ICD10:I')
    )
  GROUP BY
    b.person_id,
    b.index_time
), c2 AS (
  SELECT
    b.person_id,
    b.index_time,
    MIN(e.time) AS t
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id
    AND e.time >= (
      b.index_time + INTERVAL '1' DAY
    )
    AND e.time <= b.obs_end
  WHERE
    (
      e.code IN ('DEATH')
    )
    AND (
      e.text_value IS NULL OR NOT (
        STARTS_WITH(e.text_value, 'ICD10:I')
      )
    )
  GROUP BY
    b.person_id,
    b.index_time
), z3 AS (
  SELECT
    b.person_id,
    b.index_time,
    MIN(e.time) AS t
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id
    AND e.time >= (
      b.index_time + INTERVAL '1' DAY
    )
    AND e.time <= b.obs_end
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
    AND e.time <= (
      b.index_time - INTERVAL '1' DAY
    )
    AND e.time >= (
      b.index_time - INTERVAL '730' DAY
    )
  WHERE
    (
      e.code IN ('VISIT:OP')
    )
  GROUP BY
    b.person_id,
    b.index_time
), k5 AS (
  SELECT
    person_id,
    index_time,
    v
  FROM (
    SELECT
      b.person_id,
      b.index_time,
      e.numeric_value AS v,
      ROW_NUMBER() OVER (PARTITION BY b.person_id, b.index_time ORDER BY e.time DESC, e.numeric_value DESC) AS _rn
    FROM base AS b
    JOIN _cohort_events AS e
      ON e.person_id = b.person_id
      AND e.time <= b.index_time
      AND e.time >= (
        b.index_time - INTERVAL '365' DAY
      )
    WHERE
      (
        e.code IN ('LOINC:2951-2')
      )
      AND e.unit = 'mmol/L'
      AND NOT e.numeric_value IS NULL
  ) AS _r
  WHERE
    _rn = 1
), k6 AS (
  SELECT
    person_id,
    index_time,
    v
  FROM (
    SELECT
      b.person_id,
      b.index_time,
      e.numeric_value AS v,
      ROW_NUMBER() OVER (PARTITION BY b.person_id, b.index_time ORDER BY e.time DESC, e.numeric_value DESC) AS _rn
    FROM base AS b
    JOIN _cohort_events AS e
      ON e.person_id = b.person_id AND e.time <= b.index_time
    WHERE
      (
        e.code IN ('LOINC:2160-0')
      ) AND NOT e.numeric_value IS NULL
  ) AS _r
  WHERE
    _rn = 1
), k7 AS (
  SELECT
    person_id,
    index_time,
    v
  FROM (
    SELECT
      b.person_id,
      b.index_time,
      e.numeric_value AS v,
      ROW_NUMBER() OVER (PARTITION BY b.person_id, b.index_time ORDER BY e.time ASC, e.numeric_value ASC) AS _rn
    FROM base AS b
    JOIN _cohort_events AS e
      ON e.person_id = b.person_id AND e.time <= b.index_time
    WHERE
      (
        e.code IN ('LOINC:2160-0')
      ) AND NOT e.numeric_value IS NULL
  ) AS _r
  WHERE
    _rn = 1
), k8 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time <= b.index_time
  WHERE
    (
      e.code IN ('LOINC:2160-0')
    ) AND NOT e.numeric_value IS NULL
  GROUP BY
    b.person_id,
    b.index_time
), k9 AS (
  SELECT
    l.person_id,
    l.index_time,
    l.v - f.v AS v
  FROM k6 AS l
  JOIN k7 AS f
    ON l.person_id = f.person_id AND l.index_time = f.index_time
), k10 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time <= b.index_time
  WHERE
    (
      STARTS_WITH(e.code, 'ICD10:E11')
    )
  GROUP BY
    b.person_id,
    b.index_time
), k11 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time <= b.index_time
  WHERE
    (
      STARTS_WITH(e.code, 'ICD10:N18')
    )
  GROUP BY
    b.person_id,
    b.index_time
), k12 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id AND e.time <= b.index_time
  WHERE
    (
      STARTS_WITH(e.code, 'ICD10:J44')
    )
  GROUP BY
    b.person_id,
    b.index_time
), k13 AS (
  SELECT
    person_id,
    index_time,
    v
  FROM (
    SELECT
      b.person_id,
      b.index_time,
      e.numeric_value AS v,
      ROW_NUMBER() OVER (PARTITION BY b.person_id, b.index_time ORDER BY e.time DESC, e.numeric_value DESC) AS _rn
    FROM base AS b
    JOIN _cohort_events AS e
      ON e.person_id = b.person_id
      AND e.time <= b.index_time
      AND e.time >= (
        b.index_time - INTERVAL '1' DAY
      )
    WHERE
      (
        e.code IN ('LOINC:10230-1')
      ) AND NOT e.numeric_value IS NULL
  ) AS _r
  WHERE
    _rn = 1
), k14 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id
    AND e.time <= b.index_time
    AND e.time >= (
      b.index_time - INTERVAL '90' DAY
    )
  WHERE
    (
      e.code IN ('LOINC:2160-0')
    )
    AND NOT e.numeric_value IS NULL
    AND e.numeric_value >= 1.5
    AND e.unit = 'mg/dL'
  GROUP BY
    b.person_id,
    b.index_time
), k15 AS (
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
), k16 AS (
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
), k17 AS (
  SELECT
    person_id,
    index_time,
    v
  FROM (
    SELECT
      b.person_id,
      b.index_time,
      e.numeric_value AS v,
      ROW_NUMBER() OVER (PARTITION BY b.person_id, b.index_time ORDER BY e.time DESC, e.numeric_value DESC) AS _rn
    FROM base AS b
    JOIN _cohort_events AS e
      ON e.person_id = b.person_id
      AND e.time <= b.index_time
      AND e.time >= (
        b.index_time - INTERVAL '30' DAY
      )
    WHERE
      (
        e.code IN ('LOINC:8480-6')
      ) AND NOT e.numeric_value IS NULL
  ) AS _r
  WHERE
    _rn = 1
), w18 AS (
  SELECT
    b.person_id,
    b.index_time,
    COUNT(*) AS n
  FROM base AS b
  JOIN _cohort_events AS e
    ON e.person_id = b.person_id
    AND e.time < b.index_time
    AND e.time >= (
      b.index_time - INTERVAL '365' DAY
    )
  WHERE
    (
      e.code IN ('DEATH')
    ) AND (
      STARTS_WITH(e.text_value, 'ICD10:I')
    )
  GROUP BY
    b.person_id,
    b.index_time
), l1 AS (
  SELECT
    b.*,
    LEAST(
      b.obs_end,
      (
        b.index_time + INTERVAL '1825' DAY
      ),
      z3.t,
      CAST('2024-06-30 00:00:00' AS TIMESTAMP)
    ) AS _end_time,
    CASE
      WHEN o1.t <= LEAST(
        b.obs_end,
        (
          b.index_time + INTERVAL '1825' DAY
        ),
        z3.t,
        CAST('2024-06-30 00:00:00' AS TIMESTAMP)
      )
      THEN o1.t
    END AS _t1,
    CASE
      WHEN c2.t <= LEAST(
        b.obs_end,
        (
          b.index_time + INTERVAL '1825' DAY
        ),
        z3.t,
        CAST('2024-06-30 00:00:00' AS TIMESTAMP)
      )
      THEN c2.t
    END AS _t2,
    z3.t AS _tz,
    (
      b.index_time + INTERVAL '1825' DAY
    ) AS _tar_end,
    COALESCE(b._in_obs, FALSE) AS _f1,
    COALESCE((
      NOT b.age IS NULL AND b.age >= 40.0 AND b.age <= 95.0
    ), FALSE) AS _f2,
    COALESCE(
      (
        (
          (
            EPOCH(b.index_time) - EPOCH(b.obs_start)
          ) / 86400.0
        ) >= 180.0
      ),
      FALSE
    ) AS _f3,
    COALESCE(
      (
        (
          (
            EPOCH(b.obs_end) - EPOCH(b.index_time)
          ) / 86400.0
        ) >= 0.5
      ),
      FALSE
    ) AS _f4,
    COALESCE((
      COALESCE(k4.n, 0) >= 2 AND COALESCE(k4.n, 0) <= 30
    ), FALSE) AS _f5,
    COALESCE((
      NOT k5.v IS NULL AND k5.v >= 125.0 AND k5.v <= 150.0
    ), FALSE) AS _f6,
    COALESCE((
      COALESCE(k8.n, 0) >= 2 AND (
        NOT k9.v IS NULL AND k9.v <= 0.5
      )
    ), FALSE) AS _f7,
    COALESCE((
      NOT b.age IS NULL AND b.age >= 50.0
    ), FALSE) AS _f8,
    COALESCE(COALESCE(b.sex IN ('F', 'M'), FALSE), FALSE) AS _f9,
    COALESCE(COALESCE(b.site_id IN ('SITE01', 'SITE02'), FALSE), FALSE) AS _f10,
    COALESCE(COALESCE(CAST(b.smoking AS TEXT) IN ('never', 'former', 'current'), FALSE), FALSE) AS _f11,
    COALESCE(
      (
        (
          COALESCE(k10.n, 0) >= 1
        )
        OR (
          (
            COALESCE(k11.n, 0) >= 1
          ) AND (
            NOT (
              COALESCE(k12.n, 0) >= 1
            )
          )
        )
        OR (
          NOT k13.v IS NULL AND k13.v <= 40.0
        )
        OR (
          COALESCE(k14.n, 0) >= 1
        )
      ),
      FALSE
    ) AS _f12,
    COALESCE((
      NOT (
        COALESCE(k15.n, 0) >= 1
      )
    ), FALSE) AS _f13,
    COALESCE((
      NOT (
        COALESCE(k16.n, 0) >= 1 AND COALESCE(k16.n, 0) <= 1
      )
    ), FALSE) AS _f14,
    COALESCE(
      (
        NOT (
          COALESCE(CAST(b.smoking AS TEXT) IN ('current'), FALSE)
          AND (
            NOT k17.v IS NULL AND k17.v >= 160.0
          )
        )
      ),
      FALSE
    ) AS _f15,
    COALESCE((
      COALESCE(w18.n, 0) = 0
    ), FALSE) AS _f16,
    COALESCE(
      (
        LEAST(
          b.obs_end,
          (
            b.index_time + INTERVAL '1825' DAY
          ),
          z3.t,
          CAST('2024-06-30 00:00:00' AS TIMESTAMP)
        ) >= (
          b.index_time + INTERVAL '1' DAY
        )
      ),
      FALSE
    ) AS _f17
  FROM base AS b
  LEFT JOIN o1
    ON o1.person_id = b.person_id AND o1.index_time = b.index_time
  LEFT JOIN c2
    ON c2.person_id = b.person_id AND c2.index_time = b.index_time
  LEFT JOIN z3
    ON z3.person_id = b.person_id AND z3.index_time = b.index_time
  LEFT JOIN k4
    ON k4.person_id = b.person_id AND k4.index_time = b.index_time
  LEFT JOIN k5
    ON k5.person_id = b.person_id AND k5.index_time = b.index_time
  LEFT JOIN k6
    ON k6.person_id = b.person_id AND k6.index_time = b.index_time
  LEFT JOIN k7
    ON k7.person_id = b.person_id AND k7.index_time = b.index_time
  LEFT JOIN k8
    ON k8.person_id = b.person_id AND k8.index_time = b.index_time
  LEFT JOIN k9
    ON k9.person_id = b.person_id AND k9.index_time = b.index_time
  LEFT JOIN k10
    ON k10.person_id = b.person_id AND k10.index_time = b.index_time
  LEFT JOIN k11
    ON k11.person_id = b.person_id AND k11.index_time = b.index_time
  LEFT JOIN k12
    ON k12.person_id = b.person_id AND k12.index_time = b.index_time
  LEFT JOIN k13
    ON k13.person_id = b.person_id AND k13.index_time = b.index_time
  LEFT JOIN k14
    ON k14.person_id = b.person_id AND k14.index_time = b.index_time
  LEFT JOIN k15
    ON k15.person_id = b.person_id AND k15.index_time = b.index_time
  LEFT JOIN k16
    ON k16.person_id = b.person_id AND k16.index_time = b.index_time
  LEFT JOIN k17
    ON k17.person_id = b.person_id AND k17.index_time = b.index_time
  LEFT JOIN w18
    ON w18.person_id = b.person_id AND w18.index_time = b.index_time
), l2 AS (
  SELECT
    l1.*,
    LEAST(_t1, _t2) AS _tev
  FROM l1
), l3 AS (
  SELECT
    l2.*,
    CASE
      WHEN NOT _t1 IS NULL AND _t1 = _tev
      THEN 1
      WHEN NOT _t2 IS NULL AND _t2 = _tev
      THEN 2
      ELSE 0
    END AS event,
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
    WHEN _end_time = CAST('2024-06-30 00:00:00' AS TIMESTAMP)
    THEN 'calendar_date'
    WHEN _end_time = _tar_end
    THEN 'end_of_time_at_risk'
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
    WHEN event = 1 AND time <= 730.0
    THEN 1
    WHEN time >= 730.0
    THEN 0
    WHEN event >= 2
    THEN 0
    ELSE NULL
  END AS label_730d,
  CASE
    WHEN age IS NULL
    THEN NULL
    WHEN age < 60.0
    THEN '<60'
    WHEN age < 70.0
    THEN '60-69'
    WHEN age < 80.0
    THEN '70-79'
    ELSE '80+'
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
    WHEN NOT _f7
    THEN 7
    WHEN NOT _f8
    THEN 8
    WHEN NOT _f9
    THEN 9
    WHEN NOT _f10
    THEN 10
    WHEN NOT _f11
    THEN 11
    WHEN NOT _f12
    THEN 12
    WHEN NOT _f13
    THEN 13
    WHEN NOT _f14
    THEN 14
    WHEN NOT _f15
    THEN 15
    WHEN NOT _f16
    THEN 16
    WHEN NOT _f17
    THEN 17
    ELSE 18
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
  label_365d,
  label_730d
FROM _cohort_candidates
WHERE
  _fail_step = 18
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
