internal import CZstd

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// What went wrong reading or writing a Zstandard file. Every case names the file.
public enum ZstdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed (`operation` is open, read, write, fsync, close, rename…).
    case io(path: String, operation: String, errno: Int32)
    /// libzstd refused to compress (an invalid level, out of memory).
    case compression(path: String, message: String)
    /// The bytes are not a valid Zstandard stream (corrupt data, wrong checksum, not zstd at all).
    case corrupt(path: String, message: String)
    /// The file ends inside a frame: it was cut short (a crash before `finish()`, a partial copy).
    case truncated(path: String, compressedBytes: Int64)
    /// A write or finish after `close()`.
    case closed(path: String)

    public var description: String {
        switch self {
        case .io(let path, let op, let err):
            "\(path): \(op) failed: \(String(cString: strerror(err)))"
        case .compression(let path, let m): "\(path): zstd compression failed: \(m)"
        case .corrupt(let path, let m): "\(path): not a valid zstd stream: \(m)"
        case .truncated(let path, let n):
            "\(path): truncated zstd file: the last frame is incomplete after \(n) compressed bytes (a writer that did not finish, or a partial copy)"
        case .closed(let path): "\(path): the writer is closed"
        }
    }
}

/// Streaming Zstandard compression into a file: bytes in, compressed frames out.
///
/// `write` hands the caller's bytes straight to `ZSTD_compressStream2` (no copy, no allocation per
/// call; zstd buffers a block internally) and writes the fixed output buffer to the file whenever
/// it fills. `finish()` ends the current frame; writing after it starts a new frame, so one file
/// can hold several frames (readers accept that). Frames carry a content checksum, so a reader
/// detects corruption, not only truncation.
///
/// Not thread-safe: one writer belongs to one thread.
public final class ZstdFileWriter {
    public let path: String
    public let level: Int32
    /// Bytes given to `write` so far.
    public private(set) var uncompressedBytes: Int64 = 0
    /// Bytes written to the file so far.
    public private(set) var compressedBytes: Int64 = 0

    private var fd: Int32
    private let ownsDescriptor: Bool
    private let cctx: OpaquePointer
    private let out: UnsafeMutableRawBufferPointer
    /// True between the first write of a frame and its `finish()`.
    private var frameOpen = false

    public static let defaultLevel: Int32 = 3

    /// Creates (or truncates) `path` with mode 0644 and compresses into it.
    public convenience init(path: String, level: Int32 = ZstdFileWriter.defaultLevel) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ZstdError.io(path: path, operation: "open", errno: errno) }
        do {
            try self.init(fileDescriptor: fd, path: path, ownsDescriptor: true, level: level)
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
    }

    /// Compresses into an open descriptor; `path` only names it in errors. With `ownsDescriptor`
    /// the writer closes it on `close()`/deinit.
    public init(fileDescriptor: Int32, path: String, ownsDescriptor: Bool = false,
                level: Int32 = ZstdFileWriter.defaultLevel) throws {
        guard let ctx = ZSTD_createCCtx() else { throw ZstdError.compression(path: path, message: "out of memory") }
        self.cctx = ctx
        self.fd = fileDescriptor
        self.path = path
        self.ownsDescriptor = ownsDescriptor
        self.level = level
        self.out = .allocate(byteCount: max(ZSTD_CStreamOutSize(), 64 * 1024), alignment: 16)
        do {
            try Self.check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level), path)
            try Self.check(ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1), path)
        } catch {
            ZSTD_freeCCtx(ctx)
            out.deallocate()
            throw error
        }
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        out.deallocate()
        if ownsDescriptor && fd >= 0 { _ = Glibc.close(fd) }
    }

    private static func check(_ code: Int, _ path: String) throws {
        if ZSTD_isError(code) != 0 {
            throw ZstdError.compression(path: path, message: String(cString: ZSTD_getErrorName(code)))
        }
    }

    /// Compresses `bytes` (part of the current frame; opens one if needed).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw ZstdError.closed(path: path) }
        guard bytes.count > 0, let base = bytes.baseAddress else { return }
        frameOpen = true
        uncompressedBytes += Int64(bytes.count)
        var input = ZSTD_inBuffer(src: base, size: bytes.count, pos: 0)
        while input.pos < input.size {
            var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            try Self.check(ZSTD_compressStream2(cctx, &output, &input, ZSTD_e_continue), path)
            try drain(output.pos)
        }
    }

    /// `bytes` followed by one `\n`.
    public func writeLine(_ bytes: UnsafeRawBufferPointer) throws {
        try write(bytes)
        var newline: UInt8 = 0x0A
        try withUnsafeBytes(of: &newline) { try write($0) }
    }

    /// Ends the current frame and writes everything compressed so far to the file (not fsynced:
    /// see ``sync()``). Without an open frame it does nothing.
    public func finish() throws {
        guard fd >= 0 else { throw ZstdError.closed(path: path) }
        guard frameOpen else { return }
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while true {
            var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let remaining = ZSTD_compressStream2(cctx, &output, &input, ZSTD_e_end)
            try Self.check(remaining, path)
            try drain(output.pos)
            if remaining == 0 { break }
        }
        frameOpen = false
    }

    /// fsync: the file's bytes are on disk when this returns.
    public func sync() throws {
        guard fd >= 0 else { throw ZstdError.closed(path: path) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw ZstdError.io(path: path, operation: "fsync", errno: errno)
        }
    }

    /// Finishes an open frame and closes the descriptor when the writer owns it. Idempotent.
    public func close() throws {
        guard fd >= 0 else { return }
        try finish()
        let descriptor = fd
        fd = -1
        if ownsDescriptor, Glibc.close(descriptor) != 0 {
            throw ZstdError.io(path: path, operation: "close", errno: errno)
        }
    }

    private func drain(_ count: Int) throws {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, out.baseAddress! + done, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw ZstdError.io(path: path, operation: "write", errno: errno)
            }
            done += n
        }
        compressedBytes += Int64(count)
    }
}

/// Streaming decompression of a `.ndjson.zst` file, one callback per line.
///
/// Any number of frames (and skippable frames) one after another. Each line is handed to `body`
/// as a view into the reader's buffer, without its `\n`, valid only during the call: no String and
/// no allocation per line (the buffer grows only for a line longer than it). A last line without a
/// newline is delivered too. A file that ends inside a frame throws ``ZstdError/truncated``
/// after every complete line before the cut was delivered.
public final class ZstdLineReader {
    public let path: String
    /// Compressed bytes read so far.
    public private(set) var compressedBytes: Int64 = 0
    /// Lines delivered so far.
    public private(set) var lines: Int64 = 0

    private let bufferSize: Int

    public init(path: String, bufferSize: Int = 256 * 1024) {
        self.path = path
        self.bufferSize = max(bufferSize, 4096)
    }

    /// Reads the whole file, calling `body` for each line.
    public func forEachLine(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ZstdError.io(path: path, operation: "open", errno: errno) }
        defer { _ = Glibc.close(fd) }
        guard let dctx = ZSTD_createDCtx() else { throw ZstdError.corrupt(path: path, message: "out of memory") }
        defer { ZSTD_freeDCtx(dctx) }

        let inCapacity = max(ZSTD_DStreamInSize(), 64 * 1024)
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: inCapacity, alignment: 16)
        defer { input.deallocate() }
        // out[0..<filled] holds decompressed bytes; lines are cut from `lineStart`.
        var out = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { out.deallocate() }
        var filled = 0
        var lineStart = 0
        var scanFrom = 0
        // 0 after a complete frame (or before any), else libzstd's hint that more input is due.
        var lastHint = 0
        var sawInput = false

        func deliverLines() throws {
            guard let base = out.baseAddress else { return }
            while scanFrom < filled {
                guard let nl = memchr(base + scanFrom, 0x0A, filled - scanFrom) else {
                    scanFrom = filled
                    return
                }
                let end = UnsafeRawPointer(nl) - UnsafeRawPointer(base)
                lines += 1
                try body(UnsafeRawBufferPointer(start: base + lineStart, count: end - lineStart))
                lineStart = end + 1
                scanFrom = lineStart
            }
        }

        /// Moves the partial line to the front, or grows the buffer when the line fills it.
        func makeRoom() {
            if lineStart > 0 {
                let keep = filled - lineStart
                if keep > 0 { memmove(out.baseAddress!, out.baseAddress! + lineStart, keep) }
                filled = keep
                scanFrom -= lineStart
                lineStart = 0
            }
            if filled == out.count {
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: out.count * 2, alignment: 16)
                bigger.copyMemory(from: UnsafeRawBufferPointer(rebasing: out[0..<filled]))
                out.deallocate()
                out = bigger
            }
        }

        while true {
            let n = read(fd, input.baseAddress, inCapacity)
            if n < 0 {
                if errno == EINTR { continue }
                throw ZstdError.io(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            sawInput = true
            compressedBytes += Int64(n)
            var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: n, pos: 0)
            // Decompress until this chunk is consumed and zstd has nothing left to flush.
            while true {
                if filled == out.count { makeRoom() }
                var outBuf = ZSTD_outBuffer(dst: out.baseAddress! + filled, size: out.count - filled, pos: 0)
                let hint = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
                if ZSTD_isError(hint) != 0 {
                    throw ZstdError.corrupt(path: path, message: String(cString: ZSTD_getErrorName(hint)))
                }
                lastHint = hint
                filled += outBuf.pos
                try deliverLines()
                let outputFull = outBuf.pos == outBuf.size
                if inBuf.pos == inBuf.size && !outputFull { break }
                if outputFull { makeRoom() }
            }
        }
        if sawInput && lastHint != 0 {
            throw ZstdError.truncated(path: path, compressedBytes: compressedBytes)
        }
        if lineStart < filled, let base = out.baseAddress {
            lines += 1
            try body(UnsafeRawBufferPointer(start: base + lineStart, count: filled - lineStart))
        }
    }
}
