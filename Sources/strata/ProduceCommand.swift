import ArgumentParser
import Foundation
import StrataKafka

struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Bulk-produce a file, one message per line (NDJSON).",
        discussion: "Lines are sent as they are (no parsing); empty lines are skipped. Keys: --key-field takes "
            + "the value of a top-level JSON string field as the message key (e.g. content_id).")

    @OptionGroup var global: GlobalOptions
    @Option(help: "Topic to write to.") var topic: String
    @Option(help: "File with one message per line; - for standard input.") var file: String
    @Option(help: "Use this top-level JSON string field as the key.") var keyField: String?

    func run() throws {
        let config = try global.resolve()
        let producer = try KafkaProducer(config: config.producerConfig(clientId: "strata-produce"))
        let kafkaTopic = producer.topic(topic)
        var progress = Progress()
        var sent = 0
        let needle = keyField.map { Array("\"\($0)\":\"".utf8) }
        try LineReader.forEachLine(path: file) { line in
            guard !line.isEmpty else { return }
            let key = needle.flatMap { extractStringField(line, needle: $0) }
            try producer.produce(to: kafkaTopic, key: key, value: line, copy: true)
            sent += 1
            if sent % 10_000 == 0 {
                producer.poll()
                let rate = Int(Double(sent) / max(progress.elapsedSeconds, 0.001))
                progress.update("produced \(sent) to \(topic) (\(rate) msg/s)")
            }
        }
        try producer.flush(timeoutMs: 120_000)
        progress.update("produced \(sent) to \(topic)", force: true)
        progress.finish()
        stderrLine("produced \(sent) messages to \(topic), delivered \(producer.deliveryCounts.delivered)")
    }
}

/// The bytes of `"name":"value"` when the value has no escapes; a cheap key extractor.
func extractStringField(_ line: UnsafeRawBufferPointer, needle: [UInt8]) -> UnsafeRawBufferPointer? {
    guard line.count > needle.count else { return nil }
    var i = 0
    while i + needle.count <= line.count {
        if line[i] == needle[0], needle.withUnsafeBytes({ UnsafeRawBufferPointer(rebasing: line[i..<i + needle.count]).elementsEqual($0) }) {
            let start = i + needle.count
            var end = start
            while end < line.count && line[end] != UInt8(ascii: "\"") && line[end] != UInt8(ascii: "\\") { end += 1 }
            return end < line.count && line[end] == UInt8(ascii: "\"") ? UnsafeRawBufferPointer(rebasing: line[start..<end]) : nil
        }
        i += 1
    }
    return nil
}

/// Reads a file (or stdin) in large chunks and hands out lines without copying them.
enum LineReader {
    static func forEachLine(path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd: Int32 = path == "-" ? STDIN_FILENO : open(path, O_RDONLY)
        guard fd >= 0 else { throw ValidationError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { if path != "-" { close(fd) } }
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var filled = 0
        while true {
            if filled == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            let bytesRead = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if bytesRead < 0 { throw ValidationError("cannot read \(path): \(String(cString: strerror(errno)))") }
            let eof = bytesRead == 0
            filled += bytesRead
            var consumed = 0
            try buffer.withUnsafeBytes { all in
                var start = 0
                for index in 0..<filled where all[index] == UInt8(ascii: "\n") {
                    try body(UnsafeRawBufferPointer(rebasing: all[start..<index]))
                    start = index + 1
                }
                if eof && start < filled { try body(UnsafeRawBufferPointer(rebasing: all[start..<filled])); start = filled }
                consumed = start
            }
            if consumed > 0 {
                buffer.withUnsafeMutableBytes { bytes in
                    bytes.baseAddress!.copyMemory(from: bytes.baseAddress! + consumed, byteCount: filled - consumed)
                }
                filled -= consumed
            }
            if eof { return }
        }
    }
}
