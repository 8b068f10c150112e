WITH "ev_orders" AS (
  SELECT
    "e"."user_id" AS "user_id",
    MIN("e"."created_at") AS "orders_0",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_1",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2026-10-02 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_2",
    COUNT(*) FILTER(WHERE
      "e"."created_at" >= CAST('2026-06-04 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)) AS "orders_3",
    COUNT(*) AS "orders_4",
    COUNT(*) FILTER(WHERE
      COALESCE("e"."coupon_used", FALSE)
      AND (
        "e"."created_at" >= CAST('2026-06-04 02:00:00.000000+00:00' AS TIMESTAMPTZ)
        AND "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
      )) AS "orders_5"
  FROM "orders" AS "e"
  WHERE
    "e"."created_at" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
  GROUP BY
    "e"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "ev_orders"."orders_0",
    "ev_orders"."orders_1",
    "ev_orders"."orders_2",
    "ev_orders"."orders_3",
    "ev_orders"."orders_4",
    "ev_orders"."orders_5"
  FROM "users" AS "u"
  LEFT JOIN "ev_orders" AS "ev_orders"
    ON "ev_orders"."user_id" = "u"."user_id"
), "labeled" AS (
  SELECT
    *,
    CASE
      WHEN COALESCE(
        (
          COALESCE("l"."orders_3", 0) > 0
          AND COALESCE("l"."orders_5", 0) >= (
            0.8
          ) * (
            COALESCE("l"."orders_3", 0)
          )
        )
        OR (
          COALESCE("l"."orders_3", 0) < 0
          AND COALESCE("l"."orders_5", 0) <= (
            0.8
          ) * (
            COALESCE("l"."orders_3", 0)
          )
        ),
        FALSE
      )
      THEN 'fanatic'
      WHEN COALESCE(
        (
          COALESCE("l"."orders_3", 0) > 0
          AND COALESCE("l"."orders_5", 0) >= (
            0.5
          ) * (
            COALESCE("l"."orders_3", 0)
          )
        )
        OR (
          COALESCE("l"."orders_3", 0) < 0
          AND COALESCE("l"."orders_5", 0) <= (
            0.5
          ) * (
            COALESCE("l"."orders_3", 0)
          )
        ),
        FALSE
      )
      THEN 'sensitive'
      WHEN COALESCE("l"."orders_5", 0) > 0
      THEN 'neutral'
      ELSE 'indifferent'
    END AS "class_promo_sensitivity"
  FROM (
    SELECT
      *,
      CASE
        WHEN COALESCE(
          "l"."orders_0" >= CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMPTZ)
          AND "l"."orders_0" < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ),
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
  ) AS "l"
)
SELECT
  "l"."user_id" AS "user_id"
FROM "labeled" AS "l"
WHERE
  (
    COALESCE("l"."class_lifecycle" IN ('silent'), FALSE)
    AND COALESCE("l"."class_promo_sensitivity" IN ('fanatic', 'sensitive', 'neutral'), FALSE)
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM "user_tags" AS "t"
    WHERE
      "t"."user_id" = "l"."user_id" AND "t"."tag" IN ('complained')
  )
  AND NOT (
    (
      CAST(CAST('x' || SUBSTRING(MD5('silent_recall:' || CAST("l"."user_id" AS TEXT)) FROM 1 FOR 8) AS BIT(32)) AS BIGINT)
    ) % 10000
  ) < 500
