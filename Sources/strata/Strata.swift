import ArgumentParser
import StrataBench
import StrataCore

@main
struct Strata: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strata",
        abstract: "A real-time data warehouse with layered streams (ODS → DWM → DWS) on Kafka and Redis.",
        discussion: """
        Addresses come from flags, then the environment (STRATA_BROKERS, STRATA_REDIS_URL, STRATA_STORE, STRATA_TOPOLOGY, STRATA_KAFKA_<PROPERTY>), then a config file (--config, $STRATA_CONFIG or ./strata.yaml), then local defaults (broker 127.0.0.1:9092, Redis 127.0.0.1:6379, store sqlite:data/strata.db).

        A local stack: deploy/local/setup && deploy/local/stack up && eval "$(deploy/local/stack env)" (on its Tansu broker, STRATA_COMMIT_LOCK makes Strata's processes end their transactions one at a time: two ends at once can leave its read_committed end stuck for good; docs/operations.md). Then, for example:

          strata topology apply
          strata gen dims --load
          strata gen events --count 100000 --topic ods.raw
          strata run --until-idle 10
          strata consume --topic dws.content --from-beginning --until-idle 2 --format table
          strata query -f sql/queries/seed4_active_users.sql --from-beginning --until-idle 5
        """,
        subcommands: [TopologyCommand.self, ProduceCommand.self, ConsumeCommand.self, GenCommand.self,
                      JobCommand.self, DimsCommand.self, RunCommand.self, BenchCommand.self, ConfigCommand.self, VersionCommand.self, QueryCommand.self, ServeCommand.self, CollectCommand.self,
                      OLAPCommand.self, ReconcileCommand.self, SettleCommand.self]
    )
}
