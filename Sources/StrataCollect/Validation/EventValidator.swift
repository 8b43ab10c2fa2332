public import StrataCore
import StrataSplit

/// One item of a batch that was refused, by its 0-based position in the batch (array element, or
/// non-blank NDJSON line) and the split's reason code (`malformed_json`, `missing_field:ts`,
/// `unknown_action`, …).
public struct Rejection: Sendable, Equatable {
    public var index: Int
    public var reason: String

    public init(index: Int, reason: String) {
        self.index = index
        self.reason = reason
    }
}

/// Validates each item with the split's own rule and frames the accepted ones, enriched.
///
/// The rule is `SplitRouter`'s: what the split job would dead-letter (the scanner's `ScanError`
/// reasons, an action not declared in topology) is refused here with the same reason code, and
/// everything else is accepted — including ids the split filters as non-content ids
/// (`invalid_content_id`), which the warehouse counts rather than drops at the door.
///
/// An accepted event is the client's object with `"server_ts":<ms>,"client_ip":"…"` added as its
/// last members, keyed by its `content_id` (decoded when escaped). The split judges that enriched
/// event, so the size limit applies to it: an item the additions would push over `maxEventBytes`
/// is refused as `too_large`.
public struct EventValidator: Sendable {
    let router: SplitRouter
    let maxEventBytes: Int

    public init(topology: Topology, maxEventBytes: Int = 64 * 1024) throws {
        router = try SplitRouter(topology: topology, maxEventBytes: maxEventBytes)
        self.maxEventBytes = maxEventBytes
    }

    /// `clientIP` must be a plain address (digits, hex letters, '.', ':'): it is written into
    /// JSON without escaping. `ClientAddress.resolve` only returns such strings.
    public func validate(body: UnsafeRawBufferPointer, items: [ByteRange], serverTs: Int64, clientIP: String,
                         rejected: inout [Rejection]) -> FramedBatch {
        var suffix: [UInt8] = []
        suffix.reserveCapacity(64)
        suffix.append(contentsOf: #","server_ts":"#.utf8)
        suffix.append(contentsOf: String(serverTs).utf8)
        suffix.append(contentsOf: #","client_ip":""#.utf8)
        suffix.append(contentsOf: clientIP.utf8)
        suffix.append(contentsOf: #""}"#.utf8)

        var batch = FramedBatch()
        batch.bytes.reserveCapacity(body.count + items.count * (Frame.headerBytes + suffix.count + 16))
        var scanned: ScannedEvent?
        for (index, item) in items.enumerated() {
            let bytes = item.bytes(in: body)
            // Enriched, the item loses its closing brace and gains the suffix (which ends with one).
            let enrichedCount = bytes.count - 1 + suffix.count
            if enrichedCount > maxEventBytes {
                rejected.append(Rejection(index: index, reason: ScanError.tooLarge(size: enrichedCount, limit: maxEventBytes).reason))
                continue
            }
            let key: UnsafeRawBufferPointer
            var decodedKey: [UInt8] = []
            switch router.route(bytes, scanned: &scanned) {
            case .deadLetter(let reason, _):
                rejected.append(Rejection(index: index, reason: reason))
                continue
            case .route(_, let range):
                key = range.bytes(in: bytes)
            case .routeDecoded(_, let decoded):
                decodedKey = decoded
                key = UnsafeRawBufferPointer(start: nil, count: 0)
            case .filter:
                // Accepted as the split would read it; key it like any other event.
                guard let event = scanned else { continue }
                if event.hasEscapes {
                    decodedKey = EventScanner.decodeString(bytes, event.contentId)
                    key = UnsafeRawBufferPointer(start: nil, count: 0)
                } else {
                    key = event.contentId.bytes(in: bytes)
                }
            }
            // The scanner accepted an object and the item is trimmed: its last byte is '}'.
            let head = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 1)])
            let keyCount = decodedKey.isEmpty ? key.count : decodedKey.count
            Frame.appendHeader(to: &batch.bytes, keyCount: keyCount, valueCount: head.count + suffix.count)
            if decodedKey.isEmpty { batch.bytes.append(contentsOf: key) } else { batch.bytes.append(contentsOf: decodedKey) }
            batch.bytes.append(contentsOf: head)
            batch.bytes.append(contentsOf: suffix)
            batch.count += 1
        }
        return batch
    }
}
