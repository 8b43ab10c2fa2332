-- Top content by clicks over the last 10 minutes, with title, category and author.
SELECT content_id, content.title AS title, content.category AS category, content.author_id AS author,
       sum(click) AS clicks, sum(expose) AS exposes
FROM dws.content
WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
GROUP BY content_id, content.title, content.category, content.author_id
HAVING sum(click) > 0
ORDER BY clicks DESC
LIMIT 10
