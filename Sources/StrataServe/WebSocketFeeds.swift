import CoreMetrics
import Foundation
import HummingbirdWebSocket
import Logging
import StrataCore
import StrataQuery

/// `GET /ws`: one WebSocket carries any number of subscriptions, to named feeds or to ad-hoc live
/// queries (shared with every other viewer of the same query). Text frames, one JSON object each.
///
/// Client → server:
///   `{"subscribe": "totals"}`                          a named feed; its id is its name
///   `{"subscribe": "mine", "sql": "SELECT …"}`         a live ad-hoc query under the client's id
///   `{"unsubscribe": "mine"}`
/// Server → client:
///   `{"type":"subscribed","id":…,"feed":…,"columns":[…]}`
///   `{"type":"result","id":…,"data":{feed event}}`     the current result at once, then each new one
///   `{"type":"error","id":…|null,"error":…}`           plus line/column for a query that does not parse
///   `{"type":"unsubscribed","id":…}`
enum WebSocketFeeds {
    /// Subscriptions one connection may hold.
    static let maxSubscriptions = 32

    static func handle(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
                       registry: QueryRegistry, options: ServeOptions, logger: Logger) async throws {
        // Every subscription forwards into one bounded stream with one writer, so frames never
        // interleave and a slow client drops its own oldest messages.
        let (frames, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(max(16, options.viewerBuffer * 4)))
        let dropped = MetricsRegistry.shared.counter("strata_serve_ws_dropped_messages_total",
                                                     help: "Messages dropped from full WebSocket connection buffers (drop-oldest).")
        let send: @Sendable (String) -> Void = { frame in
            if case .dropped = sink.yield(frame) { dropped.increment() }
        }
        let writer = Task {
            for await frame in frames { try await outbound.write(.text(frame)) }
        }
        var subscriptions: [String: Task<Void, Never>] = [:]
        defer {
            for task in subscriptions.values { task.cancel() }
            sink.finish()
            writer.cancel()
        }
        for try await message in inbound.messages(maxSize: 256 * 1024) {
            guard case .text(let text) = message,
                  let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                send(errorFrame(id: nil, "expected a JSON object: {\"subscribe\": NAME} or {\"subscribe\": ID, \"sql\": \"SELECT …\"} or {\"unsubscribe\": ID}"))
                continue
            }
            if let id = object["unsubscribe"] as? String {
                subscriptions.removeValue(forKey: id)?.cancel()
                send(#"{"type":"unsubscribed","id":"# + JSONString.quoted(id) + "}")
                continue
            }
            guard let id = object["subscribe"] as? String, !id.isEmpty else {
                send(errorFrame(id: nil, "unknown message: expected \"subscribe\" or \"unsubscribe\""))
                continue
            }
            guard subscriptions[id] == nil else {
                send(errorFrame(id: id, "already subscribed under this id; unsubscribe first"))
                continue
            }
            guard subscriptions.count < maxSubscriptions else {
                send(errorFrame(id: id, "at most \(maxSubscriptions) subscriptions per connection"))
                continue
            }
            let hub: FeedHub
            let columns: [String]
            if let sql = object["sql"] as? String {
                do throws(QueryError) {
                    let query = try Query.servable(sql, catalog: options.catalog)
                    try QueryEngine(query, limits: options.limits, options: options.queryOptions).validate()
                    hub = registry.adHoc(query)
                    columns = query.columns
                } catch {
                    var extra: [(String, String)] = [("type", "\"error\""), ("id", JSONString.quoted(id))]
                    if let line = error.line, let column = error.column { extra += [("line", String(line)), ("column", String(column))] }
                    send(ResultJSON.error(error.message, extra: extra))
                    continue
                }
            } else if let named = registry.hub(named: id), let entry = registry.named.first(where: { $0.definition.name == id }) {
                hub = named
                columns = entry.definition.query.columns
            } else {
                send(errorFrame(id: id, "no feed named \(id); GET /api/feeds lists them, or send \"sql\" for an ad-hoc query"))
                continue
            }
            var subscribed = #"{"type":"subscribed","id":"# + JSONString.quoted(id) + #","feed":"# + JSONString.quoted(hub.name) + #","columns":"#
            ResultJSON.appendColumns(columns, to: &subscribed)
            send(subscribed + "}")
            let stream = hub.subscribe()
            let prefix = #"{"type":"result","id":"# + JSONString.quoted(id) + #","data":"#
            subscriptions[id] = Task {
                for await message in stream {
                    switch message {
                    case .result(let json): send(prefix + json + "}")
                    case .error(let json): send(#"{"type":"error","id":"# + JSONString.quoted(id) + #","data":"# + json + "}")
                    case .ping: break  // WebSocket pings keep the connection alive
                    }
                }
            }
        }
    }

    static func errorFrame(id: String?, _ message: String) -> String {
        ResultJSON.error(message, extra: [("type", "\"error\""), ("id", id.map(JSONString.quoted) ?? "null")])
    }
}
