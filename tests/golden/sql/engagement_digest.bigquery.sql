WITH `params` AS (
  SELECT
    CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP) AS `as_of`,
    CAST('2026-11-24 02:00:00.000000+00:00' AS TIMESTAMP) AS `bound_7d`
), `base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `u`.`email` AS `u_email`,
    `u`.`registered_at` AS `u_registered`,
    `p`.`as_of`,
    `p`.`bound_7d`
  FROM `users` AS `u`
  CROSS JOIN `params` AS `p`
), `labeled` AS (
  SELECT
    *
  FROM `base` AS `l`
)
SELECT
  `a`.`user_id`
FROM (
  SELECT
    `l`.`user_id` AS `user_id`,
    FALSE AS `excluded`,
    FALSE AS `held_out`
  FROM `labeled` AS `l`
  WHERE
    NOT `l`.`u_email` IS NULL
    AND COALESCE(`l`.`u_registered` < `l`.`bound_7d`, FALSE)
) AS `a`
WHERE
  NOT `a`.`excluded` AND NOT `a`.`held_out`
