-- Seed question 3: over the last 5 minutes, which game content and which authors were
-- reported most? Each row is a reported game content item with its author; authors with several
-- reported items appear once per item (sql/queries/group_by_having.sql ranks authors alone).
SELECT content_id,
       content.title      AS title,
       content.author_id  AS author_id,
       sum(report)        AS reports,
       sum(expose)        AS exposes
FROM dws.content
WHERE content.category = 'game'
WINDOW SLIDING 5 MINUTES EVERY 1 MINUTE
GROUP BY content_id, content.title, content.author_id
HAVING reports > 0
ORDER BY reports DESC, author_id
LIMIT 20
EMIT CHANGES
