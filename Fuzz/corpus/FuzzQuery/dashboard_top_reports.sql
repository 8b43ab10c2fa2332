-- Top content by reports over the last 10 minutes: what the moderators look at first.
SELECT content_id, content.title AS title, content.category AS category, content.author_id AS author,
       sum(report) AS reports
FROM dws.content
WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
GROUP BY content_id, content.title, content.category, content.author_id
HAVING sum(report) > 0
ORDER BY reports DESC
LIMIT 10
