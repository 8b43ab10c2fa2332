import StrataCore

/// One event as the gateway keeps it, in memory and in the spool, little-endian:
///
///     u32 key length · u32 value length · u64 checksum · key bytes · value bytes
///
/// A request's accepted events are laid out as consecutive frames in one buffer, so the broker
/// path reads keys and values in place and the spool writes the buffer as it is. The checksum
/// (FNV-1a over the lengths and the payload, a word at a time) is filled in only when a batch
/// goes to the spool; it finds a torn tail after a crash, not tampering.
public enum Frame {
    public static let headerBytes = 16

    @inline(__always)
    static func readU32(_ p: UnsafeRawBufferPointer, _ at: Int) -> Int {
        Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
    }

    /// Appends a frame's header with a zero checksum; the caller appends key then value.
    @inline(__always)
    static func appendHeader(to out: inout [UInt8], keyCount: Int, valueCount: Int) {
        withUnsafeBytes(of: UInt32(keyCount).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(valueCount).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(0)) { out.append(contentsOf: $0) }
    }

    /// The checksum of the frame at `at` whose lengths are already written.
    static func checksum(_ p: UnsafeRawBufferPointer, frameAt at: Int, payloadCount: Int) -> UInt64 {
        var h = FNV1a.offsetBasis
        FNV1a.combine(&h, word: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        var i = at + headerBytes
        let end = i + payloadCount
        while end - i >= 8 {
            FNV1a.combine(&h, word: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        while i < end {
            FNV1a.combine(&h, p[i])
            i += 1
        }
        return h
    }

    /// Fills in the checksum of every frame of `bytes`.
    static func seal(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { m in
            let p = UnsafeRawBufferPointer(m)
            var at = 0
            while at + headerBytes <= p.count {
                let payload = readU32(p, at) + readU32(p, at + 4)
                let sum = checksum(p, frameAt: at, payloadCount: payload)
                m.storeBytes(of: sum.littleEndian, toByteOffset: at + 8, as: UInt64.self)
                at += headerBytes + payload
            }
        }
    }

    /// Calls `body(key, value)` for each frame, in order. With `verify`, stops at the first frame
    /// that is cut off or whose checksum does not match, and returns the number of bytes of whole,
    /// intact frames (where a torn file should be cut).
    @discardableResult
    static func forEach(in p: UnsafeRawBufferPointer, verify: Bool,
                        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Void) -> Int {
        var at = 0
        while at + headerBytes <= p.count {
            let k = readU32(p, at), v = readU32(p, at + 4)
            let next = at + headerBytes + k + v
            guard next <= p.count else { break }
            if verify {
                let stored = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self))
                guard stored == checksum(p, frameAt: at, payloadCount: k + v) else { break }
            }
            body(UnsafeRawBufferPointer(rebasing: p[(at + headerBytes)..<(at + headerBytes + k)]),
                 UnsafeRawBufferPointer(rebasing: p[(at + headerBytes + k)..<next]))
            at = next
        }
        return at
    }
}

/// A request's accepted events as consecutive frames.
public struct FramedBatch: Sendable {
    public internal(set) var bytes: [UInt8]
    public internal(set) var count: Int

    public init() {
        bytes = []
        count = 0
    }

    /// Calls `body(key, value)` for each event, in order.
    public func forEach(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Void) {
        _ = bytes.withUnsafeBytes { Frame.forEach(in: $0, verify: false, body) }
    }
}
