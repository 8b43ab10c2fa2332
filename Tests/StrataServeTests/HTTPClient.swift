import Foundation
import StrataTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A minimal blocking HTTP/1.1 client over a socket, for testing a real server: one request per
/// connection (`Connection: close`), and a Server-Sent Events reader with deadlines.
struct TestResponse {
    var status: Int
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> Any { try JSONSerialization.jsonObject(with: body) }
}

struct HTTPClientError: Error, CustomStringConvertible { let description: String }

final class TestSocket {
    let fd: Int32
    var buffer = Data()

    /// `receiveBuffer`: SO_RCVBUF set before connecting (a small one makes a reader that does
    /// not read push back on the server sooner).
    init(port: Int, timeout: Duration = .seconds(30), receiveBuffer: Int? = nil) throws {
        fd = try LoopbackSocket.connect(port: port, receiveBuffer: receiveBuffer)
    }

    deinit { close(fd) }

    func setReceiveTimeout(milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: Int((milliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws {
        var bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HTTPClientError(description: "send failed") }
            sent += n
        }
        bytes.removeAll()
    }

    /// Reads until `marker` has arrived (true) or the deadline passes (false), keeping only a
    /// tail of what it read: for viewers that only need to see that a result reached them.
    func drain(until marker: [UInt8], deadline: ContinuousClock.Instant) -> Bool {
        while ContinuousClock.now < deadline {
            if buffer.count >= marker.count, buffer.range(of: Data(marker)) != nil {
                buffer.removeAll()
                return true
            }
            if buffer.count > 2 * marker.count { buffer = Data(buffer.suffix(marker.count)) }
            guard readSome() else { return buffer.range(of: Data(marker)) != nil }
        }
        return false
    }

    /// Reads what is available (up to ~200 ms); false at end of stream.
    @discardableResult
    func readSome() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if n > 0 { buffer.append(contentsOf: chunk[0..<n]); return true }
        if n == 0 { return false }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
    }

    func readHead(deadline: ContinuousClock.Instant) throws -> (status: Int, headers: [String: String]) {
        let separator = Data("\r\n\r\n".utf8)
        while buffer.range(of: separator) == nil {
            guard ContinuousClock.now < deadline else { throw HTTPClientError(description: "no response head before the deadline") }
            guard readSome() else { throw HTTPClientError(description: "connection closed before the response head") }
        }
        let range = buffer.range(of: separator)!
        let head = String(decoding: buffer[buffer.startIndex..<range.lowerBound], as: UTF8.self)
        buffer = Data(buffer[range.upperBound...])
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw HTTPClientError(description: "bad status line: \(head)") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers)
    }

    /// Removes one complete chunk of a chunked body from the buffer: nil if incomplete, empty at the last chunk.
    func takeChunk() -> Data? {
        guard let lineEnd = buffer.range(of: Data("\r\n".utf8)) else { return nil }
        let sizeText = String(decoding: buffer[buffer.startIndex..<lineEnd.lowerBound], as: UTF8.self)
        guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { return nil }
        let start = lineEnd.upperBound
        guard buffer.distance(from: start, to: buffer.endIndex) >= size + 2 else { return nil }
        let end = buffer.index(start, offsetBy: size)
        let data = Data(buffer[start..<end])
        buffer = Data(buffer[buffer.index(end, offsetBy: 2)...])
        return data
    }
}

enum HTTP {
    static func request(port: Int, method: String = "GET", path: String, headers: [String: String] = [:],
                        body: String? = nil, timeout: Duration = .seconds(60)) throws -> TestResponse {
        let socket = try TestSocket(port: port)
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + (body ?? "")
        try socket.send(text)
        let deadline = ContinuousClock.now + timeout
        let head = try socket.readHead(deadline: deadline)
        var body = Data()
        if head.headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                if let chunk = socket.takeChunk() {
                    if chunk.isEmpty { break }
                    body.append(chunk)
                    continue
                }
                guard ContinuousClock.now < deadline else { throw HTTPClientError(description: "body incomplete at the deadline") }
                guard socket.readSome() else { break }
            }
        } else if let length = head.headers["content-length"].flatMap({ Int($0) }) {
            while socket.buffer.count < length {
                guard ContinuousClock.now < deadline else { throw HTTPClientError(description: "body incomplete at the deadline") }
                guard socket.readSome() else { break }
            }
            body = Data(socket.buffer.prefix(length))
        } else {
            while ContinuousClock.now < deadline, socket.readSome() {}
            body = socket.buffer
        }
        return TestResponse(status: head.status, headers: head.headers, body: body)
    }
}

/// One Server-Sent Events connection.
final class SSEClient {
    struct Event { var name: String; var data: String }
    let socket: TestSocket
    let status: Int
    let headers: [String: String]
    private var text = ""

    init(port: Int, path: String, headers: [String: String] = [:]) throws {
        socket = try TestSocket(port: port)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        try socket.send(request + "\r\n")
        let head = try socket.readHead(deadline: .now + .seconds(30))
        status = head.status
        self.headers = head.headers
    }

    /// The next event (comments and `retry:` skipped), or nil at the deadline.
    func next(deadline: ContinuousClock.Instant) throws -> Event? {
        while true {
            while let chunk = socket.takeChunk() {
                if chunk.isEmpty { throw HTTPClientError(description: "the event stream ended") }
                text += String(decoding: chunk, as: UTF8.self)
            }
            while let range = text.range(of: "\n\n") {
                let block = String(text[..<range.lowerBound])
                text = String(text[range.upperBound...])
                var name = "message", data: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix("event:") { name = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                    if line.hasPrefix("data:") { data.append(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) }
                }
                if !data.isEmpty { return Event(name: name, data: data.joined(separator: "\n")) }
            }
            guard ContinuousClock.now < deadline else { return nil }
            guard socket.readSome() else { throw HTTPClientError(description: "the event stream was closed") }
        }
    }

    /// Reads events until one's JSON satisfies `predicate`; nil at the deadline.
    func waitFor(timeout: Duration, _ predicate: ([String: Any]) -> Bool) throws -> [String: Any]? {
        let deadline = ContinuousClock.now + timeout
        while let event = try next(deadline: deadline) {
            guard event.name == "result",
                  let object = try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any] else { continue }
            if predicate(object) { return object }
        }
        return nil
    }
}
