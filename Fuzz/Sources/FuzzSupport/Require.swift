/// A property every input must keep. A broken one stops the fuzzer like a crash: libFuzzer saves
/// the input as a crash artifact, and the message says which property failed.
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                    file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

/// The bytes libFuzzer hands to `LLVMFuzzerTestOneInput` (which may be an empty input).
@inline(__always)
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: size > 0 ? data : nil, count: size)
}

/// Input text for messages: short, escaped.
public func show(_ bytes: UnsafeRawBufferPointer, limit: Int = 200) -> String {
    var s = String(decoding: bytes.prefix(limit), as: UTF8.self).debugDescription
    if bytes.count > limit { s += "…(\(bytes.count) bytes)" }
    return s
}
