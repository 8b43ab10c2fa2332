import ArgumentParser
import Foundation
import StrataCLI
import Synchronization

/// What `strata serve` and `strata collect` share: their --listen address and running their
/// HTTP server from a synchronous command until it stops.
enum HTTPCommandSupport {
    /// HOST:PORT (an IPv6 host in brackets); port 0 picks a free one.
    static func parseListen(_ listen: String, example: String) throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen expects HOST:PORT, e.g. \(example)")
        }
        return (String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    /// `host` as it goes in a URL.
    static func urlHost(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }

    /// Runs `serve` (which calls its argument with the bound port once listening) until it
    /// returns; a failure is printed as `command: error` and exits 1.
    static func run(command: String,
                    _ serve: @escaping @Sendable (@escaping @Sendable (Int) async -> Void) async throws -> Void,
                    onRunning: @escaping @Sendable (Int) -> Void) throws {
        let failure = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await serve { port in onRunning(port) } } catch { failure.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) {
            stderrLine("\(command): \(error)")
            throw ExitCode(1)
        }
    }
}
