-- WHERE: filter rows before they are grouped. IN, BETWEEN, LIKE, IS [NOT] NULL, AND/OR/NOT.
-- No WINDOW and no aggregate: a live projection of the matching rows (latest rev of each).
SELECT minute, content_id, content.title AS title, click, play
FROM dws.content
WHERE content.category IN ('game', 'sports')
  AND click BETWEEN 10 AND 1000
  AND content.title LIKE '%cup%'
  AND content.author_id IS NOT NULL
  AND NOT report > 0
ORDER BY click DESC
LIMIT 50
