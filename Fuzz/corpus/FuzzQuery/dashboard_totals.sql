-- Big numbers: the totals of the newest minute (the current one-minute window).
-- uv is the sum of the per-content UV of DWS (a user who saw two contents counts twice).
-- newest_emitted_at feeds the freshness indicator: the age of the newest DWS row.
SELECT sum(expose) AS exposes, sum(click) AS clicks,
       round(sum(click) / sum(expose), 4) AS ctr,
       sum(play) AS plays, sum(play_ms) AS play_ms, sum(uv) AS uv,
       count(*) AS contents, max(emitted_at) AS newest_emitted_at
FROM dws.content
WINDOW TUMBLING 1 MINUTE
