internal import CHiredis

/// One reply as hiredis 0.14 parses it (RESP2). Error replies are values here; the typed
/// helpers on ``RedisClient`` turn them into thrown ``RedisError/server(_:)``.
public indirect enum RedisReply: Sendable, Equatable {
    /// A bulk string (binary safe).
    case string([UInt8])
    /// A simple string such as `OK` or `PONG`.
    case status(String)
    case integer(Int64)
    /// A nil bulk string or nil array.
    case null
    case array([RedisReply])
    /// An error reply, e.g. `ERR unknown command` or `WRONGTYPE …`.
    case error(String)
}

extension RedisReply {
    /// Deep-copies a hiredis reply tree; the caller still owns (and frees) `reply`.
    init(copying reply: UnsafePointer<redisReply>) throws(RedisError) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .string(Self.bytes(r))
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: Self.bytes(r), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: Self.bytes(r), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_NIL:
            self = .null
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                guard let element = r.element?[i] else {
                    throw .protocolError("array reply with a missing element")
                }
                elements.append(try RedisReply(copying: element))
            }
            self = .array(elements)
        default:
            throw .protocolError("unsupported reply type \(r.type)")
        }
    }

    private static func bytes(_ r: redisReply) -> [UInt8] {
        guard let str = r.str, r.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: str, count: r.len))
    }
}
