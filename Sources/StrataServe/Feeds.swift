import Foundation
import StrataCore
public import StrataQuery

/// A named query the server evaluates once and streams to every viewer: one file of
/// `sql/dashboard/` (the name is the file name without `.sql`).
public struct FeedDefinition: Sendable {
    public let name: String
    public let query: Query
    /// The topic read: the query's FROM source with the server's topic prefix.
    public let topic: String

    public init(name: String, query: Query, topicPrefix: String = "") {
        self.name = name
        self.query = query
        self.topic = topicPrefix + query.source
    }

    /// A file that does not parse or plan, or an unreadable directory.
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every `*.sql` of `directory`, sorted by name. A feed name is `[A-Za-z0-9_-]+`.
    public static func load(directory: String, topicPrefix: String = "", catalog: Catalog? = nil) throws -> [FeedDefinition] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sql") }.sorted()
        } catch {
            throw LoadError(description: "cannot read the feed directory \(directory): \(error.localizedDescription)")
        }
        var feeds: [FeedDefinition] = []
        for file in files {
            let name = String(file.dropLast(4))
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                throw LoadError(description: "feed file \(file): a feed name may hold only letters, digits, '_' and '-'")
            }
            let path = (directory as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoadError(description: "cannot read feed file \(path)")
            }
            do throws(QueryError) {
                let query = try Query.servable(String(decoding: data, as: UTF8.self), catalog: catalog)
                feeds.append(FeedDefinition(name: name, query: query, topicPrefix: topicPrefix))
            } catch {
                throw LoadError(description: "feed file \(path):\n\(error.rendered)")
            }
        }
        return feeds
    }
}

extension FeedDefinition {
    /// Names, sizes and modification times of the directory's `*.sql` files: changes when a
    /// feed file is added, removed or edited.
    public static func fingerprint(directory: String) -> String? {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return nil }
        var parts: [String] = []
        for file in files.sorted() where file.hasSuffix(".sql") {
            let path = (directory as NSString).appendingPathComponent(file)
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            parts.append("\(file):\(size):\(modified)")
        }
        return parts.joined(separator: "|")
    }
}

/// JSON renderings of result tables.
public enum ResultJSON {
    /// `{"feed":…,"window_start":…,"window_end":…,"final":…,"columns":[…],"rows":[{…},…]}`,
    /// row keys in select order.
    public static func feedEvent(feed: String, _ result: QueryResult) -> String {
        var s = "{\"feed\":"
        JSONString.append(feed, to: &s)
        s += ",\"window_start\":" + (result.windowStart.map { String($0) } ?? "null")
        s += ",\"window_end\":" + (result.windowEnd.map { String($0) } ?? "null")
        s += ",\"final\":" + (result.final ? "true" : "false")
        s += ",\"columns\":"
        appendColumns(result.columns, to: &s)
        s += ",\"rows\":"
        result.appendRowsJSON(to: &s)
        s += "}"
        return s
    }

    static func appendColumns(_ columns: [String], to s: inout String) {
        s += "["
        for (i, c) in columns.enumerated() {
            if i > 0 { s += "," }
            JSONString.append(c, to: &s)
        }
        s += "]"
    }

    /// `{"error":…}` plus optional position fields.
    public static func error(_ message: String, extra: [(String, String)] = []) -> String {
        var s = "{\"error\":"
        JSONString.append(message, to: &s)
        for (k, v) in extra {
            s += ","
            JSONString.append(k, to: &s)
            s += ":" + v
        }
        return s + "}"
    }
}

extension Query {
    /// A query as the dashboard runs it (feed files, one-shot and WebSocket queries): planned
    /// against the topology's catalog, and over one source (each reader follows one topic).
    static func servable(_ sql: String, catalog: Catalog?) throws(QueryError) -> Query {
        let query = try Query.parse(sql, catalog: catalog)
        try query.requireSingleSource()
        return query
    }
}
