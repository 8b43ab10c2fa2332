import ArgumentParser
import Foundation
import StrataRuntime

/// How `strata job <name>` and `strata run` run jobs: under `JobRunner` (one thread each, one stop
/// path: SIGINT/SIGTERM or a failed job), a progress line on stderr, the metrics file, and on exit
/// one JSON summary line per job on stdout. Exit status 1 when a job failed, 3 when a job's
/// accounting does not balance (consumed ≠ the sum of its outcomes).
func runJobs(_ jobs: [any StreamJob], metricsFile: String?, afterJobs: () -> Void = {}) throws {
    Shutdown.install()
    var progress = Progress()
    var metrics = MetricsFileWriter(path: metricsFile)
    let outcome = JobRunner.run(jobs, shouldStop: { Shutdown.isRequested }) { summaries in
        progress.update(summaries.map(\.progressLine).joined(separator: " | "))
        metrics.maybeWrite()
    }
    afterJobs()
    progress.finish()
    metrics.write()
    for summary in outcome.summaries { print(summary.jsonLine) }
    for (job, error) in outcome.failures.sorted(by: { $0.key < $1.key }) { stderrLine("error: the \(job) job failed: \(error)") }
    for summary in outcome.summaries where !summary.balanced {
        stderrLine("error: the \(summary.job) job's accounting does not balance: consumed \(summary.consumed), outcomes \(summary.outcomes)")
    }
    if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
}
