WITH "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."email" AS "u_email",
    "u"."registered_at" AS "u_registered"
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
  NOT "l"."u_email" IS NULL
  AND COALESCE(
    "l"."u_registered" < CAST('2026-11-24 02:00:00.000000+00:00' AS TIMESTAMP WITH TIME ZONE),
    FALSE
  )
