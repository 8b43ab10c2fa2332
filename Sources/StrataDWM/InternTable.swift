// Interns byte strings (content ids, user ids, strategies) to dense UInt32 ids, storing each
// string's bytes once in an arena. Lookups hash and compare bytes; no String is ever created.
// Public for the enricher, which numbers an emission's distinct ids the same way.

public struct InternTable {
    private var arena = RawBuffer<UInt8>(capacity: 256)
    private var ends = RawBuffer<UInt32>(capacity: 16)      // id i spans ends[i-1]..<ends[i]
    private var hashes = RawBuffer<UInt64>(capacity: 16)
    private var index = SlotIndex()

    public init() {}

    /// Sized for `count` ids of about `bytesEach` bytes: no growth (rehashing, copying) on the way.
    public init(expectedCount count: Int, bytesEach: Int = 12) {
        arena = RawBuffer(capacity: Swift.max(256, count * bytesEach))
        ends = RawBuffer(capacity: Swift.max(16, count))
        hashes = RawBuffer(capacity: Swift.max(16, count))
        index = SlotIndex(capacity: count + count / 2 + 16)
    }

    public var count: Int { ends.count }

    @inline(__always)
    public func bytes(_ id: UInt32) -> UnsafeRawBufferPointer {
        let i = Int(id)
        let start = i == 0 ? 0 : Int(ends[i - 1])
        return UnsafeRawBufferPointer(start: arena.base + start, count: Int(ends[i]) - start)
    }

    /// The `ByteHash.hash` of id `id`'s bytes, as given to ``intern(_:hash:)``.
    @inline(__always)
    public func hash(_ id: UInt32) -> UInt64 { hashes[Int(id)] }

    @inline(__always)
    public func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> UInt32? {
        let r = index.find(hash) { id in hashes[Int(id)] == hash && Self.equal(bytes(id), key) }
        return r.id == SlotIndex.notFound ? nil : r.id
    }

    @inline(__always)
    public mutating func intern(_ key: UnsafeRawBufferPointer, hash: UInt64) -> UInt32 {
        let r = index.find(hash) { id in hashes[Int(id)] == hash && Self.equal(bytes(id), key) }
        if r.id != SlotIndex.notFound { return r.id }
        let id = UInt32(ends.count)
        arena.append(bytes: key)
        ends.append(UInt32(arena.count))
        hashes.append(hash)
        let h = hashes
        index.insert(id, hash: hash, at: r.slot) { h[Int($0)] }
        return id
    }

    @inline(__always)
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let n = a.count
        guard n == b.count else { return false }
        guard n > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
        var i = 0
        while i + 8 <= n {
            if pa.loadUnaligned(fromByteOffset: i, as: UInt64.self) != pb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < n {
            if pa.load(fromByteOffset: i, as: UInt8.self) != pb.load(fromByteOffset: i, as: UInt8.self) { return false }
            i += 1
        }
        return true
    }

    /// Forgets every id, keeping the memory (a reused table numbers from 0 again).
    public mutating func removeAll() {
        arena.removeAll()
        ends.removeAll()
        hashes.removeAll()
        index.removeAll()
    }

    public func deallocate() {
        arena.deallocate()
        ends.deallocate()
        hashes.deallocate()
        index.deallocate()
    }

    var allocatedBytes: Int { arena.allocatedBytes + ends.allocatedBytes + hashes.allocatedBytes + index.allocatedBytes }
}
