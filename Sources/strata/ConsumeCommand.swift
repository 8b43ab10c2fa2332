import ArgumentParser
import Foundation
import StrataKafka
import StrataRuntime

struct ConsumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Print a topic's messages (all partitions, read_committed, no group, nothing committed).",
        discussion: """
        --format ndjson prints each value on one line: JSON values as they are, other values as a JSON
        string. --format table prints partition, offset, key and value.
        Starts at the end of the topic unless --from-beginning. Stops after --until-idle seconds without
        a new message, after --max messages, or on Ctrl-C.
        """)

    enum Format: String, ExpressibleByArgument { case ndjson, table }

    @OptionGroup var global: GlobalOptions
    @Option(help: "Topic to read.") var topic: String
    @Flag(help: "Start at the first record instead of the end.") var fromBeginning = false
    @Option(help: "Exit after this long without a new message (e.g. 5, 500ms, 2m).") var untilIdle: DurationArgument?
    @Option(help: "Exit after this many messages.") var max: Int?
    @Flag(help: "Also print the split's watermark markers of a micro-queue (skipped by default: they are not events).")
    var includeMarkers = false
    @Option(help: "Output format.") var format: Format = .ndjson

    func run() throws {
        let config = try global.resolve()
        Shutdown.install()
        let consumer = try KafkaConsumer(config: config.consumerConfig(groupId: nil, clientId: "strata-consume"))
        let partitions = try consumer.partitionCount(topic: topic)
        let start = fromBeginning ? TopicPartitionOffset.first : TopicPartitionOffset.end
        try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic: topic, partition: Int32($0), offset: start) })

        let out = FileHandle.standardOutput
        if format == .table { out.write(Data("partition  offset      key                   value\n".utf8)) }
        var printed = 0
        var lastMessage = ContinuousClock.now
        var pending = Data()
        loop: while !Shutdown.isRequested {
            let batch = try consumer.poll(maxMessages: 1000, timeoutMs: 100)
            for message in batch {
                if let error = message.error {
                    // Records it cannot read end the command (exit 1) rather than vanish from the output.
                    if error.code.losesRecords, !pending.isEmpty { out.write(pending) }
                    try message.throwIfRecordsLost()
                    if error.code != .partitionEOF { stderrLine("warning: \(error)") }
                    continue
                }
                lastMessage = .now
                if !includeMarkers && message.isWatermarkMarker { continue }
                switch format {
                case .ndjson: pending.append(Self.ndjson(message.value)); pending.append(0x0A)
                case .table:
                    let key = message.key.map { String(decoding: $0, as: UTF8.self) } ?? "-"
                    let value = String(decoding: message.value.prefix(160), as: UTF8.self)
                    pending.append(Data("\(String(message.partition).padding(toLength: 9, withPad: " ", startingAt: 0))  \(String(message.offset).padding(toLength: 10, withPad: " ", startingAt: 0))  \(key.padding(toLength: 20, withPad: " ", startingAt: 0))  \(value)\n".utf8))
                }
                printed += 1
                if let max, printed >= max { break loop }
            }
            if !pending.isEmpty { out.write(pending); pending.removeAll(keepingCapacity: true) }
            if let idle = untilIdle, ContinuousClock.now - lastMessage >= idle.duration { break }
        }
        if !pending.isEmpty { out.write(pending) }
        consumer.close()
    }

    /// JSON values as they are; anything else as a JSON string, so every line parses.
    static func ndjson(_ value: UnsafeRawBufferPointer) -> Data {
        let data = Data(value)
        if !data.isEmpty, (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil {
            return data
        }
        let text = String(decoding: value, as: UTF8.self)
        return (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])) ?? Data("null".utf8)
    }
}
