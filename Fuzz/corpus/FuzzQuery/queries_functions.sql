-- Functions: coalesce, lower, upper, round, window_start(), window_end(); arithmetic with
-- + - * / (division is always floating point; x / 0 is NULL).
SELECT window_start()                                   AS window_start_ms,
       window_end()                                     AS window_end_ms,
       upper(coalesce(content.category, 'unknown'))     AS category,
       lower(coalesce(user.province, 'unknown'))        AS province,
       round(100.0 * sum(click) / sum(expose), 2)       AS ctr_percent,
       round(avg(play_ms) / 1000, 1)                    AS avg_play_s,
       min(play_ms)                                     AS min_play_ms,
       max(play_ms)                                     AS max_play_ms
FROM dwm.content_user
WINDOW TUMBLING 5 MINUTES
GROUP BY upper(coalesce(content.category, 'unknown')), lower(coalesce(user.province, 'unknown'))
HAVING sum(expose) > 0
ORDER BY ctr_percent DESC
LIMIT 25
