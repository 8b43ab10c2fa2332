-- Seed analytics (b): sessions per user and average session length per app version, today (UTC).
-- A session is a user's run of events with no gap over 30 minutes; a late event that closes a gap
-- merges two sessions. Sessions are cut at midnight. Every action the split routed counts.
-- sessions is exact; users (count_distinct) is exact up to 1024 per app version and a HyperLogLog
-- estimate (~0.8 %) beyond, and sessions_per_user carries that error.
SELECT device.app_ver                                                        AS app_version,
       sessions(user_id, 30 MINUTES)                                         AS sessions,
       count_distinct(user_id)                                               AS users,
       round(sessions(user_id, 30 MINUTES) / count_distinct(user_id), 2)     AS sessions_per_user,
       round(session_seconds(user_id, 30 MINUTES), 1)                        AS avg_session_s,
       round(bounce_rate(user_id, 30 MINUTES), 3)                            AS bounce_rate
FROM ods.expose, ods.click, ods.play, ods.like, ods.share, ods.comment, ods.report
WINDOW TUMBLING 24 HOURS
GROUP BY device.app_ver
ORDER BY sessions DESC
EMIT CHANGES
