WITH `ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    MIN(`e`.`created_at`) AS `orders_0`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_1`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2026-10-02 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_2`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2026-06-04 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_3`,
    COUNT(*) AS `orders_4`,
    SUM(
      CASE
        WHEN COALESCE(`e`.`coupon_used`, FALSE)
        AND (
          `e`.`created_at` >= CAST('2026-06-04 02:00:00.000000+00:00' AS TIMESTAMP)
          AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        )
        THEN 1
        ELSE 0
      END
    ) AS `orders_5`
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
        (
          COALESCE(`l`.`orders_3`, 0) > 0
          AND COALESCE(`l`.`orders_5`, 0) >= (
            0.8
          ) * (
            COALESCE(`l`.`orders_3`, 0)
          )
        )
        OR (
          COALESCE(`l`.`orders_3`, 0) < 0
          AND COALESCE(`l`.`orders_5`, 0) <= (
            0.8
          ) * (
            COALESCE(`l`.`orders_3`, 0)
          )
        ),
        FALSE
      )
      THEN 'fanatic'
      WHEN COALESCE(
        (
          COALESCE(`l`.`orders_3`, 0) > 0
          AND COALESCE(`l`.`orders_5`, 0) >= (
            0.5
          ) * (
            COALESCE(`l`.`orders_3`, 0)
          )
        )
        OR (
          COALESCE(`l`.`orders_3`, 0) < 0
          AND COALESCE(`l`.`orders_5`, 0) <= (
            0.5
          ) * (
            COALESCE(`l`.`orders_3`, 0)
          )
        ),
        FALSE
      )
      THEN 'sensitive'
      WHEN COALESCE(`l`.`orders_5`, 0) > 0
      THEN 'neutral'
      ELSE 'indifferent'
    END AS `class_promo_sensitivity`
  FROM (
    SELECT
      *,
      CASE
        WHEN COALESCE(
          `l`.`orders_0` >= CAST('2026-11-01 02:00:00.000000+00:00' AS TIMESTAMP)
          AND `l`.`orders_0` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP),
          FALSE
        )
        THEN 'new'
        WHEN COALESCE(COALESCE(`l`.`orders_1`, 0) >= 5, FALSE)
        THEN 'mature'
        WHEN COALESCE(COALESCE(`l`.`orders_1`, 0) < COALESCE(`l`.`orders_2`, 0), FALSE)
        THEN 'declining'
        WHEN COALESCE(`l`.`orders_1`, 0) = 0 AND COALESCE(`l`.`orders_3`, 0) > 0
        THEN 'silent'
        WHEN COALESCE(`l`.`orders_3`, 0) = 0 AND COALESCE(`l`.`orders_4`, 0) > 0
        THEN 'churned'
        ELSE 'potential'
      END AS `class_lifecycle`
    FROM (
      SELECT
        *
      FROM `base` AS `l`
    ) AS `l`
  ) AS `l`
)
SELECT
  `l`.`user_id` AS `user_id`
FROM `labeled` AS `l`
WHERE
  (
    COALESCE(`l`.`class_lifecycle` IN ('silent'), FALSE)
    AND COALESCE(`l`.`class_promo_sensitivity` IN ('fanatic', 'sensitive', 'neutral'), FALSE)
  )
  AND NOT COALESCE(`l`.`tag_0`, 0) = 1
  AND NOT (
    MOD(
      (
        (
          (
            (
              (
                (
                  (
                    (
                      CAST(0 AS INT64)
                    ) * 16 + INSTR(
                      '0123456789abcdef',
                      SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 1, 1)
                    ) - 1
                  ) * 16 + INSTR(
                    '0123456789abcdef',
                    SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 2, 1)
                  ) - 1
                ) * 16 + INSTR(
                  '0123456789abcdef',
                  SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 3, 1)
                ) - 1
              ) * 16 + INSTR(
                '0123456789abcdef',
                SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 4, 1)
              ) - 1
            ) * 16 + INSTR(
              '0123456789abcdef',
              SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 5, 1)
            ) - 1
          ) * 16 + INSTR(
            '0123456789abcdef',
            SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 6, 1)
          ) - 1
        ) * 16 + INSTR(
          '0123456789abcdef',
          SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 7, 1)
        ) - 1
      ) * 16 + INSTR(
        '0123456789abcdef',
        SUBSTRING(TO_HEX(MD5('silent_recall:' || CAST(`l`.`user_id` AS STRING))), 8, 1)
      ) - 1,
      10000
    )
  ) < 500
