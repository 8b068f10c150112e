WITH "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."birthday" AS "u_birthday",
    CAST(CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMPTZ) AT TIME ZONE COALESCE("u"."timezone", 'Asia/Shanghai') AS DATE) AS "local_today"
  FROM "users" AS "u"
), "labeled" AS (
  SELECT
    *
  FROM "base" AS "l"
)
SELECT
  "l"."user_id" AS "user_id"
FROM "labeled" AS "l"
WHERE
  COALESCE(
    NOT "l"."u_birthday" IS NULL
    AND (
      (
        EXTRACT(MONTH FROM "l"."u_birthday") = EXTRACT(MONTH FROM "l"."local_today")
        AND EXTRACT(DAY FROM "l"."u_birthday") = EXTRACT(DAY FROM "l"."local_today")
      )
      OR (
        EXTRACT(MONTH FROM "l"."u_birthday") = 2
        AND EXTRACT(DAY FROM "l"."u_birthday") = 29
        AND EXTRACT(MONTH FROM "l"."local_today") = 2
        AND EXTRACT(DAY FROM "l"."local_today") = 28
        AND EXTRACT(MONTH FROM CAST("l"."local_today" AS DATE) + INTERVAL '1 DAY') = 3
      )
    ),
    FALSE
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM "user_tags" AS "t"
    WHERE
      "t"."user_id" = "l"."user_id" AND "t"."tag" IN ('complained')
  )
