#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Who may publish an `ods.raw` partition's files into an archive: the instance that was
/// assigned the partition last. Kafka fences a zombie producer, but nothing fences a rename: an
/// archive writer that stalled past its group's timeouts lost its partitions to another instance,
/// and if it woke mid-commit its files (a batch that began at the same committed offset but ended
/// elsewhere) would replace the new owner's, archiving lines twice or dropping some.
///
/// A lease is a file, `<root>/_leases/part-<partition>`, holding the token of the instance's
/// latest assignment. Taking it (on each assignment) and publishing under it (a batch's renames)
/// both hold the file's exclusive `flock`, so a writer either publishes before the new owner takes
/// the partition (whose first batch then starts at the same committed offset and replaces those
/// files, as after a crash) or finds another token and publishes nothing. The archive's file
/// system must honour `flock` between its writers (a local disk; NFSv4).
public final class ArchiveLeases {
    public static let folder = "_leases"

    private let dir: String
    private let owner: String
    /// This instance's token per partition, as written when it took the lease.
    private var tokens: [Int32: String] = [:]

    /// `owner` names the instance in the lease files (for an operator reading them).
    public init(root: String, owner: String) throws(ArchiveLeaseError) {
        dir = root + "/" + Self.folder
        self.owner = owner
        if mkdir(root, 0o755) != 0 && errno != EEXIST { throw .io("mkdir \(root)", errno) }
        if mkdir(dir, 0o755) != 0 && errno != EEXIST { throw .io("mkdir \(dir)", errno) }
    }

    /// Takes the leases of a new assignment: each partition gets a new token. Partitions not in
    /// it are no longer this instance's to publish.
    public func take(_ partitions: [Int32]) throws {
        tokens = [:]
        for p in partitions {
            var rng = SystemRandomNumberGenerator()
            let token = "\(owner) \(String(rng.next() as UInt64, radix: 16))\n"
            try locked(p) { fd in
                let bytes = Array(token.utf8)
                guard ftruncate(fd, 0) == 0 else { throw ArchiveLeaseError.io("truncate the lease of partition \(p)", errno) }
                let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                guard n == bytes.count else { throw ArchiveLeaseError.io("write the lease of partition \(p)", errno) }
                guard fsync(fd) == 0 else { throw ArchiveLeaseError.io("fsync the lease of partition \(p)", errno) }
            }
            tokens[p] = token
        }
    }

    /// Runs `publish` while holding `partition`'s lease, if this instance's token is still the
    /// lease's; false, with nothing run, when another instance took the partition since.
    public func whileHeld(_ partition: Int32, _ publish: () throws -> Void) throws -> Bool {
        guard let mine = tokens[partition] else { return false }
        return try locked(partition) { fd in
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            guard n >= 0 else { throw ArchiveLeaseError.io("read the lease of partition \(partition)", errno) }
            guard String(decoding: buffer[..<n], as: UTF8.self) == mine else { return false }
            try publish()
            return true
        }
    }

    private func locked<T>(_ partition: Int32, _ body: (Int32) throws -> T) throws -> T {
        let path = "\(dir)/part-\(partition)"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ArchiveLeaseError.io("open \(path)", errno) }
        defer { close(fd) }   // closing releases the lock
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ArchiveLeaseError.io("lock \(path)", errno) }
        }
        return try body(fd)
    }
}

public enum ArchiveLeaseError: Error, CustomStringConvertible {
    case io(String, Int32)

    public var description: String {
        switch self {
        case .io(let what, let code): "archive lease: \(what) failed: \(String(cString: strerror(code)))"
        }
    }
}
