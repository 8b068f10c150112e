WITH "ev_orders" AS (
  SELECT
    "e"."user_id" AS "user_id",
    COUNT(*) AS "orders_0",
    COUNT(*) FILTER(WHERE
      COALESCE("e"."brand" = 'Shiseido', FALSE)
      AND (
        "e"."created_at" >= CAST('2026-11-24 02:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      )) AS "orders_1"
  FROM "orders" AS "e"
  WHERE
    "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
  GROUP BY
    "e"."user_id"
), "ev_visits" AS (
  SELECT
    "e"."user_id" AS "user_id",
    COUNT(*) FILTER(WHERE
      "e"."visited_at" >= CAST('2026-09-02 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."visited_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "visits_0"
  FROM "visits" AS "e"
  WHERE
    "e"."visited_at" >= CAST('2026-09-02 02:00:00.000000+00:00' AS TIMESTAMPTZ)
    AND "e"."visited_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
  GROUP BY
    "e"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."city" AS "u_city",
    "ev_orders"."orders_0",
    "ev_orders"."orders_1",
    "ev_visits"."visits_0"
  FROM "users" AS "u"
  LEFT JOIN "ev_orders" AS "ev_orders"
    ON "ev_orders"."user_id" = "u"."user_id"
  LEFT JOIN "ev_visits" AS "ev_visits"
    ON "ev_visits"."user_id" = "u"."user_id"
), "labeled" AS (
  SELECT
    *
  FROM "base" AS "l"
)
SELECT
  "l"."user_id" AS "user_id"
FROM "labeled" AS "l"
WHERE
  COALESCE("l"."u_city" = '北京', FALSE)
  AND COALESCE(COALESCE("l"."visits_0", 0) >= 3, FALSE)
  AND COALESCE(COALESCE("l"."orders_0", 0) >= 1, FALSE)
  AND COALESCE("l"."orders_1", 0) = 0
