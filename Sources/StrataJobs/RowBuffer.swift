import StrataCore

/// The byte buffer rows are encoded into: one per enricher, reused for every row. Appends are a
/// capacity check and a copy; an `[UInt8]` pays a uniqueness check per append and goes through
/// generic sequence code for string literals and UTF-8 views (about half the encoding time of a
/// row before). A class, so copies of the enricher share one buffer instead of double-freeing it.
final class RowBuffer {
    @exclusivity(unchecked) private var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private(set) var count = 0

    private let initialCapacity: Int

    init(capacity: Int = 1_024) {
        self.capacity = capacity
        initialCapacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    func removeAll() { count = 0 }

    /// Empties the buffer; one grown past `limit` bytes shrinks back to its first size.
    func removeAll(keepingCapacityUpTo limit: Int) {
        count = 0
        guard capacity > Swift.max(limit, initialCapacity) else { return }
        base.deallocate()
        base = .allocate(capacity: initialCapacity)
        capacity = initialCapacity
    }

    @inline(__always)
    private func reserve(_ n: Int) {
        if count + n > capacity { grow(to: count + n) }
    }

    private func grow(to needed: Int) {
        let bigger = Swift.max(needed, capacity * 2)
        let next = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        next.update(from: base, count: count)
        base.deallocate()
        base = next
        capacity = bigger
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    func append(_ literal: StaticString) {
        append(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer) {
        guard let p = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        (base + count).update(from: p.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        count += bytes.count
    }

    func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// Decimal digits, written in place from the end.
    @inline(__always)
    func appendInt(_ v: Int64) {
        reserve(20)
        var x = v.magnitude
        if v < 0 { base[count] = UInt8(ascii: "-"); count += 1 }
        var digits = 1
        var t = x
        while t >= 10 { t /= 10; digits += 1 }
        var i = count + digits
        count = i
        repeat {
            i -= 1
            base[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: x % 10)
            x /= 10
        } while x > 0
    }

    /// UTF-8 bytes as a quoted JSON string literal: copied in one go when plain ASCII (ids,
    /// nearly always), else as ``appendJSONString(_:)-(String)`` writes their String (escapes,
    /// and invalid UTF-8 repaired the same way).
    @inline(__always)
    func appendJSONString(_ utf8: UnsafeRawBufferPointer) {
        if Self.isPlainASCII(utf8) {
            appendQuoted(utf8)
        } else {
            appendJSONString(String(decoding: utf8, as: UTF8.self))
        }
    }

    /// `"text"`, for text that needs no escaping.
    @inline(__always)
    private func appendQuoted(_ text: UnsafeRawBufferPointer) {
        reserve(text.count + 2)
        base[count] = UInt8(ascii: "\"")
        if let p = text.baseAddress { (base + count + 1).update(from: p.assumingMemoryBound(to: UInt8.self), count: text.count) }
        base[count + 1 + text.count] = UInt8(ascii: "\"")
        count += text.count + 2
    }

    @inline(__always)
    private static func isPlainASCII(_ u: UnsafeRawBufferPointer) -> Bool {
        for c in u where c < 0x20 || c >= 0x80 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { return false }
        return true
    }

    /// `s` as a quoted JSON string literal: copied in one go when nothing needs escaping (ids and
    /// dimension values, nearly always), else through ``JSONString`` (one text of the escapes).
    func appendJSONString(_ s: String) {
        var s = s
        let plain = s.withUTF8 { u -> Bool in
            guard JSONString.isPlain(u) else { return false }
            appendQuoted(UnsafeRawBufferPointer(u))
            return true
        }
        if plain { return }
        var escaped: [UInt8] = []
        JSONString.append(s, to: &escaped)
        append(escaped)
    }
}
