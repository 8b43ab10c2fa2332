import ArgumentParser
import Foundation
import Logging
import StrataCLI
import StrataQuery
import StrataCore
import StrataKafka
import StrataRuntime
import StrataServe

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the big-screen dashboard and the live query feeds over HTTP.",
        discussion: """
        Every file of the feed directory (default sql/dashboard) is a named query in
        Strata's query language; each is evaluated once, on one shared consumer per
        topic, whatever the number of viewers. Endpoints (docs/dashboard.md):
          GET /                  the big-screen page
          GET /api/feeds         the feeds as JSON
          GET /api/feeds/NAME    SSE: the current result at once, then each new one
          GET /ws                WebSocket: named feeds and ad-hoc live queries
          POST /api/query        {"sql": "..."}: a one-shot query, as a JSON table
          GET /api/status        the feed consumers and the jobs' lag
          GET /healthz, /readyz  liveness; ready once the feed consumers caught up
          GET /metrics           Prometheus text
          GET /openapi.yaml      the API described for tools

        Editing, adding or removing a feed file changes the running feeds within a
        few seconds (a file that does not parse is reported; the running feeds stay).
        On start the feeds seek their topics by time to the history's start.

        Listens on 127.0.0.1:8080 by default. Any other than a loopback address
        requires an API token (--token-file, STRATA_SERVE_TOKEN or --token), sent as
        `Authorization: Bearer TOKEN` or `?token=TOKEN`. It is never logged.
        """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).") var listen = "127.0.0.1:8080"
    @Option(help: "API token required on every endpoint but the probes (env STRATA_SERVE_TOKEN). Required off loopback. Prefer --token-file: a flag shows in the process list.")
    var token: String?
    @Option(help: "Read the API token from this file (its first line).") var tokenFile: String?
    @Option(help: "Directory of the feed queries (*.sql).") var feeds = "sql/dashboard"
    @Option(help: "Prefix for every topic name.") var topicPrefix = ""
    @Option(help: "History the feeds read on start: rows whose minute is older are skipped (e.g. 70m).")
    var history: DurationArgument = DurationArgument(argument: "70m")!
    @Flag(help: "Feeds start at the end of their topics instead of the beginning.") var fromEnd = false
    @Option(help: "Messages a viewer may have waiting before the oldest are dropped.") var viewerBuffer = 64
    @Option(help: "Default time bound of a one-shot query.") var queryTimeout: DurationArgument = DurationArgument(argument: "5s")!
    @Option(help: "How often the feed directory is checked for changes (0 turns reloading off).")
    var reloadEvery: DurationArgument = DurationArgument(argument: "2s")!
    @Option(help: "Consumer groups whose lag the dashboard shows, JOB=GROUP (default: split and dwm).")
    var watchGroup: [String] = []

    func run() throws {
        var options = ServeOptions()
        (options.host, options.port) = try HTTPCommandSupport.parseListen(listen, example: "127.0.0.1:8080")
        options.token = try Self.resolveToken(flag: token, file: tokenFile)
        options.topicPrefix = topicPrefix
        options.fromBeginning = !fromEnd
        options.historyMs = Int64(history.seconds * 1000)
        options.viewerBuffer = viewerBuffer
        options.oneShotTimeoutMs = max(1, Int(queryTimeout.seconds * 1000))
        options.feedDirectory = feeds
        options.reloadIntervalMs = Int(reloadEvery.seconds * 1000)
        do { try options.validate() } catch { throw ValidationError(String(describing: error)) }

        let config = try global.resolve()
        let topology = try global.loadTopology(config)
        options.catalog = Catalog(topology: topology)
        let definitions: [FeedDefinition]
        do { definitions = try FeedDefinition.load(directory: feeds, topicPrefix: topicPrefix, catalog: options.catalog) } catch {
            stderrLine(String(describing: error))
            throw ExitCode(2)
        }
        let server = StrataServer(options: options, feeds: definitions,
                                  consumerConfig: config.consumerConfig(groupId: nil, clientId: "strata-serve"),
                                  lagWatches: try lagWatches(topology: topology),
                                  logger: Logger(label: "strata.serve"))
        let host = HTTPCommandSupport.urlHost(options.host)
        let tokenState = options.token == nil ? "off" : "required"
        let feedCount = definitions.count
        try HTTPCommandSupport.run(command: "strata serve", { onRunning in try await server.run(onRunning: onRunning) }) { port in
            stderrLine("strata serve: http://\(host):\(port)/ · \(feedCount) feeds · token \(tokenState)")
        }
    }
}

extension ServeCommand {
    /// --token-file, then STRATA_SERVE_TOKEN, then --token.
    static func resolveToken(flag: String?, file: String?) throws -> String? {
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read the token file \(file)")
            }
            let token = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !token.isEmpty else { throw ValidationError("the token file \(file) is empty") }
            return token
        }
        if let env = ProcessInfo.processInfo.environment["STRATA_SERVE_TOKEN"], !env.isEmpty { return env }
        return flag
    }

    /// The split job reads ods.raw; the dwm job the micro-queues, or ods.raw with --read-raw (with
    /// the topic prefix).
    func lagWatches(topology: Topology) throws -> [LagWatch] {
        guard !watchGroup.isEmpty else {
            return [.split(topicPrefix: topicPrefix), .dwm(topology: topology, topicPrefix: topicPrefix)]
        }
        return try watchGroup.map { spec in
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, ["split", "dwm"].contains(parts[0]) else {
                throw ValidationError("--watch-group expects split=GROUP or dwm=GROUP; got \(spec)")
            }
            return parts[0] == "split" ? .split(topicPrefix: topicPrefix, groupId: parts[1])
                : .dwm(topology: topology, topicPrefix: topicPrefix, groupId: parts[1])
        }
    }
}
