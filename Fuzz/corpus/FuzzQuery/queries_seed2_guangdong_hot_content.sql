-- Seed question 2: among users in Guangdong, which Guangdong-region content is hottest?
-- Heat counts engaged actions (clicks, plays, likes, shares, comments) of Guangdong users on
-- content whose region is Guangdong, over the last 10 minutes; top 20.
SELECT content_id,
       content.title                                    AS title,
       content.category                                 AS category,
       sum(click + play + "like" + share + comment)     AS heat,
       sum(play)                                        AS plays,
       count_distinct(user_id)                          AS users
FROM dwm.content_user
WHERE user.province = 'Guangdong' AND content.region = 'Guangdong'
WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
GROUP BY content_id, content.title, content.category
HAVING heat > 0
ORDER BY heat DESC
LIMIT 20
EMIT CHANGES
