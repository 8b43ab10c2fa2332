import Foundation
import Logging
import StrataKafka
import StrataQuery
import Synchronization

/// Which live queries run, on which shared topic consumer, for whom: the named feeds (the files
/// of the feed directory, replaced when they change) and the ad-hoc queries of WebSocket viewers
/// (shared by their canonical text, dropped when nobody has watched them for a while).
final class QueryRegistry: Sendable {
    struct Entry: Sendable {
        let definition: FeedDefinition
        let hub: FeedHub
    }
    private struct State {
        var named: [String: Entry] = [:]
        var adHoc: [String: Entry] = [:]
        var sources: [String: TopicSource] = [:]
        var started = false
        var nextAdHoc = 0
    }
    private let state = Mutex(State())
    let options: ServeOptions
    let consumerConfig: KafkaConfig
    let logger: Logger

    init(feeds: [FeedDefinition], options: ServeOptions, consumerConfig: KafkaConfig, logger: Logger) {
        self.options = options
        self.consumerConfig = consumerConfig
        self.logger = logger
        replaceNamed(feeds)
    }

    /// The named feeds, by name.
    var named: [Entry] { state.withLock { s in s.named.values.sorted { $0.definition.name < $1.definition.name } } }
    func hub(named name: String) -> FeedHub? { state.withLock { $0.named[name]?.hub } }
    var sources: [TopicSource] { state.withLock { s in s.sources.keys.sorted().map { s.sources[$0]! } } }
    var adHocCount: Int { state.withLock { $0.adHoc.count } }
    /// The consumers the named feeds read (readiness is about these, not about ad-hoc queries).
    var namedSources: [TopicSource] {
        state.withLock { s in Set(s.named.values.map(\.definition.topic)).sorted().compactMap { s.sources[$0] } }
    }

    /// Starts the shared consumers (once); sources created later start at once.
    func start() {
        let sources = state.withLock { s in
            s.started = true
            return Array(s.sources.values)
        }
        for source in sources { source.start() }
    }

    func stop() {
        let (sources, hubs) = state.withLock { s in
            s.started = false
            return (Array(s.sources.values), s.named.values.map(\.hub) + s.adHoc.values.map(\.hub))
        }
        for source in sources { source.stop() }
        for hub in hubs { hub.closeAll() }
    }

    /// Makes `feeds` the named feeds: a new name gets a hub, a changed query keeps its hub (its
    /// viewers stay connected and see the new query's result once it has read the history), a
    /// name gone closes its viewers' streams.
    func replaceNamed(_ feeds: [FeedDefinition]) {
        var changed: [String] = []
        state.withLock { s in
            let wanted = Dictionary(feeds.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for (name, entry) in s.named where wanted[name] == nil {
                detach(entry, in: &s)
                entry.hub.closeAll()
                s.named[name] = nil
                changed.append("-\(name)")
            }
            for feed in feeds {
                if let old = s.named[feed.name] {
                    if old.definition.query.canonical == feed.query.canonical && old.definition.topic == feed.topic { continue }
                    detach(old, in: &s)
                    old.hub.reset()
                    let entry = Entry(definition: feed, hub: old.hub)
                    s.named[feed.name] = entry
                    attach(entry, in: &s)
                    changed.append("~\(feed.name)")
                } else {
                    let entry = Entry(definition: feed, hub: FeedHub(name: feed.name, bufferCapacity: options.viewerBuffer,
                                                                    dropLimit: options.viewerDropLimit))
                    s.named[feed.name] = entry
                    attach(entry, in: &s)
                    changed.append("+\(feed.name)")
                }
            }
        }
        if !changed.isEmpty { logger.info("feeds loaded", metadata: ["changes": "\(changed.joined(separator: " "))"]) }
    }

    /// The hub of a live ad-hoc query, shared by every viewer asking for the same query.
    func adHoc(_ query: Query) -> FeedHub {
        let topic = options.topicPrefix + query.source
        let key = topic + "\u{0}" + query.canonical
        return state.withLock { s in
            if let entry = s.adHoc[key] { return entry.hub }
            s.nextAdHoc += 1
            let name = "adhoc-\(s.nextAdHoc)"
            let definition = FeedDefinition(name: name, query: query, topicPrefix: options.topicPrefix)
            let entry = Entry(definition: definition, hub: FeedHub(name: name, bufferCapacity: options.viewerBuffer,
                                                                   dropLimit: options.viewerDropLimit))
            s.adHoc[key] = entry
            attach(entry, in: &s)
            logger.info("ad-hoc query started", metadata: ["name": "\(name)", "topic": "\(topic)", "sql": "\(query.canonical)"])
            return entry.hub
        }
    }

    /// Drops ad-hoc queries nobody has watched for `idle`, and topic consumers no query reads.
    func sweep(idle: Duration) {
        let stopped: [TopicSource] = state.withLock { s in
            for (key, entry) in s.adHoc {
                if let idleFor = entry.hub.idleFor, idleFor >= idle {
                    detach(entry, in: &s)
                    s.adHoc[key] = nil
                    logger.info("ad-hoc query stopped: no viewer", metadata: ["name": "\(entry.definition.name)"])
                }
            }
            let used = Set(s.named.values.map(\.definition.topic) + s.adHoc.values.map(\.definition.topic))
            var stopped: [TopicSource] = []
            for (topic, source) in s.sources where !used.contains(topic) {
                stopped.append(source)
                s.sources[topic] = nil
            }
            return stopped
        }
        for source in stopped { source.stop() }
    }

    /// Every hub, for heartbeats.
    var hubs: [FeedHub] { state.withLock { s in s.named.values.map(\.hub) + s.adHoc.values.map(\.hub) } }

    private func attach(_ entry: Entry, in s: inout State) {
        let topic = entry.definition.topic
        if let source = s.sources[topic] {
            source.attach(entry.definition, hub: entry.hub)
            return
        }
        let source = TopicSource(topic: topic, feeds: [(entry.definition, entry.hub)], consumerConfig: consumerConfig,
                                 options: options, logger: logger)
        s.sources[topic] = source
        if s.started { source.start() }
    }

    private func detach(_ entry: Entry, in s: inout State) {
        s.sources[entry.definition.topic]?.detach(entry.hub)
    }
}
