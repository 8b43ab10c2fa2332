-- EMIT FINAL: each window is emitted once, when the highest minute seen passes its end plus the
-- grace (default 2 minutes, the DWM job's allowed lateness), or at the end of input.
SELECT content.category AS category, sum(click) AS clicks, sum(expose) AS exposes
FROM dws.content
WINDOW TUMBLING 10 MINUTES
GROUP BY content.category
ORDER BY clicks DESC
EMIT FINAL
