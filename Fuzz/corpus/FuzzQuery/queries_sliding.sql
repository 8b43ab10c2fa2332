-- WINDOW SLIDING … EVERY …: windows 15 minutes long, one ending at every multiple of 5 minutes
-- (12:00–12:15, 12:05–12:20, …). Each row is in 3 windows.
SELECT content.region AS region, sum(expose) AS exposes, sum(click) AS clicks
FROM dws.content
WINDOW SLIDING 15 MINUTES EVERY 5 MINUTES
GROUP BY content.region
ORDER BY exposes DESC
LIMIT 10
