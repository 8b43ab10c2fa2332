-- Last-hour totals: the 60 one-minute DWS rows of every content up to the newest minute.
SELECT sum(expose) AS exposes, sum(click) AS clicks,
       round(sum(click) / sum(expose), 4) AS ctr,
       sum(play) AS plays, sum(play_ms) AS play_ms
FROM dws.content
WINDOW SLIDING 60 MINUTES EVERY 1 MINUTE
