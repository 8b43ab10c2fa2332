-- Seed question 4: how many users consumed content in the last 10 minutes?
-- "Consumed" = clicked or played something. Distinct users over DWM rows; exact up to 1024
-- distinct values, HyperLogLog (~0.8 % standard error) beyond.
SELECT count_distinct(user_id) AS users,
       sum(play)               AS plays,
       sum(click)              AS clicks
FROM dwm.content_user
WHERE play > 0 OR click > 0
WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
EMIT CHANGES
