select lower(content.category) as cat, upper("like"), round(avg(play_ms) / 1000.0, 2), coalesce(strategy, 'none'), count(DISTINCT user_id), min(minute), max(minute), window_start(), window_end()
from dwm.content_user
window tumbling 5 minutes
group by lower(content.category)
emit every 30 seconds