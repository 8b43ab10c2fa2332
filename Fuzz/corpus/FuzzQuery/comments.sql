/* block
comment */ SELECT count(*) -- trailing
FROM t
WHERE 'it''s' = "quoted col" AND 1.5e3 > .5
