import Dispatch
import Synchronization

/// Runs async work to completion from synchronous code by blocking the calling thread on a
/// semaphore. The work runs on Swift's cooperative pool, so the caller must NOT itself be a
/// cooperative-pool thread (an async task or actor): with every pool thread blocked here, the work
/// could never run. Jobs call the store from their own threads, which is what this is for.
enum BlockingBridge {
    private final class Box<T: Sendable>: Sendable {
        let value = Mutex<Result<T, any Error>?>(nil)
    }

    static func run<T: Sendable>(timeout: Duration, what: @autoclosure () -> String,
                                 _ work: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = Box<T>()
        let task = Task {
            let result: Result<T, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            box.value.withLock { $0 = result }
            done.signal()
        }
        let (s, atto) = timeout.components
        let nanos = Int(clamping: s) &* 1_000_000_000 &+ Int(atto / 1_000_000_000)
        if done.wait(timeout: .now() + .nanoseconds(nanos)) == .timedOut {
            task.cancel()
            throw DimensionStoreError.timeout("\(what()) did not finish within \(timeout)")
        }
        return try box.value.withLock { $0! }.get()
    }
}
