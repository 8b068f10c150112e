WITH `ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    MAX(`e`.`created_at`) AS `orders_0`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_1`
  FROM `orders` AS `e`
  WHERE
    `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
  GROUP BY
    `e`.`user_id`
), `base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `u`.`member_level` AS `u_member_level`,
    `ev_orders`.`orders_0`,
    `ev_orders`.`orders_1`
  FROM `users` AS `u`
  LEFT JOIN `ev_orders` AS `ev_orders`
    ON `ev_orders`.`user_id` = `u`.`user_id`
), `labeled` AS (
  SELECT
    *,
    `l`.`seg_sticky` AND `l`.`seg_recent_buyer` AS `seg_important_value`
  FROM (
    SELECT
      *,
      COALESCE(COALESCE(`l`.`orders_1`, 0) >= 10, FALSE) AS `seg_sticky`
    FROM (
      SELECT
        *,
        COALESCE(
          `l`.`orders_0` >= CAST('2026-11-24 02:00:00.000000+00:00' AS TIMESTAMP)
          AND `l`.`orders_0` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP),
          FALSE
        ) AS `seg_recent_buyer`
      FROM (
        SELECT
          *
        FROM `base` AS `l`
      ) AS `l`
    ) AS `l`
  ) AS `l`
)
SELECT
  `l`.`user_id` AS `user_id`
FROM `labeled` AS `l`
WHERE
  `l`.`seg_important_value`
  AND COALESCE(`l`.`u_member_level` IN ('silver', 'gold'), FALSE)
