-- Seed analytics (a): per recommendation strategy, the funnel expose → click → play of at least
-- 10 s → like over the last hour. funnel() follows each user's events in time order: a step counts
-- when it comes after the previous one and within 1 hour of the expose that started the chain.
-- `users` holds the users reaching each step; `conversion` the step-to-step ratios.
-- Recomputed every 10 minutes (each window keeps the matching events of its users).
SELECT strategy,
       funnel(user_id, 1 HOUR, action = 'expose', action = 'click',
              action = 'play' AND duration_ms >= 10000, action = 'like')               AS users,
       conversion(funnel(user_id, 1 HOUR, action = 'expose', action = 'click',
                         action = 'play' AND duration_ms >= 10000, action = 'like'))   AS conversion
FROM ods.expose, ods.click, ods.play, ods.like
WINDOW SLIDING 1 HOUR EVERY 10 MINUTES
GROUP BY strategy
ORDER BY strategy
EMIT CHANGES
