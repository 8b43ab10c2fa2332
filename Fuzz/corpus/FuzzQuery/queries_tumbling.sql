-- WINDOW TUMBLING: back-to-back 5-minute windows aligned to the epoch (UTC): 12:00–12:05,
-- 12:05–12:10, … A row belongs to the one window containing its minute.
SELECT content.category AS category, sum(play) AS plays, sum(click) AS clicks
FROM dws.content
WINDOW TUMBLING 5 MINUTES
GROUP BY content.category
ORDER BY plays DESC
