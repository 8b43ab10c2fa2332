public import StrataCore
public import StrataKafka

/// The consumer groups of the pipeline's jobs and the topics each reads, in one place for every
/// lag reader (the dashboard's job lag, `bench soak`): the split reads `ods.raw`; the dwm job the
/// micro-queues, or `ods.raw` with `--read-raw` (measured on whichever set its group has committed
/// offsets on); archive `ods.raw`; sink `dws.content`. Group ids are the jobs' defaults
/// (`Topology.splitGroup` …) unless given.
extension LagWatch {
    public static func split(topicPrefix: String = "", groupId: String = Topology.splitGroup) -> LagWatch {
        LagWatch(job: "split", groupId: groupId, topics: [topicPrefix + Topology.raw])
    }

    public static func dwm(topology: Topology, topicPrefix: String = "", groupId: String = Topology.dwmGroup) -> LagWatch {
        LagWatch(job: "dwm", groupId: groupId, topics: topology.actions.map { topicPrefix + Topology.microQueue(for: $0) },
                 alternatives: [[topicPrefix + Topology.raw]])
    }

    public static func archive(topicPrefix: String = "", groupId: String = Topology.archiveGroup) -> LagWatch {
        LagWatch(job: "archive", groupId: groupId, topics: [topicPrefix + Topology.raw])
    }

    public static func sink(topicPrefix: String = "", groupId: String = Topology.sinkGroup) -> LagWatch {
        LagWatch(job: "sink", groupId: groupId, topics: [topicPrefix + Topology.dws])
    }
}
