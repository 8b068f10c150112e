WITH "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."member_level" AS "u_member_level"
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
  COALESCE("l"."u_member_level" = 'normal', FALSE)
  AND NOT EXISTS(
    SELECT
      1
    FROM "user_tags" AS "t"
    WHERE
      "t"."user_id" = "l"."user_id" AND "t"."tag" IN ('employee')
  )
