-- Distinct users of the last hour, from DWM (one row per content × user × minute): UV is not
-- additive over DWS rows, so it is counted from the users themselves. count_distinct is exact up
-- to 1 024 users and an estimate (about 1 % error) above (docs/queries.md).
SELECT count_distinct(user_id) AS uv, count(*) AS user_minutes
FROM dwm.content_user
WINDOW SLIDING 60 MINUTES EVERY 1 MINUTE
