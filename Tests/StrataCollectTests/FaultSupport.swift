import Foundation
import StrataCollect
import XCTest

/// Fault injection: a TCP relay between the gateway and a private broker that can be cut (every
/// connection dropped, new ones refused) and restored, like a broker host going away and coming
/// back. The broker advertises the relay's port, so every client connection goes through it.
/// (Tansu keeps topics in memory: stopping its process would also lose what it had acknowledged,
/// which is the broker's loss, not the gateway's; cutting it off tests the gateway alone.)
final class TCPRelay: @unchecked Sendable {
    let port: Int
    let target: Int
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var sockets: Set<Int32> = []

    init(port: Int, target: Int) throws {
        self.port = port
        self.target = target
        try restore()
    }

    deinit { cut() }

    /// Listens again.
    func restore() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok, listen(fd, 64) == 0 else {
            close(fd)
            throw TestFailure(description: "relay cannot listen on \(port): \(String(cString: strerror(errno)))")
        }
        lock.withLock { listener = fd }
        let t = Thread { [self] in acceptLoop(fd) }
        t.start()
    }

    /// Drops every connection and stops listening.
    func cut() {
        lock.withLock {
            if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
            listener = -1
            for s in sockets { shutdown(s, Int32(SHUT_RDWR)) }
        }
    }

    private static func loopback(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    private func acceptLoop(_ fd: Int32) {
        while true {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(target)
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            let open = lock.withLock { () -> Bool in
                guard listener == fd, connected else { return false }
                sockets.insert(client)
                sockets.insert(upstream)
                return true
            }
            guard open else { close(client); close(upstream); continue }
            Thread { [self] in pump(from: client, to: upstream) }.start()
            Thread { [self] in pump(from: upstream, to: client) }.start()
        }
    }

    private func pump(from a: Int32, to b: Int32) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(a, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            var sent = 0
            while sent < n {
                let m = buf.withUnsafeBytes { send(b, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m <= 0 { break }
                sent += m
            }
            if sent < n { break }
        }
        lock.withLock {
            shutdown(a, Int32(SHUT_RDWR))
            shutdown(b, Int32(SHUT_RDWR))
            // The second pump of the pair closes both.
            if sockets.remove(a) == nil { close(a); close(b) } else { sockets.remove(b) }
        }
    }
}

/// A Tansu broker of the test's own (in-memory), advertising `advertisedPort`.
final class PrivateBroker {
    let process: Process
    let port: Int

    init(port: Int, advertisedPort: Int, log: String) throws {
        let cache = ProcessInfo.processInfo.environment["STRATA_CACHE"] ?? (NSHomeDirectory() + "/.cache/strata")
        let binary = cache + "/tansu-venv/bin/tansu-broker"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestFailure(description: "\(binary) not found: deploy/local/setup installs Tansu")
        }
        self.port = port
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["broker", "--listener-url", "tcp://127.0.0.1:\(port)",
                             "--advertised-listener-url", "tcp://127.0.0.1:\(advertisedPort)", "--storage-engine", "memory://tansu/"]
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if (try? RawSocket(port: port)) != nil { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        stop()
        throw TestFailure(description: "the private broker did not listen on \(port) within 30 s")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}
