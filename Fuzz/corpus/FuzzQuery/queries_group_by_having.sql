-- GROUP BY and HAVING: authors of game content with at least 3 reports in each 5-minute window.
-- HAVING may use select aliases (reports) or repeat the aggregate.
SELECT content.author_id AS author_id, sum(report) AS reports, count(*) AS content_minutes
FROM dws.content
WHERE content.category = 'game'
WINDOW TUMBLING 5 MINUTES
GROUP BY content.author_id
HAVING reports >= 3 AND count(*) > 1
ORDER BY reports DESC
