WITH "tags_" AS (
  SELECT
    "t"."user_id" AS "user_id",
    MAX(CASE WHEN "t"."tag" = 'complained' THEN 1 ELSE 0 END) AS "tag_3",
    MAX(CASE WHEN "t"."tag" = 'fragrance_fan' THEN 1 ELSE 0 END) AS "tag_2",
    MAX(CASE WHEN "t"."tag" = 'makeup_fan' THEN 1 ELSE 0 END) AS "tag_1",
    MAX(CASE WHEN "t"."tag" = 'skincare_lover' THEN 1 ELSE 0 END) AS "tag_0"
  FROM "user_tags" AS "t"
  WHERE
    "t"."tag" IN ('complained', 'fragrance_fan', 'makeup_fan', 'skincare_lover')
  GROUP BY
    "t"."user_id"
), "base" AS (
  SELECT
    "u"."user_id" AS "user_id",
    "tags_"."tag_0",
    "tags_"."tag_1",
    "tags_"."tag_2",
    "tags_"."tag_3"
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
  (
    COALESCE("l"."tag_0", 0) = 1
    OR COALESCE("l"."tag_1", 0) = 1
    OR COALESCE("l"."tag_2", 0) = 1
  )
  AND NOT COALESCE("l"."tag_3", 0) = 1
