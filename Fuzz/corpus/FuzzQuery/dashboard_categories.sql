-- Category breakdown of the last 10 minutes: plays, clicks and exposes per content category.
SELECT coalesce(content.category, 'unknown') AS category,
       sum(play) AS plays, sum(click) AS clicks, sum(expose) AS exposes
FROM dws.content
WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
GROUP BY coalesce(content.category, 'unknown')
ORDER BY plays DESC
LIMIT 12
