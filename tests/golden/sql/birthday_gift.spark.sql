WITH `tags_` AS (
  SELECT
    `t`.`user_id` AS `user_id`,
    MAX(CASE WHEN `t`.`tag` = 'complained' THEN 1 ELSE 0 END) AS `tag_0`
  FROM `user_tags` AS `t`
  WHERE
    `t`.`tag` IN ('complained')
  GROUP BY
    `t`.`user_id`
), `base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `u`.`birthday` AS `u_birthday`,
    DATE_FROM_UNIX_DATE(
      CAST(FLOOR(
        UNIX_SECONDS(
          FROM_UTC_TIMESTAMP(
            CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP),
            COALESCE(`u`.`timezone`, 'Asia/Shanghai')
          )
        ) / 86400
      ) AS INT)
    ) AS `local_today`,
    `tags_`.`tag_0`
  FROM `users` AS `u`
  LEFT JOIN `tags_` AS `tags_`
    ON `tags_`.`user_id` = `u`.`user_id`
), `labeled` AS (
  SELECT
    *
  FROM `base` AS `l`
)
SELECT
  `l`.`user_id` AS `user_id`
FROM `labeled` AS `l`
WHERE
  COALESCE(
    NOT `l`.`u_birthday` IS NULL
    AND (
      (
        EXTRACT(MONTH FROM `l`.`u_birthday`) = EXTRACT(MONTH FROM `l`.`local_today`)
        AND EXTRACT(DAY FROM `l`.`u_birthday`) = EXTRACT(DAY FROM `l`.`local_today`)
      )
      OR (
        EXTRACT(MONTH FROM `l`.`u_birthday`) = 2
        AND EXTRACT(DAY FROM `l`.`u_birthday`) = 29
        AND EXTRACT(MONTH FROM `l`.`local_today`) = 2
        AND EXTRACT(DAY FROM `l`.`local_today`) = 28
        AND EXTRACT(MONTH FROM CAST(`l`.`local_today` AS DATE) + INTERVAL '1' DAY) = 3
      )
    ),
    FALSE
  )
  AND NOT COALESCE(`l`.`tag_0`, 0) = 1
