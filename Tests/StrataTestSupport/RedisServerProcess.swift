import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway `redis-server` child process on a free local port, in its own temp dir.
/// `stop()` SIGKILLs it; `start()` brings it back on the same port.
public final class RedisServerProcess {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public let port: Int
    public let password: String?
    private let dir: URL
    private var process: Process?

    public init(password: String? = nil) throws {
        self.port = try Self.freePort()
        self.password = password
        self.dir = FileManager.default.temporaryDirectory.appendingPathComponent("strata-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }

    public func start() throws {
        precondition(process == nil, "already running")
        let p = Process()
        p.executableURL = try Self.redisServerPath()
        var args = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", dir.path]
        if let password { args += ["--requirepass", password] }
        p.arguments = args
        let log = dir.appendingPathComponent("redis.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        process = p

        // Poll until PING is answered (+PONG, or -NOAUTH when a password is required).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            guard p.isRunning else {
                process = nil
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw Failure(description: "redis-server exited early on port \(port):\n\(text)")
            }
            if let answer = Self.rawPing(port: port), answer.hasPrefix("+PONG") || answer.hasPrefix("-NOAUTH") {
                return
            }
            usleep(10_000)
        }
        stop()
        throw Failure(description: "redis-server on port \(port) did not answer PING within 10 s")
    }

    /// SIGKILL, so clients see an abrupt failure, not a clean shutdown.
    public func stop() {
        guard let p = process else { return }
        process = nil
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    private static func redisServerPath() throws -> URL {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["REDIS_SERVER"] { return URL(fileURLWithPath: explicit) }
        for dir in (env["PATH"] ?? "/usr/bin:/usr/local/bin").split(separator: ":") {
            let candidate = "\(dir)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        throw Failure(description: "redis-server not found on PATH (set REDIS_SERVER)")
    }

    /// Binds port 0 and returns the port the kernel chose.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, streamSocketType, 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(fd) }
        var addr = loopback(port: 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { throw Failure(description: "bind/getsockname failed") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Sends an inline PING over a plain socket (independent of the code under test).
    private static func rawPing(port: Int) -> String? {
        let fd = socket(AF_INET, streamSocketType, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = loopback(port: port)
        let connected = withUnsafePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ping = Array("PING\r\n".utf8)
        guard write(fd, ping, ping.count) == ping.count else { return nil }
        var buf = [UInt8](repeating: 0, count: 128)
        let n = read(fd, &buf, buf.count)
        return n > 0 ? String(decoding: buf[..<n], as: UTF8.self) : nil
    }

    #if canImport(Glibc)
    private static let streamSocketType = Int32(SOCK_STREAM.rawValue)
    #else
    private static let streamSocketType = SOCK_STREAM
    #endif

    private static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        #if canImport(Darwin)
        addr.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }
}
