-- count_distinct(x) (also written count(DISTINCT x)): exact up to 1024 distinct values per group,
-- then a counting HyperLogLog (precision 14, ~0.8 % standard error, within 2 %); retraction of
-- an older rev is exact either way.
SELECT content.category AS category,
       count_distinct(user_id)     AS users,
       count(DISTINCT content_id)  AS contents,
       count(*)                    AS cells
FROM dwm.content_user
WINDOW TUMBLING 5 MINUTES
GROUP BY content.category
ORDER BY users DESC
