WITH "ev_orders" AS (
  SELECT
    "e"."user_id" AS "user_id",
    MIN("e"."created_at") AS "orders_0",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2026-03-01 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-03-31 12:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_1",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2026-01-30 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-03-01 12:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_2",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2025-10-02 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-03-31 12:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_3",
    COUNT(*) AS "orders_4"
  FROM "orders" AS "e"
  WHERE
    "e"."created_at" < CAST('2026-03-31 12:00:00.000000+00:00' AS TIMESTAMPTZ)
  GROUP BY
    "e"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "ev_orders"."orders_0",
    "ev_orders"."orders_1",
    "ev_orders"."orders_2",
    "ev_orders"."orders_3",
    "ev_orders"."orders_4"
  FROM "users" AS "u"
  LEFT JOIN "ev_orders" AS "ev_orders"
    ON "ev_orders"."user_id" = "u"."user_id"
), "labeled" AS (
  SELECT
    *,
    CASE
      WHEN COALESCE(
        "l"."orders_0" >= CAST('2026-03-01 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND "l"."orders_0" < CAST('2026-03-31 12:00:00.000000+00:00' AS TIMESTAMPTZ),
        FALSE
      )
      THEN 'new'
      WHEN COALESCE(COALESCE("l"."orders_1", 0) >= 5, FALSE)
      THEN 'mature'
      WHEN COALESCE(COALESCE("l"."orders_1", 0) < COALESCE("l"."orders_2", 0), FALSE)
      THEN 'declining'
      WHEN COALESCE("l"."orders_1", 0) = 0 AND COALESCE("l"."orders_3", 0) > 0
      THEN 'silent'
      WHEN COALESCE("l"."orders_3", 0) = 0 AND COALESCE("l"."orders_4", 0) > 0
      THEN 'churned'
      ELSE 'potential'
    END AS "class_lifecycle"
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
  EXISTS(
    SELECT
      1
    FROM "camp_label_history" AS "h"
    WHERE
      "h"."name" = 'value_quadrant'
      AND "h"."user_id" = CAST("l"."user_id" AS TEXT)
      AND "h"."label" = 'hf_lv'
      AND "h"."valid_from" <= CAST('2025-12-31 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND (
        "h"."valid_to" IS NULL
        OR "h"."valid_to" > CAST('2025-12-31 12:00:00.000000+00:00' AS TIMESTAMPTZ)
      )
  )
  AND (
    EXISTS(
      SELECT
        1
      FROM "camp_label_history" AS "h"
      WHERE
        "h"."name" = 'lifecycle'
        AND "h"."user_id" = CAST("l"."user_id" AS TEXT)
        AND "h"."label" = 'mature'
        AND "h"."valid_from" < CAST('2026-03-31 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND (
          "h"."valid_to" IS NULL
          OR "h"."valid_to" > CAST('2026-03-01 12:00:00.000000+00:00' AS TIMESTAMPTZ)
        )
    )
    AND COALESCE("l"."class_lifecycle" IN ('declining'), FALSE)
  )
