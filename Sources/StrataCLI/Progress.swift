import Foundation

/// A one-line progress display on a terminal; silent otherwise (logs carry progress there).
public struct Progress: Sendable {
    public let enabled = isatty(STDERR_FILENO) != 0
    private var last = ContinuousClock.now
    private let started = ContinuousClock.now

    public init() {}

    /// Redraws at most every 200 ms unless `force`.
    public mutating func update(_ text: @autoclosure () -> String, force: Bool = false) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard force || now - last >= .milliseconds(200) else { return }
        last = now
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text())".utf8))
    }

    public func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }

    public var elapsedSeconds: Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

public func stderrLine(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
