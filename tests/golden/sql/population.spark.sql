WITH `pop_0_ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN `e`.`amount`
        ELSE NULL
      END
    ) AS `orders_0`,
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
    `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
    AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
  GROUP BY
    `e`.`user_id`
), `pop_0_base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `ev_orders`.`orders_0`,
    `ev_orders`.`orders_1`
  FROM `users` AS `u`
  LEFT JOIN `pop_0_ev_orders` AS `ev_orders`
    ON `ev_orders`.`user_id` = `u`.`user_id`
), `pop_0_labeled` AS (
  SELECT
    *
  FROM `pop_0_base` AS `l`
), `pop_0` AS (
  SELECT
    `l`.`user_id` AS `user_id`,
    COALESCE(`l`.`orders_0`, 0) AS `v`,
    COUNT(*) OVER () AS `n`,
    RANK() OVER (ORDER BY COALESCE(`l`.`orders_0`, 0) NULLS LAST) AS `rk`,
    NTILE(5) OVER (
      ORDER BY COALESCE(`l`.`orders_0`, 0) NULLS LAST, CAST(`l`.`user_id` AS STRING) NULLS LAST
    ) AS `nt5`,
    ROW_NUMBER() OVER (ORDER BY COALESCE(`l`.`orders_0`, 0) NULLS LAST) - 1 AS `rn`
  FROM `pop_0_labeled` AS `l`
  WHERE
    COALESCE(`l`.`orders_1`, 0) > 0 AND NOT COALESCE(`l`.`orders_0`, 0) IS NULL
), `pop_0_pct` AS (
  SELECT
    MIN(CASE WHEN `pop_0`.`rn` = FLOOR((
      `pop_0`.`n` - 1
    ) * 0.5) THEN `pop_0`.`v` END) + MAX((
      `pop_0`.`n` - 1
    ) * 0.5 - FLOOR((
      `pop_0`.`n` - 1
    ) * 0.5)) * (
      MIN(CASE WHEN `pop_0`.`rn` = CEIL((
        `pop_0`.`n` - 1
      ) * 0.5) THEN `pop_0`.`v` END) - MIN(CASE WHEN `pop_0`.`rn` = FLOOR((
        `pop_0`.`n` - 1
      ) * 0.5) THEN `pop_0`.`v` END)
    ) AS `p0`
  FROM `pop_0` AS `pop_0`
), `pop_1_ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN 1
        ELSE 0
      END
    ) AS `orders_0`
  FROM `orders` AS `e`
  WHERE
    `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
    AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
  GROUP BY
    `e`.`user_id`
), `pop_1_base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `ev_orders`.`orders_0`
  FROM `users` AS `u`
  LEFT JOIN `pop_1_ev_orders` AS `ev_orders`
    ON `ev_orders`.`user_id` = `u`.`user_id`
), `pop_1_labeled` AS (
  SELECT
    *
  FROM `pop_1_base` AS `l`
), `pop_1` AS (
  SELECT
    `l`.`user_id` AS `user_id`,
    COALESCE(`l`.`orders_0`, 0) AS `v`,
    NTILE(5) OVER (
      ORDER BY COALESCE(`l`.`orders_0`, 0) NULLS LAST, CAST(`l`.`user_id` AS STRING) NULLS LAST
    ) AS `nt5`
  FROM `pop_1_labeled` AS `l`
  WHERE
    COALESCE(`l`.`orders_0`, 0) > 0 AND NOT COALESCE(`l`.`orders_0`, 0) IS NULL
), `pop_2_ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    MAX(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN `e`.`created_at`
        ELSE NULL
      END
    ) AS `orders_0`
  FROM `orders` AS `e`
  WHERE
    `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
    AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
  GROUP BY
    `e`.`user_id`
), `pop_2_base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `ev_orders`.`orders_0`
  FROM `users` AS `u`
  LEFT JOIN `pop_2_ev_orders` AS `ev_orders`
    ON `ev_orders`.`user_id` = `u`.`user_id`
), `pop_2_labeled` AS (
  SELECT
    *
  FROM `pop_2_base` AS `l`
), `pop_2` AS (
  SELECT
    `l`.`user_id` AS `user_id`,
    `l`.`orders_0` AS `v`,
    NTILE(5) OVER (ORDER BY `l`.`orders_0` NULLS LAST, CAST(`l`.`user_id` AS STRING) NULLS LAST) AS `nt5`
  FROM `pop_2_labeled` AS `l`
  WHERE
    NOT `l`.`orders_0` IS NULL
), `ev_orders` AS (
  SELECT
    `e`.`user_id` AS `user_id`,
    SUM(
      CASE
        WHEN `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
        THEN `e`.`amount`
        ELSE NULL
      END
    ) AS `orders_0`
  FROM `orders` AS `e`
  WHERE
    `e`.`created_at` >= CAST('2025-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
    AND `e`.`created_at` < CAST('2026-12-01 02:00:00.000000+00:00' AS TIMESTAMP)
  GROUP BY
    `e`.`user_id`
), `base` AS (
  SELECT
    `u`.`user_id` AS `user_id`,
    `ev_orders`.`orders_0`,
    `pop_0`.`rk` AS `pop_0_rk`,
    `pop_0`.`n` AS `pop_0_n`,
    `pop_0`.`nt5` AS `pop_0_nt5`,
    `pop_0_pct`.`p0` AS `pop_0_p0`,
    `pop_1`.`nt5` AS `pop_1_nt5`,
    `pop_2`.`nt5` AS `pop_2_nt5`
  FROM `users` AS `u`
  LEFT JOIN `ev_orders` AS `ev_orders`
    ON `ev_orders`.`user_id` = `u`.`user_id`
  LEFT JOIN `pop_0` AS `pop_0`
    ON `pop_0`.`user_id` = `u`.`user_id`
  CROSS JOIN `pop_0_pct` AS `pop_0_pct`
  LEFT JOIN `pop_1` AS `pop_1`
    ON `pop_1`.`user_id` = `u`.`user_id`
  LEFT JOIN `pop_2` AS `pop_2`
    ON `pop_2`.`user_id` = `u`.`user_id`
), `labeled` AS (
  SELECT
    *,
    COALESCE(COALESCE(`l`.`orders_0`, 0) >= `l`.`pop_0_p0`, FALSE) AS `seg_above_median_spend`
  FROM (
    SELECT
      *,
      COALESCE(
        (
          CASE WHEN `l`.`pop_0_n` > 1 THEN (
            `l`.`pop_0_n` - 1
          ) ELSE 1 END > 0
          AND (
            `l`.`pop_0_rk` - 1
          ) >= (
            0.8
          ) * (
            CASE WHEN `l`.`pop_0_n` > 1 THEN (
              `l`.`pop_0_n` - 1
            ) ELSE 1 END
          )
        )
        OR (
          CASE WHEN `l`.`pop_0_n` > 1 THEN (
            `l`.`pop_0_n` - 1
          ) ELSE 1 END < 0
          AND (
            `l`.`pop_0_rk` - 1
          ) <= (
            0.8
          ) * (
            CASE WHEN `l`.`pop_0_n` > 1 THEN (
              `l`.`pop_0_n` - 1
            ) ELSE 1 END
          )
        ),
        FALSE
      ) AS `seg_top_spenders`
    FROM (
      SELECT
        *,
        COALESCE(`l`.`class_rfm_recency` IN ('r4', 'r5'), FALSE)
        AND COALESCE(`l`.`class_rfm_frequency` IN ('f4', 'f5'), FALSE)
        AND COALESCE(`l`.`class_rfm_monetary` IN ('m4', 'm5'), FALSE) AS `seg_rfm_champions`
      FROM (
        SELECT
          *,
          CASE
            WHEN COALESCE(`l`.`pop_2_nt5` = 5, FALSE)
            THEN 'r5'
            WHEN COALESCE(`l`.`pop_2_nt5` = 4, FALSE)
            THEN 'r4'
            WHEN COALESCE(`l`.`pop_2_nt5` = 3, FALSE)
            THEN 'r3'
            WHEN COALESCE(`l`.`pop_2_nt5` = 2, FALSE)
            THEN 'r2'
            WHEN COALESCE(`l`.`pop_2_nt5` = 1, FALSE)
            THEN 'r1'
            ELSE 'no_order'
          END AS `class_rfm_recency`
        FROM (
          SELECT
            *,
            CASE
              WHEN COALESCE(`l`.`pop_1_nt5` = 5, FALSE)
              THEN 'f5'
              WHEN COALESCE(`l`.`pop_1_nt5` = 4, FALSE)
              THEN 'f4'
              WHEN COALESCE(`l`.`pop_1_nt5` = 3, FALSE)
              THEN 'f3'
              WHEN COALESCE(`l`.`pop_1_nt5` = 2, FALSE)
              THEN 'f2'
              WHEN COALESCE(`l`.`pop_1_nt5` = 1, FALSE)
              THEN 'f1'
              ELSE 'no_order'
            END AS `class_rfm_frequency`
          FROM (
            SELECT
              *,
              CASE
                WHEN COALESCE(`l`.`pop_0_nt5` = 5, FALSE)
                THEN 'm5'
                WHEN COALESCE(`l`.`pop_0_nt5` = 4, FALSE)
                THEN 'm4'
                WHEN COALESCE(`l`.`pop_0_nt5` = 3, FALSE)
                THEN 'm3'
                WHEN COALESCE(`l`.`pop_0_nt5` = 2, FALSE)
                THEN 'm2'
                WHEN COALESCE(`l`.`pop_0_nt5` = 1, FALSE)
                THEN 'm1'
                ELSE 'no_order'
              END AS `class_rfm_monetary`
            FROM (
              SELECT
                *
              FROM `base` AS `l`
            ) AS `l`
          ) AS `l`
        ) AS `l`
      ) AS `l`
    ) AS `l`
  ) AS `l`
)
SELECT
  `l`.`user_id` AS `user_id`
FROM `labeled` AS `l`
WHERE
  `l`.`seg_rfm_champions`
  AND `l`.`seg_top_spenders`
  AND `l`.`seg_above_median_spend`
