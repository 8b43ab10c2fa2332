import StrataCore
public import StrataKafka

extension KafkaMessage {
    /// A split watermark marker in a micro-queue (null key, `strata.wm` header): progress of the
    /// ods.raw partitions, not an event. Readers of events skip it.
    public var isWatermarkMarker: Bool { key == nil && headerView(SourceProgress.markerHeader) != nil }
}
