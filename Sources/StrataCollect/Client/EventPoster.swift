import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking HTTP/1.1 client for posting event batches to a gateway: one keep-alive
/// connection, plain `http://` only. It is what `strata gen events --http` and `strata bench
/// collect` use (and the tests): no event loop, no dependency, one thread per connection.
public final class EventPoster {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var retryAfter: Int? { headers["retry-after"].flatMap { Int($0) } }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let host: String
    public let port: Int
    public let path: String
    public let timeout: Duration
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    /// `url`: http://HOST:PORT/PATH (the path defaults to /v1/events).
    public init(url: String, timeout: Duration = .seconds(30)) throws {
        guard url.hasPrefix("http://") else { throw Failure(description: "only http:// URLs are supported: \(url)") }
        let rest = url.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash == rest.endIndex ? "/v1/events" : String(rest[slash...])
        if let colon = authority.lastIndex(of: ":"), let p = Int(authority[authority.index(after: colon)...]) {
            host = String(authority[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            port = p
        } else {
            host = String(authority)
            port = 80
        }
        self.timeout = timeout
    }

    deinit { disconnect() }

    public func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer.removeAll()
    }

    private func connectIfNeeded() throws {
        guard fd < 0 else { return }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else {
            throw Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(res) }
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s >= 0 {
                if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    let secs = Int(timeout.components.seconds)
                    var tv = timeval(tv_sec: secs, tv_usec: 0)
                    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    fd = s
                    return
                }
                close(s)
            }
            ai = a.pointee.ai_next
        }
        throw Failure(description: "cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
    }

    /// Posts `body` (already encoded; `headers` may say `Content-Encoding: gzip`) and reads the answer.
    /// Reconnects once if a kept-alive connection turned out closed.
    public func post(_ body: [UInt8], headers: [(String, String)] = []) throws -> Response {
        do {
            return try attempt(body, headers: headers)
        } catch {
            disconnect()
            return try attempt(body, headers: headers)
        }
    }

    /// Sends raw bytes as they are (for malformed-request tests) and reads one answer.
    public func raw(_ bytes: [UInt8]) throws -> Response {
        try connectIfNeeded()
        try send(bytes)
        return try readResponse()
    }

    private func attempt(_ body: [UInt8], headers: [(String, String)]) throws -> Response {
        try connectIfNeeded()
        var head = "POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        var out = Array(head.utf8)
        out.append(contentsOf: body)
        try send(out)
        return try readResponse()
    }

    /// A GET of `path` on the same server.
    public func get(_ path: String) throws -> Response {
        try connectIfNeeded()
        try send(Array("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n\r\n".utf8))
        return try readResponse()
    }

    private func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "send failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { buffer.append(contentsOf: chunk[0..<n]); return }
            if n < 0, errno == EINTR { continue }
            throw Failure(description: n == 0 ? "connection closed by the server" : "receive failed: \(String(cString: strerror(errno)))")
        }
    }

    private func readResponse() throws -> Response {
        var headEnd: Int? = nil
        while headEnd == nil {
            headEnd = Self.find(buffer, [13, 10, 13, 10])
            if headEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusParts = lines.removeFirst().split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line in: \(head)") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body: [UInt8] = []
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            while buffer.count < length { try fill() }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                var lineEnd = Self.find(buffer, [13, 10])
                while lineEnd == nil { try fill(); lineEnd = Self.find(buffer, [13, 10]) }
                let size = Int(String(decoding: buffer[0..<lineEnd!], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
                buffer.removeFirst(lineEnd! + 2)
                while buffer.count < size + 2 { try fill() }
                body.append(contentsOf: buffer[0..<size])
                buffer.removeFirst(size + 2)
                if size == 0 { break }
            }
        }
        if headers["connection"]?.lowercased() == "close" { disconnect() }
        return Response(status: status, headers: headers, body: body)
    }

    private static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = 0
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] {
                var j = 1
                while j < needle.count, haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}
