/// Encoded rows, kept where librdkafka can read them without a copy of its own until they are
/// delivered. Rows go into fixed chunks that are reused from one pass to the next: no per-row
/// allocation, no buffer doubling (a catch-up's transaction can hold a hundred MB of rows), and
/// chunks past `retainedBytes` are given back at ``reset()``.
final class RowArena {
    private static let chunkSize = 4 << 20
    private var chunks: [UnsafeMutableRawPointer] = []
    /// Rows larger than a chunk, each allocated alone and freed at ``reset()``.
    private var oversized: [UnsafeMutableRawPointer] = []
    private var chunk = 0, used = 0
    private let retainedChunks: Int

    /// Bytes of rows held since the last ``reset()``.
    private(set) var heldBytes = 0

    init(retainedBytes: Int = 32 << 20) {
        retainedChunks = Swift.max(1, retainedBytes / Self.chunkSize)
    }

    deinit {
        for c in chunks { c.deallocate() }
        for c in oversized { c.deallocate() }
    }

    /// Copies `bytes` in; the copy stays valid until ``reset()``.
    func append(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let n = bytes.count
        heldBytes += n
        if n > Self.chunkSize {
            let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 1)
            oversized.append(p)
            return copy(bytes, to: p)
        }
        if chunks.isEmpty || used + n > Self.chunkSize {
            if !chunks.isEmpty { chunk += 1 }
            if chunk == chunks.count { chunks.append(.allocate(byteCount: Self.chunkSize, alignment: 16)) }
            used = 0
        }
        let out = copy(bytes, to: chunks[chunk] + used)
        used += n
        return out
    }

    private func copy(_ bytes: UnsafeRawBufferPointer, to p: UnsafeMutableRawPointer) -> UnsafeRawBufferPointer {
        if let b = bytes.baseAddress { p.copyMemory(from: b, byteCount: bytes.count) }
        return UnsafeRawBufferPointer(start: p, count: bytes.count)
    }

    /// Forgets every row (their space is reused), keeping at most `retainedBytes` of chunks.
    func reset() {
        for c in oversized { c.deallocate() }
        oversized.removeAll()
        while chunks.count > retainedChunks { chunks.removeLast().deallocate() }
        chunk = 0
        used = 0
        heldBytes = 0
    }
}
