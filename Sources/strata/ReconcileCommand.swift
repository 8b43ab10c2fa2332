import ArgumentParser
import Foundation
import StrataArchive
import StrataCore
import StrataDims
import StrataKafka
import StrataReconcile

/// Where the offline commands find their inputs (archive, late events); shared by reconcile and settle.
struct BatchDayOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The day to recompute, YYYY-MM-DD (UTC).", valueName: "YYYY-MM-DD"))
    var date: String?

    @Option(help: "Archive root holding dt=YYYY-MM-DD/… (env STRATA_ARCHIVE). Default: data/ods, beside the default store data/strata.db.")
    var archive: String = ProcessInfo.processInfo.environment["STRATA_ARCHIVE"].flatMap { $0.isEmpty ? nil : $0 } ?? "data/ods"

    @Option(help: "Dimension store holding content_dim, dws_minute and pricing: sqlite:PATH or postgres://… (env STRATA_STORE).")
    var store: String?

    @Option(help: ArgumentHelp("Late events as NDJSON (or .ndjson.zst), one ods.late value per line, read in addition to (or, with --no-broker, instead of) the topic (repeatable).", valueName: "file"))
    var lateFile: [String] = []

    @Flag(help: "Do not read ods.late (and ods.dlq) from the broker.")
    var noBroker = false

    @Option(help: "Prefix of the topic names (as the jobs' --topic-prefix).")
    var topicPrefix = ""

    @Option(help: "Reading a topic ends when every partition reached its end and nothing came for this long.")
    var topicIdle: DurationArgument = DurationArgument(argument: "2s")!

    /// The day, or exit 2 with a message.
    func day() throws -> ArchiveDay {
        guard let text = date else { throw OfflineFailure.badInput("--date YYYY-MM-DD is required") }
        guard let day = ArchiveDay(text) else {
            throw OfflineFailure.badInput("--date '\(text)' is not a date: expected YYYY-MM-DD (UTC), e.g. 2026-12-01")
        }
        return day
    }

    /// ods.late values (the topic unless --no-broker, plus --late-file), and the day's ods.dlq
    /// records by reason (nil without the broker).
    func lateRecords(config: StrataConfig, day: ArchiveDay) throws -> (records: [[UInt8]], source: String, deadLetters: [String: Int]?) {
        var records: [[UInt8]] = []
        var sources: [String] = []
        for file in lateFile {
            guard FileManager.default.fileExists(atPath: file) else { throw OfflineFailure.badInput("--late-file \(file) does not exist") }
            let before = records.count
            if file.hasSuffix(".zst") {
                do { try ZstdLineReader(path: file).forEachLine { if !$0.isEmpty { records.append(Array($0)) } } }
                catch { throw OfflineFailure.badInput("--late-file \(file): \(error)") }
            } else {
                guard let data = FileManager.default.contents(atPath: file) else { throw OfflineFailure.badInput("--late-file \(file) is not readable") }
                for line in data.split(separator: 0x0A) where !line.isEmpty { records.append(Array(line)) }
            }
            sources.append("\(file) (\(records.count - before) records)")
        }
        var deadLetters: [String: Int]? = nil
        if !noBroker {
            let kafka = config.consumerConfig(groupId: nil, clientId: "strata-reconcile")
            let lateTopic = topicPrefix + Topology.late
            let late = try TopicScan.read(config: kafka, topic: lateTopic, idle: topicIdle.duration) { m in
                records.append(Array(m.value))
            }
            sources.append("topic \(lateTopic) at \(config.brokers) (\(late.records) records)")
            var counts: [String: Int] = [:]
            _ = try TopicScan.read(config: kafka, topic: topicPrefix + Topology.deadLetter, idle: topicIdle.duration) { m in
                // Dead letters carry no trustworthy event time: the produce time says which day.
                guard m.timestampMs >= day.startMs && m.timestampMs < day.endMs else { return }
                let reason = m.header("reason").map { String(decoding: $0, as: UTF8.self) } ?? "(no reason header)"
                counts[reason, default: 0] += 1
            }
            deadLetters = counts
        }
        return (records, sources.isEmpty ? "none (--no-broker, no --late-file)" : sources.joined(separator: ", "), deadLetters)
    }

    func scan(day: ArchiveDay, topology: Topology, store: any DimensionStore, late: [[UInt8]]) throws -> DayScan {
        var progress = Progress()
        let scan = try DayScan(day: day, archiveRoot: archive, actions: topology.actions, contentIdPattern: topology.contentIdPattern,
                               store: store, lateRecords: late) { p in
            let pct = p.compressedBytes > 0 ? Double(p.compressedBytesDone) * 100 / Double(p.compressedBytes) : 100
            let rate = p.seconds > 0 ? Double(p.lines) / p.seconds : 0
            let filled = Int(pct / 5)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: max(0, 20 - filled))
            progress.update("scanning \(day) [\(bar)] \(Int(pct))%  files \(p.filesDone)/\(p.files)  \(p.lines) lines  \(Int(rate)) lines/s")
        }
        progress.finish()
        return scan
    }

    /// Writes `text` to --out or stdout.
    static func write(_ text: String, to out: String?) throws {
        if let out {
            do { try text.write(toFile: out, atomically: true, encoding: .utf8) }
            catch { throw OfflineFailure.badInput("cannot write --out \(out): \(error.localizedDescription)") }
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

/// A failure that ends an offline command with status 2 and a message (no usage text).
enum OfflineFailure: Error, CustomStringConvertible {
    case badInput(String)
    var description: String {
        switch self { case .badInput(let m): m }
    }
}

/// Runs `body`; errors that mean "no report could be made" print one line and exit 2.
func runOffline(_ body: () throws -> Int32) throws {
    let code: Int32
    do {
        code = try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        stderrLine("error: \(error)")
        throw ExitCode(2)
    }
    if code != 0 { throw ExitCode(code) }
}

struct ReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Recompute a day's DWS in batch from the archive and compare it with dws_minute: can the real-time numbers be trusted?",
        discussion: """
        The batch path reads every archived ods.raw line of the day (ARCHIVE/dt=YYYY-MM-DD/…, \
        written by `strata job archive`) and applies the stream's rules in code of its own: validation, \
        action, content-id pattern, known contents, dedupe by event_id, minute windows, play_ms, uv — \
        with no lateness limit. It compares the result with dws_minute (written by `strata job sink`): \
        totals per metric, per category, per hour, UV per minute and every (minute, content) row, and \
        ranks the contents and minutes that differ most.

        Late events (ods.late: too late for the stream, never in dws_minute) are in the archive, so \
        they make batch higher than stream by exactly their contribution; the report counts them, \
        with dead-lettered and filtered lines, to explain differences. A difference is fine when it is \
        within --tolerance (relative to the batch value) or when batch − stream equals the late events' \
        part for that metric.

        Exit status: 0 every difference is within tolerance or explained by late events; \
        1 some are not (the report's Findings name the content and minute); 2 no report could be made \
        (bad date, no archive for the day, unreadable archive file, store or broker unreachable).

        Examples:
          strata reconcile --date 2026-12-01                 # Markdown on stdout
          strata reconcile --date 2026-12-01 --format html --out report.html
          strata reconcile --date 2026-12-01 --no-broker --late-file late.ndjson
        See docs/reconciliation.md.
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var offline: BatchDayOptions
    // A string, so that a bad value exits 2 with the other bad input rather than with usage (64).
    @Option(help: "Relative tolerance per compared number (0.001 = 0.1 % of the batch value).") var tolerance: String = "0.001"
    @Option(help: "Report format: md, html (self-contained, with an hourly chart) or json.") var format: String = "md"
    @Option(help: "Write the report to this file instead of stdout.") var out: String?
    @Option(help: "How many contents and minutes to rank.") var top: Int = 10

    func run() throws {
        try runOffline {
            let day = try offline.day()
            guard let format = ReportFormat(rawValue: format) else {
                throw OfflineFailure.badInput("--format '\(format)': expected md, html or json")
            }
            guard let tolerance = Double(tolerance), tolerance >= 0, tolerance.isFinite else {
                throw OfflineFailure.badInput("--tolerance '\(tolerance)': expected a number ≥ 0, e.g. 0.001")
            }
            let config = try global.resolve()
            let topology = try global.loadTopology(config)
            let address = offline.store ?? config.store
            let store = try DimensionStoreFactory.open(address)
            try store.migrate()
            let table = try DWSTableFactory.open(address)
            try table.migrate()
            let pricing = try PricingTableFactory.open(address)
            try pricing.migrate()
            let late = try offline.lateRecords(config: config, day: day)
            let scan = try offline.scan(day: day, topology: topology, store: store, late: late.records)
            var options = ReconcileOptions()
            options.tolerance = tolerance
            options.top = top
            let allColumns = topology.actions.allSatisfy { ["expose", "click", "play", "like", "share", "comment", "report"].contains($0) }
            let report = try Reconciliation.run(scan: scan, table: table, store: store, prices: try pricing.all(), options: options,
                                                lateSource: late.source, deadLetterTopic: late.deadLetters,
                                                allActionsHaveColumns: allColumns)
            try BatchDayOptions.write(try report.render(format), to: out)
            stderrLine("reconcile \(day): \(report.verdict) (\(report.findingsTotal) findings, \(report.revisionProblemsTotal) revision problems, \(report.input.lines) lines in \(fmtSeconds(report.scanSeconds)) s)")
            return report.exitCode
        }
    }
}

struct SettleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settle",
        abstract: "Per-content daily settlement from the batch path: distinct clickers, clicks, exposures, CTR and fee.",
        discussion: """
        Numbers come from the archive (the same batch path as `strata reconcile`, no lateness limit); \
        the stream's clicks and exposures (sums of dws_minute) stand beside them as a cross-check. \
        The fee is clicks × price_per_click + exposures × price_per_mille / 1000, priced by the \
        content's category (the `*` row prices categories without their own row; none: fee 0).

        Prices: load a CSV with the header category,price_per_click,price_per_mille[,currency] \
        (decimals, at most 6 places), which replaces the whole price list:
          strata settle --load-pricing deploy/local/pricing.csv

        Examples:
          strata settle --date 2026-12-01                    # CSV on stdout
          strata settle --date 2026-12-01 --format json --out settle.json --no-broker

        Exit status 2 when no settlement could be made (bad date, no archive, unreachable store).
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var offline: BatchDayOptions
    @Option(help: "Output format: csv or json.") var format: String = "csv"
    @Option(help: "Write to this file instead of stdout.") var out: String?
    @Option(help: "Load a pricing CSV into the store (replacing every price) and exit.") var loadPricing: String?

    func run() throws {
        try runOffline {
            let config = try global.resolve()
            let address = offline.store ?? config.store
            let pricing = try PricingTableFactory.open(address)
            try pricing.migrate()
            if let file = loadPricing {
                guard let data = FileManager.default.contents(atPath: file) else { throw OfflineFailure.badInput("--load-pricing \(file) is not readable") }
                let prices: [CategoryPrice]
                do { prices = try PricingCSV.parse(String(decoding: data, as: UTF8.self)) }
                catch { throw OfflineFailure.badInput("\(file): \(error)") }
                try pricing.replaceAll(prices)
                stderrLine("loaded \(prices.count) prices from \(file)")
                return 0
            }
            let day = try offline.day()
            guard format == "csv" || format == "json" else { throw OfflineFailure.badInput("--format '\(format)': expected csv or json") }
            let topology = try global.loadTopology(config)
            let store = try DimensionStoreFactory.open(address)
            try store.migrate()
            let table = try DWSTableFactory.open(address)
            try table.migrate()
            let late = try offline.lateRecords(config: config, day: day)
            let scan = try offline.scan(day: day, topology: topology, store: store, late: late.records)
            let rows = try Settlement.rows(scan: scan, table: table, prices: try pricing.all())
            if format == "csv" {
                try BatchDayOptions.write(Settlement.csv(rows), to: out)
            } else {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.keyEncodingStrategy = .convertToSnakeCase
                try BatchDayOptions.write(String(decoding: try encoder.encode(rows), as: UTF8.self) + "\n", to: out)
            }
            return 0
        }
    }
}

private func fmtSeconds(_ s: Double) -> String { String(format: "%.2f", s) }
