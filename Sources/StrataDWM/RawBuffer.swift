// A growable buffer of trivial values behind a raw pointer. The window engine's hot path reads and
// writes cells through these, so it pays neither copy-on-write uniqueness checks nor dynamic
// exclusivity checks; the owner (a window or the engine) frees it in its deinit.

struct RawBuffer<Element: BitwiseCopyable> {
    private(set) var base: UnsafeMutablePointer<Element>
    fileprivate(set) var count = 0
    private(set) var capacity: Int

    init(capacity: Int = 8) {
        self.capacity = Swift.max(capacity, 1)
        base = .allocate(capacity: self.capacity)
    }

    @inline(__always)
    subscript(i: Int) -> Element {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }

    /// Stable only until the next append.
    @inline(__always)
    func pointer(_ i: Int) -> UnsafeMutablePointer<Element> { base + i }

    @inline(__always)
    mutating func append(_ x: Element) {
        if count == capacity { grow(to: count + 1) }
        (base + count).initialize(to: x)
        count += 1
    }

    /// Appends `n` copies of `x`.
    mutating func append(repeating x: Element, count n: Int) {
        if count + n > capacity { grow(to: count + n) }
        (base + count).initialize(repeating: x, count: n)
        count += n
    }

    mutating func append(contentsOf p: UnsafeBufferPointer<Element>) {
        if count + p.count > capacity { grow(to: count + p.count) }
        if let src = p.baseAddress { (base + count).initialize(from: src, count: p.count) }
        count += p.count
    }

    mutating func removeAll() { count = 0 }

    mutating func reserve(_ n: Int) {
        if n > capacity { grow(to: n) }
    }

    private mutating func grow(to minimum: Int) {
        var c = capacity
        while c < minimum { c = c < 1024 ? c * 2 : c + c / 2 }
        let b = UnsafeMutablePointer<Element>.allocate(capacity: c)
        b.initialize(from: base, count: count)
        base.deallocate()
        base = b
        capacity = c
    }

    func deallocate() { base.deallocate() }

    var allocatedBytes: Int { capacity * MemoryLayout<Element>.stride }
}

extension RawBuffer where Element == UInt8 {
    mutating func append(bytes: UnsafeRawBufferPointer) {
        if count + bytes.count > capacity { reserve(Swift.max(count + bytes.count, capacity * 2)) }
        if let src = bytes.baseAddress { UnsafeMutableRawPointer(base + count).copyMemory(from: src, byteCount: bytes.count) }
        count += bytes.count
    }
}

/// An append-only buffer in fixed chunks of 2^14 elements: elements never move (pointers into it
/// stay valid), growth never copies, and the unused tail is at most one chunk. For the cells of a
/// window, where a contiguous buffer's grow would copy hundreds of MB and briefly hold both copies.
struct ChunkedBuffer<Element: BitwiseCopyable> {
    private static var shift: Int { 14 }
    private static var chunkSize: Int { 1 << shift }
    private var chunks = RawBuffer<UnsafeMutablePointer<Element>>(capacity: 16)
    private(set) var count = 0

    @inline(__always)
    func pointer(_ i: Int) -> UnsafeMutablePointer<Element> {
        chunks[i >> Self.shift] + (i & (Self.chunkSize - 1))
    }

    @inline(__always)
    subscript(i: Int) -> Element {
        get { pointer(i).pointee }
        nonmutating set { pointer(i).pointee = newValue }
    }

    @inline(__always)
    mutating func append(_ x: Element) {
        if count >> Self.shift == chunks.count { chunks.append(.allocate(capacity: Self.chunkSize)) }
        pointer(count).initialize(to: x)
        count += 1
    }

    func deallocate() {
        for i in 0..<chunks.count { chunks[i].deallocate() }
        chunks.deallocate()
    }

    /// Bytes in use by elements (rounded up to whole pages of the last chunk, which the OS only
    /// backs once touched) plus the chunk table.
    var allocatedBytes: Int {
        let used = count * MemoryLayout<Element>.stride
        return (used + 4095) / 4096 * 4096 + chunks.allocatedBytes
    }
}
