-- Per-minute trend of the last 60 minutes: one row per minute, oldest first.
SELECT minute, sum(expose) AS exposes, sum(click) AS clicks, sum(play) AS plays
FROM dws.content
WINDOW SLIDING 60 MINUTES EVERY 1 MINUTE
GROUP BY minute
ORDER BY minute
