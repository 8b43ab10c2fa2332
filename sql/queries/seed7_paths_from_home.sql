-- Seed analytics (c): the ten most frequent three-page paths from the home page in the last 30
-- minutes. Each user's events with a page, in time order (consecutive events on one page are one
-- view of it); a path is a home page view and the two pages after it. Exact counts.
SELECT top_paths(user_id, page, 'home', 3, 10) AS paths
FROM ods.expose, ods.click, ods.play
WINDOW SLIDING 30 MINUTES EVERY 5 MINUTES
EMIT CHANGES
