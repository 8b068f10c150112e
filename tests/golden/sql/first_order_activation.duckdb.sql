WITH "tags_" AS (
  SELECT
    "t"."user_id" AS "user_id",
    MAX(CASE WHEN "t"."tag" = 'employee' THEN 1 ELSE 0 END) AS "tag_0"
  FROM "user_tags" AS "t"
  WHERE
    "t"."tag" IN ('employee')
  GROUP BY
    "t"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "u"."member_level" AS "u_member_level",
    "tags_"."tag_0"
  FROM "users" AS "u"
  LEFT JOIN "tags_" AS "tags_"
    ON "tags_"."user_id" = "u"."user_id"
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
  AND NOT COALESCE("l"."tag_0", 0) = 1
