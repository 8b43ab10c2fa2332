import ArgumentParser
import Foundation
import StrataCore
import StrataDims
import StrataOffline
import StrataQuery

struct OLAPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "olap",
        abstract: "Run a query over a time range of the dws_minute table (history, without replaying topics).",
        discussion: """
        The same language as `strata query` (docs/queries.md), over the rows the sink job stored:
        FROM dws.content reads dws_minute, one row per (minute, content) at its highest revision,
        with `content` {title, category, author_id, region} from the dimension store; FROM
        dwm.content_user reads dwm_minute (the sink with --dwm), per (minute, content, user), with
        `content` and `user` {gender, age_band, province, city_tier}. Windowed
        queries print the final table of every window in the range, in time order; others print
        one table.

          strata olap --last 24h "SELECT content.category AS category, sum(click) AS clicks FROM dws.content GROUP BY content.category ORDER BY clicks DESC"
          strata olap --from 2026-12-01T10:00:00Z --to 2026-12-01T11:00:00Z -f sql/queries/seed3_reported_game_content.sql

        The range is [now − --last, now) (default the last 30 minutes), or --from/--to. Exit status
        0, 2 for a query that does not parse or reads another source, 1 for other failures.
        """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The query text (or use -f).") var sql: String?
    @Option(name: [.customShort("f"), .long], help: "Read the query from this file.") var file: String?
    @Option(help: "The range: this long back from now (e.g. 30m, 24h); ignored with --from.") var last: DurationArgument = DurationArgument(.seconds(1800))
    @Option(help: "Range start: epoch ms or ISO-8601 (UTC).") var from: String?
    @Option(help: "Range end (exclusive): epoch ms or ISO-8601; default now.") var to: String?
    @Option(help: "Store of dws_minute and the dimensions: sqlite:PATH or postgres://… (env STRATA_STORE).") var store: String?
    @Option(help: "Output format: table or ndjson.") var format: QueryCommand.Format = .table
    @Option(help: "Limit: groups alive at once (default 100000).") var maxGroups: Int?
    @Option(help: "Limit: windows holding state at once (default 1000).") var maxOpenWindows: Int?

    func run() throws {
        let text = try QueryCommand.queryText(sql: sql, file: file)
        let query: Query
        let config = try global.resolve()
        let topology = try global.loadTopology(config)
        do throws(QueryError) { query = try Query.parse(text, catalog: Catalog(topology: topology)) } catch {
            stderrLine(error.rendered)
            throw ExitCode(2)
        }
        guard query.source == "dws.content" || query.source == "dwm.content_user" else {
            stderrLine("error: strata olap reads dws_minute (FROM dws.content) and dwm_minute (FROM dwm.content_user); \(query.source) is not stored in a table, query its topic with strata query")
            throw ExitCode(2)
        }
        let isDWM = query.source == "dwm.content_user"
        let now = QueryCommand.nowMs()
        let toMs = try to.map(QueryCommand.parseTimestamp) ?? now
        let fromMs = try from.map(QueryCommand.parseTimestamp) ?? (toMs - QueryCommand.milliseconds(last))
        guard fromMs < toMs else { throw ValidationError("the range is empty: --from must be before --to") }

        var limits = QueryLimits()
        if let maxGroups { limits.maxGroups = maxGroups }
        if let maxOpenWindows { limits.maxOpenWindows = maxOpenWindows }
        // Stored rows are complete: a window is final as soon as the rows have passed its end.
        let engine = QueryEngine(query, limits: limits, options: QueryOptions(graceMs: 0))
        do throws(QueryError) { try engine.validate() } catch {
            stderrLine(error.rendered)
            throw ExitCode(1)
        }
        let address = store ?? config.store
        let dims = try DimensionStoreFactory.open(address)
        var source = OLAPSource(table: try DWSTableFactory.open(address),
                                dwm: isDWM ? try DWMTableFactory.open(address) : nil, dims: dims)
        engine.expectPartitions([0], nowMs: now)

        let started = ContinuousClock.now
        var output = ResultPrinter(format: format, query: query, live: false)
        var rowsRead = 0
        do {
            let feed: ([[String: Value]]) throws -> Void = { rows in
                rowsRead += rows.count
                // Only final tables: a window's intermediate tables say nothing over stored history.
                output.show(try engine.ingest(rows, partition: 0).filter(\.final), engine: engine)
            }
            if isDWM { try source.dwmRows(from: fromMs, to: toMs, feed) } else { try source.rows(from: fromMs, to: toMs, feed) }
            output.show(engine.finish(), engine: engine)
        } catch let error as QueryError {
            stderrLine(error.rendered)
            throw ExitCode(1)
        }
        output.finish()
        let elapsed = ContinuousClock.now - started
        stderrLine("olap: \(rowsRead) rows of \(isDWM ? "dwm_minute" : "dws_minute") in [\(ResultPrinter.time(fromMs)), \(ResultPrinter.time(toMs))), \(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")
    }
}
