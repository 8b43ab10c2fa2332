import Foundation

/// Posts lines to a gateway in NDJSON batches (one event a line, so a malformed line is refused
/// alone and never breaks its neighbours, as it could inside a JSON array): a full batch is sent at once; 429, 503 and connection failures are retried after Retry-After or with
/// exponential backoff (up to `maxAttempts`); a 400 or 413 is counted, not retried.
public final class BatchPoster {
    public struct Stats: Sendable {
        public var requests = 0
        public var accepted = 0
        public var rejected = 0
        public var retries = 0
    }

    public struct GaveUp: Error, CustomStringConvertible {
        public let description: String
    }

    public let batchSize: Int
    public let maxAttempts: Int
    public private(set) var stats = Stats()
    private let poster: EventPoster
    private var body: [UInt8] = []
    private var pending = 0

    public init(url: String, batchSize: Int = 20, maxAttempts: Int = 20) throws {
        poster = try EventPoster(url: url)
        self.batchSize = batchSize
        self.maxAttempts = maxAttempts
        body.reserveCapacity(batchSize * 320)
    }

    public func add(_ event: [UInt8]) throws {
        body.append(contentsOf: event)
        body.append(UInt8(ascii: "\n"))
        pending += 1
        if pending >= batchSize { try flush() }
    }

    public func flush() throws {
        guard pending > 0 else { return }
        defer {
            body.removeAll(keepingCapacity: true)
            pending = 0
        }
        var backoff = 0.1
        for attempt in 1...maxAttempts {
            stats.requests += 1
            var wait: Double? = nil
            do {
                let r = try poster.post(body)
                switch r.status {
                case 202, 400:
                    let (a, rej) = Self.counts(r.body)
                    stats.accepted += a
                    stats.rejected += r.status == 400 && a == 0 && rej == 0 ? pending : rej
                    return
                case 413:
                    stats.rejected += pending
                    return
                case 429, 503:
                    wait = r.retryAfter.map(Double.init) ?? backoff
                default:
                    throw GaveUp(description: "the gateway answered \(r.status): \(r.text)")
                }
            } catch let e as GaveUp {
                throw e
            } catch {
                wait = backoff
            }
            guard attempt < maxAttempts, let wait else { break }
            stats.retries += 1
            Thread.sleep(forTimeInterval: wait)
            backoff = min(backoff * 2, 10)
        }
        throw GaveUp(description: "a batch of \(pending) events was not accepted after \(maxAttempts) attempts")
    }

    /// `accepted` and the number of rejected items, read from the gateway's answer.
    static func counts(_ body: [UInt8]) -> (accepted: Int, rejected: Int) {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return (0, 0) }
        return ((json["accepted"] as? Int) ?? 0, (json["rejected"] as? [Any])?.count ?? 0)
    }
}
