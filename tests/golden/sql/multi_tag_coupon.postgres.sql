WITH "base" AS (
  SELECT
    "u"."user_id" AS "user_id"
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
  EXISTS(
    SELECT
      1
    FROM "user_tags" AS "t"
    WHERE
      "t"."user_id" = "l"."user_id"
      AND "t"."tag" IN ('fragrance_fan', 'makeup_fan', 'skincare_lover')
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM "user_tags" AS "t"
    WHERE
      "t"."user_id" = "l"."user_id" AND "t"."tag" IN ('complained')
  )
