-- Seed analytics (d): per content and day, the settlement numbers from the stream: distinct
-- clickers and clicks (each click event once). They equal `strata settle`'s batch figures for the
-- day (distinct_clickers, clicks) when no click came later than the grace. Distinct clickers are
-- exact however many (exact_count_distinct: memory per clicker, bounded by --max-exact-distinct);
-- count_distinct would be exact only up to 1024 per content and day, HyperLogLog (~0.8 %) beyond.
SELECT content_id,
       exact_count_distinct(user_id) AS distinct_clickers,
       count(*)                AS clicks
FROM ods.click
WINDOW TUMBLING 24 HOURS
GROUP BY content_id
ORDER BY clicks DESC
EMIT FINAL
