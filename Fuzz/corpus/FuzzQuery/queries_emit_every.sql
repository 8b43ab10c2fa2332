-- EMIT EVERY: at most one refresh per 10 seconds of the subscriber's clock, with the windows whose
-- table changed since their last emission (a dashboard tile). Final tables still arrive once.
SELECT sum(expose) AS exposes, sum(click) AS clicks, sum(play) AS plays, sum(uv) AS uv_minutes
FROM dws.content
WINDOW TUMBLING 1 MINUTE
EMIT EVERY 10 SECONDS
