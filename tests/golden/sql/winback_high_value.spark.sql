WITH `ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_0`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN `e`.`amount`
        ELSE NULL
      END
    ) AS `orders_1`,
    SUM(
      CASE
        WHEN COALESCE(`e`.`brand` = 'Shiseido', FALSE)
        AND (
          `e`.`created_at` >= CAST('2026-11-24 02:00:00.000000+00:00' AS TIMESTAMP)
          AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        )
        THEN 1
        ELSE 0
      END
    ) AS `orders_2`,
    MIN(`e`.`created_at`) AS `orders_3`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_4`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2026-10-02 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_5`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2026-06-04 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_6`,
    COUNT(*) AS `orders_7`
  FROM `orders` AS `e`
  WHERE
    `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
  GROUP BY
    `e`.`user_id`
), `tags_` AS (
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
    `ev_orders`.`orders_0`,
    `ev_orders`.`orders_1`,
    `ev_orders`.`orders_2`,
    `ev_orders`.`orders_3`,
    `ev_orders`.`orders_4`,
    `ev_orders`.`orders_5`,
    `ev_orders`.`orders_6`,
    `ev_orders`.`orders_7`,
    `tags_`.`tag_0`
  FROM `users` AS `u`
  LEFT JOIN `ev_orders` AS `ev_orders`
    ON `ev_orders`.`user_id` = `u`.`user_id`
  LEFT JOIN `tags_` AS `tags_`
    ON `tags_`.`user_id` = `u`.`user_id`
), `labeled` AS (
  SELECT
    *,
    CASE
      WHEN COALESCE(
        `l`.`orders_3` >= CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `l`.`orders_3` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP),
        FALSE
      )
      THEN 'new'
      WHEN COALESCE(COALESCE(`l`.`orders_4`, 0) >= 5, FALSE)
      THEN 'mature'
      WHEN COALESCE(COALESCE(`l`.`orders_4`, 0) < COALESCE(`l`.`orders_5`, 0), FALSE)
      THEN 'declining'
      WHEN COALESCE(`l`.`orders_4`, 0) = 0 AND COALESCE(`l`.`orders_6`, 0) > 0
      THEN 'silent'
      WHEN COALESCE(`l`.`orders_6`, 0) = 0 AND COALESCE(`l`.`orders_7`, 0) > 0
      THEN 'churned'
      ELSE 'potential'
    END AS `class_lifecycle`
  FROM (
    SELECT
      *
    FROM `base` AS `l`
  ) AS `l`
)
SELECT
  `l`.`user_id` AS `user_id`
FROM `labeled` AS `l`
WHERE
  (
    COALESCE(`l`.`class_lifecycle` IN ('churned'), FALSE)
    AND COALESCE(COALESCE(`l`.`orders_0`, 0) >= 10, FALSE)
    AND COALESCE(COALESCE(`l`.`orders_1`, 0) >= 2000, FALSE)
    AND COALESCE(`l`.`orders_2`, 0) = 0
  )
  AND NOT COALESCE(`l`.`tag_0`, 0) = 1
  AND NOT (
    (
      (
        (
          (
            (
              (
                (
                  (
                    (
                      CAST(0 AS BIGINT)
                    ) * 16 + LOCATE(
                      SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 1, 1),
                      '0123456789abcdef'
                    ) - 1
                  ) * 16 + LOCATE(
                    SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 2, 1),
                    '0123456789abcdef'
                  ) - 1
                ) * 16 + LOCATE(
                  SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 3, 1),
                  '0123456789abcdef'
                ) - 1
              ) * 16 + LOCATE(
                SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 4, 1),
                '0123456789abcdef'
              ) - 1
            ) * 16 + LOCATE(
              SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 5, 1),
              '0123456789abcdef'
            ) - 1
          ) * 16 + LOCATE(
            SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 6, 1),
            '0123456789abcdef'
          ) - 1
        ) * 16 + LOCATE(
          SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 7, 1),
          '0123456789abcdef'
        ) - 1
      ) * 16 + LOCATE(
        SUBSTRING(MD5('winback_high_value:' || CAST(`l`.`user_id` AS STRING)), 8, 1),
        '0123456789abcdef'
      ) - 1
    ) % 10000
  ) < 1000
