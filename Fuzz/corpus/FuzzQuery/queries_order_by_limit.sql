-- ORDER BY and LIMIT apply to each window's table. Ties are broken by the group key, so the
-- output is deterministic. Positions (ORDER BY 3) and aliases both work.
SELECT content_id, content.title AS title, sum(play) AS plays, sum(play_ms) AS play_ms
FROM dws.content
WINDOW TUMBLING 1 MINUTE
GROUP BY content_id, content.title
ORDER BY plays DESC, 4 DESC
LIMIT 10
