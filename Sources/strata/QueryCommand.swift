import ArgumentParser
import Foundation
import StrataKafka
import StrataRuntime
import StrataQuery

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Run a declarative stream query over a DWM/DWS topic and print its result tables.",
        discussion: """
        FROM names a source of the topology: dws, dwm (or their topics dws.content, dwm.content_user);
        columns and types are checked against its schema (`strata query 'DESCRIBE dws'` lists them;
        SELECT * selects every top-level column). Rows are upsert records: a higher
        `rev` of (minute, content_id[, user_id]) replaces the earlier one, so every table is exact.
        The language is described in docs/queries.md; examples are in sql/queries/.

        Starts at the latest data unless --from-beginning or --from (windows that began before the
        start only see rows from then on). --format table redraws the current tables in place on a
        terminal; --format ndjson prints one object per emission:
          {"window_start":…,"window_end":…,"final":true|false,"rows":[{…},…]}
        --until-idle exits after that long without new rows, after printing the final table of
        every open window. Ctrl-C exits at once, without final tables.

        Exit status: 0 on success, 2 for a query that does not parse or plan, 1 for other failures
        (broker errors, a query limit exceeded).
        """)

    enum Format: String, ExpressibleByArgument { case table, ndjson }

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The query text (or use -f).") var sql: String?
    @Option(name: [.customShort("f"), .long], help: "Read the query from this file.") var file: String?
    @Flag(help: "Read the topic from its earliest offset.") var fromBeginning = false
    @Option(help: "Start at this time: epoch milliseconds or ISO-8601 (e.g. 2026-05-01T12:00:00Z). The topic is searched by time (no read of what came before); rows with an earlier minute are skipped.")
    var from: String?
    @Option(help: "Output format: table or ndjson.") var format: Format = .table
    @Option(help: "Exit after this long without new rows (e.g. 5, 500ms, 2m), after emitting every window's final table.")
    var untilIdle: DurationArgument?
    @Flag(help: "Print the query plan and exit.") var explain = false
    @Option(help: "Prepended to the source's topic (isolated runs, as the jobs' --topic-prefix).") var topicPrefix = ""
    @Option(help: "How long after a window's end it becomes final (default 2m: the DWM job's allowed lateness).")
    var grace: DurationArgument?
    @Option(help: "Limit: groups alive at once (default 100000).") var maxGroups: Int?
    @Option(help: "Limit: rows in one emitted table (default 10000).") var maxRowsOut: Int?
    @Option(help: "Limit: windows holding state at once (default 1000).") var maxOpenWindows: Int?
    @Option(help: "Limit: longest window (default 24h).") var maxWindow: DurationArgument?
    @Option(help: "Limit: events held by sessions/funnel/top_paths over all open windows (default 5000000).") var maxSequenceEvents: Int?
    @Option(help: "Limit: distinct values held by exact_count_distinct over all open windows and groups (default 10000000).") var maxExactDistinct: Int?

    func run() throws {
        let text = try Self.queryText(sql: sql, file: file)
        let config = try global.resolve()
        let catalog = Catalog(topology: try global.loadTopology(config), topicPrefix: topicPrefix)
        let query: Query
        do throws(QueryError) {
            if let schema = try Query.describe(text, catalog: catalog) {
                print(schema.description)
                return
            }
            query = try Query.parse(text, catalog: catalog)
        } catch {
            stderrLine(error.rendered)
            throw ExitCode(2)
        }
        var limits = QueryLimits()
        if let maxGroups { limits.maxGroups = maxGroups }
        if let maxRowsOut { limits.maxRowsOut = maxRowsOut }
        if let maxOpenWindows { limits.maxOpenWindows = maxOpenWindows }
        if let maxWindow { limits.maxWindowLengthMs = Self.milliseconds(maxWindow) }
        if let maxSequenceEvents { limits.maxSequenceEvents = maxSequenceEvents }
        if let maxExactDistinct { limits.maxExactDistinctValues = maxExactDistinct }
        var options = QueryOptions()
        if let grace { options.graceMs = Self.milliseconds(grace) }

        if explain {
            print(query.explain(limits: limits, options: options))
            return
        }
        let fromMs = try from.map(Self.parseTimestamp)
        let engine = QueryEngine(query, limits: limits, options: options)
        do throws(QueryError) { try engine.validate() } catch {
            stderrLine(error.rendered)
            throw ExitCode(1)
        }

        Shutdown.install()
        let consumer = try KafkaConsumer(config: config.consumerConfig(groupId: nil, clientId: "strata-query"))
        defer { consumer.close() }
        // Every partition of every source, numbered across the sources for the engine's watermark.
        var positions: [TopicPartitionOffset] = []
        var firstIndex: [String: Int] = [:]
        for topic in query.sources {
            let partitions = try consumer.partitionCount(topic: topic)
            firstIndex[topic] = positions.count
            var these = (0..<partitions).map {
                TopicPartitionOffset(topic: topic, partition: Int32($0), offset: fromBeginning ? TopicPartitionOffset.first : TopicPartitionOffset.end)
            }
            if let fromMs {
                // Seek by time: a row of minute m is produced at or after m, so the first message
                // stamped a minute before --from (slack for clocks) is where its rows can start.
                do {
                    these = try consumer.offsetsForTimes(topic: topic, partitions: partitions, timestampMs: fromMs - 60_000)
                } catch {
                    stderrLine("warning: the broker cannot find offsets by time (\(error)); reading from the beginning")
                    these = these.map { TopicPartitionOffset(topic: $0.topic, partition: $0.partition, offset: TopicPartitionOffset.first) }
                }
            }
            positions += these
        }
        try consumer.assign(positions)
        engine.expectPartitions(Array(0..<positions.count), nowMs: Self.nowMs())
        let timeColumn = query.readsEvents ? "ts" : "minute"

        var output = ResultPrinter(format: format, query: query)
        var lastRow = ContinuousClock.now
        var undecodable = 0
        // Messages are decoded straight into the fields the query reads (see RowLayout).
        var rows = RowBatch(layout: engine.layout, capacity: 5000)
        while !Shutdown.isRequested {
            let batch = try consumer.poll(maxMessages: 5000, timeoutMs: 100)
            rows.removeAll()
            for message in batch {
                if let error = message.error {
                    // An answer from part of the topic would be wrong without a word: the query stops (exit 1).
                    try message.throwIfRecordsLost()
                    if error.code != .partitionEOF { stderrLine("warning: \(error)") }
                    continue
                }
                lastRow = .now
                if message.isWatermarkMarker { continue }
                let partition = (firstIndex.count == 1 ? 0 : firstIndex[message.topic] ?? 0) + Int(message.partition)
                guard rows.append(json: message.value, partition: partition) else { undecodable += 1; continue }
                if let fromMs, let time = rows.value(rows.count - 1, timeColumn).exactInt, time < fromMs { rows.removeLast() }
            }
            var results: [QueryResult] = []
            do throws(QueryError) {
                if !rows.isEmpty { results = try engine.ingest(rows) }
            } catch {
                stderrLine(error.rendered)
                throw ExitCode(1)
            }
            results += engine.tick(nowMs: Self.nowMs())
            output.show(results, engine: engine)
            if let idle = untilIdle, ContinuousClock.now - lastRow >= idle.duration {
                output.show(engine.finish(), engine: engine)
                break
            }
        }
        output.finish()
        if undecodable > 0 { stderrLine("warning: \(undecodable) message(s) were not JSON objects and were skipped") }
        let stats = engine.stats
        if isatty(STDERR_FILENO) != 0 {
            stderrLine("rows \(stats.rowsIn), applied \(stats.rowsApplied), stale revs \(stats.staleRevisions), duplicate events \(stats.duplicateEvents), late \(stats.lateRows), emissions \(stats.emissions)")
        }
    }

    static func queryText(sql: String?, file: String?) throws -> String {
        switch (sql, file) {
        case (let text?, nil): return text
        case (nil, let path?):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read query file \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        case (nil, nil): throw ValidationError("give the query as an argument or with -f FILE")
        default: throw ValidationError("give the query either as an argument or with -f, not both")
        }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func milliseconds(_ argument: DurationArgument) -> Int64 {
        let (seconds, attoseconds) = argument.duration.components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? Int64.max : ms &+ attoseconds / 1_000_000_000_000_000
    }

    /// Epoch milliseconds, or ISO-8601 with or without fractional seconds / time zone (UTC assumed).
    static func parseTimestamp(_ text: String) throws -> Int64 {
        if let ms = Int64(text) { return ms }
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime],
                                                      [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate],
                                                      [.withFullDate]] {
            formatter.formatOptions = options
            formatter.timeZone = TimeZone(identifier: "UTC")
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        throw ValidationError("--from expects epoch milliseconds or ISO-8601, e.g. 2026-05-01T12:00:00Z; got \(text)")
    }
}

/// Prints emissions: NDJSON lines, a table per emission (not a terminal), or a live view redrawn
/// in place (terminal) showing the current window and the latest final one.
struct ResultPrinter {
    let format: QueryCommand.Format
    let query: Query
    let live: Bool
    /// Latest table per window start; final ones are kept (a few) so the view can show them.
    private var latest: [Int64: QueryResult] = [:]
    private var drawn = false

    init(format: QueryCommand.Format, query: Query, live: Bool = isatty(STDOUT_FILENO) != 0) {
        self.format = format
        self.query = query
        self.live = live
    }

    mutating func show(_ results: [QueryResult], engine: QueryEngine) {
        guard !results.isEmpty else { return }
        switch format {
        case .ndjson:
            var out = ""
            for result in results { out += result.ndjson; out += "\n" }
            FileHandle.standardOutput.write(Data(out.utf8))
        case .table where !live:
            var out = ""
            for result in results { out += Self.render(result, maxRows: Int.max) + "\n\n" }
            FileHandle.standardOutput.write(Data(out.utf8))
        case .table:
            for result in results { latest[result.windowStart ?? Int64.min] = result }
            // Keep every open window and the most recent final ones.
            let finals = latest.values.filter(\.final).sorted { ($0.windowEnd ?? 0) > ($1.windowEnd ?? 0) }
            for old in finals.dropFirst(32) { latest[old.windowStart ?? Int64.min] = nil }
            redraw(engine)
        }
    }

    /// "Now" is the window whose last minute is the newest minute seen (the smallest end after the
    /// watermark; later SLIDING windows only hold the newest minutes). Below it: the latest final
    /// window that ended before it.
    private mutating func redraw(_ engine: QueryEngine) {
        let watermark = engine.watermark ?? Int64.min
        let all = Array(latest.values)
        let current = all.filter { ($0.windowEnd ?? Int64.max) > watermark }
            .min { ($0.windowEnd ?? Int64.max) < ($1.windowEnd ?? Int64.max) }
            ?? all.max { ($0.windowEnd ?? Int64.min) < ($1.windowEnd ?? Int64.min) }
        let currentEnd = current?.windowEnd ?? Int64.max
        let previous = all.filter { $0.final && ($0.windowEnd ?? Int64.max) < currentEnd }
            .max { ($0.windowEnd ?? Int64.min) < ($1.windowEnd ?? Int64.min) }
        let rowsPerTable = max(5, (Self.terminalRows() - 8) / (previous == nil ? 1 : 2) - 4)
        var out = "\u{1B}[H\u{1B}[2J"
        out += "strata query · \(query.source) · watermark \(engine.watermark.map(Self.time) ?? "-") · rows \(engine.stats.rowsIn) · Ctrl-C to stop\n\n"
        if let current { out += Self.render(current, maxRows: rowsPerTable) + "\n\n" }
        if let previous { out += Self.render(previous, maxRows: rowsPerTable) + "\n" }
        FileHandle.standardOutput.write(Data(out.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }

    static func render(_ result: QueryResult, maxRows: Int) -> String {
        var title = "all rows"
        if let start = result.windowStart, let end = result.windowEnd { title = "window \(time(start)) – \(time(end))" }
        title += result.final ? " (final)" : " (open)"
        let shown = result.rows.prefix(maxRows).map { $0.map(\.displayText) }
        var text = title + "\n" + TextTable.render(header: result.columns, rows: Array(shown))
        if result.rows.count > maxRows { text += "\n… \(result.rows.count - maxRows) more rows" }
        return text
    }

    static func time(_ ms: Int64) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) + "Z"
    }

    static func terminalRows() -> Int {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 { return Int(size.ws_row) }
        return 40
    }
}
