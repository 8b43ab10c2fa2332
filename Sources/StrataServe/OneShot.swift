import Foundation
import StrataCore
import StrataKafka
import StrataRuntime
import StrataQuery

/// `POST /api/query`: reads the query's topic from its beginning to its end (every partition
/// reached once) or until the time bound, then answers the final table of every window.
enum OneShot {
    struct Answer: Sendable {
        var status: Int
        var body: String
    }

    static func run(sql: String, timeoutMs: Int, options: ServeOptions, consumerConfig: KafkaConfig) -> Answer {
        let query: Query
        do throws(QueryError) {
            query = try Query.servable(sql, catalog: options.catalog)
        } catch {
            var extra: [(String, String)] = []
            if let line = error.line, let column = error.column { extra = [("line", String(line)), ("column", String(column))] }
            var rendered = ""
            JSONString.append(error.rendered, to: &rendered)
            extra.append(("rendered", rendered))
            return Answer(status: 400, body: ResultJSON.error(error.message, extra: extra))
        }
        let engine = QueryEngine(query, limits: options.limits, options: options.queryOptions)
        do throws(QueryError) { try engine.validate() } catch {
            return Answer(status: 400, body: ResultJSON.error(error.message))
        }
        let topic = options.topicPrefix + query.source
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(timeoutMs)
        var results: [QueryResult] = []
        var rowsRead = 0
        var complete = false
        do {
            let consumer = try KafkaConsumer(config: consumerConfig.merging(["enable.partition.eof": "true"]))
            defer { consumer.close() }
            let partitions = try consumer.partitionCount(topic: topic)
            try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: TopicPartitionOffset.first) })
            var atEnd = Set<Int32>()
            var rows = RowBatch(layout: engine.layout, capacity: 5000)
            while ContinuousClock.now < deadline {
                let batch = try consumer.poll(maxMessages: 5000, timeoutMs: 100)
                rows.removeAll()
                for message in batch {
                    if let error = message.error {
                        if error.code == .partitionEOF { atEnd.insert(message.partition) }
                        try message.throwIfRecordsLost()
                        continue
                    }
                    if message.isWatermarkMarker { continue }
                    rows.append(json: message.value, partition: Int(message.partition))
                }
                rowsRead += rows.count
                if !rows.isEmpty {
                    do throws(QueryError) {
                        results += try engine.ingest(rows)
                    } catch {
                        return Answer(status: 400, body: ResultJSON.error(error.message))
                    }
                }
                if atEnd.count >= partitions { complete = true; break }
            }
        } catch {
            return Answer(status: 502, body: ResultJSON.error("cannot read topic \(topic): \(error)"))
        }
        results += engine.finish()
        // The final table of each window, in window order.
        var finals: [Int64: QueryResult] = [:]
        for result in results where result.final { finals[result.windowStart ?? Int64.min] = result }
        let tables = finals.keys.sorted().compactMap { finals[$0] }

        var s = "{\"columns\":"
        let windowColumns = query.isWindowed ? ["window_start", "window_end"] : []
        ResultJSON.appendColumns(windowColumns + query.columns, to: &s)
        s += ",\"rows\":["
        var first = true
        for table in tables {
            for row in table.rows {
                if !first { s += "," }
                first = false
                s += "{"
                if query.isWindowed {
                    s += "\"window_start\":" + (table.windowStart.map { String($0) } ?? "null")
                    s += ",\"window_end\":" + (table.windowEnd.map { String($0) } ?? "null")
                    if !query.columns.isEmpty { s += "," }
                }
                for (i, c) in query.columns.enumerated() {
                    if i > 0 { s += "," }
                    JSONString.append(c, to: &s)
                    s += ":"
                    (i < row.count ? row[i] : .null).appendJSON(to: &s)
                }
                s += "}"
            }
        }
        let elapsed = ContinuousClock.now - started
        let elapsedMs = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        s += "],\"windowed\":" + (query.isWindowed ? "true" : "false")
        s += ",\"complete\":" + (complete ? "true" : "false")
        s += ",\"rows_read\":\(rowsRead),\"elapsed_ms\":\(elapsedMs)}"
        return Answer(status: 200, body: s)
    }
}
