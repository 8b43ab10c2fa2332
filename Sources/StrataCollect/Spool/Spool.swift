import Foundation
public import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Why an append to the spool failed.
public enum SpoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The append would take the spool past its disk quota.
    case full(quotaBytes: Int64)
    /// The file system refused (disk full, I/O error): nothing of that append is kept.
    case io(String)

    public var description: String {
        switch self {
        case .full(let q): "the spool is full (quota \(q) bytes)"
        case .io(let m): "spool I/O error: \(m)"
        }
    }
}

/// A sealed segment: complete, fsynced, never written again; the drainer replays it and deletes it.
public struct SpoolSegment: Sendable, Equatable {
    public let sequence: UInt64
    public let path: String
    public let bytes: Int64
}

/// The local write-ahead spool: events the broker has not acknowledged yet, in segment files
/// (`seg-<sequence>.spool`, consecutive frames, see `Frame`), oldest first.
///
/// Appends are group-committed: callers queue their batches and wait; one writer thread writes
/// everything queued, then fsyncs once, then wakes them all. So an append returns only when its
/// bytes are on disk, and many concurrent requests share one fsync. The active segment is sealed
/// when it reaches `segmentBytes` or when the drainer asks (it only reads sealed segments).
/// A quota bounds the bytes on disk plus the bytes queued.
///
/// Crash safety: a segment's name is made durable (directory fsync) before its first record is
/// acknowledged; on start every segment is checked frame by frame and a torn tail (a write cut by
/// the crash, never acknowledged) is cut off.
public final class Spool: Sendable {
    public let directory: String
    public let quotaBytes: Int64
    public let segmentBytes: Int64
    let logger: Logger

    private enum Pending {
        case data([UInt8], CheckedContinuation<Result<Void, SpoolError>, Never>)
        case seal(CheckedContinuation<Void, Never>)
    }

    private struct State {
        var pending: [Pending] = []
        var pendingBytes: Int64 = 0
        /// Sealed segments and the active one.
        var diskBytes: Int64 = 0
        var sealed: [SpoolSegment] = []
        var activeBytes: Int64 = 0
        var stopping = false
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let nextSequence: Atomic<UInt64>
    private let onBytesChanged: @Sendable (Int64) -> Void
    /// Held (flock) while this spool is open: two gateways on one directory would replay and
    /// delete each other's segments. The kernel drops it when the process dies, even by SIGKILL.
    private let lockFD: Int32

    /// Opens (creating it if needed) and recovers the spool in `directory`, then starts the writer.
    public init(directory: String, quotaBytes: Int64, segmentBytes: Int64 = 16 << 20,
                logger: Logger = Logger(label: "strata.collect.spool"),
                onBytesChanged: @escaping @Sendable (Int64) -> Void = { _ in }) throws {
        self.directory = directory
        self.quotaBytes = quotaBytes
        self.segmentBytes = segmentBytes
        self.logger = logger
        self.onBytesChanged = onBytesChanged
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        lockFD = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            if lockFD >= 0 { Glibc.close(lockFD) }
            throw SpoolError.io("the spool \(directory) is in use by another process (one gateway per spool directory)")
        }
        let recovered = try Self.recover(directory: directory, logger: logger)
        nextSequence = Atomic((recovered.last?.sequence ?? 0) + 1)
        state.withLock {
            $0.sealed = recovered
            $0.diskBytes = recovered.reduce(0) { $0 + $1.bytes }
        }
        onBytesChanged(bytes)
        let thread = Thread { [self] in writerLoop() }
        thread.name = "strata-spool"
        thread.start()
    }

    /// Bytes on disk (sealed + active segments).
    public var bytes: Int64 { state.withLock { $0.diskBytes } }

    /// Sealed segments, oldest first.
    public var sealedSegments: [SpoolSegment] { state.withLock { $0.sealed } }

    /// Bytes in the segment being written.
    public var activeBytes: Int64 { state.withLock { $0.activeBytes } }

    /// True when nothing is on disk or queued.
    public var isEmpty: Bool { state.withLock { $0.diskBytes == 0 && $0.pendingBytes == 0 && $0.pending.isEmpty } }

    /// Appends a batch and returns once it is fsynced. Throws `full` at once when it would exceed the quota.
    public func append(_ batch: FramedBatch) async throws(SpoolError) {
        var bytes = batch.bytes
        guard !bytes.isEmpty else { return }
        Frame.seal(&bytes)
        let size = Int64(bytes.count)
        let result: Result<Void, SpoolError> = await withCheckedContinuation { cont in
            let admitted: Result<Void, SpoolError>? = state.withLock { s in
                if s.stopping { return .failure(.io("the spool is closed")) }
                if s.diskBytes + s.pendingBytes + size > quotaBytes { return .failure(.full(quotaBytes: quotaBytes)) }
                s.pendingBytes += size
                s.pending.append(.data(bytes, cont))
                return nil
            }
            if let admitted { cont.resume(returning: admitted) } else { wake.signal() }
        }
        try result.get()
    }

    /// Seals the active segment if it holds anything, so the drainer can take it.
    public func sealActive() async {
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let ok = state.withLock { s -> Bool in
                guard !s.stopping, s.activeBytes > 0 || !s.pending.isEmpty else { return false }
                s.pending.append(.seal(cont))
                return true
            }
            if ok { wake.signal() } else { cont.resume() }
        }
    }

    /// The segment's bytes (whole frames only).
    public func load(_ segment: SpoolSegment) throws -> [UInt8] {
        let data = try Data(contentsOf: URL(fileURLWithPath: segment.path))
        return [UInt8](data)
    }

    /// Deletes a replayed segment.
    public func remove(_ segment: SpoolSegment) {
        unlink(segment.path)
        Self.syncDirectory(directory)
        let now = state.withLock { s -> Int64 in
            s.sealed.removeAll { $0.sequence == segment.sequence }
            s.diskBytes -= segment.bytes
            return s.diskBytes
        }
        onBytesChanged(now)
    }

    /// Finishes what is queued and stops the writer.
    public func close() {
        let first = state.withLock { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        guard first else { return }
        wake.signal()
        stopped.wait()
    }

    // MARK: writer thread

    private func writerLoop() {
        var fd: Int32 = -1
        var active: (sequence: UInt64, path: String, bytes: Int64)? = nil
        func sealCurrent() {
            guard let a = active else { return }
            Glibc.close(fd)
            fd = -1
            active = nil
            state.withLock { s in
                s.sealed.append(SpoolSegment(sequence: a.sequence, path: a.path, bytes: a.bytes))
                s.activeBytes = 0
            }
        }
        while true {
            wake.wait()
            let (work, stopping) = state.withLock { s -> ([Pending], Bool) in
                let w = s.pending
                s.pending.removeAll(keepingCapacity: true)
                return (w, s.stopping)
            }
            typealias Waiter = CheckedContinuation<Result<Void, SpoolError>, Never>
            // Requests whose bytes are in a file (`unsynced` until the next fsync), bytes in files
            // this round, requests refused, and the answers ready to send.
            var unsynced: [Waiter] = []
            var fileBytes: Int64 = 0
            var refusedBytes: Int64 = 0
            var answers: [(Waiter, Result<Void, SpoolError>)] = []
            var seals: [CheckedContinuation<Void, Never>] = []
            // Makes what was written to the active segment durable and settles its requests.
            func sync() {
                guard !unsynced.isEmpty else { return }
                if fdatasync(fd) == 0 {
                    answers += unsynced.map { ($0, .success(())) }
                } else {
                    // Written but maybe not durable: refuse (the bytes stay; a replay may duplicate).
                    let error = SpoolError.io("fsync: \(String(cString: strerror(errno)))")
                    answers += unsynced.map { ($0, .failure(error)) }
                }
                unsynced = []
            }
            // Moves this round's bytes from "pending" to "on disk" (before a segment is handed over).
            func account() {
                let disk = state.withLock { s -> Int64 in
                    s.pendingBytes -= fileBytes + refusedBytes
                    s.diskBytes += fileBytes
                    s.activeBytes = active?.bytes ?? 0
                    return s.diskBytes
                }
                if fileBytes > 0 { onBytesChanged(disk) }
                fileBytes = 0
                refusedBytes = 0
            }
            for item in work {
                switch item {
                case .seal(let cont):
                    seals.append(cont)
                case .data(let bytes, let cont):
                    let size = Int64(bytes.count)
                    if let a = active, a.bytes >= segmentBytes {
                        sync()
                        account()
                        sealCurrent()
                    }
                    if active == nil {
                        let seq = nextSequence.add(1, ordering: .relaxed).oldValue
                        let path = "\(directory)/" + Self.segmentName(seq)
                        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                        if fd < 0 {
                            refusedBytes += size
                            answers.append((cont, .failure(.io("open \(path): \(String(cString: strerror(errno)))"))))
                            continue
                        }
                        Self.syncDirectory(directory)
                        active = (seq, path, 0)
                    }
                    if let error = Self.writeAll(fd, bytes) {
                        // Cut back to the last whole frame, so the segment stays readable.
                        _ = ftruncate(fd, off_t(active!.bytes))
                        refusedBytes += size
                        answers.append((cont, .failure(.io(error))))
                    } else {
                        active!.bytes += size
                        fileBytes += size
                        unsynced.append(cont)
                    }
                }
            }
            sync()
            account()
            for (cont, result) in answers { cont.resume(returning: result) }
            if let a = active, a.bytes >= segmentBytes || !seals.isEmpty { sealCurrent() }
            for cont in seals { cont.resume() }
            if stopping {
                let more = state.withLock { !$0.pending.isEmpty }
                if more { wake.signal(); continue }
                if fd >= 0 { Glibc.close(fd) }
                Glibc.close(lockFD)
                stopped.signal()
                return
            }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBytes { b -> String? in
            var done = 0
            while done < b.count {
                let n = write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return "write: \(String(cString: strerror(errno)))"
                }
                done += n
            }
            return nil
        }
    }

    // MARK: files

    static func segmentName(_ sequence: UInt64) -> String {
        let digits = String(sequence)
        return "seg-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".spool"
    }

    static func sequence(ofName name: String) -> UInt64? {
        guard name.hasPrefix("seg-"), name.hasSuffix(".spool") else { return nil }
        return UInt64(name.dropFirst(4).dropLast(6))
    }

    static func syncDirectory(_ path: String) {
        let dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return }
        fsync(dfd)
        Glibc.close(dfd)
    }

    /// Every segment left by an earlier run, oldest first, torn tails cut off, empty ones removed.
    static func recover(directory: String, logger: Logger) throws -> [SpoolSegment] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        var out: [SpoolSegment] = []
        for (seq, name) in names.compactMap({ n in sequence(ofName: n).map { ($0, n) } }).sorted(by: { $0.0 < $1.0 }) {
            let path = "\(directory)/\(name)"
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let good = data.withUnsafeBytes { Frame.forEach(in: $0, verify: true) { _, _ in } }
            if good < data.count {
                logger.warning("spool segment has a torn tail (a write cut by a crash, never acknowledged); cutting it off",
                               metadata: ["segment": "\(path)", "bytes": "\(data.count)", "kept": "\(good)"])
                truncate(path, off_t(good))
            }
            if good == 0 {
                unlink(path)
                continue
            }
            out.append(SpoolSegment(sequence: seq, path: path, bytes: Int64(good)))
        }
        if !out.isEmpty {
            logger.notice("spool holds events from an earlier run; the drainer replays them",
                          metadata: ["segments": "\(out.count)", "bytes": "\(out.reduce(0) { $0 + $1.bytes })"])
        }
        syncDirectory(directory)
        return out
    }
}
