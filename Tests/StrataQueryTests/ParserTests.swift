import XCTest
@testable import StrataQuery

/// Golden tests: valid queries print back in canonical form (and re-parse to the same form);
/// invalid ones fail with an exact position and message.
final class ParserTests: XCTestCase {
    static let canonical: [(String, String)] = [
        ("select count(*) from dws.content",
         "SELECT count(*) FROM dws.content EMIT CHANGES"),
        ("SELECT content_id, sum(click) AS clicks FROM dws.content GROUP BY content_id ORDER BY clicks DESC LIMIT 10",
         "SELECT content_id, sum(click) AS clicks FROM dws.content GROUP BY content_id ORDER BY clicks DESC LIMIT 10 EMIT CHANGES"),
        ("select a+b*c-d/e as x from t",
         "SELECT a + b * c - d / e AS x FROM t EMIT CHANGES"),
        ("select (a+b)*c x from t",
         "SELECT (a + b) * c AS x FROM t EMIT CHANGES"),
        ("select a - (b - c), a - b - c from t",
         "SELECT a - (b - c), a - b - c FROM t EMIT CHANGES"),
        ("select -a, - -5, -(-x), -3.5 from t",
         "SELECT -a, 5, -(-x), -3.5 FROM t EMIT CHANGES"),
        ("select count(*) from t where not a = 1 and (b = 2 or c = 3)",
         "SELECT count(*) FROM t WHERE NOT a = 1 AND (b = 2 OR c = 3) EMIT CHANGES"),
        ("select count(*) from t where a not in (1, 2, null) and b between 1 and 1+2 and c not like 'x%' and d is not null and e is null",
         "SELECT count(*) FROM t WHERE a NOT IN (1, 2, NULL) AND b BETWEEN 1 AND 1 + 2 AND c NOT LIKE 'x%' AND d IS NOT NULL AND e IS NULL EMIT CHANGES"),
        ("select count(*) from t where (a = 1) = true",
         "SELECT count(*) FROM t WHERE (a = 1) = TRUE EMIT CHANGES"),
        ("select content.category, user.province from dwm.content_user where content.title like 'it''s%'",
         "SELECT content.category, user.province FROM dwm.content_user WHERE content.title LIKE 'it''s%' EMIT CHANGES"),
        ("select \"like\" AS l1, like + 1, \"user id\" from t",
         "SELECT \"like\" AS l1, \"like\" + 1, \"user id\" FROM t EMIT CHANGES"),
        ("select count(distinct user_id), count_distinct(content_id) from t",
         "SELECT count_distinct(user_id), count_distinct(content_id) FROM t EMIT CHANGES"),
        ("select window_start() ws, window_end() we, count(*) from t window tumbling 5 minutes",
         "SELECT window_start() AS ws, window_end() AS we, count(*) FROM t WINDOW TUMBLING 5 MINUTES EMIT CHANGES"),
        ("select count(*) from t window sliding 10 minutes",
         "SELECT count(*) FROM t WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE EMIT CHANGES"),
        ("select count(*) from t window sliding 30 seconds",
         "SELECT count(*) FROM t WINDOW SLIDING 30 SECONDS EVERY 30 SECONDS EMIT CHANGES"),
        ("select count(*) from t window sliding 1 hour every 15 minutes emit final",
         "SELECT count(*) FROM t WINDOW SLIDING 1 HOUR EVERY 15 MINUTES EMIT FINAL"),
        ("select count(*) from t emit every 10 seconds",
         "SELECT count(*) FROM t EMIT EVERY 10 SECONDS"),
        ("select round(avg(x), 2), coalesce(a, 'n/a') c, lower(b), upper(b) from t group by a, b",
         "SELECT round(avg(x), 2), coalesce(a, 'n/a') AS c, lower(b), upper(b) FROM t GROUP BY a, b EMIT CHANGES"),
        ("SELECT a FROM t WHERE x = 1.0 AND y = 1e3 AND z = 0.001 -- comment\n/* block */ ;",
         "SELECT a FROM t WHERE x = 1.0 AND y = 1000.0 AND z = 0.001 EMIT CHANGES"),
        ("select strategy s, count(*) from t group by s having count(*) > 1 order by 2 desc, s",
         "SELECT strategy AS s, count(*) FROM t GROUP BY s HAVING count(*) > 1 ORDER BY 2 DESC, s EMIT CHANGES"),
        ("select final, minute from t",
         "SELECT final, minute FROM t EMIT CHANGES"),
        ("select count(*) from \"my topic\".x",
         "SELECT count(*) FROM \"my topic\".x EMIT CHANGES"),
        ("SeLeCt Sum(Click) FrOm T wInDoW tUmBlInG 1 hOuR eMiT fInAl",
         "SELECT sum(Click) FROM T WINDOW TUMBLING 1 HOUR EMIT FINAL"),
    ]

    func testCanonicalRoundTrip() throws {
        for (text, expected) in Self.canonical {
            let q = try Query.parse(text)
            XCTAssertEqual(q.canonical, expected, text)
            XCTAssertEqual(try Query.parse(q.canonical).canonical, expected, "re-parse of \(expected)")
        }
    }

    /// Found by fuzzing (Fuzz/corpus/FuzzQuery/canonical_combining_mark.sql): a quote followed by a
    /// combining mark (one Character) was not doubled in the canonical text, which then did not
    /// parse (or read differently).
    func testQuotesBeforeCombiningMarksAreDoubledInTheCanonicalText() throws {
        for (text, expected) in [
            ("SELECT \"a\"\"\u{59C}b\" FROM t", "SELECT \"a\"\"\u{59C}b\" FROM t EMIT CHANGES"),
            ("SELECT count(*) FROM t WHERE x = 'it''\u{301}s'", "SELECT count(*) FROM t WHERE x = 'it''\u{301}s' EMIT CHANGES"),
        ] {
            let q = try Query.parse(text)
            XCTAssertEqual(q.canonical.unicodeScalars.map(\.value), expected.unicodeScalars.map(\.value), text)
            XCTAssertEqual(try Query.parse(q.canonical).canonical, q.canonical, text)
        }
        XCTAssertEqual(try Query.parse("SELECT \"a\"\"\u{59C}b\" FROM t").columns, ["a\"\u{59C}b"])
    }

    /// (query, line, column, message — hint)
    static let invalid: [(String, Int, Int, String)] = [
        ("", 1, 1, "empty query — a query starts with SELECT"),
        ("SELEC count(*) FROM dws.content", 1, 1, "expected SELECT at the start of the query, found 'SELEC' — did you mean SELECT?"),
        ("SELECT cnt(*) FROM dws.content", 1, 8, "unknown function 'cnt' — did you mean count?"),
        ("SELECT a FORM dws.content", 1, 10, "expected FROM after select list, found 'FORM' — did you mean FROM?"),
        ("SELECT a b c FROM t", 1, 12, "expected FROM after select list, found 'c' — separate select items with commas"),
        ("SELECT a, FROM t", 1, 11, "expected an expression after ',', found 'FROM' — remove the trailing comma"),
        ("SELECT FROM t", 1, 8, "expected an expression after SELECT, found 'FROM'"),
        ("SELECT a FROM", 1, 14, "expected a source name after FROM, found end of query — e.g. FROM dws.content or FROM dwm.content_user"),
        ("SELECT a FROM t WHERE", 1, 22, "expected an expression after WHERE, found end of query"),
        ("SELECT a FROM t WHERE sum(click) > 1", 1, 23, "aggregate in WHERE is not allowed — use HAVING"),
        ("SELECT a, count(*) FROM t", 1, 8, "column 'a' must appear in GROUP BY or be used in an aggregate — add GROUP BY a, or aggregate it, e.g. max(a)"),
        ("SELECT strategy, count(*) FROM t GROUP BY user_id", 1, 8, "column 'strategy' must appear in GROUP BY or be used in an aggregate — add it to GROUP BY, or aggregate it, e.g. max(strategy)"),
        ("SELECT count(*) FROM t GROUP strategy", 1, 30, "expected BY after GROUP, found 'strategy'"),
        ("SELECT count(*) FROM t ORDER count(*)", 1, 30, "expected BY after ORDER, found 'count'"),
        ("SELECT count(*) FROM t LIMIT -1", 1, 30, "LIMIT expects a non-negative integer, found '-'"),
        ("SELECT count(*) FROM t LIMIT 1.5", 1, 30, "LIMIT expects a non-negative integer, found 1.5"),
        ("SELECT count(*) FROM t WINDOW HOPPING 5 MINUTES", 1, 31, "expected TUMBLING or SLIDING after WINDOW, found 'HOPPING' — a hopping window is WINDOW SLIDING <length> EVERY <step>"),
        ("SELECT count(*) FROM t WINDOW TUMBLING 5", 1, 41, "expected a duration unit after 5, found end of query — use SECONDS, MINUTES or HOURS"),
        ("SELECT count(*) FROM t WINDOW TUMBLING 5 DAYS", 1, 42, "unknown duration unit 'DAYS' — use SECONDS, MINUTES or HOURS (1 day = 24 HOURS)"),
        ("SELECT count(*) FROM t WINDOW TUMBLING 0 MINUTES", 1, 40, "a duration must be positive"),
        ("SELECT count(*) FROM t WINDOW SLIDING 10 MINUTES EVERY 20 MINUTES", 1, 56, "EVERY 20 MINUTES is longer than the window (10 MINUTES) — rows between windows would be skipped; the step must be at most the length"),
        ("SELECT count(*) FROM t EMIT SOMETIMES", 1, 29, "expected CHANGES, FINAL or EVERY after EMIT, found 'SOMETIMES'"),
        ("SELECT count(*) FROM t EMIT EVERY", 1, 34, "expected a duration such as 5 MINUTES after EVERY, found end of query"),
        ("SELECT count( FROM t", 1, 15, "expected an expression after 'count(', found 'FROM'"),
        ("SELECT 'abc FROM t", 1, 8, "unterminated string literal — close it with ' (write '' for a quote inside)"),
        ("SELECT a FROM t WHERE a = = 1", 1, 27, "expected an expression after '=', found '='"),
        ("SELECT a FROM t WHERE a IN ()", 1, 29, "an IN list must not be empty"),
        ("SELECT a FROM t WHERE a BETWEEN 1 5", 1, 35, "expected AND in BETWEEN, found 5 — e.g. x BETWEEN 1 AND 10"),
        ("SELECT a FROM t WHERE a IS 5", 1, 28, "expected NULL after IS, found 5 — IS only tests for NULL; compare values with ="),
        ("SELECT a FROM t WHERE 1 < a < 3", 1, 29, "comparisons cannot be chained — combine them with AND, e.g. a < b AND b < c"),
        ("SELECT sum(count(*)) FROM t", 1, 12, "aggregate functions cannot be nested"),
        ("SELECT sum(*) FROM t", 1, 12, "sum(*) is not allowed — only count(*) takes *"),
        ("SELECT count() FROM t", 1, 8, "count expects 1 argument, got 0 — use count(*) to count rows"),
        ("SELECT lower(a, b) FROM t", 1, 8, "lower expects 1 argument, got 2"),
        ("SELECT window_start(), count(*) FROM t", 1, 8, "window_start() needs a WINDOW clause — add e.g. WINDOW TUMBLING 1 MINUTE"),
        ("SELECT * FROM t", 1, 8, "SELECT * needs a source with a known schema — list the columns, e.g. SELECT content_id, click"),
        ("SELECT count(*) AS n, sum(x) AS n FROM t", 1, 33, "duplicate output column 'n' — give one of them a different alias with AS"),
        ("SELECT a FROM t WHERE 'abc'", 1, 23, "WHERE needs a condition, found a string — e.g. WHERE click > 0"),
        ("SELECT count(*) FROM t ORDER BY 3", 1, 33, "ORDER BY position 3 is not in the select list — positions go from 1 to 1"),
        ("SELECT count(*) FROM t WHERE a = 1 WHERE b = 2", 1, 36, "duplicate WHERE clause — combine conditions with AND"),
        ("SELECT count(*) FROM t ORDER BY 1 WHERE a = 1", 1, 35, "WHERE must come before ORDER BY — clauses go in this order: SELECT … FROM … WHERE … WINDOW … GROUP BY … HAVING … ORDER BY … LIMIT … EMIT …"),
        ("SELECT a FROM t HAVING a > 1", 1, 24, "HAVING needs GROUP BY or an aggregate — use WHERE to filter rows"),
        ("SELECT a @ b FROM t", 1, 10, "unexpected character '@'"),
        ("SELECT a FROM t WHERE a == 1", 1, 25, "unexpected '==' — use = for equality"),
        ("SELECT a FROM t /* unterminated", 1, 17, "unterminated comment — close it with */"),
        ("SELECT content_id, sum(click) FROM t GROUP BY content_id HAVING click > 5", 1, 65, "column 'click' must appear in GROUP BY or be used in an aggregate — add it to GROUP BY, or aggregate it, e.g. max(click)"),
        ("SELECT count(*) FROM t GROUP BY sum(click)", 1, 33, "aggregate in GROUP BY is not allowed — group by the columns and aggregate in SELECT"),
        ("SELECT count(*) FROM t WHERE window_start() > 0", 1, 30, "window_start() is not allowed in WHERE — filter on the minute column instead"),
        ("SELECT DISTINCT a FROM t", 1, 8, "SELECT DISTINCT is not supported — use GROUP BY on the columns instead"),
        ("SELECT count(*) FROM t WHRE a = 1", 1, 24, "unexpected 'WHRE' — did you mean WHERE?"),
        ("SELECT count(*)\nFROM dws.content\nWHERE click > 0\n  AND cnt(x) > 1", 4, 7, "unknown function 'cnt' — did you mean count?"),
        ("SELECT a FROM t, u", 1, 18, "several sources need a catalog of schemas"),
        ("SELECT sum('x') FROM t", 1, 12, "sum needs a number, found a string"),
        ("SELECT a FROM t WHERE a LIKE 5", 1, 30, "a LIKE pattern must be a string, found a number"),
        ("SELECT \"\" FROM t", 1, 8, "empty quoted identifier"),
        ("SELECT 99999999999999999999 FROM t", 1, 8, "integer 99999999999999999999 is too large — integers must fit in 64 bits"),
        ("SELECT a FROM t EMIT FINAL LIMIT 5", 1, 28, "LIMIT must come before EMIT — clauses go in this order: SELECT … FROM … WHERE … WINDOW … GROUP BY … HAVING … ORDER BY … LIMIT … EMIT …"),
        ("SELECT a FROM t WHERE a NOT 5", 1, 29, "expected IN, BETWEEN or LIKE after NOT, found 5"),
        ("SELECT approx_count_distinct(user_id) FROM t", 1, 8, "unknown function 'approx_count_distinct' — did you mean count_distinct?"),
        ("SELECT count(*) FROM t WINDOW TUMBLING 1.5 MINUTES", 1, 40, "a duration takes a whole number — e.g. 90 SECONDS instead of 1.5 MINUTES"),
        ("SELECT round(x, 'a') FROM t", 1, 17, "round's second argument must be a whole number of digits"),
        ("SELECT (a + 1 FROM t", 1, 15, "expected ')' to close the '(' at 1:8, found 'FROM'"),
        ("SELECT window_start(1) FROM t WINDOW TUMBLING 1 MINUTE", 1, 8, "window_start() takes no arguments"),
    ]

    func testInvalidQueriesReportPositionAndMessage() {
        XCTAssertGreaterThanOrEqual(Self.invalid.count, 25)
        for (text, line, column, message) in Self.invalid {
            do throws(QueryError) {
                let q = try Query.parse(text)
                XCTFail("parsed but should not: \(text) -> \(q.canonical)")
            } catch {
                XCTAssertEqual(error.line, line, text)
                XCTAssertEqual(error.column, column, text)
                XCTAssertEqual(error.diagnostic?.text, message, text)
            }
        }
    }

    func testSyntaxVersusSemanticErrors() {
        XCTAssertThrowsError(try Query.parse("SELECT cnt(*) FROM t")) { e in
            guard case .syntax = e as? QueryError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try Query.parse("SELECT a, count(*) FROM t")) { e in
            guard case .semantic = e as? QueryError else { return XCTFail("\(e)") }
        }
    }

    func testRenderedErrorShowsLineAndCaret() {
        do throws(QueryError) {
            _ = try Query.parse("SELECT count(*)\nFROM dws.content\nWHERE cnt(x) > 1")
            XCTFail("should not parse")
        } catch {
            XCTAssertEqual(error.rendered, """
            syntax error at 3:7: unknown function 'cnt' — did you mean count?
              3 | WHERE cnt(x) > 1
                |       ^^^
            """)
        }
    }

    /// Found by fuzzing (Fuzz/corpus/FuzzQuery/crlf_error_line.sql): in CRLF text an error quoted
    /// the whole query, or nothing, instead of its line.
    func testErrorsInCRLFTextQuoteTheirLine() {
        for (text, line, quoted) in [("SELECT count(*)\r\nFROM dws.content\r\nWHERE cnt(x) > 1", 3, "WHERE cnt(x) > 1"),
                                     ("SELECT count(* FROM dw\r\ncontent WHERE x == 1 || y", 2, "content WHERE x == 1 || y"),
                                     ("\u{0}e\r\n", 1, "\u{0}e")] {
            do throws(QueryError) {
                _ = try Query.parse(text)
                XCTFail("should not parse: \(text)")
            } catch {
                XCTAssertEqual(error.line, line, text)
                XCTAssertEqual(error.diagnostic?.sourceLine, quoted, text)
                XCTAssertTrue(error.rendered.contains("\(line) | \(quoted)\n"), error.rendered)
            }
        }
    }

    func testSourceColumnsAndAliases() throws {
        let q = try Query.parse("""
            SELECT content.category, sum(click) AS clicks, count(*), round(avg(play_ms) / 1000, 1)
            FROM dwm.content_user GROUP BY content.category
            """)
        XCTAssertEqual(q.source, "dwm.content_user")
        XCTAssertEqual(q.columns, ["content.category", "clicks", "count(*)", "round(avg(play_ms) / 1000, 1)"])
    }

    func testKeywordsThatAreAlsoColumns() throws {
        // `like`, `final` and `minute` are DWM/DWS fields.
        let q = try Query.parse("SELECT sum(like) AS likes FROM dws.content WHERE like > 0 AND final = true AND minute > 0 GROUP BY minute")
        XCTAssertEqual(q.canonical, "SELECT sum(\"like\") AS likes FROM dws.content WHERE \"like\" > 0 AND final = TRUE AND minute > 0 GROUP BY minute EMIT CHANGES")
        XCTAssertNoThrow(try Query.parse("SELECT title FROM t WHERE title LIKE '%a%' AND like LIKE 'x'"))
    }

    func testGroupByAliasAndPosition() throws {
        XCTAssertNoThrow(try Query.parse("SELECT content.category AS cat, count(*) FROM t GROUP BY cat"))
        XCTAssertNoThrow(try Query.parse("SELECT content.category, count(*) FROM t GROUP BY 1"))
        XCTAssertNoThrow(try Query.parse("SELECT lower(strategy), count(*) FROM t GROUP BY lower(strategy) ORDER BY lower(strategy)"))
        XCTAssertNoThrow(try Query.parse("SELECT count(*) AS n FROM t WINDOW TUMBLING 1 MINUTE GROUP BY window_start() HAVING n > 1 ORDER BY n DESC"))
        XCTAssertThrowsError(try Query.parse("SELECT count(*) AS n, strategy FROM t GROUP BY n"))
    }

    func testExplainMentionsEveryPart() throws {
        let q = try Query.parse("""
            SELECT strategy, sum(click) AS clicks, count_distinct(user_id) AS users FROM dwm.content_user
            WHERE content.region = 'Guangdong' WINDOW SLIDING 10 MINUTES EVERY 1 MINUTE
            GROUP BY strategy HAVING clicks > 0 ORDER BY clicks DESC LIMIT 5 EMIT FINAL
            """)
        let plan = q.explain()
        for part in ["dwm.content_user", "content.region = 'Guangdong'", "SLIDING 10 MINUTES EVERY 1 MINUTE", "10 windows per row",
                     "group by    strategy", "sum(click)", "count_distinct(user_id)", "HyperLogLog", "having      clicks > 0",
                     "clicks DESC; LIMIT 5", "FINAL", "max groups 100000", "max rows out 10000", "max open windows 1000", "24h"] {
            XCTAssertTrue(plan.contains(part), "explain lacks \(part):\n\(plan)")
        }
    }
}
