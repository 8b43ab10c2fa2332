internal import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a failed attempt ends.
enum Failure: Error {
    /// The connection is unusable (I/O error, EOF, timeout, broken reply stream, refused connect):
    /// drop it, back off, reconnect and retry the whole call.
    case transient(RedisError)
    /// Retrying cannot help (error reply, rejected AUTH, bad input). The connection, if any, is
    /// still in step with the server and is kept.
    case fatal(RedisError)
}

/// One blocking hiredis context. Not thread-safe: ``RedisClient`` only touches it under its lock.
final class Connection {
    private let ctx: UnsafeMutablePointer<redisContext>

    private init(_ ctx: UnsafeMutablePointer<redisContext>) { self.ctx = ctx }

    deinit { redisFree(ctx) }

    /// Connects, sets the command timeout, AUTHs and SELECTs.
    static func open(_ config: RedisConfig, onRoundTrip: (Int) -> Void) throws(Failure) -> Connection {
        let port = Int32(clamping: config.port)
        let raw: UnsafeMutablePointer<redisContext>? =
            config.connectTimeout > .zero
                ? redisConnectWithTimeout(config.host, port, makeTimeval(config.connectTimeout))
                : redisConnect(config.host, port)
        let savedErrno = errno
        guard let raw else {
            throw .transient(.connectionFailed("cannot allocate a hiredis context"))
        }
        let conn = Connection(raw) // from here on, deinit frees the context on every path
        let target = "\(config.host):\(config.port)"
        if raw.pointee.err != 0 {
            throw .transient(conn.contextError(errno: savedErrno, during: "connect to \(target)"))
        }
        conn.disableSIGPIPEOnSocket()
        if config.commandTimeout > .zero, redisSetTimeout(raw, makeTimeval(config.commandTimeout)) != REDIS_OK {
            throw .transient(.connectionFailed("cannot set socket timeout on \(target)"))
        }

        if let password = config.password {
            var auth: [[UInt8]] = [Array("AUTH".utf8)]
            if let user = config.username { auth.append(Array(user.utf8)) }
            auth.append(Array(password.utf8))
            onRoundTrip(1)
            if case .error(let message) = try conn.roundTrip([auth])[0] {
                throw .fatal(.authenticationFailed(message))
            }
        } else if config.username != nil {
            throw .fatal(.authenticationFailed("username is set but password is not"))
        }

        if config.database != 0 {
            onRoundTrip(1)
            if case .error(let message) = try conn.roundTrip([[Array("SELECT".utf8), Array(String(config.database).utf8)]])[0] {
                throw .fatal(RedisError.fromReply(message))
            }
        }
        return conn
    }

    /// Appends every command to hiredis's output buffer, then reads exactly one reply per command
    /// (the first read flushes the buffer): one network round trip for the whole batch. Any
    /// failure here leaves the reply stream out of step, so it is always transient.
    func roundTrip(_ commands: [[[UInt8]]]) throws(Failure) -> [RedisReply] {
        try withSIGPIPESuppressed { () throws(Failure) -> [RedisReply] in
            for args in commands { try append(args) }
            var replies: [RedisReply] = []
            replies.reserveCapacity(commands.count)
            for _ in commands { replies.append(try readReply()) }
            return replies
        }
    }

    /// MGET of `keys` in chunks, one round trip. Each value is handed to `visit` as a view into
    /// hiredis's reply (valid only during the call; nil for a missing key): no copy per value.
    func mget(_ keys: [[UInt8]], chunkSize: Int, visit: (Int, UnsafeRawBufferPointer?) -> Void) throws(Failure) {
        try withSIGPIPESuppressed { () throws(Failure) -> Void in
            let command = Array("MGET".utf8)
            var start = 0
            while start < keys.count {
                let end = min(start + chunkSize, keys.count)
                try append([command] + keys[start..<end])
                start = end
            }
            start = 0
            while start < keys.count {
                let end = min(start + chunkSize, keys.count)
                try readMGET(count: end - start, first: start, visit: visit)
                start = end
            }
        }
    }

    /// MGET of the keys `prefix + id` for `ids`, `chunkSize` keys per command, one round trip.
    /// The commands are written as RESP straight from the ids into one buffer (no key array or
    /// argv per key: a lookup asks for up to a million keys at once). `visit` gets the slice's
    /// own indices and views into hiredis's replies, as in the form above.
    func mget(prefix: [UInt8], ids: ArraySlice<String>, chunkSize: Int,
              visit: (Int, UnsafeRawBufferPointer?) -> Void) throws(Failure) {
        try withSIGPIPESuppressed { () throws(Failure) -> Void in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(ids.count * (prefix.count + 24) + 24 * (ids.count / chunkSize + 1))
            var start = ids.startIndex
            while start < ids.endIndex {
                let end = min(start + chunkSize, ids.endIndex)
                buffer.append(UInt8(ascii: "*"))
                appendDecimal(&buffer, end - start + 1)
                buffer.append(contentsOf: "\r\n$4\r\nMGET\r\n".utf8)
                for i in start..<end {
                    let id = ids[i]
                    let n = prefix.count + id.utf8.count
                    buffer.append(UInt8(ascii: "$"))
                    appendDecimal(&buffer, n)
                    buffer.append(13); buffer.append(10)
                    buffer.append(contentsOf: prefix)
                    if id.utf8.withContiguousStorageIfAvailable({ buffer.append(contentsOf: $0) }) == nil {
                        buffer.append(contentsOf: id.utf8)
                    }
                    buffer.append(13); buffer.append(10)
                }
                start = end
            }
            let rc = buffer.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(ctx, $0.baseAddress, $0.count) }
            }
            if rc != REDIS_OK { throw .transient(contextError(errno: errno, during: "append command")) }
            start = ids.startIndex
            while start < ids.endIndex {
                let end = min(start + chunkSize, ids.endIndex)
                try readMGET(count: end - start, first: start, visit: visit)
                start = end
            }
        }
    }

    /// `SET key value [EX ttl] [NX]` for every entry, written as RESP into one buffer (no argument
    /// arrays, no formatting by hiredis) in one round trip. Each reply is checked where hiredis
    /// parsed it: OK, or nil where NX found the key present. Returns the first error reply's
    /// message, after reading every reply (the other entries are written).
    func set(_ entries: ArraySlice<(key: [UInt8], value: [UInt8], ttlSeconds: Int?)>, onlyIfAbsent: Bool) throws(Failure) -> String? {
        try withSIGPIPESuppressed { () throws(Failure) -> String? in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(entries.reduce(0) { $0 + $1.key.count + $1.value.count + 64 })
            for e in entries {
                buffer.append(UInt8(ascii: "*"))
                appendDecimal(&buffer, 3 + (e.ttlSeconds == nil ? 0 : 2) + (onlyIfAbsent ? 1 : 0))
                buffer.append(contentsOf: "\r\n$3\r\nSET\r\n".utf8)
                appendBulk(&buffer, e.key)
                appendBulk(&buffer, e.value)
                if let ttl = e.ttlSeconds {
                    buffer.append(contentsOf: "$2\r\nEX\r\n".utf8)
                    appendBulkDecimal(&buffer, ttl)
                }
                if onlyIfAbsent { buffer.append(contentsOf: "$2\r\nNX\r\n".utf8) }
            }
            let rc = buffer.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(ctx, $0.baseAddress, $0.count) }
            }
            if rc != REDIS_OK { throw .transient(contextError(errno: errno, during: "append command")) }
            var firstError: String?
            for _ in entries {
                try withNextReply { (r: UnsafePointer<redisReply>) throws(Failure) -> Void in
                    switch Int32(r.pointee.type) {
                    case REDIS_REPLY_STATUS, REDIS_REPLY_NIL: return
                    case REDIS_REPLY_ERROR:
                        if firstError == nil {
                            firstError = String(decoding: UnsafeRawBufferPointer(start: r.pointee.str, count: Int(r.pointee.len)), as: UTF8.self)
                        }
                    default:
                        throw .transient(.protocolError("unexpected SET reply of type \(r.pointee.type)"))
                    }
                }
            }
            return firstError
        }
    }

    /// Reads one MGET reply of `count` values and lends each to `visit(first + i, value)` while
    /// hiredis parses it: the reader's object functions are swapped for ones that hand each value
    /// over as a view into the read buffer, so a reply of N values costs no allocation per value
    /// (hiredis's own objects take two allocations and a copy per value, and a free after).
    private func readMGET(count: Int, first: Int, visit: (Int, UnsafeRawBufferPointer?) -> Void) throws(Failure) {
        guard let reader = ctx.pointee.reader else { throw .transient(.protocolError("hiredis context has no reader")) }
        try withoutActuallyEscaping(visit) { (visit) throws(Failure) -> Void in
            let sink = MGETSink(first: first, visit: visit)
            let saved = (reader.pointee.fn, reader.pointee.privdata)
            reader.pointee.fn = mgetReplyFunctions
            reader.pointee.privdata = Unmanaged.passUnretained(sink).toOpaque()
            defer {
                // A read cut short (a timeout, a reset) leaves the unfinished reply in the reader,
                // where freeing the connection would hand it to hiredis's own free: it is the
                // sink's address, not a hiredis object, so it is taken out first.
                if reader.pointee.reply != nil { reader.pointee.reply = nil }
                (reader.pointee.fn, reader.pointee.privdata) = saved
            }
            var raw: UnsafeMutableRawPointer? = nil
            if redisGetReply(ctx, &raw) != REDIS_OK {
                throw .transient(contextError(errno: errno, during: "read reply"))
            }
            withExtendedLifetime(sink) {}
            // Any other answer leaves the connection out of step: it is dropped.
            guard raw != nil, sink.problem == nil, sink.elements == count else {
                throw .transient(.protocolError("MGET of \(count) keys answered \(sink.problem ?? "\(sink.elements) elements")"))
            }
        }
    }

    private func append(_ args: [[UInt8]]) throws(Failure) {
        // hiredis copies argv into its output buffer, so one contiguous scratch buffer that lives
        // for the duration of the call is enough. The trailing byte keeps it non-empty.
        var buffer: [UInt8] = []
        buffer.reserveCapacity(args.reduce(1) { $0 + $1.count })
        for a in args { buffer += a }
        buffer.append(0)
        let lengths = args.map(\.count)
        let rc = buffer.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                var argv: [UnsafePointer<CChar>?] = []
                argv.reserveCapacity(args.count)
                var offset = 0
                for n in lengths {
                    argv.append(UnsafePointer(chars.baseAddress! + offset))
                    offset += n
                }
                return redisAppendCommandArgv(ctx, Int32(argv.count), &argv, lengths)
            }
        }
        if rc != REDIS_OK {
            throw .transient(contextError(errno: errno, during: "append command"))
        }
    }

    private func readReply() throws(Failure) -> RedisReply {
        try withNextReply { (reply: UnsafePointer<redisReply>) throws(Failure) -> RedisReply in
            do throws(RedisError) {
                return try RedisReply(copying: reply)
            } catch {
                throw .transient(error)
            }
        }
    }

    /// Reads the next reply and lends it to `body`; hiredis frees it afterwards.
    private func withNextReply<T>(_ body: (UnsafePointer<redisReply>) throws(Failure) -> T) throws(Failure) -> T {
        var raw: UnsafeMutableRawPointer? = nil
        if redisGetReply(ctx, &raw) != REDIS_OK {
            let savedErrno = errno
            if let raw { freeReplyObject(raw) }
            throw .transient(contextError(errno: savedErrno, during: "read reply"))
        }
        guard let raw else { throw .transient(.protocolError("hiredis returned no reply")) }
        defer { freeReplyObject(raw) }
        return try body(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Classifies `ctx.err`. `errno` must be captured right after the failing hiredis call.
    private func contextError(errno e: Int32, during: String) -> RedisError {
        let message = withUnsafeBytes(of: ctx.pointee.errstr) { buf in
            String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
        }
        switch ctx.pointee.err {
        case REDIS_ERR_IO:
            // SO_RCVTIMEO/SO_SNDTIMEO expiry surfaces as EAGAIN; a connect timeout as ETIMEDOUT.
            if e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT {
                return .timeout("\(during): \(message)")
            }
            return .connectionFailed("\(during): \(message)")
        case REDIS_ERR_EOF:
            return .connectionFailed("\(during): \(message)")
        case REDIS_ERR_PROTOCOL:
            return .protocolError("\(during): \(message)")
        default:
            return .connectionFailed("\(during): \(message.isEmpty ? "hiredis error \(ctx.pointee.err)" : message)")
        }
    }

    // hiredis 0.14 writes with write(2), so a peer that went away raises SIGPIPE, whose default
    // action kills the process. Rather than changing the process-wide disposition, suppress it
    // per socket (Darwin) or per call on the calling thread (Linux).
    private func disableSIGPIPEOnSocket() {
        #if canImport(Darwin)
        var one: Int32 = 1
        _ = setsockopt(ctx.pointee.fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    private func withSIGPIPESuppressed<T>(_ body: () throws(Failure) -> T) throws(Failure) -> T {
        #if canImport(Glibc)
        var pipeSet = sigset_t()
        sigemptyset(&pipeSet)
        sigaddset(&pipeSet, SIGPIPE)
        var oldMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSet, &oldMask)
        var pending = sigset_t()
        sigpending(&pending)
        let wasPending = sigismember(&pending, SIGPIPE) == 1
        defer {
            // Consume a SIGPIPE raised by our write while blocked, then restore the mask.
            if !wasPending {
                sigpending(&pending)
                if sigismember(&pending, SIGPIPE) == 1 {
                    var zero = timespec(tv_sec: 0, tv_nsec: 0)
                    _ = sigtimedwait(&pipeSet, nil, &zero)
                }
            }
            pthread_sigmask(SIG_SETMASK, &oldMask, nil)
        }
        #endif
        return try body()
    }
}

/// Where the MGET reply functions deliver values (the reader's `privdata` during one read).
private final class MGETSink {
    let first: Int
    let visit: (Int, UnsafeRawBufferPointer?) -> Void
    /// Elements of the top-level array, -1 before it was seen.
    var elements = -1
    /// What was wrong with the reply, if anything (an error reply, a nested array, a number …).
    var problem: String?

    init(first: Int, visit: @escaping (Int, UnsafeRawBufferPointer?) -> Void) {
        self.first = first
        self.visit = visit
    }
}

/// hiredis object functions for an MGET reply: values go to the sink by index, nothing is
/// allocated; the "objects" returned are the sink's address (hiredis needs them non-null).
nonisolated(unsafe) private let mgetReplyFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
    let fn = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    fn.initialize(to: redisReplyObjectFunctions(
        createString: { task, str, len in
            guard let task, let p = task.pointee.privdata else { return nil } // hiredis: out of memory
            let sink = Unmanaged<MGETSink>.fromOpaque(p).takeUnretainedValue()
            if task.pointee.parent != nil, task.pointee.type == REDIS_REPLY_STRING {
                sink.visit(sink.first + Int(task.pointee.idx), UnsafeRawBufferPointer(start: str, count: len))
            } else if sink.problem == nil {
                let text = str.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: len), as: UTF8.self) } ?? ""
                sink.problem = "reply type \(task.pointee.type): \(text)"
            }
            return task.pointee.privdata
        },
        createArray: { task, elements in
            guard let task, let p = task.pointee.privdata else { return nil } // hiredis: out of memory
            let sink = Unmanaged<MGETSink>.fromOpaque(p).takeUnretainedValue()
            if task.pointee.parent == nil { sink.elements = Int(elements) } else if sink.problem == nil { sink.problem = "a nested array" }
            return task.pointee.privdata
        },
        createInteger: { task, _ in
            guard let task, let p = task.pointee.privdata else { return nil } // hiredis: out of memory
            let sink = Unmanaged<MGETSink>.fromOpaque(p).takeUnretainedValue()
            if sink.problem == nil { sink.problem = "an integer" }
            return task.pointee.privdata
        },
        createNil: { task in
            guard let task, let p = task.pointee.privdata else { return nil } // hiredis: out of memory
            let sink = Unmanaged<MGETSink>.fromOpaque(p).takeUnretainedValue()
            if task.pointee.parent != nil { sink.visit(sink.first + Int(task.pointee.idx), nil) } else if sink.problem == nil { sink.problem = "nil" }
            return task.pointee.privdata
        },
        freeObject: { _ in }))
    return fn
}()

/// `$<length>\r\n<bytes>\r\n`: one RESP bulk string.
private func appendBulk(_ b: inout [UInt8], _ bytes: [UInt8]) {
    b.append(UInt8(ascii: "$"))
    appendDecimal(&b, bytes.count)
    b.append(13); b.append(10)
    b.append(contentsOf: bytes)
    b.append(13); b.append(10)
}

/// `n` in decimal as one RESP bulk string (a TTL argument), without an array for its digits.
private func appendBulkDecimal(_ b: inout [UInt8], _ n: Int) {
    var digits = n < 0 ? 2 : 1
    var rest = n.magnitude
    while rest >= 10 { rest /= 10; digits += 1 }
    b.append(UInt8(ascii: "$"))
    appendDecimal(&b, digits)
    b.append(13); b.append(10)
    if n < 0 { b.append(UInt8(ascii: "-")) }
    appendDecimal(&b, Int(n.magnitude))
    b.append(13); b.append(10)
}

/// Appends the decimal digits of `n ≥ 0` (RESP lengths and counts).
private func appendDecimal(_ b: inout [UInt8], _ n: Int) {
    if n >= 10 { appendDecimal(&b, n / 10) }
    b.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: n % 10))
}

func makeTimeval(_ d: Duration) -> timeval {
    let (seconds, attoseconds) = d.components
    return timeval(tv_sec: .init(seconds), tv_usec: .init(attoseconds / 1_000_000_000_000))
}
