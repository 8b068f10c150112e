WITH "ev_orders" AS (
  SELECT
    "e"."user_id" AS "user_id",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2026-09-02 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_0",
    SUM("e"."amount") FILTER(WHERE
      "e"."created_at" >= CAST('2026-09-02 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_1"
  FROM "orders" AS "e"
  WHERE
    "e"."created_at" >= CAST('2026-09-02 02:00:00.000000+00:00' AS TIMESTAMPTZ)
    AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
  GROUP BY
    "e"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."registered_at" AS "u_registered",
    "ev_orders"."orders_0",
    "ev_orders"."orders_1"
  FROM "users" AS "u"
  LEFT JOIN "ev_orders" AS "ev_orders"
    ON "ev_orders"."user_id" = "u"."user_id"
), "labeled" AS (
  SELECT
    *,
    CASE
      WHEN COALESCE(COALESCE("l"."orders_0", 0) >= 5, FALSE)
      AND COALESCE(COALESCE("l"."orders_1", 0) >= 1000, FALSE)
      THEN 'hf_hv'
      WHEN COALESCE(COALESCE("l"."orders_0", 0) >= 5, FALSE)
      THEN 'hf_lv'
      WHEN COALESCE(COALESCE("l"."orders_1", 0) >= 1000, FALSE)
      THEN 'lf_hv'
      ELSE 'lf_lv'
    END AS "class_value_quadrant"
  FROM (
    SELECT
      *
    FROM "base" AS "l"
  ) AS "l"
)
SELECT
  "l"."user_id" AS "user_id"
FROM "labeled" AS "l"
WHERE
  COALESCE("l"."class_value_quadrant" IN ('hf_hv', 'lf_hv'), FALSE)
  AND COALESCE(
    "l"."u_registered" < CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMPTZ),
    FALSE
  )
