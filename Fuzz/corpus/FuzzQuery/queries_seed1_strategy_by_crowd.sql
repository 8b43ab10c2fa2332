-- Seed question 1: how is each recommendation strategy doing in each crowd over the last
-- 10 minutes? A crowd is a (gender, age band) pair from the user's profile on DWM rows.
-- One table per minute step; the window ending at the next minute boundary is "the last 10 minutes".
SELECT strategy,
       user.gender                              AS gender,
       user.age_band                            AS age_band,
       count_distinct(user_id)                  AS users,
       sum(expose)                              AS exposes,
       sum(click)                               AS clicks,
       round(sum(click) / sum(expose), 4)       AS ctr,
       sum(play)                                AS plays,
       round(sum(play_ms) / 1000.0 / count_distinct(user_id), 1) AS play_s_per_user
FROM dwm.content_user
WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
GROUP BY strategy, user.gender, user.age_band
HAVING exposes > 0
ORDER BY strategy, ctr DESC
EMIT CHANGES
