public import StrataCore

/// Why a record did not reach a micro-queue. Codes are stable: they are DLQ headers and metric labels.
public enum SplitOutcome: Equatable, Sendable {
    /// Route to the micro-queue of `actions[action]`, keyed by the content id at `key`
    /// (a range of the original bytes).
    case route(action: Int, key: ByteRange)
    /// As `route`, but the content id was JSON-escaped in the input: `key` holds its decoded bytes.
    case routeDecoded(action: Int, key: [UInt8])
    /// Well-formed, but the content id is not a content id (filtered, counted by reason).
    case filter(reason: String)
    /// Malformed or schema-invalid: goes to `ods.dlq` with the original bytes.
    case deadLetter(reason: String, detail: String)
}

/// Parse, validate and route one raw event. No broker, no allocation on the common path: the
/// engine of the split job, measured on its own by `strata bench split`.
public struct SplitRouter: Sendable {
    public let actions: [String]
    private let actionBytes: [[UInt8]]
    private let pattern: IdPattern
    private let scanner: EventScanner

    public static let invalidContentId = "invalid_content_id"
    public static let unknownAction = "unknown_action"

    public init(actions: [String], contentIdPattern: IdPattern, maxEventBytes: Int = 64 * 1024) {
        self.actions = actions
        self.actionBytes = actions.map { Array($0.utf8) }
        self.pattern = contentIdPattern
        self.scanner = EventScanner(maxBytes: maxEventBytes)
    }

    public init(topology: Topology, maxEventBytes: Int = 64 * 1024) throws {
        try self.init(actions: topology.actions, contentIdPattern: IdPattern(topology.contentIdPattern), maxEventBytes: maxEventBytes)
    }

    public func route(_ bytes: UnsafeRawBufferPointer) -> SplitOutcome {
        var event: ScannedEvent?
        return route(bytes, scanned: &event)
    }

    /// As `route`, also handing out the scanned event so a consumer in the same process (the
    /// in-process engine benchmark) does not scan the bytes a second time.
    @inline(__always)
    public func route(_ bytes: UnsafeRawBufferPointer, scanned: inout ScannedEvent?) -> SplitOutcome {
        let event: ScannedEvent
        do { event = try scanner.scan(bytes) } catch { return .deadLetter(reason: error.reason, detail: error.detail) }
        scanned = event

        if event.hasEscapes {
            return routeEscaped(bytes, event)
        }
        guard let action = actionIndex(event.action.bytes(in: bytes)) else {
            return .deadLetter(reason: Self.unknownAction,
                               detail: "action \"\(String(decoding: event.action.bytes(in: bytes), as: UTF8.self))\" is not declared in topology")
        }
        guard pattern.matches(event.contentId.bytes(in: bytes)) else { return .filter(reason: Self.invalidContentId) }
        return .route(action: action, key: event.contentId)
    }

    /// Rare path: a string field used for routing contained escapes; decode before comparing.
    private func routeEscaped(_ bytes: UnsafeRawBufferPointer, _ event: ScannedEvent) -> SplitOutcome {
        let action = EventScanner.decodeString(bytes, event.action)
        guard let index = action.withUnsafeBytes({ actionIndex($0) }) else {
            return .deadLetter(reason: Self.unknownAction,
                               detail: "action \"\(String(decoding: action, as: UTF8.self))\" is not declared in topology")
        }
        let contentId = EventScanner.decodeString(bytes, event.contentId)
        guard contentId.withUnsafeBytes({ pattern.matches($0) }) else { return .filter(reason: Self.invalidContentId) }
        return .routeDecoded(action: index, key: contentId)
    }

    @inline(__always)
    private func actionIndex(_ name: UnsafeRawBufferPointer) -> Int? {
        for i in actionBytes.indices {
            let a = actionBytes[i]
            if a.count == name.count && a.withUnsafeBytes({ $0.elementsEqual(name) }) { return i }
        }
        return nil
    }
}
