WITH "ev_orders" AS (
  SELECT
    "e"."user_id" AS "user_id",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_0",
    MAX("e"."created_at") AS "orders_1"
  FROM "orders" AS "e"
  WHERE
    "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
  GROUP BY
    "e"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."member_level" AS "u_member_level",
    "ev_orders"."orders_0",
    "ev_orders"."orders_1"
  FROM "users" AS "u"
  LEFT JOIN "ev_orders" AS "ev_orders"
    ON "ev_orders"."user_id" = "u"."user_id"
), "labeled" AS (
  SELECT
    *
  FROM "base" AS "l"
)
SELECT
  "a"."user_id"
FROM (
  SELECT
    "l"."user_id" AS "user_id",
    FALSE AS "excluded",
    FALSE AS "held_out"
  FROM "labeled" AS "l"
  WHERE
    (
      COALESCE(COALESCE("l"."orders_0", 0) >= 10, FALSE)
      AND COALESCE(
        "l"."orders_1" >= CAST('2026-11-24 02:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND "l"."orders_1" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ),
        FALSE
      )
    )
    AND COALESCE("l"."u_member_level" IN ('silver', 'gold'), FALSE)
) AS "a"
WHERE
  NOT "a"."excluded" AND NOT "a"."held_out"
