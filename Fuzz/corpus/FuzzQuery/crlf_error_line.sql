SELECT count(* FROM dw
content WHERE x == 1 || y